//! Which link routes to an address (Go's `netlink.RouteGet(ip)` followed by `LinkByIndex`, as
//! portmap's `getRoutableHostIF` uses it to find where to set `route_localnet`).

use std::net::IpAddr;

use crate::net::{Link, Net, NetResult};

/// The link the main routing table sends `addr` out of: the longest-prefix route to `addr`
/// that names an output link (lowest metric among equals). `None` when no route with an output
/// link matches.
///
/// This reads the main table instead of asking the kernel's FIB (policy rules and the local
/// table are not considered), which gives the same answer for a container address reached
/// through a bridge or a veth, the case plugins ask about.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use cni_sdk::net::fake::FakeNetwork;
/// let world = FakeNetwork::new();
/// let host = world.host();
/// let br = host.bridge("cni-doc0").execute().await?;
/// host.set_up(br.index).await?;
/// host.add_address(br.index, "10.231.0.1/24".parse()?).await?;
/// let link = cni_sdk::kit::link_routing_to(&host, "10.231.0.7".parse()?).await?;
/// assert_eq!(link.map(|l| l.name).as_deref(), Some("cni-doc0"));
/// assert!(cni_sdk::kit::link_routing_to(&host, "192.0.2.1".parse()?).await?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn link_routing_to(net: &Net, addr: IpAddr) -> NetResult<Option<Link>> {
    let routes = net.routes().await?;
    let best = routes
        .iter()
        .filter(|r| r.oif.is_some() && r.dst.contains(&addr))
        .max_by(|a, b| a.dst.prefix_len().cmp(&b.dst.prefix_len()).then(b.metric.cmp(&a.metric)));
    match best.and_then(|r| r.oif) {
        Some(index) => net.find_link_by_index(index).await,
        None => Ok(None),
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::*;
    use crate::net::fake::FakeNetwork;

    #[tokio::test]
    async fn longest_prefix_then_lowest_metric() {
        let world = FakeNetwork::new();
        let host = world.host();
        let a = host.bridge("lk-a").execute().await.unwrap();
        let b = host.bridge("lk-b").execute().await.unwrap();
        for l in [&a, &b] {
            host.set_up(l.index).await.unwrap();
        }
        host.add_address(a.index, "10.231.0.1/16".parse().unwrap()).await.unwrap();
        host.route("10.231.5.0/24".parse().unwrap()).dev(b.index).metric(50).add().await.unwrap();
        host.route("10.231.5.0/24".parse().unwrap()).dev(a.index).metric(10).add().await.unwrap();
        let at = |s: &str| {
            let host = host.clone();
            let addr: IpAddr = s.parse().unwrap();
            async move { link_routing_to(&host, addr).await.unwrap().map(|l| l.name) }
        };
        assert_eq!(at("10.231.9.9").await.as_deref(), Some("lk-a"));
        assert_eq!(at("10.231.5.9").await.as_deref(), Some("lk-a"), "same prefix: metric 10 wins");
        assert_eq!(at("fd00:231::1").await, None);
    }
}
