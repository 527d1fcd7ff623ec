//! Several plugins in one binary, like busybox: install it once and symlink it as each plugin.
cni_sdk::multicall! {
    "cni-plugins";
    bridge::Bridge,
    ptp::Ptp,
    host_local::HostLocal,
    loopback::Loopback,
    passthrough::PassThrough,
    route_override::RouteOverride,
    multi::Multi,
    portmap::Portmap,
    firewall::FirewallPlugin,
}
