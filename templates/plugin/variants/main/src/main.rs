//! `{{plugin_type}}`: a CNI plugin that connects a container to the host with a veth pair.
//!
//! ADD asks the configured IPAM plugin for addresses, creates a veth pair with one end
//! (`CNI_IFNAME`) in the container's network namespace and the other in the host's, puts the
//! addresses and routes on the container end, and on the host gives the host end the gateway
//! address plus a route to each container address (the layout of the reference `ptp` plugin).
//! Every step registers its inverse on an undo stack, so a failed ADD leaves nothing behind and
//! releases the lease. DEL releases the lease and deletes the pair; it succeeds when there is
//! nothing left to delete. CHECK verifies what ADD set up against the result the runtime
//! passes back.

use cni_sdk::kit;
use cni_sdk::net::LinkKind;
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, cni_plugin};
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// The plugin's own keys of the network configuration (next to `cniVersion`, `name`, `type`
/// and `ipam`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    /// MTU of both ends of the veth pair (the kernel's default when unset).
    #[serde(default)]
    mtu: Option<u32>,
}

impl Config {
    /// Rejects values the kernel would reject later, with CNI error code 7, before anything
    /// is changed.
    fn validate(&self) -> Result<()> {
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::invalid_config(format!("mtu {mtu} is out of range 68..=65535")));
        }
        Ok(())
    }
}

/// The veth plugin. It holds no state: everything it needs is in the request.
#[derive(Debug, Default)]
struct VethPlugin;

#[cni_plugin]
impl Plugin for VethPlugin {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let conf = cx.plugin_config();
        conf.validate()?;
        let (host, ctr) = (cx.host_net().await?, cx.container_net().await?);
        if ctr.find_link(cx.ifname()).await?.is_some() {
            return Err(Error::invalid_config(format!("interface {:?} already exists in the container", cx.ifname())));
        }
        kit::with_undo(async |undo| {
            let mut result = cx.ipam()?.add().await?;
            undo.push("release the IPAM lease", async { cx.ipam()?.del().await });
            if result.ips.is_empty() {
                return Err(Error::internal("the IPAM plugin returned no IP address"));
            }

            let (host_end, ctr_end) = kit::setup_veth(&host, &ctr, cx.ifname(), conf.mtu, None).await?;
            // Deleting either end deletes the pair.
            undo.push("delete the veth pair", kit::delete_link_by_name(&ctr, cx.ifname()));

            let sandbox = cx.netns().map(|p| p.display().to_string());
            result.interfaces = vec![Interface::from(&host_end), Interface { sandbox, ..Interface::from(&ctr_end) }];
            for ip in &mut result.ips {
                ip.interface = Some(1); // the container end
            }
            // Addresses, link up, routes (a route without `gw` goes via the gateway of its family).
            kit::configure_iface(&ctr, cx.ifname(), &result).await?;

            for ip in &result.ips {
                if let Some(gw) = ip.gateway {
                    match host.add_address(host_end.index, kit::host_prefix(gw)).await {
                        Err(e) if !e.is_exists() => return Err(e.into()),
                        _ => {}
                    }
                }
                host.route(kit::host_prefix(ip.address.addr())).dev(host_end.index).add().await?;
            }
            Ok(result)
        })
        .await
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        // Release the addresses first: IPAM DEL is idempotent, and a leaked lease is worse than
        // a leaked interface (which goes away with the namespace anyway).
        cx.ipam()?.del().await?;
        // Without the namespace (or CNI_NETNS) there is no pair left: the kernel deletes a veth
        // pair when one end's namespace goes away.
        if let Some(ctr) = cx.container_net_if_exists().await? {
            kit::delete_link_by_name(&ctr, cx.ifname()).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        cx.plugin_config().validate()?;
        // The runtime passes the result of the whole chain: entries a later (chained) plugin
        // added are checked here too, so only check what exists in any case.
        let prev = cx.prev_result().ok_or_else(|| Error::invalid_config("CHECK needs a prevResult"))?;
        cx.ipam()?.check().await?;
        let ctr = cx.container_net().await?;
        let netns = cx.netns().map(|p| p.display().to_string()).unwrap_or_default();
        kit::validate_expected_interface(&ctr, prev, cx.ifname(), &netns, "veth", |l| l.kind == LinkKind::Veth).await?;
        kit::validate_expected_ips(&ctr, cx.ifname(), &prev.ips).await?;
        kit::validate_expected_routes(&ctr, &prev.routes).await?;
        Ok(())
    }
}
