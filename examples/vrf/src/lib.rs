//! `vrf`: the reference CNI vrf meta plugin, a drop-in replacement for Go's `plugins/meta/vrf`
//! (same configuration, results, error messages and kernel effects).
//!
//! Chained after an interface plugin, ADD puts `CNI_IFNAME` into the VRF device `vrfname` of the
//! container's namespace, creating it (up, bound to `table`, or to the smallest table ID from 1
//! that no other VRF of the namespace uses) unless it exists. Enslaving makes the kernel move the
//! interface's connected routes to the VRF's table but drop the others and (unless
//! `keep_addr_on_down`) its IPv6 addresses, so ADD puts the global IPv6 addresses back and copies
//! the interface's other routes (such as the default route) into the VRF's table, as Go's plugin
//! does since v1.4.0. DEL takes the interface out of the VRF and deletes the VRF once nothing is
//! enslaved to it; CHECK verifies that the interface is in the VRF.
//!
//! The kernel needs `CONFIG_NET_VRF`. Where it lacks it, ADD fails with the kernel's answer, as
//! Go's does (`cmdAdd failed: could not add VRF <name>: operation not supported`).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cni_sdk::net::fake::FakeNetwork;
//! use cni_sdk::net::KindInfo;
//! use cni_sdk::testing::PluginTest;
//! use cni_sdk::{CniResult, Command, Interface};
//!
//! let world = FakeNetwork::new();
//! let pod = world.add_namespace("pod");
//! world.host().veth("veth0", "eth0").peer_netns(&pod).execute().await.unwrap();
//! let mut prev = CniResult::default();
//! prev.interfaces.push(Interface { sandbox: Some("/var/run/netns/pod".into()), ..Interface::new("eth0") });
//! let run = |cmd| {
//!     PluginTest::new(&vrf::Vrf)
//!         .command(cmd)
//!         .config_keys(serde_json::json!({"vrfname": "blue"}))
//!         .prev_result(&prev)
//!         .netns("/var/run/netns/pod")
//!         .network(&world)
//!         .run()
//! };
//! run(Command::Add).await.expect_result();
//! let blue = pod.link("blue").await.unwrap();
//! assert_eq!(blue.info, KindInfo::Vrf { table: 1 });
//! assert_eq!(pod.link("eth0").await.unwrap().master, Some(blue.index));
//! run(Command::Check).await.expect_success();
//! run(Command::Del).await.expect_success();
//! assert!(pod.find_link("blue").await.unwrap().is_none());
//! # });
//! ```

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use cni_sdk::kit::{GoJson, go, is_global_unicast, with_undo};
use cni_sdk::net::{KindInfo, Link, LinkKind, Net, NetErrorKind, Route, RouteScope};
use cni_sdk::{CniResult, Context, Error, ErrorCode, ErrorKind, Plugin, Result, cni_plugin};
use ipnet::IpNet;
use serde::Deserialize;

/// The plugin's own keys (Go `VRFNetConf`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VrfKeys {
    /// The VRF device to put the interface in (required).
    #[serde(rename = "vrfname")]
    pub vrf_name: String,
    /// The VRF's routing table; 0 (the default) picks the smallest ID from 1 that no other VRF
    /// of the namespace uses.
    pub table: u32,
}

/// The configuration type: [`VrfKeys`] with Go's key matching.
pub type VrfConf = GoJson<VrfKeys>;

/// The vrf plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vrf;

/// How often a route is tried again while the kernel settles the addresses put back (Go
/// v1.7.0 waits 10 ms … 1.28 s for the address's host route).
const ROUTE_RETRIES: u32 = 8;

fn go_error(msg: String) -> Error {
    Error::internal(msg)
}

/// Go `parseConf`'s check.
fn vrf_name(cx: &Context<VrfConf>) -> Result<&str> {
    let name = cx.plugin_config().vrf_name.as_str();
    if name.is_empty() {
        return Err(go_error("configuration is expected to have a valid vrf name".into()));
    }
    Ok(name)
}

/// Go `findVRF`: `Ok(None)` when there is no such link.
async fn find_vrf(ctr: &Net, name: &str) -> Result<Option<(Link, u32)>> {
    match ctr.find_link(name).await? {
        None => Ok(None),
        Some(l) => match l.info {
            KindInfo::Vrf { table } if l.kind == LinkKind::Vrf => Ok(Some((l, table))),
            _ => Err(go_error(format!("Netlink {name} is not a VRF"))),
        },
    }
}

/// Go `findFreeRoutingTableID`: the smallest ID from 1 no VRF of the namespace uses.
async fn free_table(ctr: &Net) -> Result<u32> {
    let links = ctr.links().await.map_err(|e| go::wrap_net("createVRF: Failed to find links", &e))?;
    let taken: BTreeSet<u32> = links
        .iter()
        .filter_map(|l| match l.info {
            KindInfo::Vrf { table } => Some(table),
            _ => None,
        })
        .collect();
    (1..u32::MAX)
        .find(|t| !taken.contains(t))
        .ok_or_else(|| go_error("findFreeRoutingTableID: Failed to find an available routing id".into()))
}

/// A route as the error texts print it.
fn show(r: &Route) -> String {
    let mut s = format!("{}", r.dst);
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    s.push_str(&format!(" table {}", r.table));
    s
}

/// Copies `route` into `table`, trying again for a moment when an IPv6 route is refused while
/// the addresses just put back settle (Go v1.7.0 waits for their host routes instead).
async fn copy_route(ctr: &Net, route: &Route, table: u32) -> Result<Route> {
    let mut copy = route.clone();
    copy.table = table;
    let (mut delay, mut attempt) = (Duration::from_millis(10), 0);
    loop {
        match ctr.replace_route(&copy).await {
            Ok(()) => return Ok(copy),
            Err(e)
                if attempt < ROUTE_RETRIES
                    && copy.dst.addr().is_ipv6()
                    && matches!(e.kind(), NetErrorKind::Unreachable | NetErrorKind::InvalidArgument) =>
            {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(go::wrap_net(format!("could not add route '{}'", show(&copy)), &e)),
        }
    }
}

/// Puts `intf` back the way it was when enslaving or copying failed: out of the VRF, its IPv6
/// addresses and main-table routes restored.
async fn release(ctr: &Net, index: u32, addrs: &[IpNet], routes: &[Route]) -> Result<()> {
    ctr.set_no_master(index).await?;
    for a in addrs {
        match ctr.add_address(index, *a).await {
            Err(e) if e.kind() != NetErrorKind::Exists => return Err(e.into()),
            _ => {}
        }
    }
    for r in routes {
        match ctr.add_route(r).await {
            Err(e) if e.kind() != NetErrorKind::Exists => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Go `addInterface` (v1.9.1): enslave, put global IPv6 addresses back, copy the other routes.
async fn add_interface<'a>(
    ctr: &'a Net,
    vrf: &Link,
    table: u32,
    ifname: &str,
    undo: &mut cni_sdk::kit::Undo<'a>,
) -> Result<()> {
    let intf = ctr.find_link(ifname).await?.ok_or_else(|| go_error(format!("could not get link by name {ifname}")))?;
    if let Some(m) = intf.master {
        let master = ctr.find_link_by_index(m).await?.map(|l| l.name).unwrap_or_else(|| format!("#{m}"));
        return Err(go_error(format!("interface {ifname} has already a master set: {master}")));
    }
    let v6 = |addrs: Vec<cni_sdk::net::Address>| -> Vec<IpNet> {
        addrs.into_iter().map(|a| a.addr).filter(|a| a.addr().is_ipv6() && is_global_unicast(a.addr())).collect()
    };
    let before = v6(ctr
        .link_addresses(intf.index)
        .await
        .map_err(|e| go::wrap_net("failed getting global ipv6 addresses before slaving interface", &e))?);
    // The routes the kernel drops on enslaving (it brings back only the connected ones).
    let routes: Vec<Route> = ctr
        .routes_of_link(intf.index)
        .await
        .map_err(|e| go_error(format!("failed getting all routes for {ifname}: {}", go::errno_text(&e))))?
        .into_iter()
        .filter(|r| r.scope == RouteScope::Universe)
        .collect();
    ctr.set_master(intf.index, vrf.index)
        .await
        .map_err(|e| go::wrap_net(format!("could not set vrf {} as master of {ifname}", vrf.name), &e))?;
    let (index, saved_addrs, saved_routes) = (intf.index, before.clone(), routes.clone());
    undo.push(
        "take the interface out of the VRF",
        async move { release(ctr, index, &saved_addrs, &saved_routes).await },
    );
    let after = v6(ctr
        .link_addresses(intf.index)
        .await
        .map_err(|e| go::wrap_net("failed getting global ipv6 addresses after slaving interface", &e))?);
    for a in before.iter().filter(|a| !after.contains(a)) {
        ctr.add_address(intf.index, *a)
            .await
            .map_err(|e| go::wrap_net(format!("could not restore address {a} to {ifname} @ {}", vrf.name), &e))?;
    }
    for r in &routes {
        let copy = copy_route(ctr, r, table).await?;
        undo.push("delete the copied route", async move {
            match ctr.delete_route(&copy).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        });
    }
    Ok(())
}

/// The container namespace, with Go's text when it is gone (`ns.GetNS`, unwrapped).
async fn container_net(cx: &Context<VrfConf>) -> Result<Net> {
    match cx.container_net_if_exists().await? {
        Some(net) => Ok(net),
        None => {
            let path = cx.netns().map(|p| p.display().to_string()).unwrap_or_default();
            Err(Error::from_kind(ErrorKind::NetnsGone, format!("failed to Statfs {path:?}: no such file or directory"))
                .with_code(ErrorCode::Internal))
        }
    }
}

/// Go's `cmdAdd failed: <err>` for every error inside the namespace.
fn add_failed(e: Error) -> Error {
    Error::from_kind(e.kind(), format!("cmdAdd failed: {}", e.message())).with_code(ErrorCode::Internal)
}

#[cni_plugin(
    about = "CNI vrf plugin (cni-rs)",
    name = "vrf",
    versions = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    init = Vrf,
    main = false
)]
impl Plugin for Vrf {
    type Config = VrfConf;

    async fn add(&self, cx: &Context<VrfConf>) -> Result<CniResult> {
        let name = vrf_name(cx)?;
        let prev = cx.prev_result().ok_or_else(|| go_error("missing prevResult from earlier plugin".into()))?;
        let want_table = cx.plugin_config().table;
        let ctr = container_net(cx).await.map_err(add_failed)?;
        with_undo(async |undo| {
            let (vrf, table) = match find_vrf(&ctr, name).await? {
                Some((_, t)) if want_table != 0 && t != want_table => {
                    return Err(go_error(format!("VRF {name} already exist with different routing table {t}")));
                }
                Some(found) => found,
                None => {
                    let table = if want_table == 0 { free_table(&ctr).await? } else { want_table };
                    let vrf = ctr
                        .vrf(name, table)
                        .execute()
                        .await
                        .map_err(|e| go::wrap_net(format!("could not add VRF {name}"), &e))?;
                    undo.push("delete the VRF", ctr.delete_link(vrf.index));
                    ctr.set_up(vrf.index)
                        .await
                        .map_err(|e| go::wrap_net(format!("could not set link up for VRF {name}"), &e))?;
                    (vrf, table)
                }
            };
            add_interface(&ctr, &vrf, table, cx.ifname(), undo).await
        })
        .await
        .map_err(add_failed)?;
        Ok(prev.clone())
    }

    async fn del(&self, cx: &Context<VrfConf>) -> Result<()> {
        let name = vrf_name(cx)?;
        let Some(ctr) = cx.container_net_if_exists().await? else { return Ok(()) };
        let Some((vrf, _)) = find_vrf(&ctr, name).await? else { return Ok(()) };
        // An interface that is gone, or that is not in this VRF, has nothing to take out (Go
        // fails with `resetMaster: could not get link by name`, bug B21, and un-enslaves from
        // any master).
        if let Some(intf) = ctr.find_link(cx.ifname()).await?
            && intf.master == Some(vrf.index)
        {
            ctr.set_no_master(intf.index)
                .await
                .map_err(|_| go_error(format!("resetMaster: could reset master to {}", cx.ifname())))?;
        }
        let links = ctr.links().await.map_err(|e| go::wrap_net("getAssignedInterfaces: Failed to find links", &e))?;
        if !links.iter().any(|l| l.master == Some(vrf.index)) {
            match ctr.delete_link(vrf.index).await {
                Err(e) if !e.is_not_found() => return Err(go_error(go::errno_text(&e))),
                _ => {}
            }
        }
        Ok(())
    }

    /// Go v1.3.0+'s CHECK (1.1.1 discarded its own verdict, bug B19).
    async fn check(&self, cx: &Context<VrfConf>) -> Result<()> {
        let name = vrf_name(cx)?;
        if cx.prev_result().is_none() {
            return Err(go_error("missing prevResult from earlier plugin".into()));
        }
        let ctr = container_net(cx).await?;
        let Some((vrf, _)) = find_vrf(&ctr, name).await? else {
            return Err(go_error("Link not found".into()));
        };
        let links = ctr.links().await.map_err(|e| go::wrap_net("getAssignedInterfaces: Failed to find links", &e))?;
        if links.iter().any(|l| l.master == Some(vrf.index) && l.name == cx.ifname()) {
            Ok(())
        } else {
            Err(go_error(format!("failed to find {} associated to vrf {name}", cx.ifname())))
        }
    }
}
