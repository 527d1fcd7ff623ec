//! CHECK helpers (Go `ip.ValidateExpectedInterfaceIPs`, `ip.ValidateExpectedRoute` and the
//! container-interface check the link plugins share).

use cni_types::{CniResult, IpConfig, Route};

use super::go;
use crate::net::{Link, Net, TABLE_MAIN};
use crate::{Error, Result};

/// Go's CHECK of the container interface shared by macvlan, ipvlan, vlan, dummy and tap: the
/// result's entry named `ifname` whose sandbox is `netns` must exist, name a link in `net` that
/// `is_kind` accepts (`kind` is the name used in the error), and have the link's MAC when it
/// records one. Returns the link for further, plugin-specific checks (modes, ids).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cni_sdk::kit::validate_expected_interface;
/// use cni_sdk::net::{fake::FakeNetwork, LinkKind};
/// use cni_sdk::{CniResult, Interface};
///
/// let world = FakeNetwork::new();
/// let ctr = world.add_namespace("pod");
/// let link = ctr.dummy("eth0").execute().await.unwrap();
/// let mut result = CniResult::default();
/// result.interfaces.push(Interface { sandbox: Some("/run/netns/pod".into()), ..Interface::from(&link) });
/// let found = validate_expected_interface(&ctr, &result, "eth0", "/run/netns/pod", "dummy", |l| l.kind == LinkKind::Dummy)
///     .await
///     .unwrap();
/// assert_eq!(found.index, link.index);
/// let err = validate_expected_interface(&ctr, &result, "eth0", "/run/netns/pod", "macvlan", |_| false).await.unwrap_err();
/// assert_eq!(err.message(), "Error: Container interface eth0 not of type macvlan");
/// # });
/// ```
pub async fn validate_expected_interface(
    net: &Net,
    result: &CniResult,
    ifname: &str,
    netns: &str,
    kind: &str,
    is_kind: impl Fn(&Link) -> bool,
) -> Result<Link> {
    let intf = result.interfaces.iter().find(|i| i.name == ifname && i.sandbox.as_deref() == Some(netns));
    let Some(intf) = intf else {
        return Err(Error::internal(format!("Sandbox in prevResult  doesn't match configured netns: {netns}")));
    };
    if intf.name.is_empty() {
        return Err(Error::internal("Container interface name missing in prevResult: "));
    }
    let link = net
        .find_link(&intf.name)
        .await?
        .ok_or_else(|| Error::not_found(format!("Container Interface name in prevResult: {} not found", intf.name)))?;
    if intf.sandbox.as_deref().is_none_or(str::is_empty) {
        return Err(Error::internal(format!("Error: Container interface {} should not be in host namespace", link.name)));
    }
    if !is_kind(&link) {
        return Err(Error::internal(format!("Error: Container interface {} not of type {kind}", link.name)));
    }
    if let Some(mac) = intf.mac.as_ref().and_then(|m| m.as_mac())
        && mac != link.mac
    {
        return Err(Error::internal(format!(
            "Interface {} Mac {mac} doesn't match container Mac: {}",
            intf.name, link.mac
        )));
    }
    Ok(link)
}

/// Every address of `ips` is on `ifname` with its prefix length, and a main-table route to each
/// address's network exists (Go `ip.ValidateExpectedInterfaceIPs`, with its texts).
pub async fn validate_expected_ips(net: &Net, ifname: &str, ips: &[IpConfig]) -> Result<()> {
    if ips.is_empty() {
        return Ok(());
    }
    let link =
        net.find_link(ifname).await?.ok_or_else(|| Error::not_found(format!("Cannot find container link {ifname}")))?;
    let addrs =
        net.link_addresses(link.index).await.map_err(|_| Error::internal("Cannot obtain List of IP Addresses"))?;
    let routes = net.routes().await?;
    for ipc in ips {
        if !addrs.iter().any(|a| a.addr == ipc.address) {
            return Err(Error::internal(format!("Failed to match addr {} on interface {ifname}", ipc.address)));
        }
        let prefix = ipc.address.trunc();
        if !routes.iter().any(|r| r.table == TABLE_MAIN && r.dst == prefix) {
            return Err(Error::internal(format!(
                "Failed to find Gateway {} for interface {ifname}",
                go::ip_or_nil(ipc.gateway)
            )));
        }
    }
    Ok(())
}

/// Every route of `routes` is in the main table: by destination and gateway, default routes by
/// destination only (Go `ip.ValidateExpectedRoute`, with its text).
pub async fn validate_expected_routes(net: &Net, routes: &[Route]) -> Result<()> {
    if routes.is_empty() {
        return Ok(());
    }
    let table = net.routes().await?;
    for r in routes {
        let dst = r.dst.trunc();
        let default = dst.prefix_len() == 0;
        let found = table.iter().any(|k| k.dst == dst && (default || r.gw.is_none_or(|g| k.gateway == Some(g))));
        if !found {
            return Err(Error::internal(format!("Expected Route {} not found in routing table", go::route(r))));
        }
    }
    Ok(())
}
