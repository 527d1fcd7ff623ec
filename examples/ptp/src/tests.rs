//! Unit tests on fake namespaces with a fake IPAM and a model nat table: no root, no binaries.

use std::sync::Arc;

use cni_sdk::testing::InProcessExec;
use cni_sdk::net::fake::{FakeNetwork, NsSnapshot, OpKind};
use cni_sdk::net::{LinkKind, NetErrorKind, RouteScope};
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Error, ErrorCode, IpConfig, Route, SpecVersion};
use serde_json::{Value, json};

use super::Ptp;
use bridge::ipmasq::{FakeFirewall, Family, chain_comment, chain_name};

const NS: &str = "/var/run/netns/ctr";
const CID: &str = "ptp-container-1";

fn ipam_result(ips: &[(&str, Option<&str>)], routes: &[(&str, Option<&str>)]) -> CniResult {
    let mut r = CniResult::default();
    for (a, gw) in ips {
        r.ips.push(IpConfig { gateway: gw.map(|g| g.parse().unwrap()), ..IpConfig::new(a.parse().unwrap()) });
    }
    for (d, gw) in routes {
        r.routes.push(Route::new(d.parse().unwrap(), gw.map(|g| g.parse().unwrap())));
    }
    r
}

fn ipam_with(result: CniResult) -> InProcessExec {
    InProcessExec::new().with_ipam_result("fake-ipam", result)
}

fn default_ipam() -> InProcessExec {
    ipam_with(ipam_result(&[("10.251.0.5/24", Some("10.251.0.1"))], &[("0.0.0.0/0", None)]))
}

struct Env {
    world: FakeNetwork,
    fw: Arc<FakeFirewall>,
    plugin: Ptp,
    ipam: InProcessExec,
}

impl Env {
    fn new(ipam: InProcessExec) -> Self {
        let world = FakeNetwork::new();
        world.add_namespace("ctr");
        let fw = Arc::new(FakeFirewall::default());
        Self { world, plugin: Ptp { fw: fw.clone() }, fw, ipam }
    }

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'_, Ptp> {
        PluginTest::new(&self.plugin)
            .command(cmd)
            .config(conf.clone())
            .container_id(CID)
            .netns(NS)
            .network(&self.world)
            .exec(self.ipam.clone())
    }

    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|c| c.1).collect()
    }

    fn host(&self) -> NsSnapshot {
        self.world.snapshot("host").unwrap()
    }

    fn ctr(&self) -> NsSnapshot {
        self.world.snapshot("ctr").unwrap()
    }

    fn nothing_left(&self) -> bool {
        self.host().links.iter().all(|l| l.kind != LinkKind::Veth)
            && self.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback)
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version.as_str(), "name": "ptpnet", "type": "ptp", "ipam": {"type": "fake-ipam"}});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

#[tokio::test]
async fn add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam());
        let c = conf(v, json!({}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        assert_eq!(r.ips[0].address.to_string(), "10.251.0.5/24");
        if v.has_chaining() {
            assert_eq!(r.interfaces.len(), 2);
            assert!(r.interfaces[0].name.starts_with("veth") && r.interfaces[0].sandbox.is_none());
            assert_eq!(r.interfaces[1].name, "eth0");
            assert_eq!(r.interfaces[1].sandbox.as_deref(), Some(NS));
            assert_eq!(r.ips[0].interface, Some(1));
        }
        let host = env.host();
        let hv = host.links.iter().find(|l| l.kind == LinkKind::Veth).expect("host veth");
        assert!(hv.up);
        assert!(host.addresses.iter().any(|a| a.index == hv.index && a.addr.to_string() == "10.251.0.1/32"));
        let back = host.routes.iter().find(|r| r.dst.to_string() == "10.251.0.5/32").expect("host route");
        assert_eq!((back.oif, back.scope), (Some(hv.index), RouteScope::Host));
        assert_eq!(host.sysctls.get("net/ipv4/ip_forward").map(String::as_str), Some("1"));
        let ctr = env.ctr();
        let eth0 = ctr.links.iter().find(|l| l.name == "eth0").unwrap();
        assert!(eth0.up);
        assert!(ctr.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.251.0.5/24"));
        let subnet: Vec<_> = ctr.routes.iter().filter(|r| r.dst.to_string() == "10.251.0.0/24").collect();
        assert_eq!(subnet.len(), 1, "the kernel's subnet route was replaced: {:?}", ctr.routes);
        assert_eq!(subnet[0].gateway, Some("10.251.0.1".parse().unwrap()));
        assert_eq!(subnet[0].source, Some("10.251.0.5".parse().unwrap()));
        let gw = ctr.routes.iter().find(|r| r.dst.to_string() == "10.251.0.1/32").expect("gw/32 route");
        assert_eq!(gw.scope, RouteScope::Link);
        assert_eq!(gw.source, Some("10.251.0.5".parse().unwrap()));
        assert!(ctr.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.gateway == Some("10.251.0.1".parse().unwrap())));

        if v.has_check() {
            env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.nothing_left(), "{v}");
        let expected: &[&str] = if v.has_check() { &["ADD", "CHECK", "DEL"] } else { &["ADD", "DEL"] };
        assert_eq!(env.ipam_calls(), expected);
        env.test(Command::Del, &c).run().await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn dual_stack_and_mtu() {
    let env = Env::new(ipam_with(ipam_result(
        &[("10.251.1.5/24", Some("10.251.1.1")), ("fd00:251::5/64", Some("fd00:251::1"))],
        &[],
    )));
    let r = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"mtu": 1380}))).run().await.expect_result();
    assert_eq!(r.ips.len(), 2);
    let host = env.host();
    let hv = host.links.iter().find(|l| l.kind == LinkKind::Veth).unwrap();
    assert_eq!(hv.mtu, 1380);
    assert!(host.addresses.iter().any(|a| a.addr.to_string() == "fd00:251::1/128"));
    assert!(host.routes.iter().any(|r| r.dst.to_string() == "fd00:251::5/128"));
    assert_eq!(host.sysctls.get("net/ipv6/conf/all/forwarding").map(String::as_str), Some("1"));
    let ctr = env.ctr();
    assert_eq!(ctr.links.iter().find(|l| l.name == "eth0").unwrap().mtu, 1380);
    assert!(
        ctr.routes
            .iter()
            .any(|r| r.dst.to_string() == "fd00:251::/64" && r.gateway == Some("fd00:251::1".parse().unwrap()))
    );
}

#[tokio::test]
async fn ip_masq_rules_and_teardown() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V0_4_0, json!({"ipMasq": true}));
    env.test(Command::Add, &c).run().await.expect_result();
    let chain = chain_name("ptpnet", CID);
    let comment = chain_comment("ptpnet", CID);
    assert_eq!(env.fw.rules(Family::V4, &chain).unwrap().len(), 2);
    let post = env.fw.postrouting(Family::V4);
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].join(" "), format!("-s 10.251.0.5 -j {chain} -m comment --comment {comment}"));
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.fw.chains().is_empty() && env.fw.postrouting(Family::V4).is_empty());
}

#[tokio::test]
async fn failures_after_ipam_add_roll_back() {
    // Netlink failures in the container and on the host, and an iptables failure.
    for (ns, kind) in [
        ("ctr", OpKind::AddAddress),
        ("ctr", OpKind::AddRoute),
        ("host", OpKind::AddAddress),
        ("host", OpKind::AddRoute),
    ] {
        let env = Env::new(default_ipam());
        env.world.fail_next_in(ns, kind, NetErrorKind::PermissionDenied);
        let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
        assert!(e.msg.to_lowercase().contains("permission"), "{ns} {kind:?}: {e:?}");
        assert_eq!(env.ipam_calls(), ["ADD", "DEL"], "{ns} {kind:?}");
        assert!(env.nothing_left(), "{ns} {kind:?}");
    }
    let env = Env::new(default_ipam());
    env.fw.fail_with("iptables: Permission denied");
    env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"ipMasq": true}))).run().await.expect_error(999);
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    assert!(env.nothing_left());
    // Veth creation fails (the interface exists): IPAM DEL too.
    let env = Env::new(default_ipam());
    env.world.namespace("ctr").unwrap().dummy("eth0").execute().await.unwrap();
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert!(e.msg.contains("already exists"), "{e:?}");
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    // Missing netns.
    let env = Env::new(default_ipam());
    let e = env
        .test(Command::Add, &conf(SpecVersion::V1_0_0, json!({})))
        .netns("/var/run/netns/nope")
        .run()
        .await
        .expect_error(999);
    assert!(e.msg.starts_with("failed to open netns"), "{e:?}");
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
}

#[tokio::test]
async fn ipam_errors() {
    let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Err(Error::new(ErrorCode::TryAgainLater, "range exhausted")),
        _ => Ok(None),
    });
    let env = Env::new(ipam);
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(11);
    assert_eq!(e.msg, "range exhausted");
    assert_eq!(env.ipam_calls(), ["ADD"]);
    assert!(env.nothing_left());

    let env = Env::new(ipam_with(CniResult::default()));
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM plugin returned missing IP config");
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    let env = Env::new(default_ipam());
    let mut c = conf(SpecVersion::V1_1_0, json!({}));
    c.as_object_mut().unwrap().remove("ipam");
    for cmd in [Command::Add, Command::Del, Command::Status] {
        let e = env.test(cmd, &c).run().await.expect_error(999);
        assert_eq!(e.msg, "no plugin name provided", "{cmd}");
    }
}

#[tokio::test]
async fn del_is_idempotent() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"ipMasq": true}));
    env.test(Command::Del, &c).run().await.expect_success();
    env.test(Command::Del, &c).unset("CNI_NETNS").run().await.expect_success();
    env.test(Command::Del, &c).netns("/var/run/netns/gone").run().await.expect_success();
    env.test(Command::Add, &c).run().await.expect_result();
    env.world.remove_namespace("ctr");
    env.test(Command::Del, &c).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["DEL", "DEL", "DEL", "ADD", "DEL"]);
}

#[tokio::test]
async fn check_detects_drift() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    let e = env.test(Command::Check, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "ptp: Required prevResult missing");
    let mut bad = r.clone();
    bad.interfaces[1].mac = Some("0a:00:00:00:00:09".parse::<cni_sdk::types::MacAddr>().unwrap().into());
    let e = env.test(Command::Check, &c).prev_result(&bad).run().await.expect_error(999);
    assert!(e.msg.contains("doesn't match container Mac"), "{e:?}");
    let mut bad = r.clone();
    bad.interfaces[1].sandbox = Some("/var/run/netns/other".into());
    let e = env.test(Command::Check, &c).prev_result(&bad).run().await.expect_error(999);
    assert!(e.msg.starts_with("Sandbox in prevResult"), "{e:?}");
    let mut bad = r.clone();
    bad.ips[0].address = "10.251.0.77/24".parse().unwrap();
    let e = env.test(Command::Check, &c).prev_result(&bad).run().await.expect_error(999);
    assert_eq!(e.msg, "Failed to match addr 10.251.0.77/24 on interface eth0");
    let mut bad = r.clone();
    bad.routes.push(Route::new("10.99.0.0/16".parse().unwrap(), None));
    let e = env.test(Command::Check, &c).prev_result(&bad).run().await.expect_error(999);
    assert!(e.msg.starts_with("Expected Route"), "{e:?}");
}

#[tokio::test]
async fn dns_override_and_status() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_1_0, json!({"dns": {"nameservers": ["10.251.0.53"]}}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(r.dns.nameservers, ["10.251.0.53"]);
    env.test(Command::Status, &c).run().await.expect_success();
    let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Status => Err(Error::not_available("not ready")),
        _ => Ok(None),
    });
    let env = Env::new(ipam);
    env.test(Command::Status, &c).run().await.expect_error(50);
}
