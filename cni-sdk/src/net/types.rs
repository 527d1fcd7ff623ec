//! Value types shared by both backends: links and their kind-specific data, addresses, routes.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use cni_types::MacAddr;
use ipnet::IpNet;

use super::{NetError, NetErrorKind};

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;
/// The local routing table (`RT_TABLE_LOCAL`), where the kernel keeps local and broadcast routes.
pub const TABLE_LOCAL: u32 = 255;

/// Maximum length of an interface name (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// The kind of a link (the kernel's `IFLA_INFO_KIND`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkKind {
    /// The loopback device.
    Loopback,
    /// A device without a netlink kind: a physical NIC, a virtio or SR-IOV device, ...
    Device,
    /// One end of a veth pair.
    Veth,
    /// A Linux bridge.
    Bridge,
    /// A dummy device.
    Dummy,
    /// An 802.1Q / 802.1ad VLAN device ([`KindInfo::Vlan`]).
    Vlan,
    /// A macvlan device ([`KindInfo::Macvlan`]).
    Macvlan,
    /// A macvtap device ([`KindInfo::Macvtap`]).
    Macvtap,
    /// An ipvlan device ([`KindInfo::Ipvlan`]).
    Ipvlan,
    /// A VRF device ([`KindInfo::Vrf`]).
    Vrf,
    /// An intermediate functional block device.
    Ifb,
    /// A tun or tap device (kernel kind `tun`, see [`KindInfo::Tun`]).
    Tun,
    /// Any other kind; holds the kernel's kind string.
    Other(String),
}

impl LinkKind {
    /// The kernel's name for the kind (`""` for [`LinkKind::Device`]; `loopback` for the
    /// loopback device, which reports no kind).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Loopback => "loopback",
            Self::Device => "",
            Self::Veth => "veth",
            Self::Bridge => "bridge",
            Self::Dummy => "dummy",
            Self::Vlan => "vlan",
            Self::Macvlan => "macvlan",
            Self::Macvtap => "macvtap",
            Self::Ipvlan => "ipvlan",
            Self::Vrf => "vrf",
            Self::Ifb => "ifb",
            Self::Tun => "tun",
            Self::Other(s) => s,
        }
    }

    /// The kind for the kernel's kind string (`IFLA_INFO_KIND`).
    pub fn from_kernel(kind: &str) -> Self {
        match kind {
            "" => Self::Device,
            "veth" => Self::Veth,
            "bridge" => Self::Bridge,
            "dummy" => Self::Dummy,
            "vlan" => Self::Vlan,
            "macvlan" => Self::Macvlan,
            "macvtap" => Self::Macvtap,
            "ipvlan" => Self::Ipvlan,
            "vrf" => Self::Vrf,
            "ifb" => Self::Ifb,
            "tun" => Self::Tun,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link referred to from another link: a veth peer, or the parent (lower device) of a
/// macvlan, macvtap, ipvlan or vlan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkRef {
    /// The link's interface index, in the namespace it lives in.
    pub index: u32,
    /// True when it is in the same namespace as the link referring to it (then `index` can be
    /// used with the same [`Net`](super::Net)).
    pub same_netns: bool,
}

/// Where the other end of a veth pair is (the name predates [`LinkRef`]).
pub type LinkPeer = LinkRef;

/// The operational state (`IFLA_OPERSTATE`, RFC 2863), what `ip link` prints as `state`.
///
/// It follows carrier: a veth whose peer is down is [`OperState::LowerLayerDown`], a tap nobody
/// has opened is [`OperState::Down`], and devices without carrier handling (loopback, bridge
/// without ports, dummy, ifb) are [`OperState::Unknown`] when up. The kernel updates it
/// asynchronously, shortly after the change that causes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OperState {
    /// The driver does not report a state.
    #[default]
    Unknown,
    /// Some component is missing.
    NotPresent,
    /// Down.
    Down,
    /// Down because the lower device (veth peer, macvlan parent, ...) is down.
    LowerLayerDown,
    /// In test mode.
    Testing,
    /// Waiting for an external event.
    Dormant,
    /// Up and able to pass packets.
    Up,
}

impl OperState {
    /// True for [`OperState::Up`] and [`OperState::Unknown`]: what the kernel treats as "running".
    pub fn is_running(self) -> bool {
        matches!(self, Self::Up | Self::Unknown)
    }
}

/// A macvlan or macvtap mode (`IFLA_MACVLAN_MODE`). Parsed from and printed as Go's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    /// `private`: no traffic between macvlans of the same parent.
    Private,
    /// `vepa`: traffic between macvlans goes through the external switch (the kernel's default).
    Vepa,
    /// `bridge`: macvlans of the same parent talk directly.
    Bridge,
    /// `passthru`: the only macvlan of the parent, taking over its MAC address.
    Passthru,
    /// `source`: accepts frames from a list of source MAC addresses.
    Source,
}

impl MacvlanMode {
    /// The mode's name as `ip link` and Go's plugins spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Vepa => "vepa",
            Self::Bridge => "bridge",
            Self::Passthru => "passthru",
            Self::Source => "source",
        }
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MacvlanMode {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        Ok(match s {
            "private" => Self::Private,
            "vepa" => Self::Vepa,
            "bridge" => Self::Bridge,
            "passthru" => Self::Passthru,
            "source" => Self::Source,
            _ => return Err(NetError::new(NetErrorKind::InvalidArgument, format!("unknown macvlan mode: {s:?}"))),
        })
    }
}

/// An ipvlan mode (`IFLA_IPVLAN_MODE`). The mode belongs to the parent: every ipvlan of one
/// parent has the mode the most recently created one asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    /// `l2`.
    L2,
    /// `l3` (the kernel's default).
    L3,
    /// `l3s`: l3 with netfilter hooks.
    L3s,
}

impl IpvlanMode {
    /// The mode's name as `ip link` and Go's plugins spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L2 => "l2",
            Self::L3 => "l3",
            Self::L3s => "l3s",
        }
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpvlanMode {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        Ok(match s {
            "l2" => Self::L2,
            "l3" => Self::L3,
            "l3s" => Self::L3s,
            _ => return Err(NetError::new(NetErrorKind::InvalidArgument, format!("unknown ipvlan mode: {s:?}"))),
        })
    }
}

/// The ipvlan isolation flag (`IFLA_IPVLAN_FLAGS`; the kernel accepts at most one of private and
/// vepa, no flag meaning bridge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpvlanFlag {
    /// `bridge` (no flag): ipvlans of one parent talk directly.
    #[default]
    Bridge,
    /// `private`: no traffic between ipvlans of one parent.
    Private,
    /// `vepa`: traffic between ipvlans goes through the external switch.
    Vepa,
}

impl IpvlanFlag {
    /// The flag's name as `ip link` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Vepa => "vepa",
        }
    }
}

impl fmt::Display for IpvlanFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpvlanFlag {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        Ok(match s {
            "bridge" => Self::Bridge,
            "private" => Self::Private,
            "vepa" => Self::Vepa,
            _ => return Err(NetError::new(NetErrorKind::InvalidArgument, format!("unknown ipvlan flag: {s:?}"))),
        })
    }
}

/// The tag protocol of a VLAN device (`IFLA_VLAN_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VlanProtocol {
    /// IEEE 802.1Q (ethertype `0x8100`), the default.
    #[default]
    Dot1Q,
    /// IEEE 802.1ad "QinQ" (ethertype `0x88a8`).
    Dot1Ad,
}

impl VlanProtocol {
    /// The ethertype.
    pub fn ethertype(self) -> u16 {
        match self {
            Self::Dot1Q => 0x8100,
            Self::Dot1Ad => 0x88a8,
        }
    }

    /// The protocol's name as `ip link` spells it (`802.1Q`, `802.1ad`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dot1Q => "802.1Q",
            Self::Dot1Ad => "802.1ad",
        }
    }
}

impl fmt::Display for VlanProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VlanProtocol {
    type Err = NetError;

    /// Accepts `802.1Q` and `802.1ad` in any letter case.
    fn from_str(s: &str) -> Result<Self, NetError> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(Self::Dot1Q),
            "802.1ad" => Ok(Self::Dot1Ad),
            _ => Err(NetError::new(NetErrorKind::InvalidArgument, format!("unknown VLAN protocol: {s:?}"))),
        }
    }
}

/// Whether a tun device carries IP packets or Ethernet frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunMode {
    /// Layer 3 (`IFF_TUN`).
    Tun,
    /// Layer 2 (`IFF_TAP`).
    Tap,
}

/// What the kernel reports about a tun/tap device (`IFLA_TUN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunInfo {
    /// Tun or tap.
    pub mode: TunMode,
    /// The user allowed to attach to the device, if restricted.
    pub owner: Option<u32>,
    /// The group allowed to attach to the device, if restricted.
    pub group: Option<u32>,
    /// Packets carry the 4-byte protocol information header (no `IFF_NO_PI`).
    pub pi: bool,
    /// Packets carry a `virtio_net_hdr` (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// Several queues may attach (`IFF_MULTI_QUEUE`).
    pub multi_queue: bool,
    /// The device outlives the file descriptor that created it (`TUNSETPERSIST`).
    pub persist: bool,
}

/// Kind-specific data of a link (the kernel's `IFLA_INFO_DATA`), what CHECK compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KindInfo {
    /// Nothing kind-specific is reported (veth, bridge, dummy, ifb, loopback, devices).
    #[default]
    Plain,
    /// A macvlan's mode.
    Macvlan {
        /// The mode.
        mode: MacvlanMode,
    },
    /// A macvtap's mode.
    Macvtap {
        /// The mode.
        mode: MacvlanMode,
    },
    /// An ipvlan's mode and flag (both shared by all ipvlans of the parent).
    Ipvlan {
        /// The mode.
        mode: IpvlanMode,
        /// The isolation flag.
        flag: IpvlanFlag,
    },
    /// A VLAN's id and protocol.
    Vlan {
        /// The VLAN id (0..=4094).
        id: u16,
        /// The tag protocol.
        protocol: VlanProtocol,
    },
    /// A VRF's routing table.
    Vrf {
        /// The table id.
        table: u32,
    },
    /// A tun/tap device's settings.
    Tun(TunInfo),
}

/// A network interface as seen in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// Interface index (unique within the namespace).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind.
    pub kind: LinkKind,
    /// Kind-specific data (macvlan mode, VLAN id, ...).
    pub info: KindInfo,
    /// Hardware address (all zero for loopback).
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operational state.
    pub oper_state: OperState,
    /// Promiscuous mode requested (`IFF_PROMISC`).
    pub promisc: bool,
    /// All-multicast mode requested (`IFF_ALLMULTI`).
    pub allmulti: bool,
    /// Transmit queue length (`ip link ... txqueuelen`).
    pub txqlen: u32,
    /// The interface alias (`ifalias`), if set.
    pub alias: Option<String>,
    /// Index of the bridge (or other master) this link is attached to.
    pub master: Option<u32>,
    /// For veth links, the other end if known.
    pub peer: Option<LinkPeer>,
    /// For macvlan, macvtap, ipvlan and vlan links, the parent (lower) device (`IFLA_LINK`).
    pub parent: Option<LinkRef>,
    /// For bridge ports, whether hairpin mode is on; `None` for links that are not bridge ports.
    pub hairpin: Option<bool>,
}

impl Link {
    /// A link with the given identity and everything else at the zero value; backends fill in
    /// the rest.
    pub(crate) fn new(index: u32, name: &str, kind: LinkKind) -> Self {
        Self {
            index,
            name: name.to_owned(),
            kind,
            info: KindInfo::Plain,
            mac: MacAddr::default(),
            mtu: 0,
            up: false,
            oper_state: OperState::Unknown,
            promisc: false,
            allmulti: false,
            txqlen: 0,
            alias: None,
            master: None,
            peer: None,
            parent: None,
            hairpin: None,
        }
    }

    /// The macvlan or macvtap mode, for those kinds.
    pub fn macvlan_mode(&self) -> Option<MacvlanMode> {
        match self.info {
            KindInfo::Macvlan { mode } | KindInfo::Macvtap { mode } => Some(mode),
            _ => None,
        }
    }

    /// The VLAN id, for VLAN links.
    pub fn vlan_id(&self) -> Option<u16> {
        match self.info {
            KindInfo::Vlan { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The tun/tap settings, for tun devices.
    pub fn tun(&self) -> Option<&TunInfo> {
        match &self.info {
            KindInfo::Tun(t) => Some(t),
            _ => None,
        }
    }
}

/// An IP address assigned to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// Index of the link carrying the address.
    pub index: u32,
    /// The address with its prefix length (host bits kept).
    pub addr: IpNet,
}

/// The scope of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteScope {
    /// Global route (through a gateway, or any IPv6 route).
    #[default]
    Universe,
    /// Destination directly attached to the link.
    Link,
    /// Destination on this host.
    Host,
    /// Any other scope value.
    Other(u8),
}

/// Who installed a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteProtocol {
    /// Installed by the kernel (e.g. the connected route of an address).
    Kernel,
    /// Installed at boot / by `ip route add`.
    Boot,
    /// Installed by an administrator or program; routes added through [`Net`](super::Net) use this.
    #[default]
    Static,
    /// Any other value.
    Other(u8),
}

/// A unicast route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination network (host bits zero).
    pub dst: IpNet,
    /// Next-hop gateway.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Metric / priority. The kernel uses 1024 for IPv6 routes added without one and 256 for the
    /// prefix routes it adds itself.
    pub metric: u32,
    /// Routing table.
    pub table: u32,
    /// Scope.
    pub scope: RouteScope,
    /// Who installed the route.
    pub protocol: RouteProtocol,
    /// Preferred source address.
    pub source: Option<IpAddr>,
    /// Path MTU metric.
    pub mtu: Option<u32>,
    /// Advertised MSS metric.
    pub advmss: Option<u32>,
}

impl Route {
    /// A route to `dst` (truncated to its network) in the main table with everything else unset.
    pub fn new(dst: IpNet) -> Self {
        Self {
            dst: dst.trunc(),
            gateway: None,
            oif: None,
            metric: 0,
            table: TABLE_MAIN,
            scope: RouteScope::Universe,
            protocol: RouteProtocol::Static,
            source: None,
            mtu: None,
            advmss: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_names() {
        for m in
            [MacvlanMode::Private, MacvlanMode::Vepa, MacvlanMode::Bridge, MacvlanMode::Passthru, MacvlanMode::Source]
        {
            assert_eq!(m.to_string().parse::<MacvlanMode>().unwrap(), m);
        }
        for m in [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s] {
            assert_eq!(m.to_string().parse::<IpvlanMode>().unwrap(), m);
        }
        for f in [IpvlanFlag::Bridge, IpvlanFlag::Private, IpvlanFlag::Vepa] {
            assert_eq!(f.to_string().parse::<IpvlanFlag>().unwrap(), f);
        }
        assert_eq!("802.1q".parse::<VlanProtocol>().unwrap(), VlanProtocol::Dot1Q);
        assert_eq!("802.1AD".parse::<VlanProtocol>().unwrap(), VlanProtocol::Dot1Ad);
        assert_eq!(VlanProtocol::Dot1Ad.ethertype(), 0x88a8);
    }

    #[test]
    fn unknown_names_are_invalid_arguments() {
        let e = "bogus".parse::<MacvlanMode>().unwrap_err();
        assert_eq!(e.kind(), NetErrorKind::InvalidArgument);
        assert_eq!(e.to_string(), "unknown macvlan mode: \"bogus\"");
        assert_eq!("l4".parse::<IpvlanMode>().unwrap_err().kind(), NetErrorKind::InvalidArgument);
        assert_eq!("x".parse::<IpvlanFlag>().unwrap_err().kind(), NetErrorKind::InvalidArgument);
        assert_eq!("802.1x".parse::<VlanProtocol>().unwrap_err().kind(), NetErrorKind::InvalidArgument);
    }

    #[test]
    fn kinds_map_to_kernel_names() {
        for k in ["veth", "bridge", "dummy", "vlan", "macvlan", "macvtap", "ipvlan", "vrf", "ifb", "tun", "vxlan"] {
            assert_eq!(LinkKind::from_kernel(k).as_str(), k);
        }
        assert_eq!(LinkKind::from_kernel(""), LinkKind::Device);
        assert_eq!(LinkKind::from_kernel("vxlan"), LinkKind::Other("vxlan".into()));
    }
}
