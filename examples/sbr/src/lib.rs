//! `sbr`: the reference CNI source-based routing meta plugin, a drop-in replacement for Go's
//! `plugins/meta/sbr` (same configuration, results, error messages and kernel state).
//!
//! Chained after an interface plugin, ADD gives each address of `CNI_IFNAME` in `prevResult`
//! its own routing table: a rule `from <ip>/32 lookup <table>` (the kernel picks the priority),
//! a default route through the address's gateway in that table, and a copy of the interface's
//! routes of the main table that belong to the address (its subnet, its gateway, or neither
//! source nor gateway); then the interface's routes leave the main table. Tables are the first
//! IDs from 100 that no rule and no route uses. With `table` set, only the rules are added,
//! pointing at that table. DEL removes the rules it made; CHECK succeeds (as Go's).
//!
//! Unlike Go: a failed ADD undoes what it changed; DEL never creates a file at a vanished
//! namespace path (Go bug B22), succeeds when the interface is gone (B23) and deletes only the
//! rules this plugin makes, not every rule whose source is one of the interface's addresses
//! (B24); the table search also sees tables that hold routes without a rule.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cni_sdk::net::fake::FakeNetwork;
//! use cni_sdk::testing::PluginTest;
//! use cni_sdk::{CniResult, Command, Interface, IpConfig};
//!
//! let world = FakeNetwork::new();
//! let pod = world.add_namespace("pod");
//! let (_, eth0) = world.host().veth("veth0", "eth0").peer_netns(&pod).execute().await.unwrap();
//! pod.set_up(eth0.index).await.unwrap();
//! pod.add_address(eth0.index, "10.5.0.5/24".parse().unwrap()).await.unwrap();
//! let mut prev = CniResult::default();
//! prev.interfaces.push(Interface { sandbox: Some("/var/run/netns/pod".into()), ..Interface::new("eth0") });
//! prev.ips.push(IpConfig { interface: Some(0), gateway: Some("10.5.0.1".parse().unwrap()), ..IpConfig::new("10.5.0.5/24".parse().unwrap()) });
//!
//! let plugin = sbr::Sbr;
//! let run = |cmd| PluginTest::new(&plugin).command(cmd).prev_result(&prev).netns("/var/run/netns/pod").network(&world).run();
//! run(Command::Add).await.expect_result();
//! let rules = pod.rules().await.unwrap();
//! assert!(rules.iter().any(|r| r.src == Some("10.5.0.5/32".parse().unwrap()) && r.table == 100 && r.priority == 32765));
//! assert_eq!(pod.routes_in_table(100).await.unwrap().len(), 2); // default via 10.5.0.1, 10.5.0.0/24
//! assert!(pod.routes().await.unwrap().is_empty());
//! run(Command::Del).await.expect_success();
//! assert!(pod.rules().await.unwrap().iter().all(|r| r.table != 100));
//! # });
//! ```

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use cni_sdk::kit::{DirLock, GoJson, Undo, go, host_prefix, with_undo};
use cni_sdk::net::{Link, Net, Route, RouteProtocol, Rule, RuleAction, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN};
use cni_sdk::{CniResult, Context, Error, ErrorKind, IpConfig, Plugin, Result, cni_plugin};
use ipnet::IpNet;
use serde::Deserialize;

/// The first table ID ADD considers.
pub const FIRST_TABLE: u32 = 100;

/// The plugin's own keys (Go `PluginConf` of plugins/meta/sbr).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SbrKeys {
    /// A fixed table (Go v1.6.0+): only the rules are added, pointing at it.
    pub table: Option<i64>,
}

/// The configuration type: [`SbrKeys`] with Go's key matching.
pub type SbrConf = GoJson<SbrKeys>;

/// The sbr plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sbr;

/// The `table` key, checked: a routing table ID the kernel accepts for both families.
fn table_of(cx: &Context<SbrConf>) -> Result<Option<u32>> {
    match cx.plugin_config().table {
        None => Ok(None),
        Some(t) => u32::try_from(t).ok().filter(|t| *t != 0).map(Some).ok_or_else(|| {
            Error::invalid_config(format!("invalid table {t}: a routing table ID is between 1 and 4294967295"))
        }),
    }
}

/// Go `getIPCfgs`: the addresses of `prevResult` on `ifname` (those whose interface index
/// names it, those without an index, and those whose index is out of range).
fn ip_configs(ifname: &str, prev: &CniResult) -> Result<Vec<IpConfig>> {
    if prev.ips.is_empty() {
        return Err(Error::internal(format!("No IP addresses supplied on interface: {ifname}")));
    }
    Ok(prev
        .ips
        .iter()
        .filter(|ip| match ip.interface.and_then(|i| prev.interfaces.get(i)) {
            Some(intf) => intf.name == ifname,
            None => true,
        })
        .cloned()
        .collect())
}

/// The lock Go takes on the namespace path, so that sbr runs on one namespace are serialised
/// (`flock`, compatible with Go's). Unlike Go (bug B22) a path that does not exist is not
/// created: there is nothing to lock.
fn lock_netns(path: Option<&Path>) -> Result<Option<DirLock>> {
    let Some(path) = path else { return Ok(None) };
    match DirLock::exclusive(path) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::internal(format!("failed to lock {}: {e}", path.display()))),
    }
}

/// The container namespace, with Go's text when it is gone (`ns.GetNS`, unwrapped).
async fn container_net(cx: &Context<SbrConf>) -> Result<Net> {
    match cx.container_net_if_exists().await? {
        Some(net) => Ok(net),
        None => {
            let path = cx.netns().map(|p| p.display().to_string()).unwrap_or_default();
            Err(Error::from_kind(ErrorKind::NetnsGone, format!("failed to Statfs {path:?}: no such file or directory"))
                .with_code(cni_sdk::ErrorCode::Internal))
        }
    }
}

/// Whether a route belongs to an address's table: its source or gateway is in the address's
/// subnet, or it has neither (a connected route without source, an IPv6 prefix route).
fn belongs_to(route: &Route, addr: &IpNet) -> bool {
    route.source.is_some_and(|s| addr.contains(&s))
        || route.gateway.is_some_and(|g| addr.contains(&g))
        || (route.source.is_none() && route.gateway.is_none())
}

/// The first table from `candidate` that is not in `used`.
fn next_free(used: &BTreeSet<u32>, mut candidate: u32) -> u32 {
    while used.contains(&candidate) {
        candidate += 1;
    }
    candidate
}

/// Deletes `route`, counting a route that is already gone as deleted (for undo steps).
async fn delete_route_if_present(net: &Net, route: &Route) -> Result<()> {
    match net.delete_route(route).await {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Go `doRoutesWithTable`: only the rules.
async fn rules_to_table<'a>(ctr: &'a Net, ips: &[IpConfig], table: u32, undo: &mut Undo<'a>) -> Result<()> {
    for ip in ips {
        let src = host_prefix(ip.address.addr());
        ctr.rule().from(src).table(table).add().await.map_err(|e| go::wrap_net("failed to add rule", &e))?;
        undo.push("delete the rule", ctr.rule().from(src).table(table).delete());
    }
    Ok(())
}

/// Go `doRoutes`: a table per address with its rule, default route and routes, then the
/// interface's routes out of the main table.
async fn routes_to_tables<'a>(ctr: &'a Net, ips: &[IpConfig], ifname: &str, undo: &mut Undo<'a>) -> Result<()> {
    let rules = ctr.rules().await.map_err(|e| go::wrap_net("Failed to list all rules", &e))?;
    let all_routes = ctr.all_routes().await.map_err(|e| go::wrap_net("Failed to list all routes", &e))?;
    // Go only sees the main table's routes here; every table that holds routes is taken.
    let mut used: BTreeSet<u32> = rules
        .iter()
        .filter(|r| r.action == RuleAction::ToTable && !r.l3mdev)
        .map(|r| r.table)
        .chain(all_routes.iter().map(|r| r.table))
        .collect();
    let mut table = next_free(&used, FIRST_TABLE);
    let link: Link = ctr
        .find_link(ifname)
        .await?
        .ok_or_else(|| Error::internal(format!("Cannot find network interface {ifname}: Link not found")))?;
    let routes = ctr.routes_of_link(link.index).await.map_err(|e| go::wrap_net("Unable to list routes", &e))?;
    for ip in ips {
        let src = host_prefix(ip.address.addr());
        ctr.rule().from(src).table(table).add().await.map_err(|e| go::wrap_net("Failed to add rule", &e))?;
        undo.push("delete the rule", ctr.rule().from(src).table(table).delete());
        if let Some(gw) = ip.gateway {
            let dst: IpNet = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" }.parse().expect("constant");
            // As Go's netlink library adds it: protocol boot, universe scope, no metric.
            let mut route = Route::new(dst);
            route.gateway = Some(gw);
            route.oif = Some(link.index);
            route.table = table;
            route.protocol = RouteProtocol::Boot;
            ctr.add_route(&route)
                .await
                .map_err(|e| go::wrap_net(format!("Failed to add default route to {gw}"), &e))?;
            undo.push("delete the default route", async move { delete_route_if_present(ctr, &route).await });
        }
        for r in routes.iter().filter(|r| belongs_to(r, &ip.address)) {
            let mut copy = r.clone();
            copy.table = table;
            ctr.replace_route(&copy).await.map_err(|e| go::wrap_net("Failed to readd route", &e))?;
            undo.push("delete the copied route", async move { delete_route_if_present(ctr, &copy).await });
        }
        used.insert(table);
        table = next_free(&used, table + 1);
    }
    // Deleted only now: several addresses of one subnet all need the routes copied.
    for r in routes {
        ctr.delete_route(&r).await.map_err(|e| go::wrap_net("Failed to delete route", &e))?;
        undo.push("put the route back in the main table", async move { ctr.add_route(&r).await });
    }
    Ok(())
}

/// Whether `rule` is one this plugin makes for an address of the interface: `from <addr>/32`
/// (or `/128`) with nothing else but `lookup <table>`, where the table is the configured one,
/// or (without `table`) one of ours: from 100, not a reserved table, holding routes through the
/// interface and through no other link. Go deletes every rule from such an address (B24).
fn is_own_rule(rule: &Rule, addrs: &[IpAddr], table: Option<u32>, tables: &BTreeMap<u32, (bool, bool)>) -> bool {
    let shape =
        rule.src.is_some_and(|s| s.prefix_len() == host_prefix(s.addr()).prefix_len() && addrs.contains(&s.addr()))
            && rule.dst.is_none()
            && rule.iif.is_none()
            && rule.oif.is_none()
            && rule.fwmark.is_none()
            && !rule.invert
            && !rule.l3mdev
            && rule.action == RuleAction::ToTable;
    if !shape {
        return false;
    }
    match table {
        Some(t) => rule.table == t,
        None => {
            rule.table >= FIRST_TABLE
                && ![TABLE_DEFAULT, TABLE_MAIN, TABLE_LOCAL].contains(&rule.table)
                && tables.get(&rule.table).is_some_and(|(via_link, via_other)| *via_link && !*via_other)
        }
    }
}

/// Go `tidyRules` without its bugs: deletes this plugin's rules for the interface's addresses,
/// continuing after a failure and returning the last one.
async fn tidy_rules(ctr: &Net, ifname: &str, table: Option<u32>) -> Result<()> {
    let mut rules = ctr.rules().await.map_err(|e| match table {
        Some(t) => go::wrap_net(format!("failed to list rules of table {t} to tidy"), &e),
        None => go::wrap_net("Failed to list all rules to tidy", &e),
    })?;
    if let Some(t) = table {
        rules.retain(|r| r.table == t);
    }
    // The interface is gone: nothing of it to tidy (Go v1.1.1 failed, bug B23).
    let Some(link) = ctr.find_link(ifname).await? else { return Ok(()) };
    let addrs: Vec<IpAddr> = ctr
        .link_addresses(link.index)
        .await
        .map_err(|e| go::wrap_net("Failed to list all addrs", &e))?
        .into_iter()
        .map(|a| a.addr.addr())
        .collect();
    let mut tables: BTreeMap<u32, (bool, bool)> = BTreeMap::new();
    if table.is_none() {
        for r in ctr.all_routes().await.map_err(|e| go::wrap_net("Failed to list all routes", &e))? {
            let entry = tables.entry(r.table).or_default();
            if r.oif == Some(link.index) {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    let mut last = None;
    for rule in rules.iter().filter(|r| is_own_rule(r, &addrs, table, &tables)) {
        if let Err(e) = ctr.delete_rule(rule).await
            && !e.is_not_found()
        {
            tracing::warn!(rule = %rule, error = %e, "failed to delete a rule");
            // Go's text has no colon.
            last = Some(
                Error::from_kind(e.kind().into(), format!("Failed to delete rule {}", go::errno_text(&e)))
                    .with_code(cni_sdk::ErrorCode::Internal),
            );
        }
    }
    last.map_or(Ok(()), Err)
}

#[cni_plugin(about = "CNI sbr plugin (cni-rs)", name = "sbr", init = Sbr, main = false)]
impl Plugin for Sbr {
    type Config = SbrConf;

    async fn add(&self, cx: &Context<SbrConf>) -> Result<CniResult> {
        let table = table_of(cx)?;
        let prev = cx.prev_result().ok_or_else(|| Error::internal("This plugin must be called as chained plugin"))?;
        let ips = ip_configs(cx.ifname(), prev)?;
        let _lock = lock_netns(cx.netns())?;
        let ctr = container_net(cx).await?;
        with_undo(async |undo| match table {
            Some(t) => rules_to_table(&ctr, &ips, t, undo).await,
            None => routes_to_tables(&ctr, &ips, cx.ifname(), undo).await,
        })
        .await?;
        Ok(prev.clone())
    }

    async fn del(&self, cx: &Context<SbrConf>) -> Result<()> {
        let table = table_of(cx)?;
        let _lock = lock_netns(cx.netns())?;
        // No namespace (unset, or gone with its rules): nothing to tidy (Go bug B22 creates a
        // file at the vanished path and fails).
        let Some(ctr) = cx.container_net_if_exists().await? else { return Ok(()) };
        tidy_rules(&ctr, cx.ifname(), table).await
    }

    /// Go's CHECK does nothing and succeeds.
    async fn check(&self, _cx: &Context<SbrConf>) -> Result<()> {
        Ok(())
    }
}
