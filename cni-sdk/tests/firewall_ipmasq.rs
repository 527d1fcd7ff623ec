//! Go's ipMasq layouts through `cni_sdk::firewall::ipmasq`, on both backends, against the fakes
//! and (as root, inside a throwaway `fwt-*` namespace) the real iptables, ip6tables and nft:
//! `cargo test -p cni-sdk --features firewall,test-util --test firewall_ipmasq -- --include-ignored`.
//!
//! The golden tests pin the exact rules Go's bridge/ptp create (notes §16.2), as
//! `iptables -t nat -S` and `nft list table` print them.
#![cfg(all(feature = "firewall", feature = "test-util"))]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use cni_sdk::firewall::fake::FakeFirewall;
use cni_sdk::firewall::ipmasq::{Attachment, IpMasq, IpMasqBackend, NFT_CHECKS_CHAIN, NFT_TABLE};
use cni_sdk::firewall::{
    Batch, Chain, FirewallErrorKind, IpFamily, Match, Rule, TableFamily, TableId, TableState, Verdict, names,
};
use cni_sdk::netns::TempNetns;
use ipnet::IpNet;

const NET: &str = "mynet";
/// `names::chain_name("mynet", "ctr1")`, pinned.
const CHAIN: &str = "CNI-5145007e2a8415ce07579739";
/// `names::nft_ipmasq_comment("mynet", "eth0", "ctr1")`, pinned.
const NFT_COMMENT: &str = "d23676b4f2d9fe04-7883a6f9ce71eedb, net: mynet, if: eth0, id: ctr1";

struct Env {
    masq: IpMasq,
    fakes: Option<(FakeFirewall, FakeFirewall)>,
    ns: Option<TempNetns>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Env {
    fn fake() -> Self {
        let (ipt, nft) = (FakeFirewall::iptables(), FakeFirewall::nftables());
        let masq = IpMasq::new(ipt.firewall(), nft.firewall()).unwrap();
        Self { masq, fakes: Some((ipt, nft)), ns: None }
    }

    fn real() -> Self {
        let name = format!("fwt-{}-m{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let ns = TempNetns::create(&name).expect("create test namespace (needs root)");
        Self { masq: IpMasq::in_netns(ns.netns().unwrap()), fakes: None, ns: Some(ns) }
    }

    /// `iptables -t nat -S` (or `ip6tables`) as the real tool or the fake prints it.
    fn iptables_save(&self, family: IpFamily) -> String {
        match (&self.fakes, &self.ns) {
            (Some((ipt, _)), _) => ipt.save(&TableId::iptables(family, "nat")),
            (None, Some(ns)) => {
                let tool = if family == IpFamily::V4 { "iptables" } else { "ip6tables" };
                let out = ns
                    .netns()
                    .unwrap()
                    .run(move || Command::new(tool).args(["-w", "5", "-t", "nat", "-S"]).output().unwrap())
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                // iptables-nft may warn about legacy tables on its first line.
                String::from_utf8(out.stdout)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(|l| format!("{l}\n"))
                    .collect()
            }
            (None, None) => unreachable!("an environment is fake or real"),
        }
    }

    async fn nft_table(&self) -> Option<TableState> {
        self.masq.nftables().read_table(&TableId::new(TableFamily::Inet, NFT_TABLE)).await.unwrap()
    }

    /// The masquerade rules of the nftables layout.
    async fn nft_rules(&self) -> Vec<Rule> {
        match self.nft_table().await {
            Some(t) => {
                t.chain(NFT_CHECKS_CHAIN).map(|c| c.rules.iter().map(|r| r.rule.clone()).collect()).unwrap_or_default()
            }
            None => Vec::new(),
        }
    }

    /// The CNI chains and POSTROUTING rules left in both iptables nat tables.
    fn iptables_leftovers(&self) -> Vec<String> {
        [IpFamily::V4, IpFamily::V6]
            .into_iter()
            .flat_map(|f| {
                self.iptables_save(f)
                    .lines()
                    .filter(|l| l.contains("CNI-") || l.starts_with("-A POSTROUTING"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn dual() -> Vec<IpNet> {
    nets(&["10.210.100.5/24", "fd00:210:100::5/64"])
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn setup_check_teardown_dual_stack(env: Env, backend: IpMasqBackend) {
    let addrs = dual();
    env.masq.setup(backend, NET, "eth0", "ctr1", &addrs).await.unwrap();
    env.masq.check(backend, NET, "eth0", "ctr1", &addrs).await.unwrap();
    // Setting up again leaves the same rules.
    let (v4, v6, nft) = (env.iptables_save(IpFamily::V4), env.iptables_save(IpFamily::V6), env.nft_rules().await);
    env.masq.setup(backend, NET, "eth0", "ctr1", &addrs).await.unwrap();
    assert_eq!(env.iptables_save(IpFamily::V4), v4);
    assert_eq!(env.iptables_save(IpFamily::V6), v6);
    assert_eq!(env.nft_rules().await, nft);
    // Another container's check fails, naming what is missing.
    let err = env.masq.check(backend, NET, "eth0", "ctr2", &addrs).await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::NotFound, "{err}");
    // Teardown (without addresses) removes everything; twice is fine.
    env.masq.teardown(NET, "eth0", "ctr1").await.unwrap();
    env.masq.teardown(NET, "eth0", "ctr1").await.unwrap();
    assert_eq!(kind(env.masq.check(backend, NET, "eth0", "ctr1", &addrs).await), FirewallErrorKind::NotFound);
    assert!(env.iptables_leftovers().is_empty(), "{:?}", env.iptables_leftovers());
    assert!(env.nft_rules().await.is_empty());
}

fn kind(r: Result<(), cni_sdk::firewall::FirewallError>) -> FirewallErrorKind {
    r.expect_err("expected an error").kind()
}

async fn several_addresses_of_one_family_all_masquerade(env: Env, backend: IpMasqBackend) {
    // Go bug B28 (nftables, fixed in v1.6.1): only the last address kept its rule.
    let addrs = nets(&["10.210.101.5/24", "10.210.102.7/24", "fd00:210:101::5/64"]);
    env.masq.setup(backend, NET, "eth0", "ctr1", &addrs).await.unwrap();
    env.masq.check(backend, NET, "eth0", "ctr1", &addrs).await.unwrap();
    for a in &addrs {
        env.masq.check(backend, NET, "eth0", "ctr1", std::slice::from_ref(a)).await.unwrap();
    }
    if backend == IpMasqBackend::Nftables {
        assert_eq!(env.nft_rules().await.len(), 3);
        // Setting up again with other addresses replaces the attachment's rules.
        let new = nets(&["10.210.103.9/24"]);
        env.masq.setup(backend, NET, "eth0", "ctr1", &new).await.unwrap();
        env.masq.check(backend, NET, "eth0", "ctr1", &new).await.unwrap();
        assert_eq!(env.nft_rules().await.len(), 1);
    }
    env.masq.teardown(NET, "eth0", "ctr1").await.unwrap();
    assert!(env.iptables_leftovers().is_empty(), "{:?}", env.iptables_leftovers());
    assert!(env.nft_rules().await.is_empty());
}

async fn teardown_cleans_up_after_an_interrupted_add(env: Env, backend: IpMasqBackend) {
    // Nothing at all yet (the ADD failed before masquerading): teardown succeeds on both backends.
    env.masq.teardown(NET, "eth0", "ctr1").await.unwrap();
    match backend {
        IpMasqBackend::Iptables => {
            // The chain exists with one rule and no POSTROUTING jump yet (Go bug B2 failed
            // here under iptables-nft); and in IPv6, a jump to an emptied chain.
            let (nat4, nat6) = (TableId::iptables(IpFamily::V4, "nat"), TableId::iptables(IpFamily::V6, "nat"));
            let mut b = Batch::new();
            b.ensure_chain(&nat4, Chain::regular(CHAIN))
                .append(
                    &nat4.chain(CHAIN),
                    Rule::new(Verdict::Accept).when(Match::Destination("10.210.100.0/24".parse().unwrap())),
                )
                .ensure_chain(&nat6, Chain::regular(CHAIN))
                .append(
                    &nat6.chain("POSTROUTING"),
                    Rule::new(Verdict::Jump(CHAIN.into())).when(Match::Source("fd00:210:100::5/128".parse().unwrap())),
                );
            env.masq.iptables().apply(&b).await.unwrap();
            assert_eq!(env.iptables_leftovers().len(), 4, "{:?}", env.iptables_leftovers());
        }
        IpMasqBackend::Nftables => {
            // Table and chains, no rule.
            env.masq.setup(backend, NET, "eth0", "ctr1", &[]).await.unwrap();
            assert!(env.nft_table().await.is_some());
        }
    }
    env.masq.teardown(NET, "eth0", "ctr1").await.unwrap();
    assert!(env.iptables_leftovers().is_empty(), "{:?}", env.iptables_leftovers());
    assert!(env.nft_rules().await.is_empty());
}

async fn gc_removes_only_stale_attachments_of_the_network(env: Env, backend: IpMasqBackend) {
    let addr = |i: u8| {
        vec![format!("10.210.110.{i}/24").parse::<IpNet>().unwrap(), format!("fd00:210:110::{i}/64").parse().unwrap()]
    };
    for (i, (net, id)) in [(NET, "c1"), (NET, "c2"), (NET, "c3"), ("othernet", "c4")].into_iter().enumerate() {
        env.masq.setup(backend, net, "eth0", id, &addr(i as u8 + 1)).await.unwrap();
    }
    // c1 stays; c2 stays with another interface only for nftables (iptables ignores the name).
    let valid = [
        Attachment { container_id: "c1".into(), ifname: "eth0".into() },
        Attachment { container_id: "c2".into(), ifname: "eth1".into() },
    ];
    env.masq.gc(NET, &valid).await.unwrap();
    env.masq.check(backend, NET, "eth0", "c1", &addr(1)).await.unwrap();
    let c2 = env.masq.check(backend, NET, "eth0", "c2", &addr(2)).await;
    match backend {
        IpMasqBackend::Iptables => c2.unwrap(),
        IpMasqBackend::Nftables => assert_eq!(kind(c2), FirewallErrorKind::NotFound),
    }
    assert_eq!(kind(env.masq.check(backend, NET, "eth0", "c3", &addr(3)).await), FirewallErrorKind::NotFound);
    env.masq.check(backend, "othernet", "eth0", "c4", &addr(4)).await.unwrap();
    // GC with nothing valid empties the network; the other network is untouched.
    env.masq.gc(NET, &[]).await.unwrap();
    assert_eq!(kind(env.masq.check(backend, NET, "eth0", "c1", &addr(1)).await), FirewallErrorKind::NotFound);
    env.masq.check(backend, "othernet", "eth0", "c4", &addr(4)).await.unwrap();
    env.masq.teardown("othernet", "eth0", "c4").await.unwrap();
    assert!(env.iptables_leftovers().is_empty(), "{:?}", env.iptables_leftovers());
    assert!(env.nft_rules().await.is_empty());
}

async fn iptables_layout_is_gos(env: Env) {
    env.masq.setup(IpMasqBackend::Iptables, NET, "eth0", "ctr1", &dual()).await.unwrap();
    assert_eq!(names::chain_name(NET, "ctr1"), CHAIN);
    let c = r#""name: \"mynet\" id: \"ctr1\"""#;
    let head = "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n";
    assert_eq!(
        env.iptables_save(IpFamily::V4),
        format!(
            "{head}-N {CHAIN}\n\
             -A POSTROUTING -s 10.210.100.5/32 -m comment --comment {c} -j {CHAIN}\n\
             -A {CHAIN} -d 10.210.100.0/24 -m comment --comment {c} -j ACCEPT\n\
             -A {CHAIN} ! -d 224.0.0.0/4 -m comment --comment {c} -j MASQUERADE\n"
        )
    );
    assert_eq!(
        env.iptables_save(IpFamily::V6),
        format!(
            "{head}-N {CHAIN}\n\
             -A POSTROUTING -s fd00:210:100::5/128 -m comment --comment {c} -j {CHAIN}\n\
             -A {CHAIN} -d fd00:210:100::/64 -m comment --comment {c} -j ACCEPT\n\
             -A {CHAIN} ! -d ff00::/8 -m comment --comment {c} -j MASQUERADE\n"
        )
    );
}

async fn nftables_layout_is_gos(env: Env) {
    env.masq.setup(IpMasqBackend::Nftables, NET, "eth0", "ctr1", &dual()).await.unwrap();
    assert_eq!(names::nft_ipmasq_comment(NET, "eth0", "ctr1"), NFT_COMMENT);
    if let Some(ns) = &env.ns {
        // Exactly what Go's knftables transaction leaves (notes §16.2).
        let out = ns
            .netns()
            .unwrap()
            .run(|| Command::new("nft").args(["list", "table", "inet", NFT_TABLE]).output().unwrap())
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let want = format!(
            "table inet cni_plugins_masquerade {{\n\
             \tcomment \"Masquerading for plugins from github.com/containernetworking/plugins\"\n\
             \tchain masq_checks {{\n\
             \t\tcomment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\"\n\
             \t\tip saddr 10.210.100.5 ip daddr != 10.210.100.0/24 masquerade comment \"{NFT_COMMENT}\"\n\
             \t\tip6 saddr fd00:210:100::5 ip6 daddr != fd00:210:100::/64 masquerade comment \"{NFT_COMMENT}\"\n\
             \t}}\n\
             \n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\tip daddr 224.0.0.0/4 return\n\
             \t\tip6 daddr ff00::/8 return\n\
             \t\tgoto masq_checks\n\
             \t}}\n\
             }}\n"
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    }
    // The same, as the model lists it (real and fake).
    let t = env.nft_table().await.unwrap();
    assert_eq!(
        t.table.comment.as_deref(),
        Some("Masquerading for plugins from github.com/containernetworking/plugins")
    );
    let names: Vec<&str> = t.chains.iter().map(|c| c.chain.name.as_str()).collect();
    assert_eq!(names, ["masq_checks", "postrouting"]);
    let post: Vec<Rule> = t.chain("postrouting").unwrap().rules.iter().map(|r| r.rule.clone()).collect();
    assert_eq!(
        post,
        [
            Rule::new(Verdict::Return).when(Match::Destination("224.0.0.0/4".parse().unwrap())),
            Rule::new(Verdict::Return).when(Match::Destination("ff00::/8".parse().unwrap())),
            Rule::new(Verdict::Goto("masq_checks".into())),
        ]
    );
    assert_eq!(
        env.nft_rules().await,
        [
            Rule::new(Verdict::Masquerade)
                .when(Match::Source("10.210.100.5/32".parse().unwrap()))
                .when(!Match::Destination("10.210.100.0/24".parse().unwrap()))
                .with_comment(NFT_COMMENT),
            Rule::new(Verdict::Masquerade)
                .when(Match::Source("fd00:210:100::5/128".parse().unwrap()))
                .when(!Match::Destination("fd00:210:100::/64".parse().unwrap()))
                .with_comment(NFT_COMMENT),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Instantiation

macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        mod fake_iptables {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Env::fake(), IpMasqBackend::Iptables).await } )*
        }
        mod fake_nftables {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Env::fake(), IpMasqBackend::Nftables).await } )*
        }
        mod iptables {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() {
                super::$name(Env::real(), IpMasqBackend::Iptables).await
            } )*
        }
        mod nftables {
            use super::*;
            $( #[tokio::test] #[ignore = "needs root"] async fn $name() {
                super::$name(Env::real(), IpMasqBackend::Nftables).await
            } )*
        }
    };
}

per_backend!(
    setup_check_teardown_dual_stack,
    several_addresses_of_one_family_all_masquerade,
    teardown_cleans_up_after_an_interrupted_add,
    gc_removes_only_stale_attachments_of_the_network,
);

#[tokio::test]
async fn fake_iptables_layout_is_gos() {
    iptables_layout_is_gos(Env::fake()).await;
}

#[tokio::test]
#[ignore = "needs root"]
async fn iptables_layout_is_gos_in_iptables_save() {
    iptables_layout_is_gos(Env::real()).await;
}

#[tokio::test]
async fn fake_nftables_layout_is_gos() {
    nftables_layout_is_gos(Env::fake()).await;
}

#[tokio::test]
#[ignore = "needs root"]
async fn nftables_layout_is_gos_in_nft_list() {
    nftables_layout_is_gos(Env::real()).await;
}

// ---------------------------------------------------------------------------------------------
// Fake-only: usability of the backends

#[tokio::test]
async fn fake_only_backend_selection_follows_go() {
    let env = Env::fake();
    let (ipt, nft) = env.fakes.as_ref().unwrap();
    let select = |r: Option<&'static str>| {
        let masq = env.masq.clone();
        async move { masq.select_backend(r).await }
    };
    assert_eq!(select(None).await.unwrap(), IpMasqBackend::Iptables);
    assert_eq!(select(Some("nftables")).await.unwrap(), IpMasqBackend::Nftables);
    assert_eq!(select(Some("iptables")).await.unwrap(), IpMasqBackend::Iptables);
    let err = select(Some("ipfw")).await.unwrap_err();
    assert_eq!(err.to_string(), "unknown ipmasq backend \"ipfw\"");
    ipt.set_usable(false);
    assert_eq!(select(None).await.unwrap(), IpMasqBackend::Nftables, "iptables unusable, nftables usable");
    nft.set_usable(false);
    assert_eq!(select(None).await.unwrap(), IpMasqBackend::Iptables, "neither usable: iptables");
    ipt.set_usable(true);
    assert_eq!(select(None).await.unwrap(), IpMasqBackend::Iptables);
    // An explicit choice is kept whatever the probes say.
    assert_eq!(select(Some("nftables")).await.unwrap(), IpMasqBackend::Nftables);
}

#[tokio::test]
async fn fake_only_teardown_and_gc_report_errors_of_usable_backends_only() {
    let env = Env::fake();
    let (ipt, nft) = env.fakes.as_ref().unwrap();
    env.masq.setup(IpMasqBackend::Iptables, NET, "eth0", "ctr1", &dual()).await.unwrap();
    // nftables missing: its failure is not reported, iptables is still cleaned up.
    nft.set_usable(false);
    env.masq.teardown(NET, "eth0", "ctr1").await.unwrap();
    assert!(env.iptables_leftovers().is_empty());
    env.masq.gc(NET, &[]).await.unwrap();
    // A usable backend's failure is reported, with the operation in the message.
    env.masq.setup(IpMasqBackend::Iptables, NET, "eth0", "ctr1", &dual()).await.unwrap();
    ipt.fail_next_commit(FirewallErrorKind::PermissionDenied, "iptables: Permission denied (you must be root)");
    let err = env.masq.teardown(NET, "eth0", "ctr1").await.unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::PermissionDenied);
    assert!(err.to_string().contains("tear down iptables masquerading for container ctr1"), "{err}");
    // Setup reports its failure too.
    ipt.fail_next_commit(FirewallErrorKind::PermissionDenied, "denied");
    let err = env.masq.setup(IpMasqBackend::Iptables, NET, "eth0", "ctr2", &dual()).await.unwrap_err();
    assert!(err.to_string().starts_with("set up iptables masquerading for container ctr2"), "{err}");
}

#[tokio::test]
async fn fake_only_ipmasq_needs_one_firewall_of_each_kind() {
    let ipt = FakeFirewall::iptables();
    let err = IpMasq::new(ipt.firewall(), ipt.firewall()).unwrap_err();
    assert_eq!(err.kind(), FirewallErrorKind::InvalidArgument);
}
