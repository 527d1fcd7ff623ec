//! Links stacked on a lower device ("master"): macvlan, ipvlan, vlan. Go's default master (the
//! default-route interface), master lookups with netlink's wording, and the
//! create-under-a-temporary-name-then-rename step of Go's link plugins.

use std::future::Future;

use super::go;
use crate::net::{Link, Net, NetResult, random_link_name};
use crate::{Error, Result};

/// The interface of the first default route of the main table, IPv4 before IPv6 (Go's
/// `getDefaultRouteInterfaceName` in macvlan and ipvlan, which default `master` to it). Default
/// routes without an output interface (multipath, `unreachable`) are skipped. None →
/// `no default route interface found`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cni_sdk::kit::default_route_interface;
/// use cni_sdk::net::fake::FakeNetwork;
///
/// let world = FakeNetwork::new();
/// let host = world.host();
/// assert_eq!(default_route_interface(&host).await.unwrap_err().message(), "no default route interface found");
/// let uplink = host.dummy("uplink0").execute().await.unwrap();
/// host.add_address(uplink.index, "10.216.9.2/24".parse().unwrap()).await.unwrap();
/// host.set_up(uplink.index).await.unwrap();
/// host.route("0.0.0.0/0".parse().unwrap()).gateway("10.216.9.1".parse().unwrap()).add().await.unwrap();
/// assert_eq!(default_route_interface(&host).await.unwrap(), "uplink0");
/// # });
/// ```
pub async fn default_route_interface(net: &Net) -> Result<String> {
    let mut routes = net.routes().await?;
    routes.sort_by_key(|r| r.dst.addr().is_ipv6());
    for r in routes.iter().filter(|r| r.dst.prefix_len() == 0) {
        let Some(oif) = r.oif else { continue };
        return Ok(net.link_by_index(oif).await?.name);
    }
    Err(Error::internal("no default route interface found"))
}

/// The link called `name`; a missing one is netlink's `Link not found` (what Go's plugins
/// print, bare or wrapped, when a `master` does not exist). An empty or invalid name is not
/// found either.
pub async fn lookup_link(net: &Net, name: &str) -> Result<Link> {
    let found = match net.find_link(name).await {
        Ok(found) => found,
        Err(e) if e.kind() == crate::net::NetErrorKind::InvalidArgument => None,
        Err(e) => return Err(e.into()),
    };
    found.ok_or_else(|| Error::not_found("Link not found"))
}

/// Creates a link for the container the way Go's macvlan, ipvlan and vlan plugins do: `create`
/// makes it under a random temporary name (`veth` + 8 hex digits; it receives that name) and
/// returns it as seen in `ctr` (create it with `.netns(ctr)`, or on a `ctr` handle for a master
/// inside the container), then it is renamed to `ifname` inside `ctr`, so the name is never
/// checked against the host's links.
///
/// Errors, with `kind` naming the link kind: `failed to create <kind>: <errno text>`;
/// `failed to rename <kind> to "<ifname>": <errno text>` (the link is deleted again, unlike in
/// Go's ipvlan and vlan); `failed to refetch <kind> "<ifname>": ...`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cni_sdk::kit::create_in_container;
/// use cni_sdk::net::fake::FakeNetwork;
///
/// let world = FakeNetwork::new();
/// let (host, ctr) = (world.host(), world.add_namespace("pod"));
/// let master = host.dummy("uplink0").execute().await.unwrap();
/// let link = create_in_container(&ctr, "macvlan", "eth0", |tmp| {
///     let req = host.macvlan(&tmp, master.index).netns(&ctr);
///     async move { req.execute().await }
/// })
/// .await
/// .unwrap();
/// assert_eq!(link.name, "eth0");
/// # });
/// ```
pub async fn create_in_container<F, Fut>(ctr: &Net, kind: &str, ifname: &str, create: F) -> Result<Link>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = NetResult<Link>>,
{
    let tmp = random_link_name();
    let link = create(tmp).await.map_err(|e| go::wrap_net(format!("failed to create {kind}"), &e))?;
    if let Err(e) = ctr.rename_link(link.index, ifname).await {
        if let Err(del) = ctr.delete_link(link.index).await {
            tracing::warn!(link = %link.name, error = %del, "could not delete a link whose rename failed");
        }
        return Err(go::wrap_net(format!("failed to rename {kind} to {ifname:?}"), &e));
    }
    ctr.link_by_index(link.index).await.map_err(|e| go::wrap_net(format!("failed to refetch {kind} {ifname:?}"), &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetError;
    use crate::net::fake::{FakeNetwork, OpKind};

    #[tokio::test]
    async fn ipv4_default_route_first_and_multipath_skipped() {
        let world = FakeNetwork::new();
        let host = world.host();
        let a = host.dummy("up4").execute().await.unwrap();
        let b = host.dummy("up6").execute().await.unwrap();
        for (l, addr) in [(&a, "10.216.1.2/24"), (&b, "fd00:216:1::2/64")] {
            host.add_address(l.index, addr.parse().unwrap()).await.unwrap();
            host.set_up(l.index).await.unwrap();
        }
        host.route("::/0".parse().unwrap()).gateway("fd00:216:1::1".parse().unwrap()).add().await.unwrap();
        assert_eq!(default_route_interface(&host).await.unwrap(), "up6");
        host.route("0.0.0.0/0".parse().unwrap()).gateway("10.216.1.1".parse().unwrap()).add().await.unwrap();
        assert_eq!(default_route_interface(&host).await.unwrap(), "up4");
    }

    #[tokio::test]
    async fn missing_links_read_like_netlink() {
        let world = FakeNetwork::new();
        for name in ["nope0", "", "bad/name"] {
            let e = lookup_link(&world.host(), name).await.unwrap_err();
            assert_eq!((e.message(), e.kind()), ("Link not found", crate::ErrorKind::NotFound), "{name:?}");
        }
    }

    #[tokio::test]
    async fn failed_rename_deletes_the_temporary_link() {
        let world = FakeNetwork::new();
        let (host, ctr) = (world.host(), world.add_namespace("pod"));
        let master = host.dummy("uplink0").execute().await.unwrap();
        ctr.dummy("eth0").execute().await.unwrap();
        let e = create_in_container(&ctr, "macvlan", "eth0", |tmp| {
            let (host, ctr) = (host.clone(), ctr.clone());
            async move { host.macvlan(&tmp, master.index).netns(&ctr).execute().await }
        })
        .await
        .unwrap_err();
        assert_eq!(e.message(), "failed to rename macvlan to \"eth0\": file exists");
        let names: Vec<String> = ctr.links().await.unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo", "eth0"]);

        // The kernel's answer without CONFIG_MACVLAN.
        world.fail_when(|op| {
            (op.kind == OpKind::CreateMacvlan).then(|| NetError::from_errno(libc::EOPNOTSUPP, "create macvlan"))
        });
        let e = create_in_container(&ctr, "macvlan", "eth1", |tmp| {
            let (host, ctr) = (host.clone(), ctr.clone());
            async move { host.macvlan(&tmp, master.index).netns(&ctr).execute().await }
        })
        .await
        .unwrap_err();
        assert_eq!(e.message(), "failed to create macvlan: operation not supported");
    }
}
