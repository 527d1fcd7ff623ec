//! What the root, interop and differential tests share: a throwaway "host" namespace the
//! plugin runs in, a container namespace with a veth `eth0` (both ends inside it), a data dir,
//! and the link's state as `ip -d -j link` reports it.

use cni_test_support::{Call, Netns};
use serde_json::{Value, json};

/// Our binary.
pub(crate) const OURS: &str = env!("CARGO_BIN_EXE_tuning");

/// A container to tune: `host` (where the plugin runs), `ctr` with `ifname` (a veth whose peer
/// `peer0` stays in `ctr`), a backup directory and a container ID.
pub(crate) struct Pod {
    pub(crate) host: Netns,
    pub(crate) ctr: Netns,
    pub(crate) data: tempfile::TempDir,
    pub(crate) cid: String,
    pub(crate) ifname: String,
}

impl Pod {
    pub(crate) fn new(tag: &str) -> Self {
        Self::with_ifname(tag, "eth0")
    }

    pub(crate) fn with_ifname(tag: &str, ifname: &str) -> Self {
        let host = Netns::new(&format!("{tag}h"));
        let ctr = Netns::new(&format!("{tag}c"));
        ctr.sh(&["ip", "link", "add", ifname, "type", "veth", "peer", "name", "peer0"]);
        ctr.sh(&["ip", "link", "set", ifname, "up"]);
        let cid = format!("m2-{}", ctr.name);
        Self { host, ctr, data: tempfile::tempdir().unwrap(), cid, ifname: ifname.to_owned() }
    }

    /// The prevResult an interface plugin would have returned, in `version`'s format.
    pub(crate) fn prev(&self, version: &str) -> Value {
        match version {
            "0.1.0" | "0.2.0" => {
                json!({"cniVersion": version, "ip4": {"ip": "10.223.0.2/24", "gateway": "10.223.0.1"}})
            }
            "0.3.0" | "0.3.1" | "0.4.0" => json!({
                "cniVersion": version,
                "interfaces": [{"name": self.ifname, "mac": "0a:00:00:00:00:01", "sandbox": self.ctr.path()}],
                "ips": [{"version": "4", "address": "10.223.0.2/24", "interface": 0, "gateway": "10.223.0.1"}],
            }),
            _ => json!({
                "cniVersion": version,
                "interfaces": [{"name": self.ifname, "mac": "0a:00:00:00:00:01", "sandbox": self.ctr.path()}],
                "ips": [{"address": "10.223.0.2/24", "interface": 0, "gateway": "10.223.0.1"}],
            }),
        }
    }

    /// A configuration of network `tunenet` with the plugin keys `keys`, this pod's data dir
    /// and prevResult.
    pub(crate) fn conf(&self, version: &str, keys: Value) -> Value {
        let mut c = json!({
            "cniVersion": version, "name": "tunenet", "type": "tuning",
            "dataDir": self.data.path(), "prevResult": self.prev(version),
        });
        c.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        c
    }

    /// `cmd` of `bin` with `conf`, run in the pod's host namespace.
    pub(crate) fn call(&self, bin: &str, cmd: &str, conf: &Value) -> Call {
        Call::new(bin, cmd, conf, &self.cid).in_ns(&self.host).netns(&self.ctr).ifname(&self.ifname)
    }

    /// The link's tunable state.
    pub(crate) fn link(&self) -> Value {
        link_state(&self.ctr, &self.ifname)
    }

    /// The backup files in the data dir.
    pub(crate) fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data.path())
            .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The backup of this attachment, parsed.
    pub(crate) fn backup(&self) -> Option<Value> {
        let p = self.data.path().join(format!("{}_{}.json", self.cid, self.ifname));
        std::fs::read(p).ok().map(|b| serde_json::from_slice(&b).unwrap())
    }
}

/// `address`, `mtu`, `txqlen` and the PROMISC / ALLMULTI flags of a link (`ip -d -j link`).
pub(crate) fn link_state(ns: &Netns, ifname: &str) -> Value {
    let l = ns.link(ifname).unwrap_or_else(|| panic!("{ifname} missing in {}", ns.name));
    let flags: Vec<&str> = l["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    json!({
        "address": l["address"],
        "mtu": l["mtu"],
        "txqlen": l["txqlen"],
        "promisc": flags.contains(&"PROMISC"),
        "allmulti": flags.contains(&"ALLMULTI"),
    })
}
