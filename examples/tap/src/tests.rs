//! Unit tests on fake namespaces with a fake IPAM and a model of the labelled iproute2 path: no
//! root, no binaries.

use std::sync::{Arc, Mutex};

use cni_sdk::net::fake::{FakeNetwork, NsSnapshot, OpKind};
use cni_sdk::net::{Link, LinkKind, Net, NetError, TunInfo, TunMode};
use cni_sdk::testing::{InProcessExec, PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Dns, Error, IpConfig, Result, Route, SpecVersion};
use serde_json::{Value, json};

use super::{IpTuntap, Tap, TapTool};

const NS: &str = "/var/run/netns/ctr";

/// The labelled `ip` path, modelled: records each request and creates the device with the
/// flags `ip tuntap add` uses, or fails like a kernel without SELinux.
#[derive(Debug, Clone, Default)]
struct FakeIproute2 {
    requests: Arc<Mutex<Vec<IpTuntap>>>,
    no_selinux: bool,
}

impl TapTool for FakeIproute2 {
    async fn create(&self, ctr: &Net, req: &IpTuntap) -> Result<()> {
        self.requests.lock().unwrap().push(req.clone());
        if self.no_selinux {
            return Err(Error::internal(
                "failed set socket label: write /proc/thread-self/attr/exec: invalid argument",
            ));
        }
        let mut r = ctr.tuntap(&req.name, TunMode::Tap).multi_queue(req.multi_queue);
        if let Some(uid) = req.owner {
            r = r.owner(uid);
        }
        if let Some(gid) = req.group {
            r = r.group(gid);
        }
        if let Some(mtu) = req.mtu {
            r = r.mtu(mtu);
        }
        if let Some(mac) = req.mac {
            r = r.mac(mac);
        }
        r.execute().await.map(drop).map_err(|e| Error::internal(format!("failed to run command {e}: exit status 1")))
    }
}

fn ipam_result(ips: &[(&str, Option<&str>)], routes: &[&str]) -> CniResult {
    let mut r = CniResult::default();
    for (a, gw) in ips {
        r.ips.push(IpConfig { gateway: gw.map(|g| g.parse().unwrap()), ..IpConfig::new(a.parse().unwrap()) });
    }
    for d in routes {
        r.routes.push(Route::new(d.parse().unwrap(), None));
    }
    r.dns = Dns { nameservers: vec!["10.217.20.53".into()], ..Dns::default() };
    r
}

fn default_ipam() -> InProcessExec {
    InProcessExec::new()
        .with_ipam_result("fake-ipam", ipam_result(&[("10.217.20.5/24", Some("10.217.20.1"))], &["0.0.0.0/0"]))
}

struct Env {
    world: FakeNetwork,
    ipam: InProcessExec,
    tool: FakeIproute2,
    plugin: Tap,
}

impl Env {
    fn new(ipam: InProcessExec) -> Self {
        Self::with_tool(ipam, FakeIproute2::default())
    }

    fn with_tool(ipam: InProcessExec, tool: FakeIproute2) -> Self {
        let world = FakeNetwork::new();
        world.add_namespace("ctr");
        Self { world, ipam, plugin: Tap::with_tool(tool.clone()), tool }
    }

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'_, Tap> {
        PluginTest::new(&self.plugin)
            .command(cmd)
            .config(conf.clone())
            .netns(NS)
            .network(&self.world)
            .exec(self.ipam.clone())
    }

    fn ctr(&self) -> NsSnapshot {
        self.world.snapshot("ctr").unwrap()
    }

    fn tap(&self, name: &str) -> Link {
        self.ctr().links.into_iter().find(|l| l.name == name).unwrap_or_else(|| panic!("{name} in the container"))
    }

    fn tun(&self, name: &str) -> TunInfo {
        *self.tap(name).tun().expect("a tun device")
    }

    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|c| c.1).collect()
    }

    fn only_lo_left(&self) -> bool {
        self.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback)
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version.as_str(), "name": "tapnet", "type": "tap"});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn with_ipam(version: SpecVersion, extra: Value) -> Value {
    let mut c = conf(version, extra);
    c["ipam"] = json!({"type": "fake-ipam"});
    c
}

#[tokio::test]
async fn layer2_add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam());
        let c = conf(v, json!({}));
        if !v.has_chaining() {
            // 0.1.0/0.2.0 results need an IP address: the same error as Go, and nothing left.
            let e = env.test(Command::Add, &c).run().await.expect_error(999);
            assert_eq!(e.msg, "cannot convert: no valid IP addresses");
            assert!(env.only_lo_left());
            env.test(Command::Del, &c).run().await.expect_success();
            return;
        }
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let tap = env.tap("eth0");
        assert_eq!(tap.kind, LinkKind::Tun);
        assert!(tap.up);
        assert_eq!(tap.mtu, 1500);
        // `ip tuntap add`'s flags, no owner or group: Go's iproute2 path for this configuration.
        let tun = env.tun("eth0");
        assert_eq!(
            (tun.mode, tun.owner, tun.group, tun.multi_queue, tun.vnet_hdr, tun.pi, tun.persist),
            (TunMode::Tap, None, None, false, false, false, true)
        );
        assert!(r.ips.is_empty());
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, "eth0");
        assert_eq!(r.interfaces[0].sandbox.as_deref(), Some(NS));
        assert_eq!(r.interfaces[0].mac.and_then(|m| m.as_mac()), Some(tap.mac));
        // Created under a temporary `veth` name, then renamed.
        let created = env.world.ops_of(OpKind::CreateTun);
        assert_eq!(created.len(), 1);
        assert!(created[0].detail.contains("veth"), "{}", created[0].detail);
        if v.has_check() {
            env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.only_lo_left(), "{v}");
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.ipam_calls().is_empty());
        assert!(env.tool.requests.lock().unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn layer3_with_ipam_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam());
        let c = with_ipam(v, json!({"dns": {"nameservers": ["10.217.99.53"]}}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        let ctr = env.ctr();
        let tap = env.tap("eth0");
        assert!(ctr.addresses.iter().any(|a| a.index == tap.index && a.addr.to_string() == "10.217.20.5/24"));
        assert!(
            ctr.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.gateway == Some("10.217.20.1".parse().unwrap()))
        );
        assert_eq!(ctr.sysctls.get("net/ipv4/conf/eth0/arp_notify").map(String::as_str), Some("1"));
        assert_eq!(r.ips[0].address.to_string(), "10.217.20.5/24");
        if v.has_chaining() {
            assert_eq!(r.ips[0].interface, Some(0));
            assert_eq!(r.interfaces[0].name, "eth0");
        }
        // The configuration's dns replaces the IPAM plugin's.
        assert_eq!(r.dns.nameservers, ["10.217.99.53"]);
        if v.has_check() {
            env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.only_lo_left());
        let expected: &[&str] = if v.has_check() { &["ADD", "CHECK", "DEL"] } else { &["ADD", "DEL"] };
        assert_eq!(env.ipam_calls(), expected);
    })
    .await;
}

#[tokio::test]
async fn owner_group_and_multi_queue_give_gos_flags() {
    let cases = [
        // (extra keys, owner, group, multi_queue, vnet_hdr, pi)
        (json!({"owner": 1000, "group": 1001}), Some(1000), Some(1001), false, true, true),
        (json!({"owner": 0, "group": 0, "multiQueue": true}), Some(0), Some(0), true, true, false),
        (json!({"owner": 1000}), Some(1000), None, false, false, false),
        (json!({"group": 1001, "multiQueue": true}), None, Some(1001), true, false, false),
        (json!({"owner": null, "group": null}), None, None, false, false, false),
    ];
    for (extra, owner, group, mq, vnet, pi) in cases {
        let env = Env::new(default_ipam());
        env.test(Command::Add, &conf(SpecVersion::V1_0_0, extra.clone())).run().await.expect_result();
        let t = env.tun("eth0");
        assert_eq!(
            (t.owner, t.group, t.multi_queue, t.vnet_hdr, t.pi, t.persist),
            (owner, group, mq, vnet, pi, true),
            "{extra}"
        );
    }
}

#[tokio::test]
async fn mac_precedence_and_mtu() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"mac": "02:00:00:17:00:01", "mtu": 1400}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let tap = env.tap("eth0");
    assert_eq!((tap.mac.to_string().as_str(), tap.mtu), ("02:00:00:17:00:01", 1400));
    assert_eq!(r.interfaces[0].mac.unwrap().to_string(), "02:00:00:17:00:01");
    env.test(Command::Del, &c).run().await.expect_success();

    // CNI_ARGS MAC beats the key (Go's other spellings of a MAC are accepted too).
    env.test(Command::Add, &c)
        .cni_args("IgnoreUnknown=1;MAC=02-00-00-17-00-02;K8S_POD_NAME=x")
        .run()
        .await
        .expect_result();
    assert_eq!(env.tap("eth0").mac.to_string(), "02:00:00:17:00:02");
    env.test(Command::Del, &c).run().await.expect_success();

    // runtimeConfig.mac beats both; with owner and group too (Go's netlink path ignores MTU and MAC).
    let mut rc = conf(SpecVersion::V1_0_0, json!({"mac": "02:00:00:17:00:01", "mtu": 1300, "owner": 1, "group": 1}));
    rc["runtimeConfig"] = json!({"mac": "02:00:00:17:00:03"});
    env.test(Command::Add, &rc).cni_args("MAC=02:00:00:17:00:02").run().await.expect_result();
    let tap = env.tap("eth0");
    assert_eq!((tap.mac.to_string().as_str(), tap.mtu), ("02:00:00:17:00:03", 1300));
}

#[tokio::test]
async fn bad_inputs_fail_before_anything_is_created() {
    let env = Env::new(default_ipam());
    let cases = [
        (
            conf(SpecVersion::V1_0_0, json!({"mac": "zz"})),
            None,
            "invalid args zz for MAC addr: address zz: invalid MAC address",
        ),
        (
            conf(SpecVersion::V1_0_0, json!({})),
            Some("MAC=0:1"),
            "invalid args 0:1 for MAC addr: address 0:1: invalid MAC address",
        ),
        (conf(SpecVersion::V1_0_0, json!({})), Some("FOO=1"), "ARGS: unknown args [\"FOO=1\"]"),
        (conf(SpecVersion::V1_0_0, json!({"mtu": -5})), None, "invalid MTU -5"),
    ];
    for (c, args, msg) in cases {
        let mut t = env.test(Command::Add, &c);
        if let Some(a) = args {
            t = t.cni_args(a);
        }
        assert_eq!(t.run().await.expect_error(999).msg, msg);
    }
    // CHECK loads the configuration the same way.
    let e =
        env.test(Command::Check, &conf(SpecVersion::V1_0_0, json!({}))).cni_args("FOO=1").run().await.expect_error(999);
    assert_eq!(e.msg, "ARGS: unknown args [\"FOO=1\"]");
    // DEL does not: it always cleans up.
    env.test(Command::Del, &conf(SpecVersion::V1_0_0, json!({"mac": "zz"})))
        .cni_args("FOO=1")
        .run()
        .await
        .expect_success();
    assert!(env.world.ops_of(OpKind::CreateTun).is_empty());
    assert!(env.ipam_calls().is_empty());

    // The kernel refuses the address (multicast): the tap is not left behind.
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"mac": "01:00:5e:00:00:01"}))).run().await;
    let e = e.expect_error(999);
    assert!(e.msg.starts_with("failed to create tap: "), "{}", e.msg);
    assert!(env.only_lo_left());
}

#[tokio::test]
async fn selinux_context_goes_through_labelled_iproute2() {
    let env = Env::new(default_ipam());
    let c = conf(
        SpecVersion::V1_0_0,
        json!({"selinuxContext": "system_u:system_r:container_t:s0", "multiQueue": true, "owner": 5, "group": 6, "mtu": 1450, "mac": "02:00:00:17:00:09"}),
    );
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let reqs = env.tool.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.label.as_deref(), Some("system_u:system_r:container_t:s0"));
    assert!(req.name.starts_with("veth") && req.name.len() == 12, "{}", req.name);
    assert_eq!((req.multi_queue, req.owner, req.group, req.mtu), (true, Some(5), Some(6), Some(1450)));
    assert_eq!(req.mac.unwrap().to_string(), "02:00:00:17:00:09");
    let tap = env.tap("eth0");
    assert!(tap.up);
    assert_eq!(r.interfaces[0].mac.unwrap().to_string(), "02:00:00:17:00:09");
    assert!(env.world.ops_of(OpKind::Rename).iter().any(|o| o.detail.contains("eth0")));

    // A kernel without SELinux refuses the label: Go's text, nothing created, IPAM never called.
    let env = Env::with_tool(default_ipam(), FakeIproute2 { no_selinux: true, ..FakeIproute2::default() });
    let c = with_ipam(SpecVersion::V1_0_0, json!({"selinuxContext": "system_u:system_r:container_t:s0"}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed set socket label: write /proc/thread-self/attr/exec: invalid argument");
    assert!(env.only_lo_left());
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn bridge_port_in_the_container() {
    let env = Env::new(default_ipam());
    let ctr = env.world.namespace("ctr").unwrap();
    let br = ctr.bridge("br0").execute().await.unwrap();
    let c = conf(SpecVersion::V1_0_0, json!({"bridge": "br0"}));
    env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(env.tap("eth0").master, Some(br.index));
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.ctr().links.iter().all(|l| l.kind != LinkKind::Tun));

    let missing = conf(SpecVersion::V1_0_0, json!({"bridge": "br9"}));
    let e = env.test(Command::Add, &missing).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to get bridge br9: Link not found");
    assert!(env.ctr().links.iter().all(|l| l.kind != LinkKind::Tun));

    env.world.fail_next(OpKind::SetMaster, cni_sdk::net::NetErrorKind::NotSupported);
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert!(e.msg.starts_with("failed to set tap eth0 as a port of bridge br0: "), "{}", e.msg);
    assert!(env.ctr().links.iter().all(|l| l.kind != LinkKind::Tun));
}

#[tokio::test]
async fn a_taken_name_deletes_the_temporary_tap() {
    let env = Env::new(default_ipam());
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.veth("eth0", "peer0").execute().await.unwrap();
    let e = env.test(Command::Add, &with_ipam(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to rename tap to \"eth0\": file exists");
    assert!(env.ctr().links.iter().all(|l| l.kind != LinkKind::Tun));
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn failures_after_ipam_release_the_address_and_delete_the_tap() {
    let env = Env::new(InProcessExec::new().with_ipam_result("fake-ipam", CniResult::default()));
    let c = with_ipam(SpecVersion::V1_0_0, json!({}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM plugin returned missing IP config");
    assert!(env.only_lo_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    let env =
        Env::new(InProcessExec::new().with_ipam_result(
            "fake-ipam",
            ipam_result(&[("10.217.21.5/24", Some("10.217.21.1"))], &["10.217.88.0/24"]),
        ));
    env.world
        .fail_when(|op| (op.kind == OpKind::AddRoute).then(|| NetError::from_errno(libc::ENETUNREACH, "add route")));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to add route '{10.217.88.0 ffffff00} via 10.217.21.1 dev eth0': network is unreachable");
    env.world.clear_failures();
    assert!(env.only_lo_left());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    let env = Env::new(InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Err(Error::new(11u32, "no addresses left")),
        _ => Ok(None),
    }));
    assert_eq!(env.test(Command::Add, &c).run().await.expect_error(11).msg, "no addresses left");
    assert!(env.only_lo_left());

    // The container namespace is gone.
    let e = env.test(Command::Add, &c).netns("/var/run/netns/gone").run().await.expect_error(999);
    assert_eq!(
        e.msg,
        r#"failed to open netns "/var/run/netns/gone": failed to Statfs "/var/run/netns/gone": no such file or directory"#
    );
}

#[tokio::test]
async fn del_is_idempotent() {
    let env = Env::new(default_ipam());
    let c = with_ipam(SpecVersion::V1_0_0, json!({}));
    env.test(Command::Add, &c).run().await.expect_result();
    env.world.remove_namespace("ctr");
    env.test(Command::Del, &c).run().await.expect_success();
    PluginTest::new(&env.plugin)
        .command(Command::Del)
        .config(c.clone())
        .unset("CNI_NETNS")
        .network(&env.world)
        .exec(env.ipam.clone())
        .run()
        .await
        .expect_success();
    env.world.add_namespace("ctr");
    env.test(Command::Del, &c).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["ADD", "DEL", "DEL", "DEL"]);
    // An IPAM DEL failure is returned (the runtime retries).
    let env = Env::new(InProcessExec::new().with_fn("fake-ipam", |_, _| Err(Error::internal("store is locked"))));
    assert_eq!(env.test(Command::Del, &c).run().await.expect_error(999).msg, "store is locked");
}

#[tokio::test]
async fn check_reports_what_differs() {
    let env = Env::new(default_ipam());
    let c = with_ipam(SpecVersion::V1_0_0, json!({}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let check = |prev: Option<CniResult>| {
        let t = env.test(Command::Check, &c);
        let t = match prev {
            Some(p) => t.prev_result(&p),
            None => t,
        };
        async move { t.run().await.expect_error(999).msg }
    };
    assert_eq!(check(None).await, "Required prevResult missing");
    let mut other = r.clone();
    other.interfaces[0].sandbox = Some("/var/run/netns/x".into());
    assert_eq!(check(Some(other)).await, format!("Sandbox in prevResult  doesn't match configured netns: {NS}"));
    let mut extra_ip = r.clone();
    extra_ip.ips.push(IpConfig { interface: Some(0), ..IpConfig::new("10.217.20.77/24".parse().unwrap()) });
    assert_eq!(check(Some(extra_ip)).await, "Failed to match addr 10.217.20.77/24 on interface eth0");
    let mut extra_route = r.clone();
    extra_route.routes.push(Route::new("10.217.77.0/24".parse().unwrap(), Some("10.217.20.1".parse().unwrap())));
    assert_eq!(
        check(Some(extra_route)).await,
        "Expected Route {Dst:{IP:10.217.77.0 Mask:ffffff00} GW:10.217.20.1} not found in routing table"
    );
    // Beyond Go: the link itself must be there and be a tap.
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.delete_link(ctr.link("eth0").await.unwrap().index).await.unwrap();
    assert_eq!(check(Some(r.clone())).await, "Container Interface name in prevResult: eth0 not found");
    ctr.tuntap("eth0", TunMode::Tun).execute().await.unwrap();
    let mut no_mac = r.clone();
    no_mac.interfaces[0].mac = None;
    assert_eq!(check(Some(no_mac)).await, "Error: Container interface eth0 not of type tap");
    // IPAM CHECK runs first and its failure is returned.
    let env = Env::new(InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Check => Err(Error::internal("lease missing")),
        _ => Ok(None),
    }));
    assert_eq!(env.test(Command::Check, &c).prev_result(&r).run().await.expect_error(999).msg, "lease missing");
}

#[tokio::test]
async fn status_delegates_only_with_ipam() {
    let env = Env::new(default_ipam());
    env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    assert!(env.ipam_calls().is_empty());
    env.test(Command::Status, &with_ipam(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    let env = Env::new(InProcessExec::new().with_fn("fake-ipam", |_, _| Err(Error::new(51u32, "no leases"))));
    assert_eq!(
        env.test(Command::Status, &with_ipam(SpecVersion::V1_1_0, json!({}))).run().await.expect_error(51).msg,
        "no leases"
    );
}
