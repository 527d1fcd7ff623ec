//! Several plugins in one binary, like busybox: install it once and symlink it as each plugin.
cni_sdk::multicall! {
    "cni-plugins";
    "host-local" => host_local @ "../../host-local/src/main.rs",
    "loopback" => loopback @ "../../loopback/src/main.rs",
    "passthrough" => passthrough @ "../../passthrough/src/main.rs",
    "route-override" => route_override @ "../../route-override/src/main.rs",
    "multi" => multi @ "../../multi/src/main.rs",
}
