//! One behaviour suite for `cni_sdk::net`, run against both backends.
//!
//! Every check is an `async fn(Env)`. The `fake` module runs them against a
//! [`FakeNetwork`] (no privileges needed); the `real` module runs them against two throwaway
//! kernel namespaces (`cnitest-<pid>-<n>`), needs root and is ignored by default:
//! `cargo test -p cni-sdk --test net_behaviour -- --include-ignored`.
//!
//! The real half never touches the host namespace: both `a` and `b` are fresh namespaces that
//! are removed (with everything in them) when the test ends, even on failure.
//!
//! IPv6: the kernel adds `fe80::` link-local addresses/routes by itself and the fake does not
//! model them, so the checks only look at the addresses and routes they added (see `user_*`).
//! The machine's kernel may lack `CONFIG_DUMMY`; the dummy check accepts "not supported" there.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::net::{Address, LinkKind, Net, NetErrorKind, NetResult, Route, RouteProtocol, RouteScope, TABLE_MAIN};
use cni_sdk::netns::TempNetns;
use cni_types::MacAddr;
use ipnet::IpNet;

/// Two namespaces to work in, plus whatever keeps them alive.
struct Env {
    a: Net,
    b: Net,
    real: bool,
    // Dropped last: removes the namespaces (and so every link created in them).
    _guards: Vec<TempNetns>,
}

async fn fake_env() -> Env {
    let world = FakeNetwork::new();
    Env { a: world.add_namespace("a"), b: world.add_namespace("b"), real: false, _guards: Vec::new() }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn temp_ns() -> TempNetns {
    let name = format!("cnitest-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    TempNetns::create(&name).expect("create test namespace (needs root)")
}

async fn real_env() -> Env {
    let ga = temp_ns();
    let gb = temp_ns();
    let a = Net::open(&ga.netns().unwrap()).await.unwrap();
    let b = Net::open(&gb.netns().unwrap()).await.unwrap();
    Env { a, b, real: true, _guards: vec![ga, gb] }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn err_kind<T: std::fmt::Debug>(r: NetResult<T>) -> NetErrorKind {
    r.expect_err("expected an error").kind()
}

/// Addresses the tests added: no IPv6 link-local.
fn user_addrs(v: Vec<Address>) -> Vec<Address> {
    let mut v: Vec<Address> = v
        .into_iter()
        .filter(|a| match a.addr {
            IpNet::V6(n) => !n.addr().is_unicast_link_local(),
            IpNet::V4(_) => true,
        })
        .collect();
    v.sort();
    v
}

/// Routes the tests care about: no IPv6 link-local or multicast routes.
fn user_routes(v: Vec<Route>) -> Vec<Route> {
    let mut v: Vec<Route> = v
        .into_iter()
        .filter(|r| match r.dst {
            IpNet::V6(n) => !n.addr().is_unicast_link_local() && !n.addr().is_multicast(),
            IpNet::V4(_) => true,
        })
        .collect();
    v.sort_by_key(|r| (r.dst, r.metric));
    v
}

/// A bridge that is up (a bridge has no carrier dependence on a peer).
async fn up_bridge(n: &Net, name: &str) -> u32 {
    let br = n.bridge(name).execute().await.unwrap();
    n.set_up(br.index).await.unwrap();
    br.index
}

// ---------------------------------------------------------------------------------------------
// Behaviours

async fn fresh_namespace_has_only_lo(env: Env) {
    let links = env.a.links().await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    let lo = &links[0];
    assert_eq!(lo.index, 1);
    assert_eq!(lo.name, "lo");
    assert_eq!(lo.kind, LinkKind::Loopback);
    assert_eq!(lo.mtu, 65536);
    assert!(!lo.up);
    assert!(lo.mac.is_zero());
    assert!(env.a.addresses().await.unwrap().is_empty());
    assert!(env.a.routes().await.unwrap().is_empty());
}

async fn lo_up_gets_loopback_addresses(env: Env) {
    env.a.set_up(1).await.unwrap();
    assert!(env.a.link("lo").await.unwrap().up);
    let addrs = user_addrs(env.a.link_addresses(1).await.unwrap());
    let want = vec![Address { index: 1, addr: net("127.0.0.1/8") }, Address { index: 1, addr: net("::1/128") }];
    assert_eq!(addrs, want);
    // Loopback routes live in the local table, not in main.
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
}

async fn veth_pair_in_one_namespace(env: Env) {
    let mac0 = MacAddr::new([0x02, 0x20, 0, 0, 0, 1]);
    let mac1 = MacAddr::new([0x02, 0x20, 0, 0, 0, 2]);
    let (v0, v1) = env.a.veth("v0", "v1").mtu(1400).mac(mac0).peer_mac(mac1).execute().await.unwrap();
    // The kernel registers the peer first.
    assert_eq!((v1.index, v0.index), (2, 3));
    assert_eq!(v0.kind, LinkKind::Veth);
    assert_eq!(v1.kind, LinkKind::Veth);
    assert_eq!((v0.mtu, v1.mtu), (1400, 1400));
    assert_eq!((v0.mac, v1.mac), (mac0, mac1));
    assert!(!v0.up && !v1.up);
    let p0 = v0.peer.unwrap();
    assert_eq!((p0.index, p0.same_netns), (v1.index, true));
    let p1 = v1.peer.unwrap();
    assert_eq!((p1.index, p1.same_netns), (v0.index, true));
    assert_eq!(env.a.links().await.unwrap().len(), 3);
    assert_eq!(env.a.link_by_index(v0.index).await.unwrap(), v0);
}

async fn veth_defaults(env: Env) {
    let (v0, v1) = env.a.veth("d0", "d1").execute().await.unwrap();
    assert_eq!((v0.mtu, v1.mtu), (1500, 1500));
    assert!(v0.mac.is_locally_administered() && !v0.mac.is_multicast());
    assert!(v1.mac.is_locally_administered() && !v1.mac.is_multicast());
    assert_ne!(v0.mac, v1.mac);
}

async fn veth_peer_in_other_namespace(env: Env) {
    let (h, c) = env.a.veth("host0", "eth0").peer_netns(&env.b).execute().await.unwrap();
    assert_eq!(h.name, "host0");
    assert_eq!(c.name, "eth0");
    assert!(env.a.find_link("eth0").await.unwrap().is_none());
    assert!(env.b.find_link("host0").await.unwrap().is_none());
    assert_eq!(env.b.link("eth0").await.unwrap().index, c.index);
    assert_eq!(c.index, 2, "first link in a fresh namespace gets index 2");
    let hp = h.peer.unwrap();
    assert_eq!((hp.index, hp.same_netns), (c.index, false));
    let cp = c.peer.unwrap();
    assert_eq!((cp.index, cp.same_netns), (h.index, false));
}

async fn veth_name_conflicts_and_bad_names(env: Env) {
    env.a.veth("x0", "x1").execute().await.unwrap();
    assert_eq!(err_kind(env.a.veth("x0", "y1").execute().await), NetErrorKind::Exists);
    assert_eq!(err_kind(env.a.veth("y0", "x1").execute().await), NetErrorKind::Exists);
    // The peer name is taken in the peer's namespace.
    env.b.veth("z0", "z1").execute().await.unwrap();
    assert_eq!(err_kind(env.a.veth("y0", "z1").peer_netns(&env.b).execute().await), NetErrorKind::Exists);
    // Nothing half-created.
    assert!(env.a.find_link("y0").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.veth("waytoolonginterfacename", "q").execute().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.veth("", "q").execute().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.veth("ok0", "ok0").execute().await), NetErrorKind::Exists);
}

async fn deleting_a_veth_end_deletes_its_peer(env: Env) {
    let (h, _) = env.a.veth("h1", "c1").peer_netns(&env.b).execute().await.unwrap();
    env.a.delete_link(h.index).await.unwrap();
    assert!(env.a.find_link("h1").await.unwrap().is_none());
    assert!(env.b.find_link("c1").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.delete_link(h.index).await), NetErrorKind::NotFound);
    // And from the other side, in one namespace.
    let (l0, l1) = env.a.veth("l0", "l1").execute().await.unwrap();
    env.a.delete_link(l1.index).await.unwrap();
    assert!(env.a.find_link_by_index(l0.index).await.unwrap().is_none());
}

async fn link_lookup_errors(env: Env) {
    assert!(env.a.find_link("nope0").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.link("nope0").await), NetErrorKind::NotFound);
    assert!(env.a.link("nope0").await.unwrap_err().is_not_found());
    assert!(env.a.find_link_by_index(4242).await.unwrap().is_none());
    assert!(env.a.find_link_by_index(0).await.unwrap().is_none());
    assert_eq!(err_kind(env.a.link_by_index(4242).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.set_up(4242).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.delete_link(4242).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.add_address(4242, net("10.201.0.1/24")).await), NetErrorKind::NotFound);
}

async fn ensure_bridge(env: Env) {
    let mac = MacAddr::new([0x02, 0x21, 0, 0, 0, 9]);
    let br = env.a.bridge("br0").mtu(1400).mac(mac).execute().await.unwrap();
    assert_eq!(br.kind, LinkKind::Bridge);
    assert!(!br.up, "a new bridge is down");
    assert_eq!(br.mtu, 1400);
    assert_eq!(br.mac, mac);
    // Reused when it exists.
    let again = env.a.bridge("br0").execute().await.unwrap();
    assert_eq!(again.index, br.index);
    assert_eq!(env.a.links().await.unwrap().len(), 2);
    // A non-bridge of that name is rejected.
    env.a.veth("notbr", "notbr1").execute().await.unwrap();
    let err = env.a.bridge("notbr").execute().await.unwrap_err();
    assert_eq!(err.kind(), NetErrorKind::NotABridge);
    assert!(err.to_string().contains("not a bridge"), "{err}");
}

async fn dummy_link(env: Env) {
    match env.a.dummy("dum0").mtu(9000).execute().await {
        Ok(d) => {
            assert_eq!(d.kind, LinkKind::Dummy);
            assert_eq!(d.mtu, 9000);
            assert_eq!(err_kind(env.a.dummy("dum0").execute().await), NetErrorKind::Exists);
        }
        Err(e) if env.real && e.kind() == NetErrorKind::NotSupported => {
            eprintln!("kernel without CONFIG_DUMMY: {e}");
        }
        Err(e) => panic!("dummy: {e}"),
    }
}

async fn set_link_attributes(env: Env) {
    let (v0, _) = env.a.veth("s0", "s1").execute().await.unwrap();
    let i = v0.index;
    env.a.set_mtu(i, 1450).await.unwrap();
    let mac = MacAddr::new([0x02, 0x22, 0, 0, 0, 7]);
    env.a.set_mac(i, mac).await.unwrap();
    env.a.set_promisc(i, true).await.unwrap();
    env.a.set_up(i).await.unwrap();
    let l = env.a.link_by_index(i).await.unwrap();
    assert_eq!(l.mtu, 1450);
    assert_eq!(l.mac, mac);
    assert!(l.promisc);
    assert!(l.up);
    env.a.set_promisc(i, false).await.unwrap();
    env.a.set_down(i).await.unwrap();
    let l = env.a.link_by_index(i).await.unwrap();
    assert!(!l.promisc);
    assert!(!l.up);
    assert_eq!(err_kind(env.a.set_mtu(i, 10).await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.set_mtu(4242, 1400).await), NetErrorKind::NotFound);
}

async fn master_and_hairpin(env: Env) {
    let br = env.a.bridge("br1").execute().await.unwrap();
    let (p, _) = env.a.veth("p0", "p1").execute().await.unwrap();
    assert_eq!(p.master, None);
    assert_eq!(p.hairpin, None);
    env.a.set_master(p.index, br.index).await.unwrap();
    let l = env.a.link_by_index(p.index).await.unwrap();
    assert_eq!(l.master, Some(br.index));
    assert_eq!(l.hairpin, Some(false));
    env.a.set_hairpin(p.index, true).await.unwrap();
    assert_eq!(env.a.link_by_index(p.index).await.unwrap().hairpin, Some(true));
    // Only bridges take ports here; hairpin is a bridge-port flag.
    let (q, _) = env.a.veth("q0", "q1").execute().await.unwrap();
    assert_eq!(err_kind(env.a.set_hairpin(q.index, true).await), NetErrorKind::NotSupported);
    assert_eq!(err_kind(env.a.set_master(q.index, p.index).await), NetErrorKind::NotSupported);
    env.a.set_no_master(p.index).await.unwrap();
    let l = env.a.link_by_index(p.index).await.unwrap();
    assert_eq!(l.master, None);
    assert_eq!(l.hairpin, None);
    assert_eq!(err_kind(env.a.set_master(p.index, 4242).await), NetErrorKind::InvalidArgument);
}

async fn move_link_to_other_namespace(env: Env) {
    let (m0, m1) = env.a.veth("m0", "m1").execute().await.unwrap();
    env.a.add_address(m1.index, net("10.205.0.2/24")).await.unwrap();
    env.a.set_up(m1.index).await.unwrap();
    let moved = env.a.move_link(m1.index, &env.b).await.unwrap();
    assert_eq!(moved.name, "m1");
    assert!(!moved.up, "a moved link is down");
    assert!(env.a.find_link("m1").await.unwrap().is_none());
    assert_eq!(env.b.link("m1").await.unwrap().index, moved.index);
    assert!(user_addrs(env.b.link_addresses(moved.index).await.unwrap()).is_empty());
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    let p = env.a.link_by_index(m0.index).await.unwrap().peer.unwrap();
    assert_eq!((p.index, p.same_netns), (moved.index, false));
    // A name clash in the target is refused.
    env.a.veth("m1", "m2").execute().await.unwrap();
    let m1_again = env.a.link("m1").await.unwrap();
    assert_eq!(err_kind(env.a.move_link(m1_again.index, &env.b).await), NetErrorKind::Exists);
    // Bridges cannot change namespace.
    let br = env.a.bridge("br9").execute().await.unwrap();
    assert_eq!(err_kind(env.a.move_link(br.index, &env.b).await), NetErrorKind::InvalidArgument);
}

async fn addresses_v4_and_v6(env: Env) {
    let br = env.a.bridge("br2").execute().await.unwrap();
    let i = br.index;
    let v4 = net("10.201.0.5/24");
    let v6 = net("fd00:201::5/64");
    env.a.add_address(i, v4).await.unwrap();
    env.a.add_address(i, v6).await.unwrap();
    let want = vec![Address { index: i, addr: v4 }, Address { index: i, addr: v6 }];
    assert_eq!(user_addrs(env.a.link_addresses(i).await.unwrap()), want);
    assert_eq!(user_addrs(env.a.addresses().await.unwrap()), want);
    assert_eq!(err_kind(env.a.add_address(i, v4).await), NetErrorKind::Exists);
    assert_eq!(err_kind(env.a.add_address(i, v6).await), NetErrorKind::Exists);
    env.a.delete_address(i, v4).await.unwrap();
    env.a.delete_address(i, v6).await.unwrap();
    assert!(user_addrs(env.a.link_addresses(i).await.unwrap()).is_empty());
    assert_eq!(err_kind(env.a.delete_address(i, v4).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.delete_address(i, v6).await), NetErrorKind::NotFound);
}

async fn connected_routes_follow_link_state(env: Env) {
    let br = env.a.bridge("br3").execute().await.unwrap();
    let i = br.index;
    env.a.add_address(i, net("10.202.0.5/24")).await.unwrap();
    env.a.add_address(i, net("fd00:202::5/64")).await.unwrap();
    env.a.add_address(i, net("10.202.1.1/32")).await.unwrap();
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    env.a.set_up(i).await.unwrap();
    let routes = user_routes(env.a.routes().await.unwrap());
    let mut v4 = Route::new(net("10.202.0.0/24"));
    v4.oif = Some(i);
    v4.scope = RouteScope::Link;
    v4.protocol = RouteProtocol::Kernel;
    v4.source = Some(ip("10.202.0.5"));
    let mut v6 = Route::new(net("fd00:202::/64"));
    v6.oif = Some(i);
    v6.metric = 256;
    v6.protocol = RouteProtocol::Kernel;
    assert_eq!(routes, vec![v4.clone(), v6.clone()]);
    // Adding an address to an up link adds its route immediately.
    env.a.add_address(i, net("10.202.2.9/24")).await.unwrap();
    assert!(
        user_routes(env.a.routes().await.unwrap())
            .iter()
            .any(|r| r.dst == net("10.202.2.0/24") && r.source == Some(ip("10.202.2.9")))
    );
    // Down: routes gone, IPv6 addresses gone, IPv4 addresses kept.
    env.a.set_down(i).await.unwrap();
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    let addrs: Vec<IpNet> = user_addrs(env.a.link_addresses(i).await.unwrap()).into_iter().map(|a| a.addr).collect();
    assert_eq!(addrs, vec![net("10.202.0.5/24"), net("10.202.1.1/32"), net("10.202.2.9/24")]);
    // Up again: IPv4 connected routes come back.
    env.a.set_up(i).await.unwrap();
    let dsts: Vec<IpNet> = user_routes(env.a.routes().await.unwrap()).into_iter().map(|r| r.dst).collect();
    assert_eq!(dsts, vec![net("10.202.0.0/24"), net("10.202.2.0/24")]);
}

async fn routes_v4(env: Env) {
    let i = up_bridge(&env.a, "br4").await;
    env.a.add_address(i, net("10.203.0.1/24")).await.unwrap();
    env.a.route(net("10.99.0.0/16")).gateway(ip("10.203.0.254")).metric(100).add().await.unwrap();
    env.a
        .route(net("10.98.7.7/16")) // host bits are dropped
        .dev(i)
        .mtu(1300)
        .advmss(1200)
        .add()
        .await
        .unwrap();
    env.a.route(net("0.0.0.0/0")).gateway(ip("10.203.0.254")).add().await.unwrap();
    env.a.route(net("10.97.0.0/16")).gateway(ip("10.203.0.254")).table(100).add().await.unwrap();
    env.a.route(net("10.93.0.0/16")).dev(i).source(ip("10.203.0.1")).add().await.unwrap();
    assert_eq!(
        err_kind(env.a.route(net("10.92.0.0/16")).dev(i).source(ip("10.209.9.9")).add().await),
        NetErrorKind::InvalidArgument,
        "the preferred source must be a local address"
    );
    let routes = user_routes(env.a.routes().await.unwrap());
    let find = |dst: &str| {
        routes.iter().find(|r| r.dst == net(dst)).unwrap_or_else(|| panic!("no route to {dst} in {routes:?}")).clone()
    };
    let r = find("10.99.0.0/16");
    assert_eq!(r.gateway, Some(ip("10.203.0.254")));
    assert_eq!(r.oif, Some(i), "the kernel resolves the output link");
    assert_eq!(r.metric, 100);
    assert_eq!(r.scope, RouteScope::Universe);
    assert_eq!(r.protocol, RouteProtocol::Static);
    assert_eq!(r.table, TABLE_MAIN);
    let r = find("10.98.0.0/16");
    assert_eq!((r.gateway, r.oif), (None, Some(i)));
    assert_eq!(r.scope, RouteScope::Link);
    assert_eq!((r.mtu, r.advmss), (Some(1300), Some(1200)));
    assert_eq!(find("10.93.0.0/16").source, Some(ip("10.203.0.1")));
    let r = find("0.0.0.0/0");
    assert_eq!(r.gateway, Some(ip("10.203.0.254")));
    assert!(!routes.iter().any(|r| r.dst == net("10.97.0.0/16")));
    let t100 = env.a.routes_in_table(100).await.unwrap();
    assert_eq!(t100.len(), 1);
    assert_eq!(t100[0].table, 100);
    // Errors.
    assert_eq!(
        err_kind(env.a.route(net("10.99.0.0/16")).gateway(ip("10.203.0.254")).metric(100).add().await),
        NetErrorKind::Exists
    );
    assert_eq!(
        err_kind(env.a.route(net("10.96.0.0/16")).gateway(ip("10.204.0.1")).add().await),
        NetErrorKind::Unreachable
    );
    // Delete.
    env.a.route(net("10.99.0.0/16")).gateway(ip("10.203.0.254")).delete().await.unwrap();
    env.a.delete_route(&find("10.98.0.0/16")).await.unwrap();
    env.a.delete_route(&find("10.93.0.0/16")).await.unwrap();
    env.a.route(net("10.97.0.0/16")).table(100).delete().await.unwrap();
    assert_eq!(err_kind(env.a.route(net("10.99.0.0/16")).delete().await), NetErrorKind::NotFound);
    let left: Vec<IpNet> = user_routes(env.a.routes().await.unwrap()).into_iter().map(|r| r.dst).collect();
    assert_eq!(left, vec![net("0.0.0.0/0"), net("10.203.0.0/24")]);
}

async fn route_on_down_link_is_refused(env: Env) {
    let br = env.a.bridge("br5").execute().await.unwrap();
    assert_eq!(err_kind(env.a.route(net("10.95.0.0/16")).dev(br.index).add().await), NetErrorKind::Unreachable);
    assert_eq!(err_kind(env.a.route(net("fd00:295::/64")).dev(br.index).add().await), NetErrorKind::Unreachable);
}

async fn routes_v6(env: Env) {
    let i = up_bridge(&env.a, "br6").await;
    env.a.add_address(i, net("fd00:206::1/64")).await.unwrap();
    env.a.route(net("fd00:299::/64")).gateway(ip("fd00:206::fe")).add().await.unwrap();
    env.a.route(net("fd00:298::/64")).dev(i).metric(50).add().await.unwrap();
    let routes = user_routes(env.a.routes().await.unwrap());
    let r = routes.iter().find(|r| r.dst == net("fd00:299::/64")).unwrap();
    assert_eq!(r.gateway, Some(ip("fd00:206::fe")));
    assert_eq!(r.oif, Some(i));
    assert_eq!(r.metric, 1024, "IPv6 default metric");
    assert_eq!(r.scope, RouteScope::Universe);
    let r = routes.iter().find(|r| r.dst == net("fd00:298::/64")).unwrap();
    assert_eq!((r.gateway, r.oif, r.metric), (None, Some(i), 50));
    assert_eq!(
        err_kind(env.a.route(net("fd00:299::/64")).gateway(ip("fd00:206::fe")).add().await),
        NetErrorKind::Exists
    );
    assert_eq!(
        err_kind(env.a.route(net("fd00:297::/64")).gateway(ip("fd00:207::1")).add().await),
        NetErrorKind::Unreachable
    );
    env.a.route(net("fd00:299::/64")).gateway(ip("fd00:206::fe")).delete().await.unwrap();
    env.a.route(net("fd00:298::/64")).dev(i).delete().await.unwrap();
    assert_eq!(err_kind(env.a.route(net("fd00:298::/64")).delete().await), NetErrorKind::NotFound);
    let left: Vec<IpNet> = user_routes(env.a.routes().await.unwrap()).into_iter().map(|r| r.dst).collect();
    assert_eq!(left, vec![net("fd00:206::/64")]);
}

async fn routes_vanish_with_their_link(env: Env) {
    let (v0, v1) = env.a.veth("r0", "r1").execute().await.unwrap();
    env.a.add_address(v0.index, net("10.207.0.1/24")).await.unwrap();
    env.a.set_up(v1.index).await.unwrap();
    env.a.set_up(v0.index).await.unwrap();
    env.a.route(net("10.94.0.0/16")).gateway(ip("10.207.0.2")).add().await.unwrap();
    assert_eq!(user_routes(env.a.routes().await.unwrap()).len(), 2);
    env.a.delete_link(v1.index).await.unwrap();
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    assert!(user_addrs(env.a.addresses().await.unwrap()).is_empty());
}

async fn sysctls(env: Env) {
    let n = &env.a;
    // A new namespace inherits IPv4 forwarding from the host's (kernel default with
    // devconf_inherit_init_net=0), so flip whatever it is.
    let before = n.sysctl("net.ipv4.ip_forward").await.unwrap();
    assert_eq!(env.b.sysctl("net.ipv4.ip_forward").await.unwrap(), before);
    let flipped = if before == "1" { "0" } else { "1" };
    n.set_sysctl("net.ipv4.ip_forward", flipped).await.unwrap();
    assert_eq!(n.sysctl("net/ipv4/ip_forward").await.unwrap(), flipped);
    assert_eq!(n.sysctl("net.ipv4.conf.all.forwarding").await.unwrap(), flipped);
    // The other namespace is untouched.
    assert_eq!(env.b.sysctl("net.ipv4.ip_forward").await.unwrap(), before);
    let (v, _) = n.veth("sy0", "sy1").execute().await.unwrap();
    let key = format!("net/ipv6/conf/{}/accept_ra", v.name);
    assert_eq!(n.sysctl(&key).await.unwrap(), "1");
    n.set_sysctl(&key, "0").await.unwrap();
    assert_eq!(n.sysctl(&key).await.unwrap(), "0");
    assert_eq!(n.sysctl("net.ipv6.conf.sy0.disable_ipv6").await.unwrap(), "0");
    assert_eq!(err_kind(n.sysctl("net.ipv4.no_such_key").await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.set_sysctl("net.ipv4.no_such_key", "1").await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.sysctl("net/ipv6/conf/nosuchdev/accept_ra").await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.sysctl("kernel.hostname").await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.sysctl("net/../kernel/hostname").await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.set_sysctl("net.ipv4.ip_forward", "abc").await), NetErrorKind::InvalidArgument);
    // Per-link keys go with the link.
    n.delete_link(v.index).await.unwrap();
    assert_eq!(err_kind(n.sysctl(&key).await), NetErrorKind::NotFound);
}

// ---------------------------------------------------------------------------------------------
// Both halves

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        /// Against the in-memory fake.
        mod fake {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::fake_env().await).await;
                }
            )*
        }

        /// Against the kernel, in throwaway namespaces.
        mod real {
            $(
                #[tokio::test]
                #[ignore = "needs root"]
                async fn $name() {
                    super::$name(super::real_env().await).await;
                }
            )*
        }
    };
}

suite!(
    fresh_namespace_has_only_lo,
    lo_up_gets_loopback_addresses,
    veth_pair_in_one_namespace,
    veth_defaults,
    veth_peer_in_other_namespace,
    veth_name_conflicts_and_bad_names,
    deleting_a_veth_end_deletes_its_peer,
    link_lookup_errors,
    ensure_bridge,
    dummy_link,
    set_link_attributes,
    master_and_hairpin,
    move_link_to_other_namespace,
    addresses_v4_and_v6,
    connected_routes_follow_link_state,
    routes_v4,
    route_on_down_link_is_refused,
    routes_v6,
    routes_vanish_with_their_link,
    sysctls,
);

// ---------------------------------------------------------------------------------------------
// What only the fake offers: the operation log, error injection, snapshots.

mod fake_only {
    use super::*;
    use cni_sdk::net::NetError;
    use cni_sdk::net::fake::{HOST_NAMESPACE, OpKind};

    #[tokio::test]
    async fn host_namespace_and_names() {
        let world = FakeNetwork::new();
        let host = world.host();
        assert_eq!(host.link("lo").await.unwrap().index, 1);
        assert!(host.netns().is_none());
        let ctr = world.add_namespace("ctr");
        assert_eq!(world.namespace_name(&ctr).as_deref(), Some("ctr"));
        assert_eq!(world.namespace_name(&host).as_deref(), Some(HOST_NAMESPACE));
        assert!(world.namespace("nope").is_none());
        // add_namespace on an existing name returns the same namespace.
        ctr.veth("v0", "v1").execute().await.unwrap();
        let again = world.add_namespace("ctr");
        assert!(again.find_link("v0").await.unwrap().is_some());
        // A handle from another world is not accepted.
        let other = FakeNetwork::new();
        assert_eq!(world.namespace_name(&other.host()), None);
        assert_eq!(
            err_kind(host.veth("x0", "x1").peer_netns(&other.host()).execute().await),
            NetErrorKind::InvalidArgument
        );
    }

    #[tokio::test]
    async fn macs_are_deterministic() {
        async fn macs() -> Vec<MacAddr> {
            let world = FakeNetwork::new();
            let (a, b) = world.host().veth("a0", "a1").execute().await.unwrap();
            let br = world.host().bridge("br0").execute().await.unwrap();
            vec![a.mac, b.mac, br.mac]
        }
        let first = macs().await;
        assert_eq!(first, macs().await);
        assert!(first.iter().all(|m| m.is_locally_administered()));
        assert_eq!(first[0].to_string(), "02:fa:ce:00:00:02");
    }

    #[tokio::test]
    async fn operations_are_recorded() {
        let world = FakeNetwork::new();
        let host = world.host();
        let ctr = world.add_namespace("ctr");
        let (h, c) = host.veth("veth0", "eth0").peer_netns(&ctr).execute().await.unwrap();
        ctr.add_address(c.index, net("10.210.0.2/24")).await.unwrap();
        ctr.set_up(c.index).await.unwrap();
        let _ = host.set_up(4242).await;
        let creates = world.ops_of(OpKind::CreateVeth);
        assert_eq!(creates.len(), 1);
        assert_eq!(creates[0].netns, HOST_NAMESPACE);
        assert_eq!(creates[0].detail, "veth0 <-> eth0 in ctr");
        assert_eq!(creates[0].error, None);
        let ups = world.ops_of(OpKind::SetUp);
        assert_eq!(ups.len(), 2);
        assert_eq!(ups[0].netns, "ctr");
        assert_eq!(ups[1].error, Some(NetErrorKind::NotFound));
        let adds = world.ops_of(OpKind::AddAddress);
        assert_eq!(adds[0].to_string(), format!("[ctr] AddAddress 10.210.0.2/24 on #{}", c.index));
        assert!(world.ops().iter().any(|o| o.kind == OpKind::GetLink));
        world.clear_ops();
        assert!(world.ops().is_empty());
        assert_eq!(host.link("veth0").await.unwrap().index, h.index);
    }

    #[tokio::test]
    async fn injected_errors_fail_once_and_change_nothing() {
        let world = FakeNetwork::new();
        let host = world.host();
        let ctr = world.add_namespace("ctr");
        let before = world.snapshot(HOST_NAMESPACE).unwrap();
        world.fail_next(OpKind::CreateVeth, NetErrorKind::PermissionDenied);
        let err = host.veth("v0", "v1").execute().await.unwrap_err();
        assert_eq!(err.kind(), NetErrorKind::PermissionDenied);
        assert_eq!(world.snapshot(HOST_NAMESPACE).unwrap(), before);
        host.veth("v0", "v1").execute().await.unwrap();

        // Only in one namespace.
        world.fail_next_in("ctr", OpKind::SetUp, NetErrorKind::NotFound);
        host.set_up(1).await.unwrap();
        assert_eq!(err_kind(ctr.set_up(1).await), NetErrorKind::NotFound);
        ctr.set_up(1).await.unwrap();

        // Ensure-bridge sees an "exists" from a racing creator and reuses what is there.
        world.fail_next(OpKind::CreateBridge, NetErrorKind::Exists);
        assert_eq!(
            err_kind(host.bridge("br0").execute().await),
            NetErrorKind::NotFound,
            "nothing was created, so the re-lookup finds nothing"
        );

        // Predicate-based: every route to 10.99/16 fails until cleared.
        world.fail_when(|op| {
            (op.kind == OpKind::AddRoute && op.detail.starts_with("10.99."))
                .then(|| NetError::new(NetErrorKind::PermissionDenied, "policy says no"))
        });
        let v0 = host.link("v0").await.unwrap();
        host.set_up(v0.index).await.unwrap();
        for _ in 0..2 {
            let err = host.route(net("10.99.0.0/16")).dev(v0.index).add().await.unwrap_err();
            assert_eq!(err.kind(), NetErrorKind::PermissionDenied);
            assert_eq!(err.to_string(), "policy says no");
        }
        host.route(net("10.98.0.0/16")).dev(v0.index).add().await.unwrap();
        world.clear_failures();
        host.route(net("10.99.0.0/16")).dev(v0.index).add().await.unwrap();
    }

    #[tokio::test]
    async fn snapshot_shows_the_namespace() {
        let world = FakeNetwork::new();
        let ctr = world.add_namespace("ctr");
        let (c, _) = ctr.veth("eth0", "peer0").execute().await.unwrap();
        ctr.add_address(c.index, net("10.211.0.2/24")).await.unwrap();
        ctr.set_up(c.index).await.unwrap();
        ctr.set_sysctl("net.ipv4.ip_forward", "1").await.unwrap();
        let snap = world.snapshot("ctr").unwrap();
        let names: Vec<&str> = snap.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "peer0", "eth0"]);
        assert_eq!(snap.addresses, vec![Address { index: c.index, addr: net("10.211.0.2/24") }]);
        assert_eq!(snap.routes.len(), 1);
        assert_eq!(snap.routes[0].dst, net("10.211.0.0/24"));
        assert_eq!(snap.sysctls.get("net/ipv4/ip_forward").map(String::as_str), Some("1"));
        assert!(world.snapshot("nope").is_none());
    }

    #[tokio::test]
    async fn removing_a_namespace_takes_veth_peers_along() {
        let world = FakeNetwork::new();
        let host = world.host();
        let ctr = world.add_namespace("ctr");
        host.veth("veth0", "eth0").peer_netns(&ctr).execute().await.unwrap();
        assert!(world.remove_namespace("ctr"));
        assert!(!world.remove_namespace("ctr"));
        assert!(host.find_link("veth0").await.unwrap().is_none());
        assert_eq!(err_kind(ctr.links().await), NetErrorKind::NotFound);
        assert!(world.namespace("ctr").is_none());
        // A new namespace of the same name is a fresh one.
        let ctr2 = world.add_namespace("ctr");
        assert_eq!(ctr2.links().await.unwrap().len(), 1);
    }
}
