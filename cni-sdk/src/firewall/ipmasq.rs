//! IP masquerading as Go's bridge and ptp plugins set it up (`ipMasq`, `pkg/ip/ipmasq_*_linux.go`), with
//! either backend and Go's layouts, names and comments, so Go and this SDK clean up each other's
//! state.
//!
//! * **iptables** (`pkg/ip/ipmasq_iptables_linux.go`): per container a chain
//!   `CNI-<hex(net+id)[:24]>` in the `nat` table of each family holding `-d <subnet> -j ACCEPT`
//!   and `! -d 224.0.0.0/4 -j MASQUERADE` (`ff00::/8` for IPv6), and
//!   `POSTROUTING -s <ip> -j <chain>`, all commented `name: "<net>" id: "<id>"`. The interface
//!   name is ignored, as in Go.
//! * **nftables** (`pkg/ip/ipmasq_nftables_linux.go`, v1.6.1 layout): table
//!   `inet cni_plugins_masquerade`, a `postrouting` nat base chain rewritten on every setup
//!   (multicast returns, then `goto masq_checks`), and per address
//!   `ip saddr <ip> ip daddr != <subnet> masquerade` in `masq_checks`, commented with the
//!   attachment's hash (see [`names::nft_ipmasq_comment`]).
//!
//! Unlike Go, [`IpMasq::teardown`] needs no addresses: it removes the iptables chain by name
//! (every `POSTROUTING` jump to it, then the chain) and the nftables rules by comment. So it
//! also cleans up after an ADD that stopped half way (Go bug B2) and when DEL gets no netns and
//! so no addresses (bug B3). Each setup, teardown and check is one batch per backend (one
//! `iptables-restore` per family, or one nftables transaction) instead of Go's many processes.
//!
#![cfg_attr(feature = "test-util", doc = "```")]
#![cfg_attr(not(feature = "test-util"), doc = "```ignore")]
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use cni_sdk::firewall::fake::FakeFirewall;
//! use cni_sdk::firewall::ipmasq::{IpMasq, IpMasqBackend};
//! let (ipt, nft) = (FakeFirewall::iptables(), FakeFirewall::nftables());
//! let masq = IpMasq::new(ipt.firewall(), nft.firewall()).unwrap();
//! let backend = masq.select_backend(None).await.unwrap();
//! assert_eq!(backend, IpMasqBackend::Iptables);
//! let addrs = ["10.88.0.5/16".parse().unwrap()];
//! masq.setup(backend, "mynet", "eth0", "ctr1", &addrs).await.unwrap();
//! masq.check(backend, "mynet", "eth0", "ctr1", &addrs).await.unwrap();
//! masq.teardown("mynet", "eth0", "ctr1").await.unwrap();
//! assert!(masq.check(backend, "mynet", "eth0", "ctr1", &addrs).await.is_err());
//! # });
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{FirewallError, FirewallErrorKind, FirewallResult};
use super::model::{
    BackendKind, BaseChain, Chain, ChainId, ChainKind, ChainType, Hook, IpFamily, Match, PRIORITY_SRCNAT, Rule, Table,
    TableFamily, TableId, Verdict,
};
use super::{Batch, Firewall, names};
use crate::netns::NetNs;

/// The nftables table Go's ipMasq uses.
pub const NFT_TABLE: &str = "cni_plugins_masquerade";
/// The comment of that table.
pub const NFT_TABLE_COMMENT: &str = "Masquerading for plugins from github.com/containernetworking/plugins";
/// The regular chain holding one rule per address.
pub const NFT_CHECKS_CHAIN: &str = "masq_checks";
/// The comment of that chain.
pub const NFT_CHECKS_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// The nat base chain.
pub const NFT_POSTROUTING_CHAIN: &str = "postrouting";

const MULTICAST_V4: &str = "224.0.0.0/4";
const MULTICAST_V6: &str = "ff00::/8";

/// Which backend masquerades (the bridge/ptp key `ipMasqBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpMasqBackend {
    /// `"iptables"`.
    Iptables,
    /// `"nftables"`.
    Nftables,
}

impl IpMasqBackend {
    /// Parses `"iptables"` or `"nftables"`; anything else is Go's `unknown ipmasq backend "<b>"`.
    pub fn parse(s: &str) -> FirewallResult<Self> {
        match s {
            "iptables" => Ok(Self::Iptables),
            "nftables" => Ok(Self::Nftables),
            other => Err(FirewallError::invalid(format!("unknown ipmasq backend {other:?}"))),
        }
    }

    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
        }
    }
}

impl fmt::Display for IpMasqBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container attachment that is still valid (for [`IpMasq::gc`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// The container ID.
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// Masquerading of container addresses through an iptables and an nftables [`Firewall`].
#[derive(Debug, Clone)]
pub struct IpMasq {
    iptables: Firewall,
    nftables: Firewall,
}

fn nat(family: IpFamily) -> TableId {
    TableId::iptables(family, "nat")
}

fn nft_table() -> TableId {
    TableId::new(TableFamily::Inet, NFT_TABLE)
}

fn host_net(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

fn multicast(family: IpFamily) -> IpNet {
    let s = match family {
        IpFamily::V4 => MULTICAST_V4,
        IpFamily::V6 => MULTICAST_V6,
    };
    s.parse().expect("constant network")
}

/// Joins the errors of backends that are usable (Go reports a backend's error only then).
async fn report(results: Vec<(&Firewall, FirewallResult<()>)>) -> FirewallResult<()> {
    let mut errors: Vec<FirewallError> = Vec::new();
    for (fw, r) in results {
        if let Err(e) = r {
            if fw.is_usable().await {
                errors.push(e);
            } else {
                tracing::debug!(backend = %fw.kind(), error = %e, "ignoring the error of an unusable backend");
            }
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => {
            let kind = errors[0].kind();
            let msg = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
            Err(FirewallError::new(kind, msg))
        }
    }
}

impl IpMasq {
    /// Masquerading through these firewalls; each must be of its kind.
    pub fn new(iptables: Firewall, nftables: Firewall) -> FirewallResult<Self> {
        if iptables.kind() != BackendKind::Iptables || nftables.kind() != BackendKind::Nftables {
            return Err(FirewallError::invalid(format!(
                "IpMasq needs an iptables and an nftables firewall, got {} and {}",
                iptables.kind(),
                nftables.kind()
            )));
        }
        Ok(Self { iptables, nftables })
    }

    /// The system's iptables and nftables (over netlink, [`super::NftNetlinkBackend`]) in the
    /// caller's namespace.
    pub fn host() -> Self {
        Self { iptables: Firewall::iptables(), nftables: Firewall::nftables_netlink() }
    }

    /// The system's iptables and nftables (over netlink) inside `netns`.
    pub fn in_netns(netns: NetNs) -> Self {
        Self { iptables: Firewall::iptables_in(netns.clone()), nftables: Firewall::nftables_netlink_in(netns) }
    }

    /// The iptables firewall.
    pub fn iptables(&self) -> &Firewall {
        &self.iptables
    }

    /// The nftables firewall.
    pub fn nftables(&self) -> &Firewall {
        &self.nftables
    }

    fn firewall(&self, backend: IpMasqBackend) -> &Firewall {
        match backend {
            IpMasqBackend::Iptables => &self.iptables,
            IpMasqBackend::Nftables => &self.nftables,
        }
    }

    /// Go's choice: the requested backend, or when none is given iptables unless iptables is
    /// unusable and nftables usable. An unknown name is an error.
    pub async fn select_backend(&self, requested: Option<&str>) -> FirewallResult<IpMasqBackend> {
        match requested {
            Some(name) => IpMasqBackend::parse(name),
            None => {
                if !self.iptables.is_usable().await && self.nftables.is_usable().await {
                    Ok(IpMasqBackend::Nftables)
                } else {
                    Ok(IpMasqBackend::Iptables)
                }
            }
        }
    }

    /// Masquerades traffic from `addrs` (container addresses with their prefix, e.g.
    /// `10.88.0.5/16`) to anything outside their subnet, except multicast.
    pub async fn setup(
        &self,
        backend: IpMasqBackend,
        network: &str,
        ifname: &str,
        container_id: &str,
        addrs: &[IpNet],
    ) -> FirewallResult<()> {
        let batch = match backend {
            IpMasqBackend::Iptables => iptables_setup(network, container_id, addrs),
            IpMasqBackend::Nftables => nft_setup(network, ifname, container_id, addrs),
        };
        self.firewall(backend)
            .apply(&batch)
            .await
            .map(drop)
            .map_err(|e| e.context(format!("set up {backend} masquerading for container {container_id}")))
    }

    /// Removes the masquerading of the attachment from both backends (the pod may have been
    /// set up by another version or configuration), without needing its addresses. A backend's
    /// error is reported only when that backend is usable, as in Go.
    pub async fn teardown(&self, network: &str, ifname: &str, container_id: &str) -> FirewallResult<()> {
        let ipt = self.iptables_teardown(&names::chain_name(network, container_id)).await;
        let mut batch = Batch::new();
        batch.delete_rules_with_comment_prefix(
            &nft_table().chain(NFT_CHECKS_CHAIN),
            names::nft_ipmasq_instance_hash(network, ifname, container_id),
        );
        let nft = self.nftables.apply(&batch).await.map(drop);
        let ctx = |r: FirewallResult<()>, b: &str| {
            r.map_err(|e| e.context(format!("tear down {b} masquerading for container {container_id}")))
        };
        report(vec![(&self.iptables, ctx(ipt, "iptables")), (&self.nftables, ctx(nft, "nftables"))]).await
    }

    /// Removes one iptables masquerading chain in both families: the POSTROUTING jumps to it,
    /// then the chain. A family whose nat table the system lacks has nothing to remove.
    async fn iptables_teardown(&self, chain: &str) -> FirewallResult<()> {
        for family in [IpFamily::V4, IpFamily::V6] {
            let table = nat(family);
            let target = chain.to_owned();
            let mut batch = Batch::new();
            batch
                .delete_rules_where(&table.chain("POSTROUTING"), move |r| r.verdict.target_chain() == Some(&target))
                .flush_chain(&table.chain(chain))
                .delete_chain(&table.chain(chain));
            match self.iptables.apply(&batch).await {
                Ok(_) => {}
                Err(e) if e.kind() == FirewallErrorKind::Unavailable && family == IpFamily::V6 => {
                    tracing::debug!(error = %e, "no IPv6 nat table; nothing to tear down there");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Checks that the masquerading of `addrs` is in place with `backend`; a missing chain or
    /// rule is a [`NotFound`](FirewallErrorKind::NotFound) error naming it.
    pub async fn check(
        &self,
        backend: IpMasqBackend,
        network: &str,
        ifname: &str,
        container_id: &str,
        addrs: &[IpNet],
    ) -> FirewallResult<()> {
        let fw = self.firewall(backend);
        let expected: Vec<(ChainId, Rule)> = match backend {
            IpMasqBackend::Iptables => iptables_rules(network, container_id, addrs),
            IpMasqBackend::Nftables => {
                let t = nft_table();
                let state = fw.read_table(&t).await?;
                let post = state.as_ref().and_then(|s| s.chain(NFT_POSTROUTING_CHAIN)).map(|c| c.chain.kind);
                match post {
                    Some(ChainKind::Base(b)) if b.same_hook(&postrouting_base()) => {}
                    _ => {
                        return Err(FirewallError::not_found(format!(
                            "nftables masquerading: base chain {} (type nat hook postrouting priority {PRIORITY_SRCNAT}) not found",
                            t.chain(NFT_POSTROUTING_CHAIN)
                        )));
                    }
                }
                let comment = names::nft_ipmasq_comment(network, ifname, container_id);
                addrs.iter().map(|a| (t.chain(NFT_CHECKS_CHAIN), nft_rule(*a, &comment))).collect()
            }
        };
        let kind = fw.kind();
        let mut cache: Vec<(ChainId, Vec<Rule>)> = Vec::new();
        for (chain, rule) in expected {
            if !cache.iter().any(|(c, _)| *c == chain) {
                let rules = match fw.list_rules(&chain).await {
                    Ok(r) => r.into_iter().map(|l| l.rule).collect(),
                    Err(e) if e.is_not_found() => {
                        return Err(FirewallError::not_found(format!(
                            "{backend} masquerading: chain {chain} not found"
                        )));
                    }
                    Err(e) => return Err(e),
                };
                cache.push((chain.clone(), rules));
            }
            let rules = &cache.iter().find(|(c, _)| *c == chain).expect("cached above").1;
            let want = rule.normalized(kind);
            if !rules.contains(&want) {
                return Err(FirewallError::not_found(format!(
                    "{backend} masquerading: rule [{want}] not found in chain {chain}"
                )));
            }
        }
        Ok(())
    }

    /// Removes the masquerading of every attachment of `network` that is not in `valid`, from
    /// both backends (Go's `GCIPMasqForNetwork`, which Go's iptables side does not implement).
    ///
    /// iptables chain names are hashes, so the chains are found by listing the `nat` tables: a
    /// chain named like Go's (`CNI-` + 24 hex digits) whose rules, or the `POSTROUTING` rules
    /// jumping to it, carry the comment `name: "<network>" id: "<id>"` for an `<id>` whose hash
    /// gives that name. nftables rules are found by their comment's network hash.
    pub async fn gc(&self, network: &str, valid: &[Attachment]) -> FirewallResult<()> {
        let ipt = self.iptables_gc(network, valid).await;
        let nft = self.nft_gc(network, valid).await;
        let ctx =
            |r: FirewallResult<()>, b: &str| r.map_err(|e| e.context(format!("garbage-collect {b} masquerading")));
        report(vec![(&self.iptables, ctx(ipt, "iptables")), (&self.nftables, ctx(nft, "nftables"))]).await
    }

    async fn iptables_gc(&self, network: &str, valid: &[Attachment]) -> FirewallResult<()> {
        let keep: BTreeSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
        let mut stale: BTreeSet<String> = BTreeSet::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            let state = match self.iptables.read_table(&nat(family)).await {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) if e.kind() == FirewallErrorKind::Unavailable && family == IpFamily::V6 => continue,
                Err(e) => return Err(e),
            };
            for c in &state.chains {
                if !is_go_masq_chain(&c.chain.name) {
                    continue;
                }
                let jumps = state
                    .chains
                    .iter()
                    .flat_map(|o| o.rules.iter())
                    .filter(|r| r.rule.verdict.target_chain() == Some(c.chain.name.as_str()));
                let owner = c.rules.iter().chain(jumps).find_map(|r| {
                    let (net, id) = names::parse_comment(r.rule.comment.as_deref()?)?;
                    (names::chain_name(&net, &id) == c.chain.name).then_some((net, id))
                });
                if let Some((net, id)) = owner
                    && net == network
                    && !keep.contains(id.as_str())
                {
                    stale.insert(c.chain.name.clone());
                }
            }
        }
        for chain in stale {
            self.iptables_teardown(&chain).await?;
        }
        Ok(())
    }

    async fn nft_gc(&self, network: &str, valid: &[Attachment]) -> FirewallResult<()> {
        let keep: BTreeSet<String> =
            valid.iter().map(|a| names::nft_ipmasq_comment(network, &a.ifname, &a.container_id)).collect();
        let prefix = names::nft_ipmasq_network_hash(network);
        let mut batch = Batch::new();
        batch.delete_rules_where(&nft_table().chain(NFT_CHECKS_CHAIN), move |r| {
            r.comment.as_deref().is_some_and(|c| c.starts_with(&prefix) && !keep.contains(c))
        });
        self.nftables.apply(&batch).await.map(drop)
    }
}

/// `CNI-` followed by 24 lowercase hex digits.
fn is_go_masq_chain(name: &str) -> bool {
    name.len() == names::MAX_CHAIN_LENGTH
        && name
            .strip_prefix(names::CHAIN_PREFIX)
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
}

/// The rules of Go's iptables layout, per address, in Go's order.
fn iptables_rules(network: &str, container_id: &str, addrs: &[IpNet]) -> Vec<(ChainId, Rule)> {
    let chain = names::chain_name(network, container_id);
    let comment = names::format_comment(network, container_id);
    let mut out = Vec::new();
    for a in addrs {
        let family = IpFamily::of(a.addr());
        let t = nat(family);
        // Packets to this network are not touched.
        out.push((
            t.chain(&chain),
            Rule::new(Verdict::Accept).when(Match::Destination(a.trunc())).with_comment(&comment),
        ));
        // Multicast is not masqueraded, so pods can talk to the local network with it.
        out.push((
            t.chain(&chain),
            Rule::new(Verdict::Masquerade).when(!Match::Destination(multicast(family))).with_comment(&comment),
        ));
        // Packets from the container's address go through the chain.
        out.push((
            t.chain("POSTROUTING"),
            Rule::new(Verdict::Jump(chain.clone())).when(Match::Source(host_net(a.addr()))).with_comment(&comment),
        ));
    }
    out
}

fn iptables_setup(network: &str, container_id: &str, addrs: &[IpNet]) -> Batch {
    let chain = names::chain_name(network, container_id);
    let mut batch = Batch::new();
    for a in addrs {
        batch.ensure_chain(&nat(IpFamily::of(a.addr())), Chain::regular(&chain));
    }
    for (c, rule) in iptables_rules(network, container_id, addrs) {
        batch.append_if_absent(&c, rule);
    }
    batch
}

fn postrouting_base() -> BaseChain {
    BaseChain::new(ChainType::Nat, Hook::Postrouting, PRIORITY_SRCNAT)
}

fn nft_rule(addr: IpNet, comment: &str) -> Rule {
    Rule::new(Verdict::Masquerade)
        .when(Match::Source(host_net(addr.addr())))
        .when(!Match::Destination(addr.trunc()))
        .with_comment(comment)
}

fn nft_setup(network: &str, ifname: &str, container_id: &str, addrs: &[IpNet]) -> Batch {
    let t = nft_table();
    let checks = t.chain(NFT_CHECKS_CHAIN);
    let post = t.chain(NFT_POSTROUTING_CHAIN);
    let comment = names::nft_ipmasq_comment(network, ifname, container_id);
    let mut batch = Batch::new();
    batch
        .ensure_table(Table::new(TableFamily::Inet, NFT_TABLE).with_comment(NFT_TABLE_COMMENT))
        .ensure_chain(&t, Chain::regular(NFT_CHECKS_CHAIN).with_comment(NFT_CHECKS_COMMENT))
        .ensure_chain(&t, Chain::base(NFT_POSTROUTING_CHAIN, postrouting_base()))
        .flush_chain(&post)
        .append(&post, Rule::new(Verdict::Return).when(Match::Destination(multicast(IpFamily::V4))))
        .append(&post, Rule::new(Verdict::Return).when(Match::Destination(multicast(IpFamily::V6))))
        .append(&post, Rule::new(Verdict::Goto(NFT_CHECKS_CHAIN.to_owned())))
        // Stale rules of the same attachment go in the same transaction.
        .delete_rules_with_comment_prefix(&checks, names::nft_ipmasq_instance_hash(network, ifname, container_id));
    for a in addrs {
        batch.append(&checks, nft_rule(*a, &comment));
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names() {
        assert_eq!(IpMasqBackend::parse("iptables").unwrap(), IpMasqBackend::Iptables);
        assert_eq!(IpMasqBackend::parse("nftables").unwrap(), IpMasqBackend::Nftables);
        let e = IpMasqBackend::parse("ebtables").unwrap_err();
        assert_eq!(e.to_string(), "unknown ipmasq backend \"ebtables\"");
        assert_eq!(e.kind(), FirewallErrorKind::InvalidArgument);
    }

    #[test]
    fn go_chain_shape() {
        assert!(is_go_masq_chain(&names::chain_name("n", "c")));
        assert!(!is_go_masq_chain(&names::portmap_dnat_chain("n", "c")));
        assert!(!is_go_masq_chain("CNI-HOSTPORT-DNAT"));
        assert!(!is_go_masq_chain("CNI-ABCDEF0123456789ABCDEF01"));
    }
}
