//! `{{plugin_type}}`: a chained CNI plugin that adds routes to the container's interface.
//!
//! It runs after the plugin that creates the interface (`bridge`, `ptp`, `macvlan`, ...) in a
//! configuration list, and works on that plugin's result, which the runtime passes as
//! `prevResult`: ADD routes the configured destinations through the interface `CNI_IFNAME`
//! (via the gateway the previous result has for their family, unless a route names its own)
//! and returns the previous result with these routes added. It allocates nothing.
//!
//! Two rules of chaining shape the code:
//! * DEL runs in reverse order, so this plugin's DEL comes before the interface plugin's and
//!   must cope with the namespace, the interface or the routes being gone already.
//! * CHECK hands every plugin the *final* result: the routes this plugin adds are checked by
//!   the plugins before it too (the reference plugins verify every route of the result), so
//!   whatever this plugin adds to the result must really exist in the container.

use std::net::IpAddr;

use cni_sdk::kit;
use cni_sdk::net::{Link, Net};
use cni_sdk::types::Route;
use cni_sdk::{CniResult, Context, Error, Plugin, Result, cni_plugin};
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// The plugin's own keys of the network configuration (next to `cniVersion`, `name` and
/// `type`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    /// Routes to add in the container, as in a CNI result: `{"dst": "10.96.0.0/12"}`, with an
    /// optional `"gw"`. Only `dst` and `gw` are used.
    routes: Vec<Route>,
}

impl Config {
    /// Rejects what cannot work, with CNI error code 7, before anything is changed.
    fn validate(&self) -> Result<()> {
        if self.routes.is_empty() {
            return Err(Error::invalid_config("\"routes\" must list at least one route"));
        }
        for route in &self.routes {
            if let Some(gw) = route.gw
                && gw.is_ipv4() != route.dst.addr().is_ipv4()
            {
                return Err(Error::invalid_config(format!(
                    "route to {}: gateway {gw} is of another family",
                    route.dst
                )));
            }
        }
        Ok(())
    }

    /// The routes as installed: each with its own gateway, else the previous result's gateway
    /// of its family, else none (the destination is on the link).
    fn routes(&self, prev: Option<&CniResult>) -> Vec<Route> {
        let gateway_of_family = |dst: IpAddr| {
            prev.into_iter().flat_map(|p| &p.ips).filter_map(|ip| ip.gateway).find(|gw| gw.is_ipv4() == dst.is_ipv4())
        };
        self.routes.iter().map(|r| Route::new(r.dst, r.gw.or_else(|| gateway_of_family(r.dst.addr())))).collect()
    }
}

/// The previous plugin's result; a chained plugin has nothing to work on without it.
fn previous(cx: &Context<Config>) -> Result<&CniResult> {
    cx.prev_result().ok_or_else(|| {
        Error::invalid_config("{{plugin_type}} must be chained after the plugin that creates the interface: no prevResult")
    })
}

/// The container interface the previous plugin created.
async fn container_link(ctr: &Net, ifname: &str) -> Result<Link> {
    ctr.find_link(ifname).await?.ok_or_else(|| Error::not_found(format!("no interface {ifname:?} in the container")))
}

/// Deletes `route` through `index`; a route (or link) that is gone already is fine.
async fn delete_route(net: &Net, index: u32, route: &Route) -> Result<()> {
    let mut req = net.route(route.dst).dev(index);
    if let Some(gw) = route.gw {
        req = req.gateway(gw);
    }
    match req.delete().await {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// The route plugin. It holds no state: everything it needs is in the request.
#[derive(Debug, Default)]
struct RoutePlugin;

#[cni_plugin]
impl Plugin for RoutePlugin {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let prev = previous(cx)?;
        let conf = cx.plugin_config();
        conf.validate()?;
        let ctr = cx.container_net().await?;
        let link = container_link(&ctr, cx.ifname()).await?;
        let routes = conf.routes(Some(prev));
        // A route that fails half-way removes the ones added before it.
        kit::with_undo(async |undo| {
            for route in &routes {
                let mut req = ctr.route(route.dst).dev(link.index);
                if let Some(gw) = route.gw {
                    req = req.gateway(gw);
                }
                req.add().await.map_err(|e| Error::from(e).wrap(format!("adding the route to {}", route.dst)))?;
                undo.push(format!("delete the route to {}", route.dst), delete_route(&ctr, link.index, route));
            }
            Ok(())
        })
        .await?;
        let mut result = prev.clone();
        result.routes.extend(routes);
        Ok(result)
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        // DEL runs before the interface plugin's DEL: the namespace, the interface or the
        // routes may be gone already (a repeated DEL, a namespace deleted under us), and
        // prevResult is absent before spec 0.4.0.
        let Some(ctr) = cx.container_net_if_exists().await? else { return Ok(()) };
        let Some(link) = ctr.find_link(cx.ifname()).await? else { return Ok(()) };
        for route in cx.plugin_config().routes(cx.prev_result()) {
            delete_route(&ctr, link.index, &route).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let prev = previous(cx)?;
        let conf = cx.plugin_config();
        conf.validate()?;
        let ctr = cx.container_net().await?;
        container_link(&ctr, cx.ifname()).await?;
        kit::validate_expected_routes(&ctr, &conf.routes(Some(prev))).await
    }
}
