//! `{{plugin_type}}`: a CNI plugin that connects a container with a veth pair.
//!
//! ADD creates a veth pair with one end (`CNI_IFNAME`) in the container's network namespace
//! and the other in the host namespace,
{%- if ipam %}
//! asks the configured IPAM plugin for addresses,
{%- else %}
//! takes the addresses from the plugin's own `addresses` key,
{%- endif %}
//! puts them on the container end, installs the routes in the container, and on the host puts
//! the gateway address on the host end plus a host route to each container address (the
//! layout of the reference `ptp` plugin). DEL removes all of it and is idempotent; CHECK
//! verifies it.

use std::net::IpAddr;

use cni_sdk::net::{Net, NetResult};
{%- unless ipam %}
use cni_sdk::types::Route;
{%- endunless %}
use cni_sdk::{CniResult, Context, Error, Interface, IpConfig, Plugin, Result, cni_plugin};
use ipnet::IpNet;
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// The longest allowed `hostVethPrefix` (the host interface name adds 8 hex digits, and Linux
/// interface names have at most 15 characters).
const MAX_PREFIX_LEN: usize = 7;

/// The plugin's own keys of the network configuration (next to `cniVersion`, `name`, `type`
/// {%- if ipam %} and `ipam`{% endif %}).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    /// MTU of both ends of the veth pair (the kernel's default when unset).
    #[serde(default)]
    mtu: Option<u32>,
    /// Prefix of the host-side interface name.
    #[serde(default = "default_prefix")]
    host_veth_prefix: String,
{%- unless ipam %}
    /// The container's addresses, as in a CNI result: `{"address": "10.22.0.5/24", "gateway": "10.22.0.1"}`.
    addresses: Vec<IpConfig>,
    /// Routes to install in the container, as in a CNI result: `{"dst": "0.0.0.0/0"}`.
    #[serde(default)]
    routes: Vec<Route>,
{%- endunless %}
}

fn default_prefix() -> String {
    "veth".to_owned()
}

impl Config {
    /// Rejects values the kernel would reject later, with CNI error code 7.
    fn validate(&self) -> Result<()> {
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::invalid_config(format!("mtu {mtu} is out of range 68..=65535")));
        }
        let prefix = &self.host_veth_prefix;
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_LEN
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid_config(format!(
                "hostVethPrefix {prefix:?} must be 1 to {MAX_PREFIX_LEN} letters, digits, '-' or '_'"
            )));
        }
{%- unless ipam %}
        if self.addresses.is_empty() {
            return Err(Error::invalid_config("\"addresses\" must list at least one address"));
        }
{%- endunless %}
        Ok(())
    }

    /// The host-side interface name: the prefix and a hash of container ID and interface name,
    /// so DEL finds the same name ADD chose without storing anything.
    fn host_ifname(&self, container_id: &str, ifname: &str) -> String {
        // FNV-1a, 32 bit: stable across releases and platforms.
        let mut hash: u32 = 0x811c_9dc5;
        for byte in container_id.bytes().chain([b'/']).chain(ifname.bytes()) {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        format!("{}{hash:08x}", self.host_veth_prefix)
    }
}

/// `addr/32` or `addr/128`.
fn host_prefix(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// The gateway of the first address of the same family as `dst`.
fn gateway_for(ips: &[IpConfig], dst: &IpNet) -> Option<IpAddr> {
    ips.iter().filter_map(|ip| ip.gateway).find(|gw| gw.is_ipv4() == dst.addr().is_ipv4())
}

/// Deletes the link called `name` if it exists; a link that vanished meanwhile is fine.
async fn delete_link_if_exists(net: &Net, name: &str) -> NetResult<()> {
    if let Some(link) = net.find_link(name).await? {
        match net.delete_link(link.index).await {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The veth plugin. It holds no state: everything it needs is in the request.
#[derive(Debug, Default)]
struct VethPlugin;

impl VethPlugin {
    /// Creates and configures the veth pair for `addrs` and returns the result to print.
    async fn wire(cx: &Context<Config>, host: &Net, ctr: &Net, addrs: CniResult) -> Result<CniResult> {
        let conf = cx.plugin_config();
        let host_name = conf.host_ifname(cx.container_id(), cx.ifname());
        let mut veth = host.veth(&host_name, cx.ifname()).peer_netns(ctr);
        if let Some(mtu) = conf.mtu {
            veth = veth.mtu(mtu);
        }
        let (host_end, ctr_end) = veth.execute().await?;
        host.set_up(host_end.index).await?;
        ctr.set_up(ctr_end.index).await?;
        for ip in &addrs.ips {
            ctr.add_address(ctr_end.index, ip.address).await?;
            host.route(host_prefix(ip.address.addr())).dev(host_end.index).add().await?;
            if let Some(gw) = ip.gateway {
                match host.add_address(host_end.index, host_prefix(gw)).await {
                    Err(e) if !e.is_exists() => return Err(e.into()),
                    _ => {}
                }
            }
        }
        for route in &addrs.routes {
            let mut req = ctr.route(route.dst).dev(ctr_end.index);
            if let Some(gw) = route.gw.or_else(|| gateway_for(&addrs.ips, &route.dst)) {
                req = req.gateway(gw);
            }
            req.add().await?;
        }
        let sandbox = cx.netns().map(|p| p.display().to_string());
        let interfaces = vec![
            Interface { mac: Some(host_end.mac.into()), ..Interface::new(host_end.name) },
            Interface { mac: Some(ctr_end.mac.into()), sandbox, ..Interface::new(ctr_end.name) },
        ];
        let ips = addrs.ips.into_iter().map(|ip| IpConfig { interface: Some(1), ..ip }).collect();
        Ok(CniResult { interfaces, ips, ..addrs })
    }

    /// [`VethPlugin::wire`], removing the veth pair again when anything fails half-way.
    async fn wire_or_undo(cx: &Context<Config>, host: &Net, ctr: &Net, addrs: CniResult) -> Result<CniResult> {
        let result = Self::wire(cx, host, ctr, addrs).await;
        if result.is_err() {
            let host_name = cx.plugin_config().host_ifname(cx.container_id(), cx.ifname());
            if let Err(e) = delete_link_if_exists(host, &host_name).await {
                tracing::warn!(%host_name, error = %e, "cannot remove the veth pair after a failed ADD");
            }
        }
        result
    }
}

#[cni_plugin]
impl Plugin for VethPlugin {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        cx.plugin_config().validate()?;
        let (host, ctr) = (cx.host_net().await?, cx.container_net().await?);
        if ctr.find_link(cx.ifname()).await?.is_some() {
            return Err(Error::invalid_config(format!("interface {:?} already exists in the container", cx.ifname())));
        }
{%- if ipam %}
        // IPAM's ADD is undone with its DEL when wiring fails.
        cx.ipam()?.add_with_rollback(|addrs| async move { Self::wire_or_undo(cx, &host, &ctr, addrs).await }).await
{%- else %}
        let conf = cx.plugin_config();
        let addrs = CniResult { ips: conf.addresses.clone(), routes: conf.routes.clone(), ..CniResult::default() };
        Self::wire_or_undo(cx, &host, &ctr, addrs).await
{%- endif %}
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
{%- if ipam %}
        // Release the addresses first: IPAM DEL is idempotent, and a leaked lease is worse
        // than a leaked interface (which goes away with the namespace anyway).
        cx.ipam()?.del().await?;
{%- endif %}
        // The namespace may be gone already (then so is the veth pair): that is success.
        if let Some(ctr) = cx.container_net_if_exists().await? {
            delete_link_if_exists(&ctr, cx.ifname()).await?;
        }
        // Deleting one end deletes the other; this covers a pair whose container end is gone.
        let host_name = cx.plugin_config().host_ifname(cx.container_id(), cx.ifname());
        delete_link_if_exists(&cx.host_net().await?, &host_name).await?;
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let conf = cx.plugin_config();
        conf.validate()?;
{%- if ipam %}
        cx.ipam()?.check().await?;
{%- endif %}
        let ctr = cx.container_net().await?;
        let link = ctr.link(cx.ifname()).await?;
        if !link.up {
            return Err(Error::internal(format!("{} in the container is down", link.name)));
        }
        let host_name = conf.host_ifname(cx.container_id(), cx.ifname());
        let host_end = cx.host_net().await?.link(&host_name).await?;
        if !host_end.up {
            return Err(Error::internal(format!("{host_name} on the host is down")));
        }
        let present = ctr.link_addresses(link.index).await?;
        let expected = cx.prev_result().map(|r| r.ips.as_slice()).unwrap_or_default();
        for ip in expected {
            if !present.iter().any(|a| a.addr == ip.address) {
                return Err(Error::internal(format!(
                    "address {} is missing on {} in the container",
                    ip.address, link.name
                )));
            }
        }
        Ok(())
    }
}
