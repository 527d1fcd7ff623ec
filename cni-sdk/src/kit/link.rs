//! Deleting links idempotently (Go `ip.DelLinkByName`, `ip.DelLinkByNameAddr`) and result
//! interfaces from links.

use cni_types::Interface;
use ipnet::IpNet;

use super::addr::is_global_unicast;
use super::go;
use crate::net::{Link, Net, NetErrorKind};
use crate::Result;

impl From<&Link> for Interface {
    /// The result entry of a link: its name and MAC, no sandbox (set it for container links).
    fn from(link: &Link) -> Self {
        Interface { mac: Some(link.mac.into()), ..Interface::new(link.name.clone()) }
    }
}

/// Deletes `ifname`; a link that does not exist (any more) is success (Go `ip.DelLinkByName`
/// callers treat "link not found" as done). Returns whether a link was deleted.
pub async fn delete_link_by_name(net: &Net, ifname: &str) -> Result<bool> {
    let Some(link) = net.find_link(ifname).await? else { return Ok(false) };
    match net.delete_link(link.index).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == NetErrorKind::NotFound => Ok(false),
        Err(e) => Err(go::wrap_net(format!("failed to delete {ifname:?}"), &e)),
    }
}

/// Deletes `ifname` and returns its global unicast addresses; `None` when there is no such link
/// (Go `ip.DelLinkByNameAddr`, used by DEL to find what to clean up after the link).
pub async fn del_link_by_name_addr(net: &Net, ifname: &str) -> Result<Option<Vec<IpNet>>> {
    let Some(link) = net.find_link(ifname).await? else { return Ok(None) };
    let addrs: Vec<IpNet> = net
        .link_addresses(link.index)
        .await
        .map_err(|e| go::wrap_net(format!("failed to get IP addresses for {ifname:?}"), &e))?
        .into_iter()
        .map(|a| a.addr)
        .filter(|a| is_global_unicast(a.addr()))
        .collect();
    match net.delete_link(link.index).await {
        Ok(()) => Ok(Some(addrs)),
        Err(e) if e.kind() == NetErrorKind::NotFound => Ok(None),
        Err(e) => Err(go::wrap_net(format!("failed to delete {ifname:?}"), &e)),
    }
}
