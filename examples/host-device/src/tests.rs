//! Unit tests on fake namespaces with registered "physical" devices (PCI, auxiliary bus, sysfs
//! paths, DPDK drivers: what this machine cannot provide) and a fake IPAM.

use cni_sdk::net::fake::{FakeNetwork, HOST_NAMESPACE, NsSnapshot, OpKind, PhysicalDevice};
use cni_sdk::net::{Link, LinkKind, NetError, NetErrorKind};
use cni_sdk::testing::{InProcessExec, PluginTest, for_each_version};
use cni_sdk::types::MacAddr;
use cni_sdk::{CniResult, Command, Dns, Error, IpConfig, Route, SpecVersion};
use serde_json::{Value, json};

use super::HostDevice;

const NS: &str = "/var/run/netns/ctr";
const PCI: &str = "0000:03:00.1";
const MAC: &str = "02:17:00:00:03:01";

fn ipam_result(ips: &[(&str, Option<&str>)], routes: &[&str]) -> CniResult {
    let mut r = CniResult::default();
    for (a, gw) in ips {
        r.ips.push(IpConfig { gateway: gw.map(|g| g.parse().unwrap()), ..IpConfig::new(a.parse().unwrap()) });
    }
    for d in routes {
        r.routes.push(Route::new(d.parse().unwrap(), None));
    }
    r.dns = Dns { nameservers: vec!["10.217.50.53".into()], ..Dns::default() };
    r
}

fn default_ipam() -> InProcessExec {
    InProcessExec::new()
        .with_ipam_result("fake-ipam", ipam_result(&[("10.217.50.5/24", Some("10.217.50.1"))], &["0.0.0.0/0"]))
}

struct Env {
    world: FakeNetwork,
    ipam: InProcessExec,
}

impl Env {
    /// A host with the NIC `ens1` (PCI `0000:03:00.1`, driver ixgbevf, MAC `MAC`), up.
    async fn new(ipam: InProcessExec) -> Self {
        let world = FakeNetwork::new();
        world.add_namespace("ctr");
        let dev = PhysicalDevice::pci(PCI).interface("ens1").driver("ixgbevf").mac(MAC.parse().unwrap());
        let link = world.add_physical_device(HOST_NAMESPACE, dev).unwrap().unwrap();
        world.host().set_up(link.index).await.unwrap();
        world.clear_ops();
        Self { world, ipam }
    }

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'static, HostDevice> {
        PluginTest::new(&HostDevice)
            .command(cmd)
            .config(conf.clone())
            .netns(NS)
            .ifname("net1")
            .network(&self.world)
            .exec(self.ipam.clone())
    }

    fn host(&self) -> NsSnapshot {
        self.world.snapshot("host").unwrap()
    }

    fn ctr(&self) -> NsSnapshot {
        self.world.snapshot("ctr").unwrap()
    }

    fn host_link(&self, name: &str) -> Option<Link> {
        self.host().links.into_iter().find(|l| l.name == name)
    }

    fn ctr_link(&self, name: &str) -> Option<Link> {
        self.ctr().links.into_iter().find(|l| l.name == name)
    }

    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|c| c.1).collect()
    }

    /// `ens1` is in the host as before ADD: up, no alias, and the container is empty.
    fn back_as_before(&self) -> bool {
        let l = self.host_link("ens1");
        l.as_ref().is_some_and(|l| l.up && l.alias.is_none())
            && self.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback)
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version.as_str(), "name": "hdnet", "type": "host-device"});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn with_ipam(version: SpecVersion, extra: Value) -> Value {
    let mut c = conf(version, extra);
    c["ipam"] = json!({"type": "fake-ipam"});
    c
}

#[tokio::test]
async fn add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam()).await;
        let c = with_ipam(v, json!({"device": "ens1", "dns": {"nameservers": ["10.217.99.53"]}}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        assert!(env.host_link("ens1").is_none());
        let dev = env.ctr_link("net1").expect("net1 in the container");
        assert_eq!((dev.kind.clone(), dev.up, dev.alias.as_deref()), (LinkKind::Device, true, Some("ens1")));
        assert_eq!(dev.mac.to_string(), MAC);
        let ctr = env.ctr();
        assert!(ctr.addresses.iter().any(|a| a.index == dev.index && a.addr.to_string() == "10.217.50.5/24"));
        assert!(ctr.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.oif == Some(dev.index)));
        assert_eq!(r.ips[0].address.to_string(), "10.217.50.5/24");
        // Go replaces the IPAM's dns with the configuration's.
        assert_eq!(r.dns.nameservers, ["10.217.99.53"]);
        if v.has_chaining() {
            assert_eq!(r.interfaces.len(), 1);
            assert_eq!(r.interfaces[0].name, "net1");
            assert_eq!(r.interfaces[0].mac.unwrap().to_string(), MAC);
            assert_eq!(r.interfaces[0].sandbox.as_deref(), Some(NS));
            assert_eq!(r.ips[0].interface, Some(0));
        }
        if v.has_check() {
            env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        // Back under its name, alias cleared, left down (as Go v1.6+: the state before is unknown).
        let back = env.host_link("ens1").expect("ens1 back in the host");
        assert_eq!((back.up, back.alias.as_deref()), (false, None));
        assert!(env.ctr_link("net1").is_none());
        env.test(Command::Del, &c).run().await.expect_success();
        let expected: &[&str] = if v.has_check() { &["ADD", "CHECK", "DEL", "DEL"] } else { &["ADD", "DEL", "DEL"] };
        assert_eq!(env.ipam_calls(), expected);
    })
    .await;
}

#[tokio::test]
async fn layer2_results_and_old_versions() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"device": "ens1", "dns": {"nameservers": ["10.217.99.53"]}}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(r.interfaces[0].name, "net1");
    assert!(r.ips.is_empty() && r.routes.is_empty());
    // Go prints the link only (no dns) without IPAM.
    assert!(r.dns.nameservers.is_empty());
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.ipam_calls().is_empty());

    // 0.1.0/0.2.0 results need an IP address: Go's error, and the device is not left behind.
    for v in [SpecVersion::V0_1_0, SpecVersion::V0_2_0] {
        let env = Env::new(default_ipam()).await;
        let e = env.test(Command::Add, &conf(v, json!({"device": "ens1"}))).run().await.expect_error(999);
        assert_eq!(e.msg, "cannot convert: no valid IP addresses");
        assert!(env.back_as_before(), "{v}");
    }
}

#[tokio::test]
async fn every_selector_finds_the_device() {
    let cases = [
        json!({"hwaddr": MAC}),
        json!({"hwaddr": "02-17-00-00-03-01"}),
        json!({"hwaddr": "0217.0000.0301"}),
        json!({"kernelpath": format!("/sys/devices/pci0000:00/{PCI}")}),
        json!({"pciBusID": PCI}),
        json!({"runtimeConfig": {"deviceID": PCI}}),
        json!({"pciBusID": "0000:99:00.0", "runtimeConfig": {"deviceID": PCI}}),
        // Precedence: device > hwaddr > kernelpath > pciBusID.
        json!({"device": "ens1", "hwaddr": "02:17:00:00:09:09", "pciBusID": PCI}),
        json!({"device": "", "hwaddr": MAC, "kernelpath": "relative/path"}),
        json!({"kernelpath": format!("/sys/devices/pci0000:00/{PCI}/"), "pciBusID": PCI}),
    ];
    for keys in cases {
        let env = Env::new(default_ipam()).await;
        let c = conf(SpecVersion::V1_0_0, keys.clone());
        let r = env.test(Command::Add, &c).run().await.expect_result();
        assert_eq!(r.interfaces[0].mac.unwrap().to_string(), MAC, "{keys}");
        assert_eq!(env.ctr_link("net1").map(|l| l.alias), Some(Some("ens1".into())), "{keys}");
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.host_link("ens1").is_some(), "{keys}");
    }
}

#[tokio::test]
async fn auxiliary_bus_devices_and_virtual_links() {
    let env = Env::new(default_ipam()).await;
    let sf = PhysicalDevice::auxiliary("mlx5_core.sf.4").interface("enp3s0f0s4").driver("mlx5_core");
    env.world.add_physical_device(HOST_NAMESPACE, sf).unwrap();
    let c = conf(SpecVersion::V1_0_0, json!({"runtimeConfig": {"deviceID": "mlx5_core.sf.4"}}));
    env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(env.ctr_link("net1").unwrap().alias.as_deref(), Some("enp3s0f0s4"));
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.host_link("enp3s0f0s4").is_some());

    // Any movable link works, e.g. one end of a veth pair (Go's own tests use such links).
    let host = env.world.host();
    host.veth("hd-veth0", "hd-veth1").execute().await.unwrap();
    let c = conf(SpecVersion::V1_0_0, json!({"device": "hd-veth0"}));
    env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(env.ctr_link("net1").unwrap().kind, LinkKind::Veth);
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.host_link("hd-veth0").is_some());
}

#[tokio::test]
async fn selector_errors_read_like_go() {
    let env = Env::new(default_ipam()).await;
    env.world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:04:00.0").driver("virtio-pci")).unwrap();
    env.world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:05:00.0")).unwrap();
    env.world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::at("/sys/devices/platform/hd0")).unwrap();
    let cases = [
        (json!({}), r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#.to_owned()),
        (json!({"device": ""}), r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#.to_owned()),
        (json!({"device": "ens9"}), "failed to find host device: Link not found".to_owned()),
        (
            json!({"hwaddr": "zz"}),
            r#"failed to find host device: failed to parse MAC address "zz": address zz: invalid MAC address"#.to_owned(),
        ),
        (json!({"hwaddr": "02:17:00:00:09:09"}), "failed to find host device: failed to find physical interface".to_owned()),
        (
            json!({"kernelpath": "/tmp/dev"}),
            r#"failed to find host device: kernel device path "/tmp/dev" must be absolute and begin with /sys/devices/"#
                .to_owned(),
        ),
        (
            json!({"kernelpath": "/sys/devices/platform/nothing"}),
            r#"failed to find host device: failed to find network devices at "/sys/devices/platform/nothing/net""#.to_owned(),
        ),
        (
            json!({"pciBusID": "0000:99:00.0"}),
            "error with host device: lstat /sys/bus/pci/devices/0000:99:00.0: no such file or directory".to_owned(),
        ),
        (
            json!({"pciBusID": "0000:05:00.0"}),
            "error with host device: lstat /sys/devices/pci0000:00/0000:05:00.0/driver: no such file or directory".to_owned(),
        ),
        (
            json!({"pciBusID": "0000:04:00.0"}),
            "failed to find host device: no net directory under pci device 0000:04:00.0".to_owned(),
        ),
        (
            json!({"runtimeConfig": {"deviceID": "0000:98:00.0"}}),
            "runtime config DeviceID 0000:98:00.0 not found or unsupported".to_owned(),
        ),
    ];
    for (keys, msg) in cases {
        let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, keys.clone())).run().await.expect_error(999);
        assert_eq!(e.msg, msg, "{keys}");
    }
    // The PCI device's interface is not in this namespace (e.g. moved elsewhere).
    let other = env.world.add_namespace("other");
    let ens1 = env.world.host().link("ens1").await.unwrap();
    env.world.host().move_link(ens1.index, &other).await.unwrap();
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"pciBusID": PCI}))).run().await.expect_error(999);
    assert_eq!(e.msg, format!("failed to find host device: failed to find device name for pci address {PCI}"));
    assert!(env.ipam_calls().is_empty());
    assert!(env.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback));
}

#[tokio::test]
async fn dpdk_devices_are_not_moved() {
    let env = Env::new(default_ipam()).await;
    env.world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:06:00.0").driver("vfio-pci")).unwrap();
    for v in [SpecVersion::V1_0_0, SpecVersion::V0_4_0, SpecVersion::V1_1_0] {
        let c = with_ipam(v, json!({"pciBusID": "0000:06:00.0"}));
        let r = env.test(Command::Add, &c).run().await.expect_result();
        // Go v1.7+: the interface is reported by name (v1.1.1 reported none).
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!((r.interfaces[0].name.as_str(), r.interfaces[0].mac), ("net1", None));
        assert_eq!(r.interfaces[0].sandbox.as_deref(), Some(NS));
        assert_eq!(r.ips[0].interface, Some(0));
        // IPAM ran, nothing was configured or moved.
        assert!(env.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback));
        assert!(env.ctr().addresses.is_empty());
        env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
        env.test(Command::Del, &c).run().await.expect_success();
    }
    assert_eq!(env.ipam_calls(), ["ADD", "CHECK", "DEL", "ADD", "CHECK", "DEL", "ADD", "CHECK", "DEL"]);
    for driver in ["uio_pci_generic", "igb_uio"] {
        let env = Env::new(default_ipam()).await;
        env.world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:07:00.0").driver(driver)).unwrap();
        let c = conf(SpecVersion::V1_0_0, json!({"device": "ens1", "pciBusID": "0000:07:00.0"}));
        env.test(Command::Add, &c).run().await.expect_result();
        // DPDK mode wins over the other selectors, as in Go: ens1 stays.
        assert!(env.host_link("ens1").is_some(), "{driver}");
    }
}

#[tokio::test]
async fn failed_moves_leave_the_device_as_it_was() {
    // The name is taken in the container: nothing moves (Go moves it and leaves it there).
    let env = Env::new(default_ipam()).await;
    env.world.namespace("ctr").unwrap().veth("net1", "peer1").execute().await.unwrap();
    let c = with_ipam(SpecVersion::V1_0_0, json!({"device": "ens1"}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, r#"failed to move link failed to rename device "ens1" to "net1": file exists"#);
    let ens1 = env.host_link("ens1").unwrap();
    assert!(ens1.up && ens1.alias.is_none());
    assert!(env.ipam_calls().is_empty());

    // Setting it up in the container fails: back in the host, up, alias restored.
    let env = Env::new(default_ipam()).await;
    env.world.host().set_alias(env.host_link("ens1").unwrap().index, "uplink").await.unwrap();
    env.world.fail_next_in("ctr", OpKind::SetUp, NetErrorKind::Busy);
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert!(e.msg.starts_with(r#"failed to move link failed to set "net1" up: "#), "{}", e.msg);
    let ens1 = env.host_link("ens1").unwrap();
    assert_eq!((ens1.up, ens1.alias.as_deref()), (true, Some("uplink")));
    assert!(env.ctr().links.iter().all(|l| l.kind == LinkKind::Loopback));

    // Setting the alias fails.
    let env = Env::new(default_ipam()).await;
    env.world.fail_next(OpKind::SetAlias, NetErrorKind::PermissionDenied);
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert!(e.msg.starts_with(r#"failed to move link failed to set alias to "ens1": "#), "{}", e.msg);
    assert!(env.back_as_before());
}

#[tokio::test]
async fn failures_after_the_move_move_it_back_and_release_the_address() {
    let env = Env::new(InProcessExec::new().with_ipam_result("fake-ipam", CniResult::default())).await;
    let c = with_ipam(SpecVersion::V1_0_0, json!({"device": "ens1"}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM plugin returned missing IP config");
    assert!(env.back_as_before());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    let env =
        Env::new(InProcessExec::new().with_ipam_result(
            "fake-ipam",
            ipam_result(&[("10.217.51.5/24", Some("10.217.51.1"))], &["10.217.88.0/24"]),
        ))
        .await;
    env.world
        .fail_when(|op| (op.kind == OpKind::AddRoute).then(|| NetError::from_errno(libc::ENETUNREACH, "add route")));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to add route '{10.217.88.0 ffffff00} via 10.217.51.1 dev net1': network is unreachable");
    env.world.clear_failures();
    assert!(env.back_as_before());
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    let env = Env::new(InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Err(Error::new(11u32, "no addresses left")),
        _ => Ok(None),
    }))
    .await;
    assert_eq!(env.test(Command::Add, &c).run().await.expect_error(11).msg, "no addresses left");
    assert!(env.back_as_before());

    let e = env.test(Command::Add, &c).netns("/var/run/netns/gone").run().await.expect_error(999);
    assert_eq!(
        e.msg,
        r#"failed to open netns "/var/run/netns/gone": failed to Statfs "/var/run/netns/gone": no such file or directory"#
    );
    assert!(env.back_as_before());
}

#[tokio::test]
async fn del_is_idempotent() {
    let env = Env::new(default_ipam()).await;
    let c = with_ipam(SpecVersion::V1_0_0, json!({"device": "ens1"}));
    // Without CNI_NETNS, with a namespace lacking the device, twice.
    PluginTest::new(&HostDevice)
        .command(Command::Del)
        .config(c.clone())
        .unset("CNI_NETNS")
        .network(&env.world)
        .exec(env.ipam.clone())
        .run()
        .await
        .expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.back_as_before());
    assert_eq!(env.ipam_calls(), ["DEL", "DEL", "DEL"]);
    // DEL does not need the PCI device any more (hot-unplugged, driver gone).
    let gone = conf(SpecVersion::V1_0_0, json!({"pciBusID": "0000:99:00.0", "runtimeConfig": {"deviceID": "x"}}));
    env.test(Command::Del, &gone).run().await.expect_success();
    let gone = conf(SpecVersion::V1_0_0, json!({"runtimeConfig": {"deviceID": "0000:97:00.0"}}));
    env.test(Command::Del, &gone).run().await.expect_success();
    // Without any selector DEL fails like Go's (such a configuration never worked).
    let e = env.test(Command::Del, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert_eq!(e.msg, r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#);
    // An IPAM DEL failure is returned (the runtime retries).
    let env = Env::new(InProcessExec::new().with_fn("fake-ipam", |_, _| Err(Error::internal("store is locked")))).await;
    assert_eq!(env.test(Command::Del, &c).run().await.expect_error(999).msg, "store is locked");
}

#[tokio::test]
async fn a_dead_namespace_hands_the_device_back_and_del_restores_it() {
    for keys in [json!({"device": "ens1"}), json!({"pciBusID": PCI}), json!({"hwaddr": MAC})] {
        let env = Env::new(default_ipam()).await;
        let c = with_ipam(SpecVersion::V1_0_0, keys.clone());
        env.test(Command::Add, &c).run().await.expect_result();
        // The container dies without DEL: the kernel returns the NIC under its container name.
        env.world.remove_namespace("ctr");
        let returned = env.host_link("net1").expect("returned as net1");
        assert_eq!(returned.alias.as_deref(), Some("ens1"));
        env.test(Command::Del, &c).run().await.expect_success();
        let ens1 = env.host_link("ens1").unwrap_or_else(|| panic!("{keys}: {:?}", env.host().links));
        assert_eq!(ens1.alias, None, "{keys}");
        assert!(env.host_link("net1").is_none());
        assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    }
}

#[tokio::test]
async fn a_later_add_copes_with_a_returned_device() {
    for keys in [
        json!({"device": "ens1"}),
        json!({"pciBusID": PCI}),
        json!({"kernelpath": format!("/sys/devices/pci0000:00/{PCI}")}),
    ] {
        let env = Env::new(default_ipam()).await;
        let c = conf(SpecVersion::V1_0_0, keys.clone());
        env.test(Command::Add, &c).run().await.expect_result();
        // The host already has a `net1`: the kernel falls back to `dev<ifindex>`.
        env.world.host().veth("net1", "net1-peer").execute().await.unwrap();
        env.world.remove_namespace("ctr");
        let returned = env.host().links.into_iter().find(|l| l.alias.as_deref() == Some("ens1")).unwrap();
        assert!(returned.name.starts_with("dev"), "{}", returned.name);
        // No DEL: the runtime lost track. The next ADD selects it all the same.
        env.world.add_namespace("ctr");
        env.test(Command::Add, &c).ifname("eth1").run().await.expect_result();
        assert_eq!(env.ctr_link("eth1").unwrap().alias.as_deref(), Some("ens1"), "{keys}");
        env.test(Command::Del, &c).ifname("eth1").run().await.expect_success();
        assert!(env.host_link("ens1").is_some(), "{keys}: {:?}", env.host().links);
    }
}

#[tokio::test]
async fn del_errors_keep_the_device_in_the_container() {
    let env = Env::new(default_ipam()).await;
    let c = conf(SpecVersion::V1_0_0, json!({"device": "ens1"}));
    env.test(Command::Add, &c).run().await.expect_result();
    // The original name was taken in the host meanwhile.
    let host = env.world.host();
    let (squatter, _) = host.veth("ens1", "ens1-peer").execute().await.unwrap();
    let e = env.test(Command::Del, &c).run().await.expect_error(999);
    assert_eq!(e.msg, r#"failed to move "ens1" to host netns: file exists"#);
    let dev = env.ctr_link("net1").unwrap();
    assert_eq!((dev.up, dev.alias.as_deref()), (true, Some("ens1")));
    host.delete_link(squatter.index).await.unwrap();
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.host_link("ens1").is_some());

    // A link without the alias (not moved by host-device).
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.veth("net1", "p1").execute().await.unwrap();
    let e = env.test(Command::Del, &c).run().await.expect_error(999);
    assert_eq!(e.msg, r#"failed to find original ifname for "net1" (alias is not set)"#);
}

#[tokio::test]
async fn check_reports_what_differs() {
    let env = Env::new(default_ipam()).await;
    let c = with_ipam(SpecVersion::V1_0_0, json!({"device": "ens1"}));
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
    let mut mac = r.clone();
    mac.interfaces[0].mac = Some("02:00:00:00:00:01".parse::<MacAddr>().unwrap().into());
    assert_eq!(
        check(Some(mac)).await,
        format!("Interface net1 Mac 02:00:00:00:00:01 doesn't match container Mac: {MAC}")
    );
    let mut ip = r.clone();
    ip.ips.push(IpConfig { interface: Some(0), ..IpConfig::new("10.217.50.77/24".parse().unwrap()) });
    assert_eq!(check(Some(ip)).await, "Failed to match addr 10.217.50.77/24 on interface net1");
    let mut route = r.clone();
    route.routes.push(Route::new("10.217.77.0/24".parse().unwrap(), Some("10.217.50.1".parse().unwrap())));
    assert_eq!(
        check(Some(route)).await,
        "Expected Route {Dst:{IP:10.217.77.0 Mask:ffffff00} GW:10.217.50.1} not found in routing table"
    );
    // CHECK loads the configuration like ADD.
    let missing = with_ipam(SpecVersion::V1_0_0, json!({"pciBusID": "0000:99:00.0"}));
    let e = env.test(Command::Check, &missing).prev_result(&r).run().await.expect_error(999);
    assert_eq!(e.msg, "error with host device: lstat /sys/bus/pci/devices/0000:99:00.0: no such file or directory");
    // The device left the container.
    env.test(Command::Del, &c).run().await.expect_success();
    assert_eq!(check(Some(r.clone())).await, "Container Interface name in prevResult: net1 not found");
}

#[tokio::test]
async fn status_delegates_only_with_ipam() {
    let env = Env::new(default_ipam()).await;
    env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({"device": "ens1"}))).run().await.expect_success();
    assert!(env.ipam_calls().is_empty());
    env.test(Command::Status, &with_ipam(SpecVersion::V1_1_0, json!({}))).run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    let env = Env::new(InProcessExec::new().with_fn("fake-ipam", |_, _| Err(Error::new(50u32, "not ready")))).await;
    let e = env.test(Command::Status, &with_ipam(SpecVersion::V1_1_0, json!({}))).run().await.expect_error(50);
    assert_eq!(e.msg, "not ready");
}
