//! Routes, and how they follow addresses and link state.

use cni_sdk::net::{NetErrorKind, Route, RouteProtocol, RouteScope, TABLE_MAIN};
use ipnet::IpNet;

use super::{Env, err_kind, ip, net, suite, up_bridge, user_addrs, user_routes};

async fn connected_routes_follow_link_state(env: Env) {
    let br = env.a.bridge("br3").execute().await.unwrap();
    let i = br.index;
    env.a.add_address(i, net("10.220.2.5/24")).await.unwrap();
    env.a.add_address(i, net("fd00:220:2::5/64")).await.unwrap();
    env.a.add_address(i, net("10.220.21.1/32")).await.unwrap();
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    env.a.set_up(i).await.unwrap();
    let routes = user_routes(env.a.routes().await.unwrap());
    let mut v4 = Route::new(net("10.220.2.0/24"));
    v4.oif = Some(i);
    v4.scope = RouteScope::Link;
    v4.protocol = RouteProtocol::Kernel;
    v4.source = Some(ip("10.220.2.5"));
    let mut v6 = Route::new(net("fd00:220:2::/64"));
    v6.oif = Some(i);
    v6.metric = 256;
    v6.protocol = RouteProtocol::Kernel;
    assert_eq!(routes, vec![v4.clone(), v6.clone()]);
    // Adding an address to an up link adds its route immediately.
    env.a.add_address(i, net("10.220.22.9/24")).await.unwrap();
    assert!(
        user_routes(env.a.routes().await.unwrap())
            .iter()
            .any(|r| r.dst == net("10.220.22.0/24") && r.source == Some(ip("10.220.22.9")))
    );
    // Down: routes gone, IPv6 addresses gone, IPv4 addresses kept.
    env.a.set_down(i).await.unwrap();
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    let addrs: Vec<IpNet> = user_addrs(env.a.link_addresses(i).await.unwrap()).into_iter().map(|a| a.addr).collect();
    assert_eq!(addrs, vec![net("10.220.2.5/24"), net("10.220.21.1/32"), net("10.220.22.9/24")]);
    // Up again: IPv4 connected routes come back.
    env.a.set_up(i).await.unwrap();
    let dsts: Vec<IpNet> = user_routes(env.a.routes().await.unwrap()).into_iter().map(|r| r.dst).collect();
    assert_eq!(dsts, vec![net("10.220.2.0/24"), net("10.220.22.0/24")]);
}

async fn routes_v4(env: Env) {
    let i = up_bridge(&env.a, "br4").await;
    env.a.add_address(i, net("10.220.3.1/24")).await.unwrap();
    env.a.route(net("10.220.99.0/24")).gateway(ip("10.220.3.254")).metric(100).add().await.unwrap();
    env.a
        .route(net("10.220.98.7/24")) // host bits are dropped
        .dev(i)
        .mtu(1300)
        .advmss(1200)
        .add()
        .await
        .unwrap();
    env.a.route(net("0.0.0.0/0")).gateway(ip("10.220.3.254")).add().await.unwrap();
    env.a.route(net("10.220.97.0/24")).gateway(ip("10.220.3.254")).table(100).add().await.unwrap();
    env.a.route(net("10.220.93.0/24")).dev(i).source(ip("10.220.3.1")).add().await.unwrap();
    assert_eq!(
        err_kind(env.a.route(net("10.220.92.0/24")).dev(i).source(ip("10.220.99.9")).add().await),
        NetErrorKind::InvalidArgument,
        "the preferred source must be a local address"
    );
    let routes = user_routes(env.a.routes().await.unwrap());
    let find = |dst: &str| {
        routes.iter().find(|r| r.dst == net(dst)).unwrap_or_else(|| panic!("no route to {dst} in {routes:?}")).clone()
    };
    let r = find("10.220.99.0/24");
    assert_eq!(r.gateway, Some(ip("10.220.3.254")));
    assert_eq!(r.oif, Some(i), "the kernel resolves the output link");
    assert_eq!(r.metric, 100);
    assert_eq!(r.scope, RouteScope::Universe);
    assert_eq!(r.protocol, RouteProtocol::Static);
    assert_eq!(r.table, TABLE_MAIN);
    let r = find("10.220.98.0/24");
    assert_eq!((r.gateway, r.oif), (None, Some(i)));
    assert_eq!(r.scope, RouteScope::Link);
    assert_eq!((r.mtu, r.advmss), (Some(1300), Some(1200)));
    assert_eq!(find("10.220.93.0/24").source, Some(ip("10.220.3.1")));
    let r = find("0.0.0.0/0");
    assert_eq!(r.gateway, Some(ip("10.220.3.254")));
    assert!(!routes.iter().any(|r| r.dst == net("10.220.97.0/24")));
    let t100 = env.a.routes_in_table(100).await.unwrap();
    assert_eq!(t100.len(), 1);
    assert_eq!(t100[0].table, 100);
    // Errors.
    assert_eq!(
        err_kind(env.a.route(net("10.220.99.0/24")).gateway(ip("10.220.3.254")).metric(100).add().await),
        NetErrorKind::Exists
    );
    assert_eq!(
        err_kind(env.a.route(net("10.220.96.0/24")).gateway(ip("10.220.4.1")).add().await),
        NetErrorKind::Unreachable
    );
    // Delete.
    env.a.route(net("10.220.99.0/24")).gateway(ip("10.220.3.254")).delete().await.unwrap();
    env.a.delete_route(&find("10.220.98.0/24")).await.unwrap();
    env.a.delete_route(&find("10.220.93.0/24")).await.unwrap();
    env.a.route(net("10.220.97.0/24")).table(100).delete().await.unwrap();
    assert_eq!(err_kind(env.a.route(net("10.220.99.0/24")).delete().await), NetErrorKind::NotFound);
    let left: Vec<IpNet> = user_routes(env.a.routes().await.unwrap()).into_iter().map(|r| r.dst).collect();
    assert_eq!(left, vec![net("0.0.0.0/0"), net("10.220.3.0/24")]);
}

async fn route_on_down_link_is_refused(env: Env) {
    let br = env.a.bridge("br5").execute().await.unwrap();
    assert_eq!(err_kind(env.a.route(net("10.220.95.0/24")).dev(br.index).add().await), NetErrorKind::Unreachable);
    assert_eq!(err_kind(env.a.route(net("fd00:220:95::/64")).dev(br.index).add().await), NetErrorKind::Unreachable);
}

async fn routes_v6(env: Env) {
    let i = up_bridge(&env.a, "br6").await;
    env.a.add_address(i, net("fd00:220:6::1/64")).await.unwrap();
    env.a.route(net("fd00:220:99::/64")).gateway(ip("fd00:220:6::fe")).add().await.unwrap();
    env.a.route(net("fd00:220:98::/64")).dev(i).metric(50).add().await.unwrap();
    let routes = user_routes(env.a.routes().await.unwrap());
    let r = routes.iter().find(|r| r.dst == net("fd00:220:99::/64")).unwrap();
    assert_eq!(r.gateway, Some(ip("fd00:220:6::fe")));
    assert_eq!(r.oif, Some(i));
    assert_eq!(r.metric, 1024, "IPv6 default metric");
    assert_eq!(r.scope, RouteScope::Universe);
    let r = routes.iter().find(|r| r.dst == net("fd00:220:98::/64")).unwrap();
    assert_eq!((r.gateway, r.oif, r.metric), (None, Some(i), 50));
    assert_eq!(
        err_kind(env.a.route(net("fd00:220:99::/64")).gateway(ip("fd00:220:6::fe")).add().await),
        NetErrorKind::Exists
    );
    assert_eq!(
        err_kind(env.a.route(net("fd00:220:97::/64")).gateway(ip("fd00:220:7::1")).add().await),
        NetErrorKind::Unreachable
    );
    env.a.route(net("fd00:220:99::/64")).gateway(ip("fd00:220:6::fe")).delete().await.unwrap();
    env.a.route(net("fd00:220:98::/64")).dev(i).delete().await.unwrap();
    assert_eq!(err_kind(env.a.route(net("fd00:220:98::/64")).delete().await), NetErrorKind::NotFound);
    let left: Vec<IpNet> = user_routes(env.a.routes().await.unwrap()).into_iter().map(|r| r.dst).collect();
    assert_eq!(left, vec![net("fd00:220:6::/64")]);
}

async fn routes_vanish_with_their_link(env: Env) {
    let (v0, v1) = env.a.veth("r0", "r1").execute().await.unwrap();
    env.a.add_address(v0.index, net("10.220.7.1/24")).await.unwrap();
    env.a.set_up(v1.index).await.unwrap();
    env.a.set_up(v0.index).await.unwrap();
    env.a.route(net("10.220.94.0/24")).gateway(ip("10.220.7.2")).add().await.unwrap();
    assert_eq!(user_routes(env.a.routes().await.unwrap()).len(), 2);
    env.a.delete_link(v1.index).await.unwrap();
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    assert!(user_addrs(env.a.addresses().await.unwrap()).is_empty());
}

suite!(
    connected_routes_follow_link_state,
    routes_v4,
    route_on_down_link_is_refused,
    routes_v6,
    routes_vanish_with_their_link,
);
