//! `memory-ipam`: an IPAM plugin whose leases live in a daemon's memory.
//!
//! The plugin type is the same whichever way it runs; one line of the binary decides:
//!
//! * `memory-ipam-inproc` runs it in-process (`cni_sdk::plugin_main`) — state would not
//!   survive the process, so this is only useful for tests;
//! * `memory-ipam` is the shim (`cni_sdk::daemon::shim_main`) that forwards to
//! * `memory-ipamd`, the daemon holding the leases.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;

use cni_sdk::{CniResult, Context, Error, ErrorCode, IpConfig, Plugin, PluginOptions, Result};
use ipnet::IpNet;
use serde::Deserialize;

/// The socket the shim and the daemon meet on.
pub const SOCKET: &str = "/run/cni/memory-ipam.sock";

/// The plugin's options (shared by all three binaries).
pub fn options() -> PluginOptions {
    PluginOptions::new("CNI memory-ipam plugin v0.1.0 (daemon-backed)")
}

/// `ipam` keys.
#[derive(Debug, Deserialize)]
pub struct Ipam {
    /// The pool.
    pub subnet: IpNet,
    /// Gateway to report.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// The plugin's own configuration: only `ipam` matters, and it is a well-known key.
#[derive(Debug, Default, Deserialize)]
pub struct Config {}

/// The leases of one network: `(container ID, ifname)` → address.
type Leases = BTreeMap<(String, String), IpNet>;

/// Leases per network.
#[derive(Debug, Default)]
pub struct MemoryIpam {
    leases: RefCell<BTreeMap<String, Leases>>,
}

impl MemoryIpam {
    fn pool(cx: &Context<Config>) -> Result<Ipam> {
        let raw = cx.config().ipam.as_ref().ok_or_else(|| Error::invalid_config("missing \"ipam\""))?;
        serde_json::from_value(serde_json::Value::Object(raw.extra.clone()))
            .map_err(|e| Error::invalid_config(format!("invalid ipam section: {e}")))
    }

    fn key(cx: &Context<Config>) -> (String, String) {
        (cx.container_id().to_owned(), cx.ifname().to_owned())
    }

    /// Number of leases of `network` (for tests and metrics).
    pub fn lease_count(&self, network: &str) -> usize {
        self.leases.borrow().get(network).map_or(0, BTreeMap::len)
    }
}

impl Plugin for MemoryIpam {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let pool = Self::pool(cx)?;
        let mut all = self.leases.borrow_mut();
        let leases = all.entry(cx.config().name.clone()).or_default();
        let key = Self::key(cx);
        let addr = match leases.get(&key) {
            Some(a) => *a,
            None => {
                let used: Vec<IpAddr> = leases.values().map(IpNet::addr).collect();
                let free = pool.subnet.hosts().find(|ip| Some(*ip) != pool.gateway && !used.contains(ip)).ok_or_else(
                    || Error::new(ErrorCode::TryAgainLater, format!("no free address in {}", pool.subnet)),
                )?;
                let net = IpNet::new(free, pool.subnet.prefix_len()).expect("prefix of the pool");
                leases.insert(key, net);
                net
            }
        };
        let mut r = CniResult::default();
        r.ips.push(IpConfig { gateway: pool.gateway, ..IpConfig::new(addr) });
        Ok(r)
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        if let Some(leases) = self.leases.borrow_mut().get_mut(&cx.config().name) {
            leases.remove(&Self::key(cx));
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let held = self.leases.borrow().get(&cx.config().name).is_some_and(|l| l.contains_key(&Self::key(cx)));
        if held { Ok(()) } else { Err(Error::internal(format!("no lease for {} {}", cx.container_id(), cx.ifname()))) }
    }

    async fn gc(&self, cx: &Context<Config>) -> Result<()> {
        let valid = cx.gc_attachments();
        if let Some(leases) = self.leases.borrow_mut().get_mut(&cx.config().name) {
            leases.retain(|(id, ifname), _| valid.iter().any(|a| &a.container_id == id && &a.ifname == ifname));
        }
        Ok(())
    }
}
