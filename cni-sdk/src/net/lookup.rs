//! Finding links by hardware address and by the device behind them (sysfs).
//!
//! sysfs shows the network interfaces of the namespace it was *mounted* in, not of the calling
//! thread: entering a namespace with `setns` does not change what `/sys/class/net` or
//! `/sys/devices/.../net/` list. The kernel backend therefore reads sysfs directly only for a
//! handle on the caller's own namespace (what the process's `/sys` normally shows, and where Go's
//! host-device looks); for any other namespace it reads on a short-lived thread that enters the
//! namespace, unshares its mount namespace and mounts a private sysfs (as `ip netns exec` does),
//! so the lists are that namespace's. That needs `CAP_SYS_ADMIN`.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use cni_types::MacAddr;

use super::{Link, Net, NetError, NetErrorKind, NetResult};

/// The bus a device sits on, as found under `/sys/bus/<bus>/devices/<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceBus {
    /// `/sys/bus/pci` (ids like `0000:03:00.1`).
    Pci,
    /// `/sys/bus/auxiliary` (ids like `mlx5_core.sf.4`), for sub-functions.
    Auxiliary,
}

impl DeviceBus {
    /// The bus directory name under `/sys/bus`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pci => "pci",
            Self::Auxiliary => "auxiliary",
        }
    }
}

impl fmt::Display for DeviceBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sysfs says about one bus device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusDevice {
    /// The bus.
    pub bus: DeviceBus,
    /// The id on the bus.
    pub id: String,
    /// The device directory (`/sys/devices/...`, what `/sys/bus/<bus>/devices/<id>` points to).
    pub path: PathBuf,
    /// The bound driver (e.g. `ixgbevf`, `vfio-pci`), if any.
    pub driver: Option<String>,
    /// The names in the device's `net/` directory (for PCI, else in its first `virtio*/net/`),
    /// sorted: the interfaces of the device that are in the handle's namespace. `None` when
    /// there is no such directory (e.g. a device bound to a DPDK driver).
    pub interfaces: Option<Vec<String>>,
}

impl BusDevice {
    /// A device as a backend describes it.
    pub(crate) fn new(
        bus: DeviceBus,
        id: &str,
        path: PathBuf,
        driver: Option<String>,
        interfaces: Option<Vec<String>>,
    ) -> Self {
        Self { bus, id: id.to_owned(), path, driver, interfaces }
    }
}

/// Checks a bus id: one path component.
pub(crate) fn validate_bus_id(bus: DeviceBus, id: &str) -> NetResult<()> {
    let bad = id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0');
    if bad {
        return Err(NetError::new(NetErrorKind::InvalidArgument, format!("invalid {bus} device id {id:?}")));
    }
    Ok(())
}

/// Checks a kernel device path the way Go's host-device does (absolute, below `/sys/devices/`),
/// and refuses `..` components.
pub(crate) fn validate_kernel_path(path: &Path) -> NetResult<()> {
    let ok = path.is_absolute()
        && path.starts_with("/sys/devices")
        && path.components().count() > 3
        && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !ok {
        return Err(NetError::new(
            NetErrorKind::InvalidArgument,
            format!(
                "kernel device path {:?} must be absolute and begin with /sys/devices/",
                path.display().to_string()
            ),
        ));
    }
    Ok(())
}

impl Net {
    /// The first link (in index order) whose hardware address is `mac`, like Go's host-device
    /// `hwaddr` lookup.
    pub async fn find_link_by_mac(&self, mac: MacAddr) -> NetResult<Option<Link>> {
        Ok(self.links().await?.into_iter().find(|l| l.mac == mac))
    }

    /// What sysfs says about the device `id` on `bus`; `None` when there is no such device.
    /// The interface list is this namespace's view (see the module notes).
    pub async fn bus_device(&self, bus: DeviceBus, id: &str) -> NetResult<Option<BusDevice>> {
        validate_bus_id(bus, id)?;
        self.backend.bus_device(bus, id).await
    }

    /// The names under `<path>/net/` (sorted), where `path` is a device directory below
    /// `/sys/devices/` (Go's host-device `kernelpath`); `None` when that directory does not exist.
    /// An invalid path is an error of kind [`NetErrorKind::InvalidArgument`].
    pub async fn kernel_path_interfaces(&self, path: impl AsRef<Path>) -> NetResult<Option<Vec<String>>> {
        let path = path.as_ref();
        validate_kernel_path(path)?;
        self.backend.kernel_path_interfaces(path).await
    }

    /// The first interface of the device at `path` (see [`Net::kernel_path_interfaces`]) that
    /// is a link in this namespace.
    pub async fn find_link_by_kernel_path(&self, path: impl AsRef<Path>) -> NetResult<Option<Link>> {
        let names = self.kernel_path_interfaces(path).await?.unwrap_or_default();
        self.first_link_named(&names).await
    }

    /// The first interface of the PCI device `id` (e.g. `0000:03:00.1`) that is a link in this
    /// namespace; `None` if the device does not exist or has none here.
    pub async fn find_link_by_pci_bus_id(&self, id: &str) -> NetResult<Option<Link>> {
        let names = self.bus_device(DeviceBus::Pci, id).await?.and_then(|d| d.interfaces).unwrap_or_default();
        self.first_link_named(&names).await
    }

    /// Like [`Net::find_link_by_pci_bus_id`], falling back to the auxiliary bus when there is no
    /// such PCI device (what Go's host-device does with `runtimeConfig.deviceID`).
    pub async fn find_link_by_device_id(&self, id: &str) -> NetResult<Option<Link>> {
        let device = match self.bus_device(DeviceBus::Pci, id).await? {
            Some(d) => Some(d),
            None => self.bus_device(DeviceBus::Auxiliary, id).await?,
        };
        let names = device.and_then(|d| d.interfaces).unwrap_or_default();
        self.first_link_named(&names).await
    }

    async fn first_link_named(&self, names: &[String]) -> NetResult<Option<Link>> {
        for name in names {
            if let Some(link) = self.find_link(name).await? {
                return Ok(Some(link));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_paths_must_be_below_sys_devices() {
        for ok in ["/sys/devices/pci0000:00/0000:00:03.0", "/sys/devices/virtual"] {
            validate_kernel_path(Path::new(ok)).unwrap();
        }
        for bad in ["sys/devices/x", "/sys/class/net/eth0", "/sys/devices", "/sys/devices/../class", "/sys/devicesx/a"]
        {
            let e = validate_kernel_path(Path::new(bad)).unwrap_err();
            assert_eq!(e.kind(), NetErrorKind::InvalidArgument, "{bad}");
        }
        let e = validate_kernel_path(Path::new("/tmp/x")).unwrap_err();
        assert_eq!(e.to_string(), "kernel device path \"/tmp/x\" must be absolute and begin with /sys/devices/");
    }

    #[test]
    fn bus_ids_are_one_component() {
        validate_bus_id(DeviceBus::Pci, "0000:03:00.1").unwrap();
        validate_bus_id(DeviceBus::Auxiliary, "mlx5_core.sf.4").unwrap();
        for bad in ["", ".", "..", "a/b", "x\0"] {
            assert_eq!(validate_bus_id(DeviceBus::Pci, bad).unwrap_err().kind(), NetErrorKind::InvalidArgument);
        }
    }
}
