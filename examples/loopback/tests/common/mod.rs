//! Loopback-specific helpers of the subprocess tests; everything generic comes from
//! `cni-test-support`.
#![allow(dead_code, unreachable_pub)]

use cni_test_support::{Call, Netns, Run};
use serde_json::{Value, json};

pub const RUST: &str = env!("CARGO_BIN_EXE_loopback");
pub const ALL: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Go's loopback.
pub fn go_bin() -> String {
    cni_test_support::go::plugin("loopback").display().to_string()
}

/// Runs `bin` for `cmd` in the namespace at `netns` (`None`: `CNI_NETNS` unset).
pub fn run(bin: &str, cmd: &str, netns: Option<&str>, version: &str) -> Run {
    let conf = json!({"cniVersion": version, "name": "lo-net", "type": "loopback"});
    let mut call = Call::new(bin, cmd, &conf, "ctr-lo").cni_path("/nonexistent");
    call.netns = netns.map(str::to_owned);
    call.run()
}

/// `ip -n NS -j link show lo`.
pub fn lo_link(ns: &Netns) -> Value {
    ns.ip_j(&["link", "show", "lo"])[0].clone()
}

pub fn lo_is_up(ns: &Netns) -> bool {
    lo_link(ns)["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

/// The addresses on `lo` as `addr/prefix`.
pub fn lo_addrs(ns: &Netns) -> Vec<String> {
    let v = ns.ip_j(&["addr", "show", "lo"]);
    v[0]["addr_info"]
        .as_array()
        .map(|a| a.iter().map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"])).collect())
        .unwrap_or_default()
}
