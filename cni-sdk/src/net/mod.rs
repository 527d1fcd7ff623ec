//! Network operations at the level of a plugin's intent, with a real and a fake backend.
//!
//! Plugin code is written against [`Net`], a cheap, cloneable handle bound to **one** network
//! namespace. The same code runs against the kernel (through netlink, see `Net::host` and
//! `Net::open`, feature `netlink`) or against the in-memory `fake::FakeNetwork` in unit tests
//! (feature `test-util`).
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
//! Link kinds each have a request builder: [`Net::veth`], [`Net::bridge`], [`Net::dummy`],
//! [`Net::ifb`], [`Net::macvlan`], [`Net::macvtap`], [`Net::ipvlan`], [`Net::vlan`], [`Net::vrf`]
//! and [`Net::tuntap`]. Links whose parent lives in this namespace can be created directly inside
//! another one, under a temporary name that is then changed there, as Go's plugins do:
//!
//! ```no_run
//! # async fn demo(host: &cni_sdk::net::Net, ctr: &cni_sdk::net::Net) -> Result<(), cni_sdk::net::NetError> {
//! use cni_sdk::net::MacvlanMode;
//! let master = host.link("eth0").await?;
//! let link = host
//!     .macvlan("eth0", master.index)
//!     .mode(MacvlanMode::Bridge)
//!     .netns(ctr)
//!     .via_temp_name()
//!     .execute()
//!     .await?;
//! assert_eq!(link.name, "eth0"); // as seen in `ctr`
//! # Ok(()) }
//! ```
//!
//! Notes that hold for both backends:
//!
//! * Link operations take the interface index ([`Link::index`]); look links up with
//!   [`Net::link`] / [`Net::find_link`], or by MAC address, PCI address or sysfs path
//!   (see [`lookup`](Net::find_link_by_mac)).
//! * Addresses keep their host bits (`10.200.0.5/24`); route destinations are truncated to their
//!   network (`10.9.1.1/16` becomes `10.9.0.0/16`).
//! * Route listings cover one table (the main table by default), like `ip route`;
//!   [`Net::all_routes`] covers every table. Routes can be replaced and moved between tables
//!   ([`Net::replace_route`], [`Net::move_route`]).
//! * Policy routing rules: [`Net::rules`], [`Net::rule`] (see the `rule` module docs on
//!   [`RuleRequest`] for the kernel's automatic priorities).
//! * Traffic control, through netlink: qdiscs ([`Net::qdisc`], [`Net::qdiscs`]) and `u32`
//!   filters with `mirred` actions ([`Net::filter`], [`Net::filters`]); [`Tbf::for_bandwidth`]
//!   computes Go's bandwidth plugin numbers.
//! * IPv6: the kernel adds `fe80::/64` link-local addresses and routes on its own when a link
//!   gets carrier, and marks new addresses "tentative" during duplicate address detection. The
//!   fake does not model link-local addresses (see the `net::fake` module, feature `test-util`, for the exact differences); compare
//!   only the addresses you added. With the kernel's default `keep_addr_on_down=0`, IPv6
//!   addresses are removed when a link goes down (the fake does the same).

// Without a backend (neither `netlink` nor `test-util`), plugin code still compiles against
// `Net`, but nothing can make one: the plumbing below is unused in such builds.
#![cfg_attr(not(any(feature = "netlink", feature = "test-util")), allow(dead_code, unused_imports))]

use std::fmt;
use std::hash::{BuildHasher, Hasher};
#[cfg(feature = "netlink")]
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod address;
mod backend;
mod error;
#[cfg(feature = "test-util")]
pub mod fake;
mod link;
mod lookup;
mod provider;
#[cfg(feature = "netlink")]
mod real;
mod route;
mod rule;
mod sysctl;
mod tc;
mod types;

pub use error::{NetError, NetErrorKind, NetResult};
pub use link::{
    BridgeRequest, DummyRequest, IfbRequest, IpvlanRequest, MacvlanRequest, TuntapRequest, VethRequest, VlanRequest,
    VrfRequest,
};
pub use lookup::{BusDevice, DeviceBus};
pub(crate) use provider::DynNetProvider;
#[cfg(feature = "netlink")]
pub use provider::KernelNet;
pub use provider::NetProvider;
pub use route::RouteRequest;
pub use rule::{IpFamily, Rule, RuleAction, RuleRequest, TABLE_DEFAULT};
pub use tc::{
    ETH_P_ALL, ETH_P_IP, ETH_P_IPV6, Filter, FilterKind, FilterRequest, MirredKind, Psched, Qdisc, QdiscKind,
    QdiscRequest, Tbf, TcAction, TcHandle, U32Filter, U32Key,
};
pub use types::{
    Address, IpvlanFlag, IpvlanMode, KindInfo, Link, LinkKind, LinkPeer, LinkRef, MAX_IFNAME_LEN, MacvlanMode,
    OperState, Route, RouteProtocol, RouteScope, TABLE_LOCAL, TABLE_MAIN, TunInfo, TunMode, VlanProtocol,
};

use crate::netns::NetNs;
use backend::DynBackend;

/// A handle for network operations in one network namespace.
///
/// Cheap to clone, `Send + Sync`. Obtain one with [`Net::host`], [`Net::open`] or
/// [`Net::open_path`] (kernel), or from a `net::fake::FakeNetwork` (tests, feature `test-util`).
#[derive(Clone)]
pub struct Net {
    backend: Arc<dyn DynBackend>,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net").field("backend", &self.backend).finish()
    }
}

/// Checks an interface name the way the kernel does (`dev_valid_name`).
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

/// A random temporary interface name: `veth` followed by 8 lowercase hex digits, like Go's
/// `ip.RandomVethName`.
///
/// Go's macvlan, ipvlan, vlan and tap plugins create their link under such a name and rename it
/// once it is in the container (see the `via_temp_name` option of the link requests).
pub fn random_link_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the operating system's random source; hashing a sequence
    // number gives distinct values even when two names are asked for at once.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    let entropy = hasher.finish() as u32;
    format!("veth{entropy:08x}")
}

impl Net {
    pub(crate) fn from_backend(backend: Arc<dyn DynBackend>) -> Self {
        Self { backend }
    }

    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn backend(&self) -> &dyn DynBackend {
        &*self.backend
    }

    /// A handle for the namespace of the calling thread (normally the host namespace).
    #[cfg(feature = "netlink")]
    pub async fn host() -> NetResult<Net> {
        // The namespace is this thread's, and no `.await` lies between opening it and creating
        // the socket, so the socket is made right here rather than on the namespace's worker.
        let ns = NetNs::current()?;
        let backend = real::RealBackend::open_here(&ns)?;
        Ok(Self::from_backend(Arc::new(backend)))
    }

    /// A handle for the namespace `ns`. The netlink socket is created inside the namespace on its
    /// worker thread (see [`crate::netns`]); its connection task is spawned on the current tokio runtime, so this
    /// must be called from within one.
    #[cfg(feature = "netlink")]
    pub async fn open(ns: &NetNs) -> NetResult<Net> {
        let backend = real::RealBackend::open(ns).await?;
        Ok(Self::from_backend(Arc::new(backend)))
    }

    /// Opens the namespace at `path` and returns a handle for it.
    #[cfg(feature = "netlink")]
    pub async fn open_path(path: impl AsRef<Path>) -> NetResult<Net> {
        let ns = NetNs::open(path)?;
        Net::open(&ns).await
    }

    /// The namespace this handle operates in, for the kernel backend (`None` for the fake).
    pub fn netns(&self) -> Option<&NetNs> {
        self.backend.netns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_link_names_look_like_go_ones() {
        let a = random_link_name();
        let b = random_link_name();
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert_eq!(n.len(), 12, "{n}");
            assert!(n.starts_with("veth"), "{n}");
            assert!(n[4..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{n}");
            validate_ifname(n).unwrap();
        }
    }

    #[test]
    fn interface_names_are_checked_like_the_kernel() {
        for ok in ["eth0", "a", "veth0123456789a", "br-1.2"] {
            validate_ifname(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "toolonginterface"] {
            assert_eq!(validate_ifname(bad).unwrap_err().kind(), NetErrorKind::InvalidArgument, "{bad:?}");
        }
    }
}
