//! The model of one namespace: its links, addresses, routes and sysctls, and the rules the
//! kernel applies inside a namespace (connected routes, link state, gateway reachability).

use std::collections::BTreeMap;

use cni_types::MacAddr;
use ipnet::IpNet;

use super::rules::FRule;
use super::tc::LinkTc;
use crate::net::{
    Address, IpFamily, KindInfo, LinkKind, NetError, NetErrorKind, NetResult, Route, RouteProtocol, RouteScope, Rule,
    TABLE_MAIN,
};

/// A world-unique link identity, stable across moves and renames (links refer to their veth
/// peer and parent by it).
pub(super) type LinkId = u64;

/// One link of the model.
#[derive(Debug, Clone)]
pub(super) struct FLink {
    pub(super) id: LinkId,
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) kind: LinkKind,
    pub(super) info: KindInfo,
    pub(super) mac: MacAddr,
    pub(super) mtu: u32,
    pub(super) up: bool,
    pub(super) promisc: bool,
    pub(super) allmulti: bool,
    pub(super) txqlen: u32,
    pub(super) alias: Option<String>,
    pub(super) master: Option<u32>,
    pub(super) peer: Option<LinkId>,
    pub(super) parent: Option<LinkId>,
    pub(super) hairpin: bool,
    /// Index into the world's registered devices, for fake physical devices.
    pub(super) device: Option<usize>,
    /// Qdiscs and filters.
    pub(super) tc: LinkTc,
}

impl FLink {
    pub(super) fn new(id: LinkId, index: u32, name: &str, kind: LinkKind, mac: MacAddr) -> Self {
        let (mtu, txqlen) = match kind {
            LinkKind::Loopback => (65536, 1000),
            LinkKind::Vrf => (65575, 1000),
            LinkKind::Macvtap => (1500, 500),
            LinkKind::Ifb => (1500, 32),
            _ => (1500, 1000),
        };
        Self {
            id,
            index,
            name: name.to_owned(),
            kind,
            info: KindInfo::Plain,
            mac,
            mtu,
            up: false,
            promisc: false,
            allmulti: false,
            txqlen,
            alias: None,
            master: None,
            peer: None,
            parent: None,
            hairpin: false,
            device: None,
            tc: LinkTc::default(),
        }
    }

    /// The macvlan or macvtap mode, for those kinds.
    pub(super) fn macvlan_mode(&self) -> Option<crate::net::MacvlanMode> {
        match self.info {
            KindInfo::Macvlan { mode } | KindInfo::Macvtap { mode } => Some(mode),
            _ => None,
        }
    }

    /// Devices the kernel keeps in their namespace (`NETIF_F_NETNS_LOCAL`).
    pub(super) fn netns_local(&self) -> bool {
        matches!(self.kind, LinkKind::Loopback | LinkKind::Bridge)
    }

    /// Devices without an Ethernet header (`ARPHRD_ETHER`), which cannot carry macvlans or ipvlans.
    pub(super) fn is_ether(&self) -> bool {
        match (&self.kind, &self.info) {
            (LinkKind::Loopback, _) => false,
            (LinkKind::Tun, KindInfo::Tun(t)) => t.mode == crate::net::TunMode::Tap,
            _ => true,
        }
    }
}

/// The valid MTU range of a link kind (`min_mtu..=max_mtu`), `None` where the model does not
/// check (loopback).
pub(super) fn mtu_range(kind: &LinkKind) -> Option<(u32, u32)> {
    match kind {
        LinkKind::Loopback => None,
        LinkKind::Vrf => Some((1280, 65575)),
        _ => Some((68, 65535)),
    }
}

pub(super) fn check_mtu(kind: &LinkKind, mtu: u32, what: &str) -> NetResult<()> {
    if let Some((min, max)) = mtu_range(kind)
        && !(min..=max).contains(&mtu)
    {
        return Err(NetError::from_errno(libc::EINVAL, format_args!("{what}: mtu {mtu} out of range {min}..={max}")));
    }
    Ok(())
}

pub(super) fn check_mac(mac: MacAddr, what: &str) -> NetResult<()> {
    if mac.is_multicast() || mac.is_zero() {
        return Err(NetError::from_errno(libc::EADDRNOTAVAIL, format_args!("{what}: invalid hardware address {mac}")));
    }
    Ok(())
}

pub(super) fn no_device(index: u32) -> NetError {
    NetError::from_errno(libc::ENODEV, format_args!("link #{index}"))
}

/// The state of one namespace.
#[derive(Debug)]
pub(super) struct NsState {
    pub(super) name: String,
    pub(super) alive: bool,
    last_index: u32,
    pub(super) links: BTreeMap<u32, FLink>,
    pub(super) addrs: Vec<Address>,
    pub(super) routes: Vec<Route>,
    pub(super) sysctls: BTreeMap<String, String>,
    /// Policy rules of both families, each family in priority order.
    pub(super) rules: Vec<FRule>,
    /// The l3mdev rules were added (by the first VRF device).
    pub(super) vrf_rules_added: bool,
}

impl NsState {
    /// A namespace holding only a (down) `lo` with link id `lo_id`.
    pub(super) fn new(name: &str, lo_id: LinkId) -> Self {
        let mut ns = Self {
            name: name.to_owned(),
            alive: true,
            last_index: 0,
            links: BTreeMap::new(),
            addrs: Vec::new(),
            routes: Vec::new(),
            sysctls: BTreeMap::new(),
            rules: [IpFamily::V4, IpFamily::V6]
                .into_iter()
                .flat_map(Rule::defaults)
                .map(|rule| FRule { rule, kernel: true })
                .collect(),
            vrf_rules_added: false,
        };
        let index = ns.alloc_index();
        ns.links.insert(index, FLink::new(lo_id, index, "lo", LinkKind::Loopback, MacAddr::default()));
        ns
    }

    pub(super) fn alloc_index(&mut self) -> u32 {
        loop {
            self.last_index += 1;
            if !self.links.contains_key(&self.last_index) {
                return self.last_index;
            }
        }
    }

    pub(super) fn by_name(&self, name: &str) -> Option<&FLink> {
        self.links.values().find(|l| l.name == name)
    }

    pub(super) fn link(&self, index: u32) -> NetResult<&FLink> {
        self.links.get(&index).ok_or_else(|| no_device(index))
    }

    pub(super) fn link_mut(&mut self, index: u32) -> NetResult<&mut FLink> {
        self.links.get_mut(&index).ok_or_else(|| no_device(index))
    }

    pub(super) fn name_free(&self, name: &str, what: &str) -> NetResult<()> {
        if self.by_name(name).is_some() {
            return Err(NetError::from_errno(libc::EEXIST, format_args!("{what}: name {name:?} is taken")));
        }
        Ok(())
    }

    /// The routing table a link's connected routes go to: its VRF's, else main.
    pub(super) fn link_table(&self, index: u32) -> u32 {
        let master = self.links.get(&index).and_then(|l| l.master).and_then(|m| self.links.get(&m));
        match master.map(|m| m.info) {
            Some(KindInfo::Vrf { table }) => table,
            _ => TABLE_MAIN,
        }
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
        let table = self.link_table(index);
        let exists =
            self.routes.iter().any(|r| r.dst == dst && r.oif == Some(index) && r.table == table && r.metric == metric);
        if exists {
            return;
        }
        self.routes.push(Route {
            dst,
            gateway: None,
            oif: Some(index),
            metric,
            table,
            scope,
            protocol: RouteProtocol::Kernel,
            source,
            mtu: None,
            advmss: None,
        });
    }

    pub(super) fn set_up(&mut self, index: u32) -> NetResult<()> {
        let link = self.link_mut(index)?;
        if link.up {
            return Ok(());
        }
        link.up = true;
        link.tc.activate();
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

    pub(super) fn set_down(&mut self, index: u32) -> NetResult<()> {
        let link = self.link_mut(index)?;
        if !link.up {
            return Ok(());
        }
        link.up = false;
        let name = link.name.clone();
        self.routes.retain(|r| r.oif != Some(index));
        // IPv6 addresses go unless `keep_addr_on_down` is positive ("all" when it is set, else
        // the link's own).
        let setting = |dev: &str| {
            self.sysctl_get(&format!("net/ipv6/conf/{dev}/keep_addr_on_down"))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let all = setting("all");
        let keep = if all != 0 { all > 0 } else { setting(&name) > 0 };
        if !keep {
            self.addrs.retain(|a| !(a.index == index && matches!(a.addr, IpNet::V6(_))));
        }
        Ok(())
    }

    /// Down then up again, as the kernel does to a link entering or leaving a VRF (its routes
    /// move to the new table; IPv6 addresses are lost).
    pub(super) fn cycle(&mut self, index: u32) -> NetResult<()> {
        if self.link(index)?.up {
            self.set_down(index)?;
            self.set_up(index)?;
        }
        Ok(())
    }

    /// Removes link `index` and everything that refers to it in this namespace (before it is
    /// deleted or moved away).
    pub(super) fn detach(&mut self, index: u32) -> Option<FLink> {
        let link = self.links.remove(&index)?;
        self.routes.retain(|r| r.oif != Some(index));
        self.addrs.retain(|a| a.index != index);
        for other in self.links.values_mut() {
            if other.master == Some(index) {
                other.master = None;
                other.hairpin = false;
            }
            // A mirred action loses its target when the target leaves (unregisters).
            other.tc.forget_target(link.id);
        }
        let infix = format!("/conf/{}/", link.name);
        self.sysctls.retain(|k, _| !k.contains(&infix));
        Some(link)
    }

    /// Per-link sysctls follow a renamed link.
    pub(super) fn rename_sysctls(&mut self, old: &str, new: &str) {
        let (from, to) = (format!("/conf/{old}/"), format!("/conf/{new}/"));
        let moved: Vec<(String, String)> =
            self.sysctls.iter().filter(|(k, _)| k.contains(&from)).map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in moved {
            self.sysctls.remove(&k);
            self.sysctls.insert(k.replacen(&from, &to, 1), v);
        }
    }

    pub(super) fn add_address(&mut self, index: u32, addr: IpNet) -> NetResult<()> {
        let up = self.link(index)?.up;
        let dup = self.addrs.iter().any(|a| {
            a.index == index
                && a.addr.addr() == addr.addr()
                && (matches!(addr, IpNet::V6(_)) || a.addr.prefix_len() == addr.prefix_len())
        });
        if dup {
            return Err(NetError::from_errno(libc::EEXIST, format_args!("add address {addr} to #{index}")));
        }
        self.addrs.push(Address { index, addr });
        if up {
            self.add_prefix_route(index, addr);
        }
        Ok(())
    }

    pub(super) fn delete_address(&mut self, index: u32, addr: IpNet) -> NetResult<()> {
        self.link(index)?;
        let pos = self.addrs.iter().position(|a| a.index == index && a.addr == addr).ok_or_else(|| {
            NetError::from_errno(libc::EADDRNOTAVAIL, format_args!("delete address {addr} from #{index}"))
        })?;
        self.addrs.remove(pos);
        // The connected route goes when no other address of the link covers it.
        let dst = addr.trunc();
        let still = self.addrs.iter().any(|a| a.index == index && a.addr.trunc() == dst);
        if !still {
            self.routes.retain(|r| !(r.protocol == RouteProtocol::Kernel && r.oif == Some(index) && r.dst == dst));
        }
        Ok(())
    }

    pub(super) fn add_route(&mut self, route: &Route) -> NetResult<()> {
        self.put_route(route, false)
    }

    /// `ip route replace`: the route of the same table, destination and metric is replaced
    /// (after the same checks as an add), or the route is added.
    pub(super) fn replace_route(&mut self, route: &Route) -> NetResult<()> {
        self.put_route(route, true)
    }

    fn put_route(&mut self, route: &Route, replace: bool) -> NetResult<()> {
        let mut route = route.clone();
        route.dst = route.dst.trunc();
        let v6 = matches!(route.dst, IpNet::V6(_));
        let ctx = format!("{} route {}", if replace { "replace" } else { "add" }, route.dst);
        if let Some(oif) = route.oif
            && !self.link(oif)?.up
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
                // The route's own table first, then a full lookup (which reaches main).
                let via = self.routes.iter().find(|r| {
                    r.gateway.is_none()
                        && (r.table == route.table || r.table == TABLE_MAIN)
                        && r.dst.contains(&gw)
                        && route.oif.is_none_or(|o| r.oif == Some(o))
                        && r.oif.and_then(|o| self.links.get(&o)).is_some_and(|l| l.up)
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
            && !self.addrs.iter().any(|a| a.addr.addr() == src)
        {
            return Err(NetError::from_errno(libc::EINVAL, format_args!("{ctx}: invalid preferred source {src}")));
        }
        if v6 {
            route.scope = RouteScope::Universe;
            if route.metric == 0 {
                route.metric = 1024;
            }
        }
        let dup =
            self.routes.iter().position(|r| r.dst == route.dst && r.table == route.table && r.metric == route.metric);
        match dup {
            Some(pos) if replace => self.routes[pos] = route,
            Some(_) => return Err(NetError::from_errno(libc::EEXIST, ctx)),
            None => self.routes.push(route),
        }
        Ok(())
    }

    pub(super) fn delete_route(&mut self, route: &Route) -> NetResult<()> {
        let dst = route.dst.trunc();
        let pos = self.routes.iter().position(|r| {
            r.dst == dst
                && r.table == route.table
                && route.gateway.is_none_or(|g| r.gateway == Some(g))
                && route.oif.is_none_or(|o| r.oif == Some(o))
                && (route.metric == 0 || r.metric == route.metric)
        });
        match pos {
            Some(pos) => {
                self.routes.remove(pos);
                Ok(())
            }
            None => Err(NetError::from_errno(libc::ESRCH, format_args!("delete route {dst}"))),
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
                "forwarding" | "proxy_arp" | "rp_filter" | "route_localnet" | "arp_ignore" | "arp_notify",
            ] if known_dev(dev) => "0",
            ["net", "ipv6", "conf", dev, setting] if known_dev(dev) => match *setting {
                "forwarding" | "disable_ipv6" | "keep_addr_on_down" | "ndisc_notify" => "0",
                "accept_ra" | "autoconf" => "1",
                "accept_dad" if *dev == "lo" => "-1",
                "accept_dad" => "1",
                _ => return None,
            },
            _ => return None,
        };
        Some(value.to_owned())
    }

    pub(super) fn sysctl_get(&self, key: &str) -> Option<String> {
        let default = self.sysctl_default(key)?;
        Some(self.sysctls.get(key).cloned().unwrap_or(default))
    }

    pub(super) fn sysctl_set(&mut self, key: &str, value: &str) -> NetResult<()> {
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
