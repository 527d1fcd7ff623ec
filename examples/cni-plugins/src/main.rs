//! Several plugins in one binary, like busybox: install it once and symlink it as each plugin.
//! `dhcp daemon [flags]` (through a `dhcp` symlink) or `cni-plugins dhcp daemon [flags]` runs
//! the dhcp daemon.
cni_sdk::multicall! {
    "cni-plugins";
    bridge::Bridge,
    ptp::Ptp,
    host_local::HostLocal,
    loopback::Loopback,
    passthrough::PassThrough,
    route_override::RouteOverride,
    multi::Multi,
    macvlan::Macvlan,
    ipvlan::Ipvlan,
    vlan::Vlan,
    host_device::HostDevice,
    dummy::Dummy,
    tap::Tap,
    static_ipam::Static,
    dhcp::Dhcp,
    tuning::Tuning,
    portmap::Portmap,
    firewall::FirewallPlugin,
    bandwidth::Bandwidth,
    sbr::Sbr,
    vrf::Vrf,
}
