//! `tap`: the reference CNI tap plugin, a drop-in replacement for Go's `plugins/main/tap`
//! (v1.3.0 and later, with v1.4.0's `bridge`): same configuration keys, results and error
//! messages.
//!
//! ADD creates a persistent tap device inside the container's namespace under a temporary
//! name, renames it to `CNI_IFNAME`, optionally attaches it to a bridge of the container, sets it
//! up and, with an IPAM plugin, gives it addresses and routes. Anything that fails after the tap
//! exists deletes it again, and anything after IPAM ADD also runs IPAM DEL.
//!
//! The device is made like Go makes it, so the kernel state is the same:
//!
//! * `selinuxContext` set: iproute2's `ip tuntap add` spawned with that SELinux exec label
//!   ([`Iproute2`]);
//! * otherwise directly (`/dev/net/tun` ioctls). When `owner` or `group` is missing, with the
//!   flags `ip tuntap add` uses (no `vnet_hdr`, no packet information); with both, with the flags
//!   Go's netlink library uses (`vnet_hdr`, and packet information unless multi-queue).

#![warn(missing_docs)]

mod iproute2;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use cni_sdk::kit::{self, go, with_undo};
use cni_sdk::net::{Link, Net, TunMode, random_link_name};
use cni_sdk::types::{HardwareAddr, MacAddr};
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, cni_plugin};
use serde::Deserialize;

use iproute2::DynTapTool;
pub use iproute2::{IpTuntap, Iproute2, TapTool};

/// The plugin's own keys (Go `NetConf` of plugins/main/tap).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TapConf {
    /// Create a multi-queue tap (`IFF_MULTI_QUEUE`).
    #[serde(default)]
    pub multi_queue: bool,
    /// MTU of the tap; 0 = kernel default (1500).
    #[serde(default)]
    pub mtu: i64,
    /// MAC address (overridden by `CNI_ARGS` `MAC`, then `runtimeConfig.mac`).
    #[serde(default)]
    pub mac: Option<String>,
    /// The only user allowed to attach to the tap.
    #[serde(default)]
    pub owner: Option<u32>,
    /// The only group allowed to attach to the tap.
    #[serde(default)]
    pub group: Option<u32>,
    /// SELinux label the tap is created with (through iproute2).
    #[serde(default)]
    pub selinux_context: Option<String>,
    /// A bridge in the container's namespace to attach the tap to.
    #[serde(default)]
    pub bridge: Option<String>,
}

/// The tap plugin. Holds the tool for the `selinuxContext` path (replaced by a model in tests).
#[derive(Debug)]
pub struct Tap {
    tool: Arc<dyn DynTapTool>,
}

impl Default for Tap {
    fn default() -> Self {
        Self::new()
    }
}

impl Tap {
    /// The plugin with the real tool ([`Iproute2`]).
    pub fn new() -> Self {
        Self::with_tool(Iproute2)
    }

    /// The plugin with another tool for the `selinuxContext` path.
    pub fn with_tool(tool: impl TapTool + 'static) -> Self {
        Self { tool: Arc::new(tool) }
    }
}

/// What one request asks for, checked.
#[derive(Debug)]
struct Wanted {
    mac: Option<MacAddr>,
    mtu: Option<u32>,
}

/// Go's `net.ParseMAC` failure as the tap plugin reports it.
fn invalid_mac(s: &str) -> Error {
    Error::internal(format!("invalid args {s} for MAC addr: address {s}: invalid MAC address"))
}

fn parse_mac(s: &str) -> Result<MacAddr> {
    s.parse::<HardwareAddr>().ok().and_then(|h| h.as_mac()).ok_or_else(|| invalid_mac(s))
}

/// Go `loadConf`: `CNI_ARGS` (only `MAC`, strictly), then the MAC precedence
/// `mac` < `CNI_ARGS MAC` < `runtimeConfig.mac`; the MTU range.
fn load(cx: &Context<TapConf>) -> Result<Wanted> {
    let n = cx.plugin_config();
    cx.args().check_known(&["MAC"]).map_err(|e| Error::internal(e.to_string()))?;
    let mut mac = n.mac.as_deref().filter(|m| !m.is_empty());
    if let Some(m) = cx.args().get("MAC").filter(|m| !m.is_empty()) {
        mac = Some(m);
    }
    let mut mac = mac.map(parse_mac).transpose()?;
    if let Some(m) = cx.runtime_config().and_then(|r| r.mac) {
        mac = Some(m);
    }
    let mtu = match n.mtu {
        0 => None,
        m => Some(u32::try_from(m).map_err(|_| Error::internal(format!("invalid MTU {m}")))?),
    };
    Ok(Wanted { mac, mtu })
}

fn ipam_type(cx: &Context<TapConf>) -> Option<&str> {
    cx.config().ipam.as_ref().map(|i| i.plugin_type.as_str()).filter(|t| !t.is_empty())
}

fn sandbox(cx: &Context<TapConf>) -> String {
    cx.netns().map(|p| p.display().to_string()).unwrap_or_default()
}

impl Tap {
    /// Creates the tap under `name` in `ctr`, the way Go does for this configuration.
    async fn create(&self, ctr: &Net, name: &str, n: &TapConf, want: &Wanted) -> Result<Link> {
        if let Some(label) = n.selinux_context.as_deref().filter(|l| !l.is_empty()) {
            let req = IpTuntap {
                label: Some(label.to_owned()),
                name: name.to_owned(),
                multi_queue: n.multi_queue,
                owner: n.owner,
                group: n.group,
                mtu: want.mtu,
                mac: want.mac,
            };
            self.tool.create_boxed(ctr, &req).await?;
            return ctr.link(name).await.map_err(|e| go::wrap_net(format!("failed to refetch tap {name:?}"), &e));
        }
        // Go's netlink path when both owner and group are set, iproute2's flags otherwise.
        let netlink_flags = n.owner.is_some() && n.group.is_some();
        let mut req = ctr
            .tuntap(name, TunMode::Tap)
            .multi_queue(n.multi_queue)
            .vnet_hdr(netlink_flags)
            .packet_info(netlink_flags && !n.multi_queue);
        if let Some(uid) = n.owner {
            req = req.owner(uid);
        }
        if let Some(gid) = n.group {
            req = req.group(gid);
        }
        if let Some(mtu) = want.mtu {
            req = req.mtu(mtu);
        }
        if let Some(mac) = want.mac {
            req = req.mac(mac);
        }
        req.execute().await.map_err(|e| go::wrap_net("failed to create tap", &e))
    }

    async fn add_in(&self, cx: &Context<TapConf>, want: Wanted) -> Result<CniResult> {
        let n = cx.plugin_config();
        let ifname = cx.ifname();
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        with_undo(async |undo| {
            let tmp = random_link_name();
            let created = self.create(&ctr, &tmp, n, &want).await?;
            let index = created.index;
            undo.push(format!("delete the tap {ifname:?}"), ctr.delete_link(index));
            ctr.rename_link(index, ifname)
                .await
                .map_err(|e| go::wrap_net(format!("failed to rename tap to {ifname:?}"), &e))?;
            let link = ctr
                .link_by_index(index)
                .await
                .map_err(|e| go::wrap_net(format!("failed to refetch tap {ifname:?}"), &e))?;
            if let Some(br) = n.bridge.as_deref().filter(|b| !b.is_empty()) {
                let bridge = ctr
                    .find_link(br)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("failed to get bridge {br}: Link not found")))?;
                ctr.set_master(index, bridge.index)
                    .await
                    .map_err(|e| go::wrap_net(format!("failed to set tap {ifname} as a port of bridge {br}"), &e))?;
            }
            ctr.set_up(index).await.map_err(|e| go::wrap_net("failed to set tap interface up", &e))?;
            let tap = Interface { sandbox: Some(sandbox(cx)), ..Interface::from(&link) };
            let mut result = match ipam_type(cx) {
                None => CniResult { interfaces: vec![tap], ..CniResult::default() },
                Some(t) => {
                    cx.delegate(t)
                        .add_with_rollback(|mut result| async {
                            if result.ips.is_empty() {
                                return Err(Error::internal("IPAM plugin returned missing IP config"));
                            }
                            for ipc in &mut result.ips {
                                ipc.interface = Some(0);
                            }
                            result.interfaces = vec![tap];
                            let _ = ctr.set_sysctl(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1").await;
                            kit::configure_iface(&ctr, ifname, &result).await?;
                            Ok(result)
                        })
                        .await?
                }
            };
            result.dns = cx.config().dns.clone().unwrap_or_default();
            // A layer-2 result cannot be printed as 0.1.0/0.2.0 (Go fails there too, after
            // leaving the tap behind): fail while the tap can still be removed.
            result.to_value(cx.version()).map_err(|e| Error::internal(e.to_string()))?;
            Ok(result)
        })
        .await
    }
}

#[cni_plugin(about = "CNI tap plugin (cni-rs)", init = Tap::new, main = false)]
impl Plugin for Tap {
    type Config = TapConf;

    async fn add(&self, cx: &Context<TapConf>) -> Result<CniResult> {
        let want = load(cx)?;
        self.add_in(cx, want).await
    }

    async fn del(&self, cx: &Context<TapConf>) -> Result<()> {
        // Unlike Go, CNI_ARGS and the MAC are not re-validated: DEL must always be able to clean up.
        if let Some(t) = ipam_type(cx) {
            cx.delegate(t).del().await?;
        }
        let Some(ctr) = cx.container_net_if_exists().await? else { return Ok(()) };
        kit::delete_link_by_name(&ctr, cx.ifname()).await?;
        Ok(())
    }

    async fn check(&self, cx: &Context<TapConf>) -> Result<()> {
        // Go's CHECK loads CNI_ARGS (strictly) but never parses the MAC.
        cx.args().check_known(&["MAC"]).map_err(|e| Error::internal(e.to_string()))?;
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        if let Some(t) = ipam_type(cx) {
            cx.delegate(t).check().await?;
        }
        let result = cx.prev_result().ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let netns = sandbox(cx);
        // Go checks only the sandbox, addresses and routes; the link itself (that it exists, is
        // a tap and has the recorded MAC) is checked too.
        kit::validate_expected_interface(&ctr, result, cx.ifname(), &netns, "tap", |l| {
            l.tun().is_some_and(|t| t.mode == TunMode::Tap)
        })
        .await?;
        kit::validate_expected_ips(&ctr, cx.ifname(), &result.ips).await?;
        kit::validate_expected_routes(&ctr, &result.routes).await
    }

    async fn status(&self, cx: &Context<TapConf>) -> Result<()> {
        match ipam_type(cx) {
            Some(t) => cx.delegate(t).status().await,
            None => Ok(()),
        }
    }
}
