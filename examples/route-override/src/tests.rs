//! route-override on fake namespaces, for every spec version.

use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, IpConfig, Route, SpecVersion};
use serde_json::{Value, json};

use super::RouteOverride;

/// A container `ctr` with eth0 10.237.0.5/24, a default route and a route to 10.239.0.0/16.
async fn world() -> (FakeNetwork, CniResult) {
    let world = FakeNetwork::new();
    let ctr = world.add_namespace("ctr");
    let host = world.host();
    let (_, eth0) = host.veth("veth-ro", "eth0").peer_netns(&ctr).execute().await.unwrap();
    ctr.set_up(eth0.index).await.unwrap();
    ctr.add_address(eth0.index, "10.237.0.5/24".parse().unwrap()).await.unwrap();
    let gw = "10.237.0.1".parse().unwrap();
    ctr.route("0.0.0.0/0".parse().unwrap()).gateway(gw).dev(eth0.index).add().await.unwrap();
    ctr.route("10.239.0.0/16".parse().unwrap()).gateway(gw).dev(eth0.index).add().await.unwrap();
    let mut prev = CniResult::default();
    prev.ips.push(IpConfig { gateway: Some(gw), ..IpConfig::new("10.237.0.5/24".parse().unwrap()) });
    prev.routes.push(Route::new("0.0.0.0/0".parse().unwrap(), Some(gw)));
    prev.routes.push(Route::new("10.239.0.0/16".parse().unwrap(), Some(gw)));
    (world, prev)
}

fn keys() -> Value {
    json!({
        "flushgateway": true,
        "delroutes": [{"dst": "10.239.0.0/16"}],
        "addroutes": [{"dst": "10.238.0.0/16", "gw": "10.237.0.254"}]
    })
}

fn kernel_routes(world: &FakeNetwork) -> Vec<String> {
    let snap = world.snapshot("ctr").unwrap();
    snap.routes
        .iter()
        .filter(|r| r.gateway.is_some())
        .map(|r| format!("{} via {}", r.dst, r.gateway.unwrap()))
        .collect()
}

#[tokio::test]
async fn modifies_container_and_result_in_every_version() {
    for_each_version(|v| async move {
        let (world, prev) = world().await;
        let t = |cmd| {
            PluginTest::new(&RouteOverride)
                .command(cmd)
                .version(v)
                .config_keys(keys())
                .prev_result(&prev)
                .netns("/var/run/netns/ctr")
                .network(&world)
        };
        let result = t(Command::Add).run().await.expect_result();
        assert_eq!(kernel_routes(&world), ["10.238.0.0/16 via 10.237.0.254"], "{v}");
        assert_eq!(
            result.routes,
            [Route::new("10.238.0.0/16".parse().unwrap(), Some("10.237.0.254".parse().unwrap()))]
        );
        assert_eq!(result.ips[0].gateway, None, "flushgateway clears gateways");
        assert_eq!(result.ips[0].address, prev.ips[0].address, "everything else passes through");
        if v.has_check() {
            t(Command::Check).run().await.expect_success();
        }
        t(Command::Del).run().await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn check_notices_a_missing_route() {
    let (world, prev) = world().await;
    let t = |cmd| {
        PluginTest::new(&RouteOverride)
            .command(cmd)
            .version(SpecVersion::V1_0_0)
            .config_keys(keys())
            .prev_result(&prev)
            .netns("/var/run/netns/ctr")
            .network(&world)
    };
    t(Command::Add).run().await.expect_result();
    let ctr = world.namespace("ctr").unwrap();
    let added = ctr.routes().await.unwrap().into_iter().find(|r| r.dst.to_string() == "10.238.0.0/16").unwrap();
    ctr.delete_route(&added).await.unwrap();
    let e = t(Command::Check).run().await.expect_error(999);
    assert_eq!(e.msg, "route 10.238.0.0/16 is missing");
}

#[tokio::test]
async fn needs_a_prev_result_and_an_interface() {
    let (world, prev) = world().await;
    let e = PluginTest::new(&RouteOverride).netns("/var/run/netns/ctr").network(&world).run().await.expect_error(7);
    assert!(e.msg.contains("no prevResult"));
    let out = PluginTest::new(&RouteOverride)
        .prev_result(&prev)
        .ifname("eth9")
        .netns("/var/run/netns/ctr")
        .network(&world)
        .run()
        .await;
    assert!(out.expect_error(999).msg.contains("eth9"));
    // flushroutes removes every gateway route; a result without routes is still valid.
    let out = PluginTest::new(&RouteOverride)
        .config_keys(json!({"flushroutes": true}))
        .prev_result(&prev)
        .netns("/var/run/netns/ctr")
        .network(&world)
        .run()
        .await;
    assert!(out.expect_result().routes.is_empty());
    assert!(kernel_routes(&world).is_empty());
}
