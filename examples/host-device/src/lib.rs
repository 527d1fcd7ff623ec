//! `host-device`: the reference CNI host-device plugin, a drop-in replacement for Go's
//! `plugins/main/host-device` (same configuration keys, results, error messages and kernel
//! effects; Go's `ifalias` convention, so either implementation can undo the other's ADD).
//!
//! ADD moves an existing host interface, chosen by `device`, `hwaddr`, `kernelpath`, `pciBusID`
//! or `runtimeConfig.deviceID`, into the container's namespace, renamed to `CNI_IFNAME` in the
//! same request, with its original name saved in its `ifalias`; sets it up and, with an IPAM
//! plugin, gives it addresses and routes. A PCI device bound to a DPDK driver is not moved.
//! Anything that fails after the move moves it back (name, alias and up state restored), and
//! anything after IPAM ADD also runs IPAM DEL.
//!
//! DEL moves the device back under its original name, alias cleared and left down (as Go
//! v1.6+). It is idempotent: without a namespace, with a namespace that is gone or without the
//! device it succeeds. When a container's namespace dies without DEL, the kernel moves a
//! physical device back to the initial namespace under its container name (or `dev<ifindex>`);
//! DEL then restores its original name, and an ADD that selects it still finds it.

#![warn(missing_docs)]

mod select;
#[cfg(test)]
mod tests;

use cni_sdk::kit::{self, go, with_undo};
use cni_sdk::net::{Link, Net, NetErrorKind};
use cni_sdk::{CniResult, Context, Error, ErrorCode, Interface, Plugin, Result, cni_plugin};
use serde::Deserialize;

use select::{Loaded, find, load, original_name, restore_returned};

/// The plugin's own keys (Go `NetConf` of plugins/main/host-device). The first key set selects
/// the device, in this order.
#[derive(Debug, Default, Deserialize)]
pub struct HostDeviceConf {
    /// The host interface's name.
    #[serde(default)]
    pub device: Option<String>,
    /// The host interface's hardware address.
    #[serde(default)]
    pub hwaddr: Option<String>,
    /// The device's directory below `/sys/devices/`; its first network interface.
    #[serde(default)]
    pub kernelpath: Option<String>,
    /// The PCI address (`0000:03:00.1`); its first network interface. `runtimeConfig.deviceID`
    /// overrides it.
    #[serde(default, rename = "pciBusID")]
    pub pci_bus_id: Option<String>,
}

/// The host-device plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostDevice;

fn ipam_type(cx: &Context<HostDeviceConf>) -> Option<&str> {
    cx.config().ipam.as_ref().map(|i| i.plugin_type.as_str()).filter(|t| !t.is_empty())
}

fn sandbox(cx: &Context<HostDeviceConf>) -> String {
    cx.netns().map(|p| p.display().to_string()).unwrap_or_default()
}

/// What ADD changed on the device, to put it back.
#[derive(Debug, Clone)]
struct Moved {
    /// Its index in the container.
    index: u32,
    /// The name to give it back.
    original: String,
    /// The alias to give it back (`None`: clear).
    alias: Option<String>,
    /// Whether it was up in the host.
    was_up: bool,
}

/// Go's `moveLinkIn` errors are printed as `failed to move link <err>` (no colon).
fn move_in_failed(e: Error) -> Error {
    Error::from_kind(e.kind(), format!("failed to move link {}", e.message())).with_code(e.code())
}

/// Moves `dev` from `host` into `ctr` as `ifname` (one request: moved and renamed there), its
/// original name in its alias, and sets it up. On failure the device is back as it was.
async fn move_in(host: &Net, ctr: &Net, dev: &Link, original: &str, ifname: &str) -> Result<(Link, Moved)> {
    let alias = if original == dev.name { dev.alias.clone() } else { None };
    let mut moved = Moved { index: 0, original: original.to_owned(), alias, was_up: dev.up };
    host.set_alias(dev.index, original)
        .await
        .map_err(|e| go::wrap_net(format!("failed to set alias to {original:?}"), &e))?;
    let in_ctr = match host.move_link_renamed(dev.index, ctr, ifname).await {
        Ok(l) => l,
        Err(e) => {
            restore_alias(host, dev.index, moved.alias.as_deref()).await;
            if moved.was_up {
                let _ = host.set_up(dev.index).await;
            }
            return Err(if e.kind() == NetErrorKind::Exists {
                go::wrap_net(format!("failed to rename device {original:?} to {ifname:?}"), &e)
            } else {
                Error::from_kind(e.kind().into(), go::errno_text(&e)).with_code(ErrorCode::Internal)
            });
        }
    };
    moved.index = in_ctr.index;
    let up = async {
        ctr.set_up(in_ctr.index).await.map_err(|e| go::wrap_net(format!("failed to set {ifname:?} up"), &e))?;
        ctr.link_by_index(in_ctr.index).await.map_err(|e| go::wrap_net(format!("failed to find {ifname:?}"), &e))
    };
    match up.await {
        Ok(link) => Ok((link, moved)),
        Err(e) => {
            let _ = move_back(ctr, host, &moved).await;
            Err(e)
        }
    }
}

async fn restore_alias(net: &Net, index: u32, alias: Option<&str>) {
    let _ = match alias {
        Some(a) => net.set_alias(index, a).await,
        None => net.clear_alias(index).await,
    };
}

/// Undoes [`move_in`]: back to the host under the original name, alias and up state restored.
async fn move_back(ctr: &Net, host: &Net, moved: &Moved) -> Result<()> {
    ctr.set_down(moved.index).await?;
    let back = ctr.move_link_renamed(moved.index, host, &moved.original).await?;
    restore_alias(host, back.index, moved.alias.as_deref()).await;
    if moved.was_up {
        host.set_up(back.index).await?;
    }
    Ok(())
}

/// Go `moveLinkOut` (v1.6 semantics): the device back to `host` under the name in its alias,
/// alias cleared, left down. On failure it stays in the container as it was.
async fn move_out(ctr: &Net, host: &Net, dev: &Link, ifname: &str) -> Result<()> {
    let Some(original) = dev.alias.clone().filter(|a| !a.is_empty()) else {
        return Err(Error::internal(format!("failed to find original ifname for {ifname:?} (alias is not set)")));
    };
    ctr.set_down(dev.index).await.map_err(|e| go::wrap_net(format!("failed to set {ifname:?} down"), &e))?;
    let undo_down = async {
        if dev.up {
            let _ = ctr.set_up(dev.index).await;
        }
    };
    if let Err(e) = ctr.clear_alias(dev.index).await {
        undo_down.await;
        return Err(go::wrap_net(format!("failed to unset alias of {original:?}"), &e));
    }
    if let Err(e) = ctr.move_link_renamed(dev.index, host, &original).await {
        let _ = ctr.set_alias(dev.index, &original).await;
        undo_down.await;
        return Err(go::wrap_net(format!("failed to move {original:?} to host netns"), &e));
    }
    Ok(())
}

impl HostDevice {
    async fn add_in(&self, cx: &Context<HostDeviceConf>, host: &Net, loaded: &Loaded) -> Result<CniResult> {
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        let ifname = cx.ifname();
        with_undo(async |undo| {
            let mut interface = Interface { sandbox: Some(sandbox(cx)), ..Interface::new(ifname) };
            if !loaded.dpdk {
                let dev = find(host, &loaded.selector).await.map_err(|e| e.wrap("failed to find host device"))?;
                let original = original_name(host, &dev, &loaded.selector, ifname).await?;
                let (link, moved) = move_in(host, &ctr, &dev, &original, ifname).await.map_err(move_in_failed)?;
                let (ctr2, host2) = (ctr.clone(), host.clone());
                undo.push(format!("move {original:?} back to the host"), async move {
                    move_back(&ctr2, &host2, &moved).await
                });
                interface = Interface { sandbox: Some(sandbox(cx)), ..Interface::from(&link) };
            }
            let printable = |result: CniResult| {
                // A result the configuration's version cannot express (no IP address in
                // 0.1.0/0.2.0) fails here, while everything can still be undone; Go fails
                // later and leaves the device in the container.
                result.to_value(cx.version()).map_err(|e| Error::internal(e.to_string()))?;
                Ok::<_, Error>(result)
            };
            let Some(t) = ipam_type(cx) else {
                return printable(CniResult { interfaces: vec![interface], ..CniResult::default() });
            };
            cx.delegate(t)
                .add_with_rollback(|mut result| async {
                    if result.ips.is_empty() {
                        return Err(Error::internal("IPAM plugin returned missing IP config"));
                    }
                    for ipc in &mut result.ips {
                        ipc.interface = Some(0);
                    }
                    result.interfaces = vec![interface];
                    if !loaded.dpdk {
                        kit::configure_iface(&ctr, ifname, &result).await?;
                    }
                    result.dns = cx.config().dns.clone().unwrap_or_default();
                    printable(result)
                })
                .await
        })
        .await
    }
}

#[cni_plugin(about = "CNI host-device plugin (cni-rs)", main = false)]
impl Plugin for HostDevice {
    type Config = HostDeviceConf;

    async fn add(&self, cx: &Context<HostDeviceConf>) -> Result<CniResult> {
        let host = cx.host_net().await?;
        let loaded = load(cx, &host, true).await?;
        self.add_in(cx, &host, &loaded).await
    }

    async fn del(&self, cx: &Context<HostDeviceConf>) -> Result<()> {
        let host = cx.host_net().await?;
        let loaded = load(cx, &host, false).await?;
        if let Some(t) = ipam_type(cx) {
            cx.delegate(t).del().await?;
        }
        if loaded.dpdk {
            return Ok(());
        }
        let ifname = cx.ifname();
        let dev = match cx.container_net_if_exists().await? {
            Some(ctr) => ctr.find_link(ifname).await?.map(|l| (ctr, l)),
            None => None,
        };
        match dev {
            Some((ctr, dev)) => move_out(&ctr, &host, &dev, ifname).await,
            None => {
                restore_returned(&host, &loaded, ifname).await;
                Ok(())
            }
        }
    }

    async fn check(&self, cx: &Context<HostDeviceConf>) -> Result<()> {
        let host = cx.host_net().await?;
        let loaded = load(cx, &host, true).await?;
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        if let Some(t) = ipam_type(cx) {
            cx.delegate(t).check().await?;
        }
        let result = cx.prev_result().ok_or_else(|| Error::internal("Required prevResult missing"))?;
        if loaded.dpdk {
            return Ok(());
        }
        let netns = sandbox(cx);
        // Go does not check the link's type here.
        kit::validate_expected_interface(&ctr, result, cx.ifname(), &netns, "host-device", |_| true).await?;
        kit::validate_expected_ips(&ctr, cx.ifname(), &result.ips).await?;
        kit::validate_expected_routes(&ctr, &result.routes).await
    }

    async fn status(&self, cx: &Context<HostDeviceConf>) -> Result<()> {
        match ipam_type(cx) {
            Some(t) => cx.delegate(t).status().await,
            None => Ok(()),
        }
    }
}
