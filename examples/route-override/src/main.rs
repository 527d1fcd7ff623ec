//! The `route-override` binary: runs [`route_override::RouteOverride`].
cni_sdk::main!(route_override::RouteOverride);
