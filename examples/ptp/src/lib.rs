//! `ptp`: the reference CNI point-to-point plugin, a drop-in replacement for Go's
//! `plugins/main/ptp` (same configuration keys, results, errors and iptables chains).
//!
//! ADD runs the IPAM plugin, creates a veth pair (container end `CNI_IFNAME`, host end
//! `veth…`), gives the container its addresses with routes that send everything, even the
//! local subnet, through the gateway, puts the gateway address on the host end with a host
//! route back to the container, and optionally masquerades. Anything that fails after IPAM ADD
//! runs IPAM DEL and removes the veth pair.

#[cfg(test)]
mod tests;

use cni_sdk::firewall::ipmasq::{Attachment, IpMasq};
use cni_sdk::kit;
use cni_sdk::net::{Link, Net, NetErrorKind, RouteScope};
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, cni_plugin};
use ipnet::IpNet;
use serde::Deserialize;

/// The plugin's own keys (Go `NetConf` of plugins/main/ptp).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PtpConf {
    /// Masquerade traffic from the container's addresses.
    #[serde(default)]
    pub ip_masq: bool,
    /// `iptables` or `nftables`; unset: iptables unless it is unusable and nftables usable.
    #[serde(default)]
    pub ip_masq_backend: Option<String>,
    /// MTU of the veth pair; 0 = kernel default.
    #[serde(default)]
    pub mtu: i64,
}

/// The ptp plugin. Holds the masquerading back ends (fakes in tests).
pub struct Ptp {
    masq: IpMasq,
}

impl std::fmt::Debug for Ptp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ptp").finish_non_exhaustive()
    }
}

impl Default for Ptp {
    fn default() -> Self {
        Self::new()
    }
}

impl Ptp {
    /// The plugin with its real back ends (iptables and nft in the plugin's namespace).
    pub fn new() -> Self {
        Self { masq: IpMasq::host() }
    }
}

use kit::host_prefix;

fn ipam_type(cx: &Context<PtpConf>) -> Result<String> {
    let t = cx.config().ipam.as_ref().map(|i| i.plugin_type.clone()).unwrap_or_default();
    if t.is_empty() {
        return Err(Error::internal("no plugin name provided"));
    }
    Ok(t)
}

fn open_failed(cx: &Context<PtpConf>, e: &Error) -> Error {
    kit::go::netns_open_error(cx.netns(), e)
}

impl Ptp {
    /// Go `setupContainerVeth` after the pair exists: addresses and the point-to-point routes.
    async fn setup_container(ctr: &Net, ifname: &str, cv: &Link, result: &CniResult) -> Result<()> {
        kit::configure_iface(ctr, ifname, result).await?;
        for ipc in &result.ips {
            let gw = ipc
                .gateway
                .ok_or_else(|| Error::internal(format!("IPAM result has no gateway for {}", ipc.address)))?;
            let subnet = ipc.address.trunc();
            // Delete the route the kernel added for the address.
            let mut auto = cni_sdk::net::Route::new(subnet);
            auto.oif = Some(cv.index);
            ctr.delete_route(&auto)
                .await
                .map_err(|e| Error::internal(format!("failed to delete route {subnet}: {e}")))?;
            let src = ipc.address.addr();
            let gw_route = || ctr.route(host_prefix(gw)).dev(cv.index).scope(RouteScope::Link).source(src);
            Self::add_settled(ctr, gw_route)
                .await
                .map_err(|e| Error::internal(format!("failed to add route {} dev {ifname}: {e}", host_prefix(gw))))?;
            let via = ctr.route(subnet).dev(cv.index).scope(RouteScope::Universe).gateway(gw).source(src);
            kit::add_route_like_go(via, ctr)
                .await
                .map_err(|e| Error::internal(format!("failed to add route {subnet} via {gw} dev {ifname}: {e}")))?;
        }
        Ok(())
    }

    /// Adds a route whose source address may still be tentative (IPv6 duplicate address
    /// detection): the kernel refuses it until the address settles, so retry for up to 10 s
    /// (Go waits with `ip.SettleAddresses` in `ConfigureIface`).
    async fn add_settled<'a>(
        net: &'a Net,
        req: impl Fn() -> cni_sdk::net::RouteRequest<'a>,
    ) -> cni_sdk::net::NetResult<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match kit::add_route_like_go(req(), net).await {
                Err(e)
                    if e.kind() == NetErrorKind::InvalidArgument
                        && req().build().dst.addr().is_ipv6()
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Go `setupHostVeth`: the gateway address on the host end and a host route to each IP.
    async fn setup_host(host: &Net, hv: &Link, result: &CniResult) -> Result<()> {
        for ipc in &result.ips {
            let Some(gw) = ipc.gateway else { continue };
            match host.add_address(hv.index, host_prefix(gw)).await {
                Ok(()) => {}
                Err(e) if e.kind() == NetErrorKind::Exists => {}
                Err(e) => {
                    return Err(Error::internal(format!("failed to add IP addr {} to veth: {e}", host_prefix(gw))));
                }
            }
            let dst = host_prefix(ipc.address.addr());
            match kit::add_route_like_go(host.route(dst).dev(hv.index).scope(RouteScope::Host), host).await {
                Ok(()) => {}
                Err(e) if e.kind() == NetErrorKind::Exists => {}
                Err(e) => return Err(Error::internal(format!("failed to add route on host: {e}"))),
            }
        }
        Ok(())
    }

    async fn plumb(&self, cx: &Context<PtpConf>, mut result: CniResult) -> Result<CniResult> {
        let n = cx.plugin_config();
        if result.ips.is_empty() {
            return Err(Error::internal("IPAM plugin returned missing IP config"));
        }
        let host = cx.host_net().await?;
        kit::enable_forward(&host, &result.ips)
            .await
            .map_err(|e| Error::internal(format!("Could not enable IP forwarding: {}", e.message())))?;
        let ctr = cx.container_net().await.map_err(|e| open_failed(cx, &e))?;
        let mtu = u32::try_from(n.mtu).ok().filter(|m| *m > 0);
        let (hv, cv) = kit::setup_veth(&host, &ctr, cx.ifname(), mtu, None).await?;
        let sandbox = cx.netns().map(|p| p.display().to_string());
        for ipc in &mut result.ips {
            ipc.interface = Some(1);
        }
        result.interfaces = vec![Interface::from(&hv), Interface { sandbox, ..Interface::from(&cv) }];
        let configured = async {
            Self::setup_container(&ctr, cx.ifname(), &cv, &result).await?;
            Self::setup_host(&host, &hv, &result).await?;
            if n.ip_masq {
                let backend = self.masq.select_backend(n.ip_masq_backend.as_deref()).await?;
                let addrs: Vec<IpNet> = result.ips.iter().map(|i| i.address).collect();
                self.masq.setup(backend, &cx.config().name, cx.ifname(), cx.container_id(), &addrs).await?;
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = configured.await {
            if let Ok(Some(link)) = ctr.find_link(cx.ifname()).await {
                let _ = ctr.delete_link(link.index).await;
            }
            if let Ok(Some(link)) = host.find_link(&hv.name).await {
                let _ = host.delete_link(link.index).await;
            }
            if n.ip_masq
                && let Err(t) = self.masq.teardown(&cx.config().name, cx.ifname(), cx.container_id()).await
            {
                tracing::warn!("cleaning up masquerading after a failed ADD: {t}");
            }
            return Err(e);
        }
        if cx.config().dns.as_ref().is_some_and(|d| !d.is_empty()) {
            result.dns = cx.config().dns.clone().unwrap_or_default();
        }
        Ok(result)
    }
}

#[cni_plugin(about = "CNI ptp plugin (cni-rs)", init = Ptp::new, main = false)]
impl Plugin for Ptp {
    type Config = PtpConf;

    async fn add(&self, cx: &Context<PtpConf>) -> Result<CniResult> {
        let n = cx.plugin_config();
        if let Some(b) = n.ip_masq_backend.as_deref()
            && b != "iptables"
            && b != "nftables"
        {
            return Err(Error::internal(format!("unknown ipmasq backend {b:?}")));
        }
        let t = ipam_type(cx)?;
        cx.delegate(&t).add_with_rollback(|r| self.plumb(cx, r)).await
    }

    async fn del(&self, cx: &Context<PtpConf>) -> Result<()> {
        let t = ipam_type(cx)?;
        cx.delegate(&t).del().await?;
        let ctr = match cx.netns() {
            None => None,
            Some(_) => cx.container_net_if_exists().await?,
        };
        // Without a (live) netns Go stops here; the masquerading chain is removed by name too,
        // so that nothing is left behind.
        if let Some(ctr) = ctr {
            kit::del_link_by_name_addr(&ctr, cx.ifname()).await?;
        }
        if cx.plugin_config().ip_masq {
            // Go tears down per address found on the link; this removes the container's
            // masquerading by name and comment, which also covers an interrupted ADD.
            self.masq.teardown(&cx.config().name, cx.ifname(), cx.container_id()).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<PtpConf>) -> Result<()> {
        let ctr = cx.container_net().await.map_err(|e| open_failed(cx, &e))?;
        let t = ipam_type(cx)?;
        cx.delegate(&t).check().await?;
        let result = cx.prev_result().ok_or_else(|| Error::internal("ptp: Required prevResult missing"))?;
        let netns = cx.netns().map(|p| p.display().to_string()).unwrap_or_default();
        let cont = result
            .interfaces
            .iter()
            .find(|i| i.name == cx.ifname() && i.sandbox.as_deref() == Some(netns.as_str()))
            .ok_or_else(|| {
                Error::internal(format!("Sandbox in prevResult  doesn't match configured netns: {netns}"))
            })?;
        let link = ctr.find_link(&cont.name).await?.ok_or_else(|| {
            Error::internal(format!("ptp: Container Interface name in prevResult: {} not found", cont.name))
        })?;
        if !(link.kind == cni_sdk::net::LinkKind::Veth) {
            return Err(Error::internal(format!("Error: Container interface {} not of type veth/p2p", link.name)));
        }
        if let Some(mac) = cont.mac.as_ref().and_then(|m| m.as_mac())
            && mac != link.mac
        {
            return Err(Error::internal(format!(
                "ptp: Interface {} Mac {} doesn't match container Mac: {}",
                cont.name, mac, link.mac
            )));
        }
        kit::validate_expected_ips(&ctr, cx.ifname(), &result.ips).await?;
        kit::validate_expected_routes(&ctr, &result.routes).await?;
        Ok(())
    }

    async fn status(&self, cx: &Context<PtpConf>) -> Result<()> {
        let t = ipam_type(cx)?;
        cx.delegate(&t).status().await
    }

    /// GC: IPAM's GC (the spec delegates it), then the masquerading of every attachment of
    /// this network that is not valid any more (both backends).
    async fn gc(&self, cx: &Context<PtpConf>) -> Result<()> {
        let t = ipam_type(cx)?;
        cx.delegate(&t).gc().await?;
        if cx.plugin_config().ip_masq {
            let valid: Vec<Attachment> = cx
                .gc_attachments()
                .iter()
                .map(|a| Attachment { container_id: a.container_id.clone(), ifname: a.ifname.clone() })
                .collect();
            self.masq.gc(&cx.config().name, &valid).await?;
        }
        Ok(())
    }
}
