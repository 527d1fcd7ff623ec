//! Which host device a request means: Go's `loadConf` (runtime `deviceID`, DPDK detection) and
//! `getLink` (`device` > `hwaddr` > `kernelpath` > `pciBusID` > auxiliary device), with Go's
//! messages, plus recognising a device the kernel handed back when a container's namespace died.

use std::path::Path;

use cni_sdk::net::{DeviceBus, Link, MAX_IFNAME_LEN, Net, NetErrorKind};
use cni_sdk::types::HardwareAddr;
use cni_sdk::{Context, Error, Result};

use crate::HostDeviceConf;

/// Drivers that take a PCI device away from the kernel's network stack (DPDK).
const USERSPACE_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// How the device is selected (the first key set, in Go's order of precedence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// `device`: an interface name.
    Device(String),
    /// `hwaddr`: a hardware address.
    HwAddr(String),
    /// `kernelpath`: a device directory below `/sys/devices/`.
    KernelPath(String),
    /// `pciBusID` (or `runtimeConfig.deviceID` naming a PCI device).
    Pci(String),
    /// `runtimeConfig.deviceID` naming an auxiliary-bus device.
    Aux(String),
}

/// The checked configuration of one request.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) selector: Selector,
    /// The PCI device is bound to a DPDK driver: nothing is moved.
    pub(crate) dpdk: bool,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Go `loadConf`. With `strict` false (DEL), sysfs problems do not fail the request: a PCI
/// device that disappeared is simply not in DPDK mode, so DEL can still clean up.
pub(crate) async fn load(cx: &Context<HostDeviceConf>, host: &Net, strict: bool) -> Result<Loaded> {
    let n = cx.plugin_config();
    let mut pci = non_empty(&n.pci_bus_id).map(str::to_owned);
    let mut aux = None;
    if let Some(id) = cx.runtime_config().and_then(|r| r.device_id.as_deref()).filter(|id| !id.is_empty()) {
        // Go v1.5.0+: a PCI device, else an auxiliary-bus device.
        if bus_exists(host, DeviceBus::Pci, id).await {
            pci = Some(id.to_owned());
        } else if bus_exists(host, DeviceBus::Auxiliary, id).await {
            pci = None;
            aux = Some(id.to_owned());
        } else if strict {
            return Err(Error::internal(format!("runtime config DeviceID {id} not found or unsupported")));
        } else {
            // DEL after the device went away: still a selector, so DEL can finish.
            pci = Some(id.to_owned());
        }
    }
    let selector = if let Some(d) = non_empty(&n.device) {
        Selector::Device(d.to_owned())
    } else if let Some(h) = non_empty(&n.hwaddr) {
        Selector::HwAddr(h.to_owned())
    } else if let Some(k) = non_empty(&n.kernelpath) {
        Selector::KernelPath(k.to_owned())
    } else if let Some(p) = &pci {
        Selector::Pci(p.clone())
    } else if let Some(a) = aux {
        Selector::Aux(a)
    } else {
        return Err(Error::internal(r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#));
    };
    let dpdk = match &pci {
        None => false,
        Some(id) => match dpdk_driver(host, id).await {
            Ok(dpdk) => dpdk,
            Err(e) if strict => return Err(e.wrap("error with host device")),
            Err(_) => false,
        },
    };
    Ok(Loaded { selector, dpdk })
}

async fn bus_exists(host: &Net, bus: DeviceBus, id: &str) -> bool {
    matches!(host.bus_device(bus, id).await, Ok(Some(_)))
}

/// Go `hasDpdkDriver`: the driver the PCI device is bound to, with Go's `lstat` errors.
async fn dpdk_driver(host: &Net, id: &str) -> Result<bool> {
    let dev = host.bus_device(DeviceBus::Pci, id).await.map_err(|e| Error::internal(e.message().to_owned()))?;
    let Some(dev) = dev else {
        return Err(Error::not_found(format!("lstat /sys/bus/pci/devices/{id}: no such file or directory")));
    };
    let Some(driver) = dev.driver else {
        // Go resolves the device's symlink first, so the error names the real directory.
        let driver_link = dev.path.join("driver");
        return Err(Error::not_found(format!("lstat {}: no such file or directory", driver_link.display())));
    };
    Ok(USERSPACE_DRIVERS.contains(&driver.as_str()))
}

/// Go `getLink`, in the host namespace: the device the selector names, or Go's reason why there
/// is none (the caller wraps it as `failed to find host device: ...`). A `device` that is not
/// there under its name but whose `ifalias` names it is found too: that is the device after
/// its container's namespace died (see [`original_name`]).
pub(crate) async fn find(host: &Net, selector: &Selector) -> Result<Link> {
    let link_not_found = || Error::not_found("Link not found");
    let not_found = || Error::not_found("failed to find physical interface");
    match selector {
        Selector::Device(name) => match host.find_link(name).await? {
            Some(link) => Ok(link),
            None => by_alias(host, name).await?.ok_or_else(link_not_found),
        },
        Selector::HwAddr(s) => {
            let wanted: HardwareAddr = s.parse().map_err(|_| {
                Error::internal(format!("failed to parse MAC address {s:?}: address {s}: invalid MAC address"))
            })?;
            let links = host.links().await?;
            links.into_iter().find(|l| HardwareAddr::from(l.mac) == wanted).ok_or_else(not_found)
        }
        Selector::KernelPath(p) => {
            let names = match host.kernel_path_interfaces(p).await {
                Ok(Some(names)) => names,
                Ok(None) => {
                    let net_dir = Path::new(p).join("net");
                    return Err(Error::not_found(format!(
                        "failed to find network devices at {:?}",
                        net_dir.display().to_string()
                    )));
                }
                Err(e) if e.kind() == NetErrorKind::InvalidArgument => {
                    return Err(Error::internal(e.message().to_owned()));
                }
                Err(e) => return Err(e.into()),
            };
            for name in &names {
                if let Some(link) = host.find_link(name).await? {
                    return Ok(link);
                }
            }
            Err(not_found())
        }
        Selector::Pci(id) => {
            let dev = host.bus_device(DeviceBus::Pci, id).await?;
            let Some(names) = dev.and_then(|d| d.interfaces) else {
                return Err(Error::not_found(format!("no net directory under pci device {id}")));
            };
            let Some(first) = names.first() else {
                return Err(Error::not_found(format!("failed to find device name for pci address {id}")));
            };
            host.find_link(first).await?.ok_or_else(link_not_found)
        }
        Selector::Aux(id) => {
            let net_dir = format!("/sys/bus/auxiliary/devices/{id}/net");
            let dev = host.bus_device(DeviceBus::Auxiliary, id).await?;
            let Some(names) = dev.and_then(|d| d.interfaces) else {
                return Err(Error::not_found(format!(
                    "failed to read directory {net_dir}: \"open {net_dir}: no such file or directory\""
                )));
            };
            let Some(first) = names.first() else {
                return Err(Error::not_found(format!("failed to find network device in path {net_dir}")));
            };
            host.find_link(first).await?.ok_or_else(link_not_found)
        }
    }
}

/// The host link whose alias is `name` while it is called something else.
async fn by_alias(host: &Net, name: &str) -> Result<Option<Link>> {
    Ok(host.links().await?.into_iter().find(|l| l.alias.as_deref() == Some(name) && l.name != name))
}

/// A name the kernel would accept for an interface (`dev_valid_name`).
fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
}

/// `dev<digits>`: the name the kernel gives a device it moves back to the initial namespace when
/// its own name is taken there.
fn is_fallback_name(name: &str) -> bool {
    name.strip_prefix("dev").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The name to restore on DEL for the host link `link` that ADD is about to move in as `ifname`.
///
/// Normally its name. But when a container's namespace is destroyed without DEL, the kernel
/// moves a physical device back to the initial namespace under its *container* name (or
/// `dev<ifindex>` when that is taken), with the `ifalias` host-device gave it still naming the
/// original. Such a device (alias set to a free, valid interface name different from its own,
/// and a container-style name: `ifname` or `dev<N>`) keeps its original name.
///
/// A `device` selector found by its alias (see [`find`]) means that name.
pub(crate) async fn original_name(host: &Net, link: &Link, selector: &Selector, ifname: &str) -> Result<String> {
    if let Selector::Device(name) = selector {
        return Ok(name.clone());
    }
    if let Some(alias) = returned_alias(link, ifname)
        && host.find_link(alias).await?.is_none()
    {
        return Ok(alias.to_owned());
    }
    Ok(link.name.clone())
}

fn returned_alias<'a>(link: &'a Link, ifname: &str) -> Option<&'a str> {
    let alias = link.alias.as_deref()?;
    let plausible =
        alias != link.name && is_valid_ifname(alias) && (link.name == ifname || is_fallback_name(&link.name));
    plausible.then_some(alias)
}

/// DEL without the device in the container: if the kernel handed it back to this namespace
/// (see [`original_name`]), give it its original name back and clear the alias. Best effort:
/// problems are logged, DEL still succeeds.
pub(crate) async fn restore_returned(host: &Net, loaded: &Loaded, ifname: &str) {
    let found = match &loaded.selector {
        Selector::Device(name) => match host.find_link(name).await {
            Ok(Some(_)) => None,
            Ok(None) => by_alias(host, name).await.ok().flatten(),
            Err(_) => None,
        },
        other => find(host, other).await.ok(),
    };
    let Some(link) = found else { return };
    let Some(original) = returned_alias(&link, ifname).map(str::to_owned) else { return };
    if matches!(host.find_link(&original).await, Ok(Some(_))) {
        cni_sdk::tracing::warn!(device = %link.name, %original, "cannot restore the original name of a returned device: taken");
        return;
    }
    if let Err(e) = host.rename_link(link.index, &original).await {
        cni_sdk::tracing::warn!(device = %link.name, %original, error = %e, "cannot restore the original name of a returned device");
        return;
    }
    if let Err(e) = host.clear_alias(link.index).await {
        cni_sdk::tracing::warn!(device = %original, error = %e, "cannot clear the alias of a returned device");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_like_the_kernel() {
        assert!(is_valid_ifname("ens1f0"));
        for bad in ["", ".", "..", "a b", "uplink to sw3", "a/b", "a:b", "sixteen-chars-xx"] {
            assert!(!is_valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn fallback_names_are_dev_and_digits() {
        for yes in ["dev0", "dev17"] {
            assert!(is_fallback_name(yes), "{yes}");
        }
        for no in ["dev", "devx", "eth0", "dev1a"] {
            assert!(!is_fallback_name(no), "{no}");
        }
    }
}
