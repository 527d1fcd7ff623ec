//! What the root tests share: a throwaway "host" namespace the plugin runs in, pods whose
//! interfaces carry addresses and routes as an interface plugin leaves them, and the routing
//! state as `ip -j rule` and `ip -j route show table all` report it.

use cni_test_support::{Call, Netns};
use serde_json::{Value, json};

/// Our binary.
pub(crate) const OURS: &str = env!("CARGO_BIN_EXE_sbr");

/// A pod: the host namespace the plugin runs in and the container namespace.
pub(crate) struct Pod {
    pub(crate) host: Netns,
    pub(crate) ns: Netns,
    pub(crate) cid: String,
}

impl Pod {
    pub(crate) fn new(tag: &str) -> Self {
        let host = Netns::new(&format!("{tag}h"));
        let ns = Netns::new(&format!("{tag}c"));
        let cid = format!("m3sbr-{}", ns.name);
        Self { host, ns, cid }
    }

    /// Adds `ifname` (a veth whose host end stays in the host namespace) with 10.226.`n`.5/24
    /// and fd00:226:`n`::5/64, default routes through .1 and ::1 (only for `eth0`, as a
    /// container has one default route per family) and 10.99.`n`.0/24 through .1.
    pub(crate) fn interface(&self, ifname: &str, n: u8) {
        let peer = format!("vsb{n}");
        self.host.sh(&["ip", "link", "add", &peer, "type", "veth", "peer", "name", ifname, "netns", &self.ns.name]);
        self.host.sh(&["ip", "link", "set", &peer, "up"]);
        let ns = &self.ns;
        ns.sh(&["ip", "link", "set", ifname, "up"]);
        ns.sh(&["ip", "addr", "add", &format!("10.226.{n}.5/24"), "dev", ifname]);
        ns.sh(&["ip", "addr", "add", &format!("fd00:226:{n}::5/64"), "dev", ifname, "nodad"]);
        if ifname == "eth0" {
            ns.sh(&["ip", "route", "add", "default", "via", &format!("10.226.{n}.1"), "dev", ifname]);
            ns.sh(&["ip", "-6", "route", "add", "default", "via", &format!("fd00:226:{n}::1"), "dev", ifname]);
        }
        ns.sh(&["ip", "route", "add", &format!("10.99.{n}.0/24"), "via", &format!("10.226.{n}.1"), "dev", ifname]);
    }

    /// What the interface plugin returned for `ifname` on subnet `n`, in `version`'s format.
    pub(crate) fn prev(&self, version: &str, ifname: &str, n: u8) -> Value {
        if version == "0.1.0" || version == "0.2.0" {
            return json!({
                "cniVersion": version,
                "ip4": {"ip": format!("10.226.{n}.5/24"), "gateway": format!("10.226.{n}.1")},
                "ip6": {"ip": format!("fd00:226:{n}::5/64"), "gateway": format!("fd00:226:{n}::1")},
            });
        }
        let mut ips = vec![
            json!({"address": format!("10.226.{n}.5/24"), "gateway": format!("10.226.{n}.1"), "interface": 0}),
            json!({"address": format!("fd00:226:{n}::5/64"), "gateway": format!("fd00:226:{n}::1"), "interface": 0}),
        ];
        if version.starts_with("0.") {
            ips[0]["version"] = json!("4");
            ips[1]["version"] = json!("6");
        }
        json!({"cniVersion": version, "interfaces": [{"name": ifname, "sandbox": self.ns.path()}], "ips": ips})
    }

    pub(crate) fn conf(&self, version: &str, ifname: &str, n: u8, keys: Value) -> Value {
        let mut c = json!({"cniVersion": version, "name": "sbrnet", "type": "sbr", "prevResult": self.prev(version, ifname, n)});
        c.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        c
    }

    pub(crate) fn call(&self, bin: &str, cmd: &str, ifname: &str, conf: &Value) -> Call {
        Call::new(bin, cmd, conf, &self.cid).in_ns(&self.host).netns(&self.ns).ifname(ifname)
    }

    /// `ip -j rule` of both families, as `[family, priority, src, table]`.
    pub(crate) fn rules(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for (f, flag) in [("inet", "-4"), ("inet6", "-6")] {
            let v: Value = serde_json::from_str(&self.ns.sh(&["ip", "-j", flag, "rule"])).unwrap();
            for r in v.as_array().unwrap() {
                out.push(json!([f, r["priority"], r["src"], r["table"]]));
            }
        }
        out
    }

    /// `ip -j route show table all` of both families, without the local table, multicast and
    /// link-local routes: `[dst, gateway, dev, table, protocol, scope, prefsrc, metric]`.
    pub(crate) fn routes(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for flag in ["-4", "-6"] {
            let v: Value =
                serde_json::from_str(&self.ns.sh(&["ip", "-j", flag, "route", "show", "table", "all"])).unwrap();
            for r in v.as_array().unwrap() {
                let dst = r["dst"].as_str().unwrap_or_default();
                if r["table"] == "local" || r["type"] == "multicast" || dst.starts_with("ff") {
                    continue;
                }
                out.push(json!([
                    dst,
                    r["gateway"],
                    r["dev"],
                    r["table"],
                    r["protocol"],
                    r["scope"],
                    r["prefsrc"],
                    r["metric"]
                ]));
            }
        }
        out.sort_by_key(|v| v.to_string());
        out
    }
}
