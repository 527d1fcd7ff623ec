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
//! * every link kind [`Net`] can create, with the kernel's defaults (MTU, MAC, transmit queue
//!   length) and checks: a parent must exist in the requesting namespace, a macvlan or ipvlan
//!   parent must be an Ethernet device whose receive handler is free (a bridge port, a macvlan
//!   parent and an ipvlan parent exclude each other: `EBUSY`), `passthru` macvlans are alone and
//!   take the parent's MAC, ipvlans share the parent's MAC and the parent's mode, VLAN ids are
//!   0..=4094 (`ERANGE`) and unique per parent and protocol, names are unique (`EEXIST`);
//! * deleting a link deletes its veth peer and its macvlan/macvtap/ipvlan/vlan children wherever
//!   they are; a child's MTU is bounded by its parent's and follows it down;
//! * moving a link (optionally renaming it) keeps its parent and peer relations, detaches it
//!   from its master, sets it down and drops its addresses, routes and per-link sysctls; the
//!   loopback device and bridges cannot move; per-link sysctls and the alias follow a rename,
//!   which works on an up link too (Linux 6.2 and later; older kernels answer `EBUSY`);
//! * the operational state follows carrier: a veth is up when its peer is up, a
//!   macvlan/ipvlan/vlan when its parent runs, a bridge when one of its ports runs (unknown with
//!   no ports), a persistent tap is down (nobody attached), loopback/dummy/ifb are unknown;
//! * adding an address to an up link (or setting a link with addresses up) adds the connected
//!   route the kernel adds (IPv4: scope link, `src` the address, metric 0; IPv6: metric 256), in
//!   the table of the link's VRF if it is enslaved to one; `/32` and `/128` addresses get none;
//! * a link going down loses its routes (in every table) and its IPv6 addresses (unless
//!   `net.ipv6.conf.{all,<link>}.keep_addr_on_down` is positive); entering or leaving a VRF
//!   cycles the link (same effect, then its connected routes come back in the new table), so
//!   routes such as the default route are lost on enslaving (Go's vrf plugin bug B20);
//! * `replace_route` replaces the route of the same table, destination and metric;
//! * policy rules per family with the kernel's default rules (`0` local, `32766` main, `32767`
//!   default for IPv4), automatic priorities (the second rule's minus one), duplicate detection
//!   and first-match deletion; the first VRF of a namespace adds the `1000` l3mdev rules;
//! * traffic control per link: the hidden `noop` root until the link first goes up, then
//!   `noqueue` (virtual devices) or `pfifo_fast` (ifb, tun/tap, physical devices); root `tbf`
//!   qdiscs with the kernel's add/replace/delete rules and errnos; one `ingress` or `clsact`
//!   qdisc whose `u32` filters get the kernel's priorities (49152, 49151, ...) and handles
//!   (`800::800`, ...); `mirred` targets must exist and read as `0` once they are deleted or
//!   moved away; moving a link resets its qdiscs, deleting it removes them;
//! * a route's gateway must be covered by a connected route (in the route's table or main) on
//!   an up link, otherwise the add fails with [`NetErrorKind::Unreachable`]; IPv6 routes get
//!   metric 1024 by default;
//! * bringing `lo` up gives it `127.0.0.1/8` and `::1/128`;
//! * [registered physical devices](FakeNetwork::add_physical_device) appear in the sysfs
//!   lookups (PCI or auxiliary bus id, kernel path, driver), cannot be deleted, and return to
//!   the host namespace when their namespace is removed; `/sys/devices/virtual` lists a
//!   namespace's other links.
//!
//! Where the fake differs from the kernel:
//!
//! * **IPv6 link-local.** When a link with a hardware address gets carrier and IPv6 is enabled,
//!   the kernel adds an `fe80::/64` address (EUI-64 from the MAC, or random depending on
//!   `addr_gen_mode`), the `fe80::/64` prefix route (metric 256) and `ff00::/8` multicast routes,
//!   and runs duplicate address detection on every new IPv6 address (it stays "tentative" for a
//!   moment). The fake adds no link-local addresses or routes and has no tentative state, so
//!   after bringing a link up it lists exactly the addresses and routes the code added. Filter
//!   with `is_unicast_link_local()` / `is_multicast()` when the same test also runs on the kernel.
//! * **u32 on clsact.** The kernel shares `u32` hash tables between the two hooks of a clsact
//!   qdisc, so listing one hook also shows the other hook's rules of the same priority; the
//!   fake keeps the hooks apart.
//! * Not modelled either: the local routing table (loopback's routes, local and broadcast
//!   routes), bridge MTU/MAC inheritance from ports, VLAN filtering, classful qdisc trees
//!   (qdiscs under a class), classifiers other than `u32`, `net.core.default_qdisc`.
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
//!
//! Physical devices for host-device style code are registered with
//! [`FakeNetwork::add_physical_device`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cni_sdk::net::fake::{FakeNetwork, PhysicalDevice, HOST_NAMESPACE};
//!
//! let world = FakeNetwork::new();
//! world
//!     .add_physical_device(HOST_NAMESPACE, PhysicalDevice::pci("0000:03:00.1").interface("ens1f1").driver("ixgbevf"))
//!     .unwrap();
//! let link = world.host().find_link_by_pci_bus_id("0000:03:00.1").await.unwrap().unwrap();
//! assert_eq!(link.name, "ens1f1");
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use cni_types::MacAddr;

use super::lookup::{DeviceBus, validate_bus_id, validate_kernel_path};
use super::{
    Address, Filter, IpFamily, Link, LinkKind, Net, NetError, NetErrorKind, NetResult, Qdisc, Route, Rule,
    validate_ifname,
};

mod backend;
mod links;
mod model;
mod rules;
mod tc;
mod world;

use backend::FakeBackend;
use model::check_mtu;
use world::{FDevice, World};

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
    /// Creating an ifb link.
    CreateIfb,
    /// Creating a macvlan.
    CreateMacvlan,
    /// Creating a macvtap.
    CreateMacvtap,
    /// Creating an ipvlan.
    CreateIpvlan,
    /// Creating a VLAN link.
    CreateVlan,
    /// Creating a VRF.
    CreateVrf,
    /// Creating a tun/tap device.
    CreateTun,
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
    /// [`Net::set_allmulti`].
    SetAllMulti,
    /// [`Net::set_hairpin`].
    SetHairpin,
    /// [`Net::set_txqlen`].
    SetTxQLen,
    /// [`Net::rename_link`].
    Rename,
    /// [`Net::set_alias`] and [`Net::clear_alias`].
    SetAlias,
    /// [`Net::move_link`] and its variants.
    MoveLink,
    /// [`Net::delete_link`].
    DeleteLink,
    /// A sysfs bus device lookup ([`Net::bus_device`]).
    GetBusDevice,
    /// A sysfs kernel path listing ([`Net::kernel_path_interfaces`]).
    ListKernelPath,
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
    /// Replacing a route ([`Net::replace_route`], [`Net::move_route`]).
    ReplaceRoute,
    /// Listing policy rules.
    ListRules,
    /// Adding a policy rule.
    AddRule,
    /// Deleting a policy rule.
    DeleteRule,
    /// Listing qdiscs.
    ListQdiscs,
    /// Adding or replacing a qdisc ([`QdiscRequest::add`](crate::net::QdiscRequest::add),
    /// [`QdiscRequest::replace`](crate::net::QdiscRequest::replace)).
    AddQdisc,
    /// Deleting a qdisc.
    DeleteQdisc,
    /// Listing filters.
    ListFilters,
    /// Adding a filter.
    AddFilter,
    /// Deleting filters.
    DeleteFilter,
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
    /// Policy rules, IPv4 then IPv6, each by priority.
    pub rules: Vec<Rule>,
    /// Qdiscs, as [`Net::qdiscs`] lists them.
    pub qdiscs: Vec<Qdisc>,
    /// Filters of every link's ingress-side qdisc.
    pub filters: Vec<Filter>,
}

type Predicate = dyn Fn(&Op) -> Option<NetError> + Send + Sync;

enum Injection {
    Next { kind: OpKind, netns: Option<String>, error: NetErrorKind },
    When(Box<Predicate>),
}

/// A fake device to register with [`FakeNetwork::add_physical_device`]: a NIC on a bus (PCI or
/// auxiliary) or at a sysfs path, with or without a network interface.
#[derive(Debug, Clone)]
#[must_use = "register it with FakeNetwork::add_physical_device"]
pub struct PhysicalDevice {
    bus: Option<(DeviceBus, String)>,
    path: PathBuf,
    driver: Option<String>,
    interface: Option<String>,
    mac: Option<MacAddr>,
    mtu: Option<u32>,
}

impl PhysicalDevice {
    /// A PCI device with bus id `id` (e.g. `0000:03:00.1`), at
    /// `/sys/devices/pci0000:00/<id>`. Without [`PhysicalDevice::interface`] it has no network
    /// interface (as when bound to a DPDK driver).
    pub fn pci(id: &str) -> Self {
        Self::on_bus(DeviceBus::Pci, id, PathBuf::from(format!("/sys/devices/pci0000:00/{id}")))
    }

    /// An auxiliary-bus device (e.g. `mlx5_core.sf.4`), at
    /// `/sys/devices/pci0000:00/0000:00:00.0/<id>`.
    pub fn auxiliary(id: &str) -> Self {
        Self::on_bus(DeviceBus::Auxiliary, id, PathBuf::from(format!("/sys/devices/pci0000:00/0000:00:00.0/{id}")))
    }

    /// A device on no bus, at the sysfs device directory `path` (below `/sys/devices/`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { bus: None, path: path.into(), driver: None, interface: None, mac: None, mtu: None }
    }

    fn on_bus(bus: DeviceBus, id: &str, path: PathBuf) -> Self {
        Self { bus: Some((bus, id.to_owned())), ..Self::at(path) }
    }

    /// The device's network interface is called `name`.
    pub fn interface(mut self, name: &str) -> Self {
        self.interface = Some(name.to_owned());
        self
    }

    /// The bound driver (what `<path>/driver` points to), e.g. `vfio-pci`.
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = Some(driver.to_owned());
        self
    }

    /// The sysfs device directory (default: see the constructor).
    pub fn kernel_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    /// The interface's hardware address (default: a deterministic one).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// The interface's MTU (default 1500).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
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
        Self { world: Arc::new(Mutex::new(World::new(HOST_NAMESPACE))) }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, ns: usize) -> Net {
        Net::from_backend(Arc::new(FakeBackend::new(Arc::clone(&self.world), ns)))
    }

    /// The host namespace.
    pub fn host(&self) -> Net {
        self.handle(0)
    }

    /// Creates the namespace `name` (with a down `lo`), or returns the existing one.
    pub fn add_namespace(&self, name: &str) -> Net {
        let id = self.lock().add_namespace(name);
        self.handle(id)
    }

    /// The namespace `name`, if it exists.
    pub fn namespace(&self, name: &str) -> Option<Net> {
        let id = self.lock().ns_id(name)?;
        Some(self.handle(id))
    }

    /// Destroys the namespace `name` like the kernel does when its last reference goes: its
    /// virtual links disappear together with their veth peers and children elsewhere, and
    /// registered physical devices go back to the host namespace (down, renamed `dev<index>` if
    /// their name is taken there). Handles to it then fail with [`NetErrorKind::NotFound`].
    /// Returns false if there was no such namespace.
    pub fn remove_namespace(&self, name: &str) -> bool {
        let mut w = self.lock();
        let Some(id) = w.ns_id(name) else {
            return false;
        };
        w.remove_namespace(id);
        true
    }

    /// The name of the namespace `net` operates in, if it belongs to this world.
    pub fn namespace_name(&self, net: &Net) -> Option<String> {
        let backend = net.backend().as_any().downcast_ref::<FakeBackend>()?;
        if !backend.in_world(&self.world) {
            return None;
        }
        Some(self.lock().namespaces[backend.ns()].name.clone())
    }

    /// Registers a physical device in namespace `netns` and returns its network interface, if
    /// it has one. The interface is of kind [`LinkKind::Device`], down, with MTU 1500 unless
    /// given. A bus id or interface name already in use is an error of kind
    /// [`NetErrorKind::Exists`]; a missing namespace of kind [`NetErrorKind::NotFound`].
    pub fn add_physical_device(&self, netns: &str, device: PhysicalDevice) -> NetResult<Option<Link>> {
        let mut w = self.lock();
        let ns = w.ns_id(netns).ok_or_else(|| {
            NetError::new(NetErrorKind::NotFound, format!("fake network namespace {netns:?} does not exist"))
        })?;
        validate_kernel_path(&device.path)?;
        if let Some((bus, id)) = &device.bus {
            validate_bus_id(*bus, id)?;
            if w.devices.iter().any(|d| d.bus == device.bus) {
                return Err(NetError::new(NetErrorKind::Exists, format!("{bus} device {id} is already registered")));
            }
        }
        if w.devices.iter().any(|d| d.path == device.path) || device.path == Path::new("/sys/devices/virtual") {
            return Err(NetError::new(
                NetErrorKind::Exists,
                format!("a device is already registered at {}", device.path.display()),
            ));
        }
        let dev_index = w.devices.len();
        let mut link_id = None;
        let mut created = None;
        if let Some(name) = &device.interface {
            validate_ifname(name)?;
            let what = format!("add physical device {name:?}");
            w.namespaces[ns].name_free(name, &what)?;
            if let Some(mtu) = device.mtu {
                check_mtu(&LinkKind::Device, mtu, &what)?;
            }
            World::check_new_mac(device.mac, &what)?;
            let mac = device.mac.unwrap_or_else(|| w.next_mac());
            let id = w.new_id();
            let index = w.namespaces[ns].alloc_index();
            let mut link = model::FLink::new(id, index, name, LinkKind::Device, mac);
            link.device = Some(dev_index);
            if let Some(mtu) = device.mtu {
                link.mtu = mtu;
            }
            w.namespaces[ns].links.insert(index, link);
            link_id = Some(id);
            created = Some(index);
        }
        w.devices.push(FDevice { bus: device.bus, path: device.path, driver: device.driver, link: link_id });
        Ok(created.map(|index| {
            let state = &w.namespaces[ns];
            w.view(ns, &state.links[&index])
        }))
    }

    /// The state of namespace `name`.
    pub fn snapshot(&self, name: &str) -> Option<NsSnapshot> {
        let w = self.lock();
        let id = w.ns_id(name)?;
        let ns = &w.namespaces[id];
        let mut addresses = ns.addrs.clone();
        addresses.sort();
        Some(NsSnapshot {
            links: ns.links.values().map(|l| w.view(id, l)).collect(),
            addresses,
            routes: ns.routes.clone(),
            sysctls: ns.sysctls.clone(),
            rules: [IpFamily::V4, IpFamily::V6].into_iter().flat_map(|f| ns.rules(f)).collect(),
            qdiscs: ns.qdiscs(None),
            filters: ns.all_filters(),
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
