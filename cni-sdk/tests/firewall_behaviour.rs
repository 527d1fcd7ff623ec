//! One behaviour suite for `cni_sdk::firewall`, run against every backend.
//!
//! Every scenario is an `async fn(Env)`, written once. The `fake_*` modules run them against
//! `FakeFirewall` (no privileges); the others run them against the real tools inside a throwaway
//! network namespace (`fwt-<pid>-<n>`), need root and are ignored by default:
//! `cargo test -p cni-sdk --features firewall,test-util --test firewall_behaviour -- --include-ignored`.
//! Nothing touches the host's rules: the tools run inside the namespace, which is removed (with
//! every table in it) when the test ends, even on failure.
//!
//! Backends: iptables (the system's, nf_tables on Debian 12) and iptables-legacy, each for IPv4
//! and IPv6; nftables (through `nft`, and over netlink) with `ip`, `ip6` and `inet` tables. For nftables the environment creates
//! tables shaped like iptables' `nat` and `filter` (base chains `PREROUTING`, `POSTROUTING`, ...
//! at iptables' hooks and priorities), so the scenarios name the same chains everywhere.
#![cfg(all(feature = "firewall", feature = "test-util"))]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use cni_sdk::firewall::fake::FakeFirewall;
use cni_sdk::firewall::{
    AddrType, BackendKind, BaseChain, Batch, Chain, ChainType, Change, ConnState, Firewall, FirewallBackend,
    FirewallErrorKind, FirewallResult, Hook, IpFamily, IptablesBackend, IptablesVariant, Match, NftNetlinkBackend,
    NftablesBackend, Policy, PortRange, Ports, Protocol, Raw, Rule, RuleHandle, Table, TableFamily, TableId, Verdict,
};
use cni_sdk::netns::TempNetns;
use ipnet::IpNet;

/// A firewall to test and the tables the scenarios use.
struct Env {
    fw: Firewall,
    kind: BackendKind,
    family: IpFamily,
    /// Shaped like iptables' nat table.
    nat: TableId,
    /// Shaped like iptables' filter table.
    filter: TableId,
    fake: Option<FakeFirewall>,
    /// The backend under `fw`, to commit changes without the planner.
    direct: Direct,
    real: bool,
    // Dropped last: removes the namespace and everything in it.
    _ns: Option<TempNetns>,
}

/// A backend used directly: the tool's (or the fake's) own checks, without the planner's.
enum Direct {
    Fake(FakeFirewall),
    Iptables(IptablesBackend),
    Nftables(NftablesBackend),
    Netlink(NftNetlinkBackend),
}

impl Direct {
    async fn commit(&self, changes: &[Change]) -> FirewallResult<()> {
        match self {
            Self::Fake(b) => b.commit(changes).await,
            Self::Iptables(b) => b.commit(changes).await,
            Self::Nftables(b) => b.commit(changes).await,
            Self::Netlink(b) => b.commit(changes).await,
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn temp_ns() -> TempNetns {
    let name = format!("fwt-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    TempNetns::create(&name).expect("create test namespace (needs root)")
}

impl Env {
    fn fake_iptables(family: IpFamily) -> Self {
        let fake = FakeFirewall::iptables();
        Self {
            fw: fake.firewall(),
            kind: BackendKind::Iptables,
            family,
            nat: TableId::iptables(family, "nat"),
            filter: TableId::iptables(family, "filter"),
            direct: Direct::Fake(fake.clone()),
            fake: Some(fake),
            real: false,
            _ns: None,
        }
    }

    fn iptables(variant: IptablesVariant, family: IpFamily) -> Self {
        let ns = temp_ns();
        let backend = IptablesBackend::new().variant(variant).in_netns(ns.netns().unwrap());
        Self {
            fw: Firewall::new(backend.clone()),
            direct: Direct::Iptables(backend),
            kind: BackendKind::Iptables,
            family,
            nat: TableId::iptables(family, "nat"),
            filter: TableId::iptables(family, "filter"),
            fake: None,
            real: true,
            _ns: Some(ns),
        }
    }

    async fn nft_tables(fw: &Firewall, family: TableFamily) -> (TableId, TableId) {
        let nat = TableId::new(family, "fwt_nat");
        let filter = TableId::new(family, "fwt_filter");
        let base = |ty, hook, prio| Chain::base(format!("{hook:?}").to_uppercase(), BaseChain::new(ty, hook, prio));
        let mut b = Batch::new();
        b.ensure_table(Table::new(family, "fwt_nat"))
            .ensure_chain(&nat, base(ChainType::Nat, Hook::Prerouting, -100))
            .ensure_chain(&nat, base(ChainType::Nat, Hook::Input, 100))
            .ensure_chain(&nat, base(ChainType::Nat, Hook::Output, -100))
            .ensure_chain(&nat, base(ChainType::Nat, Hook::Postrouting, 100))
            .ensure_table(Table::new(family, "fwt_filter"))
            .ensure_chain(&filter, base(ChainType::Filter, Hook::Input, 0))
            .ensure_chain(&filter, base(ChainType::Filter, Hook::Forward, 0))
            .ensure_chain(&filter, base(ChainType::Filter, Hook::Output, 0));
        fw.apply(&b).await.expect("create the nftables test tables");
        (nat, filter)
    }

    async fn fake_nft(family: TableFamily) -> Self {
        let fake = FakeFirewall::nftables();
        let fw = fake.firewall();
        let (nat, filter) = Self::nft_tables(&fw, family).await;
        let ip = family.ip_family().unwrap_or(IpFamily::V4);
        let direct = Direct::Fake(fake.clone());
        Self {
            fw,
            kind: BackendKind::Nftables,
            family: ip,
            nat,
            filter,
            fake: Some(fake),
            direct,
            real: false,
            _ns: None,
        }
    }

    async fn nft(family: TableFamily) -> Self {
        let ns = temp_ns();
        let backend = NftablesBackend::new().in_netns(ns.netns().unwrap());
        let fw = Firewall::new(backend.clone());
        let (nat, filter) = Self::nft_tables(&fw, family).await;
        let ip = family.ip_family().unwrap_or(IpFamily::V4);
        let direct = Direct::Nftables(backend);
        Self { fw, kind: BackendKind::Nftables, family: ip, nat, filter, fake: None, direct, real: true, _ns: Some(ns) }
    }

    async fn nft_netlink(family: TableFamily) -> Self {
        let ns = temp_ns();
        let backend = NftNetlinkBackend::new().in_netns(ns.netns().unwrap());
        let fw = Firewall::new(backend.clone());
        let (nat, filter) = Self::nft_tables(&fw, family).await;
        let ip = family.ip_family().unwrap_or(IpFamily::V4);
        let direct = Direct::Netlink(backend);
        Self { fw, kind: BackendKind::Nftables, family: ip, nat, filter, fake: None, direct, real: true, _ns: Some(ns) }
    }

    fn ipt(&self) -> bool {
        self.kind == BackendKind::Iptables
    }

    /// A network of the test ranges (10.210.0.0/16, fd00:210::/32).
    fn net(&self, i: u8) -> IpNet {
        match self.family {
            IpFamily::V4 => format!("10.210.{i}.0/24").parse().unwrap(),
            IpFamily::V6 => format!("fd00:210:{i}::/64").parse().unwrap(),
        }
    }

    /// A host address in [`Env::net`] `i`.
    fn addr(&self, i: u8) -> IpAddr {
        match self.family {
            IpFamily::V4 => format!("10.210.{i}.5").parse().unwrap(),
            IpFamily::V6 => format!("fd00:210:{i}::5").parse().unwrap(),
        }
    }

    fn host(&self, i: u8) -> IpNet {
        IpNet::from(self.addr(i))
    }

    fn multicast(&self) -> IpNet {
        match self.family {
            IpFamily::V4 => "224.0.0.0/4".parse().unwrap(),
            IpFamily::V6 => "ff00::/8".parse().unwrap(),
        }
    }

    async fn rules(&self, table: &TableId, chain: &str) -> Vec<Rule> {
        self.fw.list_rules(&table.chain(chain)).await.unwrap().into_iter().map(|l| l.rule).collect()
    }

    async fn chain_names(&self, table: &TableId) -> Vec<String> {
        let mut v: Vec<String> = self.fw.list_chains(table).await.unwrap().into_iter().map(|c| c.name).collect();
        v.sort();
        v
    }
}

fn kind_of<T: std::fmt::Debug>(r: FirewallResult<T>) -> FirewallErrorKind {
    r.expect_err("expected an error").kind()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn chains_are_ensured_listed_and_deleted_idempotently(env: Env) {
    let before = env.chain_names(&env.nat).await;
    assert!(before.contains(&"POSTROUTING".to_owned()), "{before:?}");
    env.fw.ensure_chain(&env.nat, Chain::regular("FWT-A")).await.unwrap();
    let mut b = Batch::new();
    b.ensure_chain(&env.nat, Chain::regular("FWT-A"));
    assert!(env.fw.apply(&b).await.unwrap().is_empty(), "ensuring an existing chain changes nothing");
    assert!(env.fw.chain_exists(&env.nat.chain("FWT-A")).await.unwrap());
    let mut after = before.clone();
    after.push("FWT-A".into());
    after.sort();
    assert_eq!(env.chain_names(&env.nat).await, after);
    assert!(env.rules(&env.nat, "FWT-A").await.is_empty());
    // Keeps the rules of an existing chain.
    env.fw.append(&env.nat.chain("FWT-A"), Rule::new(Verdict::Return)).await.unwrap();
    env.fw.ensure_chain(&env.nat, Chain::regular("FWT-A")).await.unwrap();
    assert_eq!(env.rules(&env.nat, "FWT-A").await, [Rule::new(Verdict::Return)]);
    env.fw.flush_chain(&env.nat.chain("FWT-A")).await.unwrap();
    env.fw.delete_chain(&env.nat.chain("FWT-A")).await.unwrap();
    env.fw.delete_chain(&env.nat.chain("FWT-A")).await.unwrap();
    assert!(!env.fw.chain_exists(&env.nat.chain("FWT-A")).await.unwrap());
    assert_eq!(env.chain_names(&env.nat).await, before);
    assert_eq!(kind_of(env.fw.list_rules(&env.nat.chain("FWT-A")).await), FirewallErrorKind::NotFound);
}

/// Rules covering every typed match and verdict, in normal form, for a chain of the nat table
/// that no hook reaches.
fn sample_rules(env: &Env) -> Vec<Rule> {
    let comment = if env.ipt() { r#"name: "net" id: "it's \ here""# } else { "plain, comment: it's \\ here" };
    let v6 = env.family == IpFamily::V6;
    let mac = "02:00:00:00:02:10".parse().unwrap();
    let mut rules = vec![
        Rule::new(Verdict::Accept).when(Match::Destination(env.net(1))).with_comment(comment),
        Rule::new(Verdict::Masquerade).when(!Match::Destination(env.multicast())).with_comment(comment),
        Rule::new(Verdict::Jump("FWT-TARGET".into())).when(Match::Source(env.host(1))).with_comment(""),
        Rule::new(Verdict::Goto("FWT-TARGET".into()))
            .when(Match::Source(env.net(2)))
            .when(Match::Destination(env.host(3))),
        Rule::new(Verdict::Dnat { addr: env.addr(4), port: Some(PortRange::single(80)) })
            .when(Match::Destination(env.host(1)))
            .when(Match::Protocol(Protocol::Tcp))
            .when(Match::DestinationPort(8080.into())),
        Rule::new(Verdict::Dnat { addr: env.addr(4), port: Some(PortRange::new(80, 90)) })
            .when(Match::Protocol(Protocol::Tcp))
            .when(Match::DestinationPort(Ports::List(vec![PortRange::single(8080), PortRange::new(9000, 9010)]))),
        Rule::new(Verdict::Dnat { addr: env.addr(4), port: None })
            .when(Match::Protocol(Protocol::Sctp))
            .when(Match::DestinationPort(7.into())),
        Rule::new(Verdict::Snat { addr: env.addr(5), port: Some(PortRange::new(1000, 2000)) })
            .when(Match::Protocol(Protocol::Udp))
            .when(Match::SourcePort(Ports::Single(PortRange::new(1000, 2000))))
            .when(!Match::DestinationPort(53.into())),
        Rule::new(Verdict::Snat { addr: env.addr(5), port: None }),
        Rule::new(Verdict::Return).when(!Match::Protocol(Protocol::Tcp)),
        Rule::new(Verdict::Return).when(Match::Protocol(if v6 { Protocol::IcmpV6 } else { Protocol::Icmp })),
        Rule::new(Verdict::Return)
            .when(Match::InInterface("fwt-br0".into()))
            .when(!Match::OutInterface("fwt-br0".into())),
        Rule::new(Verdict::Masquerade).when(Match::Mark { value: 0x2000, mask: 0x2000 }),
        Rule::new(Verdict::Return).when(Match::mark(1)),
        Rule::new(Verdict::Return).when(!Match::mark(0)),
        Rule::new(Verdict::Return).when(!Match::Mark { value: 0x100, mask: 0xff00 }),
        Rule::new(Verdict::SetMark { value: 0x2000, mask: 0x2000 }).with_comment("portfwd-masquerade-mark"),
        Rule::new(Verdict::SetMark { value: 0x10, mask: 0xf0 }),
        Rule::new(Verdict::SetMark { value: 5, mask: u32::MAX }),
        Rule::new(Verdict::Accept)
            .when(Match::Destination(env.host(1)))
            .when(Match::ConnState(vec![ConnState::Related, ConnState::Established])),
        Rule::new(Verdict::Return).when(!Match::ConnState(vec![ConnState::New])),
        Rule::new(Verdict::Return).when(!Match::ConnState(vec![ConnState::Invalid, ConnState::New])),
        Rule::new(Verdict::Goto("FWT-TARGET".into())).when(Match::DestinationAddrType(AddrType::Local)),
        Rule::new(Verdict::Return).when(!Match::DestinationAddrType(AddrType::Local)),
        Rule::new(Verdict::Return).when(Match::SourceAddrType(AddrType::Local)),
        Rule::new(Verdict::Return).when(Match::EtherSource(mac)),
        Rule::new(Verdict::Continue).when(Match::Source(env.net(7))),
        Rule::new(Verdict::Accept).with_comment("x".repeat(if env.ipt() { 255 } else { 128 })),
    ];
    if !env.ipt() {
        rules.push(
            Rule::new(Verdict::Return).when(Match::Source(if v6 { "::/0" } else { "0.0.0.0/0" }.parse().unwrap())),
        );
        rules.push(Rule::new(Verdict::Return).with_comment("line one\nline two"));
    }
    rules
}

async fn rules_list_back_as_added(env: Env) {
    let chain = env.nat.chain("FWT-ROUNDTRIP");
    let mut b = Batch::new();
    b.ensure_chain(&env.nat, Chain::regular("FWT-TARGET")).ensure_chain(&env.nat, Chain::regular("FWT-ROUNDTRIP"));
    let rules = sample_rules(&env);
    for r in &rules {
        assert_eq!(&r.normalized(env.kind), r, "the sample rule is in normal form");
        b.append(&chain, r.clone());
    }
    env.fw.apply(&b).await.unwrap();
    let listed = env.rules(&env.nat, "FWT-ROUNDTRIP").await;
    for (i, (got, want)) in listed.iter().zip(&rules).enumerate() {
        assert_eq!(got, want, "rule {i} lists back differently");
    }
    assert_eq!(listed.len(), rules.len());
    // Appending them again "if absent" finds every one.
    let mut again = Batch::new();
    for r in &rules {
        again.append_if_absent(&chain, r.clone());
    }
    assert!(env.fw.apply(&again).await.unwrap().is_empty(), "all rules are recognised as present");
    // And deleting them by specification removes every one.
    let mut del = Batch::new();
    for r in &rules {
        del.delete_rule(&chain, r.clone());
    }
    assert_eq!(env.fw.apply(&del).await.unwrap().len(), rules.len());
    assert!(env.rules(&env.nat, "FWT-ROUNDTRIP").await.is_empty());
}

async fn rules_not_in_normal_form_are_stored_in_normal_form(env: Env) {
    let chain = env.nat.chain("FWT-NORM");
    env.fw.ensure_chain(&env.nat, Chain::regular("FWT-NORM")).await.unwrap();
    let messy = Rule::new(Verdict::Accept)
        .when(Match::ConnState(vec![ConnState::Established, ConnState::Related, ConnState::Established]))
        .when(Match::DestinationPort(Ports::List(vec![PortRange::single(443)])))
        .when(Match::Protocol(Protocol::Tcp))
        .when(Match::Destination(IpNet::new(env.addr(9), if env.family == IpFamily::V4 { 24 } else { 64 }).unwrap()));
    env.fw.append(&chain, messy.clone()).await.unwrap();
    let listed = env.rules(&env.nat, "FWT-NORM").await;
    assert_eq!(listed, [messy.normalized(env.kind)]);
    assert_ne!(listed[0], messy);
    // Lookups compare normal forms.
    assert!(!env.fw.append_if_absent(&chain, messy.clone()).await.unwrap());
    assert!(env.fw.delete_rule(&chain, messy).await.unwrap());
    assert!(env.rules(&env.nat, "FWT-NORM").await.is_empty());
}

async fn append_insert_and_if_absent_keep_order(env: Env) {
    let chain = env.filter.chain("FWT-ORDER");
    env.fw.ensure_chain(&env.filter, Chain::regular("FWT-ORDER")).await.unwrap();
    let r = |i: u8| Rule::new(Verdict::Return).when(Match::Source(env.host(i)));
    env.fw.append(&chain, r(1)).await.unwrap();
    env.fw.append(&chain, r(2)).await.unwrap();
    env.fw.insert(&chain, r(3)).await.unwrap();
    assert!(env.fw.insert_if_absent(&chain, r(4)).await.unwrap());
    assert!(!env.fw.insert_if_absent(&chain, r(2)).await.unwrap(), "present anywhere: not inserted");
    assert!(!env.fw.append_if_absent(&chain, r(4)).await.unwrap());
    assert!(env.fw.append_if_absent(&chain, r(5)).await.unwrap());
    // Plain append adds duplicates.
    env.fw.append(&chain, r(1)).await.unwrap();
    assert_eq!(env.rules(&env.filter, "FWT-ORDER").await, [r(4), r(3), r(1), r(2), r(5), r(1)]);
    // Several inserts in one batch: each goes to the top, as one after the other.
    let mut b = Batch::new();
    b.insert(&chain, r(6)).insert(&chain, r(7)).append(&chain, r(8));
    assert_eq!(env.fw.apply(&b).await.unwrap().len(), 3);
    assert_eq!(env.rules(&env.filter, "FWT-ORDER").await, [r(7), r(6), r(4), r(3), r(1), r(2), r(5), r(1), r(8)]);
}

async fn deletes_by_spec_handle_predicate_and_comment_are_idempotent(env: Env) {
    let chain = env.filter.chain("FWT-DEL");
    env.fw.ensure_chain(&env.filter, Chain::regular("FWT-DEL")).await.unwrap();
    let r = |i: u8, c: &str| Rule::new(Verdict::Accept).when(Match::Destination(env.host(i))).with_comment(c);
    let mut b = Batch::new();
    for (i, c) in [(1, "a"), (2, "b"), (1, "a"), (3, "c"), (4, "c"), (5, "prefix-1"), (6, "prefix-2"), (7, "d")] {
        b.append(&chain, r(i, c));
    }
    env.fw.apply(&b).await.unwrap();
    // By specification: the first equal rule only, like iptables -D.
    assert!(env.fw.delete_rule(&chain, r(1, "a")).await.unwrap());
    assert_eq!(env.rules(&env.filter, "FWT-DEL").await.iter().filter(|x| **x == r(1, "a")).count(), 1);
    assert!(env.fw.delete_rule(&chain, r(1, "a")).await.unwrap());
    assert!(!env.fw.delete_rule(&chain, r(1, "a")).await.unwrap(), "a missing rule is not an error");
    // By handle, from a listing.
    let listed = env.fw.list_rules(&chain).await.unwrap();
    let b_rule = listed.iter().find(|l| l.rule.has_comment("b")).unwrap();
    assert!(env.fw.delete_rule_handle(&chain, b_rule.handle.clone()).await.unwrap());
    assert!(!env.fw.delete_rule_handle(&chain, b_rule.handle.clone()).await.unwrap());
    // By comment and by predicate.
    assert_eq!(env.fw.delete_rules_with_comment(&chain, "c").await.unwrap(), 2);
    assert_eq!(env.fw.delete_rules_with_comment(&chain, "c").await.unwrap(), 0);
    let mut b = Batch::new();
    b.delete_rules_with_comment_prefix(&chain, "prefix-");
    assert_eq!(env.fw.apply(&b).await.unwrap().len(), 2);
    assert_eq!(env.rules(&env.filter, "FWT-DEL").await, [r(7, "d")]);
    let d = env.host(7);
    assert_eq!(
        env.fw
            .delete_rules_where(&chain, move |r| r.conditions.iter().any(|c| c.test == Match::Destination(d)))
            .await
            .unwrap(),
        1
    );
    assert!(env.rules(&env.filter, "FWT-DEL").await.is_empty());
    // Every deletion of a missing chain succeeds (Go's B2 failed here under iptables-nft).
    let gone = env.filter.chain("FWT-NEVER");
    assert!(!env.fw.delete_rule(&gone, r(1, "a")).await.unwrap());
    assert_eq!(env.fw.delete_rules_with_comment(&gone, "a").await.unwrap(), 0);
    env.fw.flush_chain(&gone).await.unwrap();
    env.fw.delete_chain(&gone).await.unwrap();
}

async fn a_rule_added_and_deleted_in_one_batch_is_never_added(env: Env) {
    let chain = env.filter.chain("FWT-PENDING");
    let keep = Rule::new(Verdict::Accept).when(Match::Source(env.host(1)));
    let temp = Rule::new(Verdict::Drop).when(Match::Source(env.host(2)));
    let mut b = Batch::new();
    b.ensure_chain(&env.filter, Chain::regular("FWT-PENDING"))
        .append(&chain, keep.clone())
        .append(&chain, temp.clone())
        .delete_rule(&chain, temp.clone());
    let changes = env.fw.apply(&b).await.unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(env.rules(&env.filter, "FWT-PENDING").await, [keep]);
}

async fn flush_empties_a_chain(env: Env) {
    let chain = env.filter.chain("FWT-FLUSH");
    env.fw.ensure_chain(&env.filter, Chain::regular("FWT-FLUSH")).await.unwrap();
    for i in 1..=3 {
        env.fw.append(&chain, Rule::new(Verdict::Accept).when(Match::Source(env.host(i)))).await.unwrap();
    }
    env.fw.flush_chain(&chain).await.unwrap();
    assert!(env.rules(&env.filter, "FWT-FLUSH").await.is_empty());
    assert!(env.fw.chain_exists(&chain).await.unwrap());
    // Flushing an empty chain changes nothing.
    let mut b = Batch::new();
    b.flush_chain(&chain);
    assert!(env.fw.apply(&b).await.unwrap().is_empty());
}

async fn chains_in_use_cannot_be_deleted(env: Env) {
    let mut b = Batch::new();
    b.ensure_chain(&env.filter, Chain::regular("FWT-USED"))
        .append(&env.filter.chain("FWT-USED"), Rule::new(Verdict::Accept))
        .append(
            &env.filter.chain("FORWARD"),
            Rule::new(Verdict::Jump("FWT-USED".into())).when(Match::Source(env.host(1))),
        );
    env.fw.apply(&b).await.unwrap();
    let used = env.filter.chain("FWT-USED");
    assert_eq!(kind_of(env.fw.delete_chain(&used).await), FirewallErrorKind::InUse);
    // Still there, with its rule.
    assert_eq!(env.rules(&env.filter, "FWT-USED").await, [Rule::new(Verdict::Accept)]);
    env.fw
        .delete_rules_where(&env.filter.chain("FORWARD"), |r| r.verdict.target_chain() == Some("FWT-USED"))
        .await
        .unwrap();
    if env.ipt() {
        // iptables also refuses a chain that still holds rules.
        assert_eq!(kind_of(env.fw.delete_chain(&used).await), FirewallErrorKind::InUse);
        env.fw.flush_chain(&used).await.unwrap();
    }
    env.fw.delete_chain(&used).await.unwrap();
    assert!(!env.fw.chain_exists(&used).await.unwrap());
}

async fn missing_objects_are_not_found(env: Env) {
    let missing = env.filter.chain("FWT-MISSING");
    assert_eq!(kind_of(env.fw.append(&missing, Rule::new(Verdict::Accept)).await), FirewallErrorKind::NotFound);
    assert_eq!(kind_of(env.fw.insert(&missing, Rule::new(Verdict::Accept)).await), FirewallErrorKind::NotFound);
    let jump = Rule::new(Verdict::Jump("FWT-MISSING".into()));
    let err = env.fw.append(&env.filter.chain("FORWARD"), jump).await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("FWT-MISSING"), "{err}");
    assert_eq!(kind_of(env.fw.list_rules(&missing).await), FirewallErrorKind::NotFound);
    if !env.ipt() {
        let t = TableId::new(env.nat.family, "fwt_missing");
        assert_eq!(kind_of(env.fw.ensure_chain(&t, Chain::regular("c")).await), FirewallErrorKind::NotFound);
        assert_eq!(kind_of(env.fw.list_chains(&t).await), FirewallErrorKind::NotFound);
        assert!(env.fw.read_table(&t).await.unwrap().is_none());
        env.fw.delete_table(&t).await.unwrap();
    }
}

async fn batches_are_all_or_nothing(env: Env) {
    let chain = env.filter.chain("FWT-ATOMIC");
    // Found while planning: nothing runs.
    let mut b = Batch::new();
    b.ensure_chain(&env.filter, Chain::regular("FWT-ATOMIC"))
        .append(&chain, Rule::new(Verdict::Accept))
        .append(&chain, Rule::new(Verdict::Jump("FWT-NOWHERE".into())));
    assert_eq!(kind_of(env.fw.apply(&b).await), FirewallErrorKind::NotFound);
    assert!(!env.fw.chain_exists(&chain).await.unwrap());
    // Found by the tool (or the fake's injected failure): still nothing changes.
    let mut b = Batch::new();
    b.ensure_chain(&env.filter, Chain::regular("FWT-ATOMIC")).append(&chain, Rule::new(Verdict::Accept));
    let bogus = match (&env.fake, env.kind) {
        (Some(fake), _) => {
            fake.fail_next_commit(FirewallErrorKind::InvalidArgument, "injected");
            Rule::new(Verdict::Drop)
        }
        (None, BackendKind::Iptables) => {
            Rule::new(Verdict::Drop).when(Match::Raw(Raw::Iptables(vec!["-m".into(), "fwt-no-such-match".into()])))
        }
        (None, BackendKind::Nftables) => {
            Rule::new(Verdict::Drop).when(Match::Raw(Raw::Nft("fwt no such syntax".into())))
        }
    };
    b.append(&chain, bogus);
    let err = env.fw.apply(&b).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            FirewallErrorKind::InvalidArgument | FirewallErrorKind::Other | FirewallErrorKind::NotFound
        ),
        "{err}"
    );
    assert!(!env.fw.chain_exists(&chain).await.unwrap(), "nothing of the failed batch was applied");
}

async fn nat_targets_need_a_nat_hook(env: Env) {
    // A chain reached from PREROUTING cannot masquerade; one reached from POSTROUTING cannot DNAT.
    let mut b = Batch::new();
    b.ensure_chain(&env.nat, Chain::regular("FWT-PRE"))
        .append(&env.nat.chain("PREROUTING"), Rule::new(Verdict::Jump("FWT-PRE".into())))
        .append(&env.nat.chain("FWT-PRE"), Rule::new(Verdict::Masquerade));
    let err = env.fw.apply(&b).await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument, "{err}");
    assert!(!env.fw.chain_exists(&env.nat.chain("FWT-PRE")).await.unwrap());
    // Allowed where the hook fits, then refused when a jump would bring it to the wrong hook.
    let mut b = Batch::new();
    b.ensure_chain(&env.nat, Chain::regular("FWT-DNAT"))
        .append(&env.nat.chain("FWT-DNAT"), Rule::new(Verdict::Dnat { addr: env.addr(1), port: None }))
        .append(&env.nat.chain("PREROUTING"), Rule::new(Verdict::Jump("FWT-DNAT".into())));
    env.fw.apply(&b).await.unwrap();
    let jump = Rule::new(Verdict::Jump("FWT-DNAT".into()));
    assert_eq!(kind_of(env.fw.append(&env.nat.chain("POSTROUTING"), jump).await), FirewallErrorKind::InvalidArgument);
    assert!(env.rules(&env.nat, "POSTROUTING").await.is_empty());
    if env.ipt() {
        // iptables: NAT targets only in the nat table.
        assert_eq!(
            kind_of(env.fw.append(&env.filter.chain("FORWARD"), Rule::new(Verdict::Masquerade)).await),
            FirewallErrorKind::InvalidArgument
        );
        // And the MAC match only where frames come in.
        let mac = Rule::new(Verdict::Accept).when(Match::EtherSource("02:00:00:00:00:01".parse().unwrap()));
        assert_eq!(kind_of(env.fw.append(&env.filter.chain("OUTPUT"), mac).await), FirewallErrorKind::InvalidArgument);
    }
}

async fn jump_loops_are_refused_once_a_hook_reaches_them(env: Env) {
    let (a, b) = (env.filter.chain("FWT-LOOP-A"), env.filter.chain("FWT-LOOP-B"));
    let mut batch = Batch::new();
    batch
        .ensure_chain(&env.filter, Chain::regular("FWT-LOOP-A"))
        .ensure_chain(&env.filter, Chain::regular("FWT-LOOP-B"))
        .append(&a, Rule::new(Verdict::Jump("FWT-LOOP-B".into())))
        .append(&env.filter.chain("FORWARD"), Rule::new(Verdict::Jump("FWT-LOOP-A".into())));
    env.fw.apply(&batch).await.unwrap();
    let back = Rule::new(Verdict::Goto("FWT-LOOP-A".into()));
    let err = env.fw.append(&b, back.clone()).await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument, "{err}");
    assert!(env.rules(&env.filter, "FWT-LOOP-B").await.is_empty());
    // A chain cannot jump to itself either.
    let own = Rule::new(Verdict::Jump("FWT-LOOP-A".into()));
    assert_eq!(kind_of(env.fw.append(&a, own).await), FirewallErrorKind::InvalidArgument);
    // Like the kernel, a loop no hook reaches is accepted; linking it to a hook is then refused.
    env.fw.delete_rules_where(&env.filter.chain("FORWARD"), |_| true).await.unwrap();
    env.fw.append(&b, back).await.unwrap();
    let link = Rule::new(Verdict::Jump("FWT-LOOP-B".into()));
    assert_eq!(kind_of(env.fw.append(&env.filter.chain("FORWARD"), link).await), FirewallErrorKind::InvalidArgument);
    assert!(env.rules(&env.filter, "FORWARD").await.is_empty());
}

async fn hostile_comments_and_names(env: Env) {
    let chain = env.filter.chain("FWT-HOSTILE");
    env.fw.ensure_chain(&env.filter, Chain::regular("FWT-HOSTILE")).await.unwrap();
    let with = |c: &str| Rule::new(Verdict::Accept).with_comment(c);
    let (max, accepted, refused): (usize, Vec<String>, Vec<String>) = if env.ipt() {
        (
            255,
            vec![
                r#"quote " and backslash \ and 'single'"#.into(),
                "# not a comment; -j DROP --comment x".into(),
                "tab\there".into(),
                "unicode é ✓ 😀".into(),
                "--comment".into(),
                "".into(),
            ],
            vec!["line\nbreak".into(), "cr\rhere".into(), "nul\0".into(), "x".repeat(256)],
        )
    } else {
        (
            128,
            vec![
                r"backslash \ and 'single'".into(),
                "# not a comment; delete table x".into(),
                "tab\there".into(),
                "unicode é ✓".into(),
                "line\nbreak".into(),
                "".into(),
            ],
            vec![r#"double " quote"#.into(), "nul\0".into(), "x".repeat(129), "é".repeat(65)],
        )
    };
    for c in &accepted {
        env.fw.append(&chain, with(c)).await.unwrap_or_else(|e| panic!("comment {c:?}: {e}"));
    }
    env.fw.append(&chain, with(&"y".repeat(max))).await.unwrap();
    let listed: Vec<Option<String>> =
        env.rules(&env.filter, "FWT-HOSTILE").await.into_iter().map(|r| r.comment).collect();
    let mut want: Vec<Option<String>> = accepted.iter().cloned().map(Some).collect();
    want.push(Some("y".repeat(max)));
    assert_eq!(listed, want);
    for c in &refused {
        let err = env.fw.append(&chain, with(c)).await.unwrap_err();
        assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument, "comment {c:?}: {err}");
    }
    // Each hostile comment can be found and deleted again.
    for c in &accepted {
        assert_eq!(env.fw.delete_rules_with_comment(&chain, c).await.unwrap(), 1, "{c:?}");
    }
    // Names at the limits.
    let long = if env.ipt() { "C".repeat(28) } else { format!("c{}", "x".repeat(254)) };
    env.fw.ensure_chain(&env.filter, Chain::regular(long.clone())).await.unwrap();
    assert!(env.fw.chain_exists(&env.filter.chain(long.clone())).await.unwrap());
    env.fw.append(&env.filter.chain("FWT-HOSTILE"), Rule::new(Verdict::Jump(long.clone()))).await.unwrap();
    let too_long = format!("{long}X");
    let mut bad_names = vec![too_long.as_str(), "", "has space", "-dash", "quote\"d", "back\\slash"];
    if !env.ipt() {
        bad_names.extend(["semi;colon", "1digit", "brace{", "accept", "counter", "ip"]);
    }
    for bad in bad_names {
        let err = env.fw.ensure_chain(&env.filter, Chain::regular(bad)).await.unwrap_err();
        assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument, "chain name {bad:?}: {err}");
    }
    for bad in ["eth+", "a b", "sixteen-chars-xx", "quo\"te", ""] {
        let r = Rule::new(Verdict::Accept).when(Match::InInterface(bad.into()));
        assert_eq!(kind_of(env.fw.append(&chain, r).await), FirewallErrorKind::InvalidArgument, "ifname {bad:?}");
    }
    // An address of the other family.
    let other: IpNet = match env.family {
        IpFamily::V4 => "fd00:210::1/128".parse().unwrap(),
        IpFamily::V6 => "10.210.0.1/32".parse().unwrap(),
    };
    let r = Rule::new(Verdict::Accept).when(Match::Source(other));
    if env.nat.family == TableFamily::Inet {
        env.fw.append(&chain, r).await.unwrap();
    } else {
        assert_eq!(kind_of(env.fw.append(&chain, r).await), FirewallErrorKind::InvalidArgument);
    }
    // A raw part of the other backend.
    let raw = if env.ipt() { Raw::Nft("meta mark 1".into()) } else { Raw::Iptables(vec!["-m".into(), "mark".into()]) };
    let r = Rule::new(Verdict::Accept).when(Match::Raw(raw));
    assert_eq!(kind_of(env.fw.append(&chain, r).await), FirewallErrorKind::InvalidArgument);
    // Injection through raw nft text is refused.
    if !env.ipt() {
        let r = Rule::new(Verdict::Accept).when(Match::Raw(Raw::Nft("meta mark 1\ndelete table inet x".into())));
        assert_eq!(kind_of(env.fw.append(&chain, r).await), FirewallErrorKind::InvalidArgument);
    }
}

async fn conflicting_chain_definitions_are_exists_errors(env: Env) {
    let err = env.fw.ensure_chain(&env.nat, Chain::regular("POSTROUTING")).await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::Exists, "{err}");
    // The existing base chain, as it is: fine.
    let post = Chain::base("POSTROUTING", BaseChain::new(ChainType::Nat, Hook::Postrouting, 100));
    env.fw.ensure_chain(&env.nat, post).await.unwrap();
    let wrong_hook = Chain::base("POSTROUTING", BaseChain::new(ChainType::Nat, Hook::Prerouting, -100));
    assert_eq!(kind_of(env.fw.ensure_chain(&env.nat, wrong_hook).await), FirewallErrorKind::Exists);
    env.fw.ensure_chain(&env.nat, Chain::regular("FWT-REG")).await.unwrap();
    let base = Chain::base("FWT-REG", BaseChain::new(ChainType::Nat, Hook::Postrouting, 100));
    let err = env.fw.ensure_chain(&env.nat, base).await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::Exists, "{err}");
    if env.ipt() {
        // iptables has only its built-in base chains, and its tables carry no comments.
        let base = Chain::base("FWT-NEWBASE", BaseChain::new(ChainType::Filter, Hook::Forward, 0));
        assert_eq!(kind_of(env.fw.ensure_chain(&env.filter, base).await), FirewallErrorKind::InvalidArgument);
        let t = Table::new(env.filter.family, "filter").with_comment("x");
        assert_eq!(kind_of(env.fw.ensure_table(t).await), FirewallErrorKind::InvalidArgument);
        assert_eq!(
            kind_of(env.fw.delete_chain(&env.filter.chain("FORWARD")).await),
            FirewallErrorKind::InvalidArgument
        );
        assert_eq!(kind_of(env.fw.delete_table(&env.filter).await), FirewallErrorKind::InvalidArgument);
    }
}

async fn base_chain_policy_is_updated(env: Env) {
    let fwd = |p| Chain::base("FORWARD", BaseChain::new(ChainType::Filter, Hook::Forward, 0).with_policy(p));
    env.fw.ensure_chain(&env.filter, fwd(Policy::Drop)).await.unwrap();
    let policy =
        |chains: Vec<Chain>| chains.into_iter().find(|c| c.name == "FORWARD").unwrap().base_chain().unwrap().policy;
    assert_eq!(policy(env.fw.list_chains(&env.filter).await.unwrap()), Policy::Drop);
    env.fw.ensure_chain(&env.filter, fwd(Policy::Accept)).await.unwrap();
    assert_eq!(policy(env.fw.list_chains(&env.filter).await.unwrap()), Policy::Accept);
    if env.ipt() {
        // iptables refuses DROP in the nat table.
        let post = Chain::base(
            "POSTROUTING",
            BaseChain::new(ChainType::Nat, Hook::Postrouting, 100).with_policy(Policy::Drop),
        );
        assert_eq!(kind_of(env.fw.ensure_chain(&env.nat, post).await), FirewallErrorKind::InvalidArgument);
    }
}

async fn raw_parts_are_written_verbatim(env: Env) {
    let chain = env.filter.chain("FWT-RAW");
    env.fw.ensure_chain(&env.filter, Chain::regular("FWT-RAW")).await.unwrap();
    let (cond, verdict) = if env.ipt() {
        (
            Raw::Iptables(vec!["-m".into(), "limit".into(), "--limit".into(), "5/sec".into()]),
            Raw::Iptables(vec!["-j".into(), "LOG".into(), "--log-prefix".into(), "fwt: ".into()]),
        )
    } else {
        (Raw::Nft("limit rate 5/second".into()), Raw::Nft("log prefix \"fwt: \"".into()))
    };
    let rule =
        Rule::new(Verdict::Raw(verdict)).when(Match::Raw(cond)).when(Match::Source(env.host(1))).with_comment("raw");
    env.fw.append(&chain, rule).await.unwrap();
    let listed = env.rules(&env.filter, "FWT-RAW").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].conditions[0], Match::Source(env.host(1)).into());
    assert!(matches!(listed[0].conditions[1].test, Match::Raw(_)), "{:?}", listed[0]);
    assert!(matches!(listed[0].verdict, Verdict::Raw(_)), "{:?}", listed[0]);
    if env.ipt() {
        // iptables prints raw arguments it knows as typed conditions, and so does the planner.
        let raw_mark = Rule::new(Verdict::Accept)
            .when(Match::Raw(Raw::Iptables(["-m", "mark", "--mark", "0x1"].map(str::to_owned).to_vec())));
        env.fw.append(&chain, raw_mark.clone()).await.unwrap();
        assert_eq!(env.rules(&env.filter, "FWT-RAW").await[1], Rule::new(Verdict::Accept).when(Match::mark(1)));
        assert!(!env.fw.append_if_absent(&chain, raw_mark).await.unwrap());
    }
    assert_eq!(env.fw.delete_rules_with_comment(&chain, "raw").await.unwrap(), 1);
}

async fn equivalent_rules_count_as_present(env: Env) {
    let chain = env.filter.chain("FWT-EQ");
    env.fw.ensure_chain(&env.filter, Chain::regular("FWT-EQ")).await.unwrap();
    let r = |i: u8, c: &str| Rule::new(Verdict::Return).when(Match::Source(env.host(i))).with_comment(c);
    env.fw.append(&chain, r(1, "old wording")).await.unwrap();
    // Equivalent: the same rule whatever its comment (two versions of a plugin wrote it).
    let same = |want: Rule| {
        let want = want.normalized(env.kind);
        move |l: &Rule| l.verdict == want.verdict && l.conditions == want.conditions
    };
    let mut b = Batch::new();
    b.append_unless(&chain, r(1, "new wording"), same(r(1, ""))).insert_unless(
        &chain,
        r(1, "new wording"),
        same(r(1, "")),
    );
    assert!(env.fw.apply(&b).await.unwrap().is_empty(), "an equivalent rule is there");
    assert_eq!(env.rules(&env.filter, "FWT-EQ").await, [r(1, "old wording")]);
    // Not equivalent: inserted at the top or appended; an equal rule still counts as present,
    // and so do rules added earlier in the same batch.
    let mut b = Batch::new();
    b.insert_unless(&chain, r(2, "a"), |_| false)
        .append_unless(&chain, r(3, "b"), same(r(2, "")))
        .append_unless(&chain, r(1, "old wording"), |_| false)
        .append_unless(&chain, r(4, "c"), |_| false);
    assert_eq!(env.fw.apply(&b).await.unwrap().len(), 2);
    assert_eq!(env.rules(&env.filter, "FWT-EQ").await, [r(2, "a"), r(1, "old wording"), r(4, "c")]);
}

async fn contains_rules_compares_rules_as_listed(env: Env) {
    let chain = env.filter.chain("FWT-HAS");
    let missing = kind_of(env.fw.contains_rules(&chain, &[Rule::new(Verdict::Accept)]).await);
    assert_eq!(missing, FirewallErrorKind::NotFound);
    env.fw.ensure_chain(&env.filter, Chain::regular("FWT-HAS")).await.unwrap();
    let typed = Rule::new(Verdict::Accept).when(Match::Source(env.net(1))).with_comment("has");
    env.fw.append(&chain, typed.clone()).await.unwrap();
    // Not in normal form (host bits set): compared as the backend lists it.
    let messy = Rule::new(Verdict::Accept)
        .when(Match::Source(IpNet::new(env.addr(1), env.net(1).prefix_len()).unwrap()))
        .with_comment("has");
    let absent = Rule::new(Verdict::Drop).when(Match::Source(env.net(1)));
    assert_eq!(env.fw.contains_rules(&chain, &[typed.clone(), messy, absent]).await.unwrap(), [true, true, false]);
    if env.ipt() {
        // iptables lists raw arguments it knows as typed conditions.
        let raw = Rule::new(Verdict::Accept)
            .when(Match::Raw(Raw::Iptables(vec!["-s".into(), env.net(1).to_string()])))
            .with_comment("has");
        assert_eq!(env.fw.contains_rules(&chain, &[raw]).await.unwrap(), [true]);
    }
    assert_eq!(env.fw.contains_rules(&chain, &[]).await.unwrap(), Vec::<bool>::new());
}

async fn tables_and_chains_carry_comments_in_nftables(env: Env) {
    if env.ipt() {
        let tables = env.fw.list_tables().await.unwrap();
        assert!(tables.contains(&Table::new(env.nat.family, "nat")));
        assert!(tables.contains(&Table::new(env.nat.family, "filter")));
        return;
    }
    let t = Table::new(env.nat.family, "fwt_commented").with_comment("Masquerading for plugins from github.com/x/y");
    let id = t.id();
    let mut b = Batch::new();
    b.ensure_table(t.clone())
        .ensure_chain(&id, Chain::regular("checks").with_comment("Masquerade traffic (non-multicast), \\ too"))
        .ensure_chain(&id, Chain::base("post", BaseChain::new(ChainType::Nat, Hook::Postrouting, 100)))
        .ensure_chain(&id, Chain::regular("plain"));
    env.fw.apply(&b).await.unwrap();
    assert!(env.fw.list_tables().await.unwrap().contains(&t));
    let state = env.fw.read_table(&id).await.unwrap().unwrap();
    assert_eq!(state.table, t);
    assert_eq!(
        state.chain("checks").unwrap().chain.comment.as_deref(),
        Some("Masquerade traffic (non-multicast), \\ too")
    );
    assert_eq!(state.chain("plain").unwrap().chain.comment, None);
    assert_eq!(state.chain("post").unwrap().chain.comment, None);
    // Ensuring the table again (even with another comment) changes nothing; deleting is idempotent.
    let mut b = Batch::new();
    b.ensure_table(Table::new(env.nat.family, "fwt_commented"));
    assert!(env.fw.apply(&b).await.unwrap().is_empty());
    env.fw.delete_table(&id).await.unwrap();
    env.fw.delete_table(&id).await.unwrap();
    assert!(env.fw.read_table(&id).await.unwrap().is_none());
    let too_long = Table::new(env.nat.family, "fwt_x").with_comment("c".repeat(129));
    assert_eq!(kind_of(env.fw.ensure_table(too_long).await), FirewallErrorKind::InvalidArgument);
}

async fn probes_report_usable(env: Env) {
    env.fw.probe().await.unwrap();
    assert!(env.fw.is_usable().await);
    if let Some(fake) = &env.fake {
        fake.set_usable(false);
        assert_eq!(kind_of(env.fw.probe().await), FirewallErrorKind::Unavailable);
        assert_eq!(kind_of(env.fw.list_rules(&env.nat.chain("POSTROUTING")).await), FirewallErrorKind::Unavailable);
        fake.set_usable(true);
    }
    assert!(env.real || env.fake.is_some());
}

async fn the_tool_refuses_what_the_planner_refuses(env: Env) {
    // Primitive changes committed without the planner: the tool (or the fake, which must agree
    // with it) reports the same kinds the planner reports for the same requests.
    let t = &env.filter;
    let mut b = Batch::new();
    b.ensure_chain(t, Chain::regular("FWT-K1"))
        .ensure_chain(t, Chain::regular("FWT-K2"))
        .append(&t.chain("FWT-K1"), Rule::new(Verdict::Jump("FWT-K2".into())))
        // Conditional: iptables-legacy does not look for loops behind an unconditional verdict.
        .append(&t.chain("FWT-K2"), Rule::new(Verdict::Accept).when(Match::Source(env.host(8))))
        .append(&t.chain("FORWARD"), Rule::new(Verdict::Jump("FWT-K1".into())));
    env.fw.apply(&b).await.unwrap();
    let append = |chain: &str, rule: Rule| Change::AppendRule { chain: t.chain(chain), rule };
    let cases: Vec<(&str, Change, FirewallErrorKind)> = vec![
        ("append to a missing chain", append("FWT-NONE", Rule::new(Verdict::Accept)), FirewallErrorKind::NotFound),
        (
            "jump to a missing chain",
            append("FWT-K2", Rule::new(Verdict::Jump("FWT-NONE".into()))),
            FirewallErrorKind::NotFound,
        ),
        ("delete a referenced chain", Change::DeleteChain(t.chain("FWT-K2")), FirewallErrorKind::InUse),
        (
            "a jump loop",
            append("FWT-K2", Rule::new(Verdict::Jump("FWT-K1".into()))),
            FirewallErrorKind::InvalidArgument,
        ),
        ("delete a missing chain", Change::DeleteChain(t.chain("FWT-NONE")), FirewallErrorKind::NotFound),
        ("flush a missing chain", Change::FlushChain(t.chain("FWT-NONE")), FirewallErrorKind::NotFound),
        (
            "delete a missing rule",
            Change::DeleteRule {
                chain: t.chain("FWT-K2"),
                handle: if env.ipt() {
                    RuleHandle::spec(["-s", &env.host(9).to_string(), "-j", "DROP"].map(str::to_owned).to_vec())
                } else {
                    RuleHandle::number(999_999)
                },
                rule: Rule::new(Verdict::Drop),
            },
            FirewallErrorKind::NotFound,
        ),
    ];
    let mut cases = cases;
    if env.ipt() {
        let drop = Change::AppendRule { chain: env.nat.chain("POSTROUTING"), rule: Rule::new(Verdict::Drop) };
        cases.push(("DROP in the nat table", drop, FirewallErrorKind::InvalidArgument));
        cases.push((
            "create an existing chain",
            Change::AddChain { table: t.clone(), chain: Chain::regular("FWT-K1") },
            FirewallErrorKind::Exists,
        ));
        cases.push(("delete a chain holding rules", Change::DeleteChain(t.chain("FWT-K1")), FirewallErrorKind::InUse));
    }
    for (what, change, kind) in cases {
        let err = env.direct.commit(std::slice::from_ref(&change)).await.expect_err(what);
        assert_eq!(err.kind(), kind, "{what}: {err}");
    }
    // NAT in a chain a hook of the wrong kind reaches.
    let mut b = Batch::new();
    b.ensure_chain(&env.nat, Chain::regular("FWT-K3"))
        .append(&env.nat.chain("PREROUTING"), Rule::new(Verdict::Jump("FWT-K3".into())));
    env.fw.apply(&b).await.unwrap();
    let masq = Change::AppendRule { chain: env.nat.chain("FWT-K3"), rule: Rule::new(Verdict::Masquerade) };
    let err = env.direct.commit(&[masq]).await.expect_err("masquerade reached from prerouting");
    assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument, "{err}");
    // Nothing of the failed commits stuck.
    assert_eq!(env.rules(t, "FWT-K2").await, [Rule::new(Verdict::Accept).when(Match::Source(env.host(8)))]);
    assert!(env.rules(&env.nat, "FWT-K3").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Instantiation

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod fake_iptables_v4 {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Env::fake_iptables(IpFamily::V4)).await } )*
        }
        mod fake_iptables_v6 {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Env::fake_iptables(IpFamily::V6)).await } )*
        }
        mod fake_nftables_ip {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Env::fake_nft(TableFamily::Ip).await).await } )*
        }
        mod fake_nftables_ip6 {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Env::fake_nft(TableFamily::Ip6).await).await } )*
        }
        mod fake_nftables_inet {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Env::fake_nft(TableFamily::Inet).await).await } )*
        }
        mod iptables_v4 {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() {
                super::$name(Env::iptables(IptablesVariant::System, IpFamily::V4)).await
            } )*
        }
        mod iptables_v6 {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() {
                super::$name(Env::iptables(IptablesVariant::System, IpFamily::V6)).await
            } )*
        }
        mod iptables_legacy_v4 {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() {
                super::$name(Env::iptables(IptablesVariant::Legacy, IpFamily::V4)).await
            } )*
        }
        mod iptables_legacy_v6 {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() {
                super::$name(Env::iptables(IptablesVariant::Legacy, IpFamily::V6)).await
            } )*
        }
        mod nftables_ip {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() { super::$name(Env::nft(TableFamily::Ip).await).await } )*
        }
        mod nftables_ip6 {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() { super::$name(Env::nft(TableFamily::Ip6).await).await } )*
        }
        mod nftables_inet {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() { super::$name(Env::nft(TableFamily::Inet).await).await } )*
        }
        mod nftables_netlink_ip {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() { super::$name(Env::nft_netlink(TableFamily::Ip).await).await } )*
        }
        mod nftables_netlink_ip6 {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() { super::$name(Env::nft_netlink(TableFamily::Ip6).await).await } )*
        }
        mod nftables_netlink_inet {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() { super::$name(Env::nft_netlink(TableFamily::Inet).await).await } )*
        }
    };
}

suite!(
    chains_are_ensured_listed_and_deleted_idempotently,
    rules_list_back_as_added,
    rules_not_in_normal_form_are_stored_in_normal_form,
    append_insert_and_if_absent_keep_order,
    deletes_by_spec_handle_predicate_and_comment_are_idempotent,
    a_rule_added_and_deleted_in_one_batch_is_never_added,
    flush_empties_a_chain,
    chains_in_use_cannot_be_deleted,
    missing_objects_are_not_found,
    batches_are_all_or_nothing,
    nat_targets_need_a_nat_hook,
    jump_loops_are_refused_once_a_hook_reaches_them,
    hostile_comments_and_names,
    conflicting_chain_definitions_are_exists_errors,
    base_chain_policy_is_updated,
    raw_parts_are_written_verbatim,
    equivalent_rules_count_as_present,
    contains_rules_compares_rules_as_listed,
    tables_and_chains_carry_comments_in_nftables,
    probes_report_usable,
    the_tool_refuses_what_the_planner_refuses,
);

// ---------------------------------------------------------------------------------------------
// Fake-only: behaviour that needs fault injection

#[tokio::test]
async fn fake_only_a_conflicting_commit_is_planned_again() {
    let fake = FakeFirewall::iptables();
    let fw = fake.firewall();
    let nat = TableId::iptables(IpFamily::V4, "nat");
    fake.fail_next_commit(FirewallErrorKind::Exists, "iptables: Chain already exists.");
    fw.ensure_chain(&nat, Chain::regular("FWT-RETRY")).await.unwrap();
    assert!(fw.chain_exists(&nat.chain("FWT-RETRY")).await.unwrap());
    assert_eq!(fake.commits(), 1);
    // Errors that are not conflicts are returned at once.
    fake.fail_next_commit(FirewallErrorKind::PermissionDenied, "iptables: Permission denied");
    assert_eq!(kind_of(fw.ensure_chain(&nat, Chain::regular("FWT-RETRY2")).await), FirewallErrorKind::PermissionDenied);
}

#[tokio::test]
async fn fake_only_one_batch_is_one_commit_per_family() {
    let fake = FakeFirewall::iptables();
    let fw = fake.firewall();
    let (nat4, nat6) = (TableId::iptables(IpFamily::V4, "nat"), TableId::iptables(IpFamily::V6, "nat"));
    let mut b = Batch::new();
    for t in [&nat4, &nat6, &nat4] {
        b.ensure_chain(t, Chain::regular("FWT-X")).append_if_absent(&t.chain("FWT-X"), Rule::new(Verdict::Masquerade));
    }
    assert_eq!(fw.apply(&b).await.unwrap().len(), 4);
    assert_eq!(fake.commits(), 2, "one iptables-restore and one ip6tables-restore");
    assert!(fw.apply(&b).await.unwrap().is_empty());
    assert_eq!(fake.commits(), 2, "nothing to do: no tool run");
    let nft = FakeFirewall::nftables();
    let mut b = Batch::new();
    for f in [TableFamily::Ip, TableFamily::Ip6, TableFamily::Inet] {
        b.ensure_table(Table::new(f, "t")).ensure_chain(&TableId::new(f, "t"), Chain::regular("c"));
    }
    nft.firewall().apply(&b).await.unwrap();
    assert_eq!(nft.commits(), 1, "one nft transaction");
}

// ---------------------------------------------------------------------------------------------
// Usability probes

#[tokio::test]
async fn a_missing_tool_is_unavailable() {
    let fw = Firewall::new(NftablesBackend::new().binary("fwt-no-such-nft"));
    let err = fw.probe().await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("fwt-no-such-nft"), "{err}");
    let t = TableId::new(TableFamily::Inet, "t");
    assert_eq!(kind_of(fw.read_table(&t).await), FirewallErrorKind::Unavailable);
    assert_eq!(kind_of(fw.ensure_table(Table::new(TableFamily::Inet, "t")).await), FirewallErrorKind::Unavailable);
}

#[tokio::test]
#[ignore = "needs root"]
async fn go_probes_find_both_tools_usable_in_a_namespace() {
    let ns = temp_ns();
    let netns = ns.netns().unwrap();
    assert!(cni_sdk::firewall::supports_iptables(Some(&netns)).await);
    assert!(cni_sdk::firewall::supports_nftables(Some(&netns)).await);
}

// ---------------------------------------------------------------------------------------------
// nftables: the netlink backend and `nft` read each other's rules

/// Writes the sample rules with one nftables transport and lists them with the other, both ways:
/// the netlink backend encodes rules as nft does, and decodes what nft writes.
async fn nft_and_netlink_read_each_others_rules(family: TableFamily) {
    let env = Env::nft_netlink(family).await;
    let netns = env._ns.as_ref().unwrap().netns().unwrap();
    let nft = Firewall::new(NftablesBackend::new().in_netns(netns));
    let rules = sample_rules(&env);
    for (writer, reader, what) in [(&env.fw, &nft, "netlink → nft"), (&nft, &env.fw, "nft → netlink")] {
        let chain = env.nat.chain("FWT-CROSS");
        let mut b = Batch::new();
        b.ensure_chain(&env.nat, Chain::regular("FWT-TARGET")).ensure_chain(&env.nat, Chain::regular("FWT-CROSS"));
        for r in &rules {
            b.append(&chain, r.clone());
        }
        writer.apply(&b).await.unwrap();
        let listed: Vec<Rule> = reader.list_rules(&chain).await.unwrap().into_iter().map(|l| l.rule).collect();
        for (i, (got, want)) in listed.iter().zip(&rules).enumerate() {
            assert_eq!(got, want, "{what}: rule {i}");
        }
        assert_eq!(listed.len(), rules.len(), "{what}");
        // The reader deletes them by its own handles and comments.
        assert_eq!(reader.delete_rules_where(&chain, |_| true).await.unwrap(), rules.len(), "{what}");
        assert!(writer.list_rules(&chain).await.unwrap().is_empty(), "{what}");
    }
    // Comments of tables and chains, both ways.
    let t = Table::new(env.nat.family, "fwt_cross").with_comment("Masquerading for plugins from github.com/x/y");
    let mut b = Batch::new();
    b.ensure_table(t.clone()).ensure_chain(&t.id(), Chain::regular("checks").with_comment("a \\ comment"));
    env.fw.apply(&b).await.unwrap();
    let state = nft.read_table(&t.id()).await.unwrap().unwrap();
    assert_eq!(state.table, t);
    assert_eq!(state.chain("checks").unwrap().chain.comment.as_deref(), Some("a \\ comment"));
    assert!(env.fw.list_tables().await.unwrap().contains(&t));
    assert_eq!(nft.list_tables().await.unwrap(), env.fw.list_tables().await.unwrap());
}

#[tokio::test]
#[ignore = "needs root"]
async fn nft_and_netlink_read_each_others_rules_ip() {
    nft_and_netlink_read_each_others_rules(TableFamily::Ip).await
}

#[tokio::test]
#[ignore = "needs root"]
async fn nft_and_netlink_read_each_others_rules_ip6() {
    nft_and_netlink_read_each_others_rules(TableFamily::Ip6).await
}

#[tokio::test]
#[ignore = "needs root"]
async fn nft_and_netlink_read_each_others_rules_inet() {
    nft_and_netlink_read_each_others_rules(TableFamily::Inet).await
}
