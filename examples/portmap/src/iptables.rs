//! The iptables backend: Go's chains, rules and comments (`portmap_iptables.go`, `chain.go`),
//! committed as one `iptables-restore` per IP family instead of Go's dozens of `iptables` runs.
//!
//! ```text
//! nat PREROUTING, OUTPUT:  -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! nat POSTROUTING (top):   -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
//! CNI-HOSTPORT-DNAT:       -p tcp -m comment --comment "dnat name: \"net\" id: \"ctr\"" -m multiport --dports 8080,8443 -j CNI-DN-…
//! CNI-DN-…:                -s <pod subnet> -p tcp --dport 8080 -j CNI-HOSTPORT-SETMARK   (hairpin)
//!                          -s 127.0.0.1 -p tcp --dport 8080 -j CNI-HOSTPORT-SETMARK       (localhost, IPv4)
//!                          -p tcp --dport 8080 -j DNAT --to-destination <pod>:80
//! CNI-HOSTPORT-SETMARK:    -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
//! CNI-HOSTPORT-MASQ:       -m mark --mark 0x2000/0x2000 -j MASQUERADE
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;

use cni_sdk::firewall::names::{
    PORTMAP_DNAT_CHAIN, PORTMAP_MASQ_CHAIN, PORTMAP_MASQ_COMMENT, PORTMAP_OLD_SNAT_CHAIN, PORTMAP_SETMARK_CHAIN,
    PORTMAP_SETMARK_COMMENT, parse_portmap_comment, portmap_comment, portmap_dnat_chain, portmap_snat_chain,
};
use cni_sdk::firewall::{
    AddrType, Batch, Chain, Firewall, FirewallError, FirewallErrorKind, IpFamily, Match, PortRange, Ports, Raw, Rule,
    TableId, Verdict,
};
use cni_sdk::{Error, Result};
use ipnet::IpNet;

use crate::config::{Loaded, Mapping};

/// multiport takes at most 15 ports per rule.
const MULTIPORT_MAX: usize = 15;

pub(crate) fn nat(family: IpFamily) -> TableId {
    TableId::iptables(family, "nat")
}

fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ipv4",
        IpFamily::V6 => "ipv6",
    }
}

/// A rule and Go's argument list for it (what Go's error messages print).
#[derive(Debug, Clone)]
pub(crate) struct GoRule {
    pub(crate) rule: Rule,
    pub(crate) go_args: Vec<String>,
}

/// Go's `%s` of a `[][]string`.
fn go_lists(rules: &[GoRule]) -> String {
    let inner: Vec<String> = rules.iter().map(|r| format!("[{}]", r.go_args.join(" "))).collect();
    format!("[{}]", inner.join(" "))
}

/// The per-container chain of one container address: its name, its entry rules (in
/// `CNI-HOSTPORT-DNAT`) and its body (Go `genDnatChain` + `fillDnatRules`).
#[derive(Debug, Clone)]
pub(crate) struct DnatChain {
    pub(crate) name: String,
    pub(crate) entry: Vec<GoRule>,
    pub(crate) body: Vec<GoRule>,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// Go `fmtIPPort`.
fn ip_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

pub(crate) fn dnat_chain(ld: &Loaded, network: &str, container_id: &str, container: IpNet) -> DnatChain {
    let family = IpFamily::of(container.addr());
    let name = portmap_dnat_chain(network, container_id);
    let comment = portmap_comment(network, container_id);
    let set_mark = ld.external_chain.clone().unwrap_or_else(|| PORTMAP_SETMARK_CHAIN.to_owned());

    // Entry rules: one per protocol (sorted by name, as Go sorts them) and 15 ports, listing
    // every mapping of the protocol, whatever its host IP (as Go does).
    let mut protocols: Vec<&str> = ld.mappings.iter().map(|m| m.protocol_name.as_str()).collect();
    protocols.sort_unstable();
    protocols.dedup();
    let conditions = ld.conditions(family);
    let mut entry = Vec::new();
    for proto_name in protocols {
        let of_proto: Vec<&Mapping> = ld.mappings.iter().filter(|m| m.protocol_name == proto_name).collect();
        let protocol = of_proto[0].protocol;
        for chunk in of_proto.chunks(MULTIPORT_MAX) {
            let ports: Vec<PortRange> = chunk.iter().map(|m| PortRange::single(m.host_port)).collect();
            let port_list: Vec<String> = chunk.iter().map(|m| m.host_port.to_string()).collect();
            let mut rule = Rule::new(Verdict::Jump(name.clone()))
                .when(Match::Protocol(protocol))
                .when(Match::DestinationPort(Ports::List(ports)))
                .with_comment(&comment);
            if !conditions.is_empty() {
                rule = rule.when(Match::Raw(Raw::Iptables(conditions.to_vec())));
            }
            let mut go_args = s(&["-m", "comment", "--comment", &comment, "-m", "multiport", "-p", proto_name]);
            go_args.extend(s(&["--destination-ports", &port_list.join(",")]));
            go_args.extend(conditions.iter().cloned());
            entry.push(GoRule { rule, go_args });
        }
    }

    // The body: per mapping of this family, hairpin and localhost marks, then the DNAT.
    let mut body = Vec::new();
    for m in ld.mappings.iter().filter(|m| m.applies_to(family)) {
        let mut base = Rule::new(Verdict::Continue)
            .when(Match::Protocol(m.protocol))
            .when(Match::DestinationPort(Ports::Single(PortRange::single(m.host_port))));
        let mut go_base = s(&["-p", &m.protocol_name, "--dport", &m.host_port.to_string()]);
        if let Some(dst) = m.destination() {
            base = base.when(Match::Destination(IpNet::from(dst)));
            go_base.extend(s(&["-d", &dst.to_string()]));
        }
        let with = |verdict: Verdict, extra: Option<IpNet>, go_tail: &[&str]| {
            let mut rule = base.clone();
            rule.verdict = verdict;
            if let Some(src) = extra {
                rule = rule.when(Match::Source(src));
            }
            let mut go_args = go_base.clone();
            go_args.extend(s(go_tail));
            GoRule { rule, go_args }
        };
        if ld.snat {
            let hairpin: IpNet = if ld.masq_all {
                match family {
                    IpFamily::V4 => "0.0.0.0/0".parse().expect("constant"),
                    IpFamily::V6 => "::/0".parse().expect("constant"),
                }
            } else {
                container
            };
            body.push(with(
                Verdict::Jump(set_mark.clone()),
                Some(hairpin),
                &["-s", &hairpin.to_string(), "-j", &set_mark],
            ));
            if family == IpFamily::V4 && !ld.masq_all {
                let lo: IpNet = "127.0.0.1/32".parse().expect("constant");
                body.push(with(Verdict::Jump(set_mark.clone()), Some(lo), &["-s", "127.0.0.1", "-j", &set_mark]));
            }
        }
        let to = ip_port(container.addr(), m.container_port);
        body.push(with(
            Verdict::Dnat { addr: container.addr(), port: Some(PortRange::single(m.container_port)) },
            None,
            &["-j", "DNAT", "--to-destination", &to],
        ));
    }
    DnatChain { name, entry, body }
}

/// The batch of ADD for the container addresses: the shared chains, then the per-container
/// chain, rewritten (Go only adds missing rules, so a changed mapping left the old one behind:
/// bug B33).
pub(crate) fn setup_batch(ld: &Loaded, network: &str, container_id: &str) -> Batch {
    let mut batch = Batch::new();
    for container in ld.container_nets() {
        let family = IpFamily::of(container.addr());
        let t = nat(family);
        if ld.snat && ld.external_chain.is_none() {
            let mark = ld.mark();
            batch
                .ensure_chain(&t, Chain::regular(PORTMAP_SETMARK_CHAIN))
                .append_if_absent(
                    &t.chain(PORTMAP_SETMARK_CHAIN),
                    Rule::new(Verdict::SetMark { value: mark, mask: mark }).with_comment(PORTMAP_SETMARK_COMMENT),
                )
                .ensure_chain(&t, Chain::regular(PORTMAP_MASQ_CHAIN))
                .append_if_absent(
                    &t.chain(PORTMAP_MASQ_CHAIN),
                    Rule::new(Verdict::Masquerade).when(Match::Mark { value: mark, mask: mark }),
                )
                .insert_if_absent(
                    &t.chain("POSTROUTING"),
                    Rule::new(Verdict::Jump(PORTMAP_MASQ_CHAIN.to_owned())).with_comment(PORTMAP_MASQ_COMMENT),
                );
        }
        batch.ensure_chain(&t, Chain::regular(PORTMAP_DNAT_CHAIN));
        for entry in ["PREROUTING", "OUTPUT"] {
            batch.append_if_absent(
                &t.chain(entry),
                Rule::new(Verdict::Jump(PORTMAP_DNAT_CHAIN.to_owned()))
                    .when(Match::DestinationAddrType(AddrType::Local)),
            );
        }
        let c = dnat_chain(ld, network, container_id, container);
        let target = c.name.clone();
        batch
            .ensure_chain(&t, Chain::regular(&c.name))
            .delete_rules_where(&t.chain(PORTMAP_DNAT_CHAIN), move |r| r.verdict.target_chain() == Some(&target))
            .flush_chain(&t.chain(&c.name));
        for r in c.body {
            batch.append(&t.chain(&c.name), r.rule);
        }
        for r in c.entry {
            batch.append_if_absent(&t.chain(PORTMAP_DNAT_CHAIN), r.rule);
        }
    }
    batch
}

/// Removes a per-container chain and the rules entering it from `top` in `family`.
fn remove_chain(batch: &mut Batch, family: IpFamily, top: &str, chain: &str) {
    let t = nat(family);
    let target = chain.to_owned();
    batch
        .delete_rules_where(&t.chain(top), move |r| r.verdict.target_chain() == Some(&target))
        .flush_chain(&t.chain(chain))
        .delete_chain(&t.chain(chain));
}

/// Go `unforwardPorts`: the container's DNAT chain (and the legacy SNAT chain) in every family
/// whose iptables works; both unusable is an error.
pub(crate) async fn teardown(fw: &Firewall, network: &str, container_id: &str) -> Result<()> {
    let dn = portmap_dnat_chain(network, container_id);
    let sn = portmap_snat_chain(network, container_id);
    teardown_chains(fw, &[(dn, sn)]).await
}

async fn teardown_chains(fw: &Firewall, chains: &[(String, String)]) -> Result<()> {
    let mut unusable: Vec<FirewallError> = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let mut batch = Batch::new();
        for (dn, sn) in chains {
            remove_chain(&mut batch, family, PORTMAP_DNAT_CHAIN, dn);
            remove_chain(&mut batch, family, PORTMAP_OLD_SNAT_CHAIN, sn);
        }
        match fw.apply(&batch).await {
            Ok(_) => {}
            Err(e) if e.kind() == FirewallErrorKind::Unavailable => {
                tracing::debug!(family = family_name(family), error = %e, "iptables not usable for this family");
                unusable.push(e);
            }
            Err(e) => return Err(Error::from(e).wrap(format!("could not teardown {} dnat", family_name(family)))),
        }
    }
    if unusable.len() == 2 {
        let (e4, e6) = (&unusable[0], &unusable[1]);
        return Err(Error::internal(format!(
            "neither iptables nor ip6tables is usable, (iptables) {e4}, (ip6tables) {e6}"
        )));
    }
    Ok(())
}

/// Go `checkPorts` for one container address, against its own family only (Go 1.1.1 checked
/// both families and failed every IPv4-only pod: bug B1).
pub(crate) async fn check(
    fw: &Firewall,
    ld: &Loaded,
    network: &str,
    container_id: &str,
    container: IpNet,
) -> Result<()> {
    let family = IpFamily::of(container.addr());
    let t = nat(family);
    let c = dnat_chain(ld, network, container_id, container);
    let fail = |msg: String| Error::internal(format!("could not check {} dnat: {msg}", family_name(family)));
    let body: Vec<Rule> = c.body.iter().map(|r| r.rule.clone()).collect();
    let present = match fw.contains_rules(&t.chain(&c.name), &body).await {
        Ok(p) => p,
        Err(e) if e.kind() == FirewallErrorKind::NotFound => {
            return Err(fail(format!("chain {} not found in iptables table nat", c.name)));
        }
        Err(e) if e.kind() == FirewallErrorKind::Unavailable => {
            let (e4, e6) = match family {
                IpFamily::V4 => (e.to_string(), "<nil>".to_owned()),
                IpFamily::V6 => ("<nil>".to_owned(), e.to_string()),
            };
            return Err(Error::internal(format!(
                "neither iptables nor ip6tables is usable, (iptables) {e4}, (ip6tables) {e6}"
            )));
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    if present.iter().any(|p| !p) {
        return Err(fail(format!("rule {} in chain {} not found in table nat", go_lists(&c.body), c.name)));
    }
    let entry: Vec<Rule> = c.entry.iter().map(|r| r.rule.clone()).collect();
    let present = match fw.contains_rules(&t.chain(PORTMAP_DNAT_CHAIN), &entry).await {
        Ok(p) => p,
        Err(e) if e.kind() == FirewallErrorKind::NotFound => vec![false; entry.len()],
        Err(e) => return Err(fail(e.to_string())),
    };
    if present.iter().any(|p| !p) {
        return Err(fail(format!("rule {} in chain {PORTMAP_DNAT_CHAIN} not found in table nat", go_lists(&c.entry))));
    }
    Ok(())
}

/// GC: the per-container chains of `network` whose container is not in `keep`, found from the
/// comments of the rules entering them (`dnat name: "<net>" id: "<id>"`, checked against the
/// chain's hashed name). Returns the containers whose chains were removed.
pub(crate) async fn gc(fw: &Firewall, network: &str, keep: &BTreeSet<&str>) -> Result<Vec<String>> {
    let mut stale: BTreeSet<String> = BTreeSet::new();
    let mut usable = false;
    for family in [IpFamily::V4, IpFamily::V6] {
        let state = match fw.read_table(&nat(family)).await {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) if e.kind() == FirewallErrorKind::Unavailable => continue,
            Err(e) => return Err(Error::from(e).wrap("could not list the iptables nat table")),
        };
        usable = true;
        let Some(top) = state.chain(PORTMAP_DNAT_CHAIN) else { continue };
        for r in &top.rules {
            let (Some(target), Some(comment)) = (r.rule.verdict.target_chain(), r.rule.comment.as_deref()) else {
                continue;
            };
            let Some((net, id)) = parse_portmap_comment(comment) else { continue };
            if net == network && portmap_dnat_chain(&net, &id) == target && !keep.contains(id.as_str()) {
                stale.insert(id);
            }
        }
    }
    if !usable {
        return Ok(Vec::new());
    }
    let chains: Vec<(String, String)> =
        stale.iter().map(|id| (portmap_dnat_chain(network, id), portmap_snat_chain(network, id))).collect();
    if !chains.is_empty() {
        teardown_chains(fw, &chains).await?;
    }
    Ok(stale.into_iter().collect())
}
