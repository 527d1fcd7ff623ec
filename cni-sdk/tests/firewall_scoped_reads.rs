//! `Firewall::apply` reads what a batch touches, not whole tables: the reads the fake serves are
//! the ones a real backend would run (`iptables -S <chain>`, one netlink dump per chain).
//!
//! The root tests run the optimistic iptables path against the real tools inside a throwaway
//! namespace (`fw2-<pid>-<n>`):
//! `cargo test -p cni-sdk --features firewall,test-util --test firewall_scoped_reads -- --include-ignored`.
#![cfg(all(feature = "firewall", feature = "test-util"))]

use std::sync::atomic::{AtomicU32, Ordering};

use cni_sdk::firewall::fake::{FakeFirewall, FakeRead};
use cni_sdk::firewall::ipmasq::{IpMasq, IpMasqBackend};
use cni_sdk::firewall::{
    Batch, Chain, Firewall, FirewallErrorKind, IpFamily, IptablesBackend, IptablesVariant, Match, Rule, TableFamily,
    TableId, Verdict, names,
};
use cni_sdk::netns::TempNetns;
use ipnet::IpNet;

fn addrs() -> Vec<IpNet> {
    vec!["10.225.0.5/16".parse().unwrap()]
}

fn nat4() -> TableId {
    TableId::iptables(IpFamily::V4, "nat")
}

/// Loads `n` other pods' masquerading into both fakes, as Go's bridge would have.
async fn other_pods(masq: &IpMasq, n: usize) {
    for i in 0..n {
        let a: Vec<IpNet> = vec![format!("10.225.1.{}/16", i + 2).parse().unwrap()];
        masq.setup(IpMasqBackend::Iptables, "othernet", "eth0", &format!("pod{i}"), &a).await.unwrap();
        masq.setup(IpMasqBackend::Nftables, "othernet", "eth0", &format!("pod{i}"), &a).await.unwrap();
    }
}

#[tokio::test]
async fn an_iptables_masquerading_add_reads_nothing() {
    let (ipt, nft) = (FakeFirewall::iptables(), FakeFirewall::nftables());
    let masq = IpMasq::new(ipt.firewall(), nft.firewall()).unwrap();
    other_pods(&masq, 5).await;
    ipt.clear_reads();
    let commits = ipt.commits();
    masq.setup(IpMasqBackend::Iptables, "net", "eth0", "ctr1", &addrs()).await.unwrap();
    // The new chain is taken as missing and the jump to it cannot exist yet: no read at all.
    assert_eq!(ipt.reads(), []);
    assert_eq!(ipt.commits(), commits + 1);
    let chain = names::chain_name("net", "ctr1");
    assert_eq!(ipt.table(&nat4()).unwrap().chain(&chain).unwrap().rules.len(), 2);
    // Again: the optimistic commit fails (the chain exists) and the batch is planned from
    // reads of what it touches (chain, and POSTROUTING for the jump), finding nothing to do.
    ipt.clear_reads();
    masq.setup(IpMasqBackend::Iptables, "net", "eth0", "ctr1", &addrs()).await.unwrap();
    assert_eq!(ipt.commits(), commits + 1, "nothing new committed");
    let reads = ipt.reads();
    assert!(!reads.iter().any(|r| matches!(r, FakeRead::Table(_))), "no whole-table read: {reads:?}");
    let read: Vec<&String> = reads
        .iter()
        .flat_map(|r| match r {
            FakeRead::Chains(_, c) => c.iter(),
            FakeRead::Table(_) => unreachable!(),
        })
        .collect();
    assert!(read.iter().all(|c| **c == chain || *c == "POSTROUTING"), "{reads:?}");
    masq.check(IpMasqBackend::Iptables, "net", "eth0", "ctr1", &addrs()).await.unwrap();
}

#[tokio::test]
async fn an_nftables_masquerading_add_reads_only_its_chains() {
    let (ipt, nft) = (FakeFirewall::iptables(), FakeFirewall::nftables());
    let masq = IpMasq::new(ipt.firewall(), nft.firewall()).unwrap();
    other_pods(&masq, 5).await;
    nft.clear_reads();
    masq.setup(IpMasqBackend::Nftables, "net", "eth0", "ctr1", &addrs()).await.unwrap();
    let t = TableId::new(TableFamily::Inet, "cni_plugins_masquerade");
    let reads = nft.reads();
    assert!(!reads.iter().any(|r| matches!(r, FakeRead::Table(_))), "no whole-table read: {reads:?}");
    for r in &reads {
        let FakeRead::Chains(table, chains) = r else { unreachable!() };
        assert_eq!(table, &t);
        assert!(chains.iter().all(|c| c == "masq_checks" || c == "postrouting"), "{reads:?}");
    }
    masq.check(IpMasqBackend::Nftables, "net", "eth0", "ctr1", &addrs()).await.unwrap();
    assert_eq!(nft.table(&t).unwrap().chain("masq_checks").unwrap().rules.len(), 6);
}

#[tokio::test]
async fn a_batch_reads_the_chains_it_names_and_their_jump_targets() {
    let fake = FakeFirewall::nftables();
    let fw = fake.firewall();
    let t = TableId::new(TableFamily::Ip, "t");
    let mut setup = Batch::new();
    setup.ensure_table(cni_sdk::firewall::Table::new(TableFamily::Ip, "t"));
    for c in ["a", "b", "c", "d"] {
        setup.ensure_chain(&t, Chain::regular(c));
    }
    fw.apply(&setup).await.unwrap();
    fake.clear_reads();
    let mut b = Batch::new();
    b.append(&t.chain("a"), Rule::new(Verdict::Jump("b".into())).when(Match::Source("10.225.0.1/32".parse().unwrap())));
    fw.apply(&b).await.unwrap();
    let mut read: Vec<String> = fake
        .reads()
        .into_iter()
        .flat_map(|r| match r {
            FakeRead::Chains(_, c) => c,
            FakeRead::Table(t) => panic!("whole table {t} read"),
        })
        .collect();
    read.sort();
    assert_eq!(read, ["a", "b"]);
    // Listing one chain reads that chain.
    fake.clear_reads();
    fw.list_rules(&t.chain("c")).await.unwrap();
    assert_eq!(fake.reads(), [FakeRead::Chains(t.clone(), vec!["c".into()])]);
}

#[tokio::test]
async fn a_refusal_found_by_the_tool_keeps_the_planners_words() {
    // A jump loop through chains the batch does not read: the commit fails, the whole table is
    // read and planned, and the error is the planner's (naming the loop), as before scoping.
    let fake = FakeFirewall::nftables();
    let fw = fake.firewall();
    let t = TableId::new(TableFamily::Ip, "t");
    let mut setup = Batch::new();
    setup.ensure_table(cni_sdk::firewall::Table::new(TableFamily::Ip, "t")).ensure_chain(
        &t,
        Chain::base(
            "in",
            cni_sdk::firewall::BaseChain::new(cni_sdk::firewall::ChainType::Filter, cni_sdk::firewall::Hook::Input, 0),
        ),
    );
    for c in ["a", "b", "c"] {
        setup.ensure_chain(&t, Chain::regular(c));
    }
    setup
        .append(&t.chain("in"), Rule::new(Verdict::Jump("a".into())))
        .append(&t.chain("a"), Rule::new(Verdict::Jump("b".into())))
        .append(&t.chain("b"), Rule::new(Verdict::Jump("c".into())));
    fw.apply(&setup).await.unwrap();
    fake.clear_reads();
    let err = fw.append(&t.chain("c"), Rule::new(Verdict::Jump("a".into()))).await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("jump loop"), "{err}");
    assert!(fake.reads().contains(&FakeRead::Table(t.clone())), "{:?}", fake.reads());
    assert!(fake.table(&t).unwrap().chain("c").unwrap().rules.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Real iptables: the optimistic path

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn temp_ns() -> TempNetns {
    let name = format!("fw2-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    TempNetns::create(&name).expect("create test namespace (needs root)")
}

async fn ensuring_an_existing_chain_is_planned_again(variant: IptablesVariant) {
    let ns = temp_ns();
    let fw = Firewall::new(IptablesBackend::new().variant(variant).in_netns(ns.netns().unwrap()));
    let chain = nat4().chain("FW2-EXISTING");
    let rule = |i: u8| Rule::new(Verdict::Return).when(Match::Source(format!("10.225.0.{i}/32").parse().unwrap()));
    // Someone else's rule in the chain.
    let mut b = Batch::new();
    b.ensure_chain(&nat4(), Chain::regular("FW2-EXISTING")).append(&chain, rule(1));
    assert_eq!(fw.apply(&b).await.unwrap().len(), 2);
    // Ensure it again with a new rule and a jump to it: the optimistic -N fails, and the retry
    // keeps the chain and its rule, adds only what is missing.
    let mut b = Batch::new();
    b.ensure_chain(&nat4(), Chain::regular("FW2-EXISTING"))
        .append_if_absent(&chain, rule(1))
        .append_if_absent(&chain, rule(2))
        .append_if_absent(&nat4().chain("POSTROUTING"), Rule::new(Verdict::Jump("FW2-EXISTING".into())));
    assert_eq!(fw.apply(&b).await.unwrap().len(), 2);
    let rules: Vec<Rule> = fw.list_rules(&chain).await.unwrap().into_iter().map(|l| l.rule).collect();
    assert_eq!(rules, [rule(1), rule(2)]);
    assert!(fw.apply(&b).await.unwrap().is_empty(), "all there: nothing to do");
    // A batch whose chain is new commits without reading it, and works.
    let mut b = Batch::new();
    b.ensure_chain(&nat4(), Chain::regular("FW2-NEW")).append_if_absent(&nat4().chain("FW2-NEW"), rule(3));
    assert_eq!(fw.apply(&b).await.unwrap().len(), 2);
    assert!(fw.chain_exists(&nat4().chain("FW2-NEW")).await.unwrap());
}

#[tokio::test]
#[ignore = "needs root"]
async fn iptables_nft_ensuring_an_existing_chain_is_planned_again() {
    ensuring_an_existing_chain_is_planned_again(IptablesVariant::System).await
}

#[tokio::test]
#[ignore = "needs root"]
async fn iptables_legacy_ensuring_an_existing_chain_is_planned_again() {
    ensuring_an_existing_chain_is_planned_again(IptablesVariant::Legacy).await
}
