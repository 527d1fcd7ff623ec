//! ADD / CHECK / DEL against a fake network and a fake IPAM plugin: no root needed.

use cni_sdk::net::NetErrorKind;
use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::testing::{InProcessExec, PluginTest, for_each_version};
use cni_sdk::types::Route;
use cni_sdk::{CniResult, Command, Error, ErrorCode, IpConfig};
use serde_json::json;

use super::VethPlugin;

const POD: &str = "pod1";
const NETNS: &str = "/var/run/netns/pod1";

/// A fake world with a host and one pod namespace, and a fake IPAM plugin.
struct Setup {
    world: FakeNetwork,
    ipam: InProcessExec,
}

impl Setup {
    fn new() -> Self {
        let world = FakeNetwork::new();
        world.add_namespace(POD);
        // Hands out 10.2.0.5/24 with gateway 10.2.0.1 and a default route, like host-local.
        let mut lease = CniResult::default();
        lease.ips.push(IpConfig {
            gateway: Some("10.2.0.1".parse().expect("valid")),
            ..IpConfig::new("10.2.0.5/24".parse().expect("valid"))
        });
        lease.routes.push(Route::new("0.0.0.0/0".parse().expect("valid"), None));
        let ipam = InProcessExec::new().with_ipam_result("fake-ipam", lease);
        Self { world, ipam }
    }

    fn run(&self, cmd: Command) -> PluginTest<'static, VethPlugin> {
        PluginTest::new(&VethPlugin)
            .command(cmd)
            .config_keys(json!({"ipam": {"type": "fake-ipam"}}))
            .netns(NETNS)
            .network(&self.world)
            .exec(self.ipam.clone())
    }

    /// The links of namespace `ns` other than `lo`.
    fn links(&self, ns: &str) -> Vec<String> {
        let snap = self.world.snapshot(ns).expect("namespace");
        snap.links.into_iter().map(|l| l.name).filter(|n| n != "lo").collect()
    }

    /// The verbs the fake IPAM plugin was called with.
    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|(_, verb)| verb).collect()
    }
}

#[tokio::test]
async fn add_wires_the_container_and_the_host() {
    let t = Setup::new();
    let result = t.run(Command::Add).run().await.expect_result();

    assert_eq!(result.interfaces.len(), 2);
    let host_name = result.interfaces[0].name.clone();
    assert!(host_name.starts_with("veth"), "{host_name}");
    assert_eq!(result.interfaces[1].name, "eth0");
    assert_eq!(result.interfaces[1].sandbox.as_deref(), Some(NETNS));
    assert_eq!(result.ips[0].address.to_string(), "10.2.0.5/24");
    assert_eq!(result.ips[0].interface, Some(1));

    let pod = t.world.snapshot(POD).expect("pod namespace");
    let eth0 = pod.links.iter().find(|l| l.name == "eth0").expect("eth0 in the pod");
    assert!(eth0.up);
    assert!(pod.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.2.0.5/24"));
    let default = pod.routes.iter().find(|r| r.dst.prefix_len() == 0).expect("default route");
    assert_eq!(default.gateway, Some("10.2.0.1".parse().expect("valid")));

    let host = t.world.snapshot("host").expect("host namespace");
    let veth = host.links.iter().find(|l| l.name == host_name).expect("host veth");
    assert!(veth.up);
    assert!(host.addresses.iter().any(|a| a.index == veth.index && a.addr.to_string() == "10.2.0.1/32"));
    assert!(host.routes.iter().any(|r| r.dst.to_string() == "10.2.0.5/32" && r.oif == Some(veth.index)));
    assert_eq!(t.ipam_calls(), ["ADD"]);
}

#[tokio::test]
async fn check_passes_after_add_and_fails_when_the_interface_is_broken() {
    let t = Setup::new();
    let result = t.run(Command::Add).run().await.expect_result();
    t.run(Command::Check).prev_result(&result).run().await.expect_success();

    let pod = t.world.namespace(POD).expect("pod namespace");
    let eth0 = pod.link("eth0").await.expect("eth0");
    pod.delete_address(eth0.index, "10.2.0.5/24".parse().expect("valid")).await.expect("delete");
    let err = t.run(Command::Check).prev_result(&result).run().await.expect_error(ErrorCode::Internal);
    assert!(err.msg.contains("10.2.0.5/24"), "{err:?}");

    pod.delete_link(eth0.index).await.expect("delete eth0");
    t.run(Command::Check).prev_result(&result).run().await.expect_error(ErrorCode::Internal);
    // Without the result ADD returned there is nothing to check against.
    t.run(Command::Check).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
}

#[tokio::test]
async fn del_removes_everything_and_is_idempotent() {
    let t = Setup::new();
    t.run(Command::Add).run().await.expect_result();
    t.run(Command::Del).run().await.expect_success();

    assert!(t.links(POD).is_empty(), "{:?}", t.links(POD));
    assert!(t.links("host").is_empty(), "{:?}", t.links("host"));
    let host = t.world.snapshot("host").expect("host namespace");
    assert!(host.routes.is_empty(), "{:?}", host.routes);

    // A repeated DEL (the runtime retries after errors) finds nothing and succeeds.
    t.run(Command::Del).run().await.expect_success();
    assert_eq!(t.ipam_calls(), ["ADD", "DEL", "DEL"]);
}

#[tokio::test]
async fn del_succeeds_when_the_namespace_is_gone() {
    let t = Setup::new();
    t.run(Command::Add).run().await.expect_result();
    assert!(t.world.remove_namespace(POD));
    t.run(Command::Del).run().await.expect_success();
    // DEL without CNI_NETNS at all is allowed by the spec, too.
    t.run(Command::Del).unset("CNI_NETNS").run().await.expect_success();
    assert!(t.links("host").is_empty(), "the host end went with the namespace: {:?}", t.links("host"));
    assert_eq!(t.ipam_calls(), ["ADD", "DEL", "DEL"]);
}

#[tokio::test]
async fn a_failure_half_way_through_add_leaves_nothing_behind() {
    let t = Setup::new();
    t.world.fail_next_in(POD, OpKind::AddRoute, NetErrorKind::Unreachable);
    t.run(Command::Add).run().await.expect_error(ErrorCode::Internal);

    assert!(t.links("host").is_empty(), "{:?}", t.links("host"));
    assert!(t.links(POD).is_empty(), "{:?}", t.links(POD));
    // The IPAM lease was released again.
    assert_eq!(t.ipam_calls(), ["ADD", "DEL"]);
}

#[tokio::test]
async fn an_ipam_error_is_returned_as_is_and_nothing_is_created() {
    let mut t = Setup::new();
    t.ipam = InProcessExec::new()
        .with_fn("fake-ipam", |_cmd, _stdin| Err(Error::try_again_later("no free addresses in 10.2.0.0/24")));
    let err = t.run(Command::Add).run().await.expect_error(ErrorCode::TryAgainLater);
    assert!(err.msg.contains("no free addresses"), "{err:?}");
    assert!(t.world.ops_of(OpKind::CreateVeth).is_empty());
}

#[tokio::test]
async fn add_refuses_an_interface_that_exists() {
    let t = Setup::new();
    let pod = t.world.namespace(POD).expect("pod namespace");
    pod.dummy("eth0").execute().await.expect("dummy");
    let err = t.run(Command::Add).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
    assert!(err.msg.contains("already exists"), "{err:?}");
    assert!(t.ipam_calls().is_empty());
}

#[tokio::test]
async fn the_configuration_is_typed_and_validated() {
    let t = Setup::new();
    t.run(Command::Add).config_keys(json!({"mtu": 1400})).run().await.expect_result();
    let pod = t.world.snapshot(POD).expect("pod namespace");
    assert!(pod.links.iter().any(|l| l.name == "eth0" && l.mtu == 1400));

    for bad in [json!({"mtu": 10}), json!({"mtu": "big"})] {
        let t = Setup::new();
        t.run(Command::Add).config_keys(bad).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
        assert!(t.world.ops_of(OpKind::CreateVeth).is_empty());
        assert!(t.ipam_calls().is_empty());
    }
}

#[tokio::test]
async fn add_check_del_on_every_spec_version() {
    for_each_version(|version| async move {
        let t = Setup::new();
        let result = t.run(Command::Add).version(version).run().await.expect_result();
        assert_eq!(result.ips[0].address.to_string(), "10.2.0.5/24");
        if version.has_check() {
            let check = t.run(Command::Check).version(version).prev_result(&result);
            check.run().await.expect_success();
        }
        t.run(Command::Del).version(version).run().await.expect_success();
        assert!(t.links("host").is_empty(), "{version}");
    })
    .await;
}
