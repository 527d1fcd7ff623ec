//! Finding links by hardware address, sysfs kernel path and bus id.

use cni_sdk::net::{DeviceBus, Net, NetErrorKind};
use cni_types::MacAddr;

use super::{Env, err_kind, suite};

async fn find_by_mac(env: Env) {
    let mac = MacAddr::new([0x02, 0x27, 0, 0, 0, 1]);
    let (v, _) = env.a.veth("fm0", "fm1").mac(mac).execute().await.unwrap();
    assert_eq!(env.a.find_link_by_mac(mac).await.unwrap().map(|l| l.index), Some(v.index));
    assert!(env.b.find_link_by_mac(mac).await.unwrap().is_none(), "another namespace");
    assert!(env.a.find_link_by_mac(MacAddr::new([0x02, 0x27, 0, 0, 0, 2])).await.unwrap().is_none());
    // The first in index order wins (a macvlan in passthru mode shares its parent's address).
    let pt = env.a.macvlan("pt0", v.index).mode(cni_sdk::net::MacvlanMode::Passthru).execute().await.unwrap();
    assert_eq!(pt.mac, mac);
    assert_eq!(env.a.find_link_by_mac(mac).await.unwrap().map(|l| l.index), Some(v.index));
}

async fn virtual_devices_of_the_namespace(env: Env) {
    env.a.veth("kp0", "kp1").execute().await.unwrap();
    env.b.veth("kq0", "kq1").execute().await.unwrap();
    // sysfs as namespace `a` sees it: its own virtual devices only.
    let names = env.a.kernel_path_interfaces("/sys/devices/virtual").await.unwrap();
    assert_eq!(names, Some(vec!["kp0".to_owned(), "kp1".to_owned(), "lo".to_owned()]));
    let first = env.a.find_link_by_kernel_path("/sys/devices/virtual").await.unwrap().unwrap();
    assert_eq!(first.name, "kp0", "the first entry (in name order) that is a link");
    let names = env.b.kernel_path_interfaces("/sys/devices/virtual").await.unwrap();
    assert_eq!(names, Some(vec!["kq0".to_owned(), "kq1".to_owned(), "lo".to_owned()]));
}

async fn missing_devices_and_bad_paths(env: Env) {
    assert_eq!(env.a.kernel_path_interfaces("/sys/devices/nt-no-such-device").await.unwrap(), None);
    assert!(env.a.find_link_by_kernel_path("/sys/devices/nt-no-such-device").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.kernel_path_interfaces("/sys/class/net/lo").await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.kernel_path_interfaces("relative/path").await), NetErrorKind::InvalidArgument);
    assert_eq!(env.a.bus_device(DeviceBus::Pci, "ffff:ff:1f.7").await.unwrap(), None);
    assert_eq!(env.a.bus_device(DeviceBus::Auxiliary, "nt-none.sf.9").await.unwrap(), None);
    assert!(env.a.find_link_by_pci_bus_id("ffff:ff:1f.7").await.unwrap().is_none());
    assert!(env.a.find_link_by_device_id("ffff:ff:1f.7").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.bus_device(DeviceBus::Pci, "../../x").await), NetErrorKind::InvalidArgument);
}

suite!(find_by_mac, virtual_devices_of_the_namespace, missing_devices_and_bad_paths);

/// The machine's PCI network devices as the host namespace's sysfs shows them, compared with
/// what a throwaway namespace sees: its private sysfs lists none of the host's interfaces. Only
/// reads the host namespace.
#[tokio::test]
#[ignore = "needs root"]
async fn kernel_sysfs_is_per_namespace() {
    let env = super::real_env().await;
    let host = Net::host().await.unwrap();
    let ids: Vec<String> = std::fs::read_dir("/sys/bus/pci/devices")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    for id in ids {
        let on_host = host.bus_device(DeviceBus::Pci, &id).await.unwrap().expect("listed device exists");
        assert_eq!(on_host.id, id);
        assert!(on_host.path.starts_with("/sys/devices"), "{:?}", on_host.path);
        let names = on_host.interfaces.clone().unwrap_or_default();
        match names.first() {
            Some(first) => {
                let link = host.find_link_by_pci_bus_id(&id).await.unwrap().expect("its interface is a host link");
                assert_eq!(&link.name, first);
                assert_eq!(host.find_link_by_device_id(&id).await.unwrap().map(|l| l.index), Some(link.index));
            }
            None => assert!(host.find_link_by_pci_bus_id(&id).await.unwrap().is_none()),
        }
        let in_ns = env.a.bus_device(DeviceBus::Pci, &id).await.unwrap().expect("the device is visible everywhere");
        assert_eq!((in_ns.path.clone(), in_ns.driver.clone()), (on_host.path.clone(), on_host.driver.clone()));
        assert!(in_ns.interfaces.unwrap_or_default().is_empty(), "{id}: the host's interfaces are not in `a`");
        assert!(env.a.find_link_by_pci_bus_id(&id).await.unwrap().is_none());
    }
}
