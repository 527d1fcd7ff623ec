//! `portmap`: the reference CNI portmap plugin, a drop-in replacement for Go's
//! `plugins/meta/portmap` — host ports forwarded to a container with iptables (Go's chains and
//! comments, so Go's portmap and this one remove each other's mappings) or nftables (Go's
//! `cni_hostport` tables).
//!
//! A chained plugin: ADD reads the container's first IPv4 and IPv6 address from `prevResult`,
//! forwards every `runtimeConfig.portMappings` entry to it, and passes `prevResult` on
//! unchanged. DEL removes the container's rules, CHECK verifies them, GC (spec 1.1) removes
//! those of the network's containers that are no longer valid.
//!
//! Differences from Go's v1.1.1 (each is a Go bug or a limit, see the README): one firewall
//! commit per ADD/DEL/GC and IP family instead of dozens of `iptables` runs; a re-ADD replaces
//! the container's rules instead of keeping stale ones; CHECK of an IPv4-only container works;
//! a failed ADD leaves no rule behind; GC is implemented.

mod config;
mod iptables;
mod nftables;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;

use cni_sdk::firewall::{Firewall, FirewallErrorKind};
use cni_sdk::kit::{self, AttachmentRecords};
use cni_sdk::{CniResult, Context, Error, Plugin, Result, cni_plugin};

use config::Loaded;
pub use config::{Backend, DEFAULT_DATA_DIR, DEFAULT_MARK_BIT, PortMapConf};

/// The portmap plugin. Holds its iptables and nftables firewalls (fakes in tests).
#[derive(Debug, Clone)]
pub struct Portmap {
    iptables: Firewall,
    nftables: Firewall,
}

impl Default for Portmap {
    fn default() -> Self {
        Self::new()
    }
}

impl Portmap {
    /// The plugin with the system's iptables and nftables (over netlink, no `nft` process), in the
    /// plugin's own network namespace.
    pub fn new() -> Self {
        Self { iptables: Firewall::iptables(), nftables: Firewall::nftables_netlink() }
    }

    /// The plugin with other firewalls (e.g. `FakeFirewall`s, or the tools inside a namespace);
    /// the first must be of the iptables kind, the second of the nftables kind.
    pub fn with_firewalls(iptables: Firewall, nftables: Firewall) -> Self {
        Self { iptables, nftables }
    }

    fn records(ld: &Loaded) -> AttachmentRecords {
        AttachmentRecords::new(&ld.data_dir)
    }

    async fn load(&self, cx: &Context<PortMapConf>) -> Result<Loaded> {
        config::load(cx, &self.iptables, &self.nftables).await
    }

    /// Go `enableLocalnetRouting` on the link that routes to the container's IPv4 address, so
    /// that 127.0.0.0/8 sources can be DNATed to it.
    async fn enable_route_localnet(cx: &Context<PortMapConf>, ld: &Loaded) -> Result<()> {
        let Some(v4) = ld.container_v4.filter(|_| ld.snat) else { return Ok(()) };
        let host = cx.host_net().await?;
        // Go ignores a failed route lookup (no interface, nothing to set).
        let link = match kit::link_routing_to(&host, v4.addr()).await {
            Ok(Some(link)) => link,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "no route to the container; route_localnet left alone");
                return Ok(());
            }
        };
        host.set_sysctl(&format!("net/ipv4/conf/{}/route_localnet", link.name), "1")
            .await
            .map_err(|e| Error::from(e).wrap("unable to enable route_localnet"))
    }

    async fn add_iptables(&self, cx: &Context<PortMapConf>, ld: &Loaded) -> Result<()> {
        let (net, id) = (&cx.config().name, cx.container_id());
        let batch = iptables::setup_batch(ld, net, id);
        if let Err(e) = self.iptables.apply(&batch).await {
            // The first family may be committed when the second fails: leave nothing behind.
            if let Err(t) = iptables::teardown(&self.iptables, net, id).await {
                tracing::warn!(error = %t, "removing the rules of a failed ADD");
            }
            let msg = if e.kind() == FirewallErrorKind::Unavailable {
                "failed to open iptables"
            } else {
                "unable to setup DNAT"
            };
            return Err(Error::from(e).wrap(msg));
        }
        Ok(())
    }

    async fn add_nftables(&self, cx: &Context<PortMapConf>, ld: &Loaded) -> Result<()> {
        let (net, id, ifname) = (&cx.config().name, cx.container_id(), cx.ifname());
        let addrs: Vec<IpAddr> = ld.container_nets().iter().map(|n| n.addr()).collect();
        let records = Self::records(ld);
        records.save(net, id, ifname, &addrs)?;
        if let Err(e) = self.nftables.apply(&nftables::setup_batch(ld, id)).await {
            let _ = records.remove(net, id, ifname);
            return Err(Error::from(e).wrap("unable to set up nftables rules for port mappings"));
        }
        Ok(())
    }

    async fn del_nftables(&self, cx: &Context<PortMapConf>, ld: &Loaded) -> Result<()> {
        let (net, id, ifname) = (&cx.config().name, cx.container_id(), cx.ifname());
        let records = Self::records(ld);
        // The addresses of this attachment: prevResult's, else the ones ADD recorded, else none
        // (then every rule of the container goes, as in Go).
        let mut addrs: Vec<IpAddr> = ld.container_nets().iter().map(|n| n.addr()).collect();
        if addrs.is_empty() {
            addrs = records.load::<Vec<IpAddr>>(net, id, ifname)?.unwrap_or_default();
        }
        self.nftables
            .apply(&nftables::teardown_batch(id, &addrs))
            .await
            .map_err(|e| Error::from(e).wrap("error deleting nftables rules"))?;
        records.remove(net, id, ifname)
    }
}

#[cni_plugin(about = "CNI portmap plugin (cni-rs)", name = "portmap", init = Portmap::new, main = false)]
impl Plugin for Portmap {
    type Config = PortMapConf;

    async fn add(&self, cx: &Context<PortMapConf>) -> Result<CniResult> {
        let ld = self.load(cx).await.map_err(|e| e.wrap("failed to parse config"))?;
        let prev = cx.prev_result().ok_or_else(|| Error::internal("must be called as chained plugin"))?;
        if ld.mappings.is_empty() || ld.container_nets().is_empty() {
            return Ok(prev.clone());
        }
        Self::enable_route_localnet(cx, &ld).await?;
        match ld.backend {
            Backend::Iptables => self.add_iptables(cx, &ld).await?,
            Backend::Nftables => self.add_nftables(cx, &ld).await?,
        }
        Ok(prev.clone())
    }

    async fn del(&self, cx: &Context<PortMapConf>) -> Result<()> {
        let ld = self.load(cx).await.map_err(|e| e.wrap("failed to parse config"))?;
        if ld.mappings.is_empty() {
            return Ok(());
        }
        match ld.backend {
            Backend::Iptables => iptables::teardown(&self.iptables, &cx.config().name, cx.container_id()).await,
            Backend::Nftables => self.del_nftables(cx, &ld).await,
        }
    }

    async fn check(&self, cx: &Context<PortMapConf>) -> Result<()> {
        let ld = self.load(cx).await?;
        if cx.prev_result().is_none() {
            return Err(Error::internal("Required prevResult missing"));
        }
        if ld.mappings.is_empty() {
            return Ok(());
        }
        for container in ld.container_nets() {
            match ld.backend {
                Backend::Iptables => {
                    iptables::check(&self.iptables, &ld, &cx.config().name, cx.container_id(), container).await?;
                }
                Backend::Nftables => nftables::check(&self.nftables, &ld, cx.container_id(), container).await?,
            }
        }
        Ok(())
    }

    /// Removes the mappings of this network's containers that are not in the valid list: the
    /// iptables chains found by their comments, the nftables rules from the records ADD kept.
    /// Another network's mappings are never touched; a backend that is not usable is skipped.
    async fn gc(&self, cx: &Context<PortMapConf>) -> Result<()> {
        let network = &cx.config().name;
        let valid = cx.gc_attachments();
        let keep: BTreeSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
        let mut errors: Vec<Error> = Vec::new();
        if self.iptables.is_usable().await {
            match iptables::gc(&self.iptables, network, &keep).await {
                Ok(ids) if !ids.is_empty() => tracing::info!(containers = ?ids, "removed stale iptables port mappings"),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        let dir = cx.plugin_config().data_dir.clone().unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let records = AttachmentRecords::new(dir);
        let stale = records.stale::<Vec<IpAddr>>(network, valid)?;
        if !stale.is_empty() {
            let usable = self.nftables.is_usable().await;
            for r in stale {
                if usable && let Err(e) = self.nftables.apply(&nftables::teardown_batch(&r.container_id, &r.data)).await
                {
                    errors.push(Error::from(e).wrap("error deleting nftables rules"));
                    continue;
                }
                records.remove(network, &r.container_id, &r.ifname)?;
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::internal(errors.iter().map(|e| e.message().to_owned()).collect::<Vec<_>>().join("; "))),
        }
    }
}
