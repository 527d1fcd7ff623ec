//! The plugin on fake namespaces with a fake IPAM plugin: what `netwire`'s own tests did for the
//! library, now through the CNI protocol.

use cni_sdk::testing::InProcessExec;
use cni_sdk::net::NetErrorKind;
use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::testing::{PluginTest, TEST_CONTAINER_ID};
use cni_sdk::types::Route;
use cni_sdk::{CniResult, Command, ErrorCode, IpConfig};
use serde_json::json;

use super::{Config, NetwirePlugin};

fn ipam(routes: Vec<Route>) -> InProcessExec {
    InProcessExec::new().with_fn("fake-ipam", move |cmd, _| match cmd {
        Command::Add => Ok(Some(CniResult {
            ips: vec![IpConfig {
                gateway: Some("10.1.0.1".parse().unwrap()),
                ..IpConfig::new("10.1.0.2/24".parse().unwrap())
            }],
            routes: routes.clone(),
            ..CniResult::default()
        })),
        _ => Ok(None),
    })
}

fn plugin_test(world: &FakeNetwork, exec: &InProcessExec, cmd: Command) -> PluginTest<'static, NetwirePlugin> {
    PluginTest::new(&NetwirePlugin)
        .command(cmd)
        .config_keys(json!({"mtu": 1400, "ipam": {"type": "fake-ipam"}}))
        .netns("/var/run/netns/app")
        .network(world)
        .exec(exec.clone())
}

fn host_ifname() -> String {
    let conf: Config = serde_json::from_value(json!({})).unwrap();
    conf.host_ifname(TEST_CONTAINER_ID, "eth0").unwrap()
}

fn verbs(exec: &InProcessExec) -> Vec<String> {
    exec.calls().into_iter().map(|(_, verb)| verb).collect()
}

#[tokio::test]
async fn add_check_del() {
    let world = FakeNetwork::new();
    world.add_namespace("app");
    let exec = ipam(vec![Route::new("0.0.0.0/0".parse().unwrap(), None)]);

    let result = plugin_test(&world, &exec, Command::Add).run().await.expect_result();
    assert_eq!(result.interfaces[0].name, host_ifname());
    assert_eq!(result.interfaces[1].sandbox.as_deref(), Some("/var/run/netns/app"));
    let app = world.snapshot("app").unwrap();
    let eth0 = app.links.iter().find(|l| l.name == "eth0").unwrap();
    assert_eq!(eth0.mtu, 1400);
    assert!(app.addresses.iter().any(|a| a.addr.to_string() == "10.1.0.2/24"));

    plugin_test(&world, &exec, Command::Check).prev_result(&result).run().await.expect_success();
    plugin_test(&world, &exec, Command::Del).run().await.expect_success();
    plugin_test(&world, &exec, Command::Del).run().await.expect_success();
    assert!(world.snapshot("host").unwrap().links.iter().all(|l| l.name == "lo"));
    assert_eq!(verbs(&exec), ["ADD", "CHECK", "DEL", "DEL"]);
}

#[tokio::test]
async fn del_after_the_namespace_is_gone() {
    let world = FakeNetwork::new();
    world.add_namespace("app");
    let exec = ipam(Vec::new());
    plugin_test(&world, &exec, Command::Add).run().await.expect_result();
    world.remove_namespace("app");
    plugin_test(&world, &exec, Command::Del).run().await.expect_success();
}

#[tokio::test]
async fn failures_release_the_lease_and_the_links() {
    let world = FakeNetwork::new();
    world.add_namespace("app");
    let exec = ipam(Vec::new());
    world.fail_next(OpKind::AddRoute, NetErrorKind::Unreachable);
    let err = plugin_test(&world, &exec, Command::Add).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(err.msg, "netlink operation failed");
    assert!(err.details.is_some(), "the netlink error is kept as the cause");
    assert!(world.snapshot("host").unwrap().links.iter().all(|l| l.name == "lo"));
    assert_eq!(verbs(&exec), ["ADD", "DEL"]);

    // A route the library cannot install is refused the same way.
    let exec = ipam(vec![Route::new("192.168.0.0/16".parse().unwrap(), None)]);
    plugin_test(&world, &exec, Command::Add).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
    assert_eq!(verbs(&exec), ["ADD", "DEL"]);
}

#[tokio::test]
async fn check_reports_a_missing_address() {
    let world = FakeNetwork::new();
    let app = world.add_namespace("app");
    let exec = ipam(Vec::new());
    let result = plugin_test(&world, &exec, Command::Add).run().await.expect_result();
    let eth0 = app.link("eth0").await.unwrap();
    app.delete_address(eth0.index, "10.1.0.2/24".parse().unwrap()).await.unwrap();
    let err =
        plugin_test(&world, &exec, Command::Check).prev_result(&result).run().await.expect_error(ErrorCode::Internal);
    assert!(err.msg.contains("10.1.0.2/24"), "{err:?}");
}
