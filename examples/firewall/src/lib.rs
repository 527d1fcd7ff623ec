//! `firewall`: the reference CNI firewall plugin, a drop-in replacement for Go's
//! `plugins/meta/firewall` with its iptables backend (`CNI-FORWARD` and `CNI-ADMIN` chains,
//! Go's rules and comments) and `ingressPolicy` (`open`, `same-bridge`, `isolated`).
//!
//! A chained plugin: ADD lets traffic from the container's addresses, and replies to them,
//! through the host's `FORWARD` chain, and passes `prevResult` on unchanged. The firewalld
//! backend (D-Bus) is not implemented and is refused with a clear error.
//!
//! Differences from Go (see the README): the rules of one ADD, DEL or GC are one
//! `iptables-restore` per family; CHECK does not create chains; an unknown `ingressPolicy` or a
//! missing bridge fails before anything is added; a DEL without `prevResult` removes the rules
//! ADD added (from a record it keeps), and GC (spec 1.1) removes those of the network's
//! attachments that are no longer valid.

mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::PathBuf;

use cni_sdk::firewall::names::FIREWALL_ADMIN_CHAIN;
use cni_sdk::firewall::{Batch, Firewall, FirewallErrorKind, IpFamily};
use cni_sdk::kit::{AttachmentRecords, Record};
use cni_sdk::{CniResult, Context, Error, Plugin, Result, cni_plugin};
use ipnet::IpNet;
use serde::Deserialize;

pub use rules::IngressPolicy;

/// Where the attachment records live unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/firewall";

/// The firewall plugin's configuration keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallConf {
    /// `iptables`, `firewalld` (refused), anything else: automatic (iptables here).
    #[serde(default)]
    pub backend: Option<String>,
    /// The administrator chain jumped to first from `CNI-FORWARD` (default `CNI-ADMIN`).
    #[serde(default)]
    pub iptables_admin_chain_name: Option<String>,
    /// firewalld's zone (only meaningful to the firewalld backend, which is refused).
    #[serde(default)]
    pub firewalld_zone: Option<String>,
    /// `open` (default), `same-bridge` or `isolated`.
    #[serde(default)]
    pub ingress_policy: Option<String>,
    /// Where the attachment records are kept (extension; default `/var/lib/cni/firewall`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

impl FirewallConf {
    fn admin_chain(&self) -> &str {
        self.iptables_admin_chain_name.as_deref().filter(|s| !s.is_empty()).unwrap_or(FIREWALL_ADMIN_CHAIN)
    }

    fn records(&self) -> AttachmentRecords {
        AttachmentRecords::new(self.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
    }

    /// Go `getBackend`, without D-Bus: `firewalld` is refused; anything else (Go's automatic
    /// choice finds no firewalld without a system bus) is iptables.
    fn check_backend(&self) -> Result<()> {
        if self.backend.as_deref() == Some("firewalld") {
            return Err(Error::unsupported_field("backend", "\"firewalld\"").with_details(
                "the firewalld backend talks to firewalld over D-Bus, which this plugin does not implement; \
                 use \"iptables\" (or leave backend unset)",
            ));
        }
        Ok(())
    }
}

/// The firewall plugin. Holds its iptables firewall (a fake in tests).
#[derive(Debug, Clone)]
pub struct FirewallPlugin {
    iptables: Firewall,
}

impl Default for FirewallPlugin {
    fn default() -> Self {
        Self::new()
    }
}

/// The families of `addrs`, IPv4 first, with their addresses.
fn by_family(addrs: &[IpNet]) -> Vec<(IpFamily, Vec<IpNet>)> {
    let mut out: Vec<(IpFamily, Vec<IpNet>)> = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let mine: Vec<IpNet> = addrs.iter().copied().filter(|a| IpFamily::of(a.addr()) == family).collect();
        if !mine.is_empty() {
            out.push((family, mine));
        }
    }
    out
}

impl FirewallPlugin {
    /// The plugin with the system's iptables, in the plugin's own network namespace.
    pub fn new() -> Self {
        Self { iptables: Firewall::iptables() }
    }

    /// The plugin with another iptables firewall (e.g. a `FakeFirewall`, or iptables inside a
    /// namespace).
    pub fn with_firewall(iptables: Firewall) -> Self {
        Self { iptables }
    }

    /// Whether the chain holds the rule (`iptables -C`); a missing chain holds nothing.
    async fn contains(&self, chain: &cni_sdk::firewall::ChainId, rule: &rules::GoRule) -> Result<bool> {
        match self.iptables.contains_rules(chain, std::slice::from_ref(&rule.rule)).await {
            Ok(found) => Ok(found.first().copied().unwrap_or(false)),
            Err(e) if e.kind() == FirewallErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Removes the address rules of `addrs`, except for addresses that another attachment's
    /// record still claims (an address handed out again after its first owner vanished).
    async fn remove_addresses(&self, addrs: &[IpNet], others: &[Record<Vec<IpNet>>]) -> Result<()> {
        let claimed: BTreeSet<std::net::IpAddr> = others.iter().flat_map(|r| r.data.iter().map(|n| n.addr())).collect();
        let free: Vec<IpNet> = addrs.iter().copied().filter(|a| !claimed.contains(&a.addr())).collect();
        let mut batch = Batch::new();
        for (family, mine) in by_family(&free) {
            rules::delete_addresses(&mut batch, family, &mine);
        }
        match self.iptables.apply(&batch).await {
            Ok(_) => Ok(()),
            // No iptables, no rules.
            Err(e) if e.kind() == FirewallErrorKind::Unavailable => {
                tracing::debug!(error = %e, "iptables is not usable; nothing to remove");
                Ok(())
            }
            Err(e) => Err(Error::from(e).wrap("failed to remove the firewall rules")),
        }
    }
}

/// The addresses of `prevResult`.
fn prev_addresses(cx: &Context<FirewallConf>) -> Vec<IpNet> {
    cx.prev_result().map(|r| r.ips.iter().map(|i| i.address).collect()).unwrap_or_default()
}

#[cni_plugin(
    about = "CNI firewall plugin (cni-rs)",
    name = "firewall",
    versions = ["0.4.0", "1.0.0", "1.1.0"],
    init = FirewallPlugin::new,
    main = false
)]
impl Plugin for FirewallPlugin {
    type Config = FirewallConf;

    async fn add(&self, cx: &Context<FirewallConf>) -> Result<CniResult> {
        let conf = cx.plugin_config();
        let prev = cx.prev_result().ok_or_else(|| Error::internal("missing prevResult from earlier plugin"))?;
        conf.check_backend()?;
        // Checked before anything is added (Go adds the address rules first and leaks them).
        let policy = IngressPolicy::parse(conf.ingress_policy.as_deref()).map_err(Error::internal)?;
        let bridge = match policy {
            IngressPolicy::Open => None,
            _ => {
                let intf = prev.interfaces.first().ok_or_else(|| {
                    Error::internal(format!(
                        "interface needs to be set for ingress policy {:?}, make sure to chain \"firewall\" plugin with \"bridge\"",
                        policy.as_str()
                    ))
                })?;
                if intf.name.is_empty() {
                    return Err(Error::internal("got empty bridge name"));
                }
                Some(intf.name.clone())
            }
        };
        let addrs = prev_addresses(cx);
        let (net, id, ifname) = (&cx.config().name, cx.container_id(), cx.ifname());
        let records = conf.records();
        records.save(net, id, ifname, &addrs)?;
        let mut batch = Batch::new();
        for (family, mine) in by_family(&addrs) {
            rules::add_addresses(&mut batch, family, conf.admin_chain(), &mine);
            if let Some(br) = &bridge {
                rules::add_isolation(&mut batch, family, br, policy);
            }
        }
        if let Err(e) = self.iptables.apply(&batch).await {
            // The first family may be committed when the second fails: take it back.
            let others = records.list_all::<Vec<IpNet>>().unwrap_or_default();
            let others: Vec<_> = others
                .into_iter()
                .filter(|r| !(r.network == *net && r.container_id == id && r.ifname == ifname))
                .collect();
            if let Err(t) = self.remove_addresses(&addrs, &others).await {
                tracing::warn!(error = %t, "removing the rules of a failed ADD");
            }
            let _ = records.remove(net, id, ifname);
            return Err(Error::from(e));
        }
        Ok(prev.clone())
    }

    async fn del(&self, cx: &Context<FirewallConf>) -> Result<()> {
        let conf = cx.plugin_config();
        conf.check_backend()?;
        let (net, id, ifname) = (&cx.config().name, cx.container_id(), cx.ifname());
        let records = conf.records();
        // prevResult's addresses as Go, else (Go deletes nothing then) the ones ADD recorded.
        let mut addrs = prev_addresses(cx);
        if addrs.is_empty() {
            addrs = records.load::<Vec<IpNet>>(net, id, ifname)?.unwrap_or_default();
        }
        let others: Vec<_> = records
            .list_all::<Vec<IpNet>>()?
            .into_iter()
            .filter(|r| !(r.network == *net && r.container_id == id && r.ifname == ifname))
            .collect();
        self.remove_addresses(&addrs, &others).await?;
        records.remove(net, id, ifname)?;
        // Go reports an unknown policy on DEL too, after removing the rules; the isolation
        // rules are per bridge and stay.
        IngressPolicy::parse(conf.ingress_policy.as_deref()).map_err(Error::internal)?;
        Ok(())
    }

    async fn check(&self, cx: &Context<FirewallConf>) -> Result<()> {
        let conf = cx.plugin_config();
        if cx.prev_result().is_none() {
            return Err(Error::internal("missing prevResult from earlier plugin"));
        }
        conf.check_backend()?;
        let admin = conf.admin_chain();
        for (family, mine) in by_family(&prev_addresses(cx)) {
            let t = rules::filter(family);
            let forward = rules::forward_jump();
            if !self.contains(&t.chain("FORWARD"), &forward).await? {
                return Err(Error::internal(format!("expected FORWARD rule {} not found", forward.go_text())));
            }
            let admin_rule = rules::admin_jump(admin);
            let fwd_chain = cni_sdk::firewall::names::FIREWALL_FORWARD_CHAIN;
            if !self.contains(&t.chain(fwd_chain), &admin_rule).await? {
                return Err(Error::internal(format!("expected {fwd_chain} rule {} not found", admin_rule.go_text())));
            }
            for a in &mine {
                for r in rules::address_rules(a) {
                    if !self.contains(&t.chain(fwd_chain), &r).await? {
                        return Err(Error::internal(format!("expected rule {} not found", r.go_text())));
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes the address rules of this network's attachments that are not in the valid list
    /// (found from the records ADD keeps; Go's rules carry no owner). Addresses another valid
    /// attachment claims are kept; another network's attachments are never touched.
    async fn gc(&self, cx: &Context<FirewallConf>) -> Result<()> {
        let conf = cx.plugin_config();
        let network = &cx.config().name;
        let records = conf.records();
        let stale = records.stale::<Vec<IpNet>>(network, cx.gc_attachments())?;
        if stale.is_empty() {
            return Ok(());
        }
        let others: Vec<_> = records
            .list_all::<Vec<IpNet>>()?
            .into_iter()
            .filter(|r| {
                !stale
                    .iter()
                    .any(|s| s.network == r.network && s.container_id == r.container_id && s.ifname == r.ifname)
            })
            .collect();
        let addrs: Vec<IpNet> = stale.iter().flat_map(|r| r.data.iter().copied()).collect();
        self.remove_addresses(&addrs, &others).await?;
        for r in stale {
            records.remove(network, &r.container_id, &r.ifname)?;
        }
        Ok(())
    }
}
