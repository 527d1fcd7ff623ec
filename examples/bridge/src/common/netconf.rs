//! Helpers shared by `bridge` and `ptp`, each the equivalent of a Go helper of
//! containernetworking/plugins (`ip.SetupVeth`, `ipam.ConfigureIface`, `ip.EnableForward`,
//! `ip.DelLinkByNameAddr`, `ip.ValidateExpectedInterfaceIPs`, `ip.ValidateExpectedRoute`).

use std::io::Read;
use std::net::IpAddr;

use cni_sdk::net::{Link, LinkKind, Net, NetErrorKind};
use cni_sdk::types::MacAddr;
use cni_sdk::{CniResult, Dns, Error, IpConfig, Result, Route};
use ipnet::IpNet;

/// `veth` + 8 random hex digits (Go `ip.RandomVethName`).
pub(crate) fn random_veth_name() -> String {
    let mut b = [0u8; 4];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    if !ok {
        // Fall back to the clock and pid; uniqueness is still checked by the caller.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (t.subsec_nanos() ^ std::process::id().rotate_left(16)).to_le_bytes();
    }
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// Creates a veth pair with `ifname` in the container and a random `veth…` name on the host
/// (10 tries on a name clash), both up, `accept_ra=0` on the host end (Go `ip.SetupVeth`).
/// Returns (host end, container end).
pub(crate) async fn setup_veth(
    host: &Net,
    ctr: &Net,
    ifname: &str,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
) -> Result<(Link, Link)> {
    for _ in 0..10 {
        let host_name = random_veth_name();
        if ctr.find_link(ifname).await?.is_some() {
            return Err(Error::internal(format!(
                "container veth name ({ifname:?}) peer provided ({host_name:?}) already exists"
            )));
        }
        let mut req = host.veth(&host_name, ifname).peer_netns(ctr);
        if let Some(mtu) = mtu {
            req = req.mtu(mtu);
        }
        if let Some(mac) = mac {
            req = req.peer_mac(mac);
        }
        match req.execute().await {
            Ok((h, c)) => {
                let up = async {
                    ctr.set_up(c.index).await.map_err(|e| format!("failed to set {ifname:?} up: {e}"))?;
                    host.set_up(h.index).await.map_err(|e| format!("failed to set {host_name:?} up: {e}"))?;
                    Ok::<_, String>(())
                };
                if let Err(e) = up.await {
                    let _ = ctr.delete_link(c.index).await;
                    return Err(Error::internal(e));
                }
                // We want to own the routes for this interface.
                let _ = host.set_sysctl(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0").await;
                let h = host.link(&host_name).await?;
                let c = ctr.link(ifname).await?;
                return Ok((h, c));
            }
            Err(e) if e.kind() == NetErrorKind::Exists => {
                if host.find_link(&host_name).await?.is_some() {
                    continue;
                }
                return Err(Error::internal(format!(
                    "container veth name ({ifname:?}) peer provided ({host_name:?}) already exists"
                )));
            }
            Err(e) => return Err(Error::internal(format!("failed to make veth pair: {e}"))),
        }
    }
    Err(Error::internal("failed to find a unique veth name"))
}

/// Adds a route with protocol `boot`, as Go's netlink library does (so routes look the same
/// whichever implementation added them).
pub(crate) async fn add_route_go(req: cni_sdk::net::RouteRequest<'_>, net: &Net) -> cni_sdk::net::NetResult<()> {
    let mut route = req.build();
    route.protocol = cni_sdk::net::RouteProtocol::Boot;
    net.add_route(&route).await
}

/// Assigns the result's addresses whose `interface` names `ifname`, sets the link up and adds
/// the result's routes through it (Go `ipam.ConfigureIface`).
pub(crate) async fn configure_iface(net: &Net, ifname: &str, res: &CniResult) -> Result<()> {
    if res.interfaces.is_empty() {
        return Err(Error::internal("no interfaces to configure"));
    }
    let link = net.find_link(ifname).await?.ok_or_else(|| Error::internal(format!("failed to lookup {ifname:?}")))?;
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
                        Error::internal(format!("failed to enable IPv6 for interface {dev:?} ({key}={v}): {e}"))
                    })?,
                    Err(e) => tracing::warn!("failed to read sysctl {key:?}: {e}"),
                }
            }
            ipv6_enabled = true;
        }
        net.add_address(link.index, ipc.address)
            .await
            .map_err(|e| Error::internal(format!("failed to add IP addr {} to {ifname:?}: {e}", ipc.address)))?;
        match ipc.gateway {
            Some(gw @ IpAddr::V4(_)) if v4gw.is_none() => v4gw = Some(gw),
            Some(gw @ IpAddr::V6(_)) if v6gw.is_none() => v6gw = Some(gw),
            _ => {}
        }
    }
    if ipv6_enabled {
        let _ = net.set_sysctl(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1").await;
    }
    net.set_up(link.index).await.map_err(|e| Error::internal(format!("failed to set {ifname:?} UP: {e}")))?;
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
                0 => cni_sdk::net::RouteScope::Universe,
                253 => cni_sdk::net::RouteScope::Link,
                254 => cni_sdk::net::RouteScope::Host,
                other => cni_sdk::net::RouteScope::Other(u8::try_from(other).unwrap_or(0)),
            });
        }
        if let Some(m) = r.mtu {
            req = req.mtu(m);
        }
        if let Some(m) = r.advmss {
            req = req.advmss(m);
        }
        match add_route_go(req, net).await {
            Ok(()) => {}
            Err(e) if e.kind() == NetErrorKind::Exists => {}
            Err(e) => {
                let via = gw.map(|g| g.to_string()).unwrap_or_else(|| "<nil>".into());
                return Err(Error::internal(format!("failed to add route '{} via {via} dev {ifname}': {e}", r.dst)));
            }
        }
    }
    Ok(())
}

/// Turns on forwarding for the families of `ips` (Go `ip.EnableForward`).
pub(crate) async fn enable_forward(host: &Net, ips: &[IpConfig]) -> Result<()> {
    if ips.iter().any(|i| i.address.addr().is_ipv4()) {
        enable_ip4_forward(host).await?;
    }
    if ips.iter().any(|i| i.address.addr().is_ipv6()) {
        enable_ip6_forward(host).await?;
    }
    Ok(())
}

/// `net.ipv4.ip_forward=1` (written only when not already on).
pub(crate) async fn enable_ip4_forward(host: &Net) -> Result<()> {
    if host.sysctl("net/ipv4/ip_forward").await.ok().as_deref() != Some("1") {
        host.set_sysctl("net/ipv4/ip_forward", "1").await?;
    }
    Ok(())
}

/// `net.ipv6.conf.all.forwarding=1` (written only when not already on).
pub(crate) async fn enable_ip6_forward(host: &Net) -> Result<()> {
    if host.sysctl("net/ipv6/conf/all/forwarding").await.ok().as_deref() != Some("1") {
        host.set_sysctl("net/ipv6/conf/all/forwarding", "1").await?;
    }
    Ok(())
}

/// Whether an address is global unicast in Go's sense (`net.IP.IsGlobalUnicast`).
fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast() || v4.is_link_local())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Deletes `ifname` and returns its global unicast addresses; `None` when there is no such link
/// (Go `ip.DelLinkByNameAddr`).
pub(crate) async fn del_link_by_name_addr(net: &Net, ifname: &str) -> Result<Option<Vec<IpNet>>> {
    let Some(link) = net.find_link(ifname).await? else { return Ok(None) };
    let addrs: Vec<IpNet> = net
        .link_addresses(link.index)
        .await
        .map_err(|e| Error::internal(format!("failed to get IP addresses for {ifname:?}: {e}")))?
        .into_iter()
        .map(|a| a.addr)
        .filter(|a| is_global_unicast(a.addr()))
        .collect();
    match net.delete_link(link.index).await {
        Ok(()) => Ok(Some(addrs)),
        Err(e) if e.kind() == NetErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::internal(format!("failed to delete {ifname:?}: {e}"))),
    }
}

/// Every address of the result is on `ifname` (Go `ip.ValidateExpectedInterfaceIPs`).
pub(crate) async fn validate_expected_ips(net: &Net, ifname: &str, ips: &[IpConfig]) -> Result<()> {
    for ipc in ips {
        let link = net
            .find_link(ifname)
            .await?
            .ok_or_else(|| Error::internal(format!("Cannot find container link {ifname}")))?;
        let addrs =
            net.link_addresses(link.index).await.map_err(|_| Error::internal("Cannot obtain List of IP Addresses"))?;
        if !addrs.iter().any(|a| a.addr == ipc.address) {
            return Err(Error::internal(format!("Failed to match addr {} on interface {ifname}", ipc.address)));
        }
    }
    Ok(())
}

/// Every route of the result is in the main table (Go `ip.ValidateExpectedRoute`).
pub(crate) async fn validate_expected_routes(net: &Net, routes: &[Route]) -> Result<()> {
    let table = net.routes().await?;
    for r in routes {
        let dst = r.dst.trunc();
        let found = table.iter().any(|k| k.dst == dst && r.gw.is_none_or(|g| k.gateway == Some(g)));
        if !found {
            let gw = r.gw.map(|g| g.to_string()).unwrap_or_else(|| "<nil>".into());
            return Err(Error::internal(format!(
                "Expected Route {{Dst: {} GW: {gw}}} not found in routing table",
                r.dst
            )));
        }
    }
    Ok(())
}

/// Go's error for a container namespace that cannot be opened (`ns.GetNS`): code 999, and for
/// a path that does not exist the same text as Go.
pub(crate) fn netns_open_error(path: Option<&std::path::Path>, e: &Error) -> Error {
    let path = path.map(|p| p.display().to_string()).unwrap_or_default();
    if e.code() == cni_sdk::ErrorCode::InvalidNetNs {
        return Error::internal(format!(
            "failed to open netns {path:?}: failed to Statfs {path:?}: no such file or directory"
        ));
    }
    Error::new(
        e.code(),
        format!("failed to open netns {path:?}: {}", e.details().unwrap_or_else(|| e.message().to_owned())),
    )
}

/// Whether any DNS field is set (Go `dnsConfSet`).
pub(crate) fn dns_set(dns: Option<&Dns>) -> bool {
    dns.is_some_and(|d| !d.is_empty())
}

/// The container interface of a prevResult must be a veth (shared CHECK step).
pub(crate) fn is_veth(link: &Link) -> bool {
    link.kind == LinkKind::Veth
}
