//! `macvlan`: the reference CNI macvlan plugin, a drop-in replacement for Go's
//! `plugins/main/macvlan` (same configuration keys, defaults, results and error messages).
//!
//! ADD creates a macvlan on `master` (default: the interface of the host's default route)
//! directly in the container under a temporary name, renames it to `CNI_IFNAME` there, and
//! either configures it from the IPAM plugin's result (layer 3) or just sets it up (layer 2,
//! no `ipam.type`). Anything that fails after the link exists removes it again, and anything
//! after IPAM ADD also runs IPAM DEL.

#[cfg(test)]
mod tests;

use cni_sdk::kit::{self, GoJson, with_undo};
use cni_sdk::net::{Link, LinkKind, MacvlanMode, Net};
use cni_sdk::types::MacAddr;
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, cni_plugin};
use serde::Deserialize;

/// The plugin's own keys (Go `NetConf` of plugins/main/macvlan, v1.1.1 plus the keys added
/// since). Keys match case-insensitively, as in Go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MacvlanConf {
    /// The host interface the macvlan sits on; default: the interface of the first default
    /// route.
    pub master: String,
    /// `bridge` (default), `private`, `vepa` or `passthru`.
    pub mode: String,
    /// MTU, 0 (default) = the master's; at most the master's MTU.
    pub mtu: i64,
    /// MAC address of the macvlan (overridden by `CNI_ARGS` `MAC`, then `runtimeConfig.mac`).
    pub mac: String,
    /// `master` lives in the container's namespace (upstream v1.3.0).
    pub link_in_container: bool,
    /// Broadcast queue length the macvlan asks for, 0 = the kernel's default (upstream v1.6.0).
    pub bcqueuelen: u32,
}

/// The configuration type of the plugin: [`MacvlanConf`] with Go's key matching.
pub type Config = GoJson<MacvlanConf>;

/// The macvlan plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Macvlan;

/// What ADD, CHECK and DEL work with after Go's `loadConf`.
#[derive(Debug)]
struct Loaded {
    /// The namespace `master` lives in (the host's, or the container's with `linkInContainer`).
    lower: Net,
    /// `master`, defaulted.
    master: String,
    /// MTU to ask for.
    mtu: Option<u32>,
    /// The MAC address as given (config, `CNI_ARGS`), parsed when the link is created.
    mac: Option<String>,
    /// `runtimeConfig.mac` (already a valid address).
    runtime_mac: Option<MacAddr>,
}

/// Go `modeFromString`.
fn parse_mode(s: &str) -> Result<MacvlanMode> {
    match s {
        "" | "bridge" => Ok(MacvlanMode::Bridge),
        "private" => Ok(MacvlanMode::Private),
        "vepa" => Ok(MacvlanMode::Vepa),
        "passthru" => Ok(MacvlanMode::Passthru),
        _ => Err(Error::internal(format!("unknown macvlan mode: {s:?}"))),
    }
}

/// Whether Go's `net.ParseMAC` accepts `s` as an 8- or 20-byte (EUI-64, InfiniBand) address:
/// Go passes those to the kernel, which refuses them for a macvlan.
fn is_long_hw_addr(s: &str) -> bool {
    let groups: Vec<&str> = if s.contains('.') {
        s.split('.').collect()
    } else if s.contains(':') {
        s.split(':').collect()
    } else {
        s.split('-').collect()
    };
    let width = if s.contains('.') { 4 } else { 2 };
    let bytes = groups.len() * width / 2;
    (bytes == 8 || bytes == 20) && groups.iter().all(|g| g.len() == width && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Go's `net.ParseMAC` of the configured address, with its error text. `Ok(None)` for an
/// address Go accepts but the kernel refuses (a long hardware address).
fn parse_mac(s: &str) -> Result<Option<MacAddr>> {
    match s.parse::<MacAddr>() {
        Ok(mac) => Ok(Some(mac)),
        Err(_) if is_long_hw_addr(s) => Ok(None),
        Err(_) => Err(Error::internal(format!("invalid args {s} for MAC addr: address {s}: invalid MAC address"))),
    }
}

fn netns_path<C>(cx: &Context<C>) -> String {
    cx.netns().map(|p| p.display().to_string()).unwrap_or_default()
}

async fn container<C>(cx: &Context<C>) -> Result<Net> {
    cx.container_net().await.map_err(|e| kit::go::netns_open_error(cx.netns(), &e))
}

/// Go `loadConf`: the master (defaulted, must exist), the MTU range, `CNI_ARGS` and the MAC
/// precedence.
async fn load(cx: &Context<Config>) -> Result<Loaded> {
    let n = cx.plugin_config();
    let lower = if n.link_in_container { container(cx).await? } else { cx.host_net().await? };
    let master = if n.master.is_empty() { kit::default_route_interface(&lower).await? } else { n.master.clone() };
    let m = kit::lookup_link(&lower, &master).await?;
    if n.mtu < 0 || n.mtu > i64::from(m.mtu) {
        return Err(Error::internal(format!("invalid MTU {}, must be [0, master MTU({})]", n.mtu, m.mtu)));
    }
    let mut mac = (!n.mac.is_empty()).then(|| n.mac.clone());
    if !cx.args().is_empty() {
        cx.args().check_known(&["MAC"]).map_err(|e| Error::internal(e.to_string()))?;
        if let Some(m) = cx.args().get("MAC").filter(|m| !m.is_empty()) {
            mac = Some(m.to_owned());
        }
    }
    let runtime_mac = cx.runtime_config().and_then(|r| r.mac);
    let mtu = u32::try_from(n.mtu).ok().filter(|m| *m > 0);
    Ok(Loaded { lower, master, mtu, mac, runtime_mac })
}

impl Macvlan {
    /// Go `createMacvlan`: the link, in the container, named `CNI_IFNAME`.
    async fn create(cx: &Context<Config>, ld: &Loaded, ctr: &Net) -> Result<Link> {
        let n = cx.plugin_config();
        let mode = parse_mode(&n.mode)?;
        let master = kit::lookup_link(&ld.lower, &ld.master)
            .await
            .map_err(|e| e.wrap(format_args!("failed to lookup master {:?}", ld.master)))?;
        // The runtime's MAC wins; a configured one is parsed only without it.
        let mac = match (ld.runtime_mac, ld.mac.as_deref()) {
            (Some(mac), _) => Some(mac),
            (None, Some(s)) => match parse_mac(s)? {
                Some(mac) => Some(mac),
                // Go hands a long hardware address to the kernel, which refuses it.
                None => return Err(Error::internal("failed to create macvlan: invalid argument")),
            },
            (None, None) => None,
        };
        kit::create_in_container(ctr, "macvlan", cx.ifname(), |tmp| async move {
            let mut req = ld.lower.macvlan(&tmp, master.index).mode(mode).netns(ctr);
            if let Some(mtu) = ld.mtu {
                req = req.mtu(mtu);
            }
            if let Some(mac) = mac {
                req = req.mac(mac);
            }
            if n.bcqueuelen > 0 {
                req = req.bc_queue_len(n.bcqueuelen);
            }
            req.execute().await
        })
        .await
    }

    /// Everything after the link exists; the caller's undo stack removes what this did when
    /// it fails.
    async fn configure<'a>(
        cx: &'a Context<Config>,
        ctr: &'a Net,
        link: &Link,
        undo: &mut kit::Undo<'a>,
    ) -> Result<CniResult> {
        let ifname = cx.ifname();
        let mut result = CniResult {
            interfaces: vec![Interface { sandbox: Some(netns_path(cx)), ..Interface::from(link) }],
            ..CniResult::default()
        };
        if kit::has_ipam(cx) {
            let ipam = kit::ipam_add(cx).await?;
            undo.push("IPAM DEL", kit::ipam_del(cx));
            if ipam.ips.is_empty() {
                return Err(Error::internal("IPAM plugin returned missing IP config"));
            }
            result.ips = ipam.ips;
            result.routes = ipam.routes;
            for ipc in &mut result.ips {
                ipc.interface = Some(0);
            }
            // Announce the new address to neighbours (errors ignored, as in Go).
            let _ = ctr.set_sysctl(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1").await;
            let _ = ctr.set_sysctl(&format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1").await;
            kit::configure_iface(ctr, ifname, &result).await?;
        } else {
            ctr.set_up(link.index).await.map_err(|e| kit::go::wrap_net(format!("failed to set {ifname:?} UP"), &e))?;
        }
        result.dns = cx.config().dns.clone().unwrap_or_default();
        // Go prints the result only after everything is in place, and a layer-2 result cannot
        // be printed in 0.1.0/0.2.0 (no IP): fail while the undo stack can still clean up.
        result.to_value(cx.version()).map_err(|e| Error::internal(e.to_string()))?;
        Ok(result)
    }
}

#[cni_plugin(about = "CNI macvlan plugin (cni-rs)", main = false)]
impl Plugin for Macvlan {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let ld = load(cx).await?;
        let ctr = container(cx).await?;
        let link = Self::create(cx, &ld, &ctr).await?;
        with_undo(async |undo| {
            undo.push("delete the macvlan", ctr.delete_link(link.index));
            Self::configure(cx, &ctr, &link, undo).await
        })
        .await
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        // Only the JSON is needed (upstream v1.4.0, #954): a master that is gone must not make
        // DEL fail.
        if kit::has_ipam(cx) {
            kit::ipam_del(cx).await?;
        }
        if cx.netns().is_none() {
            return Ok(());
        }
        // A namespace that is already gone, or a link that is, is success.
        if let Some(ctr) = cx.container_net_if_exists().await? {
            kit::delete_link_by_name(&ctr, cx.ifname()).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let ld = load(cx).await?;
        let n = cx.plugin_config();
        let ctr = container(cx).await?;
        if kit::has_ipam(cx) {
            kit::ipam_check(cx).await?;
        }
        let result = cx.prev_result().ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let netns = netns_path(cx);
        let intf = result
            .interfaces
            .iter()
            .find(|i| i.name == cx.ifname() && i.sandbox.as_deref() == Some(netns.as_str()))
            .ok_or_else(|| {
                Error::internal(format!("Sandbox in prevResult  doesn't match configured netns: {netns}"))
            })?;
        kit::lookup_link(&ld.lower, &ld.master)
            .await
            .map_err(|e| e.wrap(format_args!("failed to lookup master {:?}", ld.master)))?;

        // Go `validateCniContainerInterface`.
        let link = ctr.find_link(&intf.name).await?.ok_or_else(|| {
            Error::internal(format!("Container Interface name in prevResult: {} not found", intf.name))
        })?;
        if link.kind != LinkKind::Macvlan {
            return Err(Error::internal(format!("Error: Container interface {} not of type macvlan", link.name)));
        }
        let expected = parse_mode(&n.mode)?;
        if let Some(mode) = link.macvlan_mode()
            && mode != expected
        {
            return Err(Error::internal(format!(
                "Container macvlan mode {mode} does not match expected value: {expected}"
            )));
        }
        if let Some(mac) = intf.mac.as_ref().and_then(|m| m.as_mac())
            && mac != link.mac
        {
            return Err(Error::internal(format!(
                "Interface {} Mac {mac} doesn't match container Mac: {}",
                intf.name, link.mac
            )));
        }
        kit::validate_expected_ips(&ctr, cx.ifname(), &result.ips).await?;
        kit::validate_expected_routes(&ctr, &result.routes).await?;
        Ok(())
    }

    async fn status(&self, cx: &Context<Config>) -> Result<()> {
        // Upstream v1.6.0: IPAM's STATUS when there is an IPAM plugin, else ready.
        if kit::has_ipam(cx) {
            kit::ipam_status(cx).await?;
        }
        Ok(())
    }
}
