//! Checks of names, comments and rules against what each backend can express.

use std::net::IpAddr;

use super::error::{FirewallError, FirewallResult};
use super::model::{
    BackendKind, IpFamily, Match, PortRange, Ports, Protocol, Raw, Rule, TableFamily, TableId, Verdict,
};

/// The tables iptables has in each family.
pub(crate) const IPTABLES_TABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];

/// The longest iptables chain name (`XT_EXTENSION_MAXNAMELEN - 1`).
pub(crate) const IPTABLES_MAX_CHAIN_LEN: usize = 28;
/// The longest iptables comment (`XT_MAX_COMMENT_LEN - 1`); iptables silently truncates longer ones.
pub const IPTABLES_MAX_COMMENT_LEN: usize = 255;
/// The longest nft comment (`NFT_USERDATA_MAXLEN` as nft enforces it for comments).
pub const NFT_MAX_COMMENT_LEN: usize = 128;
/// The longest nft table or chain name (`NFT_NAME_MAXLEN - 1`).
pub(crate) const NFT_MAX_NAME_LEN: usize = 255;

/// Targets iptables reserves: a chain cannot be called like them.
const IPTABLES_RESERVED: [&str; 4] = ["ACCEPT", "DROP", "QUEUE", "RETURN"];

pub(crate) fn validate_table(kind: BackendKind, table: &TableId) -> FirewallResult<()> {
    match kind {
        BackendKind::Iptables => {
            if table.family.ip_family().is_none() {
                return Err(FirewallError::invalid(format!(
                    "iptables has no {} family (only ip and ip6): table {table}",
                    table.family
                )));
            }
            if !IPTABLES_TABLES.contains(&table.name.as_str()) {
                return Err(FirewallError::invalid(format!(
                    "iptables has no table {:?} (it has {})",
                    table.name,
                    IPTABLES_TABLES.join(", ")
                )));
            }
            Ok(())
        }
        BackendKind::Nftables => validate_nft_name("table", &table.name),
    }
}

/// Words nft 1.0.6 refuses as a table or chain name (measured: `add chain ip t <word>` fails).
/// Hook and table-type names (`input`, `output`, `nat`, `filter`, ...) are accepted.
const NFT_RESERVED: &[&str] = &[
    "accept",
    "add",
    "ah",
    "all",
    "and",
    "arp",
    "auto-merge",
    "bridge",
    "chain",
    "comment",
    "comp",
    "continue",
    "counter",
    "create",
    "ct",
    "day",
    "dccp",
    "define",
    "delete",
    "describe",
    "device",
    "devices",
    "dnat",
    "drop",
    "dst",
    "dup",
    "dynamic",
    "element",
    "elements",
    "esp",
    "ether",
    "exists",
    "export",
    "exthdr",
    "fib",
    "flags",
    "flow",
    "flowtable",
    "flush",
    "frag",
    "fwd",
    "gc-interval",
    "goto",
    "handle",
    "hbh",
    "hook",
    "hour",
    "icmp",
    "icmpv6",
    "iif",
    "iifname",
    "igmp",
    "import",
    "include",
    "index",
    "inet",
    "insert",
    "ip",
    "ip6",
    "ipsec",
    "jhash",
    "jump",
    "limit",
    "list",
    "log",
    "map",
    "mark",
    "masquerade",
    "meta",
    "mh",
    "missing",
    "monitor",
    "netdev",
    "not",
    "notrack",
    "numgen",
    "oif",
    "oifname",
    "or",
    "osf",
    "policy",
    "position",
    "priority",
    "queue",
    "quota",
    "random",
    "redefine",
    "redirect",
    "reject",
    "rename",
    "replace",
    "reset",
    "return",
    "rt",
    "rule",
    "sctp",
    "secmark",
    "set",
    "size",
    "snat",
    "socket",
    "srh",
    "symhash",
    "synproxy",
    "table",
    "tcp",
    "timeout",
    "tproxy",
    "type",
    "udp",
    "udplite",
    "undefine",
    "update",
    "vlan",
    "vmap",
    "xor",
];

fn validate_nft_name(what: &str, name: &str) -> FirewallResult<()> {
    if NFT_RESERVED.contains(&name) {
        return Err(FirewallError::invalid(format!("{name:?} is an nft keyword and cannot name a {what}")));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    if !first_ok || !rest_ok || name.len() > NFT_MAX_NAME_LEN {
        return Err(FirewallError::invalid(format!(
            "invalid nftables {what} name {name:?} (1 to {NFT_MAX_NAME_LEN} characters: a letter, `_` or `.`, then letters, digits, `_`, `.`, `-`, `/`)"
        )));
    }
    Ok(())
}

pub(crate) fn validate_chain_name(kind: BackendKind, name: &str) -> FirewallResult<()> {
    match kind {
        BackendKind::Iptables => {
            let bad = name.is_empty()
                || name.len() > IPTABLES_MAX_CHAIN_LEN
                || name.starts_with(['-', '!'])
                || !name.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\'))
                || IPTABLES_RESERVED.contains(&name);
            if bad {
                return Err(FirewallError::invalid(format!(
                    "invalid iptables chain name {name:?} (1 to {IPTABLES_MAX_CHAIN_LEN} visible ASCII characters without quotes or backslashes, not starting with `-` or `!`, not a built-in target)"
                )));
            }
            Ok(())
        }
        BackendKind::Nftables => validate_nft_name("chain", name),
    }
}

pub(crate) fn validate_comment(kind: BackendKind, what: &str, comment: &str) -> FirewallResult<()> {
    if comment.contains('\0') {
        return Err(FirewallError::invalid(format!("{what} comment contains a NUL byte")));
    }
    match kind {
        BackendKind::Iptables => {
            if comment.len() > IPTABLES_MAX_COMMENT_LEN {
                return Err(FirewallError::invalid(format!(
                    "{what} comment is {} bytes long; iptables keeps at most {IPTABLES_MAX_COMMENT_LEN}",
                    comment.len()
                )));
            }
            if comment.contains(['\n', '\r']) {
                return Err(FirewallError::invalid(format!(
                    "{what} comment contains a line break, which iptables-restore cannot carry"
                )));
            }
        }
        BackendKind::Nftables => {
            if comment.len() > NFT_MAX_COMMENT_LEN {
                return Err(FirewallError::invalid(format!(
                    "{what} comment is {} bytes long; nft allows at most {NFT_MAX_COMMENT_LEN}",
                    comment.len()
                )));
            }
            if comment.contains('"') {
                return Err(FirewallError::invalid(format!(
                    "{what} comment contains '\"', which nft's rule syntax cannot quote"
                )));
            }
        }
    }
    Ok(())
}

fn validate_ifname(name: &str) -> FirewallResult<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '"' | '+' | '*' | '\\'));
    if bad {
        return Err(FirewallError::invalid(format!(
            "invalid interface name {name:?} in a rule (1 to 15 bytes, no spaces, `/`, quotes or wildcards)"
        )));
    }
    Ok(())
}

fn validate_raw(kind: BackendKind, raw: &Raw) -> FirewallResult<()> {
    match (kind, raw) {
        (BackendKind::Iptables, Raw::Iptables(args)) => {
            if args.is_empty() || args.iter().any(|a| a.contains(['\n', '\r', '\0'])) {
                return Err(FirewallError::invalid(format!(
                    "raw iptables arguments {args:?} are empty or contain a line break"
                )));
            }
            Ok(())
        }
        (BackendKind::Nftables, Raw::Nft(text)) => {
            if text.trim().is_empty() || text.contains(['\n', '\r', ';', '#', '\0']) {
                return Err(FirewallError::invalid(format!(
                    "raw nft text {text:?} is empty or contains a line break, `;` or `#`"
                )));
            }
            Ok(())
        }
        (_, Raw::NftJson(json)) => Err(FirewallError::invalid(format!(
            "the rule holds an nft expression the model does not cover ({json}); it can be listed and deleted, not written"
        ))),
        (kind, other) => {
            Err(FirewallError::invalid(format!("a raw {} part cannot be used with {kind}", raw_kind(other))))
        }
    }
}

fn raw_kind(raw: &Raw) -> &'static str {
    match raw {
        Raw::Iptables(_) => "iptables",
        Raw::Nft(_) | Raw::NftJson(_) => "nftables",
    }
}

/// Checks a rule against what `kind` can express in `table`. Jump targets are checked by the
/// planner (it knows the chains).
pub(crate) fn validate_rule(kind: BackendKind, table: &TableId, rule: &Rule) -> FirewallResult<()> {
    let fail = |msg: String| Err(FirewallError::invalid(format!("{msg} (rule: {rule})")));
    if let Some(c) = &rule.comment {
        validate_comment(kind, "rule", c)?;
    }
    let family = table.family.ip_family();
    let check_addr = |a: IpAddr| -> FirewallResult<()> {
        match family {
            Some(f) if f != IpFamily::of(a) => {
                Err(FirewallError::invalid(format!("address {a} does not belong in table {table} (rule: {rule})")))
            }
            _ => Ok(()),
        }
    };
    // nft rejects a rule that tests both IPv4 and IPv6 headers ("conflicting protocols").
    let mut addr_family: Option<IpFamily> = None;
    let mut check_mix = |a: IpAddr| -> FirewallResult<()> {
        let f = IpFamily::of(a);
        match addr_family {
            Some(seen) if seen != f && kind == BackendKind::Nftables => {
                Err(FirewallError::invalid(format!("a rule cannot test both IPv4 and IPv6 addresses (rule: {rule})")))
            }
            _ => {
                addr_family = Some(f);
                Ok(())
            }
        }
    };
    // The protocol a port match or a NAT port needs, wherever it is in the rule.
    let protocol: Option<(Protocol, bool)> = rule.conditions.iter().find_map(|c| match c.test {
        Match::Protocol(p) => Some((p, c.negated)),
        _ => None,
    });
    let mut protocols = 0;
    let mut seen = [0u8; 8];
    for c in &rule.conditions {
        let rank = c.test.rank() as usize;
        seen[rank] += 1;
        if kind == BackendKind::Iptables && rank < 7 && seen[rank] > 1 {
            return fail(format!("iptables allows one {:?} condition per rule", c.test));
        }
        match &c.test {
            Match::Source(n) | Match::Destination(n) => {
                check_addr(n.addr())?;
                check_mix(n.addr())?;
            }
            Match::InInterface(i) | Match::OutInterface(i) => validate_ifname(i)?,
            Match::Protocol(_) => {
                protocols += 1;
                if protocols > 1 {
                    return fail("a rule can match one protocol".into());
                }
            }
            Match::SourcePort(ports) | Match::DestinationPort(ports) => {
                match protocol {
                    Some((p, false)) if p.has_ports() => {}
                    _ => {
                        return fail("a port match needs a (non-negated) TCP, UDP or SCTP protocol match".into());
                    }
                }
                let ranges = ports.ranges();
                if ranges.is_empty() {
                    return fail("an empty port list".into());
                }
                if ranges.iter().any(|r| r.first > r.last) {
                    return fail("a port range whose first port is above its last".into());
                }
                if kind == BackendKind::Iptables && matches!(ports, Ports::List(_)) {
                    let weight: usize = ranges.iter().map(|r| if r.is_single() { 1 } else { 2 }).sum();
                    if weight > 15 {
                        return fail("iptables multiport takes at most 15 ports (a range counts as two)".into());
                    }
                }
            }
            Match::ConnState(s) => {
                if s.is_empty() {
                    return fail("an empty connection-state set".into());
                }
            }
            Match::Raw(raw) => {
                if c.negated {
                    return fail("a raw condition cannot be negated (write the negation inside it)".into());
                }
                validate_raw(kind, raw)?;
            }
            Match::Mark { .. } | Match::SourceAddrType(_) | Match::DestinationAddrType(_) | Match::EtherSource(_) => {}
        }
    }
    let needs_port_protocol = |port: Option<PortRange>| -> FirewallResult<()> {
        match (port, protocol) {
            (Some(_), Some((p, false))) if p.has_ports() => Ok(()),
            (Some(_), _) => Err(FirewallError::invalid(format!(
                "NAT to a port needs a TCP, UDP or SCTP protocol match (rule: {rule})"
            ))),
            (None, _) => Ok(()),
        }
    };
    match &rule.verdict {
        Verdict::Jump(c) | Verdict::Goto(c) => validate_chain_name(kind, c)?,
        Verdict::Dnat { addr, port } | Verdict::Snat { addr, port } => {
            check_addr(*addr)?;
            check_mix(*addr)?;
            needs_port_protocol(*port)?;
            if let Some(p) = port
                && p.first > p.last
            {
                return fail("a port range whose first port is above its last".into());
            }
        }
        Verdict::Raw(raw) => validate_raw(kind, raw)?,
        Verdict::Accept
        | Verdict::Drop
        | Verdict::Return
        | Verdict::Masquerade
        | Verdict::SetMark { .. }
        | Verdict::Continue => {}
    }
    if kind == BackendKind::Iptables && table.name == "nat" && rule.verdict == Verdict::Drop {
        return fail("the iptables nat table is not meant for filtering; iptables refuses DROP there".into());
    }
    if kind == BackendKind::Iptables && table.family == TableFamily::Bridge {
        return fail("iptables has no bridge family".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::FirewallErrorKind;
    use ipnet::IpNet;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn validation_names_the_problem() {
        let t4 = TableId::new(TableFamily::Ip, "nat");
        let kind = BackendKind::Iptables;
        let bad = [
            Rule::new(Verdict::Accept).when(Match::Source(net("fd00::1/128"))),
            Rule::new(Verdict::Accept).when(Match::DestinationPort(80.into())),
            Rule::new(Verdict::Accept).when(Match::Protocol(Protocol::Icmp)).when(Match::DestinationPort(80.into())),
            Rule::new(Verdict::Accept).when(!Match::Protocol(Protocol::Tcp)).when(Match::DestinationPort(80.into())),
            Rule::new(Verdict::Dnat { addr: "10.0.0.1".parse().unwrap(), port: Some(80.into()) }),
            Rule::new(Verdict::Accept).when(Match::InInterface("eth+".into())),
            Rule::new(Verdict::Accept).when(Match::InInterface("a-very-long-interface".into())),
            Rule::new(Verdict::Accept).with_comment("x".repeat(256)),
            Rule::new(Verdict::Accept).with_comment("a\nb"),
            Rule::new(Verdict::Accept).when(Match::Raw(Raw::Nft("iifname lo".into()))),
            Rule::new(Verdict::Accept).when(!Match::Raw(Raw::Iptables(vec!["-m".into(), "x".into()]))),
            Rule::new(Verdict::Jump("-bad".into())),
            Rule::new(Verdict::Jump("ACCEPT".into())),
            Rule::new(Verdict::Accept).when(Match::Source(net("10.0.0.0/8"))).when(Match::Source(net("10.1.0.0/16"))),
            Rule::new(Verdict::Accept)
                .when(Match::Protocol(Protocol::Tcp))
                .when(Match::DestinationPort(Ports::List((1..=16).map(PortRange::single).collect()))),
        ];
        for rule in bad {
            let err = validate_rule(kind, &t4, &rule).expect_err(&rule.to_string());
            assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument, "{err}");
        }
        let nft = BackendKind::Nftables;
        let inet = TableId::new(TableFamily::Inet, "t");
        assert!(validate_rule(nft, &inet, &Rule::new(Verdict::Accept).with_comment("x".repeat(128))).is_ok());
        assert!(validate_rule(nft, &inet, &Rule::new(Verdict::Accept).with_comment("x".repeat(129))).is_err());
        assert!(validate_rule(nft, &inet, &Rule::new(Verdict::Accept).with_comment("a\"b")).is_err());
        assert!(validate_rule(kind, &t4, &Rule::new(Verdict::Accept).with_comment("a\"b\\'c")).is_ok());
        // Two sources are fine in nftables, but not of both families (nft: "conflicting protocols").
        let two =
            Rule::new(Verdict::Accept).when(Match::Source(net("10.0.0.0/8"))).when(Match::Source(net("10.1.0.0/16")));
        assert!(validate_rule(nft, &inet, &two).is_ok());
        let mixed =
            Rule::new(Verdict::Accept).when(Match::Source(net("10.0.0.0/8"))).when(Match::Destination(net("fd00::/8")));
        assert!(validate_rule(nft, &inet, &mixed).is_err());
        let v6 = Rule::new(Verdict::Accept).when(Match::Source(net("fd00::/8")));
        assert!(validate_rule(nft, &inet, &v6).is_ok());
        assert!(
            validate_rule(nft, &inet, &Rule::new(Verdict::Accept).when(Match::Raw(Raw::Nft("a; b".into())))).is_err()
        );
    }

    #[test]
    fn names_are_checked_per_backend() {
        assert!(validate_chain_name(BackendKind::Iptables, &"C".repeat(28)).is_ok());
        assert!(validate_chain_name(BackendKind::Iptables, &"C".repeat(29)).is_err());
        assert!(validate_chain_name(BackendKind::Iptables, "a b").is_err());
        assert!(validate_chain_name(BackendKind::Iptables, "").is_err());
        assert!(validate_chain_name(BackendKind::Nftables, "cni-br-iface-ctr1-eth0-mac").is_ok());
        assert!(validate_chain_name(BackendKind::Nftables, "1abc").is_err());
        assert!(validate_chain_name(BackendKind::Nftables, &"c".repeat(256)).is_err());
        for word in ["accept", "jump", "counter", "ip", "type"] {
            assert!(validate_chain_name(BackendKind::Nftables, word).is_err(), "{word}");
        }
        for word in ["output", "postrouting", "nat", "filter", "masq_checks", "x.y", "a/b"] {
            assert!(validate_chain_name(BackendKind::Nftables, word).is_ok(), "{word}");
        }
        assert!(validate_table(BackendKind::Nftables, &TableId::new(TableFamily::Inet, "table")).is_err());
        assert!(validate_table(BackendKind::Iptables, &TableId::new(TableFamily::Inet, "nat")).is_err());
        assert!(validate_table(BackendKind::Iptables, &TableId::new(TableFamily::Ip, "foo")).is_err());
        assert!(validate_table(BackendKind::Iptables, &TableId::new(TableFamily::Ip6, "mangle")).is_ok());
        assert!(
            validate_table(BackendKind::Nftables, &TableId::new(TableFamily::Inet, "cni_plugins_masquerade")).is_ok()
        );
    }
}
