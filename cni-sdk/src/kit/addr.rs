//! Address arithmetic (Go `ip.NextIP`, bridge's `calcGatewayIP`).

use std::net::IpAddr;

use ipnet::IpNet;

/// The address after `ip` (wrapping at the end of the family's space), Go `ip.NextIP`.
///
/// ```
/// use cni_sdk::kit::next_ip;
/// assert_eq!(next_ip("10.0.0.255".parse().unwrap()).to_string(), "10.0.1.0");
/// assert_eq!(next_ip("fd00::ffff".parse().unwrap()).to_string(), "fd00::1:0");
/// ```
pub fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(u32::from(v4).wrapping_add(1).into()),
        IpAddr::V6(v6) => IpAddr::V6(u128::from(v6).wrapping_add(1).into()),
    }
}

/// The conventional gateway of a subnet: its network address + 1 (Go bridge `calcGatewayIP`).
///
/// ```
/// use cni_sdk::kit::gateway_of;
/// assert_eq!(gateway_of(&"10.22.3.7/16".parse().unwrap()).to_string(), "10.22.0.1");
/// ```
pub fn gateway_of(addr: &IpNet) -> IpAddr {
    next_ip(addr.network())
}

/// `ip/32` or `ip/128`.
pub fn host_prefix(ip: IpAddr) -> IpNet {
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    IpNet::new(ip, bits).expect("a full-length prefix is valid")
}

/// Whether an address is global unicast in Go's sense (`net.IP.IsGlobalUnicast`): not
/// unspecified, loopback, multicast, broadcast or link-local.
pub fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast() || v4.is_link_local())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_unicast_like_go() {
        for (ip, want) in [
            ("10.1.2.3", true),
            ("169.254.1.1", false),
            ("255.255.255.255", false),
            ("fe80::1", false),
            ("fd00::1", true),
            ("::1", false),
            ("224.0.0.1", false),
        ] {
            assert_eq!(is_global_unicast(ip.parse().unwrap()), want, "{ip}");
        }
        assert_eq!(host_prefix("fd00::1".parse().unwrap()).to_string(), "fd00::1/128");
        assert_eq!(next_ip("255.255.255.255".parse().unwrap()).to_string(), "0.0.0.0");
    }
}
