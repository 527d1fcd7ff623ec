//! In-process tests on a fake network (no root).

use cni_sdk::net::NetErrorKind;
use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, IpConfig, SpecVersion};

use super::Loopback;

const NS: &str = "/var/run/netns/pod1";

fn lo_up(world: &FakeNetwork, ns: &str) -> bool {
    world.snapshot(ns).unwrap().links.iter().find(|l| l.name == "lo").unwrap().up
}

fn run<'a>(world: &FakeNetwork, cmd: Command, v: SpecVersion) -> PluginTest<'a, Loopback> {
    static PLUGIN: Loopback = Loopback;
    PluginTest::new(&PLUGIN).command(cmd).version(v).netns(NS).network(world)
}

#[tokio::test]
async fn add_check_del_every_version() {
    for_each_version(|v| async move {
        let world = FakeNetwork::new();
        world.add_namespace("pod1");
        assert!(!lo_up(&world, "pod1"));
        let out = run(&world, Command::Add, v).run().await;
        let r = out.expect_result();
        assert!(lo_up(&world, "pod1"));
        assert!(!lo_up(&world, "host"), "the host's lo is untouched");
        let doc = out.document().unwrap();
        if v >= SpecVersion::V0_3_0 {
            assert_eq!(r.interfaces.len(), 1);
            assert_eq!(r.interfaces[0].name, "lo");
            assert_eq!(r.interfaces[0].sandbox.as_deref(), Some(NS));
            assert_eq!(doc["interfaces"][0]["mac"], "00:00:00:00:00:00", "{doc}");
            let ips: Vec<(String, Option<usize>)> =
                r.ips.iter().map(|i| (i.address.to_string(), i.interface)).collect();
            assert_eq!(ips, [("127.0.0.1/8".into(), Some(0)), ("::1/128".into(), Some(0))]);
        } else {
            // 0.1.0 / 0.2.0: the addresses as ip4 / ip6, interfaces are not representable.
            assert_eq!(doc["ip4"]["ip"], "127.0.0.1/8", "{doc}");
            assert_eq!(doc["ip6"]["ip"], "::1/128", "{doc}");
        }
        let check = run(&world, Command::Check, v).run().await;
        if v.has_check() {
            check.expect_success();
        } else {
            check.expect_error(1);
        }
        run(&world, Command::Del, v).run().await.expect_success();
        assert!(!lo_up(&world, "pod1"));
        if v.has_check() {
            let e = run(&world, Command::Check, v).run().await.expect_error(999);
            assert_eq!(e.msg, "loopback interface is down");
        }
        // Repeated DEL, and DEL after the namespace is gone or without one.
        run(&world, Command::Del, v).run().await.expect_success();
        assert!(world.remove_namespace("pod1"));
        run(&world, Command::Del, v).run().await.expect_success();
        run(&world, Command::Del, v).unset("CNI_NETNS").run().await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn ifname_is_ignored() {
    let world = FakeNetwork::new();
    world.add_namespace("pod1");
    let r = run(&world, Command::Add, SpecVersion::V1_0_0).ifname("eth7").run().await.expect_result();
    assert_eq!(r.interfaces[0].name, "lo");
    assert!(lo_up(&world, "pod1"));
    assert!(world.snapshot("pod1").unwrap().links.iter().all(|l| l.name != "eth7"));
}

#[tokio::test]
async fn prev_result_passes_through() {
    let world = FakeNetwork::new();
    world.add_namespace("pod1");
    let mut prev = CniResult::default();
    prev.ips.push(IpConfig::new("10.206.0.5/24".parse().unwrap()));
    for v in [SpecVersion::V0_3_1, SpecVersion::V0_4_0, SpecVersion::V1_0_0, SpecVersion::V1_1_0] {
        let r = run(&world, Command::Add, v).prev_result(&prev).run().await.expect_result();
        assert_eq!(r, prev, "{v}");
    }
    assert!(lo_up(&world, "pod1"), "lo is brought up even when chained");
}

#[tokio::test]
async fn non_loopback_address_on_lo_is_an_error() {
    let world = FakeNetwork::new();
    let ns = world.add_namespace("pod1");
    let lo = ns.link("lo").await.unwrap();
    ns.add_address(lo.index, "10.206.0.9/32".parse().unwrap()).await.unwrap();
    let e = run(&world, Command::Add, SpecVersion::V1_0_0).run().await.expect_error(999);
    assert_eq!(e.msg, "loopback interface found with non-loopback address \"10.206.0.9\"");
}

#[tokio::test]
async fn missing_namespace_on_add_and_check() {
    let world = FakeNetwork::new();
    for cmd in [Command::Add, Command::Check] {
        let e = run(&world, cmd, SpecVersion::V1_0_0).run().await.expect_error(999);
        assert_eq!(e.msg, format!("failed to Statfs {NS:?}: no such file or directory"), "{cmd}");
    }
}

#[tokio::test]
async fn kernel_errors_are_reported() {
    let world = FakeNetwork::new();
    world.add_namespace("pod1");
    world.fail_next_in("pod1", OpKind::SetUp, NetErrorKind::PermissionDenied);
    let out = run(&world, Command::Add, SpecVersion::V1_0_0).run().await;
    assert!(!out.is_success());
    assert!(!lo_up(&world, "pod1"));
    run(&world, Command::Add, SpecVersion::V1_0_0).run().await.expect_result();
    world.fail_next_in("pod1", OpKind::SetDown, NetErrorKind::PermissionDenied);
    assert!(!run(&world, Command::Del, SpecVersion::V1_0_0).run().await.is_success());
}
