//! What the root, differential and interop tests share: a throwaway "host" namespace holding the
//! devices to hand out (veth ends stand in for NICs), and reading a device's state back.

use cni_test_support::Netns;
use serde_json::{Value, json};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_host-device");

/// A host namespace with `hd0` (MAC `02:17:00:00:60:01`, alias `uplink`, up) and its peer `hd0p`,
/// and an empty container namespace.
pub(crate) fn world(tag: &str) -> (Netns, Netns) {
    let host = Netns::new(&format!("{tag}h"));
    let ctr = Netns::new(&format!("{tag}c"));
    host.sh(&["ip", "link", "add", "hd0", "address", "02:17:00:00:60:01", "type", "veth", "peer", "name", "hd0p"]);
    host.sh(&["ip", "link", "set", "hd0", "alias", "uplink"]);
    host.sh(&["ip", "link", "set", "hd0", "up"]);
    (host, ctr)
}

/// The state of a link that matters here: name, alias, admin up, MAC, global addresses.
pub(crate) fn state(ns: &Netns, name: &str) -> Option<Value> {
    let link = ns.link(name)?;
    let up = link["flags"].as_array().is_some_and(|f| f.contains(&json!("UP")));
    let mut addrs = ns.addrs(name);
    addrs.sort();
    Some(json!({
        "name": link["ifname"], "alias": link.get("ifalias").cloned().unwrap_or(Value::Null), "up": up,
        "mac": link["address"], "addrs": addrs
    }))
}

/// The configuration `{"cniVersion", "name": "hdroot", "type": "host-device"} + extra`.
pub(crate) fn conf(version: &str, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version, "name": "hdroot", "type": "host-device"});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

/// `conf` with `prevResult`.
pub(crate) fn with_prev(c: &Value, r: &Value) -> Value {
    let mut c = c.clone();
    c["prevResult"] = r.clone();
    c
}
