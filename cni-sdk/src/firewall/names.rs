//! Go's names and comments for firewall objects (`pkg/utils`, portmap, bridge), so that Go's plugins and this SDK
//! find and delete each other's chains and rules.
//!
//! `hex(x)` below is the lowercase hex SHA-512 of the bytes of `x`.
//!
//! ```
//! use cni_sdk::firewall::names;
//! assert_eq!(names::chain_name("test", "1234"), "CNI-2bbe0c48b91a7d1b8a6753a8");
//! assert_eq!(names::portmap_dnat_chain("pmnet", "ctr-pm"), "CNI-DN-7adb6a9566e33a23756fa");
//! assert_eq!(names::format_comment("mynet", "ctr1"), r#"name: "mynet" id: "ctr1""#);
//! ```

use sha2::{Digest, Sha512};

use super::error::{FirewallError, FirewallResult};

/// The length of Go's iptables chain names (`maxChainLength`).
pub const MAX_CHAIN_LENGTH: usize = 28;
/// The prefix of Go's iptables chain names.
pub const CHAIN_PREFIX: &str = "CNI-";
/// The longest nft comment knftables writes (`knftables.CommentLengthMax`).
pub const NFT_COMMENT_MAX: usize = 128;
/// The longest iptables comment Go's portmap writes before truncating (`trimComment`).
pub const PORTMAP_COMMENT_MAX: usize = 255;

/// Go portmap's (iptables) top-level DNAT chain, entered from `PREROUTING` and `OUTPUT`.
pub const PORTMAP_DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
/// Go portmap's chain that marks packets to masquerade.
pub const PORTMAP_SETMARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
/// Go portmap's chain that masquerades marked packets, entered from `POSTROUTING`.
pub const PORTMAP_MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";
/// Go portmap's legacy top-level SNAT chain (only torn down).
pub const PORTMAP_OLD_SNAT_CHAIN: &str = "CNI-HOSTPORT-SNAT";
/// The comment of the rule in [`PORTMAP_SETMARK_CHAIN`].
pub const PORTMAP_SETMARK_COMMENT: &str = "CNI portfwd masquerade mark";
/// The comment of the `POSTROUTING` jump to [`PORTMAP_MASQ_CHAIN`].
pub const PORTMAP_MASQ_COMMENT: &str = "CNI portfwd requiring masquerade";
/// Go portmap's nftables table (families `ip` and `ip6`).
pub const PORTMAP_NFT_TABLE: &str = "cni_hostport";
/// The comment of [`PORTMAP_NFT_TABLE`].
pub const PORTMAP_NFT_TABLE_COMMENT: &str = "CNI portmap plugin";
/// The nftables chain holding one DNAT rule per mapping (comment: the container ID).
pub const PORTMAP_NFT_HOSTPORTS: &str = "hostports";
/// The legacy nftables chain of mappings with a host IP (kept empty, still cleaned up).
pub const PORTMAP_NFT_HOSTIP_HOSTPORTS: &str = "hostip_hostports";
/// The nftables chain jumping to both mapping chains.
pub const PORTMAP_NFT_HOSTPORTS_ALL: &str = "hostports_all";
/// The nftables nat chain on the prerouting hook.
pub const PORTMAP_NFT_PREROUTING: &str = "prerouting";
/// The nftables nat chain on the output hook.
pub const PORTMAP_NFT_OUTPUT: &str = "output";
/// The nftables nat chain on the postrouting hook holding the hairpin masquerade rules.
pub const PORTMAP_NFT_MASQUERADING: &str = "masquerading";

/// Go firewall plugin's chain of per-container rules, entered from `FORWARD`.
pub const FIREWALL_FORWARD_CHAIN: &str = "CNI-FORWARD";
/// Go firewall plugin's default administrator chain, entered first from [`FIREWALL_FORWARD_CHAIN`].
pub const FIREWALL_ADMIN_CHAIN: &str = "CNI-ADMIN";
/// The comment of the `FORWARD` jump to [`FIREWALL_FORWARD_CHAIN`].
pub const FIREWALL_FORWARD_COMMENT: &str = "CNI firewall plugin rules";
/// The comment of the jump to the administrator chain.
pub const FIREWALL_ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
/// The first chain of the firewall plugin's bridge isolation (`ingressPolicy`).
pub const FIREWALL_ISOLATION_STAGE_1: &str = "CNI-ISOLATION-STAGE-1";
/// The second chain of the firewall plugin's bridge isolation.
pub const FIREWALL_ISOLATION_STAGE_2: &str = "CNI-ISOLATION-STAGE-2";

/// The comment of Go firewall plugin's isolation rules for `policy` (`same-bridge`,
/// `isolated`, or v1.7+'s `same-bridge|isolated` for the rules both share).
pub fn firewall_isolation_comment(policy: &str) -> String {
    format!("CNI firewall plugin rules (ingressPolicy: {policy})")
}

/// The lowercase hex SHA-512 of `s`.
fn hex_sha512(s: &str) -> String {
    Sha512::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `prefix` followed by `hex(to_hash)`, cut to `length` characters (Go
/// `utils.MustFormatHashWithPrefix`, which panics where this returns an error: a prefix as long
/// as `length`, or `length` above 128).
pub fn hash_with_prefix(length: usize, prefix: &str, to_hash: &str) -> FirewallResult<String> {
    if prefix.len() >= length || length > 128 {
        return Err(FirewallError::invalid(format!(
            "cannot make a {length}-character hashed name with prefix {prefix:?}"
        )));
    }
    let mut s = format!("{prefix}{}", hex_sha512(to_hash));
    s.truncate(length);
    Ok(s)
}

/// `CNI-` + `hex(network + container_id)`, 28 characters (Go `utils.FormatChainName`): the
/// iptables ipMasq chain of bridge and ptp.
pub fn chain_name(network: &str, container_id: &str) -> String {
    // Cannot fail: the prefix is shorter than the length.
    let mut s = format!("{CHAIN_PREFIX}{}", hex_sha512(&format!("{network}{container_id}")));
    s.truncate(MAX_CHAIN_LENGTH);
    s
}

/// `CNI-` + `prefix` + `hex(network + container_id)`, 28 characters (Go
/// `utils.MustFormatChainNameWithPrefix`). An error when the prefix leaves no room.
pub fn chain_name_with_prefix(network: &str, container_id: &str, prefix: &str) -> FirewallResult<String> {
    hash_with_prefix(MAX_CHAIN_LENGTH, &format!("{CHAIN_PREFIX}{prefix}"), &format!("{network}{container_id}"))
}

/// portmap's per-container DNAT chain: `CNI-DN-` + 21 hex characters.
pub fn portmap_dnat_chain(network: &str, container_id: &str) -> String {
    let mut s = format!("{CHAIN_PREFIX}DN-{}", hex_sha512(&format!("{network}{container_id}")));
    s.truncate(MAX_CHAIN_LENGTH);
    s
}

/// portmap's legacy per-container SNAT chain (only torn down): `CNI-SN-` + 21 hex characters.
pub fn portmap_snat_chain(network: &str, container_id: &str) -> String {
    let mut s = format!("{CHAIN_PREFIX}SN-{}", hex_sha512(&format!("{network}{container_id}")));
    s.truncate(MAX_CHAIN_LENGTH);
    s
}

/// `name: "<network>" id: "<container_id>"` with Go's `%q` quoting (Go `utils.FormatComment`):
/// the comment of the iptables ipMasq rules.
pub fn format_comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Parses a [`format_comment`] comment back into (network, container ID).
pub fn parse_comment(comment: &str) -> Option<(String, String)> {
    let rest = comment.strip_prefix("name: ")?;
    let (network, rest) = go_unquote_prefix(rest)?;
    let rest = rest.strip_prefix(" id: ")?;
    let (id, rest) = go_unquote_prefix(rest)?;
    rest.is_empty().then_some((network, id))
}

/// `dnat name: "<network>" id: "<container_id>"` (no escaping), cut to 253 bytes + `...` when
/// longer than 255 (Go portmap's `trimComment`). Go cuts bytes; this cuts at the last character
/// boundary at or before byte 253, which differs only for non-ASCII names.
pub fn portmap_comment(network: &str, container_id: &str) -> String {
    let s = format!("dnat name: \"{network}\" id: \"{container_id}\"");
    if s.len() <= PORTMAP_COMMENT_MAX {
        return s;
    }
    format!("{}...", truncate_bytes(&s, PORTMAP_COMMENT_MAX - 2))
}

/// Parses a [`portmap_comment`] back into (network, container ID); `None` for anything else,
/// including a comment cut to 255 bytes.
pub fn parse_portmap_comment(comment: &str) -> Option<(String, String)> {
    let rest = comment.strip_prefix("dnat name: \"")?.strip_suffix('"')?;
    let (network, id) = rest.split_once("\" id: \"")?;
    Some((network.to_owned(), id.to_owned()))
}

/// The nft ipMasq hash of a network: `hex(network)`, 16 characters.
pub fn nft_ipmasq_network_hash(network: &str) -> String {
    let mut s = hex_sha512(network);
    s.truncate(16);
    s
}

/// The nft ipMasq hash of one attachment: `<network hash>-<hex(ifname + ":" + container_id)[:16]>`.
pub fn nft_ipmasq_instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    let mut second = hex_sha512(&format!("{ifname}:{container_id}"));
    second.truncate(16);
    format!("{}-{second}", nft_ipmasq_network_hash(network))
}

/// The comment of an nft ipMasq rule: `<instance hash>, net: <network>, if: <ifname>, id: <id>`,
/// with `"` removed, cut to 128 bytes (Go `commentForInstance`; cut at a character boundary).
pub fn nft_ipmasq_comment(network: &str, ifname: &str, container_id: &str) -> String {
    let s = format!(
        "{}, net: {}, if: {}, id: {}",
        nft_ipmasq_instance_hash(network, ifname, container_id),
        network.replace('"', ""),
        ifname.replace('"', ""),
        container_id.replace('"', "")
    );
    truncate_bytes(&s, NFT_COMMENT_MAX).to_owned()
}

/// Go's bridge macspoofchk chain for a port: `cni-br-iface-<container_id>-<ifname>`.
pub fn macspoofchk_chain(container_id: &str, ifname: &str) -> String {
    format!("cni-br-iface-{container_id}-{ifname}")
}

/// Go's bridge macspoofchk MAC chain: `cni-br-iface-<container_id>-<ifname>-mac`.
pub fn macspoofchk_mac_chain(container_id: &str, ifname: &str) -> String {
    format!("cni-br-iface-{container_id}-{ifname}-mac")
}

/// The comment of Go's macspoofchk rules: `macspoofchk-<container_id>-<ifname>`.
pub fn macspoofchk_comment(container_id: &str, ifname: &str) -> String {
    format!("macspoofchk-{container_id}-{ifname}")
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Go's `%q` / `strconv.Quote`.
///
/// Exact for ASCII (the alphabet CNI allows in network names and container IDs): `"` and `\`
/// escaped, `\a \b \f \n \r \t \v`, other control bytes as `\xNN`. Beyond ASCII, Go keeps the
/// characters Unicode calls printable and escapes the rest as `\uNNNN`/`\UNNNNNNNN`; this keeps
/// every character except controls, non-ASCII spaces, format characters, private-use characters
/// and non-characters, which covers Go's rule except for unassigned code points.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn go_printable(c: char) -> bool {
    let u = c as u32;
    if c.is_ascii() {
        return (0x20..0x7f).contains(&u);
    }
    let format_chars = matches!(u, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb);
    let private = matches!(u, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd);
    let nonchar = matches!(u, 0xfdd0..=0xfdef) || (u & 0xfffe) == 0xfffe;
    !c.is_control() && !c.is_whitespace() && !format_chars && !private && !nonchar
}

/// Reads one Go-quoted string at the start of `s`; returns it and the rest.
fn go_unquote_prefix(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                let mut hex = |n: usize| -> Option<char> {
                    let mut v = 0u32;
                    for _ in 0..n {
                        v = v * 16 + chars.next()?.1.to_digit(16)?;
                    }
                    char::from_u32(v)
                };
                out.push(match e {
                    '"' => '"',
                    '\\' => '\\',
                    '\'' => '\'',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    'x' => hex(2)?,
                    'u' => hex(4)?,
                    'U' => hex(8)?,
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_chain_names_match_the_verified_examples() {
        // pkg/utils/utils_test.go
        assert_eq!(chain_name("test", "1234"), "CNI-2bbe0c48b91a7d1b8a6753a8");
        assert_eq!(chain_name("testalongnamethatdoesnotmakesense", "1234"), "CNI-374f33fe84ab0ed84dcdebe3");
        assert_ne!(
            chain_name("testalongnamethatdoesnotmakesense", "1235"),
            chain_name("testalongnamethatdoesnotmakesense", "1234")
        );
        assert_eq!(chain_name_with_prefix("test", "1234", "PREFIX-").unwrap(), "CNI-PREFIX-2bbe0c48b91a7d1b8");
        assert_eq!(
            chain_name_with_prefix("testalongnamethatdoesnotmakesense", "1234", "PREFIX-").unwrap(),
            "CNI-PREFIX-374f33fe84ab0ed84"
        );
        assert!(chain_name_with_prefix("test", "1234", &"P".repeat(24)).is_err());
        assert_eq!(chain_name("test", "1234").len(), MAX_CHAIN_LENGTH);
        // Verified with the Debian v1.1.1 binaries (notes §1.5).
        assert_eq!(portmap_dnat_chain("pmnet", "ctr-pm"), "CNI-DN-7adb6a9566e33a23756fa");
        assert_eq!(portmap_snat_chain("pmnet", "ctr-pm"), "CNI-SN-7adb6a9566e33a23756fa");
        assert_eq!(hash_with_prefix(15, "bwp", "bwnetctr-bw").unwrap(), "bwp371e0cbb36b3");
        assert!(hash_with_prefix(10, "AAA", "some string").unwrap().starts_with("AAA"));
        assert_eq!(hash_with_prefix(15, "AAA", "some string").unwrap().len(), 15);
        assert!(hash_with_prefix(129, "", "x").is_err());
    }

    #[test]
    fn comments_are_formatted_like_go() {
        assert_eq!(format_comment("mynet", "ctr1"), "name: \"mynet\" id: \"ctr1\"");
        assert_eq!(format_comment("a\"b\\c", "x\ny\u{1}\u{7f}"), r#"name: "a\"b\\c" id: "x\ny\x01\x7f""#);
        assert_eq!(go_quote("é\u{a0}\u{200b}😀\u{e000}"), "\"é\\u00a0\\u200b😀\\ue000\"");
        assert_eq!(go_quote("\u{10ffff}"), "\"\\U0010ffff\"");
        assert_eq!(portmap_comment("pmnet", "ctr-pm"), "dnat name: \"pmnet\" id: \"ctr-pm\"");
        let long = portmap_comment("n", &"x".repeat(300));
        assert_eq!(long.len(), 256);
        assert!(long.ends_with("x..."));
        assert_eq!(&long[..253], &format!("dnat name: \"n\" id: \"{}", "x".repeat(300))[..253]);
        // Exactly 255 bytes stays whole.
        let id = "x".repeat(255 - "dnat name: \"n\" id: \"\"".len());
        assert_eq!(portmap_comment("n", &id).len(), 255);
        assert!(!portmap_comment("n", &id).ends_with("..."));
    }

    #[test]
    fn comments_parse_back() {
        for (net, id) in [("mynet", "ctr1"), ("a\"b\\c", "x\ny\u{1}\u{7f}"), ("é\u{a0}", "😀\u{10ffff}")] {
            assert_eq!(parse_comment(&format_comment(net, id)), Some((net.to_owned(), id.to_owned())));
        }
        assert_eq!(parse_comment("name: \"a\" id: \"b\" trailing"), None);
        assert_eq!(parse_comment("dnat name: \"a\" id: \"b\""), None);
        assert_eq!(parse_comment("name: \"a id: \"b\""), None);
    }

    #[test]
    fn portmap_comments_parse_back() {
        assert_eq!(parse_portmap_comment(&portmap_comment("pmnet", "ctr-pm")), Some(("pmnet".into(), "ctr-pm".into())));
        assert_eq!(parse_portmap_comment(&portmap_comment("n", &"x".repeat(300))), None);
        assert_eq!(parse_portmap_comment("name: \"a\" id: \"b\""), None);
        assert_eq!(parse_portmap_comment("dnat name: \"a\" id: \"b"), None);
        assert_eq!(firewall_isolation_comment("same-bridge"), "CNI firewall plugin rules (ingressPolicy: same-bridge)");
    }

    #[test]
    fn nft_ipmasq_comment_format() {
        let c = nft_ipmasq_comment("mynet", "eth0", "ctr1");
        let hash = nft_ipmasq_instance_hash("mynet", "eth0", "ctr1");
        assert_eq!(c, format!("{hash}, net: mynet, if: eth0, id: ctr1"));
        assert_eq!(hash.len(), 33);
        assert!(hash.starts_with(&nft_ipmasq_network_hash("mynet")));
        assert_eq!(&hash[..16], &hex_sha512("mynet")[..16]);
        assert_eq!(&hash[17..], &hex_sha512("eth0:ctr1")[..16]);
        // Quotes removed, cut to 128 bytes.
        let c = nft_ipmasq_comment("my\"net", "eth0", &"i".repeat(200));
        assert_eq!(c.len(), NFT_COMMENT_MAX);
        assert!(!c.contains('"'));
        assert!(c.contains("net: mynet,"));
        // A cut never splits a character.
        let c = nft_ipmasq_comment("n", "eth0", &"é".repeat(100));
        assert!(c.len() <= NFT_COMMENT_MAX && c.len() >= NFT_COMMENT_MAX - 1);
    }

    #[test]
    fn macspoofchk_names() {
        assert_eq!(macspoofchk_chain("c1", "eth0"), "cni-br-iface-c1-eth0");
        assert_eq!(macspoofchk_mac_chain("c1", "eth0"), "cni-br-iface-c1-eth0-mac");
        assert_eq!(macspoofchk_comment("c1", "eth0"), "macspoofchk-c1-eth0");
    }
}
