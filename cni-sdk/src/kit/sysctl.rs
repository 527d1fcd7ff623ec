//! Forwarding switches (Go `ip.EnableForward`, `ip.EnableIP4Forward`, `ip.EnableIP6Forward`).

use cni_types::IpConfig;

use crate::net::Net;
use crate::Result;

/// Turns on forwarding for the families of `ips`.
pub async fn enable_forward(net: &Net, ips: &[IpConfig]) -> Result<()> {
    if ips.iter().any(|i| i.address.addr().is_ipv4()) {
        enable_ip4_forward(net).await?;
    }
    if ips.iter().any(|i| i.address.addr().is_ipv6()) {
        enable_ip6_forward(net).await?;
    }
    Ok(())
}

/// `net.ipv4.ip_forward=1`, written only when not already on (as Go, to avoid needless writes).
pub async fn enable_ip4_forward(net: &Net) -> Result<()> {
    if net.sysctl("net/ipv4/ip_forward").await.ok().as_deref() != Some("1") {
        net.set_sysctl("net/ipv4/ip_forward", "1").await?;
    }
    Ok(())
}

/// `net.ipv6.conf.all.forwarding=1`, written only when not already on.
pub async fn enable_ip6_forward(net: &Net) -> Result<()> {
    if net.sysctl("net/ipv6/conf/all/forwarding").await.ok().as_deref() != Some("1") {
        net.set_sysctl("net/ipv6/conf/all/forwarding", "1").await?;
    }
    Ok(())
}
