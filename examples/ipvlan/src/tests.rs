//! Unit tests on fake namespaces with a fake IPAM: no root, no binaries. The test kernel has no
//! ipvlan support, so the link behaviour is tested on the fake only (hence the `fake_only_`
//! names); `tests/kernel.rs` compares Go's and our errors on the real kernel.

use cni_sdk::net::fake::{FakeNetwork, NsSnapshot, OpKind};
use cni_sdk::net::{IpvlanMode, KindInfo, LinkKind, Net, NetError};
use cni_sdk::testing::{InProcessExec, Outcome, PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, ErrorCode, Interface, IpConfig, PluginEntry, Route, SpecVersion};
use serde_json::{Value, json};

use super::Ipvlan;

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
        ipam_result(
            &[("10.216.0.5/24", Some("10.216.0.1")), ("fd00:216::5/64", Some("fd00:216::1"))],
            &[("0.0.0.0/0", None), ("fd00:216:1::/48", None)],
        ),
    )
}

/// Host with `ens3` (default route) and `ens4`, and a container namespace `ctr`.
struct Env {
    world: FakeNetwork,
    ipam: InProcessExec,
}

impl Env {
    async fn new(ipam: InProcessExec) -> Self {
        let world = FakeNetwork::new();
        world.add_namespace("ctr");
        let host = world.host();
        let ens3 = host.dummy("ens3").execute().await.unwrap();
        host.add_address(ens3.index, "192.168.216.2/24".parse().unwrap()).await.unwrap();
        host.set_up(ens3.index).await.unwrap();
        host.route("0.0.0.0/0".parse().unwrap()).gateway("192.168.216.1".parse().unwrap()).add().await.unwrap();
        let ens4 = host.dummy("ens4").mtu(9000).execute().await.unwrap();
        host.set_up(ens4.index).await.unwrap();
        Self { world, ipam }
    }

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'_, Ipvlan> {
        PluginTest::new(&Ipvlan)
            .options(Ipvlan::options())
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

    async fn remove_default_route(&self) {
        let host = self.host();
        let default = host.routes().await.unwrap().into_iter().find(|r| r.dst.prefix_len() == 0).unwrap();
        host.delete_route(&default).await.unwrap();
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c =
        json!({"cniVersion": version.as_str(), "name": "ipvnet", "type": "ipvlan", "ipam": {"type": "fake-ipam"}});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn link_of(s: &NsSnapshot, name: &str) -> cni_sdk::net::Link {
    s.links.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("{name} missing: {:?}", s.links)).clone()
}

fn mode_of(l: &cni_sdk::net::Link) -> Option<IpvlanMode> {
    match l.info {
        KindInfo::Ipvlan { mode, .. } => Some(mode),
        _ => None,
    }
}

fn msg(o: Outcome) -> String {
    o.expect_error(999).msg
}

#[tokio::test]
async fn fake_only_add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam()).await;
        let c = conf(v, json!({"master": "ens3", "dns": {"nameservers": ["10.216.0.53"]}}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let ctr = env.ctr();
        let eth0 = link_of(&ctr, "eth0");
        let ens3 = env.host().link("ens3").await.unwrap();
        assert_eq!(eth0.kind, LinkKind::Ipvlan);
        assert_eq!(mode_of(&eth0), Some(IpvlanMode::L2));
        assert!(eth0.up);
        assert_eq!(eth0.parent.map(|p| p.index), Some(ens3.index));
        // An ipvlan has its master's MAC.
        assert_eq!(eth0.mac, ens3.mac);
        for a in ["10.216.0.5/24", "fd00:216::5/64"] {
            assert!(ctr.addresses.iter().any(|x| x.index == eth0.index && x.addr.to_string() == a), "{a}");
        }
        assert!(
            ctr.routes
                .iter()
                .any(|r| r.dst.to_string() == "0.0.0.0/0" && r.gateway == Some("10.216.0.1".parse().unwrap()))
        );
        assert!(
            ctr.routes
                .iter()
                .any(|r| r.dst.to_string() == "fd00:216:1::/48" && r.gateway == Some("fd00:216::1".parse().unwrap()))
        );
        assert_eq!(ctr.sysctls.get("net/ipv4/conf/eth0/arp_notify").map(String::as_str), Some("1"));
        assert_eq!(ctr.sysctls.get("net/ipv6/conf/eth0/ndisc_notify").map(String::as_str), Some("1"));
        assert_eq!(r.dns.nameservers, ["10.216.0.53"]);
        if v.has_chaining() {
            assert_eq!(
                r.interfaces,
                [Interface { mac: Some(ens3.mac.into()), sandbox: Some(NS.into()), ..Interface::new("eth0") }]
            );
            assert!(r.ips.iter().all(|i| i.interface == Some(0)));
            assert_eq!(r.routes.len(), 2);
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
async fn fake_only_modes_and_mtu() {
    for (mode, expect) in
        [("", IpvlanMode::L2), ("l2", IpvlanMode::L2), ("l3", IpvlanMode::L3), ("l3s", IpvlanMode::L3s)]
    {
        let env = Env::new(default_ipam()).await;
        let c = conf(SpecVersion::V1_1_0, json!({"master": "ens4", "mode": mode, "mtu": 8000}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let eth0 = link_of(&env.ctr(), "eth0");
        assert_eq!((mode_of(&eth0), eth0.mtu), (Some(expect), 8000), "{mode:?}");
        env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        // CHECK compares the mode.
        let other = conf(
            SpecVersion::V1_1_0,
            json!({"master": "ens4", "mode": if expect == IpvlanMode::L3 { "l2" } else { "l3" }}),
        );
        let want = if expect == IpvlanMode::L3 { "l2" } else { "l3" };
        assert_eq!(
            msg(env.test(Command::Check, &other).prev_result(&r).run().await),
            format!("Container IPVlan mode {expect} does not match expected value: {want}")
        );
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.nothing_left());
    }
    let env = Env::new(default_ipam()).await;
    for mode in ["L2", "bridge", "l4"] {
        let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"mode": mode}))).run().await);
        assert_eq!(e, format!("unknown ipvlan mode: {mode:?}"));
    }
    // No plugin-side MTU check: the kernel refuses more than the master's.
    let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"master": "ens3", "mtu": 1501}))).run().await);
    assert_eq!(e, "failed to create ipvlan: invalid argument");
    assert!(env.nothing_left());
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn fake_only_master_defaults() {
    // The default-route interface.
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({}));
    env.test(Command::Add, &c).run().await.expect_result();
    let ens3 = env.host().link("ens3").await.unwrap();
    assert_eq!(link_of(&env.ctr(), "eth0").parent.map(|p| p.index), Some(ens3.index));
    env.test(Command::Del, &c).run().await.expect_success();
    // In a chain: the previous result's only interface.
    let mut prev = CniResult::default();
    prev.interfaces.push(Interface::new("ens4"));
    let r = env.test(Command::Add, &c).prev_result(&prev).run().await.expect_result();
    let ens4 = env.host().link("ens4").await.unwrap();
    assert_eq!(link_of(&env.ctr(), "eth0").parent.map(|p| p.index), Some(ens4.index));
    assert_eq!(r.interfaces.len(), 1, "the previous interfaces are replaced: {:?}", r.interfaces);
    env.test(Command::Del, &c).run().await.expect_success();
    for bad in [vec![], vec![Interface::new("ens3"), Interface::new("ens4")], vec![Interface::new("")]] {
        let prev = CniResult { interfaces: bad, ..CniResult::default() };
        let e = msg(env.test(Command::Add, &c).prev_result(&prev).run().await);
        assert_eq!(e, "chained master failure. PrevResult lacks a single named interface");
    }
    // No default route.
    env.remove_default_route().await;
    assert_eq!(msg(env.test(Command::Add, &c).run().await), "no default route interface found");
    // A master that does not exist.
    let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"master": "ens9"}))).run().await);
    assert_eq!(e, "failed to lookup master \"ens9\": Link not found");
    assert!(env.nothing_left());
}

#[tokio::test]
async fn fake_only_link_in_container() {
    let env = Env::new(default_ipam()).await;
    let ctr = env.world.namespace("ctr").unwrap();
    let inner = ctr.dummy("up0").execute().await.unwrap();
    ctr.add_address(inner.index, "10.216.7.2/24".parse().unwrap()).await.unwrap();
    ctr.set_up(inner.index).await.unwrap();
    ctr.route("0.0.0.0/0".parse().unwrap()).gateway("10.216.7.1".parse().unwrap()).add().await.unwrap();
    let c = conf(SpecVersion::V1_1_0, json!({"linkInContainer": true, "mode": "l3"}));
    let only_ens3 = ipam_result(&[("10.216.7.5/24", None)], &[]);
    let env = Env { ipam: InProcessExec::new().with_ipam_result("fake-ipam", only_ens3), ..env };
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let eth0 = link_of(&env.ctr(), "eth0");
    assert_eq!(eth0.parent, Some(cni_sdk::net::LinkRef { index: inner.index, same_netns: true }));
    assert_eq!(env.world.ops_of(OpKind::CreateIpvlan)[0].netns, "ctr");
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    // The configured master is looked up in the container on CHECK too.
    let host_master = conf(SpecVersion::V1_1_0, json!({"linkInContainer": true, "master": "ens3", "mode": "l3"}));
    let e = msg(env.test(Command::Check, &host_master).prev_result(&r).run().await);
    assert_eq!(e, "failed to lookup master \"ens3\": Link not found");
    env.test(Command::Del, &c).run().await.expect_success();
    assert_eq!(env.ctr().links.len(), 2);
}

#[tokio::test]
async fn fake_only_chained_without_ipam_uses_the_previous_ips() {
    let env = Env::new(default_ipam()).await;
    let mut c = conf(SpecVersion::V1_0_0, json!({"dns": {"nameservers": ["10.216.9.53"]}}));
    c.as_object_mut().unwrap().remove("ipam");
    let mut prev = ipam_result(&[("10.216.9.5/24", Some("10.216.9.1"))], &[("10.216.64.0/18", None)]);
    prev.interfaces.push(Interface::new("ens4"));
    prev.ips[0].interface = Some(0);
    prev.dns.nameservers.push("10.216.9.1".into());
    let r = env.test(Command::Add, &c).prev_result(&prev).run().await.expect_result();
    assert!(env.ipam_calls().is_empty(), "no IPAM in a chain: {:?}", env.ipam_calls());
    assert_eq!(r.ips, prev.ips);
    assert_eq!(r.routes, prev.routes);
    assert_eq!(r.dns.nameservers, ["10.216.9.53"], "the configuration's DNS replaces the previous");
    assert_eq!(r.interfaces[0].name, "eth0");
    let ctr = env.ctr();
    let eth0 = link_of(&ctr, "eth0");
    assert!(ctr.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.216.9.5/24"));
    assert!(ctr.routes.iter().any(|r| r.dst.to_string() == "10.216.64.0/18"));
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    env.test(Command::Del, &c).prev_result(&r).run().await.expect_success();
    assert!(env.nothing_left());
    assert!(env.ipam_calls().is_empty());
    // Neither IPAM nor previous IPs: delegation to an empty plugin name, as in Go.
    let mut no_ips = CniResult::default();
    no_ips.interfaces.push(Interface::new("ens4"));
    let e = msg(env.test(Command::Add, &c).prev_result(&no_ips).run().await);
    assert_eq!(e, "no plugin name provided");
    assert!(env.nothing_left());
}

#[tokio::test]
async fn failures_after_the_link_exists_remove_it() {
    let c = conf(SpecVersion::V1_0_0, json!({}));
    // IPAM gives no address.
    let env = Env::new(InProcessExec::new().with_ipam_result("fake-ipam", CniResult::default())).await;
    assert_eq!(msg(env.test(Command::Add, &c).run().await), "IPAM plugin returned missing IP config");
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    // An unreachable gateway.
    let env = Env::new(InProcessExec::new().with_ipam_result(
        "fake-ipam",
        ipam_result(&[("10.216.0.5/24", None)], &[("10.216.99.0/24", Some("10.216.200.1"))]),
    ))
    .await;
    let e = msg(env.test(Command::Add, &c).run().await);
    assert!(e.starts_with("failed to add route '{10.216.99.0 ffffff00} via 10.216.200.1 dev eth0'"), "{e}");
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    // The name is taken: Go leaves the temporary link behind; it is removed here.
    let env = Env::new(default_ipam()).await;
    env.world.namespace("ctr").unwrap().dummy("eth0").execute().await.unwrap();
    assert_eq!(msg(env.test(Command::Add, &c).run().await), "failed to rename ipvlan to \"eth0\": file exists");
    assert_eq!(env.ctr().links.len(), 2, "{:?}", env.ctr().links);
    // An IPAM plugin that is not installed.
    let env = Env::new(default_ipam()).await;
    let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"ipam": {"type": "nope"}}))).run().await);
    assert_eq!(e, r#"failed to find plugin "nope" in path [in-process]"#);
    assert!(env.nothing_left());
}

#[tokio::test]
async fn fake_only_kernel_without_ipvlan() {
    let env = Env::new(default_ipam()).await;
    env.world.fail_when(|op| {
        (op.kind == OpKind::CreateIpvlan).then(|| NetError::from_errno(libc::EOPNOTSUPP, "create ipvlan"))
    });
    let e = msg(env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await);
    assert_eq!(e, "failed to create ipvlan: operation not supported");
    assert!(env.nothing_left());
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn fake_only_check_reports_what_differs() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"master": "ens3"}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let check = |conf: &Value, prev: &CniResult| env.test(Command::Check, conf).prev_result(prev).run();
    assert_eq!(msg(env.test(Command::Check, &c).run().await), "Required prevResult missing");
    // Go cannot CHECK a configuration without `master` (B25); here it passes.
    check(&conf(SpecVersion::V1_0_0, json!({})), &r).await.expect_success();
    let gone = conf(SpecVersion::V1_0_0, json!({"master": "ens9"}));
    assert_eq!(msg(check(&gone, &r).await), "failed to lookup master \"ens9\": Link not found");
    let bogus = conf(SpecVersion::V1_0_0, json!({"master": "ens3", "mode": "l7"}));
    assert_eq!(msg(check(&bogus, &r).await), "unknown ipvlan mode: \"l7\"");
    let mut other_ns = r.clone();
    other_ns.interfaces[0].sandbox = Some("/var/run/netns/x".into());
    assert_eq!(msg(check(&c, &other_ns).await), format!("Sandbox in prevResult  doesn't match configured netns: {NS}"));
    let mut other_mac = r.clone();
    other_mac.interfaces[0].mac = Some("0a:00:00:00:00:09".parse::<cni_sdk::types::MacAddr>().unwrap().into());
    let mac = link_of(&env.ctr(), "eth0").mac;
    assert_eq!(
        msg(check(&c, &other_mac).await),
        format!("Interface eth0 Mac 0a:00:00:00:00:09 doesn't match container Mac: {mac}")
    );
    let mut other_ip = r.clone();
    other_ip.ips[1].address = "fd00:216::6/64".parse().unwrap();
    assert_eq!(msg(check(&c, &other_ip).await), "Failed to match addr fd00:216::6/64 on interface eth0");
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.delete_link(ctr.link("eth0").await.unwrap().index).await.unwrap();
    assert_eq!(msg(check(&c, &r).await), "Container Interface name in prevResult: eth0 not found");
    ctr.dummy("eth0").execute().await.unwrap();
    assert_eq!(msg(check(&c, &r).await), "Error: Container interface eth0 not of type ipvlan");
}

#[tokio::test]
async fn del_is_idempotent_and_needs_no_master() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({}));
    env.test(Command::Add, &c).run().await.expect_result();
    // Go's DEL defaults the master and fails without a default route; this one does not care.
    env.remove_default_route().await;
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.nothing_left());
    env.test(Command::Del, &c).run().await.expect_success();
    env.test(Command::Del, &c).netns("/var/run/netns/gone").run().await.expect_success();
    env.test(Command::Del, &c).unset("CNI_NETNS").run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["ADD", "DEL", "DEL", "DEL", "DEL"]);
    // In a chain without IPAM, DEL only removes the link.
    let mut chained = c.clone();
    chained.as_object_mut().unwrap().remove("ipam");
    env.test(Command::Del, &chained).run().await.expect_success();
    assert_eq!(env.ipam_calls().len(), 5);
}

#[tokio::test]
async fn status_version_and_go_keys() {
    let env = Env::new(default_ipam()).await;
    env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    let mut no_ipam = conf(SpecVersion::V1_1_0, json!({}));
    no_ipam.as_object_mut().unwrap().remove("ipam");
    env.test(Command::Status, &no_ipam).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    let doc = env.test(Command::Version, &no_ipam).run().await.document().unwrap();
    assert_eq!(doc["supportedVersions"].as_array().unwrap().len(), 7);
    // Keys in any case; null is the default.
    let c = conf(SpecVersion::V1_0_0, json!({"Master": "ens4", "MODE": "l3s", "mtu": null}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let eth0 = link_of(&env.ctr(), "eth0");
    assert_eq!((mode_of(&eth0), eth0.mtu), (Some(IpvlanMode::L3s), 9000));
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"linkInContainer": "yes"}))).run().await;
    e.expect_error(ErrorCode::InvalidNetworkConfig);
}
