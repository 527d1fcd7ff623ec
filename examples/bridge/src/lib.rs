//! `bridge`: the reference CNI bridge plugin, a drop-in replacement for Go's
//! `plugins/main/bridge` (same configuration keys, defaults, results, errors and iptables
//! chains).
//!
//! ADD ensures the bridge, creates a veth pair (container end `CNI_IFNAME`, host end
//! `veth…` attached to the bridge), runs the IPAM plugin, configures addresses and routes in
//! the container, optionally puts the gateway on the bridge and masquerades. Anything that
//! fails after the veth exists removes it again, and anything after IPAM ADD also runs IPAM DEL.

mod config;
mod l2;
mod spoofchk;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use cni_sdk::kit;
use cni_sdk::net::{Link, Net, NetErrorKind};
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, Route, cni_plugin};
use ipnet::IpNet;

use cni_sdk::firewall::Firewall;
use cni_sdk::firewall::ipmasq::{Attachment, IpMasq};
use config::Loaded;
pub use config::{BridgeConf, VlanTrunk};
use l2::{Iproute2, L2Tools};

/// The bridge plugin. Holds the firewall and iproute2 back ends (replaced by models in tests).
pub struct Bridge {
    masq: IpMasq,
    /// nftables, for `macspoofchk`.
    spoof: Firewall,
    l2: Arc<dyn L2Tools>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

impl Default for Bridge {
    fn default() -> Self {
        Self::new()
    }
}

impl Bridge {
    /// The plugin with its real back ends (iptables, nftables over netlink and iproute2 in its own
    /// namespace).
    pub fn new() -> Self {
        Self { masq: IpMasq::host(), spoof: Firewall::nftables_netlink(), l2: Arc::new(Iproute2) }
    }
}

/// What ADD works on once the bridge and the container namespace are open.
#[derive(Clone, Copy)]
struct Attach<'a> {
    cx: &'a Context<BridgeConf>,
    ld: &'a Loaded,
    host: &'a Net,
    ctr: &'a Net,
    br: &'a Link,
}

/// Gateways of one family (Go `gwInfo`).
#[derive(Default)]
struct GwInfo {
    gws: Vec<IpNet>,
    default_route_found: bool,
}

/// Go `calcGateways`: set interface indexes, fill gateways, add default routes.
fn calc_gateways(result: &mut CniResult, n: &BridgeConf, is_gw: bool) -> (GwInfo, GwInfo) {
    let (mut v4, mut v6) = (GwInfo::default(), GwInfo::default());
    for i in 0..result.ips.len() {
        let ipc = &mut result.ips[i];
        let is_v4 = ipc.address.addr().is_ipv4();
        let default_net: IpNet = if is_v4 { "0.0.0.0/0" } else { "::/0" }.parse().expect("valid");
        ipc.interface = Some(2);
        if ipc.gateway.is_none() && is_gw {
            ipc.gateway = Some(kit::gateway_of(&ipc.address));
        }
        let ipc = ipc.clone();
        let gws = if is_v4 { &mut v4 } else { &mut v6 };
        if n.is_default_gateway && !gws.default_route_found {
            gws.default_route_found = result.routes.iter().any(|r| r.gw.is_some() && r.dst == default_net);
            if !gws.default_route_found {
                result.routes.push(Route::new(default_net, ipc.gateway));
                gws.default_route_found = true;
            }
        }
        if is_gw && let Some(gw) = ipc.gateway {
            gws.gws.push(IpNet::new(gw, ipc.address.prefix_len()).expect("same family prefix"));
        }
    }
    (v4, v6)
}

impl Bridge {
    /// Go `ensureBridge`/`setupBridge`.
    async fn ensure_bridge(&self, host: &Net, n: &BridgeConf, ld: &Loaded) -> Result<Link> {
        let fail = |e: String| Error::internal(format!("failed to create bridge {:?}: {e}", n.bridge));
        // Whether the bridge existed matters only for VLAN filtering; skip the lookup otherwise.
        let wants_vlan_filtering = n.vlan != 0 || n.vlan_trunk.is_some();
        let existed = wants_vlan_filtering && host.find_link(&n.bridge).await?.is_some();
        let mut req = host.bridge(&n.bridge);
        if let Some(mtu) = ld.mtu {
            req = req.mtu(mtu);
        }
        let br = req.execute().await.map_err(|e| {
            if e.kind() == NetErrorKind::NotABridge {
                fail(format!("{:?} already exists but is not a bridge", n.bridge))
            } else {
                fail(format!("could not add {:?}: {e}", n.bridge))
            }
        })?;
        if wants_vlan_filtering && !existed {
            self.l2.set_vlan_filtering(&n.bridge).map_err(fail)?;
        }
        if n.promisc_mode {
            host.set_promisc(br.index, true)
                .await
                .map_err(|e| fail(format!("could not set promiscuous mode on {:?}: {e}", n.bridge)))?;
        }
        // We want to own the routes for this interface.
        let _ = host.set_sysctl(&format!("net/ipv6/conf/{}/accept_ra", n.bridge), "0").await;
        host.set_up(br.index).await.map_err(|e| fail(e.to_string()))?;
        // ADD uses the bridge's index, name and MAC as they are now (before the port is
        // attached; the gateway set-up pins that MAC), so no need to fetch it again.
        Ok(br)
    }

    /// Go `ensureAddr`: the gateway address on the bridge.
    async fn ensure_addr(host: &Net, br: &Link, gw: IpNet, force: bool) -> Result<()> {
        let v4 = gw.addr().is_ipv4();
        let addrs = host
            .link_addresses(br.index)
            .await
            .map_err(|e| Error::internal(format!("could not get list of IP addresses: {e}")))?;
        for a in addrs.iter().filter(|a| a.addr.addr().is_ipv4() == v4) {
            if a.addr == gw {
                return Ok(());
            }
            if v4 || a.addr.contains(&gw.addr()) || gw.contains(&a.addr.addr()) {
                if force {
                    host.delete_address(br.index, a.addr)
                        .await
                        .map_err(|e| Error::internal(format!("could not remove IP address from {:?}: {e}", br.name)))?;
                } else {
                    return Err(Error::internal(format!(
                        "{:?} already has an IP address different from {gw}",
                        br.name
                    )));
                }
            }
        }
        match host.add_address(br.index, gw).await {
            Ok(()) => {}
            Err(e) if e.kind() == NetErrorKind::Exists => {}
            Err(e) => return Err(Error::internal(format!("could not add IP address to {:?}: {e}", br.name))),
        }
        // Pin the bridge's MAC, which otherwise follows the lowest port MAC. Like Go, the MAC
        // pinned is the one the bridge had when it was set up, before this ADD attached its
        // port: a new bridge keeps its own address instead of taking the first container's.
        // Unlike Go, a bridge that had none then (00:00:00:00:00:00: made outside CNI, its
        // ports since removed) gets its current MAC pinned; Go tries to set the zero address
        // and fails every isGateway ADD on that bridge.
        let mac = if br.mac.is_zero() { host.link_by_index(br.index).await?.mac } else { br.mac };
        host.set_mac(br.index, mac).await.map_err(|e| Error::internal(format!("could not set bridge's mac: {e}")))?;
        Ok(())
    }

    /// Attaches the host end to the bridge and applies the port options (rest of Go `setupVeth`).
    async fn setup_port(&self, host: &Net, br: &Link, hv: &Link, n: &BridgeConf, ld: &Loaded) -> Result<()> {
        host.set_master(hv.index, br.index)
            .await
            .map_err(|e| Error::internal(format!("failed to connect {:?} to bridge {}: {e}", hv.name, br.name)))?;
        host.set_hairpin(hv.index, n.hairpin_mode)
            .await
            .map_err(|e| Error::internal(format!("failed to setup hairpin mode for {}: {e}", hv.name)))?;
        if n.port_isolation {
            self.l2
                .set_isolated(&hv.name)
                .map_err(|e| Error::internal(format!("failed to set isolated on for {}: {e}", hv.name)))?;
        }
        let preserve_default = n.preserve_default_vlan.unwrap_or(true);
        if (n.vlan != 0 || !ld.vlans.is_empty()) && !preserve_default {
            self.l2.vlan_del(&hv.name, 1).map_err(|e| {
                Error::internal(format!("failed to remove default vlan on interface {:?}: {e}", hv.name))
            })?;
        }
        if n.vlan != 0 {
            let vid = u16::try_from(n.vlan).expect("checked range");
            self.l2
                .vlan_add(&hv.name, vid, true, true)
                .map_err(|e| Error::internal(format!("failed to setup vlan tag on interface {:?}: {e}", hv.name)))?;
        }
        for &v in &ld.vlans {
            self.l2
                .vlan_add(&hv.name, v, false, false)
                .map_err(|e| Error::internal(format!("failed to setup vlan tag on interface {:?}: {e}", hv.name)))?;
        }
        Ok(())
    }

    /// Everything after IPAM ADD (the L3 part of Go `cmdAdd`).
    async fn configure_l3(&self, at: &Attach<'_>, mut result: CniResult, ipam: CniResult) -> Result<CniResult> {
        let Attach { cx, ld, host, ctr, br } = *at;
        let n = cx.plugin_config();
        result.ips = ipam.ips;
        result.routes = ipam.routes;
        result.dns = ipam.dns;
        if result.ips.is_empty() {
            return Err(Error::internal("IPAM plugin returned missing IP config"));
        }
        let (v4, v6) = calc_gateways(&mut result, n, ld.is_gw);
        let ifname = cx.ifname();
        if n.enabledad {
            let _ = ctr.set_sysctl(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1").await;
            let _ = ctr.set_sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1").await;
        } else {
            let _ = ctr.set_sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0").await;
        }
        let _ = ctr.set_sysctl(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1").await;
        kit::configure_iface(ctr, ifname, &result).await?;

        if ld.is_gw {
            for (v6_family, gws) in [(false, &v4), (true, &v6)] {
                for gw in &gws.gws {
                    Self::ensure_addr(host, br, *gw, n.force_address)
                        .await
                        .map_err(|e| Error::internal(format!("failed to set bridge addr: {}", e.message())))?;
                }
                if !gws.gws.is_empty() {
                    let on = if v6_family {
                        kit::enable_ip6_forward(host).await
                    } else {
                        kit::enable_ip4_forward(host).await
                    };
                    on.map_err(|e| Error::internal(format!("failed to enable forwarding: {}", e.message())))?;
                }
            }
        }
        if n.ip_masq {
            let backend = self.masq.select_backend(n.ip_masq_backend.as_deref()).await?;
            let addrs: Vec<IpNet> = result.ips.iter().map(|i| i.address).collect();
            self.masq.setup(backend, &cx.config().name, cx.ifname(), cx.container_id(), &addrs).await?;
        }
        Ok(result)
    }

    /// ADD after the veth pair exists; any error here makes the caller remove it.
    async fn add_after_veth(&self, at: &Attach<'_>, hv: &Link, cv: &Link) -> Result<CniResult> {
        let Attach { cx, ld, host, ctr, br } = *at;
        let n = cx.plugin_config();
        self.setup_port(host, br, hv, n, ld).await?;
        let sandbox = cx.netns().map(|p| p.display().to_string());
        let result = CniResult {
            interfaces: vec![Interface::from(br), Interface::from(hv), Interface { sandbox, ..Interface::from(cv) }],
            ..CniResult::default()
        };
        if n.macspoofchk {
            spoofchk::setup(&self.spoof, &hv.name, cv.mac, cx.container_id(), cx.ifname())
                .await
                .map_err(|e| Error::from(e).wrap("failed to setup spoof-check"))?;
        }
        let mut result = if ld.layer3 {
            let r = result;
            cx.ipam()?.add_with_rollback(|ipam| self.configure_l3(at, r, ipam)).await?
        } else {
            if !n.disable_container_interface {
                let link = ctr
                    .link(cx.ifname())
                    .await
                    .map_err(|e| Error::internal(format!("failed to retrieve link: {e}")))?;
                ctr.set_up(link.index)
                    .await
                    .map_err(|e| Error::internal(format!("failed to set {:?} UP: {e}", cx.ifname())))?;
            }
            result
        };
        // Refetch the bridge and the host veth: their MACs may have changed.
        let br =
            host.link(&n.bridge).await.map_err(|e| Error::internal(format!("could not lookup {:?}: {e}", n.bridge)))?;
        result.interfaces[0].mac = Some(br.mac.into());
        let hv =
            host.link(&hv.name).await.map_err(|e| Error::internal(format!("failed to lookup {:?}: {e}", hv.name)))?;
        result.interfaces[1].mac = Some(hv.mac.into());
        if cx.config().dns.as_ref().is_some_and(|d| !d.is_empty()) {
            result.dns = cx.config().dns.clone().unwrap_or_default();
        }
        Ok(result)
    }

    /// Removes the masquerading of this container from both backends, by name and comment, so
    /// it needs neither the container's addresses nor its namespace (Go bugs B2 and B3).
    async fn teardown_masq(&self, cx: &Context<BridgeConf>) -> Result<()> {
        Ok(self.masq.teardown(&cx.config().name, cx.ifname(), cx.container_id()).await?)
    }

    /// Removes the container's MAC spoof check. Like Go, a failure is only logged (DEL goes on).
    async fn teardown_spoofchk(&self, cx: &Context<BridgeConf>) {
        if let Err(e) = spoofchk::teardown(&self.spoof, cx.container_id(), cx.ifname()).await {
            tracing::warn!(error = %e, "failed to teardown spoof-check");
        }
    }
}

#[cni_plugin(about = "CNI bridge plugin (cni-rs)", init = Bridge::new, main = false)]
impl Plugin for Bridge {
    type Config = BridgeConf;

    async fn add(&self, cx: &Context<BridgeConf>) -> Result<CniResult> {
        let ld = config::load(cx, true)?;
        let n = cx.plugin_config();
        if ld.layer3 && n.disable_container_interface {
            return Err(Error::internal("cannot use IPAM when DisableContainerInterface flag is set"));
        }
        if n.hairpin_mode && n.promisc_mode {
            return Err(Error::internal("cannot set hairpin mode and promiscuous mode at the same time."));
        }
        if ld.is_gw && ld.layer3 && n.vlan != 0 {
            return Err(Error::unsupported_field("vlan", n.vlan)
                .with_details("isGateway together with vlan is not supported by this bridge plugin"));
        }
        let host = cx.host_net().await?;
        let br = self.ensure_bridge(&host, n, &ld).await?;
        let ctr = cx.container_net().await.map_err(|e| kit::go::netns_open_error(cx.netns(), &e))?;
        let (hv, cv) = kit::setup_veth(&host, &ctr, cx.ifname(), ld.mtu, ld.mac).await?;
        let at = Attach { cx, ld: &ld, host: &host, ctr: &ctr, br: &br };
        match self.add_after_veth(&at, &hv, &cv).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // Leave nothing behind: the veth pair, and masquerading if it was set up.
                if let Ok(Some(link)) = ctr.find_link(cx.ifname()).await {
                    let _ = ctr.delete_link(link.index).await;
                }
                if let Ok(Some(link)) = host.find_link(&hv.name).await {
                    let _ = host.delete_link(link.index).await;
                }
                if n.ip_masq
                    && let Err(t) = self.teardown_masq(cx).await
                {
                    tracing::warn!("cleaning up masquerading after a failed ADD: {}", t);
                }
                if n.macspoofchk {
                    self.teardown_spoofchk(cx).await;
                }
                Err(e)
            }
        }
    }

    async fn del(&self, cx: &Context<BridgeConf>) -> Result<()> {
        let ld = config::load(cx, false)?;
        let n = cx.plugin_config();
        let ipam_del = || async {
            if ld.layer3 {
                cx.ipam()?.del().await?;
            }
            Ok::<_, Error>(())
        };
        let ctr = match cx.netns() {
            None => None,
            Some(_) => cx.container_net_if_exists().await?,
        };
        let Some(ctr) = ctr else {
            // No netns, or one that is already gone, is not an error: release the IPAM lease.
            // Go stops there; this also removes the container's masquerading chain by name so
            // that nothing is left behind.
            ipam_del().await?;
            if n.macspoofchk {
                self.teardown_spoofchk(cx).await;
            }
            if ld.layer3 && n.ip_masq {
                self.teardown_masq(cx).await?;
            }
            return Ok(());
        };
        kit::del_link_by_name_addr(&ctr, cx.ifname()).await?;
        ipam_del().await?;
        if n.macspoofchk {
            self.teardown_spoofchk(cx).await;
        }
        if ld.layer3 && n.ip_masq {
            // Go tears down per address found on the link; this removes the container's
            // masquerading whether or not the link still had addresses (an interrupted ADD).
            self.teardown_masq(cx).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<BridgeConf>) -> Result<()> {
        let _ld = config::load(cx, false)?;
        let n = cx.plugin_config();
        let ctr = cx.container_net().await.map_err(|e| kit::go::netns_open_error(cx.netns(), &e))?;
        // Go delegates CHECK to IPAM first, even without an IPAM type.
        let ipam_type = cx.config().ipam.as_ref().map(|i| i.plugin_type.clone()).unwrap_or_default();
        if ipam_type.is_empty() {
            return Err(Error::internal("no plugin name provided"));
        }
        cx.delegate(&ipam_type).check().await?;
        let result = cx.prev_result().ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let netns = cx.netns().map(|p| p.display().to_string()).unwrap_or_default();
        let br_intf = result.interfaces.iter().find(|i| i.name == n.bridge);
        let cont_intf =
            result.interfaces.iter().find(|i| i.name == cx.ifname() && i.sandbox.as_deref() == Some(netns.as_str()));
        let host = cx.host_net().await?;

        // The bridge.
        let br_intf =
            br_intf.ok_or_else(|| Error::internal(format!("Interface name {} not found in prevResult", n.bridge)))?;
        if br_intf.sandbox.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::internal(format!("Interface {} should not be in sandbox", br_intf.name)));
        }
        let br = host
            .find_link(&br_intf.name)
            .await?
            .ok_or_else(|| Error::internal(format!("Interface name {} not found", br_intf.name)))?;
        if br.kind != cni_sdk::net::LinkKind::Bridge {
            return Err(Error::internal(format!("Error: Container interface {} not of type bridge", br.name)));
        }
        if let Some(mac) = br_intf.mac.as_ref().and_then(|m| m.as_mac())
            && mac != br.mac
        {
            return Err(Error::internal(format!("Bridge interface {} Mac doesn't match: {}", br_intf.name, mac)));
        }
        if br.promisc != n.promisc_mode {
            return Err(Error::internal(format!(
                "Bridge interface {} configured Promisc Mode {} doesn't match current state: {} ",
                br_intf.name, n.promisc_mode, br.promisc
            )));
        }

        // The container interface.
        let cont_intf = cont_intf.ok_or_else(|| {
            Error::internal(format!("Sandbox in prevResult  doesn't match configured netns: {netns}"))
        })?;
        let cl = ctr
            .find_link(&cont_intf.name)
            .await?
            .ok_or_else(|| Error::internal(format!("Interface name {} not found", cont_intf.name)))?;
        if !(cl.kind == cni_sdk::net::LinkKind::Veth) {
            return Err(Error::internal(format!("Error: Container interface {} not of type veth", cl.name)));
        }
        let peer =
            cl.peer.ok_or_else(|| Error::internal(format!("Unable to obtain veth peer index for veth {}", cl.name)))?;
        if let Some(mac) = cont_intf.mac.as_ref().and_then(|m| m.as_mac())
            && mac != cl.mac
        {
            return Err(Error::internal(format!(
                "Interface {} Mac {} doesn't match container Mac: {}",
                cont_intf.name, mac, cl.mac
            )));
        }

        // The host end: a veth of the result whose peer is the container interface, on the bridge.
        let mut found = false;
        for intf in &result.interfaces {
            if intf.name == br.name || intf.name == cl.name {
                continue;
            }
            let Some(link) = host.find_link(&intf.name).await? else {
                return Err(Error::internal(format!("Link not found: {}", intf.name)));
            };
            if !(link.kind == cni_sdk::net::LinkKind::Veth) || link.index != peer.index || link.master != Some(br.index)
            {
                continue;
            }
            if let Some(mac) = intf.mac.as_ref().and_then(|m| m.as_mac())
                && mac != link.mac
            {
                return Err(Error::internal(format!("Interface {} Mac doesn't match: {} not found", intf.name, mac)));
            }
            found = true;
            break;
        }
        if !found {
            return Err(Error::internal(format!(
                "Error: Container interface {} in bridge {} not found",
                cl.name, br.name
            )));
        }

        kit::validate_expected_ips(&ctr, cx.ifname(), &result.ips).await?;
        kit::validate_expected_routes(&ctr, &result.routes).await?;
        Ok(())
    }

    async fn status(&self, cx: &Context<BridgeConf>) -> Result<()> {
        match cx.config().ipam.as_ref().filter(|i| !i.plugin_type.is_empty()) {
            Some(_) => cx.ipam()?.status().await,
            None => Ok(()),
        }
    }

    /// GC: IPAM's GC (the spec delegates it), then the masquerading of every attachment of
    /// this network that is not valid any more (both backends).
    async fn gc(&self, cx: &Context<BridgeConf>) -> Result<()> {
        let ld = config::load(cx, false)?;
        if ld.layer3 {
            cx.ipam()?.gc().await?;
        }
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
