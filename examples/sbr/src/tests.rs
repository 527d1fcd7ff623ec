//! Unit tests on fake namespaces: tables, rules and routes as Go leaves them, table selection,
//! the `table` key, every error path with Go's text, every spec version, rollback, and DEL's
//! fixes (B22, B23, B24). No root, no binaries.

use std::net::IpAddr;

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{IpFamily, Net, NetError, NetErrorKind, Route, RouteProtocol, RouteScope, Rule, TABLE_MAIN};
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, ErrorCode, Interface, IpConfig};
use ipnet::IpNet;
use serde_json::{Value, json};

use super::Sbr;

const NS: &str = "/var/run/netns/ctr";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A container whose `eth0` has 10.226.60.5/24 and fd00:226:60::5/64, default routes through
/// .1 and ::1, and a route to 10.99.0.0/16 through .1 (what an interface plugin leaves).
struct Env {
    world: FakeNetwork,
    ctr: Net,
}

impl Env {
    async fn new() -> Self {
        let world = FakeNetwork::new();
        let ctr = world.add_namespace("ctr");
        let (_, eth0) = world.host().veth("veth0", "eth0").peer_netns(&ctr).execute().await.unwrap();
        ctr.set_up(eth0.index).await.unwrap();
        ctr.add_address(eth0.index, net("10.226.60.5/24")).await.unwrap();
        ctr.add_address(eth0.index, net("fd00:226:60::5/64")).await.unwrap();
        for (dst, gw) in [("0.0.0.0/0", "10.226.60.1"), ("10.99.0.0/16", "10.226.60.1"), ("::/0", "fd00:226:60::1")] {
            ctr.route(net(dst)).gateway(ip(gw)).dev(eth0.index).add().await.unwrap();
        }
        Self { world, ctr }
    }

    fn test(&self, cmd: Command, keys: Value) -> PluginTest<'_, Sbr> {
        self.bare(cmd, keys).prev_result(&prev())
    }

    /// Without a prevResult.
    fn bare(&self, cmd: Command, keys: Value) -> PluginTest<'_, Sbr> {
        PluginTest::new(&Sbr)
            .command(cmd)
            .config_keys(json!({"cniVersion": "1.0.0", "name": "sbrnet", "type": "sbr"}))
            .config_keys(keys)
            .netns(NS)
            .network(&self.world)
    }

    /// `(priority, from, table)` of the non-default rules, both families.
    async fn rules(&self) -> Vec<(u32, String, u32)> {
        self.ctr
            .rules()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.src.is_some())
            .map(|r| (r.priority, r.src.unwrap().to_string(), r.table))
            .collect()
    }

    /// The routes of `table` as `dst via gw src`.
    async fn table(&self, table: u32) -> Vec<String> {
        let mut v: Vec<String> = self.ctr.routes_in_table(table).await.unwrap().iter().map(show).collect();
        v.sort();
        v
    }
}

fn show(r: &Route) -> String {
    let mut s = r.dst.to_string();
    if let Some(g) = r.gateway {
        s += &format!(" via {g}");
    }
    if let Some(src) = r.source {
        s += &format!(" src {src}");
    }
    if r.protocol == RouteProtocol::Kernel {
        s += " proto kernel";
    }
    s
}

fn prev() -> CniResult {
    let mut r = CniResult::default();
    r.interfaces.push(Interface { sandbox: Some(NS.into()), ..Interface::new("eth0") });
    for (a, gw) in [("10.226.60.5/24", "10.226.60.1"), ("fd00:226:60::5/64", "fd00:226:60::1")] {
        r.ips.push(IpConfig { interface: Some(0), gateway: Some(ip(gw)), ..IpConfig::new(net(a)) });
    }
    r
}

/// Tables 100 and 101 exactly as Go 1.1.1 leaves them (checked on the kernel in the root tests).
async fn assert_gos_tables(env: &Env) {
    assert_eq!(
        env.table(100).await,
        [
            "0.0.0.0/0 via 10.226.60.1",
            "10.226.60.0/24 src 10.226.60.5 proto kernel",
            "10.99.0.0/16 via 10.226.60.1",
            "fd00:226:60::/64 proto kernel",
        ]
    );
    assert_eq!(env.table(101).await, ["::/0 via fd00:226:60::1", "fd00:226:60::/64 proto kernel"]);
    assert!(env.ctr.routes().await.unwrap().is_empty(), "the interface's routes left the main table");
}

#[tokio::test]
async fn every_version_adds_gos_tables_and_del_removes_the_rules() {
    for_each_version(|v| async move {
        let env = Env::new().await;
        let run = |cmd| env.test(cmd, json!({})).version(v).run();
        let r = run(Command::Add).await.expect_result();
        if v.has_chaining() {
            assert_eq!(r.ips, prev().ips, "{v}");
        }
        assert_eq!(
            env.rules().await,
            [(32765, "10.226.60.5/32".into(), 100), (32765, "fd00:226:60::5/128".into(), 101)],
            "{v}"
        );
        assert_gos_tables(&env).await;
        if v.has_check() {
            run(Command::Check).await.expect_success();
        }
        run(Command::Del).await.expect_success();
        assert!(env.rules().await.is_empty(), "{v}");
        run(Command::Del).await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn the_default_route_is_added_like_gos_netlink_library() {
    let env = Env::new().await;
    // Without a default route in main, the one sbr adds stays (else main's replaces it).
    env.ctr.route(net("0.0.0.0/0")).delete().await.unwrap();
    env.test(Command::Add, json!({})).run().await.expect_result();
    let default = env.ctr.routes_in_table(100).await.unwrap().into_iter().find(|r| r.dst.prefix_len() == 0).unwrap();
    assert_eq!((default.protocol, default.scope, default.metric), (RouteProtocol::Boot, RouteScope::Universe, 0));
    assert_eq!(default.gateway, Some(ip("10.226.60.1")));
}

#[tokio::test]
async fn tables_in_use_are_skipped_including_tables_without_a_rule() {
    let env = Env::new().await;
    // 100 has a rule, 101 only routes (Go 1.1.1 misses those and would take it), 103 a rule.
    env.ctr.rule().from(net("192.0.2.1/32")).table(100).add().await.unwrap();
    let lo = env.ctr.link("lo").await.unwrap();
    env.ctr.set_up(lo.index).await.unwrap();
    env.ctr.route(net("198.51.100.0/24")).dev(lo.index).table(101).add().await.unwrap();
    env.ctr.rule().from(net("192.0.2.3/32")).table(103).add().await.unwrap();
    env.test(Command::Add, json!({})).run().await.expect_result();
    let ours: Vec<u32> = env
        .rules()
        .await
        .into_iter()
        .filter(|r| r.1.starts_with("10.226") || r.1.starts_with("fd00"))
        .map(|r| r.2)
        .collect();
    assert_eq!(ours, [102, 104]);
    assert_eq!(env.table(101).await, ["198.51.100.0/24"]);
}

#[tokio::test]
async fn addresses_of_other_interfaces_are_skipped() {
    let env = Env::new().await;
    let mut p = prev();
    p.interfaces.push(Interface { sandbox: Some(NS.into()), ..Interface::new("net1") });
    p.ips[1].interface = Some(1);
    // No index, and an index out of range: both count as eth0's (Go).
    p.ips.push(IpConfig::new(net("10.226.61.5/24")));
    p.ips.push(IpConfig { interface: Some(7), ..IpConfig::new(net("10.226.62.5/24")) });
    env.test(Command::Add, json!({})).prev_result(&p).run().await.expect_result();
    let mut rules: Vec<(String, u32)> = env.rules().await.into_iter().map(|r| (r.1, r.2)).collect();
    rules.sort_by_key(|r| r.1);
    assert_eq!(rules, [("10.226.60.5/32".into(), 100), ("10.226.61.5/32".into(), 101), ("10.226.62.5/32".into(), 102)]);
    // Only an address with a gateway gets a default route; the generic IPv6 routes go to each
    // table; the IPv6 default route belongs to none of these addresses and is dropped, as Go does.
    assert_eq!(env.table(101).await, ["fd00:226:60::/64 proto kernel"]);
    assert_eq!(env.table(102).await, ["fd00:226:60::/64 proto kernel"]);
    assert!(env.ctr.routes().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_table_key_adds_only_rules() {
    let env = Env::new().await;
    let keys = json!({"table": 500});
    env.test(Command::Add, keys.clone()).run().await.expect_result();
    assert_eq!(env.rules().await, [(32765, "10.226.60.5/32".into(), 500), (32765, "fd00:226:60::5/128".into(), 500)]);
    assert!(env.table(500).await.is_empty());
    assert_eq!(env.ctr.routes().await.unwrap().len(), 5, "nothing leaves the main table");
    // DEL looks at table 500's rules only.
    env.ctr.rule().from(net("10.226.60.5/32")).table(100).add().await.unwrap();
    env.test(Command::Del, keys).run().await.expect_success();
    assert_eq!(env.rules().await, [(32764, "10.226.60.5/32".into(), 100)]);
}

#[tokio::test]
async fn bad_tables_are_refused() {
    let env = Env::new().await;
    for t in [json!(0), json!(-1), json!(4_294_967_296u64)] {
        let e = env.test(Command::Add, json!({"table": t})).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.starts_with(&format!("invalid table {t}")), "{}", e.msg);
    }
    assert!(env.rules().await.is_empty());
}

#[tokio::test]
async fn add_errors_are_gos() {
    let env = Env::new().await;
    let e = env.bare(Command::Add, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "This plugin must be called as chained plugin");
    let e = env
        .test(Command::Add, json!({}))
        .prev_result(&CniResult::default())
        .run()
        .await
        .expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "No IP addresses supplied on interface: eth0");
    let e = env.test(Command::Add, json!({})).ifname("eth9").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "Cannot find network interface eth9: Link not found");
    let e =
        env.test(Command::Add, json!({})).netns("/var/run/netns/gone").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "failed to Statfs \"/var/run/netns/gone\": no such file or directory");
    // With `table`, a failed rule (here the IPv6 one) takes the first one back.
    env.world.fail_when(|op| {
        (op.kind == OpKind::AddRule && op.detail.starts_with("inet6")).then(|| NetError::from_errno(17, "injected"))
    });
    let e = env.test(Command::Add, json!({"table": 100})).run().await.expect_error(ErrorCode::Internal);
    env.world.clear_failures();
    assert_eq!(e.msg, "failed to add rule: file exists");
    assert!(env.rules().await.is_empty(), "the IPv4 rule was not left behind");
}

#[tokio::test]
async fn a_failure_at_any_step_leaves_the_namespace_as_it_was() {
    let steps = [
        (OpKind::AddRule, 1, "Failed to add rule: operation not permitted"),
        (OpKind::AddRoute, 1, "Failed to add default route to fd00:226:60::1: operation not permitted"),
        (OpKind::ReplaceRoute, 3, "Failed to readd route: operation not permitted"),
        (OpKind::DeleteRoute, 2, "Failed to delete route: operation not permitted"),
    ];
    for (kind, skip, msg) in steps {
        let env = Env::new().await;
        let before_main = env.table(TABLE_MAIN).await;
        let seen = std::sync::atomic::AtomicUsize::new(0);
        env.world.fail_when(move |op| {
            (op.netns == "ctr" && op.kind == kind && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == skip)
                .then(|| NetError::from_errno(1, "injected"))
        });
        let e = env.test(Command::Add, json!({})).run().await.expect_error(ErrorCode::Internal);
        env.world.clear_failures();
        assert_eq!(e.msg, msg, "{kind:?}");
        assert!(env.rules().await.is_empty(), "{kind:?}: {:?}", env.rules().await);
        assert!(env.table(100).await.is_empty() && env.table(101).await.is_empty(), "{kind:?}");
        assert_eq!(env.table(TABLE_MAIN).await, before_main, "{kind:?}");
    }
}

#[tokio::test]
async fn del_deletes_only_its_own_rules() {
    let env = Env::new().await;
    // Rules from the same address that are not sbr's (Go deletes them all, bug B24).
    let src = net("10.226.60.5/32");
    env.ctr.rule().from(src).table(300).priority(500).add().await.unwrap();
    env.ctr.rule().from(src).table(TABLE_MAIN).priority(501).add().await.unwrap();
    env.ctr.rule().from(src).fwmark(7).table(102).priority(502).add().await.unwrap();
    env.ctr.rule().from(net("10.226.60.0/24")).table(103).priority(503).add().await.unwrap();
    env.test(Command::Add, json!({})).run().await.expect_result();
    // The kernel puts ours below the first of them.
    let ours: Vec<(u32, String, u32)> = env.rules().await.into_iter().filter(|r| r.2 == 100 || r.2 == 101).collect();
    assert_eq!(ours, [(499, "10.226.60.5/32".into(), 100), (32765, "fd00:226:60::5/128".into(), 101)]);
    // Table 300 holds routes through another link: not ours either.
    let lo = env.ctr.link("lo").await.unwrap();
    env.ctr.set_up(lo.index).await.unwrap();
    env.ctr.route(net("198.51.100.0/24")).dev(lo.index).table(300).add().await.unwrap();
    env.test(Command::Del, json!({})).run().await.expect_success();
    let left: Vec<u32> = env.rules().await.into_iter().map(|r| r.0).collect();
    assert_eq!(left, [500, 501, 502, 503]);
    assert!(env.ctr.rules().await.unwrap().iter().any(|r| r.fwmark == Some(7)));
}

#[tokio::test]
async fn del_is_idempotent_and_never_needs_the_namespace() {
    let env = Env::new().await;
    env.test(Command::Add, json!({})).run().await.expect_result();
    // The interface is gone (Go 1.1.1: `Failed to get link eth0: Link not found`, bug B23).
    let eth0 = env.ctr.link("eth0").await.unwrap();
    env.ctr.delete_link(eth0.index).await.unwrap();
    env.test(Command::Del, json!({})).run().await.expect_success();
    // The namespace is gone: success, and no file appears at its path (Go bug B22).
    let gone = "/var/run/netns/cnitest-m3-sbr-never-there";
    env.test(Command::Del, json!({})).netns(gone).run().await.expect_success();
    assert!(!std::path::Path::new(gone).exists());
    env.test(Command::Del, json!({})).unset("CNI_NETNS").run().await.expect_success();
}

#[tokio::test]
async fn del_reports_the_last_failed_rule_and_goes_on() {
    let env = Env::new().await;
    env.test(Command::Add, json!({})).run().await.expect_result();
    env.world.fail_next_in("ctr", OpKind::DeleteRule, NetErrorKind::PermissionDenied);
    let e = env.test(Command::Del, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert!(e.msg.starts_with("Failed to delete rule "), "{}", e.msg);
    // The other rule went.
    assert_eq!(env.rules().await.len(), 1);
    env.test(Command::Del, json!({})).run().await.expect_success();
    assert!(env.rules().await.is_empty());
}

#[tokio::test]
async fn check_and_status_succeed() {
    let env = Env::new().await;
    env.bare(Command::Check, json!({})).run().await.expect_success();
    env.test(Command::Status, json!({"cniVersion": "1.1.0"})).run().await.expect_success();
    env.test(Command::Gc, json!({"cniVersion": "1.1.0"})).run().await.expect_success();
}

#[test]
fn rule_shapes() {
    use std::collections::BTreeMap;
    let addrs = [ip("10.0.0.5")];
    let mut tables = BTreeMap::new();
    tables.insert(100, (true, false));
    tables.insert(101, (true, true));
    let mut r = Rule::new(IpFamily::V4);
    r.src = Some(net("10.0.0.5/32"));
    r.table = 100;
    assert!(super::is_own_rule(&r, &addrs, None, &tables));
    assert!(!super::is_own_rule(&r, &addrs, Some(7), &tables));
    r.table = 101;
    assert!(!super::is_own_rule(&r, &addrs, None, &tables), "routes through another link");
    r.table = 102;
    assert!(!super::is_own_rule(&r, &addrs, None, &tables), "an empty table");
    assert!(super::is_own_rule(&r, &addrs, Some(102), &tables));
    r.dst = Some(net("1.0.0.0/8"));
    assert!(!super::is_own_rule(&r, &addrs, Some(102), &tables));
}
