//! The [`Backend`] glue: every call is recorded as an [`Op`], checked against injected faults,
//! then applied to the world under its lock.

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use super::links::Placement;
use super::world::World;
use super::{Op, OpKind};
use crate::net::backend::{Backend, LinkChange, NewLink};
use crate::net::lookup::{BusDevice, DeviceBus};
use crate::net::rule::RuleSpec;
use crate::net::tc::{FilterDelete, FilterSpec, QdiscOp, QdiscSpec};
use crate::net::{
    Address, Filter, IpFamily, Link, Net, NetError, NetErrorKind, NetResult, Qdisc, Route, Rule, TABLE_MAIN, TcHandle,
};
use crate::netns::NetNs;

/// A [`Net`] backend for one namespace of a [`FakeNetwork`](super::FakeNetwork).
pub(super) struct FakeBackend {
    world: Arc<Mutex<World>>,
    ns: usize,
}

impl fmt::Debug for FakeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeBackend").field("ns", &self.ns).finish_non_exhaustive()
    }
}

impl FakeBackend {
    pub(super) fn new(world: Arc<Mutex<World>>, ns: usize) -> Self {
        Self { world, ns }
    }

    pub(super) fn ns(&self) -> usize {
        self.ns
    }

    pub(super) fn in_world(&self, world: &Arc<Mutex<World>>) -> bool {
        Arc::ptr_eq(&self.world, world)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the world under the lock, recording the operation and applying injections.
    fn run<T>(&self, kind: OpKind, detail: String, f: impl FnOnce(&mut World, usize) -> NetResult<T>) -> NetResult<T> {
        let mut w = self.lock();
        let mut op = Op { netns: w.namespaces[self.ns].name.clone(), kind, detail, error: None };
        let result = match w.injected(&op) {
            Some(err) => Err(err),
            None if !w.namespaces[self.ns].alive => {
                Err(NetError::from_errno(libc::ENOENT, format_args!("network namespace {:?} was removed", op.netns)))
            }
            None => f(&mut w, self.ns),
        };
        op.error = result.as_ref().err().map(NetError::kind);
        w.ops.push(op);
        result
    }

    /// The namespace id of `target` in the same world.
    fn target_ns(&self, target: &Net) -> NetResult<usize> {
        target
            .backend()
            .as_any()
            .downcast_ref::<FakeBackend>()
            .filter(|b| b.in_world(&self.world))
            .map(|b| b.ns)
            .ok_or_else(|| {
                NetError::new(
                    NetErrorKind::InvalidArgument,
                    "the target namespace handle belongs to another backend or FakeNetwork",
                )
            })
    }

    fn ns_name(&self, ns: usize) -> String {
        self.lock().namespaces[ns].name.clone()
    }
}

fn target_alive(w: &World, ns: usize) -> NetResult<()> {
    if w.namespaces[ns].alive {
        Ok(())
    } else {
        Err(NetError::from_errno(libc::ENOENT, "target network namespace was removed"))
    }
}

fn describe_create(spec: &NewLink, target: &str) -> (OpKind, String) {
    let name = spec.name().to_owned();
    let into = |s: String| if spec.target().is_some() { format!("{s} in {target}") } else { s };
    match spec {
        NewLink::Veth { name, peer, .. } => (OpKind::CreateVeth, format!("{name} <-> {peer} in {target}")),
        NewLink::Bridge(_) => (OpKind::CreateBridge, into(name)),
        NewLink::Dummy(_) => (OpKind::CreateDummy, into(name)),
        NewLink::Ifb(_) => (OpKind::CreateIfb, into(name)),
        NewLink::Vrf { table, .. } => (OpKind::CreateVrf, into(format!("{name} table {table}"))),
        NewLink::Macvlan { parent, mode, tap, bc_queue_len, .. } => {
            let kind = if *tap { OpKind::CreateMacvtap } else { OpKind::CreateMacvlan };
            let mode = mode.map(|m| format!(" mode {m}")).unwrap_or_default();
            let bcq = bc_queue_len.map(|n| format!(" bcqueuelen {n}")).unwrap_or_default();
            (kind, into(format!("{name} link #{parent}{mode}{bcq}")))
        }
        NewLink::Ipvlan { parent, mode, flag, .. } => {
            let mode = mode.map(|m| format!(" mode {m}")).unwrap_or_default();
            let flag = flag.map(|f| format!(" {f}")).unwrap_or_default();
            (OpKind::CreateIpvlan, into(format!("{name} link #{parent}{mode}{flag}")))
        }
        NewLink::Vlan { parent, id, protocol, .. } => {
            let proto = protocol.map(|p| format!(" protocol {p}")).unwrap_or_default();
            (OpKind::CreateVlan, into(format!("{name} link #{parent} id {id}{proto}")))
        }
        NewLink::Tun { spec: t, .. } => {
            let mode = match t.mode {
                crate::net::TunMode::Tun => "tun",
                crate::net::TunMode::Tap => "tap",
            };
            (OpKind::CreateTun, into(format!("{name} mode {mode}")))
        }
    }
}

fn describe_change(index: u32, change: &LinkChange) -> (OpKind, String) {
    match change {
        LinkChange::Up => (OpKind::SetUp, format!("#{index}")),
        LinkChange::Down => (OpKind::SetDown, format!("#{index}")),
        LinkChange::Mtu(m) => (OpKind::SetMtu, format!("#{index} mtu {m}")),
        LinkChange::Mac(m) => (OpKind::SetMac, format!("#{index} address {m}")),
        LinkChange::Master(Some(m)) => (OpKind::SetMaster, format!("#{index} master #{m}")),
        LinkChange::Master(None) => (OpKind::SetMaster, format!("#{index} nomaster")),
        LinkChange::Promisc(on) => (OpKind::SetPromisc, format!("#{index} promisc {on}")),
        LinkChange::AllMulti(on) => (OpKind::SetAllMulti, format!("#{index} allmulticast {on}")),
        LinkChange::Hairpin(on) => (OpKind::SetHairpin, format!("#{index} hairpin {on}")),
        LinkChange::TxQLen(n) => (OpKind::SetTxQLen, format!("#{index} txqueuelen {n}")),
        LinkChange::Name(n) => (OpKind::Rename, format!("#{index} name {n}")),
        LinkChange::Alias(Some(a)) => (OpKind::SetAlias, format!("#{index} alias {a:?}")),
        LinkChange::Alias(None) => (OpKind::SetAlias, format!("#{index} alias cleared")),
    }
}

fn describe_route(route: &Route) -> String {
    let mut s = route.dst.to_string();
    if let Some(gw) = route.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = route.oif {
        s.push_str(&format!(" dev #{oif}"));
    }
    if route.metric != 0 {
        s.push_str(&format!(" metric {}", route.metric));
    }
    if route.table != TABLE_MAIN {
        s.push_str(&format!(" table {}", route.table));
    }
    s
}

impl Backend for FakeBackend {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn netns(&self) -> Option<&NetNs> {
        None
    }

    async fn links(&self) -> NetResult<Vec<Link>> {
        self.run(OpKind::ListLinks, String::new(), |w, ns| {
            Ok(w.namespaces[ns].links.values().map(|l| w.view(ns, l)).collect())
        })
    }

    async fn link_by_name(&self, name: &str) -> NetResult<Option<Link>> {
        self.run(OpKind::GetLink, name.to_owned(), |w, ns| Ok(w.namespaces[ns].by_name(name).map(|l| w.view(ns, l))))
    }

    async fn link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        self.run(OpKind::GetLink, format!("#{index}"), |w, ns| {
            Ok(w.namespaces[ns].links.get(&index).map(|l| w.view(ns, l)))
        })
    }

    async fn create_link(&self, spec: &NewLink) -> NetResult<()> {
        let target = match spec {
            NewLink::Veth { peer_ns: Some(p), .. } => self.target_ns(p)?,
            _ => match spec.target() {
                Some(t) => self.target_ns(t)?,
                None => self.ns,
            },
        };
        let (kind, detail) = describe_create(spec, &self.ns_name(target));
        self.run(kind, detail, |w, ns| {
            target_alive(w, target)?;
            w.create_link(Placement { ns, target }, spec)
        })
    }

    async fn change_link(&self, index: u32, change: &LinkChange) -> NetResult<()> {
        let (kind, detail) = describe_change(index, change);
        self.run(kind, detail, |w, ns| w.change_link(ns, index, change))
    }

    async fn move_link(&self, index: u32, target: &Net, new_name: Option<&str>) -> NetResult<()> {
        let target = self.target_ns(target)?;
        let mut detail = format!("#{index} to {}", self.ns_name(target));
        if let Some(n) = new_name {
            detail.push_str(&format!(" as {n}"));
        }
        self.run(OpKind::MoveLink, detail, |w, ns| {
            target_alive(w, target)?;
            w.move_link(ns, index, target, new_name)
        })
    }

    async fn delete_link(&self, index: u32) -> NetResult<()> {
        self.run(OpKind::DeleteLink, format!("#{index}"), |w, ns| w.delete_link(ns, index))
    }

    async fn bus_device(&self, bus: DeviceBus, id: &str) -> NetResult<Option<BusDevice>> {
        self.run(OpKind::GetBusDevice, format!("{bus} {id}"), |w, ns| Ok(w.bus_device(ns, bus, id)))
    }

    async fn kernel_path_interfaces(&self, path: &Path) -> NetResult<Option<Vec<String>>> {
        self.run(OpKind::ListKernelPath, path.display().to_string(), |w, ns| Ok(w.kernel_path_interfaces(ns, path)))
    }

    async fn add_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.run(OpKind::AddAddress, format!("{addr} on #{index}"), |w, ns| w.namespaces[ns].add_address(index, addr))
    }

    async fn addresses(&self, index: Option<u32>) -> NetResult<Vec<Address>> {
        let detail = index.map(|i| format!("#{i}")).unwrap_or_default();
        self.run(OpKind::ListAddresses, detail, |w, ns| {
            let mut out: Vec<Address> =
                w.namespaces[ns].addrs.iter().filter(|a| index.is_none_or(|i| a.index == i)).copied().collect();
            out.sort();
            Ok(out)
        })
    }

    async fn delete_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.run(OpKind::DeleteAddress, format!("{addr} on #{index}"), |w, ns| {
            w.namespaces[ns].delete_address(index, addr)
        })
    }

    async fn add_route(&self, route: &Route) -> NetResult<()> {
        self.run(OpKind::AddRoute, describe_route(route), |w, ns| w.namespaces[ns].add_route(route))
    }

    async fn routes(&self, table: u32) -> NetResult<Vec<Route>> {
        self.run(OpKind::ListRoutes, format!("table {table}"), |w, ns| {
            let mut out: Vec<Route> = w.namespaces[ns].routes.iter().filter(|r| r.table == table).cloned().collect();
            out.sort_by_key(|r| (r.dst.addr().is_ipv6(), r.dst, r.metric));
            Ok(out)
        })
    }

    async fn delete_route(&self, route: &Route) -> NetResult<()> {
        self.run(OpKind::DeleteRoute, describe_route(route), |w, ns| w.namespaces[ns].delete_route(route))
    }

    async fn replace_route(&self, route: &Route) -> NetResult<()> {
        self.run(OpKind::ReplaceRoute, describe_route(route), |w, ns| w.namespaces[ns].replace_route(route))
    }

    async fn all_routes(&self) -> NetResult<Vec<Route>> {
        self.run(OpKind::ListRoutes, "table all".to_owned(), |w, ns| {
            let mut out: Vec<Route> = w.namespaces[ns].routes.clone();
            out.sort_by_key(|r| (r.dst.addr().is_ipv6(), r.table, r.dst, r.metric));
            Ok(out)
        })
    }

    async fn rules(&self, family: IpFamily) -> NetResult<Vec<Rule>> {
        self.run(OpKind::ListRules, family.to_string(), |w, ns| Ok(w.namespaces[ns].rules(family)))
    }

    async fn add_rule(&self, spec: &RuleSpec) -> NetResult<()> {
        self.run(OpKind::AddRule, spec.to_string(), |w, ns| w.namespaces[ns].add_rule(spec))
    }

    async fn delete_rule(&self, spec: &RuleSpec) -> NetResult<()> {
        self.run(OpKind::DeleteRule, spec.to_string(), |w, ns| w.namespaces[ns].delete_rule(spec))
    }

    async fn qdiscs(&self, index: Option<u32>) -> NetResult<Vec<Qdisc>> {
        let detail = index.map(|i| format!("#{i}")).unwrap_or_default();
        self.run(OpKind::ListQdiscs, detail, |w, ns| Ok(w.namespaces[ns].qdiscs(index)))
    }

    async fn change_qdisc(&self, spec: &QdiscSpec) -> NetResult<()> {
        let kind = match spec.op {
            QdiscOp::Add | QdiscOp::Replace => OpKind::AddQdisc,
            QdiscOp::Delete => OpKind::DeleteQdisc,
        };
        self.run(kind, spec.to_string(), |w, ns| w.namespaces[ns].change_qdisc(spec))
    }

    async fn filters(&self, index: u32, parent: TcHandle) -> NetResult<Vec<Filter>> {
        self.run(OpKind::ListFilters, format!("#{index} parent {parent}"), |w, ns| {
            Ok(w.namespaces[ns].filters(index, parent))
        })
    }

    async fn add_filter(&self, spec: &FilterSpec) -> NetResult<()> {
        self.run(OpKind::AddFilter, spec.to_string(), |w, ns| w.namespaces[ns].add_filter(spec))
    }

    async fn delete_filter(&self, del: &FilterDelete) -> NetResult<()> {
        self.run(OpKind::DeleteFilter, del.to_string(), |w, ns| w.namespaces[ns].delete_filter(del))
    }

    async fn sysctl_get(&self, key: &str) -> NetResult<String> {
        self.run(OpKind::GetSysctl, key.to_owned(), |w, ns| {
            w.namespaces[ns]
                .sysctl_get(key)
                .ok_or_else(|| NetError::from_errno(libc::ENOENT, format_args!("read sysctl {key}")))
        })
    }

    async fn sysctl_set(&self, key: &str, value: &str) -> NetResult<()> {
        self.run(OpKind::SetSysctl, format!("{key} = {value}"), |w, ns| w.namespaces[ns].sysctl_set(key, value))
    }
}
