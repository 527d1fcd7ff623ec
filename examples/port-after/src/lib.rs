//! `netwire-cni`: the `netwire` library (examples/port-before) as a CNI plugin.
//!
//! The library keeps all netlink work. This file only adapts: the network configuration
//! becomes a typed [`Config`], the IPAM plugin's result becomes a [`netwire::Wiring`], the
//! library's errors become CNI error codes, and DEL tolerates everything already being gone.
//! `docs/porting.md` walks through it.

use cni_sdk::{CniResult, Context, Error, Interface, IpConfig, Plugin, Result, cni_plugin};
use netwire::Wiring;
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// The plugin's own keys of the network configuration: what used to be CLI flags, minus the
/// addresses and gateway, which now come from IPAM.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// `--mtu`.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Replaces `--host-ifname`: the host end is named from the container, so that DEL, which
    /// gets no result, finds the same name.
    #[serde(default = "default_prefix")]
    pub host_prefix: String,
}

fn default_prefix() -> String {
    "nw".to_owned()
}

impl Config {
    fn host_ifname(&self, container_id: &str, ifname: &str) -> Result<String> {
        if self.host_prefix.is_empty() || self.host_prefix.len() > 7 || !self.host_prefix.is_ascii() {
            return Err(Error::invalid_config(format!("hostPrefix {:?}: 1 to 7 ASCII characters", self.host_prefix)));
        }
        let mut hash: u32 = 0x811c_9dc5; // FNV-1a: stable, no dependency
        for b in container_id.bytes().chain([b'/']).chain(ifname.bytes()) {
            hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        Ok(format!("{}{hash:08x}", self.host_prefix))
    }

    /// The library's input for this request.
    fn wiring(&self, cx: &Context<Config>) -> Result<Wiring> {
        let mut spec = Wiring::new(&self.host_ifname(cx.container_id(), cx.ifname())?, cx.ifname());
        spec.mtu = self.mtu;
        Ok(spec)
    }
}

/// Maps an IPAM result onto the library's model, refusing what the library cannot do.
fn with_addresses(mut spec: Wiring, ipam: &CniResult) -> Result<Wiring> {
    if let Some(route) = ipam.routes.iter().find(|r| r.dst.prefix_len() != 0) {
        return Err(Error::invalid_config(format!(
            "netwire installs only default routes, IPAM asked for {}",
            route.dst
        )));
    }
    spec.addresses = ipam.ips.iter().map(|ip| ip.address).collect();
    spec.gateway = ipam.ips.iter().find_map(|ip| ip.gateway);
    Ok(spec)
}

/// The library's errors as CNI errors: a name clash is the caller's configuration problem (7),
/// a CHECK mismatch and netlink failures are internal (999) with the cause in `details`.
fn cni_error(e: netwire::Error) -> Error {
    match e {
        netwire::Error::Exists(_) => Error::invalid_config(e.to_string()),
        netwire::Error::Mismatch(msg) => Error::internal(msg),
        netwire::Error::Net(net) => Error::internal("netlink operation failed").with_source(net),
    }
}

/// The plugin: stateless, so the default value is all `main` needs.
#[derive(Debug, Default)]
pub struct NetwirePlugin;

#[cni_plugin(main = false)]
impl Plugin for NetwirePlugin {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let spec = cx.plugin_config().wiring(cx)?;
        let (host, ctr) = (cx.host_net().await?, cx.container_net().await?);
        // `netwire up --address … --gateway …`, with the addresses from IPAM; when wiring
        // fails, the IPAM lease is released again.
        cx.ipam()?
            .add_with_rollback(|ipam| async move {
                let spec = with_addresses(spec, &ipam)?;
                let wired = netwire::wire(&host, &ctr, &spec).await.map_err(cni_error)?;
                let sandbox = cx.netns().map(|p| p.display().to_string());
                let interfaces = vec![
                    Interface { mac: Some(wired.host.mac.into()), ..Interface::new(wired.host.name) },
                    Interface { mac: Some(wired.inner.mac.into()), sandbox, ..Interface::new(wired.inner.name) },
                ];
                let ips = ipam.ips.into_iter().map(|ip| IpConfig { interface: Some(1), ..ip }).collect();
                Ok(CniResult { interfaces, ips, ..ipam })
            })
            .await
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        let spec = cx.plugin_config().wiring(cx)?;
        cx.ipam()?.del().await?;
        // `netwire down`: the namespace may be gone (`None`), the links may be gone; both fine.
        let ctr = cx.container_net_if_exists().await?;
        netwire::unwire(&cx.host_net().await?, ctr.as_ref(), &spec).await.map_err(cni_error)?;
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let mut spec = cx.plugin_config().wiring(cx)?;
        cx.ipam()?.check().await?;
        // `netwire verify`, against what ADD returned (the runtime sends it as prevResult).
        if let Some(prev) = cx.prev_result() {
            spec.addresses = prev.ips.iter().map(|ip| ip.address).collect();
        }
        let (host, ctr) = (cx.host_net().await?, cx.container_net().await?);
        netwire::verify(&host, &ctr, &spec).await.map_err(cni_error)
    }
}
