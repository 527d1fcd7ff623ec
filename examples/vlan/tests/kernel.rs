//! Debian's Go `vlan` (v1.1.1) and ours on the real kernel, in twin throwaway namespace pairs.
//! The test kernel has no 802.1Q support (`CONFIG_VLAN_8021Q`), so an ADD that gets as far as
//! creating the link fails there; these tests compare the error objects of both plugins (the
//! link behaviour itself is covered on the fake, `fake_only_*` in `src/tests.rs`). On a kernel
//! with 802.1Q, the same ADDs succeed and their results are compared instead. Needs root and
//! Debian's Go plugins (`/usr/lib/cni`).

use cni_test_support::{Call, Netns, go, leases};
use serde_json::{Value, json};

const OURS: &str = env!("CARGO_BIN_EXE_vlan");

type Setup<'a> = &'a dyn Fn(&Netns, &Netns);
type Tweak<'a> = &'a dyn Fn(Call) -> Call;

/// Whether this kernel can create a VLAN device (probed in a throwaway namespace).
fn kernel_has_vlan() -> bool {
    let ns = Netns::new("vlprobe");
    ns.sh(&["ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1"]);
    ns.try_sh(&["ip", "link", "add", "link", "p0", "name", "probe0", "type", "vlan", "id", "5"]).status.success()
}

fn uplink(host: &Netns) {
    host.sh(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    host.sh(&["ip", "link", "set", "up0", "up"]);
    host.sh(&["ip", "link", "set", "up0p", "up"]);
    host.sh(&["ip", "addr", "add", "10.216.220.2/24", "dev", "up0"]);
    host.sh(&["ip", "route", "add", "default", "via", "10.216.220.1"]);
}

fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    if v.get("dns") == Some(&json!({})) {
        v.as_object_mut().unwrap().remove("dns");
    }
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            i["mac"] = json!("MAC");
            i["sandbox"] = json!("SANDBOX");
        }
    }
    v
}

/// One run: exit status, normalized output, what is left in the container, IPAM leases.
fn run(bin: &str, cmd: &str, conf: &Value, setup: Setup<'_>, tweak: Tweak<'_>) -> Value {
    let host = Netns::new("vlhost");
    let ctr = Netns::new("vlctr");
    uplink(&host);
    setup(&host, &ctr);
    let data = tempfile::tempdir().unwrap();
    let mut conf = conf.clone();
    if conf["ipam"]["type"] == "host-local" {
        conf["ipam"]["dataDir"] = json!(data.path());
    }
    let out = tweak(Call::new(bin, cmd, &conf, "vldiff").in_ns(&host).netns(&ctr)).run();
    let doc = if out.stdout.trim().is_empty() { Value::Null } else { out.doc() };
    json!({
        "ok": out.success(),
        "out": normalize(&doc),
        "links": ctr.link_names(),
        "leases": leases(data.path(), "vldiff"),
    })
}

fn both(cmd: &str, conf: &Value, setup: Setup<'_>, tweak: Tweak<'_>) -> (Value, Value) {
    (run(go::plugin("vlan").to_str().unwrap(), cmd, conf, setup, tweak), run(OURS, cmd, conf, setup, tweak))
}

fn base(version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": "vldiff", "type": "vlan", "master": "up0", "vlanId": 100,
        "ipam": {"type": "host-local", "subnet": "10.216.221.0/24"}
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn nothing(_: &Netns, _: &Netns) {}

fn same(c: Call) -> Call {
    c
}

/// Both plugins' error object (code, msg, details).
fn error_of(v: &Value) -> Value {
    json!([v["out"]["code"], v["out"]["msg"], v["out"]["details"]])
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn kernel_without_vlan_same_add_outcome_as_go() {
    let has_vlan = kernel_has_vlan();
    let mut diffs = Vec::new();
    for version in ["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
        for extra in [json!({}), json!({"vlanId": 0, "mtu": 1400}), json!({"vlanId": 4094})] {
            let c = base(version, extra);
            let (go, ours) = both("ADD", &c, &nothing, &same);
            if !has_vlan {
                assert_eq!(go["out"]["msg"], "failed to create vlan: operation not supported", "{go}");
            }
            // Error objects: code, msg and details (ours also carry the spec's `cniVersion`).
            let differs = if go["ok"] == true { go["out"] != ours["out"] } else { error_of(&go) != error_of(&ours) };
            if go["ok"] != ours["ok"] || differs {
                diffs.push(format!("{c}:\n  go:   {go}\n  ours: {ours}"));
            }
            // Ours leaves nothing (Go's link never existed here either).
            if !has_vlan {
                assert_eq!(ours["links"], json!([]), "{c}");
                assert_eq!(ours["leases"], json!([]), "{c}");
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn kernel_without_vlan_same_errors_as_go() {
    let mut no_master = base("1.0.0", json!({}));
    no_master.as_object_mut().unwrap().remove("master");
    let mut no_ipam = base("1.0.0", json!({}));
    no_ipam.as_object_mut().unwrap().remove("ipam");
    let cases: Vec<(&str, Value, Tweak<'_>)> = vec![
        ("no master key", no_master, &same),
        ("missing master", base("1.0.0", json!({"master": "nope0"})), &same),
        ("MTU above the master's", base("1.0.0", json!({"mtu": 1501})), &same),
        ("negative MTU", base("1.0.0", json!({"mtu": -1})), &same),
        ("no IPAM", no_ipam, &same),
        ("missing netns", base("1.0.0", json!({})), &|c: Call| c.netns_path("/var/run/netns/cnitest-vl-gone")),
    ];
    let mut diffs = Vec::new();
    for (what, c, tweak) in cases {
        let (go, ours) = both("ADD", &c, &nothing, tweak);
        assert_eq!(go["ok"], false, "{what}: {go}");
        if error_of(&go) != error_of(&ours) {
            diffs.push(format!("{what}:\n  go:   {}\n  ours: {}", go["out"], ours["out"]));
        }
        assert_eq!((&ours["links"], &ours["leases"]), (&json!([]), &json!([])), "{what}");
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Go's range text says 4095 while refusing it (go-plugins-notes B31); ours says 4094.
    for id in [4095, -1] {
        let (go, ours) = both("ADD", &base("1.0.0", json!({"vlanId": id})), &nothing, &same);
        assert_eq!(go["out"]["msg"], format!("invalid VLAN ID {id} (must be between 0 and 4095 inclusive)"));
        assert_eq!(ours["out"]["msg"], format!("invalid VLAN ID {id} (must be between 0 and 4094 inclusive)"));
        assert_eq!(go["out"]["code"], ours["out"]["code"]);
    }
    // CHECK: IPAM is asked first, then the prevResult is required.
    let c = base("1.0.0", json!({}));
    let (go, ours) = both("CHECK", &c, &nothing, &same);
    assert_eq!(error_of(&go), error_of(&ours));
    let mut prev = c.clone();
    prev["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/elsewhere"}]});
    let (go, ours) = both("CHECK", &prev, &nothing, &same);
    assert_eq!(error_of(&go), error_of(&ours));
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn del_on_the_kernel_is_idempotent_where_go_fails_it_is_not() {
    let c = base("1.0.0", json!({}));
    let (go, ours) = both("DEL", &c, &nothing, &same);
    assert_eq!((&go["ok"], &ours["ok"]), (&json!(true), &json!(true)), "{go} {ours}");
    let (go, ours) = both("DEL", &c, &nothing, &|c: Call| c.netns_path("/var/run/netns/cnitest-vl-gone"));
    assert_eq!((&go["ok"], &ours["ok"]), (&json!(true), &json!(true)), "{go} {ours}");
    // The master is gone: Go's DEL reads its MTU and fails (B6).
    let (go, ours) = both("DEL", &base("1.0.0", json!({"master": "gone0"})), &nothing, &same);
    assert_eq!(go["out"]["msg"], "Link not found");
    assert_eq!(ours["ok"], true, "{ours}");
    // No IPAM type: Go's DEL fails, so the link of a failed ADD could never be deleted.
    let mut no_ipam = c.clone();
    no_ipam.as_object_mut().unwrap().remove("ipam");
    let (go, ours) = both("DEL", &no_ipam, &nothing, &same);
    assert_eq!(go["out"]["msg"], "no plugin name provided");
    assert_eq!(ours["ok"], true, "{ours}");
}
