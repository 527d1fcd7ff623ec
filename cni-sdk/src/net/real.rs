//! The kernel backend: rtnetlink over a socket created inside the target namespace.
//!
//! rtnetlink's types stay inside this module; nothing here is public API.

use std::any::Any;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};

use async_trait::async_trait;
use cni_types::MacAddr;
use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol as NlProto,
    RouteScope as NlScope, RouteType, RouteVia,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkDummy, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{
    Address, Backend, Link, LinkChange, LinkKind, LinkPeer, Net, NetError, NetErrorKind, NetResult, NewLink, Route,
    RouteProtocol, RouteScope, validate_ifname,
};
use crate::netns::NetNs;

/// Netlink handle bound to one namespace.
pub(crate) struct RealBackend {
    ns: NetNs,
    handle: rtnetlink::Handle,
}

impl fmt::Debug for RealBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealBackend").field("netns", &self.ns.path()).finish_non_exhaustive()
    }
}

fn nl_err(e: rtnetlink::Error, context: impl fmt::Display) -> NetError {
    match &e {
        rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => {
            NetError::from_errno(msg.raw_code().abs(), context)
        }
        _ => NetError::new(NetErrorKind::Other, format!("{context}: {e}")).with_source(e),
    }
}

fn io_err(e: std::io::Error, context: impl fmt::Display) -> NetError {
    match e.raw_os_error() {
        Some(errno) => NetError::from_errno(errno, context),
        None => NetError::new(NetErrorKind::Other, format!("{context}: {e}")).with_source(e),
    }
}

fn invalid<E: fmt::Display>(e: E) -> NetError {
    NetError::new(NetErrorKind::InvalidArgument, format!("invalid route: {e}"))
}

fn is_no_device(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == libc::ENODEV)
}

impl RealBackend {
    pub(crate) async fn open(ns: &NetNs) -> NetResult<Self> {
        let rt = tokio::runtime::Handle::try_current().map_err(|e| {
            NetError::new(NetErrorKind::Other, "Net::open must be called from within a tokio runtime").with_source(e)
        })?;
        // Create the socket inside the namespace (it stays bound to it), registering it with the
        // caller's runtime; the thread then exits.
        let created = ns
            .run_blocking(move || {
                let _enter = rt.enter();
                rtnetlink::new_connection()
            })
            .await?;
        let (connection, handle, _messages) = created.map_err(|e| io_err(e, "create netlink socket"))?;
        tokio::spawn(connection);
        Ok(Self { ns: ns.clone(), handle })
    }

    async fn first_link(&self, req: rtnetlink::LinkGetRequest, what: String) -> NetResult<Option<Link>> {
        let mut stream = std::pin::pin!(req.execute());
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some(parse_link(msg))),
            Ok(None) => Ok(None),
            Err(e) if is_no_device(&e) => Ok(None),
            Err(e) => Err(nl_err(e, format_args!("get link {what}"))),
        }
    }

    async fn set(&self, msg: LinkMessage, what: String) -> NetResult<()> {
        self.handle.link().set(msg).execute().await.map_err(|e| nl_err(e, what))
    }

    async fn address_messages(&self, index: Option<u32>) -> NetResult<Vec<AddressMessage>> {
        let mut req = self.handle.address().get();
        if let Some(index) = index {
            req = req.set_link_index_filter(index);
        }
        req.execute().try_collect().await.map_err(|e| nl_err(e, "list addresses"))
    }

    fn route_message(route: &Route, for_delete: bool) -> NetResult<RouteMessage> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.dst.addr(), route.dst.prefix_len())
            .map_err(invalid)?;
        if let Some(gw) = route.gateway {
            b = b.gateway(gw).map_err(invalid)?;
        }
        if let Some(src) = route.source.filter(|_| !for_delete) {
            b = b.pref_source(src).map_err(invalid)?;
        }
        if let Some(oif) = route.oif {
            b = b.output_interface(oif);
        }
        if route.metric != 0 {
            b = b.priority(route.metric);
        }
        b = b.table_id(route.table);
        let mut msg = b.build();
        if for_delete {
            msg.header.scope = NlScope::NoWhere;
            msg.header.protocol = NlProto::Unspec;
            msg.header.kind = RouteType::Unspec;
        } else {
            msg.header.scope = match route.scope {
                RouteScope::Universe => NlScope::Universe,
                RouteScope::Link => NlScope::Link,
                RouteScope::Host => NlScope::Host,
                RouteScope::Other(v) => NlScope::from(v),
            };
            msg.header.protocol = match route.protocol {
                RouteProtocol::Kernel => NlProto::Kernel,
                RouteProtocol::Boot => NlProto::Boot,
                RouteProtocol::Static => NlProto::Static,
                RouteProtocol::Other(v) => NlProto::from(v),
            };
            let mut metrics = Vec::new();
            if let Some(mtu) = route.mtu {
                metrics.push(RouteMetric::Mtu(mtu));
            }
            if let Some(advmss) = route.advmss {
                metrics.push(RouteMetric::Advmss(advmss));
            }
            if !metrics.is_empty() {
                msg.attributes.push(RouteAttribute::Metrics(metrics));
            }
        }
        Ok(msg)
    }
}

fn parse_link(msg: LinkMessage) -> Link {
    let flags = msg.header.flags;
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: LinkKind::Other(String::new()),
        mac: MacAddr::default(),
        mtu: 0,
        up: flags.contains(LinkFlags::Up),
        promisc: flags.contains(LinkFlags::Promisc),
        master: None,
        peer: None,
        hairpin: None,
    };
    let mut peer_index = None;
    let mut peer_elsewhere = false;
    let mut bridge_port = false;
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Address(mac) => {
                if let Ok(octets) = <[u8; 6]>::try_from(mac.as_slice()) {
                    link.mac = MacAddr::new(octets);
                }
            }
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Controller(master) => link.master = Some(master),
            LinkAttribute::Link(index) => peer_index = Some(index),
            LinkAttribute::LinkNetNsId(_) => peer_elsewhere = true,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => {
                            link.kind = match kind {
                                InfoKind::Veth => LinkKind::Veth,
                                InfoKind::Bridge => LinkKind::Bridge,
                                InfoKind::Dummy => LinkKind::Dummy,
                                InfoKind::Vlan => LinkKind::Vlan,
                                other => LinkKind::Other(other.to_string()),
                            }
                        }
                        LinkInfo::PortKind(InfoPortKind::Bridge) => bridge_port = true,
                        LinkInfo::PortData(InfoPortData::BridgePort(items)) => {
                            for item in items {
                                if let InfoBridgePort::HairpinMode(on) = item {
                                    link.hairpin = Some(on);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if flags.contains(LinkFlags::Loopback) && link.kind == LinkKind::Other(String::new()) {
        link.kind = LinkKind::Loopback;
    }
    if link.kind == LinkKind::Veth {
        link.peer = peer_index.map(|index| LinkPeer { index, same_netns: !peer_elsewhere });
    }
    if bridge_port && link.hairpin.is_none() {
        link.hairpin = Some(false);
    }
    link
}

fn parse_address(msg: AddressMessage) -> Option<Address> {
    let mut address = None;
    let mut local = None;
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Address(a) => address = Some(a),
            AddressAttribute::Local(a) => local = Some(a),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface address (IFA_ADDRESS is the peer on point-to-point).
    let ip = local.or(address)?;
    let addr = IpNet::new(ip, msg.header.prefix_len).ok()?;
    Some(Address { index: msg.header.index, addr })
}

fn route_ip(addr: RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(a)),
        _ => None,
    }
}

fn parse_route(msg: RouteMessage) -> Option<(u32, Route)> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut dst = None;
    let mut route = Route::new(IpNet::default());
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = t,
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
            RouteAttribute::Via(RouteVia::Inet6(a)) => route.gateway = Some(IpAddr::V6(a)),
            RouteAttribute::Via(RouteVia::Inet(a)) => route.gateway = Some(IpAddr::V4(a)),
            RouteAttribute::Oif(i) => route.oif = Some(i),
            RouteAttribute::Priority(p) => route.metric = p,
            RouteAttribute::PrefSource(a) => route.source = route_ip(a),
            RouteAttribute::Metrics(metrics) => {
                for m in metrics {
                    match m {
                        RouteMetric::Mtu(v) => route.mtu = Some(v),
                        RouteMetric::Advmss(v) => route.advmss = Some(v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let dst = dst.unwrap_or(match msg.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    route.dst = IpNet::new(dst, msg.header.destination_prefix_length).ok()?.trunc();
    route.table = table;
    route.scope = match msg.header.scope {
        NlScope::Universe => RouteScope::Universe,
        NlScope::Link => RouteScope::Link,
        NlScope::Host => RouteScope::Host,
        other => RouteScope::Other(u8::from(other)),
    };
    route.protocol = match msg.header.protocol {
        NlProto::Kernel => RouteProtocol::Kernel,
        NlProto::Boot => RouteProtocol::Boot,
        NlProto::Static => RouteProtocol::Static,
        other => RouteProtocol::Other(u8::from(other)),
    };
    Some((table, route))
}

fn netns_of(target: &Net) -> NetResult<NetNs> {
    target.netns().cloned().ok_or_else(|| {
        NetError::new(
            NetErrorKind::InvalidArgument,
            "the target namespace handle is not a kernel namespace (fake and real backends cannot be mixed)",
        )
    })
}

#[async_trait]
impl Backend for RealBackend {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn netns(&self) -> Option<&NetNs> {
        Some(&self.ns)
    }

    async fn links(&self) -> NetResult<Vec<Link>> {
        let msgs: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(|e| nl_err(e, "list links"))?;
        let mut links: Vec<Link> = msgs.into_iter().map(parse_link).collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    async fn link_by_name(&self, name: &str) -> NetResult<Option<Link>> {
        if validate_ifname(name).is_err() {
            return Ok(None);
        }
        let req = self.handle.link().get().match_name(name);
        self.first_link(req, format!("{name:?}")).await
    }

    async fn link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        if index == 0 {
            return Ok(None);
        }
        let req = self.handle.link().get().match_index(index);
        self.first_link(req, format!("#{index}")).await
    }

    async fn create_link(&self, spec: &NewLink) -> NetResult<()> {
        // Keeps the peer namespace fd open until the request is done.
        let mut _peer_ns_guard = None;
        let (msg, what) = match spec {
            NewLink::Veth { name, peer, peer_ns, mtu, mac, peer_mac } => {
                let mut pb = LinkMessageBuilder::<LinkUnspec>::new().name(peer.clone());
                if let Some(mtu) = mtu {
                    pb = pb.mtu(*mtu);
                }
                if let Some(mac) = peer_mac {
                    pb = pb.address(mac.octets().to_vec());
                }
                if let Some(peer_ns) = peer_ns {
                    let ns = netns_of(peer_ns)?;
                    pb = pb.setns_by_fd(ns.as_fd().as_raw_fd());
                    _peer_ns_guard = Some(ns);
                }
                let mut b = LinkVeth::new(name, peer).set_info_data(InfoData::Veth(InfoVeth::Peer(pb.build())));
                if let Some(mtu) = mtu {
                    b = b.mtu(*mtu);
                }
                if let Some(mac) = mac {
                    b = b.address(mac.octets().to_vec());
                }
                (b.build(), format!("create veth {name:?} <-> {peer:?}"))
            }
            NewLink::Bridge { name, mtu, mac } => {
                // Not `LinkBridge::new`, which also sets the bridge up.
                let mut b = LinkMessageBuilder::<LinkBridge>::new(name);
                if let Some(mtu) = mtu {
                    b = b.mtu(*mtu);
                }
                if let Some(mac) = mac {
                    b = b.address(mac.octets().to_vec());
                }
                (b.build(), format!("create bridge {name:?}"))
            }
            NewLink::Dummy { name, mtu, mac } => {
                let mut b = LinkDummy::new(name);
                if let Some(mtu) = mtu {
                    b = b.mtu(*mtu);
                }
                if let Some(mac) = mac {
                    b = b.address(mac.octets().to_vec());
                }
                (b.build(), format!("create dummy {name:?}"))
            }
        };
        self.handle.link().add(msg).execute().await.map_err(|e| nl_err(e, what))
    }

    async fn change_link(&self, index: u32, change: LinkChange) -> NetResult<()> {
        let b = LinkUnspec::new_with_index(index);
        match change {
            LinkChange::Up => self.set(b.up().build(), format!("set #{index} up")).await,
            LinkChange::Down => self.set(b.down().build(), format!("set #{index} down")).await,
            LinkChange::Mtu(mtu) => self.set(b.mtu(mtu).build(), format!("set #{index} mtu {mtu}")).await,
            LinkChange::Mac(mac) => {
                self.set(b.address(mac.octets().to_vec()).build(), format!("set #{index} address {mac}")).await
            }
            LinkChange::Master(Some(master)) => {
                self.set(b.controller(master).build(), format!("set #{index} master #{master}")).await
            }
            LinkChange::Master(None) => self.set(b.nocontroller().build(), format!("set #{index} nomaster")).await,
            LinkChange::Promisc(on) => self.set(b.promiscuous(on).build(), format!("set #{index} promisc {on}")).await,
            LinkChange::Hairpin(on) => self
                .handle
                .link()
                .set_port(LinkBridgePort::new(index).hairpin(on).build())
                .execute()
                .await
                .map_err(|e| nl_err(e, format!("set #{index} hairpin {on}"))),
        }
    }

    async fn move_link(&self, index: u32, target: &Net) -> NetResult<()> {
        let ns = netns_of(target)?;
        let msg = LinkUnspec::new_with_index(index).setns_by_fd(ns.as_fd().as_raw_fd()).build();
        self.set(msg, format!("move #{index} to {}", ns.path().display())).await
    }

    async fn delete_link(&self, index: u32) -> NetResult<()> {
        self.handle.link().del(index).execute().await.map_err(|e| nl_err(e, format_args!("delete link #{index}")))
    }

    async fn add_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.handle
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .execute()
            .await
            .map_err(|e| nl_err(e, format_args!("add address {addr} to #{index}")))
    }

    async fn addresses(&self, index: Option<u32>) -> NetResult<Vec<Address>> {
        let mut out: Vec<Address> = self.address_messages(index).await?.into_iter().filter_map(parse_address).collect();
        out.sort();
        Ok(out)
    }

    async fn delete_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        let msg = self
            .address_messages(Some(index))
            .await?
            .into_iter()
            .find(|m| parse_address(m.clone()).is_some_and(|a| a.index == index && a.addr == addr))
            .ok_or_else(|| {
                NetError::from_errno(libc::EADDRNOTAVAIL, format_args!("delete address {addr} from #{index}"))
            })?;
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| nl_err(e, format_args!("delete address {addr} from #{index}")))
    }

    async fn add_route(&self, route: &Route) -> NetResult<()> {
        let msg = Self::route_message(route, false)?;
        let what = format!("add route {}", route.dst);
        match self.handle.route().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = nl_err(e, what);
                // IPv4 reports an unreachable gateway as EINVAL ("Nexthop has invalid gateway").
                if route.gateway.is_some() && err.errno() == Some(libc::EINVAL) {
                    Err(err.with_kind(NetErrorKind::Unreachable))
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn routes(&self, table: u32) -> NetResult<Vec<Route>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut query = RouteMessage::default();
            query.header.address_family = family;
            query.header.table = RouteHeader::RT_TABLE_UNSPEC;
            let msgs: Vec<RouteMessage> =
                self.handle.route().get(query).execute().try_collect().await.map_err(|e| nl_err(e, "list routes"))?;
            out.extend(msgs.into_iter().filter_map(parse_route).filter(|(t, _)| *t == table).map(|(_, r)| r));
        }
        Ok(out)
    }

    async fn delete_route(&self, route: &Route) -> NetResult<()> {
        let msg = Self::route_message(route, true)?;
        self.handle.route().del(msg).execute().await.map_err(|e| nl_err(e, format_args!("delete route {}", route.dst)))
    }

    async fn sysctl_get(&self, key: &str) -> NetResult<String> {
        let path = format!("/proc/sys/{key}");
        let value = self
            .ns
            .run_blocking(move || std::fs::read_to_string(path))
            .await?
            .map_err(|e| io_err(e, format_args!("read sysctl {key}")))?;
        Ok(value.trim_end_matches('\n').to_owned())
    }

    async fn sysctl_set(&self, key: &str, value: &str) -> NetResult<()> {
        let path = format!("/proc/sys/{key}");
        let value = value.to_owned();
        self.ns
            .run_blocking(move || {
                use std::io::Write;
                // No O_CREAT: an unknown key must fail with ENOENT.
                let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
                file.write_all(value.as_bytes())
            })
            .await?
            .map_err(|e| io_err(e, format_args!("write sysctl {key}")))
    }
}
