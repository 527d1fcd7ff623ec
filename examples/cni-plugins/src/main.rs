//! Several plugins in one binary, like busybox: install it once and symlink it as each plugin.
cni_sdk::multicall! {
    "cni-plugins";
    "passthrough" => passthrough @ "../../passthrough/src/main.rs",
    "route-override" => route_override @ "../../route-override/src/main.rs",
    "multi" => multi @ "../../multi/src/main.rs",
}
