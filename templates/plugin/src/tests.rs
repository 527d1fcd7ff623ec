//! ADD / CHECK / DEL against fake namespaces{% if ipam %} and a fake IPAM plugin{% endif %}: no root needed.

use cni_sdk::testing::InProcessExec;
use cni_sdk::net::NetErrorKind;
use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::testing::{PluginTest, TEST_CONTAINER_ID, for_each_version};
{%- if ipam %}
use cni_sdk::{CniResult, Command, ErrorCode, IpConfig};
{%- else %}
use cni_sdk::{Command, ErrorCode};
{%- endif %}
use serde_json::{Value, json};

use super::{Config, VethPlugin};

const POD: &str = "pod1";
const NETNS: &str = "/var/run/netns/pod1";

/// A fake world with a host and one pod namespace{% if ipam %}, and a fake IPAM plugin{% endif %}.
struct Setup {
    world: FakeNetwork,
    ipam: InProcessExec,
}

impl Setup {
    fn new() -> Self {
        let world = FakeNetwork::new();
        world.add_namespace(POD);
{%- if ipam %}
        // Hands out 10.2.0.5/24 with gateway 10.2.0.1 and a default route, like host-local.
        let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _stdin| match cmd {
            Command::Add => {
                let mut r = CniResult::default();
                r.ips.push(IpConfig {
                    gateway: Some("10.2.0.1".parse().expect("valid")),
                    ..IpConfig::new("10.2.0.5/24".parse().expect("valid"))
                });
                r.routes.push(cni_sdk::types::Route::new("0.0.0.0/0".parse().expect("valid"), None));
                Ok(Some(r))
            }
            _ => Ok(None),
        });
{%- else %}
        let ipam = InProcessExec::new();
{%- endif %}
        Self { world, ipam }
    }

    /// The plugin's configuration keys used by most tests.
    fn keys() -> Value {
{%- if ipam %}
        json!({"ipam": {"type": "fake-ipam"}})
{%- else %}
        json!({
            "addresses": [{"address": "10.2.0.5/24", "gateway": "10.2.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]
        })
{%- endif %}
    }

    fn run(&self, cmd: Command) -> PluginTest<'static, VethPlugin> {
        PluginTest::new(&VethPlugin)
            .command(cmd)
            .config_keys(Self::keys())
            .netns(NETNS)
            .network(&self.world)
            .exec(self.ipam.clone())
    }

    fn host_ifname() -> String {
        config(json!({})).host_ifname(TEST_CONTAINER_ID, "eth0")
    }

    fn host_has_link(&self, name: &str) -> bool {
        let host = self.world.snapshot("host").expect("host namespace");
        host.links.iter().any(|l| l.name == name)
    }
{%- if ipam %}

    /// The verbs the fake IPAM plugin was called with.
    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|(_, verb)| verb).collect()
    }
{%- endif %}
}

fn config(keys: Value) -> Config {
    let mut doc = Setup::keys();
    if let (Some(dst), Value::Object(src)) = (doc.as_object_mut(), keys) {
        dst.extend(src);
    }
    serde_json::from_value(doc).expect("config parses")
}

#[tokio::test]
async fn add_wires_the_container_and_the_host() {
    let t = Setup::new();
    let result = t.run(Command::Add).run().await.expect_result();

    assert_eq!(result.interfaces.len(), 2);
    assert_eq!(result.interfaces[0].name, Setup::host_ifname());
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
    let veth = host.links.iter().find(|l| l.name == Setup::host_ifname()).expect("host veth");
    assert!(veth.up);
    assert!(host.addresses.iter().any(|a| a.index == veth.index && a.addr.to_string() == "10.2.0.1/32"));
    assert!(host.routes.iter().any(|r| r.dst.to_string() == "10.2.0.5/32" && r.oif == Some(veth.index)));
{%- if ipam %}
    assert_eq!(t.ipam_calls(), ["ADD"]);
{%- endif %}
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
}

#[tokio::test]
async fn del_removes_everything_and_is_idempotent() {
    let t = Setup::new();
    t.run(Command::Add).run().await.expect_result();
    t.run(Command::Del).run().await.expect_success();

    let pod = t.world.snapshot(POD).expect("pod namespace");
    assert!(pod.links.iter().all(|l| l.name == "lo"), "{:?}", pod.links);
    assert!(pod.addresses.is_empty() && pod.routes.is_empty());
    assert!(!t.host_has_link(&Setup::host_ifname()));
    let host = t.world.snapshot("host").expect("host namespace");
    assert!(host.routes.is_empty(), "{:?}", host.routes);

    // A repeated DEL (the runtime retries after errors) finds nothing and succeeds.
    t.run(Command::Del).run().await.expect_success();
{%- if ipam %}
    assert_eq!(t.ipam_calls(), ["ADD", "DEL", "DEL"]);
{%- endif %}
}

#[tokio::test]
async fn del_succeeds_when_the_namespace_is_gone() {
    let t = Setup::new();
    t.run(Command::Add).run().await.expect_result();
    assert!(t.world.remove_namespace(POD));
    t.run(Command::Del).run().await.expect_success();
    // DEL without CNI_NETNS at all is allowed by the spec, too.
    t.run(Command::Del).unset("CNI_NETNS").run().await.expect_success();
    assert!(!t.host_has_link(&Setup::host_ifname()));
}

#[tokio::test]
async fn a_failure_half_way_through_add_leaves_nothing_behind() {
    let t = Setup::new();
    t.world.fail_next_in(POD, OpKind::AddRoute, NetErrorKind::Unreachable);
    t.run(Command::Add).run().await.expect_error(ErrorCode::Internal);

    assert!(!t.host_has_link(&Setup::host_ifname()));
    let pod = t.world.snapshot(POD).expect("pod namespace");
    assert!(pod.links.iter().all(|l| l.name == "lo"), "{:?}", pod.links);
{%- if ipam %}
    // The IPAM lease was released again.
    assert_eq!(t.ipam_calls(), ["ADD", "DEL"]);
{%- endif %}
}
{%- if ipam %}

#[tokio::test]
async fn an_ipam_error_is_returned_as_is_and_nothing_is_created() {
    let mut t = Setup::new();
    t.ipam = InProcessExec::new()
        .with_fn("fake-ipam", |_cmd, _stdin| Err(cni_sdk::Error::try_again_later("no free addresses in 10.2.0.0/24")));
    let err = t.run(Command::Add).run().await.expect_error(ErrorCode::TryAgainLater);
    assert!(err.msg.contains("no free addresses"), "{err:?}");
    assert!(t.world.ops_of(OpKind::CreateVeth).is_empty());
}
{%- endif %}

#[tokio::test]
async fn add_refuses_an_interface_that_exists() {
    let t = Setup::new();
    let pod = t.world.namespace(POD).expect("pod namespace");
    pod.dummy("eth0").execute().await.expect("dummy");
    let err = t.run(Command::Add).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
    assert!(err.msg.contains("already exists"), "{err:?}");
{%- if ipam %}
    assert!(t.ipam_calls().is_empty());
{%- endif %}
}

#[tokio::test]
async fn the_configuration_is_typed_and_validated() {
    let t = Setup::new();
    let result = t.run(Command::Add).config_keys(json!({"mtu": 1400})).run().await.expect_result();
    let pod = t.world.snapshot(POD).expect("pod namespace");
    assert!(pod.links.iter().any(|l| l.name == "eth0" && l.mtu == 1400));
    assert_eq!(result.interfaces.len(), 2);

    for bad in [json!({"mtu": 10}), json!({"hostVethPrefix": "much-too-long"}), json!({"mtu": "big"})] {
        let t = Setup::new();
        t.run(Command::Add).config_keys(bad).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
        assert!(t.world.ops_of(OpKind::CreateVeth).is_empty());
    }
{%- unless ipam %}
    let t = Setup::new();
    let no_addresses = json!({"addresses": []});
    t.run(Command::Add).config_keys(no_addresses).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
{%- endunless %}
}

#[test]
fn host_interface_names_are_stable_short_and_distinct() {
    let conf = config(json!({"hostVethPrefix": "cni-abc"}));
    let a = conf.host_ifname("container-a", "eth0");
    assert_eq!(a, conf.host_ifname("container-a", "eth0"));
    assert_ne!(a, conf.host_ifname("container-b", "eth0"));
    assert_ne!(a, conf.host_ifname("container-a", "eth1"));
    assert!(a.starts_with("cni-abc") && a.len() == 15, "{a}");
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
        assert!(!t.host_has_link(&Setup::host_ifname()), "{version}");
    })
    .await;
}
