//! The contract between [`Net`] and its two backends (kernel netlink, in-memory fake).
//!
//! Backends implement [`Backend`] with native `async fn`s; [`Net`] holds them as
//! `Arc<dyn DynBackend>` through the boxed adapter below. Adding an operation means: a method
//! here (both traits and the blanket impl), one in each backend's concern file, and the public
//! method on [`Net`] in the concern's module.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use cni_types::MacAddr;
use ipnet::IpNet;

use super::lookup::{BusDevice, DeviceBus};
use super::rule::RuleSpec;
use super::tc::{FilterDelete, FilterSpec, QdiscSpec};
use super::{
    Address, Filter, IpFamily, IpvlanFlag, IpvlanMode, Link, MacvlanMode, Net, NetResult, Qdisc, Route, Rule, TcHandle,
    TunMode, VlanProtocol,
};
use crate::netns::NetNs;

/// What every link creation request carries.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub(crate) name: String,
    pub(crate) mtu: Option<u32>,
    pub(crate) mac: Option<MacAddr>,
    /// Create the link directly in this namespace (`IFLA_NET_NS_FD`) instead of the handle's.
    pub(crate) netns: Option<Net>,
}

impl Common {
    pub(crate) fn new(name: &str) -> Self {
        Self { name: name.to_owned(), mtu: None, mac: None, netns: None }
    }
}

/// A tun/tap device to create (through `/dev/net/tun`, not netlink).
#[derive(Debug, Clone)]
pub(crate) struct TunSpec {
    pub(crate) mode: TunMode,
    pub(crate) owner: Option<u32>,
    pub(crate) group: Option<u32>,
    pub(crate) multi_queue: bool,
    pub(crate) vnet_hdr: bool,
    pub(crate) pi: bool,
}

/// What to create; passed to the backend. Parents are interface indexes in the namespace of the
/// handle the request is made on.
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
    Bridge(Common),
    Dummy(Common),
    Ifb(Common),
    Macvlan {
        common: Common,
        parent: u32,
        mode: Option<MacvlanMode>,
        /// macvtap instead of macvlan.
        tap: bool,
        /// `IFLA_MACVLAN_BC_QUEUE_LEN`: the broadcast queue length this link asks for.
        bc_queue_len: Option<u32>,
    },
    Ipvlan {
        common: Common,
        parent: u32,
        mode: Option<IpvlanMode>,
        flag: Option<IpvlanFlag>,
    },
    Vlan {
        common: Common,
        parent: u32,
        id: u16,
        protocol: Option<VlanProtocol>,
    },
    Vrf {
        common: Common,
        table: u32,
    },
    /// MTU and MAC of the common part are applied by the request after creation.
    Tun {
        common: Common,
        spec: TunSpec,
    },
}

impl NewLink {
    /// The name of the (first) link created.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Veth { name, .. } => name,
            Self::Bridge(c) | Self::Dummy(c) | Self::Ifb(c) => &c.name,
            Self::Macvlan { common, .. }
            | Self::Ipvlan { common, .. }
            | Self::Vlan { common, .. }
            | Self::Vrf { common, .. }
            | Self::Tun { common, .. } => &common.name,
        }
    }

    /// The namespace the link is created in, when it is not the handle's.
    pub(crate) fn target(&self) -> Option<&Net> {
        match self {
            Self::Veth { .. } => None,
            Self::Bridge(c) | Self::Dummy(c) | Self::Ifb(c) => c.netns.as_ref(),
            Self::Macvlan { common, .. }
            | Self::Ipvlan { common, .. }
            | Self::Vlan { common, .. }
            | Self::Vrf { common, .. }
            | Self::Tun { common, .. } => common.netns.as_ref(),
        }
    }
}

/// A change to an existing link; passed to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkChange {
    Up,
    Down,
    Mtu(u32),
    Mac(MacAddr),
    Master(Option<u32>),
    Promisc(bool),
    AllMulti(bool),
    Hairpin(bool),
    TxQLen(u32),
    Name(String),
    /// `None` (or an empty string) clears the alias.
    Alias(Option<String>),
}

/// A boxed future, for the object-safe adapter.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The operations a backend provides (native async; see [`DynBackend`] for the `dyn` form).
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    fn as_any(&self) -> &dyn Any;
    fn netns(&self) -> Option<&NetNs>;

    // Links (link.rs of each backend).
    fn links(&self) -> impl Future<Output = NetResult<Vec<Link>>> + Send;
    fn link_by_name(&self, name: &str) -> impl Future<Output = NetResult<Option<Link>>> + Send;
    fn link_by_index(&self, index: u32) -> impl Future<Output = NetResult<Option<Link>>> + Send;
    fn create_link(&self, spec: &NewLink) -> impl Future<Output = NetResult<()>> + Send;
    fn change_link(&self, index: u32, change: &LinkChange) -> impl Future<Output = NetResult<()>> + Send;
    /// Moves the link into `target`, renaming it there when `new_name` is given.
    fn move_link(&self, index: u32, target: &Net, new_name: Option<&str>)
    -> impl Future<Output = NetResult<()>> + Send;
    fn delete_link(&self, index: u32) -> impl Future<Output = NetResult<()>> + Send;

    // Device lookups through sysfs (lookup.rs / sysfs.rs).
    fn bus_device(&self, bus: DeviceBus, id: &str) -> impl Future<Output = NetResult<Option<BusDevice>>> + Send;
    fn kernel_path_interfaces(&self, path: &Path) -> impl Future<Output = NetResult<Option<Vec<String>>>> + Send;

    // Addresses.
    fn add_address(&self, index: u32, addr: IpNet) -> impl Future<Output = NetResult<()>> + Send;
    fn addresses(&self, index: Option<u32>) -> impl Future<Output = NetResult<Vec<Address>>> + Send;
    fn delete_address(&self, index: u32, addr: IpNet) -> impl Future<Output = NetResult<()>> + Send;

    // Routes.
    fn add_route(&self, route: &Route) -> impl Future<Output = NetResult<()>> + Send;
    fn routes(&self, table: u32) -> impl Future<Output = NetResult<Vec<Route>>> + Send;
    fn delete_route(&self, route: &Route) -> impl Future<Output = NetResult<()>> + Send;
    fn replace_route(&self, route: &Route) -> impl Future<Output = NetResult<()>> + Send;
    fn all_routes(&self) -> impl Future<Output = NetResult<Vec<Route>>> + Send;

    // Policy rules (rule.rs).
    fn rules(&self, family: IpFamily) -> impl Future<Output = NetResult<Vec<Rule>>> + Send;
    fn add_rule(&self, spec: &RuleSpec) -> impl Future<Output = NetResult<()>> + Send;
    fn delete_rule(&self, spec: &RuleSpec) -> impl Future<Output = NetResult<()>> + Send;

    // Traffic control (tc.rs).
    fn qdiscs(&self, index: Option<u32>) -> impl Future<Output = NetResult<Vec<Qdisc>>> + Send;
    fn change_qdisc(&self, spec: &QdiscSpec) -> impl Future<Output = NetResult<()>> + Send;
    fn filters(&self, index: u32, parent: TcHandle) -> impl Future<Output = NetResult<Vec<Filter>>> + Send;
    fn add_filter(&self, spec: &FilterSpec) -> impl Future<Output = NetResult<()>> + Send;
    fn delete_filter(&self, del: &FilterDelete) -> impl Future<Output = NetResult<()>> + Send;

    // Sysctls.
    fn sysctl_get(&self, key: &str) -> impl Future<Output = NetResult<String>> + Send;
    fn sysctl_set(&self, key: &str, value: &str) -> impl Future<Output = NetResult<()>> + Send;
}

/// Object-safe form of [`Backend`], implemented for every backend by the blanket impl.
pub(crate) trait DynBackend: Send + Sync + fmt::Debug {
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    fn as_any(&self) -> &dyn Any;
    fn netns(&self) -> Option<&NetNs>;
    fn links(&self) -> BoxFuture<'_, NetResult<Vec<Link>>>;
    fn link_by_name<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NetResult<Option<Link>>>;
    fn link_by_index(&self, index: u32) -> BoxFuture<'_, NetResult<Option<Link>>>;
    fn create_link<'a>(&'a self, spec: &'a NewLink) -> BoxFuture<'a, NetResult<()>>;
    fn change_link<'a>(&'a self, index: u32, change: &'a LinkChange) -> BoxFuture<'a, NetResult<()>>;
    fn move_link<'a>(&'a self, index: u32, target: &'a Net, new_name: Option<&'a str>) -> BoxFuture<'a, NetResult<()>>;
    fn delete_link(&self, index: u32) -> BoxFuture<'_, NetResult<()>>;
    fn bus_device<'a>(&'a self, bus: DeviceBus, id: &'a str) -> BoxFuture<'a, NetResult<Option<BusDevice>>>;
    fn kernel_path_interfaces<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, NetResult<Option<Vec<String>>>>;
    fn add_address(&self, index: u32, addr: IpNet) -> BoxFuture<'_, NetResult<()>>;
    fn addresses(&self, index: Option<u32>) -> BoxFuture<'_, NetResult<Vec<Address>>>;
    fn delete_address(&self, index: u32, addr: IpNet) -> BoxFuture<'_, NetResult<()>>;
    fn add_route<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, NetResult<()>>;
    fn routes(&self, table: u32) -> BoxFuture<'_, NetResult<Vec<Route>>>;
    fn delete_route<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, NetResult<()>>;
    fn replace_route<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, NetResult<()>>;
    fn all_routes(&self) -> BoxFuture<'_, NetResult<Vec<Route>>>;
    fn rules(&self, family: IpFamily) -> BoxFuture<'_, NetResult<Vec<Rule>>>;
    fn add_rule<'a>(&'a self, spec: &'a RuleSpec) -> BoxFuture<'a, NetResult<()>>;
    fn delete_rule<'a>(&'a self, spec: &'a RuleSpec) -> BoxFuture<'a, NetResult<()>>;
    fn qdiscs(&self, index: Option<u32>) -> BoxFuture<'_, NetResult<Vec<Qdisc>>>;
    fn change_qdisc<'a>(&'a self, spec: &'a QdiscSpec) -> BoxFuture<'a, NetResult<()>>;
    fn filters(&self, index: u32, parent: TcHandle) -> BoxFuture<'_, NetResult<Vec<Filter>>>;
    fn add_filter<'a>(&'a self, spec: &'a FilterSpec) -> BoxFuture<'a, NetResult<()>>;
    fn delete_filter<'a>(&'a self, del: &'a FilterDelete) -> BoxFuture<'a, NetResult<()>>;
    fn sysctl_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, NetResult<String>>;
    fn sysctl_set<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, NetResult<()>>;
}

impl<T: Backend> DynBackend for T {
    fn as_any(&self) -> &dyn Any {
        Backend::as_any(self)
    }
    fn netns(&self) -> Option<&NetNs> {
        Backend::netns(self)
    }
    fn links(&self) -> BoxFuture<'_, NetResult<Vec<Link>>> {
        Box::pin(Backend::links(self))
    }
    fn link_by_name<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NetResult<Option<Link>>> {
        Box::pin(Backend::link_by_name(self, name))
    }
    fn link_by_index(&self, index: u32) -> BoxFuture<'_, NetResult<Option<Link>>> {
        Box::pin(Backend::link_by_index(self, index))
    }
    fn create_link<'a>(&'a self, spec: &'a NewLink) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::create_link(self, spec))
    }
    fn change_link<'a>(&'a self, index: u32, change: &'a LinkChange) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::change_link(self, index, change))
    }
    fn move_link<'a>(&'a self, index: u32, target: &'a Net, new_name: Option<&'a str>) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::move_link(self, index, target, new_name))
    }
    fn delete_link(&self, index: u32) -> BoxFuture<'_, NetResult<()>> {
        Box::pin(Backend::delete_link(self, index))
    }
    fn bus_device<'a>(&'a self, bus: DeviceBus, id: &'a str) -> BoxFuture<'a, NetResult<Option<BusDevice>>> {
        Box::pin(Backend::bus_device(self, bus, id))
    }
    fn kernel_path_interfaces<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, NetResult<Option<Vec<String>>>> {
        Box::pin(Backend::kernel_path_interfaces(self, path))
    }
    fn add_address(&self, index: u32, addr: IpNet) -> BoxFuture<'_, NetResult<()>> {
        Box::pin(Backend::add_address(self, index, addr))
    }
    fn addresses(&self, index: Option<u32>) -> BoxFuture<'_, NetResult<Vec<Address>>> {
        Box::pin(Backend::addresses(self, index))
    }
    fn delete_address(&self, index: u32, addr: IpNet) -> BoxFuture<'_, NetResult<()>> {
        Box::pin(Backend::delete_address(self, index, addr))
    }
    fn add_route<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::add_route(self, route))
    }
    fn routes(&self, table: u32) -> BoxFuture<'_, NetResult<Vec<Route>>> {
        Box::pin(Backend::routes(self, table))
    }
    fn delete_route<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::delete_route(self, route))
    }
    fn replace_route<'a>(&'a self, route: &'a Route) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::replace_route(self, route))
    }
    fn all_routes(&self) -> BoxFuture<'_, NetResult<Vec<Route>>> {
        Box::pin(Backend::all_routes(self))
    }
    fn rules(&self, family: IpFamily) -> BoxFuture<'_, NetResult<Vec<Rule>>> {
        Box::pin(Backend::rules(self, family))
    }
    fn add_rule<'a>(&'a self, spec: &'a RuleSpec) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::add_rule(self, spec))
    }
    fn delete_rule<'a>(&'a self, spec: &'a RuleSpec) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::delete_rule(self, spec))
    }
    fn qdiscs(&self, index: Option<u32>) -> BoxFuture<'_, NetResult<Vec<Qdisc>>> {
        Box::pin(Backend::qdiscs(self, index))
    }
    fn change_qdisc<'a>(&'a self, spec: &'a QdiscSpec) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::change_qdisc(self, spec))
    }
    fn filters(&self, index: u32, parent: TcHandle) -> BoxFuture<'_, NetResult<Vec<Filter>>> {
        Box::pin(Backend::filters(self, index, parent))
    }
    fn add_filter<'a>(&'a self, spec: &'a FilterSpec) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::add_filter(self, spec))
    }
    fn delete_filter<'a>(&'a self, del: &'a FilterDelete) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::delete_filter(self, del))
    }
    fn sysctl_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, NetResult<String>> {
        Box::pin(Backend::sysctl_get(self, key))
    }
    fn sysctl_set<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, NetResult<()>> {
        Box::pin(Backend::sysctl_set(self, key, value))
    }
}
