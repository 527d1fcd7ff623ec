//! Unit tests on fake namespaces with a fake IPAM: no root, no binaries. This kernel has no
//! dummy module, so the link's behaviour is only exercised here (on the fake) and the root tests
//! check the error object instead.

use cni_sdk::net::fake::{FakeNetwork, NsSnapshot, OpKind};
use cni_sdk::net::{LinkKind, NetError};
use cni_sdk::testing::{InProcessExec, PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Dns, Error, Interface, IpConfig, Route, SpecVersion};
use serde_json::{Value, json};

use super::Dummy;

const NS: &str = "/var/run/netns/ctr";

fn ipam_result(ips: &[(&str, Option<&str>)], routes: &[&str]) -> CniResult {
    let mut r = CniResult::default();
    for (a, gw) in ips {
        r.ips.push(IpConfig { gateway: gw.map(|g| g.parse().unwrap()), ..IpConfig::new(a.parse().unwrap()) });
    }
    for d in routes {
        r.routes.push(Route::new(d.parse().unwrap(), None));
    }
    r
}

fn default_result() -> CniResult {
    let mut r = ipam_result(&[("10.217.1.5/24", Some("10.217.1.1"))], &["0.0.0.0/0"]);
    r.dns = Dns { nameservers: vec!["10.217.1.53".into()], ..Dns::default() };
    r
}

struct Env {
    world: FakeNetwork,
    ipam: InProcessExec,
}

impl Env {
    fn new(ipam: InProcessExec) -> Self {
        let world = FakeNetwork::new();
        world.add_namespace("ctr");
        Self { world, ipam }
    }

    fn with_result(result: CniResult) -> Self {
        Self::new(InProcessExec::new().with_ipam_result("fake-ipam", result))
    }

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'static, Dummy> {
        PluginTest::new(&Dummy).command(cmd).config(conf.clone()).netns(NS).network(&self.world).exec(self.ipam.clone())
    }

    fn ctr(&self) -> NsSnapshot {
        self.world.snapshot("ctr").unwrap()
    }

    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|c| c.1).collect()
    }

    fn only_lo_left(&self) -> bool {
        self.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback)
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version.as_str(), "name": "dnet", "type": "dummy", "ipam": {"type": "fake-ipam"}});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn no_ipam(version: SpecVersion) -> Value {
    json!({"cniVersion": version.as_str(), "name": "dnet", "type": "dummy"})
}

#[tokio::test]
async fn add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::with_result(default_result());
        let c = conf(v, json!({}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let ctr = env.ctr();
        let link = ctr.links.iter().find(|l| l.name == "eth0").expect("eth0 in the container");
        assert_eq!(link.kind, LinkKind::Dummy);
        assert!(link.up);
        assert!(ctr.addresses.iter().any(|a| a.index == link.index && a.addr.to_string() == "10.217.1.5/24"));
        let default = ctr.routes.iter().find(|r| r.dst.prefix_len() == 0).expect("default route");
        assert_eq!((default.gateway, default.oif), (Some("10.217.1.1".parse().unwrap()), Some(link.index)));
        assert!(env.world.snapshot("host").unwrap().links.iter().all(|l| l.kind == LinkKind::Loopback));
        assert_eq!(r.ips[0].address.to_string(), "10.217.1.5/24");
        if v.has_chaining() {
            assert_eq!(r.interfaces.len(), 1);
            assert_eq!(r.interfaces[0].name, "eth0");
            assert_eq!(r.interfaces[0].sandbox.as_deref(), Some(NS));
            assert_eq!(r.interfaces[0].mac.as_ref().and_then(|m| m.as_mac()), Some(link.mac));
            assert_eq!(r.ips[0].interface, Some(0));
        }
        // The result's dns is the IPAM plugin's (Go's dummy does not apply the config's).
        assert_eq!(r.dns.nameservers, ["10.217.1.53"]);
        if v.has_check() {
            env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.only_lo_left(), "{v}");
        env.test(Command::Del, &c).run().await.expect_success();
        let expected: &[&str] = if v.has_check() { &["ADD", "CHECK", "DEL", "DEL"] } else { &["ADD", "DEL", "DEL"] };
        assert_eq!(env.ipam_calls(), expected, "{v}");
    })
    .await;
}

#[tokio::test]
async fn dual_stack_addresses_and_config_dns_ignored() {
    let env = Env::with_result(ipam_result(
        &[("10.217.2.5/24", Some("10.217.2.1")), ("fd00:217:2::5/64", Some("fd00:217:2::1"))],
        &["0.0.0.0/0", "::/0"],
    ));
    let c = conf(SpecVersion::V1_0_0, json!({"dns": {"nameservers": ["10.217.9.9"]}}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert!(r.dns.nameservers.is_empty(), "{:?}", r.dns);
    let ctr = env.ctr();
    let eth0 = ctr.links.iter().find(|l| l.name == "eth0").unwrap();
    let mut addrs: Vec<String> =
        ctr.addresses.iter().filter(|a| a.index == eth0.index).map(|a| a.addr.to_string()).collect();
    addrs.sort();
    assert_eq!(addrs, ["10.217.2.5/24", "fd00:217:2::5/64"]);
    assert_eq!(ctr.sysctls.get("net/ipv6/conf/eth0/keep_addr_on_down").map(String::as_str), Some("1"));
    assert!(
        ctr.routes.iter().any(|r| r.dst.to_string() == "::/0" && r.gateway == Some("fd00:217:2::1".parse().unwrap()))
    );
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
}

#[tokio::test]
async fn ipam_is_required_for_add_and_check() {
    let env = Env::with_result(default_result());
    for cmd in [Command::Add, Command::Check] {
        let e = env.test(cmd, &no_ipam(SpecVersion::V1_0_0)).run().await.expect_error(999);
        assert_eq!(e.msg, "dummy interface requires an IPAM configuration");
    }
    let empty_type = conf(SpecVersion::V1_0_0, json!({"ipam": {"type": ""}}));
    let e = env.test(Command::Add, &empty_type).run().await.expect_error(999);
    assert_eq!(e.msg, "dummy interface requires an IPAM configuration");
    assert!(env.only_lo_left());
    assert!(env.ipam_calls().is_empty());
    assert!(env.world.ops_of(OpKind::CreateDummy).is_empty());
}

#[tokio::test]
async fn del_and_status_always_delegate_to_ipam() {
    let env = Env::with_result(default_result());
    for cmd in [Command::Del, Command::Status] {
        let e = env.test(cmd, &no_ipam(SpecVersion::V1_1_0)).run().await.expect_error(999);
        assert_eq!(e.msg, "no plugin name provided", "{cmd}");
    }
    env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    // STATUS needs a 1.1.0 configuration (the SDK's version gate, code 1).
    env.test(Command::Status, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(1);

    let failing = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Status => Err(Error::new(50u32, "pool not ready")),
        _ => Ok(None),
    });
    let env = Env::new(failing);
    let e = env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_error(50);
    assert_eq!(e.msg, "pool not ready");
}

#[tokio::test]
async fn del_is_idempotent_without_netns_link_or_namespace() {
    let env = Env::with_result(default_result());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    env.test(Command::Add, &c).run().await.expect_result();
    // The namespace goes away (its links with it): DEL still succeeds and releases the address.
    env.world.remove_namespace("ctr");
    env.test(Command::Del, &c).run().await.expect_success();
    // No CNI_NETNS at all.
    PluginTest::new(&Dummy)
        .command(Command::Del)
        .config(c.clone())
        .unset("CNI_NETNS")
        .network(&env.world)
        .exec(env.ipam.clone())
        .run()
        .await
        .expect_success();
    // A live namespace without the link.
    env.world.add_namespace("ctr");
    env.test(Command::Del, &c).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["ADD", "DEL", "DEL", "DEL"]);
    // IPAM DEL failing stops DEL (the runtime retries), as in Go.
    let failing = InProcessExec::new().with_fn("fake-ipam", |_, _| Err(Error::internal("store is locked")));
    let env = Env::new(failing);
    assert_eq!(env.test(Command::Del, &c).run().await.expect_error(999).msg, "store is locked");
}

#[tokio::test]
async fn failed_add_removes_the_link_and_releases_the_address() {
    // IPAM gives no address: Go leaks the link here; we remove it and release the lease.
    let env = Env::with_result(CniResult::default());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM plugin returned missing IP config");
    assert!(env.only_lo_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    // A route that cannot be added (its gateway is unreachable).
    let env = Env::with_result(ipam_result(&[("10.217.3.5/24", Some("10.217.3.1"))], &["10.217.99.0/24"]));
    env.world.fail_when(|op| {
        (op.kind == OpKind::AddRoute).then(|| NetError::from_errno(libc::ENETUNREACH, "add route 10.217.99.0/24"))
    });
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to add route '{10.217.99.0 ffffff00} via 10.217.3.1 dev eth0': network is unreachable");
    env.world.clear_failures();
    assert!(env.only_lo_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    // The IPAM plugin fails: its error is returned as is, the link is gone.
    let failing = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Err(Error::new(11u32, "no addresses left")),
        _ => Ok(None),
    });
    let env = Env::new(failing);
    let e = env.test(Command::Add, &c).run().await.expect_error(11);
    assert_eq!(e.msg, "no addresses left");
    assert!(env.only_lo_left());
}

#[tokio::test]
async fn creation_errors_read_like_go() {
    let env = Env::with_result(default_result());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    // The name is taken inside the container.
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.veth("eth0", "peer0").execute().await.unwrap();
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to create dummy: file exists");
    assert_eq!(env.ctr().links.iter().find(|l| l.name == "eth0").unwrap().kind, LinkKind::Veth);
    assert!(env.ipam_calls().is_empty());

    // A kernel without the dummy module answers EOPNOTSUPP.
    let env = Env::with_result(default_result());
    env.world.fail_when(|op| {
        (op.kind == OpKind::CreateDummy).then(|| NetError::from_errno(libc::EOPNOTSUPP, "create dummy \"eth0\""))
    });
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to create dummy: operation not supported");
    assert!(env.ipam_calls().is_empty());

    // The container namespace is gone.
    let env = Env::with_result(default_result());
    let e = env.test(Command::Add, &c).netns("/var/run/netns/gone").run().await.expect_error(999);
    assert_eq!(
        e.msg,
        r#"failed to open netns "/var/run/netns/gone": failed to Statfs "/var/run/netns/gone": no such file or directory"#
    );
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn check_reports_what_differs_with_gos_texts() {
    let env = Env::with_result(default_result());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let check = |prev: Option<CniResult>| {
        let t = env.test(Command::Check, &c);
        let t = match prev {
            Some(p) => t.prev_result(&p),
            None => t,
        };
        async move { t.run().await.expect_error(999).msg }
    };
    assert_eq!(check(None).await, "dummy: Required prevResult missing");

    let mut other_ns = r.clone();
    other_ns.interfaces[0].sandbox = Some("/var/run/netns/other".into());
    assert_eq!(check(Some(other_ns)).await, format!("Sandbox in prevResult  doesn't match configured netns: {NS}"));

    let mut bad_mac = r.clone();
    bad_mac.interfaces[0].mac = Some("02:00:00:00:00:01".parse::<cni_sdk::types::MacAddr>().unwrap().into());
    let real_mac = r.interfaces[0].mac.unwrap();
    assert_eq!(
        check(Some(bad_mac)).await,
        format!("Interface eth0 Mac 02:00:00:00:00:01 doesn't match container Mac: {real_mac}")
    );

    let mut extra_ip = r.clone();
    extra_ip.ips.push(IpConfig { interface: Some(0), ..IpConfig::new("10.217.1.77/24".parse().unwrap()) });
    assert_eq!(check(Some(extra_ip)).await, "Failed to match addr 10.217.1.77/24 on interface eth0");

    // Routes are not checked by Go's dummy.
    let mut extra_route = r.clone();
    extra_route.routes.push(Route::new("10.217.200.0/24".parse().unwrap(), None));
    env.test(Command::Check, &c).prev_result(&extra_route).run().await.expect_success();

    // The link is down.
    let ctr = env.world.namespace("ctr").unwrap();
    let eth0 = ctr.link("eth0").await.unwrap();
    ctr.set_down(eth0.index).await.unwrap();
    assert_eq!(check(Some(r.clone())).await, "Interface eth0 is down");

    // The link is not a dummy.
    ctr.delete_link(eth0.index).await.unwrap();
    ctr.veth("eth0", "peer0").execute().await.unwrap();
    let mut veth_prev = r.clone();
    veth_prev.interfaces[0].mac = None;
    assert_eq!(check(Some(veth_prev.clone())).await, "Error: Container interface eth0 not of type dummy");

    // The link is gone.
    ctr.delete_link(ctr.link("eth0").await.unwrap().index).await.unwrap();
    assert_eq!(check(Some(veth_prev)).await, "Container Interface name in prevResult: eth0 not found");
}

#[tokio::test]
async fn check_runs_ipam_check_and_needs_the_namespace() {
    let failing = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Ok(Some(default_result())),
        Command::Check => Err(Error::internal("lease for 10.217.1.5 is missing")),
        _ => Ok(None),
    });
    let env = Env::new(failing);
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let e = env.test(Command::Check, &c).prev_result(&r).run().await.expect_error(999);
    assert_eq!(e.msg, "lease for 10.217.1.5 is missing");
    let e = env.test(Command::Check, &c).prev_result(&r).netns("/var/run/netns/gone").run().await.expect_error(999);
    assert!(e.msg.starts_with(r#"failed to open netns "/var/run/netns/gone": "#), "{}", e.msg);
    // CHECK needs a 0.4.0 or newer configuration.
    let old = conf(SpecVersion::V0_3_1, json!({}));
    env.test(Command::Check, &old).prev_result(&r).run().await.expect_error(1);
}

#[tokio::test]
async fn other_interface_names_and_a_result_without_mac() {
    let env = Env::with_result(default_result());
    let c = conf(SpecVersion::V1_1_0, json!({}));
    let r = env.test(Command::Add, &c).ifname("net7").run().await.expect_result();
    assert_eq!(r.interfaces[0].name, "net7");
    let ctr = env.ctr();
    assert!(ctr.links.iter().any(|l| l.name == "net7" && l.kind == LinkKind::Dummy));
    let mut no_mac = r.clone();
    no_mac.interfaces = vec![Interface { sandbox: Some(NS.into()), ..Interface::new("net7") }];
    env.test(Command::Check, &c).ifname("net7").prev_result(&no_mac).run().await.expect_success();
    env.test(Command::Del, &c).ifname("net7").run().await.expect_success();
    assert!(env.only_lo_left());
}
