//! `macspoofchk`: Go's MAC spoof check (`pkg/link/spoofcheck.go`) on nftables, through
//! [`cni_sdk::firewall`], with Go's objects so that Go's bridge and this one remove each other's.
//!
//! In table `bridge nat`: the base chain `PREROUTING` (filter, hook prerouting, priority -300,
//! policy accept) jumps for frames from the host veth to `cni-br-iface-<cid>-<ifname>`, which
//! jumps to `…-mac`, which returns frames from the container's MAC and drops the rest. Every rule
//! is commented `macspoofchk-<cid>-<ifname>`. One transaction sets it up (Go needs two); the
//! per-port chains are flushed first, and the jump from `PREROUTING` is added only when absent
//! (Go adds it again on every ADD).

use cni_sdk::firewall::{
    BaseChain, Batch, Chain, ChainType, Firewall, FirewallResult, Hook, Match, PRIORITY_BRIDGE_DSTNAT, Policy, Rule,
    Table, TableFamily, TableId, Verdict, names,
};
use cni_sdk::types::MacAddr;

/// Go's table (`bridge nat`).
fn table() -> TableId {
    TableId::new(TableFamily::Bridge, "nat")
}

/// Go's base chain.
const PREROUTING: &str = "PREROUTING";

/// Installs the check for the port `host_veth` of container `container_id`'s `ifname`.
pub(crate) async fn setup(
    fw: &Firewall,
    host_veth: &str,
    mac: MacAddr,
    container_id: &str,
    ifname: &str,
) -> FirewallResult<()> {
    let t = table();
    let iface = names::macspoofchk_chain(container_id, ifname);
    let mac_chain = names::macspoofchk_mac_chain(container_id, ifname);
    let comment = names::macspoofchk_comment(container_id, ifname);
    let base = BaseChain::new(ChainType::Filter, Hook::Prerouting, PRIORITY_BRIDGE_DSTNAT).with_policy(Policy::Accept);
    let mut b = Batch::new();
    b.ensure_table(Table::new(TableFamily::Bridge, "nat"))
        .ensure_chain(&t, Chain::base(PREROUTING, base))
        .ensure_chain(&t, Chain::regular(&iface))
        .ensure_chain(&t, Chain::regular(&mac_chain))
        .flush_chain(&t.chain(&iface))
        .flush_chain(&t.chain(&mac_chain))
        .append_if_absent(
            &t.chain(PREROUTING),
            Rule::new(Verdict::Jump(iface.clone()))
                .when(Match::InInterface(host_veth.to_owned()))
                .with_comment(&comment),
        )
        .append(&t.chain(&iface), Rule::new(Verdict::Jump(mac_chain.clone())).with_comment(&comment))
        .append(&t.chain(&mac_chain), Rule::new(Verdict::Return).when(Match::EtherSource(mac)).with_comment(&comment))
        .append(&t.chain(&mac_chain), Rule::new(Verdict::Drop).with_comment(&comment));
    fw.apply(&b).await.map(drop)
}

/// Removes the check of container `container_id`'s `ifname`: the jump from `PREROUTING`
/// (found by its comment, as Go finds it) and both per-port chains. Missing objects count as
/// removed; the table and the base chain stay (Go).
pub(crate) async fn teardown(fw: &Firewall, container_id: &str, ifname: &str) -> FirewallResult<()> {
    let t = table();
    let iface = t.chain(names::macspoofchk_chain(container_id, ifname));
    let mac_chain = t.chain(names::macspoofchk_mac_chain(container_id, ifname));
    let mut b = Batch::new();
    b.delete_rules_with_comment(&t.chain(PREROUTING), names::macspoofchk_comment(container_id, ifname))
        .flush_chain(&iface)
        .delete_chain(&iface)
        .flush_chain(&mac_chain)
        .delete_chain(&mac_chain);
    fw.apply(&b).await.map(drop)
}

#[cfg(test)]
mod tests {
    use cni_sdk::firewall::fake::FakeFirewall;

    use super::*;

    #[tokio::test]
    async fn go_layout_idempotent_setup_and_teardown() {
        let fake = FakeFirewall::nftables();
        let fw = fake.firewall();
        let mac: MacAddr = "0a:58:0a:d2:07:05".parse().unwrap();
        for _ in 0..2 {
            setup(&fw, "veth1a2b3c4d", mac, "ctr1", "eth0").await.unwrap();
        }
        let t = fake.table(&table()).expect("bridge nat");
        let rules = |chain: &str| -> Vec<Rule> {
            t.chain(chain).unwrap_or_else(|| panic!("{chain}")).rules.iter().map(|r| r.rule.clone()).collect()
        };
        let c = "macspoofchk-ctr1-eth0";
        assert_eq!(
            rules(PREROUTING),
            [Rule::new(Verdict::Jump("cni-br-iface-ctr1-eth0".into()))
                .when(Match::InInterface("veth1a2b3c4d".into()))
                .with_comment(c)],
            "a second ADD does not add the jump twice"
        );
        assert_eq!(
            rules("cni-br-iface-ctr1-eth0"),
            [Rule::new(Verdict::Jump("cni-br-iface-ctr1-eth0-mac".into())).with_comment(c)]
        );
        assert_eq!(
            rules("cni-br-iface-ctr1-eth0-mac"),
            [
                Rule::new(Verdict::Return).when(Match::EtherSource(mac)).with_comment(c),
                Rule::new(Verdict::Drop).with_comment(c)
            ]
        );
        let base = t.chain(PREROUTING).unwrap().chain.base_chain().cloned().unwrap();
        assert_eq!(
            (base.chain_type, base.hook, base.priority, base.policy),
            (ChainType::Filter, Hook::Prerouting, -300, Policy::Accept)
        );
        // Another port's check next to it survives this one's teardown.
        setup(&fw, "veth99", mac, "ctr2", "eth0").await.unwrap();
        teardown(&fw, "ctr1", "eth0").await.unwrap();
        teardown(&fw, "ctr1", "eth0").await.unwrap();
        let t = fake.table(&table()).unwrap();
        let chains: Vec<&str> = t.chains.iter().map(|c| c.chain.name.as_str()).collect();
        assert_eq!(chains, [PREROUTING, "cni-br-iface-ctr2-eth0", "cni-br-iface-ctr2-eth0-mac"]);
        assert_eq!(t.chain(PREROUTING).unwrap().rules.len(), 1);
        // Nothing at all: teardown succeeds.
        teardown(&FakeFirewall::nftables().firewall(), "ctr1", "eth0").await.unwrap();
    }
}
