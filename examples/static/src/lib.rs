//! `static`: an IPAM plugin that hands out the addresses written in the configuration (or
//! passed by the runtime) — a drop-in replacement for Go's `plugins/ipam/static`: the same keys
//! (`ipam.addresses`, `ipam.routes`, `ipam.dns`, `args.cni.ips`, `runtimeConfig.ips`,
//! `CNI_ARGS` `IP` and `GATEWAY`), the same order of precedence, results and error texts, for
//! every spec version.
//!
//! One deliberate difference: CHECK also fails when a configured address is missing from
//! `prevResult` (Go only compares the gateways of the addresses it finds there).

mod config;
#[cfg(test)]
mod tests;

use cni_sdk::{CniResult, Context, IpConfig, Plugin, Result, cni_plugin};

use self::config::plain;

/// The static IPAM plugin (stateless).
#[derive(Debug, Default)]
pub struct Static;

#[cni_plugin(about = "CNI static plugin (cni-rs)", name = "static", main = false)]
impl Plugin for Static {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let conf = config::load(cx)?;
        Ok(CniResult {
            ips: conf.addresses.iter().map(|a| IpConfig { gateway: a.gateway, ..IpConfig::new(a.net) }).collect(),
            routes: conf.routes,
            dns: conf.dns,
            ..CniResult::default()
        })
    }

    /// Nothing was allocated, so nothing is released (Go does not even read the configuration).
    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    /// Every configured address must be in `prevResult` with the configured gateway.
    async fn check(&self, cx: &Context<()>) -> Result<()> {
        let conf = config::load(cx)?;
        let prev = cx.prev_result().ok_or_else(|| plain("Required prevResult missing"))?;
        for want in &conf.addresses {
            let found = prev.ips.iter().find(|ip| ip.address.addr() == want.net.addr());
            let matches = found.is_some_and(|ip| want.gateway.is_none() || want.gateway == ip.gateway);
            if !matches {
                return Err(plain(format!(
                    "static: Failed to match addr {} on interface {}",
                    want.net.addr(),
                    cx.ifname()
                )));
            }
        }
        Ok(())
    }
}
