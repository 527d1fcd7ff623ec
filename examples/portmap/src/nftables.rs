//! The nftables backend: Go's `cni_hostport` tables (`portmap_nftables.go`, v1.9 layout with
//! main's `masqAll`), one `nft` transaction per ADD, DEL or GC.
//!
//! ```text
//! table ip cni_hostport (comment "CNI portmap plugin")            (and ip6)
//!   chain hostports          tcp dport 8080 dnat to 10.0.0.5:80 comment "<container ID>"
//!                            ip daddr 10.0.0.1 tcp dport 8443 dnat to 10.0.0.5:443 comment "<container ID>"
//!   chain hostip_hostports   (legacy, kept empty)
//!   chain hostports_all      jump hostip_hostports; jump hostports
//!   chain prerouting         type nat hook prerouting priority -100: <conditions> fib daddr type local jump hostports_all
//!   chain output             type nat hook output priority -100: the same
//!   chain masquerading       type nat hook postrouting priority 100:
//!                            ip saddr 10.0.0.5 ip daddr 10.0.0.5 masquerade comment "<container ID>"
//!                            ip saddr 127.0.0.1 ip daddr 10.0.0.5 masquerade comment "<container ID>"
//! ```
//!
//! The rules carry only the container ID, so Go cannot tell two networks' rules for the same
//! container apart. Here a container's rules are found by their comment **and** their address
//! (the DNAT target or the masquerade destination), so a re-ADD replaces exactly the stale rules
//! of this attachment (Go adds duplicates) and nothing of the same container on another network
//! is touched; GC finds the attachments of a network from the records ADD keeps (see
//! [`cni_sdk::kit::AttachmentRecords`]).

use std::net::IpAddr;

use cni_sdk::firewall::names::{
    PORTMAP_NFT_HOSTIP_HOSTPORTS, PORTMAP_NFT_HOSTPORTS, PORTMAP_NFT_HOSTPORTS_ALL, PORTMAP_NFT_MASQUERADING,
    PORTMAP_NFT_OUTPUT, PORTMAP_NFT_PREROUTING, PORTMAP_NFT_TABLE, PORTMAP_NFT_TABLE_COMMENT,
};
use cni_sdk::firewall::{
    AddrType, BaseChain, Batch, Chain, ChainType, Firewall, FirewallErrorKind, Hook, IpFamily, Match, PRIORITY_DSTNAT,
    PRIORITY_SRCNAT, PortRange, Ports, Raw, Rule, Table, TableId, Verdict,
};
use cni_sdk::{Error, Result};
use ipnet::IpNet;

use crate::config::Loaded;

pub(crate) fn table(family: IpFamily) -> TableId {
    TableId::new(family.table_family(), PORTMAP_NFT_TABLE)
}

/// The chains that hold per-container rules (searched by DEL and GC).
const CONTAINER_CHAINS: [&str; 3] = [PORTMAP_NFT_HOSTPORTS, PORTMAP_NFT_HOSTIP_HOSTPORTS, PORTMAP_NFT_MASQUERADING];

/// True when `rule` is one of container `id`'s rules for one of `addrs`: its comment is the
/// container ID and it DNATs to, or masquerades traffic to, one of the addresses. With no
/// addresses, every rule with that comment (what Go deletes).
pub(crate) fn is_containers(rule: &Rule, id: &str, addrs: &[IpAddr]) -> bool {
    if !rule.has_comment(id) {
        return false;
    }
    if addrs.is_empty() {
        return true;
    }
    let target = match &rule.verdict {
        Verdict::Dnat { addr, .. } => Some(*addr),
        Verdict::Masquerade => rule.conditions.iter().find_map(|c| match &c.test {
            Match::Destination(n) if !c.negated => Some(n.addr()),
            _ => None,
        }),
        _ => None,
    };
    target.is_some_and(|t| addrs.contains(&t))
}

/// The rules of one container address: the DNAT rules for `hostports`, the masquerade rules.
pub(crate) fn container_rules(ld: &Loaded, container_id: &str, container: IpNet) -> (Vec<Rule>, Vec<Rule>) {
    let family = IpFamily::of(container.addr());
    let ip = container.addr();
    let mut dnat = Vec::new();
    for m in ld.mappings.iter().filter(|m| m.applies_to(family)) {
        let mut rule = Rule::new(Verdict::Dnat { addr: ip, port: Some(PortRange::single(m.container_port)) });
        if let Some(dst) = m.destination() {
            rule = rule.when(Match::Destination(IpNet::from(dst)));
        }
        rule = rule
            .when(Match::Protocol(m.protocol))
            .when(Match::DestinationPort(Ports::Single(PortRange::single(m.host_port))))
            .with_comment(container_id);
        dnat.push(rule);
    }
    let mut masq = Vec::new();
    if ld.snat {
        let any: IpNet = match family {
            IpFamily::V4 => "0.0.0.0/0".parse().expect("constant"),
            IpFamily::V6 => "::/0".parse().expect("constant"),
        };
        let source = if ld.masq_all { any } else { IpNet::from(ip) };
        masq.push(
            Rule::new(Verdict::Masquerade)
                .when(Match::Source(source))
                .when(Match::Destination(IpNet::from(ip)))
                .with_comment(container_id),
        );
        if family == IpFamily::V4 && !ld.masq_all {
            masq.push(
                Rule::new(Verdict::Masquerade)
                    .when(Match::Source("127.0.0.1/32".parse().expect("constant")))
                    .when(Match::Destination(IpNet::from(ip)))
                    .with_comment(container_id),
            );
        }
    }
    (dnat, masq)
}

fn nat_base(hook: Hook, priority: i32) -> BaseChain {
    BaseChain::new(ChainType::Nat, hook, priority)
}

/// ADD: the tables and chains of each family with a container address, the entry rules
/// rewritten (with this configuration's conditions, as Go), this attachment's stale rules
/// removed and its rules added, all in one transaction.
pub(crate) fn setup_batch(ld: &Loaded, container_id: &str) -> Batch {
    let mut batch = Batch::new();
    for container in ld.container_nets() {
        let family = IpFamily::of(container.addr());
        let t = table(family);
        batch
            .ensure_table(Table::new(family.table_family(), PORTMAP_NFT_TABLE).with_comment(PORTMAP_NFT_TABLE_COMMENT))
            .ensure_chain(&t, Chain::regular(PORTMAP_NFT_HOSTPORTS))
            .ensure_chain(&t, Chain::regular(PORTMAP_NFT_HOSTIP_HOSTPORTS))
            .ensure_chain(&t, Chain::regular(PORTMAP_NFT_HOSTPORTS_ALL))
            .flush_chain(&t.chain(PORTMAP_NFT_HOSTPORTS_ALL))
            .append(&t.chain(PORTMAP_NFT_HOSTPORTS_ALL), Rule::new(Verdict::Jump(PORTMAP_NFT_HOSTIP_HOSTPORTS.into())))
            .append(&t.chain(PORTMAP_NFT_HOSTPORTS_ALL), Rule::new(Verdict::Jump(PORTMAP_NFT_HOSTPORTS.into())));
        let conditions = ld.conditions(family);
        for (name, hook) in [(PORTMAP_NFT_PREROUTING, Hook::Prerouting), (PORTMAP_NFT_OUTPUT, Hook::Output)] {
            let mut entry = Rule::new(Verdict::Jump(PORTMAP_NFT_HOSTPORTS_ALL.into()));
            if !conditions.is_empty() {
                entry = entry.when(Match::Raw(Raw::Nft(conditions.join(" "))));
            }
            entry = entry.when(Match::DestinationAddrType(AddrType::Local));
            batch
                .ensure_chain(&t, Chain::base(name, nat_base(hook, PRIORITY_DSTNAT)))
                .flush_chain(&t.chain(name))
                .append(&t.chain(name), entry);
        }
        if ld.snat {
            batch.ensure_chain(&t, Chain::base(PORTMAP_NFT_MASQUERADING, nat_base(Hook::Postrouting, PRIORITY_SRCNAT)));
        }
        let id = container_id.to_owned();
        let addr = [container.addr()];
        for chain in CONTAINER_CHAINS {
            let id = id.clone();
            batch.delete_rules_where(&t.chain(chain), move |r| is_containers(r, &id, &addr));
        }
        let (dnat, masq) = container_rules(ld, container_id, container);
        for r in dnat {
            batch.append(&t.chain(PORTMAP_NFT_HOSTPORTS), r);
        }
        for r in masq {
            batch.append(&t.chain(PORTMAP_NFT_MASQUERADING), r);
        }
    }
    batch
}

/// Deletes container `id`'s rules for `addrs` (all its rules when empty) from both families.
pub(crate) fn teardown_batch(id: &str, addrs: &[IpAddr]) -> Batch {
    let mut batch = Batch::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let t = table(family);
        let mine: Vec<IpAddr> = addrs.iter().copied().filter(|a| IpFamily::of(*a) == family).collect();
        if !addrs.is_empty() && mine.is_empty() {
            continue;
        }
        for chain in CONTAINER_CHAINS {
            let (id, mine) = (id.to_owned(), mine.clone());
            batch.delete_rules_where(&t.chain(chain), move |r| is_containers(r, &id, &mine));
        }
    }
    batch
}

/// CHECK for one container address: every expected rule is in place (Go v1.9 only counts the
/// rules with the container's comment; this compares them).
pub(crate) async fn check(fw: &Firewall, ld: &Loaded, container_id: &str, container: IpNet) -> Result<()> {
    let t = table(IpFamily::of(container.addr()));
    let (dnat, masq) = container_rules(ld, container_id, container);
    for (chain, rules) in [(PORTMAP_NFT_HOSTPORTS, dnat), (PORTMAP_NFT_MASQUERADING, masq)] {
        if rules.is_empty() {
            continue;
        }
        let present = match fw.contains_rules(&t.chain(chain), &rules).await {
            Ok(p) => p,
            Err(e) if e.kind() == FirewallErrorKind::NotFound => vec![false],
            Err(e) => return Err(Error::from(e).wrap(format!("could not list rules in table {PORTMAP_NFT_TABLE}"))),
        };
        if present.iter().any(|p| !p) {
            return Err(Error::internal(format!("missing hostport rules in {chain:?} chain")));
        }
    }
    Ok(())
}
