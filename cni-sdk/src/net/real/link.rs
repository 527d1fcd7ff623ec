//! Links: building `RTM_NEWLINK` / `RTM_SETLINK` messages per kind and parsing `RTM_GETLINK`.

use std::os::fd::{AsFd, AsRawFd};

use cni_types::MacAddr;
use futures_util::TryStreamExt;
use rtnetlink::packet_core::{DefaultNla, Nla};
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoMacVtap, InfoPortData, InfoPortKind, InfoTun,
    InfoVeth, InfoVlan, InfoVrf, IpVlanFlags, IpVlanMode, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
    State, VlanProtocol as NlVlanProtocol,
};
use rtnetlink::{
    LinkBridge, LinkBridgePort, LinkDummy, LinkIpVlan, LinkMacVlan, LinkMacVtap, LinkMessageBuilder, LinkUnspec,
    LinkVeth, LinkVlan, LinkVrf,
};

use super::{RealBackend, is_errno, netns_of, nl_err};
use crate::net::backend::{Common, LinkChange, NewLink};
use crate::net::{
    IpvlanFlag, IpvlanMode, KindInfo, Link, LinkKind, LinkRef, MacvlanMode, Net, NetResult, OperState, TunInfo,
    TunMode, VlanProtocol, validate_ifname,
};
use crate::netns::NetNs;

// IFLA_TUN_* (linux/if_link.h); netlink-packet-route keeps them as raw attributes.
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PI: u16 = 4;
const IFLA_TUN_VNET_HDR: u16 = 5;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;

fn to_nl_macvlan(mode: MacvlanMode) -> MacVlanMode {
    match mode {
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

fn from_nl_macvlan(mode: MacVlanMode) -> Option<MacvlanMode> {
    Some(match mode {
        MacVlanMode::Private => MacvlanMode::Private,
        MacVlanMode::Vepa => MacvlanMode::Vepa,
        MacVlanMode::Bridge => MacvlanMode::Bridge,
        MacVlanMode::Passthrough => MacvlanMode::Passthru,
        MacVlanMode::Source => MacvlanMode::Source,
        _ => return None,
    })
}

fn to_nl_ipvlan_mode(mode: IpvlanMode) -> IpVlanMode {
    match mode {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
        IpvlanMode::L3s => IpVlanMode::L3S,
    }
}

fn to_nl_ipvlan_flag(flag: IpvlanFlag) -> IpVlanFlags {
    match flag {
        IpvlanFlag::Bridge => IpVlanFlags::empty(),
        IpvlanFlag::Private => IpVlanFlags::Private,
        IpvlanFlag::Vepa => IpVlanFlags::Vepa,
    }
}

fn to_nl_vlan_protocol(p: VlanProtocol) -> NlVlanProtocol {
    match p {
        VlanProtocol::Dot1Q => NlVlanProtocol::Ieee8021Q,
        VlanProtocol::Dot1Ad => NlVlanProtocol::Ieee8021Ad,
    }
}

/// The value bytes of a raw attribute.
fn nla_bytes(nla: &DefaultNla) -> Vec<u8> {
    let mut buf = vec![0; nla.value_len()];
    nla.emit_value(&mut buf);
    buf
}

fn parse_tun(items: &[InfoTun]) -> TunInfo {
    let mut info = TunInfo {
        mode: TunMode::Tap,
        owner: None,
        group: None,
        pi: false,
        vnet_hdr: false,
        multi_queue: false,
        persist: false,
    };
    for item in items {
        let InfoTun::Other(nla) = item else {
            continue;
        };
        let bytes = nla_bytes(nla);
        let flag = bytes.first().is_some_and(|b| *b != 0);
        let word = <[u8; 4]>::try_from(bytes.as_slice()).ok().map(u32::from_ne_bytes);
        match nla.kind() {
            IFLA_TUN_OWNER => info.owner = word,
            IFLA_TUN_GROUP => info.group = word,
            IFLA_TUN_TYPE => {
                info.mode = if bytes.first() == Some(&(libc::IFF_TUN as u8)) { TunMode::Tun } else { TunMode::Tap }
            }
            IFLA_TUN_PI => info.pi = flag,
            IFLA_TUN_VNET_HDR => info.vnet_hdr = flag,
            IFLA_TUN_PERSIST => info.persist = flag,
            IFLA_TUN_MULTI_QUEUE => info.multi_queue = flag,
            _ => {}
        }
    }
    info
}

fn parse_info_data(kind: &LinkKind, data: &InfoData) -> KindInfo {
    match (kind, data) {
        (LinkKind::Macvlan, InfoData::MacVlan(items)) => items
            .iter()
            .find_map(|i| match i {
                InfoMacVlan::Mode(m) => from_nl_macvlan(*m),
                _ => None,
            })
            .map_or(KindInfo::Plain, |mode| KindInfo::Macvlan { mode }),
        (LinkKind::Macvtap, InfoData::MacVtap(items)) => items
            .iter()
            .find_map(|i| match i {
                InfoMacVtap::Mode(m) => from_nl_macvlan(*m),
                _ => None,
            })
            .map_or(KindInfo::Plain, |mode| KindInfo::Macvtap { mode }),
        (LinkKind::Ipvlan, InfoData::IpVlan(items)) => {
            let mut mode = IpvlanMode::L3;
            let mut flag = IpvlanFlag::Bridge;
            for i in items {
                match i {
                    InfoIpVlan::Mode(IpVlanMode::L2) => mode = IpvlanMode::L2,
                    InfoIpVlan::Mode(IpVlanMode::L3S) => mode = IpvlanMode::L3s,
                    InfoIpVlan::Mode(_) => mode = IpvlanMode::L3,
                    InfoIpVlan::Flags(f) if f.contains(IpVlanFlags::Private) => flag = IpvlanFlag::Private,
                    InfoIpVlan::Flags(f) if f.contains(IpVlanFlags::Vepa) => flag = IpvlanFlag::Vepa,
                    _ => {}
                }
            }
            KindInfo::Ipvlan { mode, flag }
        }
        (LinkKind::Vlan, InfoData::Vlan(items)) => {
            let mut id = 0;
            let mut protocol = VlanProtocol::Dot1Q;
            for i in items {
                match i {
                    InfoVlan::Id(v) => id = *v,
                    InfoVlan::Protocol(NlVlanProtocol::Ieee8021Ad) => protocol = VlanProtocol::Dot1Ad,
                    _ => {}
                }
            }
            KindInfo::Vlan { id, protocol }
        }
        (LinkKind::Vrf, InfoData::Vrf(items)) => items
            .iter()
            .find_map(|i| match i {
                InfoVrf::TableId(t) => Some(KindInfo::Vrf { table: *t }),
                _ => None,
            })
            .unwrap_or(KindInfo::Plain),
        (LinkKind::Tun, InfoData::Tun(items)) => KindInfo::Tun(parse_tun(items)),
        _ => KindInfo::Plain,
    }
}

fn oper_state(state: &State) -> OperState {
    match state {
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unknown,
    }
}

pub(super) fn parse_link(msg: LinkMessage) -> Link {
    let flags = msg.header.flags;
    let mut link = Link::new(msg.header.index, "", LinkKind::Device);
    link.up = flags.contains(LinkFlags::Up);
    link.promisc = flags.contains(LinkFlags::Promisc);
    link.allmulti = flags.contains(LinkFlags::Allmulti);
    let mut lower_index = None;
    let mut lower_elsewhere = false;
    let mut bridge_port = false;
    let mut data = None;
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Address(mac) => {
                if let Ok(octets) = <[u8; 6]>::try_from(mac.as_slice()) {
                    link.mac = MacAddr::new(octets);
                }
            }
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::TxQueueLen(len) => link.txqlen = len,
            LinkAttribute::IfAlias(alias) if !alias.is_empty() => link.alias = Some(alias),
            LinkAttribute::OperState(state) => link.oper_state = oper_state(&state),
            LinkAttribute::Controller(master) => link.master = Some(master),
            LinkAttribute::Link(index) => lower_index = Some(index),
            LinkAttribute::LinkNetNsId(_) => lower_elsewhere = true,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => link.kind = LinkKind::from_kernel(&kind.to_string()),
                        LinkInfo::Data(d) => data = Some(d),
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
    if flags.contains(LinkFlags::Loopback) && link.kind == LinkKind::Device {
        link.kind = LinkKind::Loopback;
    }
    if let Some(d) = &data {
        link.info = parse_info_data(&link.kind, d);
    }
    let lower = lower_index
        .filter(|i| *i != link.index || lower_elsewhere)
        .map(|index| LinkRef { index, same_netns: !lower_elsewhere });
    match link.kind {
        LinkKind::Veth => link.peer = lower,
        LinkKind::Macvlan | LinkKind::Macvtap | LinkKind::Ipvlan | LinkKind::Vlan => link.parent = lower,
        _ => {}
    }
    if bridge_port && link.hairpin.is_none() {
        link.hairpin = Some(false);
    }
    link
}

/// Applies the common options of a new link to its message builder.
fn with_common<T>(mut b: LinkMessageBuilder<T>, c: &Common, target: Option<&NetNs>) -> LinkMessageBuilder<T> {
    if let Some(mtu) = c.mtu {
        b = b.mtu(mtu);
    }
    if let Some(mac) = c.mac {
        b = b.address(mac.octets().to_vec());
    }
    if let Some(ns) = target {
        b = b.setns_by_fd(ns.as_fd().as_raw_fd());
    }
    b
}

impl RealBackend {
    async fn first_link(&self, req: rtnetlink::LinkGetRequest, what: String) -> NetResult<Option<Link>> {
        let mut stream = std::pin::pin!(req.execute());
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some(parse_link(msg))),
            Ok(None) => Ok(None),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(e, format_args!("get link {what}"))),
        }
    }

    pub(super) async fn list_links(&self) -> NetResult<Vec<Link>> {
        let msgs: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(|e| nl_err(e, "list links"))?;
        let mut links: Vec<Link> = msgs.into_iter().map(parse_link).collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    pub(super) async fn get_link_by_name(&self, name: &str) -> NetResult<Option<Link>> {
        if validate_ifname(name).is_err() {
            return Ok(None);
        }
        let req = self.handle.link().get().match_name(name);
        self.first_link(req, format!("{name:?}")).await
    }

    pub(super) async fn get_link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        if index == 0 {
            return Ok(None);
        }
        let req = self.handle.link().get().match_index(index);
        self.first_link(req, format!("#{index}")).await
    }

    async fn set(&self, msg: LinkMessage, what: String) -> NetResult<()> {
        self.handle.link().set(msg).execute().await.map_err(|e| nl_err(e, what))
    }

    /// Creates every kind but tun/tap (see `tun.rs`).
    pub(super) async fn create_netlink_link(&self, spec: &NewLink) -> NetResult<()> {
        // Keeps the target namespace fd open until the request is done.
        let target = spec.target().map(netns_of).transpose()?;
        let target = target.as_ref();
        let (msg, what) = match spec {
            NewLink::Veth { name, peer, peer_ns, mtu, mac, peer_mac } => {
                let peer_ns = peer_ns.as_ref().map(netns_of).transpose()?;
                let mut pb = LinkMessageBuilder::<LinkUnspec>::new().name(peer.clone());
                if let Some(mtu) = mtu {
                    pb = pb.mtu(*mtu);
                }
                if let Some(mac) = peer_mac {
                    pb = pb.address(mac.octets().to_vec());
                }
                if let Some(ns) = &peer_ns {
                    pb = pb.setns_by_fd(ns.as_fd().as_raw_fd());
                }
                let mut b = LinkVeth::new(name, peer).set_info_data(InfoData::Veth(InfoVeth::Peer(pb.build())));
                if let Some(mtu) = mtu {
                    b = b.mtu(*mtu);
                }
                if let Some(mac) = mac {
                    b = b.address(mac.octets().to_vec());
                }
                let msg = b.build();
                // The message carries the peer namespace's fd number: send it while `peer_ns`
                // still holds the fd open.
                let result = self.handle.link().add(msg).execute().await;
                drop(peer_ns);
                return result.map_err(|e| nl_err(e, format_args!("create veth {name:?} <-> {peer:?}")));
            }
            NewLink::Bridge(c) => {
                // Not `LinkBridge::new`, which also sets the bridge up.
                let b = with_common(LinkMessageBuilder::<LinkBridge>::new(&c.name), c, target);
                (b.build(), format!("create bridge {:?}", c.name))
            }
            NewLink::Dummy(c) => {
                (with_common(LinkDummy::new(&c.name), c, target).build(), format!("create dummy {:?}", c.name))
            }
            NewLink::Ifb(c) => {
                let b = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Ifb).name(c.name.clone());
                (with_common(b, c, target).build(), format!("create ifb {:?}", c.name))
            }
            NewLink::Vrf { common, table } => {
                let b = with_common(LinkVrf::new(&common.name, *table), common, target);
                (b.build(), format!("create vrf {:?} table {table}", common.name))
            }
            NewLink::Macvlan { common, parent, mode, tap: false, bc_queue_len } => {
                let mut b = LinkMessageBuilder::<LinkMacVlan>::new(&common.name).link(*parent);
                if let Some(mode) = mode {
                    b = b.mode(to_nl_macvlan(*mode));
                }
                if let Some(n) = bc_queue_len {
                    b = b.append_info_data(InfoMacVlan::BcQueueLen(*n));
                }
                (with_common(b, common, target).build(), format!("create macvlan {:?}", common.name))
            }
            NewLink::Macvlan { common, parent, mode, tap: true, bc_queue_len } => {
                let mut b = LinkMessageBuilder::<LinkMacVtap>::new(&common.name).link(*parent);
                if let Some(mode) = mode {
                    b = b.mode(to_nl_macvlan(*mode));
                }
                if let Some(n) = bc_queue_len {
                    b = b.append_info_data(InfoMacVtap::BcQueueLen(*n));
                }
                (with_common(b, common, target).build(), format!("create macvtap {:?}", common.name))
            }
            NewLink::Ipvlan { common, parent, mode, flag } => {
                let mut b = LinkMessageBuilder::<LinkIpVlan>::new(&common.name).link(*parent);
                if let Some(mode) = mode {
                    b = b.mode(to_nl_ipvlan_mode(*mode));
                }
                if let Some(flag) = flag {
                    b = b.flag(to_nl_ipvlan_flag(*flag));
                }
                (with_common(b, common, target).build(), format!("create ipvlan {:?}", common.name))
            }
            NewLink::Vlan { common, parent, id, protocol } => {
                let mut b = LinkVlan::new(&common.name, *parent, *id);
                if let Some(p) = protocol {
                    b = b.protocol(to_nl_vlan_protocol(*p));
                }
                (with_common(b, common, target).build(), format!("create vlan {:?} id {id}", common.name))
            }
            NewLink::Tun { common, .. } => {
                // Routed to tun.rs by the caller; netlink cannot create tun devices.
                return Err(crate::net::NetError::new(
                    crate::net::NetErrorKind::NotSupported,
                    format!("create tun {:?}: not possible over netlink", common.name),
                ));
            }
        };
        self.handle.link().add(msg).execute().await.map_err(|e| nl_err(e, what))
    }

    pub(super) async fn apply_change(&self, index: u32, change: &LinkChange) -> NetResult<()> {
        let b = LinkUnspec::new_with_index(index);
        match change {
            LinkChange::Up => self.set(b.up().build(), format!("set #{index} up")).await,
            LinkChange::Down => self.set(b.down().build(), format!("set #{index} down")).await,
            LinkChange::Mtu(mtu) => self.set(b.mtu(*mtu).build(), format!("set #{index} mtu {mtu}")).await,
            LinkChange::Mac(mac) => {
                self.set(b.address(mac.octets().to_vec()).build(), format!("set #{index} address {mac}")).await
            }
            LinkChange::Master(Some(master)) => {
                self.set(b.controller(*master).build(), format!("set #{index} master #{master}")).await
            }
            LinkChange::Master(None) => self.set(b.nocontroller().build(), format!("set #{index} nomaster")).await,
            LinkChange::Promisc(on) => self.set(b.promiscuous(*on).build(), format!("set #{index} promisc {on}")).await,
            LinkChange::AllMulti(on) => {
                self.set(b.allmulticast(*on).build(), format!("set #{index} allmulticast {on}")).await
            }
            LinkChange::TxQLen(n) => self.set(b.txqueuelen(*n).build(), format!("set #{index} txqueuelen {n}")).await,
            LinkChange::Name(name) => {
                self.set(b.name(name.clone()).build(), format!("rename #{index} to {name:?}")).await
            }
            LinkChange::Alias(alias) => {
                let alias = alias.clone().unwrap_or_default();
                self.set(b.alias(alias.clone()).build(), format!("set #{index} alias {alias:?}")).await
            }
            LinkChange::Hairpin(on) => self
                .handle
                .link()
                .set_port(LinkBridgePort::new(index).hairpin(*on).build())
                .execute()
                .await
                .map_err(|e| nl_err(e, format!("set #{index} hairpin {on}"))),
        }
    }

    pub(super) async fn move_to(&self, index: u32, target: &Net, new_name: Option<&str>) -> NetResult<()> {
        let ns = netns_of(target)?;
        let mut b = LinkUnspec::new_with_index(index).setns_by_fd(ns.as_fd().as_raw_fd());
        let mut what = format!("move #{index} to {}", ns.path().display());
        if let Some(name) = new_name {
            b = b.name(name.to_owned());
            what.push_str(&format!(" as {name:?}"));
        }
        self.set(b.build(), what).await
    }
}
