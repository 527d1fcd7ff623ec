//! Unit tests on fake namespaces with a fake IPAM: no root, no binaries.

use cni_sdk::net::fake::{FakeNetwork, NsSnapshot, OpKind};
use cni_sdk::net::{LinkKind, MacvlanMode, Net, NetError};
use cni_sdk::testing::{InProcessExec, PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Error, ErrorCode, IpConfig, PluginEntry, Route, SpecVersion};
use serde_json::{Value, json};

use super::Macvlan;

const NS: &str = "/var/run/netns/ctr";

fn ipam_result(ips: &[(&str, Option<&str>)], routes: &[(&str, Option<&str>)]) -> CniResult {
    let mut r = CniResult::default();
    for (a, gw) in ips {
        r.ips.push(IpConfig { gateway: gw.map(|g| g.parse().unwrap()), ..IpConfig::new(a.parse().unwrap()) });
    }
    for (d, gw) in routes {
        r.routes.push(Route::new(d.parse().unwrap(), gw.map(|g| g.parse().unwrap())));
    }
    r.dns.nameservers.push("10.216.0.53".into());
    r
}

fn default_ipam() -> InProcessExec {
    InProcessExec::new().with_ipam_result(
        "fake-ipam",
        ipam_result(&[("10.216.0.5/24", Some("10.216.0.1"))], &[("10.216.128.0/17", None)]),
    )
}

/// A fake world: host with `ens3` (MTU 1500, default route) and `ens4` (MTU 9000), and a
/// container namespace `ctr`.
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

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'_, Macvlan> {
        PluginTest::new(&Macvlan)
            .options(Macvlan::options())
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

    /// The container holds nothing but `lo`.
    fn nothing_left(&self) -> bool {
        self.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback)
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c =
        json!({"cniVersion": version.as_str(), "name": "mvnet", "type": "macvlan", "ipam": {"type": "fake-ipam"}});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn l2_conf(version: SpecVersion, extra: Value) -> Value {
    let mut c = conf(version, extra);
    c.as_object_mut().unwrap().remove("ipam");
    c
}

fn link_of(s: &NsSnapshot, name: &str) -> cni_sdk::net::Link {
    s.links.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("{name} missing: {:?}", s.links)).clone()
}

#[tokio::test]
async fn add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam()).await;
        let c = conf(v, json!({"master": "ens3"}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let ctr = env.ctr();
        let eth0 = link_of(&ctr, "eth0");
        let ens3 = env.host().link("ens3").await.unwrap();
        assert_eq!(
            (eth0.kind.clone(), eth0.macvlan_mode(), eth0.up),
            (LinkKind::Macvlan, Some(MacvlanMode::Bridge), true)
        );
        assert_eq!(eth0.parent.map(|p| p.index), Some(ens3.index));
        assert_eq!(eth0.mtu, 1500);
        assert!(ctr.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.216.0.5/24"));
        let via = ctr.routes.iter().find(|r| r.dst.to_string() == "10.216.128.0/17").expect("IPAM route");
        assert_eq!(via.gateway, Some("10.216.0.1".parse().unwrap()));
        assert_eq!(ctr.sysctls.get("net/ipv4/conf/eth0/arp_notify").map(String::as_str), Some("1"));
        assert_eq!(ctr.sysctls.get("net/ipv6/conf/eth0/ndisc_notify").map(String::as_str), Some("1"));
        assert_eq!(r.ips[0].address.to_string(), "10.216.0.5/24");
        assert_eq!(r.ips[0].gateway, Some("10.216.0.1".parse().unwrap()));
        assert_eq!(r.routes.len(), 1);
        // The IPAM plugin's DNS is replaced by the configuration's (none here).
        assert!(r.dns.is_empty(), "{:?}", r.dns);
        if v.has_chaining() {
            assert_eq!(r.interfaces.len(), 1);
            assert_eq!(r.interfaces[0].name, "eth0");
            assert_eq!(r.interfaces[0].sandbox.as_deref(), Some(NS));
            assert_eq!(r.interfaces[0].mac.as_ref().and_then(|m| m.as_mac()), Some(eth0.mac));
            assert_eq!(r.ips[0].interface, Some(0));
        }
        if v.has_check() {
            env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.nothing_left(), "{v}");
        let expected: &[&str] = if v.has_check() { &["ADD", "CHECK", "DEL"] } else { &["ADD", "DEL"] };
        assert_eq!(env.ipam_calls(), expected);
        // DEL is idempotent.
        env.test(Command::Del, &c).run().await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn layer2_only_without_ipam() {
    for_each_version(|v| async move {
        let env = Env::new(InProcessExec::new()).await;
        let c = l2_conf(v, json!({"master": "ens4", "dns": {"nameservers": ["10.216.0.53"]}}));
        let out = env.test(Command::Add, &c).run().await;
        if !v.has_chaining() {
            // 0.1.0/0.2.0 results cannot express an attachment without IPs: Go fails when
            // printing (and leaves the link); here the link is removed again.
            let e = out.expect_error(999);
            assert_eq!(e.msg, "cannot convert: no valid IP addresses");
            assert!(env.nothing_left(), "{v}");
            return;
        }
        let r = out.expect_result();
        let eth0 = link_of(&env.ctr(), "eth0");
        assert!(eth0.up);
        assert_eq!(eth0.mtu, 9000);
        assert!(env.ctr().addresses.iter().all(|a| a.index != eth0.index));
        assert!(r.ips.is_empty() && r.routes.is_empty());
        assert_eq!(r.dns.nameservers, ["10.216.0.53"]);
        if v.has_check() {
            env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.nothing_left());
    })
    .await;
}

#[tokio::test]
async fn master_defaults_to_the_default_route_interface() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({}));
    env.test(Command::Add, &c).run().await.expect_result();
    let ens3 = env.host().link("ens3").await.unwrap();
    assert_eq!(link_of(&env.ctr(), "eth0").parent.map(|p| p.index), Some(ens3.index));
    env.test(Command::Del, &c).run().await.expect_success();

    // Without a default route there is no master.
    let host = env.host();
    let default = host.routes().await.unwrap().into_iter().find(|r| r.dst.prefix_len() == 0).unwrap();
    host.delete_route(&default).await.unwrap();
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "no default route interface found");
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
}

#[tokio::test]
async fn modes_and_unknown_modes() {
    for (mode, expect) in [
        ("", MacvlanMode::Bridge),
        ("bridge", MacvlanMode::Bridge),
        ("private", MacvlanMode::Private),
        ("vepa", MacvlanMode::Vepa),
        ("passthru", MacvlanMode::Passthru),
    ] {
        let env = Env::new(default_ipam()).await;
        let c = conf(SpecVersion::V1_1_0, json!({"master": "ens4", "mode": mode}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let eth0 = link_of(&env.ctr(), "eth0");
        assert_eq!(eth0.macvlan_mode(), Some(expect), "{mode:?}");
        if expect == MacvlanMode::Passthru {
            assert_eq!(eth0.mac, env.host().link("ens4").await.unwrap().mac);
        }
        env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        env.test(Command::Del, &c).run().await.expect_success();
    }
    // Go does not offer `source`; anything else is refused before the link exists.
    for mode in ["source", "Bridge", "l2"] {
        let env = Env::new(default_ipam()).await;
        let c = conf(SpecVersion::V1_1_0, json!({"mode": mode}));
        let e = env.test(Command::Add, &c).run().await.expect_error(999);
        assert_eq!(e.msg, format!("unknown macvlan mode: {mode:?}"));
        assert!(env.nothing_left());
        assert!(env.ipam_calls().is_empty());
    }
}

#[tokio::test]
async fn mtu_is_bounded_by_the_master() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"master": "ens4", "mtu": 8000}));
    env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(link_of(&env.ctr(), "eth0").mtu, 8000);
    env.test(Command::Del, &c).run().await.expect_success();
    for (master, mtu, max) in [("ens3", 1501, 1500), ("ens4", 9001, 9000), ("ens3", -1, 1500)] {
        let c = conf(SpecVersion::V1_0_0, json!({"master": master, "mtu": mtu}));
        for cmd in [Command::Add, Command::Check] {
            let e = env.test(cmd, &c).run().await.expect_error(999);
            assert_eq!(e.msg, format!("invalid MTU {mtu}, must be [0, master MTU({max})]"));
        }
    }
    assert!(env.nothing_left());
}

#[tokio::test]
async fn mac_precedence_and_bad_macs() {
    let env = Env::new(default_ipam()).await;
    let base = conf(SpecVersion::V1_0_0, json!({"master": "ens3", "mac": "0a:00:00:00:00:01"}));
    let mac = |env: &Env| link_of(&env.ctr(), "eth0").mac.to_string();
    // The configuration's.
    env.test(Command::Add, &base).run().await.expect_result();
    assert_eq!(mac(&env), "0a:00:00:00:00:01");
    env.test(Command::Del, &base).run().await.expect_success();
    // CNI_ARGS MAC beats it.
    env.test(Command::Add, &base)
        .cni_args("IgnoreUnknown=1;MAC=0a:00:00:00:00:02;K8S_POD_NAME=x")
        .run()
        .await
        .expect_result();
    assert_eq!(mac(&env), "0a:00:00:00:00:02");
    env.test(Command::Del, &base).run().await.expect_success();
    // runtimeConfig.mac beats both (even a bad CNI_ARGS one, which is then never parsed).
    let mut rc = base.clone();
    rc["runtimeConfig"] = json!({"mac": "0a:00:00:00:00:03"});
    let r = env.test(Command::Add, &rc).cni_args("MAC=zz").run().await.expect_result();
    assert_eq!(mac(&env), "0a:00:00:00:00:03");
    assert_eq!(r.interfaces[0].mac.as_ref().unwrap().to_string(), "0a:00:00:00:00:03");
    env.test(Command::Check, &rc).cni_args("MAC=zz").prev_result(&r).run().await.expect_success();
    env.test(Command::Del, &rc).run().await.expect_success();

    // Bad addresses, with Go's texts.
    let e = env.test(Command::Add, &base).cni_args("MAC=zz").run().await.expect_error(999);
    assert_eq!(e.msg, "invalid args zz for MAC addr: address zz: invalid MAC address");
    let bad = conf(SpecVersion::V1_0_0, json!({"mac": "0a:00:00:00:00"}));
    let e = env.test(Command::Add, &bad).run().await.expect_error(999);
    assert_eq!(e.msg, "invalid args 0a:00:00:00:00 for MAC addr: address 0a:00:00:00:00: invalid MAC address");
    // An EUI-64 address parses in Go; the kernel refuses it.
    let long = conf(SpecVersion::V1_0_0, json!({"mac": "02:00:00:00:00:00:00:01"}));
    let e = env.test(Command::Add, &long).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to create macvlan: invalid argument");
    // CNI_ARGS keys other than MAC need IgnoreUnknown (ADD and CHECK; DEL only reads the JSON).
    for cmd in [Command::Add, Command::Check] {
        let e = env.test(cmd, &base).cni_args("FOO=1;MAC=0a:00:00:00:00:02").run().await.expect_error(999);
        assert_eq!(e.msg, r#"ARGS: unknown args ["FOO=1"]"#);
    }
    env.test(Command::Del, &base).cni_args("FOO=1").run().await.expect_success();
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls().iter().filter(|c| *c == "ADD").count(), 3);
}

#[tokio::test]
async fn link_in_container_uses_the_containers_master() {
    let env = Env::new(default_ipam()).await;
    let ctr = env.world.namespace("ctr").unwrap();
    let inner = ctr.dummy("up0").mtu(1400).execute().await.unwrap();
    ctr.add_address(inner.index, "10.216.7.2/24".parse().unwrap()).await.unwrap();
    ctr.set_up(inner.index).await.unwrap();
    ctr.route("0.0.0.0/0".parse().unwrap()).gateway("10.216.7.1".parse().unwrap()).add().await.unwrap();
    let c = conf(SpecVersion::V1_1_0, json!({"linkInContainer": true, "mtu": 1400}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let eth0 = link_of(&env.ctr(), "eth0");
    assert_eq!(eth0.parent, Some(cni_sdk::net::LinkRef { index: inner.index, same_netns: true }));
    assert_eq!(eth0.mtu, 1400);
    // The macvlan was created in the container (not in the host and then moved).
    let create = env.world.ops_of(OpKind::CreateMacvlan);
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].netns, "ctr");
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    // The MTU is checked against the container's master; a master only the host has is not found.
    let e = env
        .test(Command::Add, &conf(SpecVersion::V1_1_0, json!({"linkInContainer": true, "mtu": 1500})))
        .run()
        .await
        .expect_error(999);
    assert_eq!(e.msg, "invalid MTU 1500, must be [0, master MTU(1400)]");
    let e = env
        .test(Command::Add, &conf(SpecVersion::V1_1_0, json!({"linkInContainer": true, "master": "ens3"})))
        .run()
        .await
        .expect_error(999);
    assert_eq!(e.msg, "Link not found");
    assert_eq!(link_of(&env.ctr(), "up0").index, inner.index);
    assert_eq!(env.ctr().links.len(), 2);
}

#[tokio::test]
async fn bcqueuelen_is_requested_only_when_set() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_1_0, json!({"master": "ens3", "bcqueuelen": 3000}));
    env.test(Command::Add, &c).run().await.expect_result();
    env.test(Command::Del, &c).run().await.expect_success();
    env.test(Command::Add, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_result();
    let ops: Vec<String> = env.world.ops_of(OpKind::CreateMacvlan).into_iter().map(|o| o.detail).collect();
    assert_eq!(ops.len(), 2);
    assert!(ops[0].ends_with("mode bridge bcqueuelen 3000 in ctr"), "{}", ops[0]);
    assert!(ops[1].ends_with("mode bridge in ctr"), "{}", ops[1]);
    // A negative value is not a uint32 (Go: a JSON type error).
    let bad = conf(SpecVersion::V1_1_0, json!({"bcqueuelen": -1}));
    env.test(Command::Add, &bad).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
}

#[tokio::test]
async fn keys_match_case_insensitively_and_null_means_default() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"MASTER": "ens4", "Mode": "vepa", "MTU": 1280, "master_": "x"}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let eth0 = link_of(&env.ctr(), "eth0");
    assert_eq!((eth0.macvlan_mode(), eth0.mtu), (Some(MacvlanMode::Vepa), 1280));
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    let c = conf(SpecVersion::V1_0_0, json!({"master": null, "mode": null}));
    env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(link_of(&env.ctr(), "eth0").macvlan_mode(), Some(MacvlanMode::Bridge));
    // A type error is an invalid configuration.
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"mtu": "1500"}))).run().await;
    e.expect_error(ErrorCode::InvalidNetworkConfig);
}

#[tokio::test]
async fn missing_master_fails_add_and_check_but_not_del() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"master": "ens9"}));
    for cmd in [Command::Add, Command::Check] {
        let e = env.test(cmd, &c).run().await.expect_error(999);
        assert_eq!(e.msg, "Link not found");
    }
    // Go v1.1.1 fails DEL too (#953); DEL needs no master (fixed upstream in v1.4.0).
    env.test(Command::Del, &c).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["DEL"]);
}

#[tokio::test]
async fn failures_after_the_link_exists_remove_it() {
    // IPAM gives no address.
    let env = Env::new(InProcessExec::new().with_ipam_result("fake-ipam", CniResult::default())).await;
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM plugin returned missing IP config");
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    // A route IPAM asks for cannot be added (gateway off-link).
    let env = Env::new(InProcessExec::new().with_ipam_result(
        "fake-ipam",
        ipam_result(&[("10.216.0.5/24", None)], &[("10.216.99.0/24", Some("10.216.200.1"))]),
    ))
    .await;
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert!(e.msg.starts_with("failed to add route '{10.216.99.0 ffffff00} via 10.216.200.1 dev eth0'"), "{}", e.msg);
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    // IPAM fails: its error as is, the link removed, no IPAM DEL.
    let failing = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Err(Error::try_again_later("no free address").with_details("10.216.0.0/24 exhausted")),
        _ => Ok(None),
    });
    let env = Env::new(failing).await;
    let e = env.test(Command::Add, &c).run().await.expect_error(11);
    assert_eq!((e.msg.as_str(), e.details.as_deref()), ("no free address", Some("10.216.0.0/24 exhausted")));
    assert!(env.nothing_left());
    assert_eq!(env.ipam_calls(), ["ADD"]);

    // The interface name is taken in the container.
    let env = Env::new(default_ipam()).await;
    env.world.namespace("ctr").unwrap().dummy("eth0").execute().await.unwrap();
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to rename macvlan to \"eth0\": file exists");
    assert_eq!(env.ctr().links.len(), 2, "only lo and the existing eth0: {:?}", env.ctr().links);
    assert!(env.ipam_calls().is_empty());

    // The kernel refuses the link (no CONFIG_MACVLAN).
    let env = Env::new(default_ipam()).await;
    env.world.fail_when(|op| {
        (op.kind == OpKind::CreateMacvlan).then(|| NetError::from_errno(libc::EOPNOTSUPP, "create macvlan"))
    });
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to create macvlan: operation not supported");
    assert!(env.nothing_left());
}

#[tokio::test]
async fn namespaces_that_are_gone() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let gone = "/var/run/netns/gone";
    let e = env.test(Command::Add, &c).netns(gone).run().await.expect_error(999);
    assert_eq!(e.msg, format!("failed to open netns {gone:?}: failed to Statfs {gone:?}: no such file or directory"));
    assert!(env.ipam_calls().is_empty());
    let e = env.test(Command::Check, &c).netns(gone).run().await.expect_error(999);
    assert!(e.msg.starts_with("failed to open netns"), "{}", e.msg);
    // DEL: a gone namespace or none at all still releases the address.
    env.test(Command::Del, &c).netns(gone).run().await.expect_success();
    env.test(Command::Del, &c).unset("CNI_NETNS").run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["DEL", "DEL"]);
    // linkInContainer needs the namespace to load the configuration.
    let lic = conf(SpecVersion::V1_0_0, json!({"linkInContainer": true}));
    let e = env.test(Command::Add, &lic).netns(gone).run().await.expect_error(999);
    assert!(e.msg.starts_with(&format!("failed to open netns {gone:?}")), "{}", e.msg);
}

#[tokio::test]
async fn check_reports_what_differs() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"master": "ens3", "mode": "bridge"}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let check = |conf: &Value, prev: Option<&CniResult>| {
        let t = env.test(Command::Check, conf);
        let t = match prev {
            Some(p) => t.prev_result(p),
            None => t,
        };
        t.run()
    };
    let msg = |o: cni_sdk::testing::Outcome| o.expect_error(999).msg;
    assert_eq!(msg(check(&c, None).await), "Required prevResult missing");
    let vepa = conf(SpecVersion::V1_0_0, json!({"master": "ens3", "mode": "vepa"}));
    assert_eq!(msg(check(&vepa, Some(&r)).await), "Container macvlan mode bridge does not match expected value: vepa");
    let bogus = conf(SpecVersion::V1_0_0, json!({"master": "ens3", "mode": "bogus"}));
    assert_eq!(msg(check(&bogus, Some(&r)).await), "unknown macvlan mode: \"bogus\"");
    let mut other_ns = r.clone();
    other_ns.interfaces[0].sandbox = Some("/var/run/netns/other".into());
    assert_eq!(
        msg(check(&c, Some(&other_ns)).await),
        format!("Sandbox in prevResult  doesn't match configured netns: {NS}")
    );
    let mut other_mac = r.clone();
    other_mac.interfaces[0].mac = Some("0a:00:00:00:00:09".parse::<cni_sdk::types::MacAddr>().unwrap().into());
    let eth0 = link_of(&env.ctr(), "eth0");
    assert_eq!(
        msg(check(&c, Some(&other_mac)).await),
        format!("Interface eth0 Mac 0a:00:00:00:00:09 doesn't match container Mac: {}", eth0.mac)
    );
    let mut other_ip = r.clone();
    other_ip.ips[0].address = "10.216.0.6/24".parse().unwrap();
    assert_eq!(msg(check(&c, Some(&other_ip)).await), "Failed to match addr 10.216.0.6/24 on interface eth0");
    let mut other_route = r.clone();
    other_route.routes.push(Route::new("10.216.64.0/18".parse().unwrap(), None));
    assert_eq!(
        msg(check(&c, Some(&other_route)).await),
        "Expected Route {Dst:{IP:10.216.64.0 Mask:ffffc000} GW:<nil>} not found in routing table"
    );
    // The interface is no macvlan / is gone.
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.delete_link(eth0.index).await.unwrap();
    assert_eq!(msg(check(&c, Some(&r)).await), "Container Interface name in prevResult: eth0 not found");
    ctr.dummy("eth0").execute().await.unwrap();
    assert_eq!(msg(check(&c, Some(&r)).await), "Error: Container interface eth0 not of type macvlan");
}

#[tokio::test]
async fn status_and_ipam_lookup_errors() {
    let env = Env::new(default_ipam()).await;
    // STATUS: IPAM's when configured, else ready; it needs a 1.1.0 configuration.
    env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    env.test(Command::Status, &l2_conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    env.test(Command::Status, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(1);
    // An IPAM type not in CNI_PATH: Go's lookup error, and the link is removed again.
    let c = conf(SpecVersion::V1_0_0, json!({"ipam": {"type": "nope"}}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, r#"failed to find plugin "nope" in path [in-process]"#);
    assert!(env.nothing_left());
    // VERSION lists every version from 0.1.0 to 1.1.0.
    let out = env.test(Command::Version, &c).run().await;
    let doc = out.document().unwrap();
    assert_eq!(doc["supportedVersions"], json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
}

#[tokio::test]
async fn dns_comes_from_the_configuration() {
    let env = Env::new(default_ipam()).await;
    let dns =
        json!({"nameservers": ["10.216.1.53"], "domain": "example.test", "search": ["a.test"], "options": ["ndots:2"]});
    let c = conf(SpecVersion::V1_0_0, json!({"dns": dns}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(r.dns.nameservers, ["10.216.1.53"]);
    assert_eq!(r.dns.domain.as_deref(), Some("example.test"));
    assert_eq!(
        (r.dns.search.as_slice(), r.dns.options.as_slice()),
        (&["a.test".to_owned()][..], &["ndots:2".to_owned()][..])
    );
}
