//! What only the fake offers: the operation log, error injection, snapshots, namespace removal
//! and registered physical devices.

use std::path::Path;

use cni_sdk::net::fake::{FakeNetwork, HOST_NAMESPACE, OpKind, PhysicalDevice};
use cni_sdk::net::{Address, DeviceBus, LinkKind, MacvlanMode, NetError, NetErrorKind, OperState, TunMode};
use cni_types::MacAddr;

use super::{err_kind, net};

#[tokio::test]
async fn host_namespace_and_names() {
    let world = FakeNetwork::new();
    let host = world.host();
    assert_eq!(host.link("lo").await.unwrap().index, 1);
    assert!(host.netns().is_none());
    let ctr = world.add_namespace("ctr");
    assert_eq!(world.namespace_name(&ctr).as_deref(), Some("ctr"));
    assert_eq!(world.namespace_name(&host).as_deref(), Some(HOST_NAMESPACE));
    assert!(world.namespace("nope").is_none());
    // add_namespace on an existing name returns the same namespace.
    ctr.veth("v0", "v1").execute().await.unwrap();
    let again = world.add_namespace("ctr");
    assert!(again.find_link("v0").await.unwrap().is_some());
    // A handle from another world is not accepted.
    let other = FakeNetwork::new();
    assert_eq!(world.namespace_name(&other.host()), None);
    assert_eq!(
        err_kind(host.veth("x0", "x1").peer_netns(&other.host()).execute().await),
        NetErrorKind::InvalidArgument
    );
}

#[tokio::test]
async fn macs_are_deterministic() {
    async fn macs() -> Vec<MacAddr> {
        let world = FakeNetwork::new();
        let (a, b) = world.host().veth("a0", "a1").execute().await.unwrap();
        let br = world.host().bridge("br0").execute().await.unwrap();
        vec![a.mac, b.mac, br.mac]
    }
    let first = macs().await;
    assert_eq!(first, macs().await);
    assert!(first.iter().all(|m| m.is_locally_administered()));
    assert_eq!(first[0].to_string(), "02:fa:ce:00:00:02");
}

#[tokio::test]
async fn operations_are_recorded() {
    let world = FakeNetwork::new();
    let host = world.host();
    let ctr = world.add_namespace("ctr");
    let (h, c) = host.veth("veth0", "eth0").peer_netns(&ctr).execute().await.unwrap();
    ctr.add_address(c.index, net("10.220.10.2/24")).await.unwrap();
    ctr.set_up(c.index).await.unwrap();
    let _ = host.set_up(4242).await;
    let creates = world.ops_of(OpKind::CreateVeth);
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].netns, HOST_NAMESPACE);
    assert_eq!(creates[0].detail, "veth0 <-> eth0 in ctr");
    assert_eq!(creates[0].error, None);
    let ups = world.ops_of(OpKind::SetUp);
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0].netns, "ctr");
    assert_eq!(ups[1].error, Some(NetErrorKind::NotFound));
    let adds = world.ops_of(OpKind::AddAddress);
    assert_eq!(adds[0].to_string(), format!("[ctr] AddAddress 10.220.10.2/24 on #{}", c.index));
    assert!(world.ops().iter().any(|o| o.kind == OpKind::GetLink));
    world.clear_ops();
    assert!(world.ops().is_empty());
    assert_eq!(host.link("veth0").await.unwrap().index, h.index);
}

#[tokio::test]
async fn injected_errors_fail_once_and_change_nothing() {
    let world = FakeNetwork::new();
    let host = world.host();
    let ctr = world.add_namespace("ctr");
    let before = world.snapshot(HOST_NAMESPACE).unwrap();
    world.fail_next(OpKind::CreateVeth, NetErrorKind::PermissionDenied);
    let err = host.veth("v0", "v1").execute().await.unwrap_err();
    assert_eq!(err.kind(), NetErrorKind::PermissionDenied);
    assert_eq!(world.snapshot(HOST_NAMESPACE).unwrap(), before);
    host.veth("v0", "v1").execute().await.unwrap();

    // Only in one namespace.
    world.fail_next_in("ctr", OpKind::SetUp, NetErrorKind::NotFound);
    host.set_up(1).await.unwrap();
    assert_eq!(err_kind(ctr.set_up(1).await), NetErrorKind::NotFound);
    ctr.set_up(1).await.unwrap();

    // Ensure-bridge sees an "exists" from a racing creator and reuses what is there.
    world.fail_next(OpKind::CreateBridge, NetErrorKind::Exists);
    assert_eq!(
        err_kind(host.bridge("br0").execute().await),
        NetErrorKind::NotFound,
        "nothing was created, so the re-lookup finds nothing"
    );

    // Predicate-based: every route to 10.220.99/24 fails until cleared.
    world.fail_when(|op| {
        (op.kind == OpKind::AddRoute && op.detail.starts_with("10.220.99."))
            .then(|| NetError::new(NetErrorKind::PermissionDenied, "policy says no"))
    });
    let v0 = host.link("v0").await.unwrap();
    host.set_up(v0.index).await.unwrap();
    for _ in 0..2 {
        let err = host.route(net("10.220.99.0/24")).dev(v0.index).add().await.unwrap_err();
        assert_eq!(err.kind(), NetErrorKind::PermissionDenied);
        assert_eq!(err.to_string(), "policy says no");
    }
    host.route(net("10.220.98.0/24")).dev(v0.index).add().await.unwrap();
    world.clear_failures();
    host.route(net("10.220.99.0/24")).dev(v0.index).add().await.unwrap();
}

#[tokio::test]
async fn snapshot_shows_the_namespace() {
    let world = FakeNetwork::new();
    let ctr = world.add_namespace("ctr");
    let (c, _) = ctr.veth("eth0", "peer0").execute().await.unwrap();
    ctr.add_address(c.index, net("10.220.11.2/24")).await.unwrap();
    ctr.set_up(c.index).await.unwrap();
    ctr.set_sysctl("net.ipv4.ip_forward", "1").await.unwrap();
    let snap = world.snapshot("ctr").unwrap();
    let names: Vec<&str> = snap.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo", "peer0", "eth0"]);
    assert_eq!(snap.addresses, vec![Address { index: c.index, addr: net("10.220.11.2/24") }]);
    assert_eq!(snap.routes.len(), 1);
    assert_eq!(snap.routes[0].dst, net("10.220.11.0/24"));
    assert_eq!(snap.sysctls.get("net/ipv4/ip_forward").map(String::as_str), Some("1"));
    assert!(world.snapshot("nope").is_none());
}

#[tokio::test]
async fn removing_a_namespace_takes_veth_peers_along() {
    let world = FakeNetwork::new();
    let host = world.host();
    let ctr = world.add_namespace("ctr");
    host.veth("veth0", "eth0").peer_netns(&ctr).execute().await.unwrap();
    assert!(world.remove_namespace("ctr"));
    assert!(!world.remove_namespace("ctr"));
    assert!(host.find_link("veth0").await.unwrap().is_none());
    assert_eq!(err_kind(ctr.links().await), NetErrorKind::NotFound);
    assert!(world.namespace("ctr").is_none());
    // A new namespace of the same name is a fresh one.
    let ctr2 = world.add_namespace("ctr");
    assert_eq!(ctr2.links().await.unwrap().len(), 1);
}

#[tokio::test]
async fn new_operations_are_recorded() {
    let world = FakeNetwork::new();
    let host = world.host();
    let ctr = world.add_namespace("ctr");
    let (m, _) = host.veth("ens1", "ens1p").execute().await.unwrap();
    host.macvlan("eth0", m.index).mode(MacvlanMode::Bridge).netns(&ctr).execute().await.unwrap();
    let eth0 = ctr.link("eth0").await.unwrap();
    ctr.rename_link(eth0.index, "net1").await.unwrap();
    ctr.set_alias(eth0.index, "orig").await.unwrap();
    ctr.move_link_renamed(eth0.index, &host, "back0").await.unwrap();
    host.tap("tap0").execute().await.unwrap();
    let detail = |k| world.ops_of(k).into_iter().map(|o| o.to_string()).collect::<Vec<_>>();
    assert_eq!(
        detail(OpKind::CreateMacvlan),
        [format!("[host] CreateMacvlan eth0 link #{} mode bridge in ctr", m.index)]
    );
    assert_eq!(detail(OpKind::Rename), [format!("[ctr] Rename #{} name net1", eth0.index)]);
    assert_eq!(detail(OpKind::SetAlias), [format!("[ctr] SetAlias #{} alias \"orig\"", eth0.index)]);
    assert_eq!(detail(OpKind::MoveLink), [format!("[ctr] MoveLink #{} to host as back0", eth0.index)]);
    assert_eq!(detail(OpKind::CreateTun), ["[host] CreateTun tap0 mode tap"]);
    // Injection works for the new kinds like for the old ones, and changes nothing.
    world.fail_next(OpKind::CreateTun, NetErrorKind::PermissionDenied);
    assert_eq!(err_kind(host.tuntap("tun0", TunMode::Tun).execute().await), NetErrorKind::PermissionDenied);
    assert!(host.find_link("tun0").await.unwrap().is_none());
    world.fail_next(OpKind::GetBusDevice, NetErrorKind::PermissionDenied);
    assert_eq!(err_kind(host.bus_device(DeviceBus::Pci, "0000:00:01.0").await), NetErrorKind::PermissionDenied);
}

#[tokio::test]
async fn removing_a_namespace_takes_children_and_keeps_parents() {
    let world = FakeNetwork::new();
    let host = world.host();
    let ctr = world.add_namespace("ctr");
    let (master, _) = host.veth("ens1", "ens1p").execute().await.unwrap();
    host.macvlan("eth0", master.index).netns(&ctr).execute().await.unwrap();
    // A child in the host of a parent in the container.
    let (inner, _) = ctr.veth("in0", "in1").execute().await.unwrap();
    let moved = ctr.move_link(inner.index, &host).await.unwrap();
    host.macvlan("mvh", moved.index).execute().await.unwrap();
    assert!(world.remove_namespace("ctr"));
    assert!(host.find_link("ens1").await.unwrap().is_some(), "the parent stays");
    assert!(host.find_link("mvh").await.unwrap().is_none(), "its parent's veth peer went with the namespace");
    assert!(host.find_link("in0").await.unwrap().is_none());
}

#[tokio::test]
async fn physical_devices_and_their_lookups() {
    let world = FakeNetwork::new();
    let host = world.host();
    let mac = MacAddr::new([0x3c, 0xfd, 0xfe, 0, 0, 1]);
    let ens = world
        .add_physical_device(
            HOST_NAMESPACE,
            PhysicalDevice::pci("0000:03:00.1").interface("ens1f1").driver("ixgbevf").mac(mac).mtu(9000),
        )
        .unwrap()
        .unwrap();
    assert_eq!((ens.kind.clone(), ens.mac, ens.mtu, ens.up), (LinkKind::Device, mac, 9000, false));
    host.set_up(ens.index).await.unwrap();
    assert_eq!(host.link_by_index(ens.index).await.unwrap().oper_state, OperState::Up);
    // A DPDK-bound device has no interface; an auxiliary device; a device at a plain path.
    assert!(
        world
            .add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:04:00.0").driver("vfio-pci"))
            .unwrap()
            .is_none()
    );
    world
        .add_physical_device(HOST_NAMESPACE, PhysicalDevice::auxiliary("mlx5_core.sf.4").interface("enp4s0f0s4"))
        .unwrap();
    let platform = PhysicalDevice::at("/sys/devices/platform/soc/eth9").interface("eth9");
    world.add_physical_device(HOST_NAMESPACE, platform).unwrap();

    let dev = host.bus_device(DeviceBus::Pci, "0000:03:00.1").await.unwrap().unwrap();
    assert_eq!(dev.path, Path::new("/sys/devices/pci0000:00/0000:03:00.1"));
    assert_eq!(dev.driver.as_deref(), Some("ixgbevf"));
    assert_eq!(dev.interfaces, Some(vec!["ens1f1".to_owned()]));
    let dpdk = host.bus_device(DeviceBus::Pci, "0000:04:00.0").await.unwrap().unwrap();
    assert_eq!((dpdk.driver.as_deref(), dpdk.interfaces), (Some("vfio-pci"), None));
    assert_eq!(host.find_link_by_pci_bus_id("0000:03:00.1").await.unwrap().map(|l| l.index), Some(ens.index));
    assert!(host.find_link_by_pci_bus_id("0000:04:00.0").await.unwrap().is_none());
    assert_eq!(host.find_link_by_device_id("mlx5_core.sf.4").await.unwrap().unwrap().name, "enp4s0f0s4");
    assert_eq!(host.find_link_by_kernel_path("/sys/devices/platform/soc/eth9").await.unwrap().unwrap().name, "eth9");
    assert_eq!(host.find_link_by_mac(mac).await.unwrap().unwrap().name, "ens1f1");
    // Physical devices are not virtual ones.
    let virt = host.kernel_path_interfaces("/sys/devices/virtual").await.unwrap().unwrap();
    assert_eq!(virt, ["lo"]);
    // Registration errors.
    let dup = world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:03:00.1").interface("x0"));
    assert_eq!(dup.unwrap_err().kind(), NetErrorKind::Exists);
    let name = world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:05:00.0").interface("ens1f1"));
    assert_eq!(name.unwrap_err().kind(), NetErrorKind::Exists);
    let ns = world.add_physical_device("nope", PhysicalDevice::pci("0000:06:00.0"));
    assert_eq!(ns.unwrap_err().kind(), NetErrorKind::NotFound);
    let path = world.add_physical_device(HOST_NAMESPACE, PhysicalDevice::at("/tmp/eth0").interface("e0"));
    assert_eq!(path.unwrap_err().kind(), NetErrorKind::InvalidArgument);
    // A physical device cannot be deleted.
    assert_eq!(err_kind(host.delete_link(ens.index).await), NetErrorKind::NotSupported);
}

#[tokio::test]
async fn host_device_round_trip_and_namespace_teardown() {
    let world = FakeNetwork::new();
    let host = world.host();
    let ens = world
        .add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:03:00.1").interface("ens1f1"))
        .unwrap()
        .unwrap();
    let ctr = world.add_namespace("ctr");
    // ADD: in under CNI_IFNAME, original name kept as alias.
    host.set_alias(ens.index, "ens1f1").await.unwrap();
    let inside = host.move_link_renamed(ens.index, &ctr, "net1").await.unwrap();
    ctr.add_address(inside.index, net("10.220.40.2/24")).await.unwrap();
    ctr.set_up(inside.index).await.unwrap();
    // From the host, the device has no interface any more; from the container it does.
    let seen = host.bus_device(DeviceBus::Pci, "0000:03:00.1").await.unwrap().unwrap();
    assert_eq!(seen.interfaces, Some(vec![]));
    assert_eq!(ctr.find_link_by_pci_bus_id("0000:03:00.1").await.unwrap().unwrap().name, "net1");
    // DEL: back under the alias.
    let alias = ctr.link("net1").await.unwrap().alias.unwrap();
    ctr.set_down(inside.index).await.unwrap();
    let back = ctr.move_link_renamed(inside.index, &host, &alias).await.unwrap();
    assert_eq!(back.name, "ens1f1");
    // Without DEL: the namespace goes and the device comes home under its container name,
    // or dev<index> when that name is taken in the host.
    host.move_link_renamed(back.index, &ctr, "eth0").await.unwrap();
    host.veth("eth0", "eth0p").execute().await.unwrap();
    let idx_in_ctr = ctr.link("eth0").await.unwrap().index;
    assert!(world.remove_namespace("ctr"));
    let home = host.link(&format!("dev{idx_in_ctr}")).await.unwrap();
    assert_eq!((home.kind, home.up), (LinkKind::Device, false));
    assert_eq!(host.find_link_by_pci_bus_id("0000:03:00.1").await.unwrap().map(|l| l.index), Some(home.index));
}
