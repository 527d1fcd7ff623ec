//! `route-override`: a chained plugin that changes the container's routes — and the result —
//! after the interface plugin ran, passing everything else through unchanged.
//!
//! Keys (as the route-override plugin of the CNI community uses them): `flushroutes` (remove
//! every gateway route of the interface), `flushgateway` (remove default routes and the `gateway`
//! of every address), `delroutes` (`[{"dst"}]`), `addroutes` (`[{"dst", "gw"?}]`) and `skipcheck`.

use std::net::IpAddr;

use cni_sdk::net::{Net, Route as NetRoute, RouteScope};
use cni_sdk::{CniResult, Context, Error, Plugin, Result, Route, cni_plugin};
use ipnet::IpNet;
use serde::Deserialize;

/// A route in the configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct RouteSpec {
    /// Destination.
    pub dst: IpNet,
    /// Gateway (matched when deleting, used when adding).
    #[serde(default)]
    pub gw: Option<IpAddr>,
}

/// The plugin's own keys.
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    /// Delete every route of the container interface except the link-local ones.
    #[serde(default)]
    pub flushroutes: bool,
    /// Delete the default routes.
    #[serde(default)]
    pub flushgateway: bool,
    /// Routes to delete.
    #[serde(default)]
    pub delroutes: Vec<RouteSpec>,
    /// Routes to add.
    #[serde(default)]
    pub addroutes: Vec<RouteSpec>,
    /// Make CHECK a no-op.
    #[serde(default)]
    pub skipcheck: bool,
}

#[derive(Default, Debug)]
pub struct RouteOverride;

fn is_default(dst: &IpNet) -> bool {
    dst.prefix_len() == 0
}

async fn gateway_routes(net: &Net, index: u32) -> Result<Vec<NetRoute>> {
    let routes = net.routes().await?;
    Ok(routes.into_iter().filter(|r| r.oif == Some(index) && r.scope == RouteScope::Universe).collect())
}

#[cni_plugin(about = "CNI route-override plugin v0.1.0", main = false)]
impl Plugin for RouteOverride {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let conf = cx.plugin_config();
        let mut result = cx.prev_result().cloned().ok_or_else(|| {
            Error::invalid_config("route-override must be chained after an interface plugin (no prevResult)")
        })?;
        let net = cx.container_net().await?;
        let link = net.link(cx.ifname()).await?;
        for route in gateway_routes(&net, link.index).await? {
            let flush = conf.flushroutes
                || (conf.flushgateway && is_default(&route.dst))
                || conf.delroutes.iter().any(|d| d.dst.trunc() == route.dst);
            if flush {
                net.delete_route(&route).await?;
            }
        }
        if conf.flushroutes {
            result.routes.clear();
        }
        if conf.flushgateway {
            result.routes.retain(|r| !is_default(&r.dst));
            result.ips.iter_mut().for_each(|ip| ip.gateway = None);
        }
        result.routes.retain(|r| !conf.delroutes.iter().any(|d| d.dst.trunc() == r.dst.trunc()));
        for add in &conf.addroutes {
            let mut req = net.route(add.dst.trunc()).dev(link.index);
            if let Some(gw) = add.gw {
                req = req.gateway(gw);
            }
            req.add().await.map_err(|e| Error::from(e).context(format!("adding route {}", add.dst)))?;
            result.routes.push(Route::new(add.dst.trunc(), add.gw));
        }
        Ok(result)
    }

    async fn del(&self, _cx: &Context<Config>) -> Result<()> {
        // The routes go away with the interface the previous plugin removes.
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let conf = cx.plugin_config();
        if conf.skipcheck {
            return Ok(());
        }
        let net = cx.container_net().await?;
        let link = net.link(cx.ifname()).await?;
        let present = gateway_routes(&net, link.index).await?;
        let kernel = net.routes().await?;
        for add in &conf.addroutes {
            if !kernel.iter().any(|r| r.dst == add.dst.trunc() && r.gateway == add.gw) {
                return Err(Error::internal(format!("route {} is missing", add.dst)));
            }
        }
        for del in &conf.delroutes {
            if present.iter().any(|r| r.dst == del.dst.trunc()) {
                return Err(Error::internal(format!("route {} should have been removed", del.dst)));
            }
        }
        if conf.flushgateway && present.iter().any(|r| is_default(&r.dst)) {
            return Err(Error::internal("a default route is present although flushgateway is set"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
