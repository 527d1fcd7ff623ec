//! `loopback`: brings `lo` up in the container's network namespace — a drop-in replacement
//! for the Go reference plugin (same results and errors; `CNI_IFNAME` is ignored).

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use cni_sdk::{CniResult, Context, Error, Interface, IpConfig, Plugin, Result, cni_plugin};

/// The loopback plugin.
#[derive(Default, Debug)]
pub struct Loopback;

/// The interface this plugin manages, whatever `CNI_IFNAME` says.
const LO: &str = "lo";

/// The container's namespace; a missing one is Go's plain error (code 999, same message).
async fn container_net(cx: &Context<()>) -> Result<cni_sdk::net::Net> {
    match cx.container_net_if_exists().await? {
        Some(net) => Ok(net),
        None => {
            let path = cx.netns().map(|p| p.display().to_string()).unwrap_or_default();
            Err(Error::internal(format!("failed to Statfs {path:?}: no such file or directory")))
        }
    }
}

#[cni_plugin(about = "CNI loopback plugin v0.1.0", main = false)]
impl Plugin for Loopback {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let net = container_net(cx).await?;
        let lo = net.link(LO).await?;
        net.set_up(lo.index).await?;
        let addrs = net.link_addresses(lo.index).await?;
        let (mut v4, mut v6) = (None, None);
        for a in &addrs {
            if !a.addr.addr().is_loopback() {
                return Err(Error::internal(format!(
                    "loopback interface found with non-loopback address {:?}",
                    a.addr.addr().to_string()
                )));
            }
            match a.addr.addr() {
                IpAddr::V4(_) => v4 = v4.or(Some(a.addr)),
                IpAddr::V6(_) => v6 = v6.or(Some(a.addr)),
            }
        }
        // Chained after another plugin: pass its result on unchanged.
        if let Some(prev) = cx.prev_result() {
            return Ok(prev.clone());
        }
        let mut iface = Interface::new(LO);
        iface.mac = Some("00:00:00:00:00:00".parse().expect("a valid MAC address"));
        iface.sandbox = cx.netns().map(|p| p.display().to_string());
        let mut result = CniResult::default();
        result.interfaces.push(iface);
        for addr in [v4, v6].into_iter().flatten() {
            result.ips.push(IpConfig { address: addr, gateway: None, interface: Some(0) });
        }
        Ok(result)
    }

    async fn del(&self, cx: &Context<()>) -> Result<()> {
        // No namespace, or one that is already gone: nothing to undo.
        let Some(net) = cx.container_net_if_exists().await? else { return Ok(()) };
        let lo = net.link(LO).await?;
        net.set_down(lo.index).await?;
        Ok(())
    }

    async fn check(&self, cx: &Context<()>) -> Result<()> {
        let net = container_net(cx).await?;
        let lo = net.link(LO).await?;
        if !lo.up {
            return Err(Error::internal("loopback interface is down"));
        }
        Ok(())
    }
}
