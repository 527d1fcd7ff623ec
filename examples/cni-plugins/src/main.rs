//! Several plugins in one binary, like busybox: install it once and symlink it as each plugin.
// bridge and ptp share `bridge/src/common`, so it is compiled into both of their modules.
#![allow(clippy::duplicate_mod)]
cni_sdk::multicall! {
    "cni-plugins";
    "bridge" => bridge @ "../../bridge/src/main.rs",
    "ptp" => ptp @ "../../ptp/src/main.rs",
    "host-local" => host_local @ "../../host-local/src/main.rs",
    "loopback" => loopback @ "../../loopback/src/main.rs",
    "passthrough" => passthrough @ "../../passthrough/src/main.rs",
    "route-override" => route_override @ "../../route-override/src/main.rs",
    "multi" => multi @ "../../multi/src/main.rs",
}
