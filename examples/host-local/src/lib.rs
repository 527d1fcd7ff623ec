//! `host-local`: an IPAM plugin that hands out addresses from configured ranges and records
//! leases in files below `dataDir` — a drop-in replacement for the Go reference plugin (same
//! configuration, results, errors and on-disk store, so both can share one directory), plus
//! GC (spec 1.1.0), which the Go plugin lacks.

mod allocator;
mod config;
mod dns;
mod fault;
mod index;
mod store;
#[cfg(test)]
mod tests;

use cni_sdk::{CniResult, Context, Plugin, Result, cni_plugin};

use self::allocator::Allocator;
use self::config::{IpamConf, plain};
use self::store::Store;

/// The host-local plugin; all state lives on disk.
#[derive(Default, Debug)]
pub struct HostLocal;

fn open_store(conf: &IpamConf) -> Result<Store> {
    Store::open(&conf.data_dir, &conf.name).map_err(|e| plain(e.to_string()))
}

#[cni_plugin(about = "CNI host-local plugin v0.1.0", main = false)]
impl Plugin for HostLocal {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let conf = config::load(cx)?;
        let mut result = CniResult::default();
        if let Some(path) = &conf.resolv_conf {
            result.dns = dns::parse_resolv_conf(path).map_err(plain)?;
        }
        let store = open_store(&conf)?;
        let (id, ifname) = (cx.container_id(), cx.ifname());

        let mut requested = conf.requested.clone();
        let mut allocated = 0;
        for (idx, set) in conf.ranges.iter().enumerate() {
            let wanted = requested.iter().position(|ip| set.contains(*ip)).map(|i| requested.remove(i));
            match Allocator::new(set, &store, idx).get(id, ifname, wanted) {
                Ok(ip) => {
                    allocated += 1;
                    result.ips.push(ip);
                }
                Err(e) => {
                    for _ in 0..allocated {
                        let _ = store.release_by_id(id, ifname);
                    }
                    return Err(plain(format!("failed to allocate for range {idx}: {e}")));
                }
            }
        }
        if !requested.is_empty() {
            for _ in 0..allocated {
                let _ = store.release_by_id(id, ifname);
            }
            let list: Vec<String> = requested.iter().map(ToString::to_string).collect();
            return Err(plain(format!("failed to allocate all requested IPs: {}", list.join(" "))));
        }
        result.routes = conf.routes;
        Ok(result)
    }

    async fn del(&self, cx: &Context<()>) -> Result<()> {
        let conf = config::load(cx)?;
        let store = open_store(&conf)?;
        // Like Go: one release per range set, errors joined.
        let errors: Vec<String> = conf
            .ranges
            .iter()
            .filter_map(|_| store.release_by_id(cx.container_id(), cx.ifname()).err())
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(plain(errors.join(";"))) }
    }

    async fn check(&self, cx: &Context<()>) -> Result<()> {
        let conf = config::load(cx)?;
        let store = open_store(&conf)?;
        if store.find_by_id(cx.container_id(), cx.ifname()).map_err(|e| plain(e.to_string()))? {
            Ok(())
        } else {
            Err(plain(format!("host-local: Failed to find address added by container {}", cx.container_id())))
        }
    }

    /// Releases every lease whose (container ID, interface) is not a valid attachment; legacy
    /// leases (container ID only) stay while any attachment of that container is valid.
    async fn gc(&self, cx: &Context<()>) -> Result<()> {
        let conf = config::load(cx)?;
        let store = open_store(&conf)?;
        let valid = cx.gc_attachments();
        let mut errors = Vec::new();
        for lease in store.leases().map_err(|e| plain(e.to_string()))? {
            let keep = valid
                .iter()
                .any(|a| a.container_id == lease.container_id && lease.ifname.as_ref().is_none_or(|i| *i == a.ifname));
            if !keep && let Err(e) = store.remove(&lease) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(plain(errors.join(";"))) }
    }
}
