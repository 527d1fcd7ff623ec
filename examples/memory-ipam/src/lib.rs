//! `memory-ipam`: an IPAM plugin whose leases live in a daemon's memory.
//!
//! The plugin type is the same whichever way it runs; one line of the binary decides:
//!
//! * `memory-ipam-inproc` runs it in-process (`cni_sdk::plugin_main`) — state would not
//!   survive the process, so this is only useful for tests;
//! * `memory-ipam` is the shim (`cni_sdk::daemon::shim_main`) that forwards to
//! * `memory-ipamd`, the daemon holding the leases.
//!
//! The daemon keeps its leases in memory and, with `--state-dir`, also on disk
//! ([`MemoryIpam::persistent`]), written before each answer: a daemon restarted after a crash
//! or an upgrade hands out no address twice and forgets none.

mod store;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

pub use cni_sdk::kit::Durability;
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
    store: Option<store::Store>,
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

    /// Leases kept in memory and in `dir` (created if missing; see the `store` module for
    /// the layout): loads what an earlier daemon left, removes the temporaries of a killed one,
    /// and locks the directory for this value's life.
    ///
    /// # Errors
    /// When the directory cannot be created, read or locked (another daemon uses it).
    pub fn persistent(dir: &Path, durability: Durability) -> std::io::Result<Self> {
        let (store, leases) = store::Store::open(dir, durability)?;
        Ok(Self { leases: RefCell::new(leases), store: Some(store) })
    }

    fn io_error(what: String, e: &std::io::Error) -> Error {
        Error::new(ErrorCode::IoFailure, what).with_details(e.to_string())
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
                // On disk before it is answered (and before it is in memory: a failed write
                // leaves nothing).
                if let Some(store) = &self.store {
                    store.save(&cx.config().name, &key.0, &key.1, net).map_err(|e| {
                        Self::io_error(
                            format!("failed to record the lease of {} for {} {}", net.addr(), key.0, key.1),
                            &e,
                        )
                    })?;
                }
                leases.insert(key, net);
                net
            }
        };
        let mut r = CniResult::default();
        r.ips.push(IpConfig { gateway: pool.gateway, ..IpConfig::new(addr) });
        Ok(r)
    }

    /// Releases the lease; when the release cannot be recorded (read-only or failing disk)
    /// the lease is kept and DEL fails, so a retried DEL finishes the job.
    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        let network = &cx.config().name;
        let key = Self::key(cx);
        let mut all = self.leases.borrow_mut();
        let Some(leases) = all.get_mut(network) else { return Ok(()) };
        let Some(addr) = leases.get(&key).copied() else { return Ok(()) };
        if let Some(store) = &self.store {
            store.forget(network, &addr).map_err(|e| {
                Self::io_error(format!("failed to record the release of {} for {} {}", addr.addr(), key.0, key.1), &e)
            })?;
        }
        leases.remove(&key);
        Ok(())
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let held = self.leases.borrow().get(&cx.config().name).is_some_and(|l| l.contains_key(&Self::key(cx)));
        if held { Ok(()) } else { Err(Error::internal(format!("no lease for {} {}", cx.container_id(), cx.ifname()))) }
    }

    async fn gc(&self, cx: &Context<Config>) -> Result<()> {
        let network = &cx.config().name;
        let valid = cx.gc_attachments();
        let mut all = self.leases.borrow_mut();
        let Some(leases) = all.get_mut(network) else { return Ok(()) };
        let stale: Vec<((String, String), IpNet)> = leases
            .iter()
            .filter(|((id, ifname), _)| !valid.iter().any(|a| &a.container_id == id && &a.ifname == ifname))
            .map(|(k, a)| (k.clone(), *a))
            .collect();
        let mut errors = Vec::new();
        for (key, addr) in stale {
            if let Some(store) = &self.store
                && let Err(e) = store.forget(network, &addr)
            {
                errors.push(format!("{} ({} {}): {e}", addr.addr(), key.0, key.1));
                continue;
            }
            leases.remove(&key);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::IoFailure, "failed to record the release of stale leases")
                .with_details(errors.join("; ")))
        }
    }
}
