//! Network operations at the level of a plugin's intent, with a real and a fake backend.
//!
//! Plugin code is written against [`Net`], a cheap, cloneable handle bound to **one** network
//! namespace. The same code runs against the kernel (through netlink, see [`Net::host`] and
//! [`Net::open`]) or against the in-memory [`fake::FakeNetwork`] in unit tests.
//!
//! ```no_run
//! # async fn demo(container: &cni_sdk::netns::NetNs) -> Result<(), cni_sdk::net::NetError> {
//! use cni_sdk::net::Net;
//! let host = Net::host().await?;
//! let ctr = Net::open(container).await?;
//! let (host_end, ctr_end) = host
//!     .veth("veth1234", "eth0")
//!     .peer_netns(&ctr)
//!     .mtu(1450)
//!     .execute()
//!     .await?;
//! let br = host.bridge("cni0").execute().await?;
//! host.set_master(host_end.index, br.index).await?;
//! host.set_up(host_end.index).await?;
//! ctr.add_address(ctr_end.index, "10.200.0.5/24".parse().unwrap()).await?;
//! ctr.set_up(ctr_end.index).await?;
//! ctr.route("0.0.0.0/0".parse().unwrap())
//!     .gateway("10.200.0.1".parse().unwrap())
//!     .add()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Notes that hold for both backends:
//!
//! * Link operations take the interface index ([`Link::index`]); look links up with
//!   [`Net::link`] / [`Net::find_link`].
//! * Addresses keep their host bits (`10.200.0.5/24`); route destinations are truncated to their
//!   network (`10.9.1.1/16` becomes `10.9.0.0/16`).
//! * Route listings cover one table (the main table by default), like `ip route`.
//! * IPv6: the kernel adds `fe80::/64` link-local addresses and routes on its own when a link
//!   comes up, and marks new addresses "tentative" during duplicate address detection. The fake
//!   does not model link-local addresses; compare only the addresses you added. With the
//!   kernel's default `keep_addr_on_down=0`, IPv6 addresses are removed when a link goes down (the
//!   fake does the same).

use std::any::Any;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use cni_types::MacAddr;
use ipnet::IpNet;

use crate::netns::NetNs;

mod error;
pub mod fake;
mod provider;
mod real;

pub use error::{NetError, NetErrorKind, NetResult};
pub use provider::{KernelNet, NetProvider};

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;
/// The local routing table (`RT_TABLE_LOCAL`), where the kernel keeps local and broadcast routes.
pub const TABLE_LOCAL: u32 = 255;

/// Maximum length of an interface name (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// The kind of a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// The loopback device.
    Loopback,
    /// One end of a veth pair.
    Veth,
    /// A Linux bridge.
    Bridge,
    /// A dummy device.
    Dummy,
    /// An 802.1Q VLAN device.
    Vlan,
    /// Anything else; holds the kernel's kind string (empty for physical devices).
    Other(String),
}

/// Where the other end of a veth pair is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkPeer {
    /// The peer's interface index, in the namespace the peer lives in.
    pub index: u32,
    /// True when the peer is in the same namespace as this link (then `index` can be used with
    /// the same [`Net`]).
    pub same_netns: bool,
}

/// A network interface as seen in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (unique within the namespace).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind.
    pub kind: LinkKind,
    /// Hardware address (all zero for loopback).
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Promiscuous mode requested (`IFF_PROMISC`).
    pub promisc: bool,
    /// Index of the bridge (or other master) this link is attached to.
    pub master: Option<u32>,
    /// For veth links, the other end if known.
    pub peer: Option<LinkPeer>,
    /// For bridge ports, whether hairpin mode is on; `None` for links that are not bridge ports.
    pub hairpin: Option<bool>,
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
    /// Installed by an administrator or program; routes added through [`Net`] use this.
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

/// What to create; passed to the backend.
#[derive(Debug, Clone)]
pub(crate) enum NewLink {
    Veth {
        name: String,
        peer: String,
        peer_ns: Option<Net>,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
        peer_mac: Option<MacAddr>,
    },
    Bridge {
        name: String,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    },
    Dummy {
        name: String,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    },
}

/// A change to an existing link; passed to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkChange {
    Up,
    Down,
    Mtu(u32),
    Mac(MacAddr),
    Master(Option<u32>),
    Promisc(bool),
    Hairpin(bool),
}

/// The operations a backend provides. Object safe so that [`Net`] can hold either backend.
#[async_trait]
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    fn as_any(&self) -> &dyn Any;
    fn netns(&self) -> Option<&NetNs>;
    async fn links(&self) -> NetResult<Vec<Link>>;
    async fn link_by_name(&self, name: &str) -> NetResult<Option<Link>>;
    async fn link_by_index(&self, index: u32) -> NetResult<Option<Link>>;
    async fn create_link(&self, spec: &NewLink) -> NetResult<()>;
    async fn change_link(&self, index: u32, change: LinkChange) -> NetResult<()>;
    async fn move_link(&self, index: u32, target: &Net) -> NetResult<()>;
    async fn delete_link(&self, index: u32) -> NetResult<()>;
    async fn add_address(&self, index: u32, addr: IpNet) -> NetResult<()>;
    async fn addresses(&self, index: Option<u32>) -> NetResult<Vec<Address>>;
    async fn delete_address(&self, index: u32, addr: IpNet) -> NetResult<()>;
    async fn add_route(&self, route: &Route) -> NetResult<()>;
    async fn routes(&self, table: u32) -> NetResult<Vec<Route>>;
    async fn delete_route(&self, route: &Route) -> NetResult<()>;
    async fn sysctl_get(&self, key: &str) -> NetResult<String>;
    async fn sysctl_set(&self, key: &str, value: &str) -> NetResult<()>;
}

/// A handle for network operations in one network namespace.
///
/// Cheap to clone, `Send + Sync`. Obtain one with [`Net::host`], [`Net::open`] or
/// [`Net::open_path`] (kernel), or from a [`fake::FakeNetwork`] (tests).
#[derive(Clone)]
pub struct Net {
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net").field("backend", &self.backend).finish()
    }
}

pub(crate) fn validate_ifname(name: &str) -> NetResult<()> {
    let bad = name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || name == "."
        || name == ".."
        || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if bad {
        return Err(NetError::new(NetErrorKind::InvalidArgument, format!("invalid interface name {name:?}")));
    }
    Ok(())
}

/// Turns `net.ipv4.ip_forward` or `net/ipv4/ip_forward` into `net/ipv4/ip_forward`.
///
/// A key containing `/` is taken as is (so interface names with dots work); otherwise dots
/// separate components. Only per-namespace `net/...` keys are accepted.
pub(crate) fn normalize_sysctl_key(key: &str) -> NetResult<String> {
    let slashed = if key.contains('/') { key.to_owned() } else { key.replace('.', "/") };
    let ok = slashed.starts_with("net/")
        && slashed.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if !ok {
        return Err(NetError::new(
            NetErrorKind::InvalidArgument,
            format!("invalid network sysctl key {key:?} (expected net.* or net/...)"),
        ));
    }
    Ok(slashed)
}

impl Net {
    pub(crate) fn from_backend(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// A handle for the namespace of the calling thread (normally the host namespace).
    pub async fn host() -> NetResult<Net> {
        let ns = NetNs::current()?;
        Net::open(&ns).await
    }

    /// A handle for the namespace `ns`. The netlink socket is created inside the namespace on a
    /// short-lived thread; its connection task is spawned on the current tokio runtime, so this
    /// must be called from within one.
    pub async fn open(ns: &NetNs) -> NetResult<Net> {
        let backend = real::RealBackend::open(ns).await?;
        Ok(Self::from_backend(Arc::new(backend)))
    }

    /// Opens the namespace at `path` and returns a handle for it.
    pub async fn open_path(path: impl AsRef<Path>) -> NetResult<Net> {
        let ns = NetNs::open(path)?;
        Net::open(&ns).await
    }

    /// The namespace this handle operates in, for the kernel backend (`None` for the fake).
    pub fn netns(&self) -> Option<&NetNs> {
        self.backend.netns()
    }

    /// All links of the namespace, ordered by index.
    pub async fn links(&self) -> NetResult<Vec<Link>> {
        self.backend.links().await
    }

    /// The link called `name`, or `None`.
    pub async fn find_link(&self, name: &str) -> NetResult<Option<Link>> {
        self.backend.link_by_name(name).await
    }

    /// The link called `name`; an error of kind [`NetErrorKind::NotFound`] if there is none.
    pub async fn link(&self, name: &str) -> NetResult<Link> {
        self.find_link(name)
            .await?
            .ok_or_else(|| NetError::new(NetErrorKind::NotFound, format!("link {name:?} not found")))
    }

    /// The link with index `index`, or `None`.
    pub async fn find_link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        self.backend.link_by_index(index).await
    }

    /// The link with index `index`; an error of kind [`NetErrorKind::NotFound`] if there is none.
    pub async fn link_by_index(&self, index: u32) -> NetResult<Link> {
        self.find_link_by_index(index)
            .await?
            .ok_or_else(|| NetError::new(NetErrorKind::NotFound, format!("link with index {index} not found")))
    }

    /// Starts building a veth pair `name` (in this namespace) ↔ `peer` (in this namespace or the
    /// one given with [`VethRequest::peer_netns`]).
    pub fn veth(&self, name: &str, peer: &str) -> VethRequest<'_> {
        VethRequest {
            net: self,
            name: name.to_owned(),
            peer: peer.to_owned(),
            peer_ns: None,
            mtu: None,
            mac: None,
            peer_mac: None,
        }
    }

    /// Starts building an "ensure bridge" request: create the bridge `name` if missing, reuse it if
    /// it exists as a bridge, fail with [`NetErrorKind::NotABridge`] if another kind of link has
    /// that name.
    pub fn bridge(&self, name: &str) -> BridgeRequest<'_> {
        BridgeRequest { net: self, name: name.to_owned(), mtu: None, mac: None }
    }

    /// Starts building a dummy link (the kernel needs `CONFIG_DUMMY`).
    pub fn dummy(&self, name: &str) -> DummyRequest<'_> {
        DummyRequest { net: self, name: name.to_owned(), mtu: None, mac: None }
    }

    async fn change(&self, index: u32, change: LinkChange) -> NetResult<()> {
        self.backend.change_link(index, change).await
    }

    /// Sets the link administratively up.
    pub async fn set_up(&self, index: u32) -> NetResult<()> {
        self.change(index, LinkChange::Up).await
    }

    /// Sets the link administratively down.
    pub async fn set_down(&self, index: u32) -> NetResult<()> {
        self.change(index, LinkChange::Down).await
    }

    /// Sets the MTU.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> NetResult<()> {
        self.change(index, LinkChange::Mtu(mtu)).await
    }

    /// Sets the hardware address.
    pub async fn set_mac(&self, index: u32, mac: MacAddr) -> NetResult<()> {
        self.change(index, LinkChange::Mac(mac)).await
    }

    /// Attaches the link to the bridge (or other master) with index `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> NetResult<()> {
        self.change(index, LinkChange::Master(Some(master))).await
    }

    /// Detaches the link from its master.
    pub async fn set_no_master(&self, index: u32) -> NetResult<()> {
        self.change(index, LinkChange::Master(None)).await
    }

    /// Turns hairpin mode of a bridge port on or off.
    pub async fn set_hairpin(&self, index: u32, on: bool) -> NetResult<()> {
        self.change(index, LinkChange::Hairpin(on)).await
    }

    /// Turns promiscuous mode on or off.
    pub async fn set_promisc(&self, index: u32, on: bool) -> NetResult<()> {
        self.change(index, LinkChange::Promisc(on)).await
    }

    /// Moves the link into the namespace of `target` and returns it as seen there (its index
    /// may change; the kernel removes its addresses and sets it down).
    pub async fn move_link(&self, index: u32, target: &Net) -> NetResult<Link> {
        let link = self.link_by_index(index).await?;
        self.backend.move_link(index, target).await?;
        target.link(&link.name).await
    }

    /// Deletes the link. Deleting one end of a veth pair deletes the other end too, wherever it is.
    pub async fn delete_link(&self, index: u32) -> NetResult<()> {
        self.backend.delete_link(index).await
    }

    /// Adds an address (host bits kept, e.g. `10.200.0.5/24`) to the link.
    pub async fn add_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.backend.add_address(index, addr).await
    }

    /// All addresses of the namespace (IPv4 and IPv6).
    pub async fn addresses(&self) -> NetResult<Vec<Address>> {
        self.backend.addresses(None).await
    }

    /// The addresses of one link.
    pub async fn link_addresses(&self, index: u32) -> NetResult<Vec<Address>> {
        self.backend.addresses(Some(index)).await
    }

    /// Removes an address from the link.
    pub async fn delete_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.backend.delete_address(index, addr).await
    }

    /// Starts building a route to `dst` (truncated to its network). Finish with
    /// [`RouteRequest::add`] or [`RouteRequest::delete`].
    pub fn route(&self, dst: IpNet) -> RouteRequest<'_> {
        RouteRequest { net: self, route: Route::new(dst), scope_set: false }
    }

    /// Adds a fully specified route.
    pub async fn add_route(&self, route: &Route) -> NetResult<()> {
        let mut route = route.clone();
        route.dst = route.dst.trunc();
        self.backend.add_route(&route).await
    }

    /// The routes of the main table (IPv4 and IPv6), like `ip route; ip -6 route`.
    pub async fn routes(&self) -> NetResult<Vec<Route>> {
        self.backend.routes(TABLE_MAIN).await
    }

    /// The routes of `table`.
    pub async fn routes_in_table(&self, table: u32) -> NetResult<Vec<Route>> {
        self.backend.routes(table).await
    }

    /// Deletes the route matching `route`: destination and table always, gateway, output link
    /// and metric when set (non-zero metric).
    pub async fn delete_route(&self, route: &Route) -> NetResult<()> {
        let mut route = route.clone();
        route.dst = route.dst.trunc();
        self.backend.delete_route(&route).await
    }

    /// Reads a per-namespace sysctl, e.g. `net.ipv4.ip_forward` or
    /// `net/ipv6/conf/eth0/accept_ra` (use the slash form when an interface name contains dots).
    /// The value is returned without its trailing newline.
    pub async fn sysctl(&self, key: &str) -> NetResult<String> {
        let key = normalize_sysctl_key(key)?;
        self.backend.sysctl_get(&key).await
    }

    /// Writes a per-namespace sysctl.
    pub async fn set_sysctl(&self, key: &str, value: &str) -> NetResult<()> {
        let key = normalize_sysctl_key(key)?;
        self.backend.sysctl_set(&key, value).await
    }
}

/// Builder for a veth pair; see [`Net::veth`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct VethRequest<'a> {
    net: &'a Net,
    name: String,
    peer: String,
    peer_ns: Option<Net>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    peer_mac: Option<MacAddr>,
}

impl VethRequest<'_> {
    /// Creates the peer end directly in the namespace of `peer_ns`.
    pub fn peer_netns(mut self, peer_ns: &Net) -> Self {
        self.peer_ns = Some(peer_ns.clone());
        self
    }

    /// MTU of both ends.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Hardware address of this namespace's end.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Hardware address of the peer end.
    pub fn peer_mac(mut self, mac: MacAddr) -> Self {
        self.peer_mac = Some(mac);
        self
    }

    /// Creates the pair and returns `(this end, peer end)`, each as seen in its namespace.
    pub async fn execute(self) -> NetResult<(Link, Link)> {
        validate_ifname(&self.name)?;
        validate_ifname(&self.peer)?;
        let peer_net = self.peer_ns.clone().unwrap_or_else(|| self.net.clone());
        let spec = NewLink::Veth {
            name: self.name.clone(),
            peer: self.peer.clone(),
            peer_ns: self.peer_ns,
            mtu: self.mtu,
            mac: self.mac,
            peer_mac: self.peer_mac,
        };
        self.net.backend.create_link(&spec).await?;
        let own = self.net.link(&self.name).await?;
        let peer = peer_net.link(&self.peer).await?;
        Ok((own, peer))
    }
}

/// Builder for "ensure a bridge"; see [`Net::bridge`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct BridgeRequest<'a> {
    net: &'a Net,
    name: String,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
}

impl BridgeRequest<'_> {
    /// MTU for a newly created bridge.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Hardware address for a newly created bridge.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Creates the bridge if it does not exist and returns it. An existing bridge is returned
    /// unchanged; an existing link of another kind is an error of kind
    /// [`NetErrorKind::NotABridge`].
    pub async fn execute(self) -> NetResult<Link> {
        validate_ifname(&self.name)?;
        let check = |link: Link| {
            if link.kind == LinkKind::Bridge {
                Ok(link)
            } else {
                Err(NetError::new(
                    NetErrorKind::NotABridge,
                    format!("link {:?} already exists and is not a bridge (kind {:?})", link.name, link.kind),
                ))
            }
        };
        if let Some(link) = self.net.find_link(&self.name).await? {
            return check(link);
        }
        let spec = NewLink::Bridge { name: self.name.clone(), mtu: self.mtu, mac: self.mac };
        match self.net.backend.create_link(&spec).await {
            Ok(()) => {}
            // Lost a race with another creator: use whatever is there now.
            Err(e) if e.kind() == NetErrorKind::Exists => {}
            Err(e) => return Err(e),
        }
        check(self.net.link(&self.name).await?)
    }
}

/// Builder for a dummy link; see [`Net::dummy`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct DummyRequest<'a> {
    net: &'a Net,
    name: String,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
}

impl DummyRequest<'_> {
    /// MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Hardware address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Creates the link and returns it.
    pub async fn execute(self) -> NetResult<Link> {
        validate_ifname(&self.name)?;
        let spec = NewLink::Dummy { name: self.name.clone(), mtu: self.mtu, mac: self.mac };
        self.net.backend.create_link(&spec).await?;
        self.net.link(&self.name).await
    }
}

/// Builder for adding or deleting a route; see [`Net::route`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.add().await` or `.delete().await`"]
pub struct RouteRequest<'a> {
    net: &'a Net,
    route: Route,
    scope_set: bool,
}

impl RouteRequest<'_> {
    /// Next-hop gateway (must be reachable through a connected route).
    pub fn gateway(mut self, gateway: IpAddr) -> Self {
        self.route.gateway = Some(gateway);
        self
    }

    /// Output link.
    pub fn dev(mut self, index: u32) -> Self {
        self.route.oif = Some(index);
        self
    }

    /// Metric (priority).
    pub fn metric(mut self, metric: u32) -> Self {
        self.route.metric = metric;
        self
    }

    /// Routing table (default [`TABLE_MAIN`]).
    pub fn table(mut self, table: u32) -> Self {
        self.route.table = table;
        self
    }

    /// Scope. Without it, an IPv4 route with no gateway gets [`RouteScope::Link`] (as with
    /// `ip route add`) and every other route [`RouteScope::Universe`]. IPv6 routes always have
    /// universe scope.
    pub fn scope(mut self, scope: RouteScope) -> Self {
        self.route.scope = scope;
        self.scope_set = true;
        self
    }

    /// Preferred source address.
    pub fn source(mut self, source: IpAddr) -> Self {
        self.route.source = Some(source);
        self
    }

    /// Path MTU metric.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.route.mtu = Some(mtu);
        self
    }

    /// Advertised MSS metric.
    pub fn advmss(mut self, advmss: u32) -> Self {
        self.route.advmss = Some(advmss);
        self
    }

    /// The route this request describes (with the default scope applied).
    pub fn build(mut self) -> Route {
        self.apply_default_scope();
        self.route
    }

    fn apply_default_scope(&mut self) {
        if !self.scope_set {
            self.route.scope = match (self.route.dst, self.route.gateway) {
                (IpNet::V4(_), None) => RouteScope::Link,
                _ => RouteScope::Universe,
            };
        }
        if matches!(self.route.dst, IpNet::V6(_)) {
            self.route.scope = RouteScope::Universe;
        }
    }

    /// Adds the route. A route that already exists gives [`NetErrorKind::Exists`]; an unreachable
    /// gateway or a down output link gives [`NetErrorKind::Unreachable`].
    pub async fn add(mut self) -> NetResult<()> {
        self.apply_default_scope();
        self.net.backend.add_route(&self.route).await
    }

    /// Deletes the matching route (see [`Net::delete_route`]).
    pub async fn delete(self) -> NetResult<()> {
        self.net.backend.delete_route(&self.route).await
    }
}
