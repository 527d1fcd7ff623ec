//! What the root, differential and interop tests share: a throwaway "host" namespace the plugin
//! runs in, pods whose `eth0` is a veth with its host end in that namespace (as bridge or ptp
//! leave it), and the kernel's traffic control state as `tc -j` reports it, normalised so that
//! Go's objects and ours compare.

use std::path::PathBuf;

use cni_test_support::{Call, Netns};
use serde_json::{Value, json};

/// Our binary.
pub(crate) const OURS: &str = env!("CARGO_BIN_EXE_bandwidth");

/// The network most tests use.
pub(crate) const NET: &str = "bwnet";

/// The host namespace the plugin runs in, with a data directory.
pub(crate) struct Host {
    pub(crate) ns: Netns,
    pub(crate) dir: tempfile::TempDir,
}

/// A container: its namespace, the host end of its veth, its container ID and subnet number.
pub(crate) struct Pod {
    pub(crate) ns: Netns,
    pub(crate) veth: String,
    pub(crate) cid: String,
    pub(crate) n: u8,
}

impl Host {
    pub(crate) fn new(tag: &str) -> Self {
        Self { ns: Netns::new(tag), dir: tempfile::tempdir().unwrap() }
    }

    /// A pod on 10.226.`n`.0/24: `eth0` (.2) in its namespace, `vbw<n>` (.1, MTU 1400) here.
    pub(crate) fn pod(&self, n: u8) -> Pod {
        let ns = Netns::new("bwpod");
        let veth = format!("vbw{n}");
        self.ns.sh(&[
            "ip", "link", "add", &veth, "mtu", "1400", "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        self.ns.sh(&["ip", "addr", "add", &format!("10.226.{n}.1/24"), "dev", &veth]);
        self.ns.sh(&["ip", "link", "set", &veth, "up"]);
        ns.sh(&["ip", "addr", "add", &format!("10.226.{n}.2/24"), "dev", "eth0"]);
        ns.sh(&["ip", "link", "set", "eth0", "up"]);
        let cid = format!("m3bw-{}", ns.name);
        Pod { ns, veth, cid, n }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("bandwidth")
    }

    /// A configuration of network `NET` for `pod` in `version` with the plugin keys `keys`
    /// and the prevResult bridge would have returned.
    pub(crate) fn conf(&self, pod: &Pod, version: &str, keys: Value) -> Value {
        let mut c = json!({
            "cniVersion": version, "name": NET, "type": "bandwidth",
            "dataDir": self.data_dir(), "prevResult": pod.prev(version),
        });
        c.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        c
    }

    /// `cmd` of `bin` with `conf` for `pod`, run in this namespace.
    pub(crate) fn call(&self, bin: &str, cmd: &str, pod: &Pod, conf: &Value) -> Call {
        Call::new(bin, cmd, conf, &pod.cid).in_ns(&self.ns).netns(&pod.ns)
    }

    /// `tc -j <args>` here, as JSON.
    pub(crate) fn tc(&self, args: &[&str]) -> Value {
        let mut a = vec!["tc", "-j"];
        a.extend(args);
        let out = self.ns.sh(&a);
        if out.trim().is_empty() { json!([]) } else { serde_json::from_str(&out).unwrap() }
    }

    /// The qdiscs of `dev` as `[kind, handle, parent-or-root, rate, burst, lat]`.
    pub(crate) fn qdiscs(&self, dev: &str) -> Vec<Value> {
        self.tc(&["qdisc", "show", "dev", dev])
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                let o = &q["options"];
                json!([
                    q["kind"],
                    q["handle"],
                    if q["root"] == true { json!("root") } else { q["parent"].clone() },
                    o["rate"],
                    o["burst"],
                    o["lat"]
                ])
            })
            .collect()
    }

    /// The match rules of the filters on `dev`'s ingress qdisc, as
    /// `[pref, protocol, flowid, match value/mask, [distinct mirred actions]]`. Go's netlink
    /// library installs the same redirect twice (the second never runs); distinct actions
    /// compare.
    pub(crate) fn ingress_filters(&self, dev: &str) -> Vec<Value> {
        self.tc(&["filter", "show", "dev", dev, "ingress"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["options"]["actions"].is_array())
            .map(|f| {
                let o = &f["options"];
                let mut actions: Vec<Value> = o["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| json!([a["kind"], a["mirred_action"], a["direction"], a["to_dev"]]))
                    .collect();
                actions.dedup();
                json!([f["pref"], f["protocol"], o["flowid"], o["match"]["value"], o["match"]["mask"], actions])
            })
            .collect()
    }

    /// The `bwp…` links here as `[name, kind, mtu, txqlen, up]`.
    pub(crate) fn ifbs(&self) -> Vec<Value> {
        self.ns
            .links()
            .iter()
            .filter(|l| l["ifname"].as_str().unwrap_or_default().starts_with("bwp"))
            .map(|l| {
                let up = l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
                json!([l["ifname"], l["linkinfo"]["info_kind"], l["mtu"], l["txqlen"].as_u64().unwrap_or(0), up])
            })
            .collect()
    }

    /// Packets sent by the root qdisc of `dev` (`tc -s`).
    pub(crate) fn sent_packets(&self, dev: &str) -> u64 {
        self.tc(&["-s", "qdisc", "show", "dev", dev])
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["root"] == true)
            .and_then(|q| q["packets"].as_u64())
            .unwrap_or(0)
    }

    /// The attachment records of `NET`.
    pub(crate) fn records(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data_dir().join(NET))
            .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Pod {
    /// What bridge returns for this pod, in `version`'s format.
    pub(crate) fn prev(&self, version: &str) -> Value {
        let mut ip = json!({"address": format!("10.226.{}.2/24", self.n), "interface": 1});
        if version.starts_with("0.") {
            ip["version"] = json!("4");
        }
        json!({
            "cniVersion": version,
            "interfaces": [{"name": self.veth}, {"name": "eth0", "sandbox": self.ns.path()}],
            "ips": [ip],
        })
    }

    /// Sends three UDP datagrams from the container to the host end (with the ARP exchange and
    /// the host's ICMP answers, traffic through both directions' shaping).
    pub(crate) fn send_to_host(&self) {
        let to = format!("/dev/udp/10.226.{}.1/9", self.n);
        for _ in 0..3 {
            self.ns.sh(&["bash", "-c", &format!("echo shaped > {to}")]);
        }
    }
}
