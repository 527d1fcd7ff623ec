//! The shared harness: the two-namespace environment, helpers, and the `suite!` macro.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::net::{Address, Link, Net, NetErrorKind, NetResult, Route};
use cni_sdk::netns::TempNetns;
use ipnet::IpNet;

mod addresses;
mod fake_only;
mod kinds;
mod links;
mod lookups;
mod moves;
mod route_tables;
mod routes;
mod rules;
mod sysctls;
mod tc;

/// Two namespaces to work in, plus whatever keeps them alive.
pub(crate) struct Env {
    pub(crate) a: Net,
    pub(crate) b: Net,
    // Dropped last: removes the namespaces (and so every link created in them).
    _guards: Vec<TempNetns>,
}

impl Env {
    /// The names of the kernel namespaces of `a` and `b` (under `/run/netns`); `None` on the
    /// fake.
    pub(crate) fn netns_names(&self) -> Option<(&str, &str)> {
        match self._guards.as_slice() {
            [a, b] => Some((a.name(), b.name())),
            _ => None,
        }
    }
}

pub(crate) async fn fake_env() -> Env {
    let world = FakeNetwork::new();
    Env { a: world.add_namespace("a"), b: world.add_namespace("b"), _guards: Vec::new() }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A throwaway namespace `<prefix>-<pid>-<n>`, removed on drop.
pub(crate) fn temp_ns_with(prefix: &str) -> TempNetns {
    let name = format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    TempNetns::create(&name).expect("create test namespace (needs root)")
}

pub(crate) async fn real_env() -> Env {
    real_env_with("nt").await
}

/// Two throwaway kernel namespaces named `<prefix>-<pid>-<n>`.
pub(crate) async fn real_env_with(prefix: &str) -> Env {
    let ga = temp_ns_with(prefix);
    let gb = temp_ns_with(prefix);
    let a = Net::open(&ga.netns().unwrap()).await.unwrap();
    let b = Net::open(&gb.netns().unwrap()).await.unwrap();
    Env { a, b, _guards: vec![ga, gb] }
}

pub(crate) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn err_kind<T: std::fmt::Debug>(r: NetResult<T>) -> NetErrorKind {
    r.expect_err("expected an error").kind()
}

/// Addresses the tests added: no IPv6 link-local.
pub(crate) fn user_addrs(v: Vec<Address>) -> Vec<Address> {
    let mut v: Vec<Address> = v
        .into_iter()
        .filter(|a| match a.addr {
            IpNet::V6(n) => !n.addr().is_unicast_link_local(),
            IpNet::V4(_) => true,
        })
        .collect();
    v.sort();
    v
}

/// Routes the tests care about: no IPv6 link-local or multicast routes.
pub(crate) fn user_routes(v: Vec<Route>) -> Vec<Route> {
    let mut v: Vec<Route> = v
        .into_iter()
        .filter(|r| match r.dst {
            IpNet::V6(n) => !n.addr().is_unicast_link_local() && !n.addr().is_multicast(),
            IpNet::V4(_) => true,
        })
        .collect();
    v.sort_by_key(|r| (r.dst, r.metric));
    v
}

/// A bridge that is up (a bridge has no carrier dependence on a peer).
pub(crate) async fn up_bridge(n: &Net, name: &str) -> u32 {
    let br = n.bridge(name).execute().await.unwrap();
    n.set_up(br.index).await.unwrap();
    br.index
}

/// A veth pair in `n` with both ends up, so `name` has carrier; returns `name`'s link.
pub(crate) async fn carrier_veth(n: &Net, name: &str, peer: &str) -> Link {
    let (l, p) = n.veth(name, peer).execute().await.unwrap();
    n.set_up(p.index).await.unwrap();
    n.set_up(l.index).await.unwrap();
    n.link_by_index(l.index).await.unwrap()
}

/// The link once `done` holds for it. The kernel updates operational state asynchronously
/// (link watch), so this polls for up to five seconds; the fake answers at once. The caller
/// asserts on the returned link.
pub(crate) async fn settled(n: &Net, index: u32, done: impl Fn(&Link) -> bool) -> Link {
    let mut link = n.link_by_index(index).await.unwrap();
    for _ in 0..250 {
        if done(&link) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        link = n.link_by_index(index).await.unwrap();
    }
    link
}

/// Runs each listed `async fn(Env)` of the calling module against the fake (`fake::<name>`)
/// and the kernel (`real::<name>`, needs root). `suite!(prefix = "nt2"; ...)` names the kernel
/// namespaces `nt2-<pid>-<n>` instead of `nt-<pid>-<n>`.
macro_rules! suite {
    (prefix = $prefix:literal; $($name:ident),* $(,)?) => {
        /// Against the in-memory fake.
        mod fake {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::net::fake_env().await).await;
                }
            )*
        }

        /// Against the kernel, in throwaway namespaces.
        mod real {
            $(
                #[tokio::test]
                #[ignore = "needs root"]
                async fn $name() {
                    super::$name(crate::net::real_env_with($prefix).await).await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        /// Against the in-memory fake.
        mod fake {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::net::fake_env().await).await;
                }
            )*
        }

        /// Against the kernel, in throwaway namespaces.
        mod real {
            $(
                #[tokio::test]
                #[ignore = "needs root"]
                async fn $name() {
                    super::$name(crate::net::real_env().await).await;
                }
            )*
        }
    };
}
pub(crate) use suite;
