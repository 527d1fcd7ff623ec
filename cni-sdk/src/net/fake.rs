//! An in-memory model of several network namespaces, for unit tests of plugin code.
//!
//! [`FakeNetwork`] is a "world" of namespaces; each namespace is reached through an ordinary
//! [`Net`] handle, so the code under test cannot tell it from the kernel. The model follows what
//! the kernel does for the operations [`Net`] offers (the behaviour suite in
//! `cni-sdk/tests/net_behaviour.rs` runs the same checks against both), including:
//!
//! * interface indexes are allocated per namespace (`lo` is 1, then increasing; the peer of a
//!   new veth pair is registered first), MAC addresses are deterministic and locally
//!   administered (`02:fa:ce:..`);
//! * adding an address to an up link (or setting a link with addresses up) adds the connected
//!   route the kernel adds (IPv4: scope link, `src` the address, metric 0; IPv6: metric 256);
//!   `/32` and `/128` addresses get none;
//! * a link going down loses its routes and its IPv6 addresses; deleting or moving a link loses
//!   its addresses, routes and per-link sysctls; deleting a veth end deletes its peer;
//! * a route's gateway must be covered by a connected route on an up link, otherwise the add
//!   fails with [`NetErrorKind::Unreachable`]; IPv6 routes get metric 1024 by default;
//! * bringing `lo` up gives it `127.0.0.1/8` and `::1/128`.
//!
//! Not modelled: IPv6 link-local (`fe80::`) addresses and routes, duplicate address detection,
//! the local routing table, bridge MTU/MAC inheritance from ports, carrier state.
//!
//! Every operation is recorded as an [`Op`] and errors can be injected:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cni_sdk::net::fake::{FakeNetwork, OpKind};
//! use cni_sdk::net::NetErrorKind;
//!
//! let world = FakeNetwork::new();
//! let host = world.host();
//! let ctr = world.add_namespace("ctr");
//! world.fail_next(OpKind::CreateVeth, NetErrorKind::Exists);
//! let err = host.veth("veth0", "eth0").peer_netns(&ctr).execute().await.unwrap_err();
//! assert_eq!(err.kind(), NetErrorKind::Exists);
//! let (v, e) = host.veth("veth0", "eth0").peer_netns(&ctr).execute().await.unwrap();
//! assert_eq!(e.index, 2);
//! assert_eq!(world.ops_of(OpKind::CreateVeth).len(), 2);
//! # let _ = v; }
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use cni_types::MacAddr;
use ipnet::IpNet;

use super::{
    Address, Backend, Link, LinkChange, LinkKind, LinkPeer, Net, NetError, NetErrorKind, NetResult, NewLink, Route,
    RouteProtocol, RouteScope, TABLE_MAIN, validate_ifname,
};
use crate::netns::NetNs;

/// The name of the namespace [`FakeNetwork::new`] starts with.
pub const HOST_NAMESPACE: &str = "host";

/// The kind of a recorded operation (also used to target injected errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// [`Net::links`].
    ListLinks,
    /// A lookup of one link by name or index.
    GetLink,
    /// Creating a veth pair.
    CreateVeth,
    /// Creating a bridge.
    CreateBridge,
    /// Creating a dummy link.
    CreateDummy,
    /// [`Net::set_up`].
    SetUp,
    /// [`Net::set_down`].
    SetDown,
    /// [`Net::set_mtu`].
    SetMtu,
    /// [`Net::set_mac`].
    SetMac,
    /// [`Net::set_master`] and [`Net::set_no_master`].
    SetMaster,
    /// [`Net::set_promisc`].
    SetPromisc,
    /// [`Net::set_hairpin`].
    SetHairpin,
    /// [`Net::move_link`].
    MoveLink,
    /// [`Net::delete_link`].
    DeleteLink,
    /// [`Net::add_address`].
    AddAddress,
    /// Listing addresses.
    ListAddresses,
    /// [`Net::delete_address`].
    DeleteAddress,
    /// Adding a route.
    AddRoute,
    /// Listing routes.
    ListRoutes,
    /// Deleting a route.
    DeleteRoute,
    /// Reading a sysctl.
    GetSysctl,
    /// Writing a sysctl.
    SetSysctl,
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The namespace the operation ran in.
    pub netns: String,
    /// What it was.
    pub kind: OpKind,
    /// Its arguments, human readable (e.g. `veth0 <-> eth0 in ctr`).
    pub detail: String,
    /// The error kind it failed with, if it failed.
    pub error: Option<NetErrorKind>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {:?} {}", self.netns, self.kind, self.detail)?;
        if let Some(e) = self.error {
            write!(f, " -> {e}")?;
        }
        Ok(())
    }
}

/// The state of one fake namespace at a point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsSnapshot {
    /// Links, by index.
    pub links: Vec<Link>,
    /// Addresses, sorted.
    pub addresses: Vec<Address>,
    /// Routes of all tables.
    pub routes: Vec<Route>,
    /// Sysctls that were written (slash form keys).
    pub sysctls: BTreeMap<String, String>,
}

type Predicate = dyn Fn(&Op) -> Option<NetError> + Send + Sync;

enum Injection {
    Next { kind: OpKind, netns: Option<String>, error: NetErrorKind },
    When(Box<Predicate>),
}

#[derive(Debug, Clone)]
struct FLink {
    index: u32,
    name: String,
    kind: LinkKind,
    mac: MacAddr,
    mtu: u32,
    up: bool,
    promisc: bool,
    master: Option<u32>,
    /// (namespace id, index) of the veth peer.
    peer: Option<(usize, u32)>,
    hairpin: bool,
}

#[derive(Debug)]
struct NsState {
    name: String,
    alive: bool,
    last_index: u32,
    links: BTreeMap<u32, FLink>,
    addrs: Vec<Address>,
    routes: Vec<Route>,
    sysctls: BTreeMap<String, String>,
}

impl NsState {
    fn new(name: &str) -> Self {
        let mut ns = Self {
            name: name.to_owned(),
            alive: true,
            last_index: 0,
            links: BTreeMap::new(),
            addrs: Vec::new(),
            routes: Vec::new(),
            sysctls: BTreeMap::new(),
        };
        let index = ns.alloc_index();
        ns.links.insert(
            index,
            FLink {
                index,
                name: "lo".into(),
                kind: LinkKind::Loopback,
                mac: MacAddr::default(),
                mtu: 65536,
                up: false,
                promisc: false,
                master: None,
                peer: None,
                hairpin: false,
            },
        );
        ns
    }

    fn alloc_index(&mut self) -> u32 {
        loop {
            self.last_index += 1;
            if !self.links.contains_key(&self.last_index) {
                return self.last_index;
            }
        }
    }

    fn by_name(&self, name: &str) -> Option<&FLink> {
        self.links.values().find(|l| l.name == name)
    }

    fn link(&self, index: u32) -> NetResult<&FLink> {
        self.links.get(&index).ok_or_else(|| no_device(index))
    }

    fn link_mut(&mut self, index: u32) -> NetResult<&mut FLink> {
        self.links.get_mut(&index).ok_or_else(|| no_device(index))
    }

    /// Adds the connected/prefix route for `addr` on link `index` if the kernel would (on
    /// loopback the kernel puts it in the local table, which is not modelled).
    fn add_prefix_route(&mut self, index: u32, addr: IpNet) {
        if self.links.get(&index).is_some_and(|l| l.kind == LinkKind::Loopback) {
            return;
        }
        let (scope, metric, source) = match addr {
            IpNet::V4(_) => (RouteScope::Link, 0, Some(addr.addr())),
            IpNet::V6(_) => (RouteScope::Universe, 256, None),
        };
        if addr.prefix_len() == addr.max_prefix_len() {
            return;
        }
        let dst = addr.trunc();
        let exists = self
            .routes
            .iter()
            .any(|r| r.dst == dst && r.oif == Some(index) && r.table == TABLE_MAIN && r.metric == metric);
        if exists {
            return;
        }
        self.routes.push(Route {
            dst,
            gateway: None,
            oif: Some(index),
            metric,
            table: TABLE_MAIN,
            scope,
            protocol: RouteProtocol::Kernel,
            source,
            mtu: None,
            advmss: None,
        });
    }

    fn set_up(&mut self, index: u32) -> NetResult<()> {
        let link = self.link_mut(index)?;
        if link.up {
            return Ok(());
        }
        link.up = true;
        if link.kind == LinkKind::Loopback {
            for a in ["127.0.0.1/8", "::1/128"] {
                let addr: IpNet = a.parse().expect("valid loopback address");
                if !self.addrs.iter().any(|x| x.index == index && x.addr == addr) {
                    self.addrs.push(Address { index, addr });
                }
            }
        }
        let addrs: Vec<IpNet> = self.addrs.iter().filter(|a| a.index == index).map(|a| a.addr).collect();
        for addr in addrs {
            self.add_prefix_route(index, addr);
        }
        Ok(())
    }

    fn set_down(&mut self, index: u32) -> NetResult<()> {
        let link = self.link_mut(index)?;
        if !link.up {
            return Ok(());
        }
        link.up = false;
        self.routes.retain(|r| r.oif != Some(index));
        self.addrs.retain(|a| !(a.index == index && matches!(a.addr, IpNet::V6(_))));
        Ok(())
    }

    /// Removes everything that refers to link `index` (before it is deleted or moved away).
    fn detach(&mut self, index: u32) -> Option<FLink> {
        let link = self.links.remove(&index)?;
        self.routes.retain(|r| r.oif != Some(index));
        self.addrs.retain(|a| a.index != index);
        for other in self.links.values_mut() {
            if other.master == Some(index) {
                other.master = None;
                other.hairpin = false;
            }
        }
        let infix = format!("/conf/{}/", link.name);
        self.sysctls.retain(|k, _| !k.contains(&infix));
        Some(link)
    }

    fn view(&self, ns_id: usize, link: &FLink) -> Link {
        let is_port = link.master.and_then(|m| self.links.get(&m)).is_some_and(|m| m.kind == LinkKind::Bridge);
        Link {
            index: link.index,
            name: link.name.clone(),
            kind: link.kind.clone(),
            mac: link.mac,
            mtu: link.mtu,
            up: link.up,
            promisc: link.promisc,
            master: link.master,
            peer: link.peer.map(|(ns, index)| LinkPeer { index, same_netns: ns == ns_id }),
            hairpin: is_port.then_some(link.hairpin),
        }
    }

    fn sysctl_default(&self, key: &str) -> Option<String> {
        let parts: Vec<&str> = key.split('/').collect();
        let known_dev = |dev: &str| dev == "all" || dev == "default" || self.by_name(dev).is_some();
        let value = match parts.as_slice() {
            ["net", "ipv4", "ip_forward"] => "0",
            [
                "net",
                "ipv4",
                "conf",
                dev,
                "forwarding" | "proxy_arp" | "rp_filter" | "route_localnet" | "arp_ignore",
            ] if known_dev(dev) => "0",
            ["net", "ipv6", "conf", dev, setting] if known_dev(dev) => match *setting {
                "forwarding" | "disable_ipv6" | "keep_addr_on_down" => "0",
                "accept_ra" | "autoconf" => "1",
                "accept_dad" if *dev == "lo" => "-1",
                "accept_dad" => "1",
                _ => return None,
            },
            _ => return None,
        };
        Some(value.to_owned())
    }

    fn sysctl_get(&self, key: &str) -> Option<String> {
        let default = self.sysctl_default(key)?;
        Some(self.sysctls.get(key).cloned().unwrap_or(default))
    }

    fn sysctl_set(&mut self, key: &str, value: &str) -> NetResult<()> {
        if self.sysctl_default(key).is_none() {
            return Err(NetError::from_errno(libc::ENOENT, format_args!("write sysctl {key}")));
        }
        let value = value.trim();
        if value.parse::<i64>().is_err() {
            return Err(NetError::from_errno(libc::EINVAL, format_args!("write sysctl {key} = {value:?}")));
        }
        let names: Vec<String> = self.links.values().map(|l| l.name.clone()).collect();
        let mut keys = vec![key.to_owned()];
        // The "all" forwarding switches (and ip_forward) propagate to every device.
        match key {
            "net/ipv4/ip_forward" | "net/ipv4/conf/all/forwarding" => {
                keys.push("net/ipv4/ip_forward".into());
                keys.push("net/ipv4/conf/all/forwarding".into());
                keys.extend(names.iter().map(|n| format!("net/ipv4/conf/{n}/forwarding")));
            }
            "net/ipv6/conf/all/forwarding" => {
                keys.extend(names.iter().map(|n| format!("net/ipv6/conf/{n}/forwarding")));
            }
            _ => {}
        }
        for k in keys {
            self.sysctls.insert(k, value.to_owned());
        }
        Ok(())
    }
}

fn no_device(index: u32) -> NetError {
    NetError::from_errno(libc::ENODEV, format_args!("link #{index}"))
}

fn check_mtu(mtu: u32) -> NetResult<()> {
    if !(68..=65535).contains(&mtu) {
        return Err(NetError::from_errno(libc::EINVAL, format_args!("mtu {mtu} out of range 68..=65535")));
    }
    Ok(())
}

struct World {
    namespaces: Vec<NsState>,
    ops: Vec<Op>,
    injections: Vec<Injection>,
    mac_seq: u32,
}

impl World {
    fn ns_id(&self, name: &str) -> Option<usize> {
        self.namespaces.iter().position(|n| n.alive && n.name == name)
    }

    fn next_mac(&mut self) -> MacAddr {
        self.mac_seq += 1;
        let [_, a, b, c] = self.mac_seq.to_be_bytes();
        MacAddr::new([0x02, 0xfa, 0xce, a, b, c])
    }

    fn injected(&mut self, op: &Op) -> Option<NetError> {
        let pos = self.injections.iter().position(|inj| match inj {
            Injection::Next { kind, netns, .. } => *kind == op.kind && netns.as_ref().is_none_or(|n| *n == op.netns),
            Injection::When(_) => false,
        });
        if let Some(pos) = pos
            && let Injection::Next { error, .. } = self.injections.remove(pos)
        {
            return Some(NetError::new(error, format!("injected error ({error}) for {:?} {}", op.kind, op.detail)));
        }
        self.injections.iter().find_map(|inj| match inj {
            Injection::When(pred) => pred(op),
            Injection::Next { .. } => None,
        })
    }

    /// Deletes link `index` of namespace `ns` and its veth peer.
    fn delete_link(&mut self, ns: usize, index: u32) -> NetResult<()> {
        let link = self.namespaces[ns].detach(index).ok_or_else(|| no_device(index))?;
        if let Some((pns, pidx)) = link.peer {
            self.namespaces[pns].detach(pidx);
        }
        Ok(())
    }

    fn create_link(&mut self, ns: usize, spec: &NewLink, peer_ns: Option<usize>) -> NetResult<()> {
        let exists = |w: &World, ns: usize, name: &str| -> NetResult<()> {
            if w.namespaces[ns].by_name(name).is_some() {
                Err(NetError::from_errno(libc::EEXIST, format_args!("create link {name:?}")))
            } else {
                Ok(())
            }
        };
        match spec {
            NewLink::Veth { name, peer, mtu, mac, peer_mac, .. } => {
                validate_ifname(name)?;
                validate_ifname(peer)?;
                let pns = peer_ns.unwrap_or(ns);
                exists(self, ns, name)?;
                exists(self, pns, peer)?;
                if pns == ns && name == peer {
                    return Err(NetError::from_errno(libc::EEXIST, format_args!("create link {peer:?}")));
                }
                if let Some(mtu) = mtu {
                    check_mtu(*mtu)?;
                }
                // The kernel registers the peer first.
                let peer_mac = peer_mac.unwrap_or_else(|| self.next_mac());
                let own_mac = mac.unwrap_or_else(|| self.next_mac());
                let pidx = self.namespaces[pns].alloc_index();
                let mut peer_link = self.new_flink(pidx, peer, LinkKind::Veth, *mtu, peer_mac);
                // Reserve the peer index before allocating ours (same namespace case).
                self.namespaces[pns].links.insert(pidx, peer_link.clone());
                let idx = self.namespaces[ns].alloc_index();
                let mut own = self.new_flink(idx, name, LinkKind::Veth, *mtu, own_mac);
                own.peer = Some((pns, pidx));
                peer_link.peer = Some((ns, idx));
                self.namespaces[pns].links.insert(pidx, peer_link);
                self.namespaces[ns].links.insert(idx, own);
            }
            NewLink::Bridge { name, mtu, mac } | NewLink::Dummy { name, mtu, mac } => {
                validate_ifname(name)?;
                exists(self, ns, name)?;
                if let Some(mtu) = mtu {
                    check_mtu(*mtu)?;
                }
                let kind = if matches!(spec, NewLink::Bridge { .. }) { LinkKind::Bridge } else { LinkKind::Dummy };
                let mac = mac.unwrap_or_else(|| self.next_mac());
                let idx = self.namespaces[ns].alloc_index();
                let link = self.new_flink(idx, name, kind, *mtu, mac);
                self.namespaces[ns].links.insert(idx, link);
            }
        }
        Ok(())
    }

    fn new_flink(&self, index: u32, name: &str, kind: LinkKind, mtu: Option<u32>, mac: MacAddr) -> FLink {
        FLink {
            index,
            name: name.to_owned(),
            kind,
            mac,
            mtu: mtu.unwrap_or(1500),
            up: false,
            promisc: false,
            master: None,
            peer: None,
            hairpin: false,
        }
    }

    fn move_link(&mut self, ns: usize, index: u32, target: usize) -> NetResult<()> {
        let link = self.namespaces[ns].link(index)?;
        if matches!(link.kind, LinkKind::Bridge | LinkKind::Loopback) {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("move {:?}: the link is local to its namespace", link.name),
            ));
        }
        if target == ns {
            return Ok(());
        }
        if self.namespaces[target].by_name(&link.name).is_some() {
            return Err(NetError::from_errno(
                libc::EEXIST,
                format_args!("move {:?}: name taken in target namespace", link.name),
            ));
        }
        let mut link = self.namespaces[ns].detach(index).ok_or_else(|| no_device(index))?;
        let tgt = &mut self.namespaces[target];
        let new_index = if tgt.links.contains_key(&index) { tgt.alloc_index() } else { index };
        link.index = new_index;
        link.up = false;
        link.master = None;
        link.hairpin = false;
        let peer = link.peer;
        tgt.links.insert(new_index, link);
        if let Some((pns, pidx)) = peer
            && let Some(p) = self.namespaces[pns].links.get_mut(&pidx)
        {
            p.peer = Some((target, new_index));
        }
        Ok(())
    }

    fn change_link(&mut self, ns: usize, index: u32, change: LinkChange) -> NetResult<()> {
        let state = &mut self.namespaces[ns];
        state.link(index)?;
        match change {
            LinkChange::Up => state.set_up(index),
            LinkChange::Down => state.set_down(index),
            LinkChange::Mtu(mtu) => {
                if state.link(index)?.kind != LinkKind::Loopback {
                    check_mtu(mtu)?;
                }
                state.link_mut(index)?.mtu = mtu;
                Ok(())
            }
            LinkChange::Mac(mac) => {
                state.link_mut(index)?.mac = mac;
                Ok(())
            }
            LinkChange::Master(Some(master)) => {
                // The kernel answers EINVAL for a master index that does not exist.
                let m = state.links.get(&master).ok_or_else(|| {
                    NetError::from_errno(libc::EINVAL, format_args!("set master of #{index}: no link #{master}"))
                })?;
                if m.kind != LinkKind::Bridge || master == index {
                    return Err(NetError::from_errno(
                        libc::EOPNOTSUPP,
                        format_args!("set master of #{index} to #{master}"),
                    ));
                }
                let link = state.link_mut(index)?;
                if link.master != Some(master) {
                    link.master = Some(master);
                    link.hairpin = false;
                }
                Ok(())
            }
            LinkChange::Master(None) => {
                let link = state.link_mut(index)?;
                link.master = None;
                link.hairpin = false;
                Ok(())
            }
            LinkChange::Promisc(on) => {
                state.link_mut(index)?.promisc = on;
                Ok(())
            }
            LinkChange::Hairpin(on) => {
                let is_port = state
                    .link(index)?
                    .master
                    .and_then(|m| state.links.get(&m))
                    .is_some_and(|m| m.kind == LinkKind::Bridge);
                if !is_port {
                    return Err(NetError::from_errno(
                        libc::EOPNOTSUPP,
                        format_args!("set hairpin on #{index}: not a bridge port"),
                    ));
                }
                state.link_mut(index)?.hairpin = on;
                Ok(())
            }
        }
    }

    fn add_address(&mut self, ns: usize, index: u32, addr: IpNet) -> NetResult<()> {
        let state = &mut self.namespaces[ns];
        let up = state.link(index)?.up;
        let dup = state.addrs.iter().any(|a| {
            a.index == index
                && a.addr.addr() == addr.addr()
                && (matches!(addr, IpNet::V6(_)) || a.addr.prefix_len() == addr.prefix_len())
        });
        if dup {
            return Err(NetError::from_errno(libc::EEXIST, format_args!("add address {addr} to #{index}")));
        }
        state.addrs.push(Address { index, addr });
        if up {
            state.add_prefix_route(index, addr);
        }
        Ok(())
    }

    fn add_route(&mut self, ns: usize, route: &Route) -> NetResult<()> {
        let state = &mut self.namespaces[ns];
        let mut route = route.clone();
        route.dst = route.dst.trunc();
        let v6 = matches!(route.dst, IpNet::V6(_));
        let ctx = format!("add route {}", route.dst);
        if let Some(oif) = route.oif
            && !state.link(oif)?.up
        {
            return Err(NetError::from_errno(libc::ENETDOWN, format_args!("{ctx}: nexthop device is not up")));
        }
        match route.gateway {
            Some(gw) => {
                if gw.is_ipv6() != v6 {
                    return Err(NetError::from_errno(
                        libc::EINVAL,
                        format_args!("{ctx}: gateway {gw} of the wrong family"),
                    ));
                }
                let via = state.routes.iter().find(|r| {
                    r.gateway.is_none()
                        && r.table == TABLE_MAIN
                        && r.dst.contains(&gw)
                        && route.oif.is_none_or(|o| r.oif == Some(o))
                        && r.oif.and_then(|o| state.links.get(&o)).is_some_and(|l| l.up)
                });
                match via {
                    Some(r) => route.oif = r.oif,
                    None => {
                        let errno = if v6 { libc::EHOSTUNREACH } else { libc::EINVAL };
                        return Err(NetError::from_errno(
                            errno,
                            format_args!("{ctx}: nexthop has invalid gateway {gw}"),
                        )
                        .with_kind(NetErrorKind::Unreachable));
                    }
                }
            }
            None if route.oif.is_none() => {
                return Err(NetError::from_errno(
                    libc::EINVAL,
                    format_args!("{ctx}: neither gateway nor device given"),
                ));
            }
            None => {}
        }
        if let Some(src) = route.source
            && !state.addrs.iter().any(|a| a.addr.addr() == src)
        {
            return Err(NetError::from_errno(libc::EINVAL, format_args!("{ctx}: invalid preferred source {src}")));
        }
        if v6 {
            route.scope = RouteScope::Universe;
            if route.metric == 0 {
                route.metric = 1024;
            }
        }
        let dup = state.routes.iter().any(|r| r.dst == route.dst && r.table == route.table && r.metric == route.metric);
        if dup {
            return Err(NetError::from_errno(libc::EEXIST, ctx));
        }
        state.routes.push(route);
        Ok(())
    }

    fn delete_route(&mut self, ns: usize, route: &Route) -> NetResult<()> {
        let state = &mut self.namespaces[ns];
        let dst = route.dst.trunc();
        let pos = state.routes.iter().position(|r| {
            r.dst == dst
                && r.table == route.table
                && route.gateway.is_none_or(|g| r.gateway == Some(g))
                && route.oif.is_none_or(|o| r.oif == Some(o))
                && (route.metric == 0 || r.metric == route.metric)
        });
        match pos {
            Some(pos) => {
                state.routes.remove(pos);
                Ok(())
            }
            None => Err(NetError::from_errno(libc::ESRCH, format_args!("delete route {dst}"))),
        }
    }
}

/// A world of fake network namespaces. Cheap to clone (all clones share the world).
#[derive(Clone)]
pub struct FakeNetwork {
    world: Arc<Mutex<World>>,
}

impl fmt::Debug for FakeNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.lock();
        let names: Vec<&str> = w.namespaces.iter().filter(|n| n.alive).map(|n| n.name.as_str()).collect();
        f.debug_struct("FakeNetwork").field("namespaces", &names).field("ops", &w.ops.len()).finish()
    }
}

impl Default for FakeNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeNetwork {
    /// A world with one namespace, [`HOST_NAMESPACE`], holding only a (down) `lo`.
    pub fn new() -> Self {
        Self {
            world: Arc::new(Mutex::new(World {
                namespaces: vec![NsState::new(HOST_NAMESPACE)],
                ops: Vec::new(),
                injections: Vec::new(),
                mac_seq: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, ns: usize) -> Net {
        Net::from_backend(Arc::new(FakeBackend { world: Arc::clone(&self.world), ns }))
    }

    /// The host namespace.
    pub fn host(&self) -> Net {
        self.handle(0)
    }

    /// Creates the namespace `name` (with a down `lo`), or returns the existing one.
    pub fn add_namespace(&self, name: &str) -> Net {
        let mut w = self.lock();
        let id = match w.ns_id(name) {
            Some(id) => id,
            None => {
                w.namespaces.push(NsState::new(name));
                w.namespaces.len() - 1
            }
        };
        drop(w);
        self.handle(id)
    }

    /// The namespace `name`, if it exists.
    pub fn namespace(&self, name: &str) -> Option<Net> {
        let id = self.lock().ns_id(name)?;
        Some(self.handle(id))
    }

    /// Destroys the namespace `name` like the kernel does when its last reference goes: its
    /// veth links disappear together with their peers elsewhere. Handles to it then fail with
    /// [`NetErrorKind::NotFound`]. Returns false if there was no such namespace.
    pub fn remove_namespace(&self, name: &str) -> bool {
        let mut w = self.lock();
        let Some(id) = w.ns_id(name) else {
            return false;
        };
        let peers: Vec<(usize, u32)> = w.namespaces[id].links.values().filter_map(|l| l.peer).collect();
        for (pns, pidx) in peers {
            if pns != id {
                w.namespaces[pns].detach(pidx);
            }
        }
        let ns = &mut w.namespaces[id];
        ns.alive = false;
        ns.links.clear();
        ns.addrs.clear();
        ns.routes.clear();
        true
    }

    /// The name of the namespace `net` operates in, if it belongs to this world.
    pub fn namespace_name(&self, net: &Net) -> Option<String> {
        let backend = net.backend().as_any().downcast_ref::<FakeBackend>()?;
        if !Arc::ptr_eq(&backend.world, &self.world) {
            return None;
        }
        Some(self.lock().namespaces[backend.ns].name.clone())
    }

    /// The state of namespace `name`.
    pub fn snapshot(&self, name: &str) -> Option<NsSnapshot> {
        let w = self.lock();
        let id = w.ns_id(name)?;
        let ns = &w.namespaces[id];
        let mut addresses = ns.addrs.clone();
        addresses.sort();
        Some(NsSnapshot {
            links: ns.links.values().map(|l| ns.view(id, l)).collect(),
            addresses,
            routes: ns.routes.clone(),
            sysctls: ns.sysctls.clone(),
        })
    }

    /// Every operation so far, in order.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().ops.clone()
    }

    /// The operations of one kind.
    pub fn ops_of(&self, kind: OpKind) -> Vec<Op> {
        self.lock().ops.iter().filter(|o| o.kind == kind).cloned().collect()
    }

    /// Forgets the recorded operations.
    pub fn clear_ops(&self) {
        self.lock().ops.clear();
    }

    /// Makes the next operation of `kind` (in any namespace) fail with an error of `error` kind,
    /// without changing anything.
    pub fn fail_next(&self, kind: OpKind, error: NetErrorKind) {
        self.lock().injections.push(Injection::Next { kind, netns: None, error });
    }

    /// Like [`FakeNetwork::fail_next`], for operations in namespace `netns` only.
    pub fn fail_next_in(&self, netns: &str, kind: OpKind, error: NetErrorKind) {
        self.lock().injections.push(Injection::Next { kind, netns: Some(netns.to_owned()), error });
    }

    /// Makes every operation for which `predicate` returns an error fail with it (until
    /// [`FakeNetwork::clear_failures`]).
    pub fn fail_when(&self, predicate: impl Fn(&Op) -> Option<NetError> + Send + Sync + 'static) {
        self.lock().injections.push(Injection::When(Box::new(predicate)));
    }

    /// Removes all pending injected failures.
    pub fn clear_failures(&self) {
        self.lock().injections.clear();
    }
}

/// A [`Net`] backend for one namespace of a [`FakeNetwork`].
struct FakeBackend {
    world: Arc<Mutex<World>>,
    ns: usize,
}

impl fmt::Debug for FakeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeBackend").field("ns", &self.ns).finish_non_exhaustive()
    }
}

impl FakeBackend {
    /// Runs `f` on the world under the lock, recording the operation and applying injections.
    fn run<T>(&self, kind: OpKind, detail: String, f: impl FnOnce(&mut World, usize) -> NetResult<T>) -> NetResult<T> {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
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
            .filter(|b| Arc::ptr_eq(&b.world, &self.world))
            .map(|b| b.ns)
            .ok_or_else(|| {
                NetError::new(
                    NetErrorKind::InvalidArgument,
                    "the target namespace handle belongs to another backend or FakeNetwork",
                )
            })
    }

    fn ns_name(w: &World, ns: usize) -> String {
        w.namespaces[ns].name.clone()
    }
}

#[async_trait]
impl Backend for FakeBackend {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn netns(&self) -> Option<&NetNs> {
        None
    }

    async fn links(&self) -> NetResult<Vec<Link>> {
        self.run(OpKind::ListLinks, String::new(), |w, ns| {
            let s = &w.namespaces[ns];
            Ok(s.links.values().map(|l| s.view(ns, l)).collect())
        })
    }

    async fn link_by_name(&self, name: &str) -> NetResult<Option<Link>> {
        self.run(OpKind::GetLink, name.to_owned(), |w, ns| {
            let s = &w.namespaces[ns];
            Ok(s.by_name(name).map(|l| s.view(ns, l)))
        })
    }

    async fn link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        self.run(OpKind::GetLink, format!("#{index}"), |w, ns| {
            let s = &w.namespaces[ns];
            Ok(s.links.get(&index).map(|l| s.view(ns, l)))
        })
    }

    async fn create_link(&self, spec: &NewLink) -> NetResult<()> {
        let peer_ns = match spec {
            NewLink::Veth { peer_ns: Some(p), .. } => Some(self.target_ns(p)?),
            _ => None,
        };
        let (kind, detail) = {
            let w = self.world.lock().unwrap_or_else(|p| p.into_inner());
            match spec {
                NewLink::Veth { name, peer, .. } => {
                    let pns = Self::ns_name(&w, peer_ns.unwrap_or(self.ns));
                    (OpKind::CreateVeth, format!("{name} <-> {peer} in {pns}"))
                }
                NewLink::Bridge { name, .. } => (OpKind::CreateBridge, name.clone()),
                NewLink::Dummy { name, .. } => (OpKind::CreateDummy, name.clone()),
            }
        };
        self.run(kind, detail, |w, ns| {
            if let Some(p) = peer_ns
                && !w.namespaces[p].alive
            {
                return Err(NetError::from_errno(libc::ENOENT, "peer network namespace was removed"));
            }
            w.create_link(ns, spec, peer_ns)
        })
    }

    async fn change_link(&self, index: u32, change: LinkChange) -> NetResult<()> {
        let (kind, detail) = match change {
            LinkChange::Up => (OpKind::SetUp, format!("#{index}")),
            LinkChange::Down => (OpKind::SetDown, format!("#{index}")),
            LinkChange::Mtu(m) => (OpKind::SetMtu, format!("#{index} mtu {m}")),
            LinkChange::Mac(m) => (OpKind::SetMac, format!("#{index} address {m}")),
            LinkChange::Master(Some(m)) => (OpKind::SetMaster, format!("#{index} master #{m}")),
            LinkChange::Master(None) => (OpKind::SetMaster, format!("#{index} nomaster")),
            LinkChange::Promisc(on) => (OpKind::SetPromisc, format!("#{index} promisc {on}")),
            LinkChange::Hairpin(on) => (OpKind::SetHairpin, format!("#{index} hairpin {on}")),
        };
        self.run(kind, detail, |w, ns| w.change_link(ns, index, change))
    }

    async fn move_link(&self, index: u32, target: &Net) -> NetResult<()> {
        let target = self.target_ns(target)?;
        let detail = {
            let w = self.world.lock().unwrap_or_else(|p| p.into_inner());
            format!("#{index} to {}", Self::ns_name(&w, target))
        };
        self.run(OpKind::MoveLink, detail, |w, ns| {
            if !w.namespaces[target].alive {
                return Err(NetError::from_errno(libc::ENOENT, "target network namespace was removed"));
            }
            w.move_link(ns, index, target)
        })
    }

    async fn delete_link(&self, index: u32) -> NetResult<()> {
        self.run(OpKind::DeleteLink, format!("#{index}"), |w, ns| w.delete_link(ns, index))
    }

    async fn add_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.run(OpKind::AddAddress, format!("{addr} on #{index}"), |w, ns| w.add_address(ns, index, addr))
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
            let s = &mut w.namespaces[ns];
            s.link(index)?;
            let pos = s.addrs.iter().position(|a| a.index == index && a.addr == addr).ok_or_else(|| {
                NetError::from_errno(libc::EADDRNOTAVAIL, format_args!("delete address {addr} from #{index}"))
            })?;
            s.addrs.remove(pos);
            // The connected route goes when no other address of the link covers it.
            let dst = addr.trunc();
            let still = s.addrs.iter().any(|a| a.index == index && a.addr.trunc() == dst);
            if !still {
                s.routes.retain(|r| !(r.protocol == RouteProtocol::Kernel && r.oif == Some(index) && r.dst == dst));
            }
            Ok(())
        })
    }

    async fn add_route(&self, route: &Route) -> NetResult<()> {
        self.run(OpKind::AddRoute, describe_route(route), |w, ns| w.add_route(ns, route))
    }

    async fn routes(&self, table: u32) -> NetResult<Vec<Route>> {
        self.run(OpKind::ListRoutes, format!("table {table}"), |w, ns| {
            let mut out: Vec<Route> = w.namespaces[ns].routes.iter().filter(|r| r.table == table).cloned().collect();
            out.sort_by_key(|r| (r.dst.addr().is_ipv6(), r.dst, r.metric));
            Ok(out)
        })
    }

    async fn delete_route(&self, route: &Route) -> NetResult<()> {
        self.run(OpKind::DeleteRoute, describe_route(route), |w, ns| w.delete_route(ns, route))
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
