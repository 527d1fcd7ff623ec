//! `ipvlan`: the reference CNI ipvlan plugin, a drop-in replacement for Go's
//! `plugins/main/ipvlan` (same configuration keys, defaults, results and error messages).
//!
//! ADD creates an ipvlan on `master` directly in the container under a temporary name and
//! renames it to `CNI_IFNAME` there, then configures it from the IPAM plugin's result or, in a
//! chain without `ipam`, from the previous plugin's IPs. `master` defaults to the previous
//! result's only interface in a chain, else to the interface of the host's default route.
//! Anything that fails after the link exists removes it again (Go leaves it), and anything
//! after IPAM ADD also runs IPAM DEL.

#[cfg(test)]
mod tests;

use cni_sdk::kit::{self, GoJson, with_undo};
use cni_sdk::net::{IpvlanMode, Link, LinkKind, Net};
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, cni_plugin};
use serde::Deserialize;

/// The plugin's own keys (Go `NetConf` of plugins/main/ipvlan, v1.1.1 plus `linkInContainer`).
/// Keys match case-insensitively, as in Go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IpvlanConf {
    /// The interface the ipvlan sits on; default: the previous result's only interface in a
    /// chain, else the interface of the first default route.
    pub master: String,
    /// `l2` (default), `l3` or `l3s`.
    pub mode: String,
    /// MTU, 0 (default) = the master's (the kernel refuses more than the master's).
    pub mtu: i64,
    /// `master` lives in the container's namespace (upstream v1.3.0).
    pub link_in_container: bool,
}

/// The configuration type of the plugin: [`IpvlanConf`] with Go's key matching.
pub type Config = GoJson<IpvlanConf>;

/// The ipvlan plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ipvlan;

/// Go `modeFromString`.
fn parse_mode(s: &str) -> Result<IpvlanMode> {
    match s {
        "" | "l2" => Ok(IpvlanMode::L2),
        "l3" => Ok(IpvlanMode::L3),
        "l3s" => Ok(IpvlanMode::L3s),
        _ => Err(Error::internal(format!("unknown ipvlan mode: {s:?}"))),
    }
}

fn netns_path<C>(cx: &Context<C>) -> String {
    cx.netns().map(|p| p.display().to_string()).unwrap_or_default()
}

async fn container<C>(cx: &Context<C>) -> Result<Net> {
    cx.container_net().await.map_err(|e| kit::go::netns_open_error(cx.netns(), &e))
}

/// The namespace `master` lives in.
async fn lower(cx: &Context<Config>) -> Result<Net> {
    if cx.plugin_config().link_in_container { container(cx).await } else { cx.host_net().await }
}

/// Go `loadConf` (ADD): `master`, defaulted to the previous result's only named interface in a
/// chain, else to the default-route interface of `lower`.
async fn master(cx: &Context<Config>, lower: &Net) -> Result<String> {
    let n = cx.plugin_config();
    if !n.master.is_empty() {
        return Ok(n.master.clone());
    }
    match cx.prev_result() {
        Some(prev) => match prev.interfaces.as_slice() {
            [only] if !only.name.is_empty() => Ok(only.name.clone()),
            _ => Err(Error::internal("chained master failure. PrevResult lacks a single named interface")),
        },
        None => kit::default_route_interface(lower).await,
    }
}

impl Ipvlan {
    /// Go `createIpvlan`: the link, in the container, named `CNI_IFNAME`.
    async fn create(cx: &Context<Config>, lower: &Net, master: &str, ctr: &Net) -> Result<Link> {
        let n = cx.plugin_config();
        let mode = parse_mode(&n.mode)?;
        let m = kit::lookup_link(lower, master)
            .await
            .map_err(|e| e.wrap(format_args!("failed to lookup master {master:?}")))?;
        let mtu = u32::try_from(n.mtu).ok().filter(|m| *m > 0);
        kit::create_in_container(ctr, "ipvlan", cx.ifname(), |tmp| async move {
            let mut req = lower.ipvlan(&tmp, m.index).mode(mode).netns(ctr);
            if let Some(mtu) = mtu {
                req = req.mtu(mtu);
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
        // In a chain without IPAM, the previous plugin's IPs are configured here.
        let chained = cx.prev_result().filter(|p| !kit::has_ipam(cx) && !p.ips.is_empty());
        let mut result = match chained {
            Some(prev) => prev.clone(),
            None => {
                let r = kit::ipam_add(cx).await?;
                undo.push("IPAM DEL", kit::ipam_del(cx));
                if r.ips.is_empty() {
                    return Err(Error::internal("IPAM plugin returned missing IP config"));
                }
                r
            }
        };
        for ipc in &mut result.ips {
            ipc.interface = Some(0);
        }
        result.interfaces = vec![Interface { sandbox: Some(netns_path(cx)), ..Interface::from(link) }];
        // Announce the new address to neighbours (errors ignored, as in Go).
        let _ = ctr.set_sysctl(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1").await;
        let _ = ctr.set_sysctl(&format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1").await;
        kit::configure_iface(ctr, ifname, &result).await?;
        result.dns = cx.config().dns.clone().unwrap_or_default();
        result.to_value(cx.version()).map_err(|e| Error::internal(e.to_string()))?;
        Ok(result)
    }
}

#[cni_plugin(about = "CNI ipvlan plugin (cni-rs)", main = false)]
impl Plugin for Ipvlan {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let lower = lower(cx).await?;
        let master = master(cx, &lower).await?;
        let ctr = container(cx).await?;
        let link = Self::create(cx, &lower, &master, &ctr).await?;
        with_undo(async |undo| {
            undo.push("delete the ipvlan", ctr.delete_link(link.index));
            Self::configure(cx, &ctr, &link, undo).await
        })
        .await
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        // Go loads (and defaults) the master here, so DEL fails on a host without a default
        // route; nothing here needs it. In a chain the IPAM section may be empty.
        if kit::has_ipam(cx) {
            kit::ipam_del(cx).await?;
        }
        if cx.netns().is_none() {
            return Ok(());
        }
        if let Some(ctr) = cx.container_net_if_exists().await? {
            kit::delete_link_by_name(&ctr, cx.ifname()).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
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
        // Go looks up the configured master without defaulting it, so CHECK of a configuration
        // without `master` always fails there (go-plugins-notes B25). CHECK's prevResult is this
        // plugin's own result, so the chained default cannot be recovered: only a configured
        // master is checked.
        if !n.master.is_empty() {
            let lower = if n.link_in_container { ctr.clone() } else { cx.host_net().await? };
            kit::lookup_link(&lower, &n.master)
                .await
                .map_err(|e| e.wrap(format_args!("failed to lookup master {:?}", n.master)))?;
        }

        // Go `validateCniContainerInterface`.
        let link = ctr.find_link(&intf.name).await?.ok_or_else(|| {
            Error::internal(format!("Container Interface name in prevResult: {} not found", intf.name))
        })?;
        if link.kind != LinkKind::Ipvlan {
            return Err(Error::internal(format!("Error: Container interface {} not of type ipvlan", link.name)));
        }
        let expected = parse_mode(&n.mode)?;
        if let cni_sdk::net::KindInfo::Ipvlan { mode, .. } = link.info
            && mode != expected
        {
            return Err(Error::internal(format!(
                "Container IPVlan mode {mode} does not match expected value: {expected}"
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
