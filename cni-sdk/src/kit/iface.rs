//! Configuring an interface from a result (Go `ipam.ConfigureIface`).

use std::net::IpAddr;

use cni_types::CniResult;

use super::go;
use crate::net::{Net, NetErrorKind, NetResult, RouteProtocol, RouteRequest, RouteScope};
use crate::{Error, Result};

/// Adds a route with protocol `boot`, as Go's netlink library (and `ip route add`) do, so
/// routes look the same whichever implementation added them.
pub async fn add_route_like_go(req: RouteRequest<'_>, net: &Net) -> NetResult<()> {
    let mut route = req.build();
    route.protocol = RouteProtocol::Boot;
    net.add_route(&route).await
}

/// Gives `ifname` the result's addresses whose `interface` index names it, sets it up and adds
/// the result's routes through it (Go `ipam.ConfigureIface`):
///
/// 1. `result.interfaces` empty → `no interfaces to configure`; no such link →
///    `failed to lookup "<if>"`;
/// 2. each IP whose `interface` is set must point at an entry named `ifname`
///    (`failed to add IP addr <ip> to "<if>": invalid interface index`); IPs without an index
///    are skipped;
/// 3. before the first IPv6 address, IPv6 is enabled on `lo` and the link
///    (`disable_ipv6=0`) and `keep_addr_on_down=1` is set on the link;
/// 4. the link is set up, then each route is added (a route without `gw` uses the first
///    gateway of its family among the IPs); an existing identical route is not an error.
pub async fn configure_iface(net: &Net, ifname: &str, res: &CniResult) -> Result<()> {
    if res.interfaces.is_empty() {
        return Err(Error::internal("no interfaces to configure"));
    }
    let link = net
        .find_link(ifname)
        .await?
        .ok_or_else(|| Error::not_found(format!("failed to lookup {ifname:?}: Link not found")))?;
    let mut v4gw: Option<IpAddr> = None;
    let mut v6gw: Option<IpAddr> = None;
    let mut ipv6_enabled = false;
    for ipc in &res.ips {
        let Some(idx) = ipc.interface else { continue };
        if res.interfaces.get(idx).is_none_or(|i| i.name != ifname) {
            return Err(Error::internal(format!(
                "failed to add IP addr {} to {ifname:?}: invalid interface index",
                ipc.address
            )));
        }
        if !ipv6_enabled && ipc.address.addr().is_ipv6() {
            for dev in ["lo", ifname] {
                let key = format!("net/ipv6/conf/{dev}/disable_ipv6");
                match net.sysctl(&key).await {
                    Ok(v) if v == "0" => {}
                    Ok(v) => net.set_sysctl(&key, "0").await.map_err(|e| {
                        go::wrap_net(format!("failed to enable IPv6 for interface {dev:?} ({key}={v})"), &e)
                    })?,
                    Err(e) => tracing::warn!("failed to read sysctl {key:?}: {e}"),
                }
            }
            ipv6_enabled = true;
        }
        net.add_address(link.index, ipc.address)
            .await
            .map_err(|e| go::wrap_net(format!("failed to add IP addr {} to {ifname:?}", ipc.address), &e))?;
        match ipc.gateway {
            Some(gw @ IpAddr::V4(_)) if v4gw.is_none() => v4gw = Some(gw),
            Some(gw @ IpAddr::V6(_)) if v6gw.is_none() => v6gw = Some(gw),
            _ => {}
        }
    }
    if ipv6_enabled {
        let _ = net.set_sysctl(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1").await;
    }
    net.set_up(link.index).await.map_err(|e| go::wrap_net(format!("failed to set {ifname:?} UP"), &e))?;
    for r in &res.routes {
        let gw = r.gw.or(if r.dst.addr().is_ipv4() { v4gw } else { v6gw });
        let mut req = net.route(r.dst).dev(link.index);
        if let Some(gw) = gw {
            req = req.gateway(gw);
        }
        if let Some(p) = r.priority {
            req = req.metric(p);
        }
        if let Some(t) = r.table {
            req = req.table(t);
        }
        if let Some(s) = r.scope {
            req = req.scope(match s {
                0 => RouteScope::Universe,
                253 => RouteScope::Link,
                254 => RouteScope::Host,
                other => RouteScope::Other(u8::try_from(other).unwrap_or(0)),
            });
        }
        if let Some(m) = r.mtu {
            req = req.mtu(m);
        }
        if let Some(m) = r.advmss {
            req = req.advmss(m);
        }
        match add_route_like_go(req, net).await {
            Ok(()) => {}
            Err(e) if e.kind() == NetErrorKind::Exists => {}
            Err(e) => {
                let what = format!("failed to add route '{} via {} dev {ifname}'", go::ipnet_v(&r.dst), go::ip_or_nil(gw));
                return Err(go::wrap_net(what, &e));
            }
        }
    }
    Ok(())
}
