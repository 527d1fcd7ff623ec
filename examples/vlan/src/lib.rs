//! `vlan`: the reference CNI vlan plugin, a drop-in replacement for Go's `plugins/main/vlan`
//! (same configuration keys, defaults, results and error messages).
//!
//! ADD creates an 802.1Q VLAN device with id `vlanId` on `master` directly in the container
//! under a temporary name, renames it to `CNI_IFNAME` there and configures it from the IPAM
//! plugin's result. Anything that fails after the link exists removes it again (Go leaves it),
//! and anything after IPAM ADD also runs IPAM DEL.

#[cfg(test)]
mod tests;

use cni_sdk::kit::{self, GoJson, with_undo};
use cni_sdk::net::{Link, LinkKind, Net};
use cni_sdk::{CniResult, Context, Error, ErrorCode, Interface, Plugin, Result, cni_plugin};
use serde::Deserialize;

/// The plugin's own keys (Go `NetConf` of plugins/main/vlan, v1.1.1 plus `linkInContainer`).
/// Keys match case-insensitively, as in Go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VlanConf {
    /// The interface to create the VLAN on (required).
    pub master: String,
    /// The VLAN id, 0 … 4094 (default 0).
    pub vlan_id: i64,
    /// MTU, 0 (default) = the master's; at most the master's MTU.
    pub mtu: i64,
    /// `master` lives in the container's namespace (upstream v1.3.0).
    pub link_in_container: bool,
}

/// The configuration type of the plugin: [`VlanConf`] with Go's key matching.
pub type Config = GoJson<VlanConf>;

/// The vlan plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vlan;

/// What ADD works with after Go's `loadConf`.
#[derive(Debug)]
struct Loaded {
    /// The namespace `master` lives in.
    lower: Net,
    /// The VLAN id (range-checked).
    id: u16,
    /// MTU to ask for.
    mtu: Option<u32>,
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

/// Go `loadConf`: `master` is required and must exist, the VLAN id and the MTU are range-checked.
async fn load(cx: &Context<Config>) -> Result<Loaded> {
    let n = cx.plugin_config();
    if n.master.is_empty() {
        return Err(Error::internal(
            "\"master\" field is required. It specifies the host interface name to create the VLAN for.",
        ));
    }
    // Go's text says "between 0 and 4095" while refusing 4095 (go-plugins-notes B31).
    let id = u16::try_from(n.vlan_id).ok().filter(|id| *id <= 4094).ok_or_else(|| {
        Error::internal(format!("invalid VLAN ID {} (must be between 0 and 4094 inclusive)", n.vlan_id))
    })?;
    let lower = lower(cx).await?;
    let m = kit::lookup_link(&lower, &n.master).await?;
    if n.mtu < 0 || n.mtu > i64::from(m.mtu) {
        return Err(Error::internal(format!("invalid MTU {}, must be [0, master MTU({})]", n.mtu, m.mtu)));
    }
    let mtu = u32::try_from(n.mtu).ok().filter(|m| *m > 0);
    Ok(Loaded { lower, id, mtu })
}

impl Vlan {
    /// Go `createVlan`: the link, in the container, named `CNI_IFNAME`.
    async fn create(cx: &Context<Config>, ld: &Loaded, ctr: &Net) -> Result<Link> {
        let master = &cx.plugin_config().master;
        let m = kit::lookup_link(&ld.lower, master)
            .await
            .map_err(|e| e.wrap(format_args!("failed to lookup master {master:?}")))?;
        kit::create_in_container(ctr, "vlan", cx.ifname(), |tmp| async move {
            let mut req = ld.lower.vlan(&tmp, m.index, ld.id).netns(ctr);
            if let Some(mtu) = ld.mtu {
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
        let mut result = kit::ipam_add(cx)
            .await
            .map_err(|e| e.wrap("failed to execute IPAM delegate").with_code(ErrorCode::Internal))?;
        undo.push("IPAM DEL", kit::ipam_del(cx));
        if result.ips.is_empty() {
            return Err(Error::internal("IPAM plugin returned missing IP config"));
        }
        for ipc in &mut result.ips {
            ipc.interface = Some(0);
        }
        result.interfaces = vec![Interface { sandbox: Some(netns_path(cx)), ..Interface::from(link) }];
        kit::configure_iface(ctr, cx.ifname(), &result).await?;
        result.dns = cx.config().dns.clone().unwrap_or_default();
        result.to_value(cx.version()).map_err(|e| Error::internal(e.to_string()))?;
        Ok(result)
    }
}

#[cni_plugin(about = "CNI vlan plugin (cni-rs)", main = false)]
impl Plugin for Vlan {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let ld = load(cx).await?;
        let ctr = container(cx).await?;
        let link = Self::create(cx, &ld, &ctr).await?;
        with_undo(async |undo| {
            undo.push("delete the vlan", ctr.delete_link(link.index));
            Self::configure(cx, &ctr, &link, undo).await
        })
        .await
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        // Go loads the configuration here, so DEL fails once the master is gone (B6) and
        // without an IPAM type (which also makes the link of a failed ADD undeletable); DEL
        // needs neither.
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
        kit::ipam_check(cx).await?;
        let result = cx.prev_result().ok_or_else(|| Error::internal("vlan: Required prevResult missing"))?;
        let netns = netns_path(cx);
        let intf = result
            .interfaces
            .iter()
            .find(|i| i.name == cx.ifname() && i.sandbox.as_deref() == Some(netns.as_str()))
            .ok_or_else(|| {
                Error::internal(format!("Sandbox in prevResult  doesn't match configured netns: {netns}"))
            })?;
        let lower = if n.link_in_container { ctr.clone() } else { cx.host_net().await? };
        kit::lookup_link(&lower, &n.master)
            .await
            .map_err(|e| e.wrap(format_args!("failed to lookup master {:?}", n.master)))?;

        // Go `validateCniContainerInterface`.
        let link = ctr.find_link(&intf.name).await?.ok_or_else(|| {
            Error::internal(format!("vlan: Container Interface name in prevResult: {} not found", intf.name))
        })?;
        if link.kind != LinkKind::Vlan {
            return Err(Error::internal(format!("Error: Container interface {} not of type vlan", link.name)));
        }
        if let Some(mac) = intf.mac.as_ref().and_then(|m| m.as_mac())
            && mac != link.mac
        {
            return Err(Error::internal(format!(
                "vlan: Interface {} Mac {mac} doesn't match container Mac: {}",
                intf.name, link.mac
            )));
        }
        let current = link.vlan_id().map_or(-1, i64::from);
        if current != n.vlan_id {
            // Go reports this with a text copied from tuning ("configured promisc is ...", B31).
            return Err(Error::internal(format!(
                "Container vlan id {current} does not match expected value: {}",
                n.vlan_id
            )));
        }
        if n.mtu != 0 && n.mtu != i64::from(link.mtu) {
            return Err(Error::internal(format!(
                "Error: Tuning configured MTU of {} is {}, current value is {}",
                intf.name, n.mtu, link.mtu
            )));
        }
        kit::validate_expected_ips(&ctr, cx.ifname(), &result.ips).await?;
        kit::validate_expected_routes(&ctr, &result.routes).await?;
        Ok(())
    }

    async fn status(&self, cx: &Context<Config>) -> Result<()> {
        // Upstream v1.6.0: always IPAM's STATUS (a vlan attachment needs IPAM).
        kit::ipam_status(cx).await
    }
}
