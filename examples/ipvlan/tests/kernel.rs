//! Debian's Go `ipvlan` (v1.1.1) and ours on the real kernel, in twin throwaway namespace
//! pairs. The test kernel has no ipvlan support (`CONFIG_IPVLAN`), so an ADD that gets as far
//! as creating the link fails there; these tests compare the error objects of both plugins
//! (the link behaviour itself is covered on the fake, `fake_only_*` in `src/tests.rs`). On a
//! kernel with ipvlan, the same ADDs succeed and their results are compared instead. Needs root
//! and Debian's Go plugins (`/usr/lib/cni`).

use cni_test_support::{Call, Netns, go, leases};
use serde_json::{Value, json};

const OURS: &str = env!("CARGO_BIN_EXE_ipvlan");

type Setup<'a> = &'a dyn Fn(&Netns, &Netns);
type Tweak<'a> = &'a dyn Fn(Call) -> Call;

/// Whether this kernel can create an ipvlan (probed in a throwaway namespace).
fn kernel_has_ipvlan() -> bool {
    let ns = Netns::new("ipvprobe");
    ns.sh(&["ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1"]);
    ns.try_sh(&["ip", "link", "add", "link", "p0", "name", "probe0", "type", "ipvlan"]).status.success()
}

fn uplink(host: &Netns) {
    host.sh(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    host.sh(&["ip", "link", "set", "up0", "up"]);
    host.sh(&["ip", "link", "set", "up0p", "up"]);
    host.sh(&["ip", "addr", "add", "10.216.210.2/24", "dev", "up0"]);
    host.sh(&["ip", "route", "add", "default", "via", "10.216.210.1"]);
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
    let host = Netns::new("ipvhost");
    let ctr = Netns::new("ipvctr");
    uplink(&host);
    setup(&host, &ctr);
    let data = tempfile::tempdir().unwrap();
    let mut conf = conf.clone();
    if conf["ipam"]["type"] == "host-local" {
        conf["ipam"]["dataDir"] = json!(data.path());
    }
    let out = tweak(Call::new(bin, cmd, &conf, "ipvdiff").in_ns(&host).netns(&ctr)).run();
    let doc = if out.stdout.trim().is_empty() { Value::Null } else { out.doc() };
    json!({
        "ok": out.success(),
        "out": normalize(&doc),
        "links": ctr.link_names(),
        "leases": leases(data.path(), "ipvdiff"),
    })
}

fn both(cmd: &str, conf: &Value, setup: Setup<'_>, tweak: Tweak<'_>) -> (Value, Value) {
    (run(go::plugin("ipvlan").to_str().unwrap(), cmd, conf, setup, tweak), run(OURS, cmd, conf, setup, tweak))
}

fn base(version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": "ipvdiff", "type": "ipvlan", "master": "up0",
        "ipam": {"type": "host-local", "subnet": "10.216.211.0/24"}
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
fn kernel_without_ipvlan_same_add_outcome_as_go() {
    let has_ipvlan = kernel_has_ipvlan();
    let mut diffs = Vec::new();
    for version in ["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
        for extra in [json!({}), json!({"mode": "l3", "mtu": 1400}), json!({"mode": "l3s"})] {
            let c = base(version, extra);
            let (go, ours) = both("ADD", &c, &nothing, &same);
            if !has_ipvlan {
                assert_eq!(go["out"]["msg"], "failed to create ipvlan: operation not supported", "{go}");
            }
            // Error objects: code, msg and details (ours also carry the spec's `cniVersion`).
            let differs = if go["ok"] == true { go["out"] != ours["out"] } else { error_of(&go) != error_of(&ours) };
            if go["ok"] != ours["ok"] || differs {
                diffs.push(format!("{c}:\n  go:   {go}\n  ours: {ours}"));
            }
            // Ours leaves nothing (Go's link never existed here either).
            if !has_ipvlan {
                assert_eq!(ours["links"], json!([]), "{c}");
                assert_eq!(ours["leases"], json!([]), "{c}");
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn kernel_without_ipvlan_same_errors_as_go() {
    let no_default = |host: &Netns, _: &Netns| {
        host.sh(&["ip", "route", "del", "default"]);
    };
    let mut no_master = base("1.0.0", json!({}));
    no_master.as_object_mut().unwrap().remove("master");
    let mut chained = no_master.clone();
    chained["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "a"}, {"name": "b"}]});
    let mut chained_ok = no_master.clone();
    chained_ok["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "up0"}]});
    let cases: Vec<(&str, Value, Setup<'_>, Tweak<'_>)> = vec![
        ("unknown mode", base("1.0.0", json!({"mode": "l4"})), &nothing, &same),
        ("missing master", base("1.0.0", json!({"master": "nope0"})), &nothing, &same),
        ("default master", no_master.clone(), &nothing, &same),
        ("no default route", no_master, &no_default, &same),
        ("chained master failure", chained, &nothing, &same),
        ("chained master", chained_ok, &nothing, &same),
        ("link in container, master missing there", base("1.0.0", json!({"linkInContainer": true})), &nothing, &same),
        ("missing netns", base("1.0.0", json!({})), &nothing, &|c: Call| {
            c.netns_path("/var/run/netns/cnitest-ipv-gone")
        }),
    ];
    let mut diffs = Vec::new();
    for (what, c, setup, tweak) in cases {
        // Debian's Go ipvlan predates `linkInContainer` and ignores it.
        if what.starts_with("link in container") {
            let ours = run(OURS, "ADD", &c, setup, tweak);
            assert_eq!(ours["out"]["msg"], "failed to lookup master \"up0\": Link not found", "{ours}");
            continue;
        }
        let (go, ours) = both("ADD", &c, setup, tweak);
        assert_eq!(go["ok"], false, "{what}: {go}");
        if error_of(&go) != error_of(&ours) {
            diffs.push(format!("{what}:\n  go:   {}\n  ours: {}", go["out"], ours["out"]));
        }
        assert_eq!((&ours["links"], &ours["leases"]), (&json!([]), &json!([])), "{what}");
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // CHECK without a prevResult (no IPAM to ask first); CHECK of an attachment that is not there.
    let mut c = base("1.0.0", json!({}));
    c.as_object_mut().unwrap().remove("ipam");
    let (go, ours) = both("CHECK", &c, &nothing, &same);
    assert_eq!(error_of(&go), error_of(&ours));
    assert_eq!(go["out"]["msg"], "Required prevResult missing");
    let mut prev = c.clone();
    prev["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/elsewhere"}]});
    let (go, ours) = both("CHECK", &prev, &nothing, &same);
    let head = |v: &Value| v["out"]["msg"].as_str().unwrap().split(": ").next().unwrap().to_owned();
    assert_eq!(head(&go), head(&ours));
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn del_on_the_kernel_is_idempotent_where_go_fails_it_is_not() {
    // Nothing to delete: both succeed (and release nothing).
    let c = base("1.0.0", json!({}));
    let (go, ours) = both("DEL", &c, &nothing, &same);
    assert_eq!((&go["ok"], &ours["ok"]), (&json!(true), &json!(true)), "{go} {ours}");
    let (go, ours) = both("DEL", &c, &nothing, &|c: Call| c.netns_path("/var/run/netns/cnitest-ipv-gone"));
    assert_eq!((&go["ok"], &ours["ok"]), (&json!(true), &json!(true)), "{go} {ours}");
    // No master and no default route: Go's DEL defaults the master and fails; ours succeeds.
    let no_default = |host: &Netns, _: &Netns| {
        host.sh(&["ip", "route", "del", "default"]);
    };
    let mut no_master = c.clone();
    no_master.as_object_mut().unwrap().remove("master");
    let (go, ours) = both("DEL", &no_master, &no_default, &same);
    assert_eq!(go["out"]["msg"], "no default route interface found");
    assert_eq!(ours["ok"], true, "{ours}");
}
