//! `bandwidth`: the reference CNI bandwidth meta plugin, a drop-in replacement for Go's
//! `plugins/meta/bandwidth` (same configuration keys, results, error messages and kernel
//! objects), built on the SDK's netlink traffic control — no `tc` processes.
//!
//! Chained after a veth-based interface plugin (bridge, ptp), ADD finds the host end of the
//! container's veth and shapes:
//!
//! * traffic **into** the container (`ingressRate`/`ingressBurst`) with a token bucket filter,
//!   root handle `1:`, on the host veth;
//! * traffic **from** the container (`egressRate`/`egressBurst`) by redirecting everything the
//!   host veth receives (an `ingress` qdisc and a match-all `u32` filter with a `mirred egress
//!   redirect`) to an ifb device `bwp<sha512(network+containerID)[:12]>`, whose root is such a
//!   token bucket filter. The ifb is appended to the result's interfaces.
//!
//! The numbers are Go's (`cni_sdk::net::Tbf::for_bandwidth`, 25 ms latency, the kernel's
//! `/proc/net/psched` clock). DEL removes the ifb; CHECK compares the token bucket filters with
//! the configuration; GC (spec 1.1) removes the ifb devices of this network's attachments that
//! are no longer valid, from the records ADD keeps in `dataDir`.
//!
//! Where this plugin deliberately differs from Go (no panics, a failed ADD leaves nothing, DEL
//! also removes the shaping from a veth that survives, a stricter CHECK, GC), the README says so.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bandwidth::Bandwidth;
//! use cni_sdk::net::Psched;
//! use cni_sdk::net::fake::FakeNetwork;
//! use cni_sdk::testing::PluginTest;
//! use cni_sdk::{CniResult, Command, Interface};
//!
//! // A container whose eth0 is a veth with its host end `veth0`, as bridge or ptp leave it.
//! let world = FakeNetwork::new();
//! let pod = world.add_namespace("pod");
//! let (host_end, _) = world.host().veth("veth0", "eth0").peer_netns(&pod).execute().await.unwrap();
//! world.host().set_up(host_end.index).await.unwrap();
//! let mut prev = CniResult::default();
//! prev.interfaces.push(Interface::new("veth0"));
//! prev.interfaces.push(Interface { sandbox: Some("/var/run/netns/pod".into()), ..Interface::new("eth0") });
//!
//! let data = tempfile::tempdir().unwrap();
//! let plugin = Bandwidth::with_psched(Psched::KERNEL);
//! let conf = serde_json::json!({"egressRate": 1_000_000, "egressBurst": 80_000, "dataDir": data.path()});
//! let run = |cmd| {
//!     PluginTest::new(&plugin)
//!         .command(cmd)
//!         .config_keys(conf.clone())
//!         .prev_result(&prev)
//!         .container_id("ctr-bw")
//!         .netns("/var/run/netns/pod")
//!         .network(&world)
//!         .run()
//! };
//! let result = run(Command::Add).await.expect_result();
//! assert_eq!(result.interfaces[2].name, bandwidth::ifb_name("test-net", "ctr-bw"));
//! let ifb = world.host().link(&result.interfaces[2].name).await.unwrap();
//! let qdiscs = world.host().link_qdiscs(ifb.index).await.unwrap();
//! assert_eq!(qdiscs[0].tbf().unwrap().rate, 125_000);
//! run(Command::Del).await.expect_success();
//! assert!(world.host().find_link(&ifb.name).await.unwrap().is_none());
//! # });
//! ```

mod config;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use cni_sdk::kit::{self, AttachmentRecords, go, with_undo};
use cni_sdk::net::{Link, LinkKind, MirredKind, Net, NetErrorKind, Psched, QdiscKind, Tbf, TcAction, TcHandle};
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, cni_plugin};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use config::Loaded;
pub use config::{BandwidthConf, DEFAULT_DATA_DIR, Limits};

/// The latency Go's bandwidth plugin gives its token bucket filters, in milliseconds.
pub const LATENCY_MS: u32 = 25;

/// The handle of the token bucket filters (`1:`).
pub const TBF_HANDLE: TcHandle = TcHandle::new(1, 0);

/// The class the redirect filter assigns (`flowid 1:1`, as Go sets it).
const FILTER_CLASS: TcHandle = TcHandle::new(1, 1);

/// The priority of the redirect filter.
const FILTER_PRIORITY: u16 = 1;

/// The name of the ifb device of an attachment: `bwp` and the first 12 hex digits of
/// sha512(network + container ID), 15 characters (Go `getIfbDeviceName`).
///
/// ```
/// assert_eq!(bandwidth::ifb_name("bwnet", "ctr-bw"), "bwp371e0cbb36b3");
/// ```
pub fn ifb_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("bwp{hex}")
}

/// What ADD records about an attachment whose egress it shapes (for GC).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IfbRecord {
    /// The ifb device.
    ifb: String,
}

/// The bandwidth plugin. Holds the packet scheduler clock it computes with (read from
/// `/proc/net/psched` unless a test fixes it).
#[derive(Debug, Clone, Default)]
pub struct Bandwidth {
    psched: Option<Psched>,
}

impl Bandwidth {
    /// The plugin as Go's: the kernel's clock from `/proc/net/psched`.
    pub fn new() -> Self {
        Self { psched: None }
    }

    /// The plugin computing with `psched` instead of reading the kernel's.
    pub fn with_psched(psched: Psched) -> Self {
        Self { psched: Some(psched) }
    }

    fn psched(&self) -> Result<Psched> {
        match self.psched {
            Some(p) => Ok(p),
            None => Psched::read().map_err(|e| go::wrap_net("create qdisc", &e)),
        }
    }

    /// Go's token bucket filter for `rate`/`burst` bits. Parameters the kernel would refuse
    /// (under a byte per second, a burst under a byte) fail with the kernel's answer to Go
    /// (`<what>: invalid argument`); values that do not fit the kernel's 32-bit fields, which
    /// Go silently wraps, fail the same way instead of installing a wrong limit.
    fn tbf(&self, (rate, burst): (u64, u64), what: &str) -> Result<Tbf> {
        let psched = self.psched()?;
        Tbf::for_bandwidth(rate, burst, LATENCY_MS, &psched).map_err(|e| {
            tracing::debug!(error = %e, rate, burst, "token bucket filter parameters refused");
            Error::from_kind(cni_sdk::ErrorKind::InvalidArgument, format!("{what}: invalid argument"))
                .with_code(cni_sdk::ErrorCode::Internal)
        })
    }
}

/// Whether a result interface is a host interface (no sandbox).
fn on_host(i: &Interface) -> bool {
    i.sandbox.as_deref().is_none_or(str::is_empty)
}

/// The host end of the container's veth `ifname`, if the link is a veth whose peer lives in
/// the host namespace; the texts are Go's (`ip.GetVethPeerIfindex`, `getHostInterface`).
async fn host_veth(host: &Net, ctr: &Net, ifname: &str) -> Result<Link> {
    let no_peer = |why: String| Error::internal(format!("container interface {ifname} has no veth peer: {why}"));
    let cl =
        ctr.find_link(ifname).await?.ok_or_else(|| no_peer(format!("could not look up {ifname:?}: Link not found")))?;
    if cl.kind != LinkKind::Veth {
        return Err(no_peer(format!("interface {ifname:?} was not a veth interface")));
    }
    let peer = cl.peer.ok_or_else(|| no_peer("<nil>".to_owned()))?;
    let not_in_host = || Error::internal(format!("veth peer with index {} is not in host ns", peer.index));
    if peer.same_netns {
        return Err(not_in_host());
    }
    // Go looks the index up in its own namespace and takes whatever link has it; the link must
    // also be a veth whose peer is this one.
    match host.find_link_by_index(peer.index).await? {
        Some(l) if l.kind == LinkKind::Veth && l.peer.is_some_and(|p| !p.same_netns && p.index == cl.index) => Ok(l),
        _ => Err(not_in_host()),
    }
}

/// Go `getHostInterface`: the host veth, which must be a host interface of `prevResult`.
async fn host_interface(host: &Net, ctr: &Net, ifname: &str, prev: &CniResult) -> Result<Link> {
    if prev.interfaces.is_empty() {
        return Err(Error::internal("no interfaces provided"));
    }
    let hv = host_veth(host, ctr, ifname).await?;
    if prev.interfaces.iter().any(|i| on_host(i) && i.name == hv.name) {
        Ok(hv)
    } else {
        Err(Error::internal("no veth peer of container interface found in host ns"))
    }
}

/// Go's CHECK of one link's token bucket filter (pfifo_fast skipped, `Failed to find qdisc`
/// when nothing is left, then rate, limit and buffer). Stricter than Go, whose loop stops at the
/// first other qdisc: the root qdisc itself must be the filter, so a replaced one is noticed.
async fn check_tbf(net: &Net, index: u32, want: &Tbf) -> Result<()> {
    let qdiscs: Vec<_> = net
        .link_qdiscs(index)
        .await?
        .into_iter()
        .filter(|q| !matches!(&q.kind, QdiscKind::Other(k) if k == "pfifo_fast"))
        .collect();
    let Some(tbf) = qdiscs.iter().find(|q| q.is_root()).and_then(|q| q.tbf()) else {
        return Err(Error::internal("Failed to find qdisc"));
    };
    if tbf.rate != want.rate {
        return Err(Error::internal("Rate doesn't match"));
    }
    if tbf.limit != want.limit {
        return Err(Error::internal("Limit doesn't match"));
    }
    if tbf.buffer != want.buffer {
        return Err(Error::internal("Buffer doesn't match"));
    }
    Ok(())
}

/// Whether `f`'s actions include a `mirred egress redirect` to link `target`.
fn redirects_to(f: &cni_sdk::net::Filter, target: u32) -> bool {
    f.u32().is_some_and(|u| {
        u.actions
            .iter()
            .any(|a| matches!(a, TcAction::Mirred { kind: MirredKind::EgressRedirect, target: t } if *t == target))
    })
}

/// DEL's extension to Go: takes this attachment's shaping off a host veth that survives the
/// ifb (Go leaves it, and a later ADD on the same veth then fails). The ingress side goes only
/// when every filter on it redirects to this attachment's ifb; the root token bucket filter
/// only when ingress shaping is configured.
async fn remove_host_shaping(host: &Net, hv: &Link, ifb: Option<&Link>, ingress: bool) -> Result<()> {
    let qdiscs = host.link_qdiscs(hv.index).await?;
    if ingress
        && qdiscs.iter().any(|q| q.is_root() && q.handle == TBF_HANDLE && q.tbf().is_some())
        && let Err(e) = host.qdisc(hv.index).root().handle(TBF_HANDLE).delete().await
        && e.kind() != NetErrorKind::NotFound
    {
        return Err(go::wrap_net("failed to delete the tbf qdisc", &e));
    }
    if let Some(ifb) = ifb
        && qdiscs.iter().any(|q| q.kind == QdiscKind::Ingress)
    {
        let filters = host.filters(hv.index, TcHandle::INGRESS_QDISC).await?;
        if !filters.is_empty()
            && filters.iter().all(|f| redirects_to(f, ifb.index))
            && let Err(e) = host.qdisc(hv.index).ingress().delete().await
            && e.kind() != NetErrorKind::NotFound
        {
            return Err(go::wrap_net("failed to delete the ingress qdisc", &e));
        }
    }
    Ok(())
}

#[cni_plugin(
    about = "CNI bandwidth plugin (cni-rs)",
    name = "bandwidth",
    versions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    init = Bandwidth::new,
    main = false
)]
impl Plugin for Bandwidth {
    type Config = BandwidthConf;

    async fn add(&self, cx: &Context<BandwidthConf>) -> Result<CniResult> {
        let ld: Loaded = config::load(cx)?;
        let chained = || Error::internal("must be called as chained plugin");
        let Some(limits) = ld.limits.filter(|l| !l.is_zero()) else {
            // Go prints prevResult as it is (and panics without one, bug B18).
            return cx.prev_result().cloned().ok_or_else(chained);
        };
        let mut result = cx.prev_result().cloned().ok_or_else(chained)?;
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        let host = cx.host_net().await?;
        let hv = host_interface(&host, &ctr, cx.ifname(), &result).await?;
        // Both filters are computed before anything changes, so bad numbers change nothing.
        let ingress = limits.ingress().map(|l| self.tbf(l, "create qdisc")).transpose()?;
        let egress = limits.egress().map(|l| self.tbf(l, "create ifb qdisc: create qdisc")).transpose()?;
        let (network, id, ifname) = (&cx.config().name, cx.container_id(), cx.ifname());
        let ifb_name = ifb_name(network, id);
        let records = AttachmentRecords::new(&ld.data_dir);
        let had_record = records.load::<IfbRecord>(network, id, ifname)?.is_some();
        with_undo(async |undo| {
            if let Some(tbf) = ingress {
                host.qdisc(hv.index)
                    .root()
                    .handle(TBF_HANDLE)
                    .tbf(tbf)
                    .add()
                    .await
                    .map_err(|e| go::wrap_net("create qdisc", &e))?;
                undo.push("delete the host veth's tbf qdisc", host.qdisc(hv.index).root().handle(TBF_HANDLE).delete());
            }
            let Some(tbf) = egress else { return Ok(result) };
            // Recorded first, so that GC finds the device even if this process dies next.
            records.save(network, id, ifname, &IfbRecord { ifb: ifb_name.clone() })?;
            if !had_record {
                undo.push("remove the attachment record", async { records.remove(network, id, ifname) });
            }
            let ifb = host.ifb(&ifb_name).mtu(hv.mtu).execute().await.map_err(|e| go::wrap_net("adding link", &e))?;
            undo.push("delete the ifb device", host.delete_link(ifb.index));
            // Go creates it up with a transmit queue length of 0.
            host.set_txqlen(ifb.index, 0).await.map_err(|e| go::wrap_net("adding link", &e))?;
            host.set_up(ifb.index).await.map_err(|e| go::wrap_net("adding link", &e))?;
            result.interfaces.push(Interface::from(&ifb));
            host.qdisc(hv.index).ingress().add().await.map_err(|e| go::wrap_net("create ingress qdisc", &e))?;
            undo.push("delete the host veth's ingress qdisc", host.qdisc(hv.index).ingress().delete());
            host.filter(hv.index, TcHandle::INGRESS_QDISC)
                .priority(FILTER_PRIORITY)
                .u32_match_all()
                .classid(FILTER_CLASS)
                .redirect_to(ifb.index)
                .add()
                .await
                .map_err(|e| go::wrap_net("add filter", &e))?;
            host.qdisc(ifb.index)
                .root()
                .handle(TBF_HANDLE)
                .tbf(tbf)
                .add()
                .await
                .map_err(|e| go::wrap_net("create ifb qdisc: create qdisc", &e))?;
            Ok(result)
        })
        .await
    }

    async fn del(&self, cx: &Context<BandwidthConf>) -> Result<()> {
        let ld = config::load(cx)?;
        let (network, id, ifname) = (&cx.config().name, cx.container_id(), cx.ifname());
        let host = cx.host_net().await?;
        let name = ifb_name(network, id);
        let ifb = host.find_link(&name).await?.filter(|l| l.kind == LinkKind::Ifb);
        // The container's veth may outlive this DEL (the interface plugin runs after it):
        // take the shaping off its host end while the namespace tells which one it is.
        if let Ok(Some(ctr)) = cx.container_net_if_exists().await
            && let Ok(hv) = host_veth(&host, &ctr, ifname).await
        {
            let ingress = ld.limits.is_some_and(|l| l.ingress().is_some());
            if let Err(e) = remove_host_shaping(&host, &hv, ifb.as_ref(), ingress).await {
                tracing::warn!(error = %e, veth = %hv.name, "could not remove the shaping from the host veth");
            }
        }
        if ifb.is_some() {
            kit::del_link_by_name_addr(&host, &name).await?;
        }
        AttachmentRecords::new(&ld.data_dir).remove(network, id, ifname)
    }

    async fn check(&self, cx: &Context<BandwidthConf>) -> Result<()> {
        let ld = config::load(cx)?;
        let prev = cx.prev_result().ok_or_else(|| Error::internal("must be called as a chained plugin"))?;
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        let host = cx.host_net().await?;
        let hv = host_interface(&host, &ctr, cx.ifname(), prev).await?;
        // No limits: nothing to check (Go 1.1.1 panics here, bug B18; fixed in v1.9.1).
        let Some(limits) = ld.limits.filter(|l| !l.is_zero()) else { return Ok(()) };
        if let Some(l) = limits.ingress() {
            check_tbf(&host, hv.index, &self.tbf(l, "create qdisc")?).await?;
        }
        if let Some(l) = limits.egress() {
            let name = ifb_name(&cx.config().name, cx.container_id());
            let ifb = host.find_link(&name).await?.ok_or_else(|| Error::internal("get ifb device: Link not found"))?;
            check_tbf(&host, ifb.index, &self.tbf(l, "create ifb qdisc: create qdisc")?).await?;
            // Beyond Go: the ifb only shapes what the host veth redirects to it.
            let filters = host.filters(hv.index, TcHandle::INGRESS_QDISC).await?;
            if !filters.iter().any(|f| redirects_to(f, ifb.index)) {
                return Err(Error::internal(format!("Failed to find filter redirecting to {name}")));
            }
        }
        Ok(())
    }

    /// Removes the ifb devices of this network's attachments that are not in the valid list,
    /// found from the records ADD keeps (Go has no GC and leaves them). Another network's
    /// devices are never touched: their records live under that network's name and their
    /// names hash that network's name.
    async fn gc(&self, cx: &Context<BandwidthConf>) -> Result<()> {
        let network = &cx.config().name;
        let records = AttachmentRecords::new(cx.plugin_config().data_dir());
        let valid = cx.gc_attachments();
        let stale = records.stale::<IfbRecord>(network, valid)?;
        if stale.is_empty() {
            return Ok(());
        }
        let host = cx.host_net().await?;
        // One ifb per container and network: a container still attached through another
        // interface keeps it.
        let keep: BTreeSet<String> = valid.iter().map(|a| ifb_name(network, &a.container_id)).collect();
        for r in stale {
            let name = ifb_name(network, &r.container_id);
            if r.data.ifb != name {
                tracing::warn!(record = ?r.data, expected = %name, "ignoring an attachment record naming another device");
            } else if !keep.contains(&name)
                && let Some(link) = host.find_link(&name).await?.filter(|l| l.kind == LinkKind::Ifb)
            {
                match host.delete_link(link.index).await {
                    Ok(()) => tracing::info!(ifb = %name, container = %r.container_id, "removed a stale ifb device"),
                    Err(e) if e.kind() == NetErrorKind::NotFound => {}
                    Err(e) => return Err(go::wrap_net(format!("failed to delete {name:?}"), &e)),
                }
            }
            records.remove(network, &r.container_id, &r.ifname)?;
        }
        Ok(())
    }
}
