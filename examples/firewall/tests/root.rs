//! The real `firewall` binary in throwaway namespaces: a "host" namespace where the plugin runs
//! (so every rule lives there) with a real bridge and containers made by Go's bridge plugin,
//! compared with Go's firewall plugin (Debian 1.1.1), which also removes our rules and whose
//! rules we remove. Needs root: `cargo test -p firewall -- --include-ignored`. Subnets
//! 10.222.0.0/16 and fd00:222::/32.

use std::path::Path;

use cni_test_support::{Call, Netns, go};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_firewall");
const NET: &str = "fwroot";
const BRIDGE: &str = "fwr-br0";

struct Host {
    ns: Netns,
    dir: tempfile::TempDir,
    i: u8,
}

struct Pod {
    ns: Netns,
    cid: String,
    result: Value,
}

impl Host {
    fn new(i: u8) -> Self {
        Self { ns: Netns::new("fwhost"), dir: tempfile::tempdir().unwrap(), i }
    }

    fn pod(&self, cid: &str) -> Pod {
        let ns = Netns::new("fwc");
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "dataDir": self.dir.path().join("ipam"),
                "ranges": [[{"subnet": format!("10.222.{}.0/24", self.i)}], [{"subnet": format!("fd00:222:{}::/64", self.i)}]]
            }
        });
        let result = Call::new(go::plugin("bridge"), "ADD", &conf, cid).in_ns(&self.ns).netns(&ns).ok();
        Pod { ns, cid: cid.to_owned(), result }
    }

    fn conf(&self, pod: &Pod, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "firewall",
            "dataDir": self.dir.path().join("firewall"),
            "prevResult": pod.result,
        });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    fn call(&self, bin: impl AsRef<Path>, cmd: &str, pod: &Pod, conf: &Value) -> Call {
        Call::new(bin, cmd, conf, &pod.cid).in_ns(&self.ns).netns(&pod.ns)
    }

    /// `iptables -t filter -S` (or ip6tables), sorted.
    fn filter(&self, v6: bool) -> Vec<String> {
        let tool = if v6 { "ip6tables" } else { "iptables" };
        let mut v: Vec<String> = self.ns.sh(&[tool, "-w", "-t", "filter", "-S"]).lines().map(str::to_owned).collect();
        v.sort();
        v
    }

    /// The filter lines of both families that mention the pod's addresses.
    fn rules_of(&self, pod: &Pod) -> Vec<String> {
        let mut all = self.filter(false);
        all.extend(self.filter(true));
        all.into_iter().filter(|l| pod.addrs().iter().any(|a| l.contains(&format!("{a}/")))).collect()
    }
}

impl Pod {
    fn addrs(&self) -> Vec<String> {
        self.result["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["address"].as_str().unwrap().split('/').next().unwrap().to_owned())
            .collect()
    }
}

#[test]
#[ignore = "needs root"]
fn rules_are_gos_check_passes_and_del_leaves_nothing() {
    let host = Host::new(60);
    let pod = host.pod("fw-root-1");
    let conf = host.conf(&pod, json!({"ingressPolicy": "same-bridge"}));
    // Go's rules as the reference.
    host.call(go::plugin("firewall"), "ADD", &pod, &conf).ok();
    let go = (host.filter(false), host.filter(true));
    assert_eq!(host.rules_of(&pod).len(), 4, "two rules per address");
    host.call(go::plugin("firewall"), "DEL", &pod, &conf).ok();
    assert!(host.rules_of(&pod).is_empty());

    let r = host.call(BIN, "ADD", &pod, &conf).ok();
    assert_eq!(r["ips"], pod.result["ips"], "prevResult passes through");
    assert_eq!((host.filter(false), host.filter(true)), go, "the same rules as Go's firewall plugin");
    host.call(BIN, "CHECK", &pod, &conf).ok();
    host.call(BIN, "DEL", &pod, &conf).ok();
    assert!(host.rules_of(&pod).is_empty(), "{:?}", host.rules_of(&pod));
    host.call(BIN, "DEL", &pod, &conf).ok();
    let e = host.call(BIN, "CHECK", &pod, &conf).err();
    assert!(e["msg"].as_str().unwrap().starts_with("expected rule [-d 10.222.60."), "{e}");

    // A fresh namespace: our rules alone are exactly Go's too (chains created in order).
    let host2 = Host::new(61);
    let pod2 = host2.pod("fw-root-2");
    let conf2 = host2.conf(&pod2, json!({"ingressPolicy": "same-bridge"}));
    host2.call(BIN, "ADD", &pod2, &conf2).ok();
    let ours = (host2.filter(false), host2.filter(true));
    host2.call(BIN, "DEL", &pod2, &conf2).ok();
    host2.call(go::plugin("firewall"), "ADD", &pod2, &conf2).ok();
    assert_eq!((host2.filter(false), host2.filter(true)), ours);
}

#[test]
#[ignore = "needs root"]
fn go_and_ours_remove_each_others_rules() {
    let host = Host::new(62);
    let pod = host.pod("fw-go-1");
    let conf = host.conf(&pod, json!({}));
    host.call(go::plugin("firewall"), "ADD", &pod, &conf).ok();
    host.call(BIN, "CHECK", &pod, &conf).ok();
    host.call(BIN, "DEL", &pod, &conf).ok();
    assert!(host.rules_of(&pod).is_empty(), "{:?}", host.rules_of(&pod));
    host.call(BIN, "ADD", &pod, &conf).ok();
    host.call(go::plugin("firewall"), "CHECK", &pod, &conf).ok();
    host.call(go::plugin("firewall"), "DEL", &pod, &conf).ok();
    assert!(host.rules_of(&pod).is_empty(), "{:?}", host.rules_of(&pod));
}

#[test]
#[ignore = "needs root"]
fn isolated_shares_gos_same_bridge_rules_without_duplicates() {
    let host = Host::new(63);
    let a = host.pod("fw-iso-a");
    let b = host.pod("fw-iso-b");
    host.call(go::plugin("firewall"), "ADD", &a, &host.conf(&a, json!({"ingressPolicy": "same-bridge"}))).ok();
    let conf = host.conf(&b, json!({"ingressPolicy": "isolated"}));
    host.call(BIN, "ADD", &b, &conf).ok();
    let f = host.filter(false);
    let jumps: Vec<&String> =
        f.iter().filter(|l| l.starts_with("-A FORWARD") && l.ends_with("-j CNI-ISOLATION-STAGE-1")).collect();
    assert_eq!(jumps.len(), 1, "{f:?}");
    let returns = f.iter().filter(|l| l.starts_with("-A CNI-ISOLATION-STAGE-1") && l.ends_with("-j RETURN")).count();
    assert_eq!(returns, 1, "{f:?}");
    assert!(
        f.iter().any(|l| l
            == &format!(
                "-A CNI-ISOLATION-STAGE-1 -i {BRIDGE} -o {BRIDGE} -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j DROP"
            )),
        "{f:?}"
    );
    host.call(BIN, "CHECK", &b, &conf).ok();
    host.call(BIN, "DEL", &b, &conf).ok();
    assert!(host.rules_of(&b).is_empty());
    assert_eq!(host.rules_of(&a).len(), 4, "the other container's rules stay");
}

/// GC after one of two containers' runtime state was lost frees exactly its rules.
#[test]
#[ignore = "needs root"]
fn gc_frees_exactly_the_lost_container() {
    let host = Host::new(64);
    let keep = host.pod("fw-gc-keep");
    let lost = host.pod("fw-gc-lost");
    host.call(BIN, "ADD", &keep, &host.conf(&keep, json!({}))).ok();
    host.call(BIN, "ADD", &lost, &host.conf(&lost, json!({}))).ok();
    let mut other = host.conf(&lost, json!({}));
    other["name"] = json!("fwother");
    other["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.222.99.7/24"}]});
    host.call(BIN, "ADD", &lost, &other).ifname("net1").ok();
    let gc = json!({
        "cniVersion": "1.1.0",
        "name": NET,
        "type": "firewall",
        "dataDir": host.dir.path().join("firewall"),
        "cni.dev/valid-attachments": [{"containerID": keep.cid, "ifname": "eth0"}],
    });
    Call::new(BIN, "GC", &gc, "").in_ns(&host.ns).ok();
    assert!(host.rules_of(&lost).is_empty(), "{:?}", host.rules_of(&lost));
    assert_eq!(host.rules_of(&keep).len(), 4);
    assert!(host.filter(false).iter().any(|l| l.contains("10.222.99.7/32")), "another network's rules stay");
    host.call(BIN, "CHECK", &keep, &host.conf(&keep, json!({}))).ok();
}
