//! Unit tests on fake namespaces with a fake IPAM: no root, no binaries. The test kernel has no
//! 802.1Q support, so the link behaviour is tested on the fake only (hence the `fake_only_`
//! names); `tests/kernel.rs` compares Go's and our errors on the real kernel.

use cni_sdk::net::fake::{FakeNetwork, NsSnapshot, OpKind};
use cni_sdk::net::{LinkKind, Net, NetError};
use cni_sdk::testing::{InProcessExec, Outcome, PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Error, ErrorCode, Interface, IpConfig, PluginEntry, Route, SpecVersion};
use serde_json::{Value, json};

use super::Vlan;

const NS: &str = "/var/run/netns/ctr";

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

fn default_ipam() -> InProcessExec {
    InProcessExec::new().with_ipam_result(
        "fake-ipam",
        ipam_result(&[("10.216.100.5/24", Some("10.216.100.1"))], &[("0.0.0.0/0", None)]),
    )
}

/// Host with `ens3` (MTU 1500) and `ens4` (MTU 9000), and a container namespace `ctr`.
struct Env {
    world: FakeNetwork,
    ipam: InProcessExec,
}

impl Env {
    async fn new(ipam: InProcessExec) -> Self {
        let world = FakeNetwork::new();
        world.add_namespace("ctr");
        let host = world.host();
        for (name, mtu) in [("ens3", 1500), ("ens4", 9000)] {
            let l = host.dummy(name).mtu(mtu).execute().await.unwrap();
            host.set_up(l.index).await.unwrap();
        }
        Self { world, ipam }
    }

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'_, Vlan> {
        PluginTest::new(&Vlan)
            .options(Vlan::options())
            .command(cmd)
            .config(conf.clone())
            .netns(NS)
            .network(&self.world)
            .exec(self.ipam.clone())
    }

    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|c| c.1).collect()
    }

    fn host(&self) -> Net {
        self.world.host()
    }

    fn ctr(&self) -> NsSnapshot {
        self.world.snapshot("ctr").unwrap()
    }

    fn nothing_left(&self) -> bool {
        self.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback)
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version.as_str(), "name": "vlnet", "type": "vlan", "master": "ens3", "vlanId": 100,
        "ipam": {"type": "fake-ipam"}
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn link_of(s: &NsSnapshot, name: &str) -> cni_sdk::net::Link {
    s.links.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("{name} missing: {:?}", s.links)).clone()
}

fn msg(o: Outcome) -> String {
    o.expect_error(999).msg
}

#[tokio::test]
async fn fake_only_add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam()).await;
        let c = conf(v, json!({"mtu": 1400, "dns": {"nameservers": ["10.216.100.53"]}}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let ctr = env.ctr();
        let eth0 = link_of(&ctr, "eth0");
        let ens3 = env.host().link("ens3").await.unwrap();
        assert_eq!((eth0.kind.clone(), eth0.vlan_id(), eth0.mtu, eth0.up), (LinkKind::Vlan, Some(100), 1400, true));
        assert_eq!(eth0.parent.map(|p| p.index), Some(ens3.index));
        assert_eq!(eth0.mac, ens3.mac, "a VLAN device has its master's MAC");
        assert!(ctr.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.216.100.5/24"));
        assert!(
            ctr.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.gateway == Some("10.216.100.1".parse().unwrap()))
        );
        // No arp_notify for vlan (Go sets none).
        assert!(!ctr.sysctls.contains_key("net/ipv4/conf/eth0/arp_notify"));
        assert_eq!(r.dns.nameservers, ["10.216.100.53"]);
        if v.has_chaining() {
            assert_eq!(
                r.interfaces,
                [Interface { mac: Some(ens3.mac.into()), sandbox: Some(NS.into()), ..Interface::new("eth0") }]
            );
            assert_eq!(r.ips[0].interface, Some(0));
        }
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
async fn fake_only_vlan_ids() {
    let env = Env::new(default_ipam()).await;
    for id in [0, 1, 4094] {
        let c = conf(SpecVersion::V1_0_0, json!({"vlanId": id}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        assert_eq!(link_of(&env.ctr(), "eth0").vlan_id(), Some(id));
        env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        env.test(Command::Del, &c).run().await.expect_success();
    }
    // Without the key: id 0.
    env.test(Command::Add, &without(conf(SpecVersion::V1_0_0, json!({})), "vlanId")).run().await.expect_result();
    assert_eq!(link_of(&env.ctr(), "eth0").vlan_id(), Some(0));
    env.test(Command::Del, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_success();
    for id in [4095, 5000, -1] {
        let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"vlanId": id}))).run().await);
        assert_eq!(e, format!("invalid VLAN ID {id} (must be between 0 and 4094 inclusive)"));
    }
    // One VLAN per master and id: a second attachment with the same id is refused by the kernel.
    let c = conf(SpecVersion::V1_0_0, json!({}));
    env.test(Command::Add, &c).run().await.expect_result();
    let e = msg(env.test(Command::Add, &c).ifname("net1").run().await);
    assert_eq!(e, "failed to create vlan: file exists");
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.nothing_left());
}

#[tokio::test]
async fn fake_only_master_and_mtu() {
    let env = Env::new(default_ipam()).await;
    let e = msg(env.test(Command::Add, &without(conf(SpecVersion::V1_0_0, json!({})), "master")).run().await);
    assert_eq!(e, "\"master\" field is required. It specifies the host interface name to create the VLAN for.");
    let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"master": "ens9"}))).run().await);
    assert_eq!(e, "Link not found");
    for (master, mtu, max) in [("ens3", 1501, 1500), ("ens4", 9001, 9000), ("ens3", -2, 1500)] {
        let c = conf(SpecVersion::V1_0_0, json!({"master": master, "mtu": mtu}));
        assert_eq!(
            msg(env.test(Command::Add, &c).run().await),
            format!("invalid MTU {mtu}, must be [0, master MTU({max})]")
        );
    }
    let c = conf(SpecVersion::V1_0_0, json!({"master": "ens4", "mtu": 9000}));
    env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(link_of(&env.ctr(), "eth0").mtu, 9000);
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
}

#[tokio::test]
async fn fake_only_ipam_is_required_and_its_errors_are_wrapped() {
    let env = Env::new(default_ipam()).await;
    // No IPAM: Go fails after creating the link and leaves it; it is removed here.
    let e = msg(env.test(Command::Add, &without(conf(SpecVersion::V1_0_0, json!({})), "ipam")).run().await);
    assert_eq!(e, "failed to execute IPAM delegate: no plugin name provided");
    assert!(env.nothing_left());
    let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"ipam": {"type": "nope"}}))).run().await);
    assert_eq!(e, r#"failed to execute IPAM delegate: failed to find plugin "nope" in path [in-process]"#);
    assert!(env.nothing_left());
    // An IPAM plugin's error object becomes Go's wrapped text with code 999.
    let failing = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Err(Error::try_again_later("no free address").with_details("10.216.100.0/24 exhausted")),
        _ => Ok(None),
    });
    let env = Env::new(failing).await;
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to execute IPAM delegate: no free address; 10.216.100.0/24 exhausted");
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD"]);
}

#[tokio::test]
async fn fake_only_failures_after_the_link_exists_remove_it() {
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let env = Env::new(InProcessExec::new().with_ipam_result("fake-ipam", CniResult::default())).await;
    assert_eq!(msg(env.test(Command::Add, &c).run().await), "IPAM plugin returned missing IP config");
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    let env = Env::new(InProcessExec::new().with_ipam_result(
        "fake-ipam",
        ipam_result(&[("10.216.100.5/24", None)], &[("10.216.99.0/24", Some("10.216.200.1"))]),
    ))
    .await;
    let e = msg(env.test(Command::Add, &c).run().await);
    assert!(e.starts_with("failed to add route '{10.216.99.0 ffffff00} via 10.216.200.1 dev eth0'"), "{e}");
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    // The name is taken in the container: the temporary link is removed (Go leaks it).
    let env = Env::new(default_ipam()).await;
    env.world.namespace("ctr").unwrap().dummy("eth0").execute().await.unwrap();
    assert_eq!(msg(env.test(Command::Add, &c).run().await), "failed to rename vlan to \"eth0\": file exists");
    assert_eq!(env.ctr().links.len(), 2);
    assert!(env.host().links().await.unwrap().iter().all(|l| l.kind != LinkKind::Vlan));
    assert!(env.ipam_calls().is_empty());
    // A kernel without 802.1Q support.
    let env = Env::new(default_ipam()).await;
    env.world
        .fail_when(|op| (op.kind == OpKind::CreateVlan).then(|| NetError::from_errno(libc::EOPNOTSUPP, "create vlan")));
    assert_eq!(msg(env.test(Command::Add, &c).run().await), "failed to create vlan: operation not supported");
    assert!(env.nothing_left());
}

#[tokio::test]
async fn fake_only_link_in_container() {
    let env = Env::new(default_ipam()).await;
    let ctr = env.world.namespace("ctr").unwrap();
    let inner = ctr.dummy("trunk0").mtu(1600).execute().await.unwrap();
    ctr.set_up(inner.index).await.unwrap();
    let c = conf(SpecVersion::V1_1_0, json!({"master": "trunk0", "linkInContainer": true, "mtu": 1600, "vlanId": 7}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let eth0 = link_of(&env.ctr(), "eth0");
    assert_eq!(eth0.parent, Some(cni_sdk::net::LinkRef { index: inner.index, same_netns: true }));
    assert_eq!((eth0.vlan_id(), eth0.mtu), (Some(7), 1600));
    assert_eq!(env.world.ops_of(OpKind::CreateVlan)[0].netns, "ctr");
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    // The host's master is not the container's.
    let host_master = conf(SpecVersion::V1_1_0, json!({"master": "ens3", "linkInContainer": true}));
    assert_eq!(msg(env.test(Command::Add, &host_master).run().await), "Link not found");
    assert_eq!(env.ctr().links.len(), 2);
}

#[tokio::test]
async fn fake_only_check_reports_what_differs() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"mtu": 1400}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let check = |conf: &Value, prev: &CniResult| env.test(Command::Check, conf).prev_result(prev).run();
    assert_eq!(msg(env.test(Command::Check, &c).run().await), "vlan: Required prevResult missing");
    assert_eq!(
        msg(check(&conf(SpecVersion::V1_0_0, json!({"mtu": 1400, "vlanId": 200})), &r).await),
        "Container vlan id 100 does not match expected value: 200"
    );
    assert_eq!(
        msg(check(&conf(SpecVersion::V1_0_0, json!({"mtu": 1300})), &r).await),
        "Error: Tuning configured MTU of eth0 is 1300, current value is 1400"
    );
    // Without `mtu` the MTU is not compared.
    check(&conf(SpecVersion::V1_0_0, json!({})), &r).await.expect_success();
    assert_eq!(
        msg(check(&conf(SpecVersion::V1_0_0, json!({"master": "ens9"})), &r).await),
        "failed to lookup master \"ens9\": Link not found"
    );
    assert_eq!(msg(check(&without(c.clone(), "master"), &r).await), "failed to lookup master \"\": Link not found");
    let mut other_ns = r.clone();
    other_ns.interfaces[0].sandbox = Some("/var/run/netns/x".into());
    assert_eq!(msg(check(&c, &other_ns).await), format!("Sandbox in prevResult  doesn't match configured netns: {NS}"));
    let mut other_mac = r.clone();
    other_mac.interfaces[0].mac = Some("0a:00:00:00:00:09".parse::<cni_sdk::types::MacAddr>().unwrap().into());
    let mac = link_of(&env.ctr(), "eth0").mac;
    assert_eq!(
        msg(check(&c, &other_mac).await),
        format!("vlan: Interface eth0 Mac 0a:00:00:00:00:09 doesn't match container Mac: {mac}")
    );
    let mut other_route = r.clone();
    other_route.routes.push(Route::new("10.216.64.0/18".parse().unwrap(), Some("10.216.100.1".parse().unwrap())));
    assert_eq!(
        msg(check(&c, &other_route).await),
        "Expected Route {Dst:{IP:10.216.64.0 Mask:ffffc000} GW:10.216.100.1} not found in routing table"
    );
    // Go's CHECK always asks IPAM, even without an IPAM type.
    assert_eq!(msg(check(&without(c.clone(), "ipam"), &r).await), "no plugin name provided");
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.delete_link(ctr.link("eth0").await.unwrap().index).await.unwrap();
    assert_eq!(msg(check(&c, &r).await), "vlan: Container Interface name in prevResult: eth0 not found");
    ctr.dummy("eth0").execute().await.unwrap();
    assert_eq!(msg(check(&c, &r).await), "Error: Container interface eth0 not of type vlan");
}

#[tokio::test]
async fn del_is_idempotent_and_needs_no_master() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({}));
    env.test(Command::Add, &c).run().await.expect_result();
    // The master goes away (and the kernel removes its VLANs): Go's DEL then fails with
    // "Link not found" (B6); this one releases the address.
    let host = env.host();
    host.delete_link(host.link("ens3").await.unwrap().index).await.unwrap();
    assert!(env.nothing_left());
    env.test(Command::Del, &c).run().await.expect_success();
    env.test(Command::Del, &c).netns("/var/run/netns/gone").run().await.expect_success();
    env.test(Command::Del, &c).unset("CNI_NETNS").run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["ADD", "DEL", "DEL", "DEL"]);
    // Without an IPAM type (Go: "no plugin name provided"), DEL only removes the link.
    env.test(Command::Del, &without(c, "ipam")).run().await.expect_success();
    assert_eq!(env.ipam_calls().len(), 4);
}

#[tokio::test]
async fn status_version_and_go_keys() {
    let env = Env::new(default_ipam()).await;
    env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    // STATUS always asks IPAM (upstream), so no type is an error.
    let e = msg(env.test(Command::Status, &without(conf(SpecVersion::V1_1_0, json!({})), "ipam")).run().await);
    assert_eq!(e, "no plugin name provided");
    let doc = env.test(Command::Version, &conf(SpecVersion::V1_1_0, json!({}))).run().await.document().unwrap();
    assert_eq!(doc["supportedVersions"].as_array().unwrap().len(), 7);
    let c = conf(SpecVersion::V1_0_0, json!({"VLANID": 42, "Master": "ens4", "MTU": null}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let eth0 = link_of(&env.ctr(), "eth0");
    assert_eq!((eth0.vlan_id(), eth0.mtu), (Some(42), 9000));
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"vlanId": "42"}))).run().await;
    e.expect_error(ErrorCode::InvalidNetworkConfig);
}
