//! Routes beyond the main table: listing every table, replacing, routes by link, moving routes
//! between tables (what Go's sbr and vrf plugins do), `keep_addr_on_down`; VRF enslaving on the
//! fake only (this kernel has no VRF driver).

use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::net::{IpFamily, Net, NetErrorKind, Route, RouteProtocol, RouteScope, TABLE_MAIN};
use ipnet::IpNet;

use super::{Env, carrier_veth, err_kind, ip, net, suite, up_bridge, user_addrs, user_routes};

fn dsts(routes: &[Route]) -> Vec<(IpNet, u32)> {
    let mut v: Vec<(IpNet, u32)> = routes.iter().map(|r| (r.dst, r.table)).collect();
    v.sort();
    v
}

async fn replacing_routes(env: Env) {
    let n = &env.a;
    let i = up_bridge(n, "rt0").await;
    n.add_address(i, net("10.221.3.1/24")).await.unwrap();
    n.add_address(i, net("fd00:221:3::1/64")).await.unwrap();
    n.route(net("10.221.99.0/24")).gateway(ip("10.221.3.254")).metric(100).add().await.unwrap();
    // Same table, destination and metric: replaced.
    n.route(net("10.221.99.0/24")).dev(i).metric(100).replace().await.unwrap();
    let routes = user_routes(n.routes().await.unwrap());
    let r: Vec<&Route> = routes.iter().filter(|r| r.dst == net("10.221.99.0/24")).collect();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].gateway, r[0].oif, r[0].metric, r[0].scope), (None, Some(i), 100, RouteScope::Link));
    // Another metric is another route; a new destination is simply added.
    n.route(net("10.221.99.0/24")).gateway(ip("10.221.3.254")).metric(200).replace().await.unwrap();
    n.route(net("10.221.98.0/24")).gateway(ip("10.221.3.254")).replace().await.unwrap();
    let routes = user_routes(n.routes().await.unwrap());
    assert_eq!(routes.iter().filter(|r| r.dst == net("10.221.99.0/24")).count(), 2);
    assert!(routes.iter().any(|r| r.dst == net("10.221.98.0/24") && r.gateway == Some(ip("10.221.3.254"))));
    // IPv6 (default metric 1024 on both sides).
    n.route(net("fd00:221:99::/64")).gateway(ip("fd00:221:3::fe")).add().await.unwrap();
    let mut r = Route::new(net("fd00:221:99::/64"));
    r.oif = Some(i);
    n.replace_route(&r).await.unwrap();
    let v6: Vec<Route> =
        user_routes(n.routes().await.unwrap()).into_iter().filter(|r| r.dst == net("fd00:221:99::/64")).collect();
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert_eq!((v6[0].gateway, v6[0].metric), (None, 1024));
    // Replacing checks like adding.
    assert_eq!(
        err_kind(n.route(net("10.221.97.0/24")).gateway(ip("10.221.4.1")).replace().await),
        NetErrorKind::Unreachable
    );
}

async fn every_table(env: Env) {
    let n = &env.a;
    let i = up_bridge(n, "rt1").await;
    let j = up_bridge(n, "rt2").await;
    n.add_address(i, net("10.221.4.1/24")).await.unwrap();
    n.add_address(j, net("10.221.5.1/24")).await.unwrap();
    n.add_address(j, net("fd00:221:5::1/64")).await.unwrap();
    n.route(net("10.221.90.0/24")).dev(i).table(100).add().await.unwrap();
    n.route(net("10.221.91.0/24")).dev(j).table(1000).add().await.unwrap();
    n.route(net("fd00:221:91::/64")).dev(j).table(1000).add().await.unwrap();
    n.route(net("10.221.92.0/24")).gateway(ip("10.221.5.254")).add().await.unwrap();
    let all = user_routes(n.all_routes().await.unwrap());
    let want = [
        (net("10.221.4.0/24"), TABLE_MAIN),
        (net("10.221.5.0/24"), TABLE_MAIN),
        (net("10.221.90.0/24"), 100),
        (net("10.221.91.0/24"), 1000),
        (net("10.221.92.0/24"), TABLE_MAIN),
        (net("fd00:221:5::/64"), TABLE_MAIN),
        (net("fd00:221:91::/64"), 1000),
    ];
    assert_eq!(dsts(&all), want);
    let first_v6 = all.iter().position(|r| r.dst.addr().is_ipv6()).unwrap();
    assert!(all[first_v6..].iter().all(|r| r.dst.addr().is_ipv6()), "IPv4 first");
    assert_eq!(
        dsts(&n.routes_in_table(1000).await.unwrap()),
        want[3..4].iter().chain(&want[6..]).copied().collect::<Vec<_>>()
    );
    // Routes by output link: main table only.
    let of_j = user_routes(n.routes_of_link(j).await.unwrap());
    assert_eq!(dsts(&of_j), [want[1], want[4], want[5]]);
    assert!(of_j.iter().all(|r| r.oif == Some(j)));
    assert!(n.routes_of_link(4242).await.unwrap().is_empty());
}

/// What Go's sbr plugin does for 10.221.6.5/24 with gateway 10.221.6.1 on `eth0`: a rule
/// `from 10.221.6.5 lookup 100` at the kernel's priority, the link's routes moved from main
/// into table 100.
async fn moving_routes_like_sbr(env: Env) {
    let n = &env.b;
    let eth = carrier_veth(n, "rt3", "rt4").await.index;
    n.add_address(eth, net("10.221.6.5/24")).await.unwrap();
    n.route(net("0.0.0.0/0")).gateway(ip("10.221.6.1")).add().await.unwrap();
    n.route(net("10.221.96.0/24")).gateway(ip("10.221.6.1")).metric(50).add().await.unwrap();
    // The first table from 100 that no rule uses.
    let used: Vec<u32> = n.rules().await.unwrap().iter().map(|r| r.table).collect();
    let table = (100..).find(|t| !used.contains(t)).unwrap();
    assert_eq!(table, 100);
    n.rule().from(net("10.221.6.5/32")).table(table).add().await.unwrap();
    let rule = n.family_rules(IpFamily::V4).await.unwrap()[1].clone();
    assert_eq!((rule.priority, rule.table, rule.src), (32765, 100, Some(net("10.221.6.5/32"))));
    // Connected route first, so the gateway stays reachable in the new table.
    let mut snapshot = user_routes(n.routes_of_link(eth).await.unwrap());
    snapshot.sort_by_key(|r| r.gateway.is_some());
    assert_eq!(snapshot.len(), 3);
    for r in &snapshot {
        let moved = n.move_route(r, table).await.unwrap();
        assert_eq!((moved.dst, moved.table, moved.gateway), (r.dst, table, r.gateway));
    }
    assert!(user_routes(n.routes_of_link(eth).await.unwrap()).is_empty(), "main is empty for the link");
    let t = user_routes(n.routes_in_table(table).await.unwrap());
    assert_eq!(dsts(&t), [(net("0.0.0.0/0"), 100), (net("10.221.6.0/24"), 100), (net("10.221.96.0/24"), 100)]);
    let connected = t.iter().find(|r| r.dst == net("10.221.6.0/24")).unwrap();
    assert_eq!(
        (connected.protocol, connected.scope, connected.source),
        (RouteProtocol::Kernel, RouteScope::Link, Some(ip("10.221.6.5")))
    );
    assert_eq!(t.iter().find(|r| r.dst == net("10.221.96.0/24")).unwrap().metric, 50);
    // Moving into the same table does nothing; a route that is gone cannot move.
    let again = n.move_route(connected, table).await.unwrap();
    assert_eq!(again.table, table);
    let mut ghost = Route::new(net("10.221.95.0/24"));
    ghost.oif = Some(eth);
    ghost.scope = RouteScope::Link;
    assert_eq!(err_kind(n.move_route(&ghost, 200).await), NetErrorKind::NotFound);
    assert!(n.routes_in_table(200).await.unwrap().is_empty(), "the copy was removed again");
}

async fn ipv6_addresses_survive_down_with_keep_addr_on_down(env: Env) {
    let n = &env.a;
    let i = up_bridge(n, "rt5").await;
    let j = up_bridge(n, "rt6").await;
    n.add_address(i, net("fd00:221:7::1/64")).await.unwrap();
    n.add_address(j, net("fd00:221:8::1/64")).await.unwrap();
    n.set_sysctl("net/ipv6/conf/rt5/keep_addr_on_down", "1").await.unwrap();
    n.set_down(i).await.unwrap();
    n.set_down(j).await.unwrap();
    let kept: Vec<IpNet> = user_addrs(n.addresses().await.unwrap()).iter().map(|a| a.addr).collect();
    assert_eq!(kept, [net("fd00:221:7::1/64")]);
    assert!(user_routes(n.routes().await.unwrap()).is_empty(), "routes go anyway");
    n.set_up(i).await.unwrap();
    assert_eq!(dsts(&user_routes(n.routes().await.unwrap())), [(net("fd00:221:7::/64"), TABLE_MAIN)]);
    // "all" wins when set.
    n.set_sysctl("net/ipv6/conf/all/keep_addr_on_down", "1").await.unwrap();
    n.set_up(j).await.unwrap();
    n.add_address(j, net("fd00:221:8::1/64")).await.unwrap();
    n.set_down(j).await.unwrap();
    assert_eq!(user_addrs(n.link_addresses(j).await.unwrap()).len(), 1);
}

suite!(
    prefix = "nt2";
    replacing_routes,
    every_table,
    moving_routes_like_sbr,
    ipv6_addresses_survive_down_with_keep_addr_on_down,
);

async fn vrf_with_port(n: &Net, table: u32) -> (u32, u32) {
    let vrf = n.vrf("vrf-blue", table).execute().await.unwrap().index;
    n.set_up(vrf).await.unwrap();
    let port = carrier_veth(n, "vp0", "vp1").await.index;
    n.add_address(port, net("10.221.8.2/24")).await.unwrap();
    n.add_address(port, net("fd00:221:8::2/64")).await.unwrap();
    n.route(net("0.0.0.0/0")).gateway(ip("10.221.8.1")).add().await.unwrap();
    n.route(net("10.221.80.0/24")).gateway(ip("10.221.8.1")).metric(7).add().await.unwrap();
    (vrf, port)
}

#[tokio::test]
async fn fake_only_vrf_adds_the_l3mdev_rule_once() {
    let world = FakeNetwork::new();
    let n = world.host();
    n.vrf("vrf-a", 10).execute().await.unwrap();
    n.vrf("vrf-b", 11).execute().await.unwrap();
    for family in [IpFamily::V4, IpFamily::V6] {
        let rules = n.family_rules(family).await.unwrap();
        let l3: Vec<_> = rules.iter().filter(|r| r.l3mdev).collect();
        assert_eq!(l3.len(), 1, "{rules:?}");
        assert_eq!((l3[0].priority, l3[0].table), (1000, 0));
        assert_eq!(l3[0].to_string(), "1000:\tfrom all lookup [l3mdev-table]");
        assert_eq!(rules[1], *l3[0], "after the local rule");
    }
    // Deleted, it does not come back with the next VRF (the kernel adds it once per namespace).
    let l3 = n.family_rules(IpFamily::V4).await.unwrap()[1].clone();
    n.delete_rule(&l3).await.unwrap();
    n.vrf("vrf-c", 12).execute().await.unwrap();
    assert!(!n.family_rules(IpFamily::V4).await.unwrap().iter().any(|r| r.l3mdev));
    // Another namespace gets its own.
    let other = world.add_namespace("other");
    other.vrf("vrf-a", 10).execute().await.unwrap();
    assert!(other.family_rules(IpFamily::V6).await.unwrap().iter().any(|r| r.l3mdev));
}

/// Go's vrf plugin before v1.4.0 (notes §15, B20): enslaving flushes the link's routes, only
/// the connected ones come back (in the VRF's table), IPv6 addresses go.
#[tokio::test]
async fn fake_only_enslaving_to_a_vrf_loses_routes() {
    let world = FakeNetwork::new();
    let n = world.host();
    let (vrf, port) = vrf_with_port(&n, 100).await;
    n.set_master(port, vrf).await.unwrap();
    assert!(n.routes_of_link(port).await.unwrap().is_empty(), "main has nothing left for the port");
    assert!(n.routes().await.unwrap().is_empty(), "the default route is gone too");
    assert_eq!(dsts(&n.routes_in_table(100).await.unwrap()), [(net("10.221.8.0/24"), 100)]);
    let addrs: Vec<IpNet> = user_addrs(n.link_addresses(port).await.unwrap()).iter().map(|a| a.addr).collect();
    assert_eq!(addrs, [net("10.221.8.2/24")], "IPv6 addresses go with keep_addr_on_down=0");
}

/// Go's vrf plugin from v1.4.0: save the universe-scope routes, enslave, re-add IPv6 addresses
/// and the saved routes in the VRF's table.
#[tokio::test]
async fn fake_only_enslaving_to_a_vrf_with_route_restore() {
    let world = FakeNetwork::new();
    let n = world.host();
    let (vrf, port) = vrf_with_port(&n, 100).await;
    // Universe scope, but not the IPv6 prefix route the address brings back by itself.
    let saved: Vec<Route> = n
        .routes_of_link(port)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.scope == RouteScope::Universe && r.protocol != RouteProtocol::Kernel)
        .collect();
    let v6: Vec<IpNet> = n
        .link_addresses(port)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.addr)
        .filter(|a| matches!(a, IpNet::V6(_)))
        .collect();
    assert_eq!((saved.len(), v6.len()), (2, 1));
    n.set_master(port, vrf).await.unwrap();
    for a in v6 {
        n.add_address(port, a).await.unwrap();
    }
    for r in &saved {
        let mut r = r.clone();
        r.table = 100;
        n.add_route(&r).await.unwrap();
    }
    assert_eq!(
        dsts(&n.routes_in_table(100).await.unwrap()),
        [
            (net("0.0.0.0/0"), 100),
            (net("10.221.8.0/24"), 100),
            (net("10.221.80.0/24"), 100),
            (net("fd00:221:8::/64"), 100)
        ]
    );
    assert!(n.routes().await.unwrap().is_empty());
    // Released from the VRF, the link is cycled again: connected routes back in main.
    n.set_no_master(port).await.unwrap();
    assert!(n.routes_in_table(100).await.unwrap().is_empty());
    assert_eq!(dsts(&n.routes().await.unwrap()), [(net("10.221.8.0/24"), TABLE_MAIN)]);
}

/// With `keep_addr_on_down` on, enslaving keeps the IPv6 addresses (and their prefix routes
/// come back in the VRF's table).
#[tokio::test]
async fn fake_only_enslaving_keeps_ipv6_with_keep_addr_on_down() {
    let world = FakeNetwork::new();
    let n = world.host();
    n.set_sysctl("net.ipv6.conf.all.keep_addr_on_down", "1").await.unwrap();
    let (vrf, port) = vrf_with_port(&n, 100).await;
    n.set_master(port, vrf).await.unwrap();
    assert_eq!(user_addrs(n.link_addresses(port).await.unwrap()).len(), 2);
    assert_eq!(
        dsts(&n.routes_in_table(100).await.unwrap()),
        [(net("10.221.8.0/24"), 100), (net("fd00:221:8::/64"), 100)]
    );
}
