//! `netwire`: connect a network namespace to the host with a veth pair.
//!
//! This is the "before" of the porting guide (`docs/porting.md`): a small networking project
//! with its own API and CLI, written without CNI in mind. [`wire`] creates the pair, configures
//! the namespace end with addresses and a default route, and gives the host end the gateway
//! address and a route to each address; [`unwire`] removes the pair; [`verify`] reports what
//! differs from a [`Wiring`].
//!
//! Its netlink layer is the `Net` handle of `cni_sdk::net`, which also works on an in-memory
//! fake, so the library's own tests need no root:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cni_sdk::net::fake::FakeNetwork;
//! use netwire::{Wiring, wire};
//!
//! let world = FakeNetwork::new();
//! let ns = world.add_namespace("app");
//! let spec = Wiring::new("nw-app", "eth0")
//!     .address("10.1.0.2/24".parse().unwrap())
//!     .gateway("10.1.0.1".parse().unwrap());
//! let wired = wire(&world.host(), &ns, &spec).await.unwrap();
//! assert_eq!(wired.inner.name, "eth0");
//! # }
//! ```

use std::net::IpAddr;

use cni_sdk::net::{Link, Net, NetError};
use ipnet::IpNet;

/// What [`wire`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    /// The host end's name.
    pub host_ifname: String,
    /// The namespace end's name.
    pub ifname: String,
    /// MTU of both ends (the kernel's default when `None`).
    pub mtu: Option<u32>,
    /// Addresses of the namespace end.
    pub addresses: Vec<IpNet>,
    /// The default gateway for the namespace; it is also put on the host end.
    pub gateway: Option<IpAddr>,
}

impl Wiring {
    /// A pair `host_ifname` ↔ `ifname` without addresses.
    pub fn new(host_ifname: &str, ifname: &str) -> Self {
        Self {
            host_ifname: host_ifname.to_owned(),
            ifname: ifname.to_owned(),
            mtu: None,
            addresses: Vec::new(),
            gateway: None,
        }
    }

    /// Adds an address for the namespace end.
    #[must_use]
    pub fn address(mut self, addr: IpNet) -> Self {
        self.addresses.push(addr);
        self
    }

    /// Sets the default gateway.
    #[must_use]
    pub fn gateway(mut self, gateway: IpAddr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Sets the MTU.
    #[must_use]
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
}

/// The two ends [`wire`] created.
#[derive(Debug, Clone)]
pub struct Wired {
    /// The host end, as seen on the host.
    pub host: Link,
    /// The namespace end, as seen in the namespace.
    pub inner: Link,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink operation failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The namespace already has an interface of that name.
    #[error("interface {0:?} already exists in the namespace")]
    Exists(String),
    /// [`verify`] found a difference.
    #[error("{0}")]
    Mismatch(String),
}

/// `addr/32` or `addr/128`.
fn single(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// Creates and configures the pair. On failure, whatever was created is removed again.
pub async fn wire(host: &Net, ns: &Net, spec: &Wiring) -> Result<Wired, Error> {
    if ns.find_link(&spec.ifname).await?.is_some() {
        return Err(Error::Exists(spec.ifname.clone()));
    }
    let mut veth = host.veth(&spec.host_ifname, &spec.ifname).peer_netns(ns);
    if let Some(mtu) = spec.mtu {
        veth = veth.mtu(mtu);
    }
    let (host_end, inner) = veth.execute().await?;
    let configured = configure(host, ns, spec, &host_end, &inner).await;
    if let Err(e) = configured {
        // Deleting one end of a veth pair deletes both.
        let _ = host.delete_link(host_end.index).await;
        return Err(e);
    }
    Ok(Wired { host: host_end, inner })
}

async fn configure(host: &Net, ns: &Net, spec: &Wiring, host_end: &Link, inner: &Link) -> Result<(), Error> {
    host.set_up(host_end.index).await?;
    ns.set_up(inner.index).await?;
    for addr in &spec.addresses {
        ns.add_address(inner.index, *addr).await?;
        host.route(single(addr.addr())).dev(host_end.index).add().await?;
    }
    if let Some(gw) = spec.gateway {
        host.add_address(host_end.index, single(gw)).await?;
        let default: IpNet = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" }.parse().expect("valid network");
        ns.route(default).gateway(gw).dev(inner.index).add().await?;
    }
    Ok(())
}

/// Removes the pair: the namespace end if `ns` is given and it exists, then the host end if it
/// still exists. Returns whether anything was removed.
pub async fn unwire(host: &Net, ns: Option<&Net>, spec: &Wiring) -> Result<bool, Error> {
    let mut removed = false;
    if let Some(ns) = ns
        && let Some(link) = ns.find_link(&spec.ifname).await?
    {
        ns.delete_link(link.index).await?;
        removed = true;
    }
    if let Some(link) = host.find_link(&spec.host_ifname).await? {
        host.delete_link(link.index).await?;
        removed = true;
    }
    Ok(removed)
}

/// Checks that both ends exist and are up and that the namespace end has every address.
pub async fn verify(host: &Net, ns: &Net, spec: &Wiring) -> Result<(), Error> {
    let inner =
        ns.find_link(&spec.ifname).await?.ok_or_else(|| Error::Mismatch(format!("{} is missing", spec.ifname)))?;
    let host_end = host
        .find_link(&spec.host_ifname)
        .await?
        .ok_or_else(|| Error::Mismatch(format!("{} is missing on the host", spec.host_ifname)))?;
    for link in [&inner, &host_end] {
        if !link.up {
            return Err(Error::Mismatch(format!("{} is down", link.name)));
        }
    }
    let present = ns.link_addresses(inner.index).await?;
    for addr in &spec.addresses {
        if !present.iter().any(|a| a.addr == *addr) {
            return Err(Error::Mismatch(format!("{addr} is missing on {}", inner.name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cni_sdk::net::NetErrorKind;
    use cni_sdk::net::fake::{FakeNetwork, OpKind};

    use super::*;

    fn spec() -> Wiring {
        Wiring::new("nw-app", "eth0")
            .address("10.1.0.2/24".parse().unwrap())
            .gateway("10.1.0.1".parse().unwrap())
            .mtu(1400)
    }

    #[tokio::test]
    async fn wire_verify_unwire() {
        let world = FakeNetwork::new();
        let (host, ns) = (world.host(), world.add_namespace("app"));
        let wired = wire(&host, &ns, &spec()).await.unwrap();
        assert_eq!((wired.host.mtu, wired.inner.mtu), (1400, 1400));
        verify(&host, &ns, &spec()).await.unwrap();
        let app = world.snapshot("app").unwrap();
        assert!(app.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.gateway == spec().gateway));
        let h = world.snapshot("host").unwrap();
        assert!(h.routes.iter().any(|r| r.dst.to_string() == "10.1.0.2/32"));

        assert!(unwire(&host, Some(&ns), &spec()).await.unwrap());
        assert!(!unwire(&host, Some(&ns), &spec()).await.unwrap(), "nothing left to remove");
        assert!(matches!(verify(&host, &ns, &spec()).await, Err(Error::Mismatch(_))));
    }

    #[tokio::test]
    async fn a_failed_wire_removes_the_pair() {
        let world = FakeNetwork::new();
        let (host, ns) = (world.host(), world.add_namespace("app"));
        world.fail_next(OpKind::AddRoute, NetErrorKind::Unreachable);
        assert!(matches!(wire(&host, &ns, &spec()).await, Err(Error::Net(_))));
        assert!(host.find_link("nw-app").await.unwrap().is_none());
        assert!(ns.find_link("eth0").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_existing_interface_is_refused() {
        let world = FakeNetwork::new();
        let (host, ns) = (world.host(), world.add_namespace("app"));
        ns.dummy("eth0").execute().await.unwrap();
        assert!(matches!(wire(&host, &ns, &spec()).await, Err(Error::Exists(_))));
    }
}
