//! The `vrf` binary and Debian's Go `vrf` (1.1.1) on this machine's kernel, which has no VRF
//! module (`CONFIG_NET_VRF`): both must answer every request with the same error object (or the
//! same success) and leave the namespace as it was. Everything that needs a VRF device is tested
//! on the fake (`src/tests.rs`, `fake_only_*`). Needs root:
//! `cargo test -p vrf -- --include-ignored`.

use cni_test_support::{Call, Netns, go};
use serde_json::{Value, json};

const OURS: &str = env!("CARGO_BIN_EXE_vrf");

/// A container with `eth0` (a veth, 10.226.95.5/24, default route) and the host namespace the
/// plugin runs in.
struct Pod {
    host: Netns,
    ns: Netns,
}

impl Pod {
    fn new() -> Self {
        let host = Netns::new("vrfh");
        let ns = Netns::new("vrfc");
        host.sh(&["ip", "link", "add", "vvrf0", "type", "veth", "peer", "name", "eth0", "netns", &ns.name]);
        ns.sh(&["ip", "link", "set", "eth0", "up"]);
        ns.sh(&["ip", "addr", "add", "10.226.95.5/24", "dev", "eth0"]);
        ns.sh(&["ip", "route", "add", "default", "via", "10.226.95.1"]);
        Self { host, ns }
    }

    fn conf(&self, version: &str, keys: Value) -> Value {
        let mut c = json!({
            "cniVersion": version, "name": "vrfnet", "type": "vrf", "vrfname": "blue",
            "prevResult": {
                "cniVersion": version,
                "interfaces": [{"name": "eth0", "sandbox": self.ns.path()}],
                "ips": [{"address": "10.226.95.5/24", "interface": 0}],
            },
        });
        c.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        c
    }

    /// The container's links (name, kind, master) and main routes.
    fn state(&self) -> Value {
        let links: Vec<Value> =
            self.ns.links().iter().map(|l| json!([l["ifname"], l["linkinfo"]["info_kind"], l["master"]])).collect();
        json!({"links": links, "routes": self.ns.routes4()})
    }
}

/// Changes the pod or the call before the request.
type Prepare = fn(&Pod, &mut Call);

/// One request: what it is, the verb, the plugin keys, the version, the preparation.
type Request = (&'static str, &'static str, Value, &'static str, Prepare);

/// Runs `cmd` with `conf` (after `prepare`) on a fresh pod: the printed document and the state.
fn run(bin: &str, cmd: &str, keys: Value, version: &str, prepare: Prepare) -> (bool, Value, Value, Value) {
    let pod = Pod::new();
    let mut call = Call::new(bin, cmd, &pod.conf(version, keys), "m3-vrf").in_ns(&pod.host).netns(&pod.ns);
    prepare(&pod, &mut call);
    let before = pod.state();
    let r = call.run();
    let mut out = if r.stdout.trim().is_empty() { Value::Null } else { r.doc() };
    if let Some(o) = out.as_object_mut() {
        if o.contains_key("code") {
            o.remove("cniVersion");
        }
        if o.get("dns") == Some(&json!({})) {
            o.remove("dns");
        }
    }
    let text = out.to_string().replace(&pod.ns.path(), "SANDBOX");
    (r.success(), serde_json::from_str(&text).unwrap(), before, pod.state())
}

#[test]
#[ignore = "needs root"]
fn without_a_vrf_module_go_and_ours_answer_the_same() {
    let go = go::plugin("vrf");
    let go = go.to_str().unwrap();
    let cases: [Request; 10] = [
        ("ADD needs the VRF module", "ADD", json!({}), "1.0.0", |_, _| {}),
        ("ADD with a table", "ADD", json!({"table": 42}), "0.4.0", |_, _| {}),
        ("ADD 0.3.1", "ADD", json!({}), "0.3.1", |_, _| {}),
        ("ADD 0.3.0", "ADD", json!({}), "0.3.0", |_, _| {}),
        ("no vrfname", "ADD", json!({"vrfname": ""}), "1.0.0", |_, _| {}),
        ("no prevResult", "ADD", json!({"prevResult": null}), "1.0.0", |_, _| {}),
        ("a link of another kind", "ADD", json!({}), "1.0.0", |p, _| {
            p.ns.sh(&["ip", "link", "add", "blue", "type", "bridge"]);
        }),
        ("DEL without a VRF", "DEL", json!({}), "1.0.0", |_, _| {}),
        ("DEL without the namespace", "DEL", json!({}), "1.0.0", |_, c| {
            c.netns = Some("/var/run/netns/cnitest-m3-vrf-never-there".into());
        }),
        ("DEL without vrfname", "DEL", json!({"vrfname": ""}), "1.0.0", |_, _| {}),
    ];
    for (what, cmd, keys, version, prepare) in cases {
        let theirs = run(go, cmd, keys.clone(), version, prepare);
        let ours = run(OURS, cmd, keys, version, prepare);
        match what {
            // Ours also supports 1.1.0, which the details list.
            "ADD 0.3.0" => {
                assert_eq!((ours.0, &ours.1["code"], &ours.1["msg"]), (theirs.0, &theirs.1["code"], &theirs.1["msg"]));
            }
            _ => assert_eq!((ours.0, &ours.1), (theirs.0, &theirs.1), "{what}"),
        }
        // Nothing changed in the container, by either.
        assert_eq!(ours.3, ours.2, "{what}");
        assert_eq!(theirs.3, theirs.2, "{what}");
    }
    // The exact refusal of this kernel.
    let (_, out, ..) = run(OURS, "ADD", json!({}), "1.0.0", |_, _| {});
    assert_eq!(out, json!({"code": 999, "msg": "cmdAdd failed: could not add VRF blue: operation not supported"}));
}

/// Go 1.1.1's CHECK discards its own verdict (bug B19): it succeeds although no VRF exists.
/// Ours reports it (as Go v1.3.0+).
#[test]
#[ignore = "needs root"]
fn check_without_the_vrf() {
    let go = go::plugin("vrf");
    let (ok, out, ..) = run(go.to_str().unwrap(), "CHECK", json!({}), "1.0.0", |_, _| {});
    assert!(ok, "{out}");
    let (ok, out, ..) = run(OURS, "CHECK", json!({}), "1.0.0", |_, _| {});
    assert!(!ok);
    assert_eq!(out, json!({"code": 999, "msg": "Link not found"}));
}
