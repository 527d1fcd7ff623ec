//! ADD / CHECK / DEL against a fake network, with the interface the previous plugin created
//! and its result as `prevResult`: no root needed.

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{NetError, NetErrorKind};
use cni_sdk::testing::{PluginTest, for_versions};
use cni_sdk::types::Route;
use cni_sdk::{CniResult, Command, ErrorCode, Interface, IpConfig, SpecVersion};
use serde_json::json;

use super::RoutePlugin;

const POD: &str = "pod1";
const NETNS: &str = "/var/run/netns/pod1";

/// A fake world as the interface plugin leaves it: `eth0` in the pod with 10.2.0.5/24, and its
/// result.
struct Setup {
    world: FakeNetwork,
    prev: CniResult,
}

impl Setup {
    async fn new() -> Self {
        let world = FakeNetwork::new();
        let pod = world.add_namespace(POD);
        let eth0 = pod.dummy("eth0").execute().await.expect("eth0");
        pod.set_up(eth0.index).await.expect("up");
        pod.add_address(eth0.index, "10.2.0.5/24".parse().expect("valid")).await.expect("address");

        let mut prev = CniResult::default();
        prev.interfaces.push(Interface { sandbox: Some(NETNS.into()), ..Interface::from(&eth0) });
        prev.ips.push(IpConfig {
            interface: Some(0),
            gateway: Some("10.2.0.1".parse().expect("valid")),
            ..IpConfig::new("10.2.0.5/24".parse().expect("valid"))
        });
        Self { world, prev }
    }

    /// A request with two routes: one via the previous result's gateway, one via its own.
    fn run(&self, cmd: Command) -> PluginTest<'static, RoutePlugin> {
        PluginTest::new(&RoutePlugin)
            .command(cmd)
            .config_keys(json!({"routes": [{"dst": "10.96.0.0/12"}, {"dst": "192.168.7.0/24", "gw": "10.2.0.254"}]}))
            .netns(NETNS)
            .network(&self.world)
            .prev_result(&self.prev)
    }

    /// The pod's routes, as `dst via gw`.
    fn pod_routes(&self) -> Vec<String> {
        let pod = self.world.snapshot(POD).expect("pod namespace");
        let via = |gw: Option<std::net::IpAddr>| gw.map(|g| format!(" via {g}")).unwrap_or_default();
        pod.routes.iter().map(|r| format!("{}{}", r.dst, via(r.gateway))).collect()
    }
}

#[tokio::test]
async fn add_installs_the_routes_and_returns_the_previous_result_with_them() {
    let t = Setup::new().await;
    let result = t.run(Command::Add).run().await.expect_result();

    assert_eq!(result.interfaces, t.prev.interfaces);
    assert_eq!(result.ips, t.prev.ips);
    let gw = |s: &str| Some(s.parse().expect("valid"));
    assert_eq!(
        result.routes,
        [
            Route::new("10.96.0.0/12".parse().expect("valid"), gw("10.2.0.1")),
            Route::new("192.168.7.0/24".parse().expect("valid"), gw("10.2.0.254")),
        ]
    );
    let routes = t.pod_routes();
    assert!(routes.contains(&"10.96.0.0/12 via 10.2.0.1".to_owned()), "{routes:?}");
    assert!(routes.contains(&"192.168.7.0/24 via 10.2.0.254".to_owned()), "{routes:?}");
}

#[tokio::test]
async fn add_needs_a_previous_result_and_the_interface() {
    let t = Setup::new().await;
    let no_prev = PluginTest::new(&RoutePlugin)
        .config_keys(json!({"routes": [{"dst": "10.96.0.0/12"}]}))
        .netns(NETNS)
        .network(&t.world);
    let err = no_prev.run().await.expect_error(ErrorCode::InvalidNetworkConfig);
    assert!(err.msg.contains("prevResult"), "{err:?}");

    let err = t.run(Command::Add).ifname("eth1").run().await.expect_error(ErrorCode::Internal);
    assert!(err.msg.contains("eth1"), "{err:?}");
    assert!(t.world.ops_of(OpKind::AddRoute).is_empty());
}

#[tokio::test]
async fn check_passes_after_add_and_fails_when_a_route_is_gone() {
    let t = Setup::new().await;
    let result = t.run(Command::Add).run().await.expect_result();
    // The runtime sends the final result of the chain: the one this plugin returned.
    t.run(Command::Check).prev_result(&result).run().await.expect_success();

    let pod = t.world.namespace(POD).expect("pod namespace");
    let eth0 = pod.link("eth0").await.expect("eth0");
    pod.route("10.96.0.0/12".parse().expect("valid")).dev(eth0.index).delete().await.expect("delete the route");
    let err = t.run(Command::Check).prev_result(&result).run().await.expect_error(ErrorCode::Internal);
    assert!(err.msg.contains("10.96.0.0"), "{err:?}"); // in Go's wording: {Dst:{IP:10.96.0.0 Mask:fff00000} ...}
}

#[tokio::test]
async fn del_removes_the_routes_and_is_idempotent() {
    let t = Setup::new().await;
    let result = t.run(Command::Add).run().await.expect_result();
    t.run(Command::Del).prev_result(&result).run().await.expect_success();
    assert_eq!(t.pod_routes(), ["10.2.0.0/24"], "only the connected route is left");
    // Again, and without prevResult (spec versions before 0.4.0 send none).
    t.run(Command::Del).prev_result(&result).run().await.expect_success();
    PluginTest::new(&RoutePlugin)
        .command(Command::Del)
        .version(SpecVersion::V0_3_1)
        .config_keys(json!({"routes": [{"dst": "10.96.0.0/12"}]}))
        .netns(NETNS)
        .network(&t.world)
        .run()
        .await
        .expect_success();
}

#[tokio::test]
async fn del_succeeds_when_the_interface_or_the_namespace_is_gone() {
    let t = Setup::new().await;
    let result = t.run(Command::Add).run().await.expect_result();
    let pod = t.world.namespace(POD).expect("pod namespace");
    pod.delete_link(pod.link("eth0").await.expect("eth0").index).await.expect("delete eth0");
    t.run(Command::Del).prev_result(&result).run().await.expect_success();

    assert!(t.world.remove_namespace(POD));
    t.run(Command::Del).prev_result(&result).run().await.expect_success();
    t.run(Command::Del).prev_result(&result).unset("CNI_NETNS").run().await.expect_success();
}

#[tokio::test]
async fn a_failing_route_removes_the_ones_added_before() {
    let t = Setup::new().await;
    // The first route goes in, the second fails.
    t.world.fail_when(|op| {
        (op.kind == OpKind::AddRoute && op.detail.contains("192.168.7.0/24"))
            .then(|| NetError::new(NetErrorKind::Unreachable, "network is unreachable"))
    });
    t.run(Command::Add).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(t.pod_routes(), ["10.2.0.0/24"]);
}

#[tokio::test]
async fn bad_configurations_are_refused_before_anything_changes() {
    for bad in [json!({"routes": []}), json!({"routes": [{"dst": "10.96.0.0/12", "gw": "fd00::1"}]}), json!({})] {
        let t = Setup::new().await;
        let run =
            PluginTest::new(&RoutePlugin).config_keys(bad.clone()).netns(NETNS).network(&t.world).prev_result(&t.prev);
        run.run().await.expect_error(ErrorCode::InvalidNetworkConfig);
        assert!(t.world.ops_of(OpKind::AddRoute).is_empty(), "{bad}");
    }
}

#[tokio::test]
async fn add_check_del_on_every_version_with_chaining() {
    // prevResult exists from 0.3.0 on; CHECK from 0.4.0 on.
    let versions: Vec<SpecVersion> = SpecVersion::ALL.into_iter().filter(|v| v.has_chaining()).collect();
    for_versions(&versions, |version| async move {
        let t = Setup::new().await;
        let result = t.run(Command::Add).version(version).run().await.expect_result();
        assert_eq!(result.routes.len(), 2, "{version}");
        if version.has_check() {
            t.run(Command::Check).version(version).prev_result(&result).run().await.expect_success();
        }
        t.run(Command::Del).version(version).prev_result(&result).run().await.expect_success();
        assert_eq!(t.pod_routes(), ["10.2.0.0/24"], "{version}");
    })
    .await;
}
