//! Differential tests: Debian's Go `macvlan` (v1.1.1) and ours get the same requests in twin
//! namespace pairs; results (MACs and sandbox paths masked), kernel state and error objects
//! must match, except where Go has a documented bug this plugin does not copy. Needs root and
//! Debian's Go plugins (`/usr/lib/cni`).

use cni_test_support::{Call, Netns, go};
use serde_json::{Value, json};

const OURS: &str = env!("CARGO_BIN_EXE_macvlan");

/// A setup step run in the (host, container) namespaces before the call.
type Setup<'a> = &'a dyn Fn(&Netns, &Netns);

/// A change to the invocation.
type Tweak<'a> = &'a dyn Fn(Call) -> Call;

fn uplink(host: &Netns, _: &Netns) {
    host.sh(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    host.sh(&["ip", "link", "set", "up0", "mtu", "1500", "up"]);
    host.sh(&["ip", "link", "set", "up0p", "up"]);
    host.sh(&["ip", "addr", "add", "10.216.200.2/24", "dev", "up0"]);
    host.sh(&["ip", "route", "add", "default", "via", "10.216.200.1"]);
}

/// Masks what differs by design: MACs (random) and the sandbox path (namespace names); Go
/// prints an empty `"dns": {}` that we omit.
fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    if v.get("dns") == Some(&json!({})) {
        v.as_object_mut().unwrap().remove("dns");
    }
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            if i.get("mac").is_some() {
                i["mac"] = json!("MAC");
            }
            if i.get("sandbox").is_some() {
                i["sandbox"] = json!("SANDBOX");
            }
        }
    }
    v
}

/// What one run produced: exit status, output and the container's state.
fn run(bin: &str, cmd: &str, conf: &Value, setup: Setup<'_>, tweak: Tweak<'_>) -> Value {
    let host = Netns::new("mvdhost");
    let ctr = Netns::new("mvdctr");
    uplink(&host, &ctr);
    setup(&host, &ctr);
    let data = tempfile::tempdir().unwrap();
    let mut conf = conf.clone();
    if conf["ipam"]["type"] == "host-local" {
        conf["ipam"]["dataDir"] = json!(data.path());
    }
    let call = tweak(Call::new(bin, cmd, &conf, "mvdiff").in_ns(&host).netns(&ctr));
    let out = call.run();
    let doc = if out.stdout.trim().is_empty() { Value::Null } else { out.doc() };
    let eth0 = ctr.link("eth0").map(|l| {
        json!({
            "kind": l["linkinfo"]["info_kind"],
            "mode": l["linkinfo"]["info_data"]["mode"],
            "mtu": l["mtu"],
            "up": l["flags"].as_array().unwrap().contains(&json!("UP")),
            "on_uplink": l["link_index"] == host.link("up0").unwrap()["ifindex"],
            "mac_is_result_mac": doc["interfaces"][0]["mac"] == l["address"],
        })
    });
    let mut routes: Vec<String> = ctr.routes4().iter().map(Value::to_string).collect();
    routes.sort();
    json!({
        "ok": out.success(),
        "out": normalize(&doc),
        "eth0": eth0,
        "addrs": if ctr.link("eth0").is_some() { ctr.addrs("eth0") } else { vec![] },
        "routes": routes,
        "links": ctr.link_names(),
    })
}

fn both(cmd: &str, conf: &Value, setup: Setup<'_>, tweak: Tweak<'_>) -> (Value, Value) {
    let go = run(go::plugin("macvlan").to_str().unwrap(), cmd, conf, setup, tweak);
    let ours = run(OURS, cmd, conf, setup, tweak);
    (go, ours)
}

fn base(version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": "mvdiff", "type": "macvlan", "master": "up0",
        "ipam": {"type": "host-local", "subnet": "10.216.201.0/24", "routes": [{"dst": "10.216.128.0/17"}]}
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn nothing(_: &Netns, _: &Netns) {}

fn same(c: Call) -> Call {
    c
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn same_results_as_go_macvlan() {
    let l2 = |version: &str| json!({"cniVersion": version, "name": "mvdiff", "type": "macvlan", "master": "up0"});
    let mut cases = Vec::new();
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        cases.push(base(version, json!({})));
        cases.push(base(version, json!({"mode": "private", "mtu": 1400})));
        cases.push(base(version, json!({"dns": {"nameservers": ["10.216.201.53"], "search": ["example.test"]}})));
        cases.push(base(version, json!({"mac": "0a:58:0a:d8:c9:05", "mode": "vepa"})));
    }
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        cases.push(l2(version));
        cases.push(json!({"cniVersion": version, "name": "mvdiff", "type": "macvlan", "mode": "passthru"}));
        cases.push(base(version, json!({"MASTER": "up0", "Mode": "vepa", "MTU": 1280})));
        cases.push(base(version, json!({"runtimeConfig": {"mac": "0a:58:0a:d8:c9:06"}})));
    }
    let mut diffs = Vec::new();
    for c in &cases {
        let (go, ours) = both("ADD", c, &nothing, &same);
        assert_eq!(go["ok"], true, "Go failed for {c}: {go}");
        if go != ours {
            diffs.push(format!("{c}:\n  go:   {go}\n  ours: {ours}"));
        }
    }
    // CNI_ARGS MAC.
    let c = base("1.0.0", json!({}));
    let args = |call: Call| call.args("IgnoreUnknown=1;MAC=0a:58:0a:d8:c9:07;K8S_POD_NAME=p");
    let (go, ours) = both("ADD", &c, &nothing, &args);
    if go != ours {
        diffs.push(format!("CNI_ARGS MAC:\n  go:   {go}\n  ours: {ours}"));
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn same_errors_as_go_macvlan() {
    let no_default = |host: &Netns, _: &Netns| {
        host.sh(&["ip", "route", "del", "default"]);
    };
    let eth0_taken = |_: &Netns, ctr: &Netns| {
        ctr.sh(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
    };
    let no_master_key = {
        let mut c = base("1.0.0", json!({}));
        c.as_object_mut().unwrap().remove("master");
        c
    };
    let cases: Vec<(&str, Value, Setup<'_>, Tweak<'_>)> = vec![
        ("unknown mode", base("1.0.0", json!({"mode": "source"})), &nothing, &same),
        ("MTU above the master's", base("1.0.0", json!({"mtu": 9000})), &nothing, &same),
        ("negative MTU", base("1.0.0", json!({"mtu": -5})), &nothing, &same),
        ("missing master", base("1.0.0", json!({"master": "nope0"})), &nothing, &same),
        ("bad MAC", base("1.0.0", json!({"mac": "zz"})), &nothing, &same),
        ("EUI-64 MAC", base("1.0.0", json!({"mac": "02:00:00:00:00:00:00:01"})), &nothing, &same),
        ("all-zero MAC", base("1.0.0", json!({"mac": "00:00:00:00:00:00"})), &nothing, &same),
        ("bad CNI_ARGS MAC", base("1.0.0", json!({})), &nothing, &|c: Call| c.args("MAC=0a:58")),
        ("unknown CNI_ARGS", base("1.0.0", json!({})), &nothing, &|c: Call| c.args("FOO=1")),
        ("no default route", no_master_key, &no_default, &same),
        ("interface name taken", base("1.0.0", json!({})), &eth0_taken, &same),
        ("IPAM plugin not found", base("1.0.0", json!({"ipam": {"type": "nope-ipam"}})), &nothing, &same),
        (
            "IPAM error",
            base("1.0.0", json!({"ipam": {"type": "host-local", "subnet": "10.216.201.0/33"}})),
            &nothing,
            &same,
        ),
        (
            "L2 result in 0.2.0",
            json!({"cniVersion": "0.2.0", "name": "n", "type": "macvlan", "master": "up0"}),
            &nothing,
            &same,
        ),
    ];
    let mut diffs = Vec::new();
    for (what, c, setup, tweak) in cases {
        let (go, ours) = both("ADD", &c, setup, tweak);
        assert_eq!(go["ok"], false, "{what}: Go succeeded: {go}");
        let key = |v: &Value| (v["out"]["code"].clone(), v["out"]["msg"].clone(), v["out"]["details"].clone());
        if key(&go) != key(&ours) {
            diffs.push(format!("{what}:\n  go:   {}\n  ours: {}", go["out"], ours["out"]));
        }
        // Ours never leaves a link behind (Go leaves the macvlan of an L2 0.2.0 ADD).
        let expected_left: Vec<String> =
            if what == "interface name taken" { vec!["eth0p".into(), "eth0".into()] } else { vec![] };
        let mut left =
            ours["links"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect::<Vec<_>>();
        left.sort_by(|a, b| b.cmp(a));
        assert_eq!(left, expected_left, "{what}: ours left links behind");
        // Go leaks the macvlan on these paths (go-plugins-notes §1.6).
        if what == "L2 result in 0.2.0" || what == "IPAM error" {
            assert_eq!(go["links"], json!(["eth0"]), "{what}: Go no longer leaks?");
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));

    // CHECK errors.
    let c = base("1.0.0", json!({}));
    let (go, ours) = both("CHECK", &c, &nothing, &same);
    assert_eq!((&go["out"]["code"], &go["out"]["msg"]), (&ours["out"]["code"], &ours["out"]["msg"]), "no prevResult");
    let mut with_prev = c.clone();
    with_prev["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/elsewhere"}]});
    let (go, ours) = both("CHECK", &with_prev, &nothing, &same);
    assert_eq!(go["out"]["code"], 999);
    // The sandbox in the message is the (per-run) container path.
    let mask = |v: &Value| v["out"]["msg"].as_str().unwrap().split(": ").next().unwrap().to_owned();
    assert_eq!(mask(&go), mask(&ours), "{go} {ours}");

    // A namespace that does not exist: Go v1.1.1 prints a nil handle instead of the path
    // (`%!q(<nil>)`); the cause is the same.
    let gone = |c: Call| c.netns_path("/var/run/netns/cnitest-mvd-gone");
    let (go, ours) = both("ADD", &base("1.0.0", json!({})), &nothing, &gone);
    let cause = |v: &Value| v["out"]["msg"].as_str().unwrap().split_once(": ").unwrap().1.to_owned();
    assert_eq!(cause(&go), cause(&ours));
    assert_eq!(
        ours["out"]["msg"],
        r#"failed to open netns "/var/run/netns/cnitest-mvd-gone": failed to Statfs "/var/run/netns/cnitest-mvd-gone": no such file or directory"#
    );
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn del_where_go_fails_and_ours_does_not() {
    // Go v1.1.1 re-validates the master on DEL (#953, fixed upstream in v1.4.0).
    let gone_master = base("1.0.0", json!({"master": "gone0"}));
    let (go, ours) = both("DEL", &gone_master, &nothing, &same);
    assert_eq!((go["ok"].clone(), go["out"]["msg"].clone()), (json!(false), json!("Link not found")));
    assert_eq!(ours["ok"], true, "{ours}");
    // Both: DEL without anything to delete succeeds.
    let (go, ours) = both("DEL", &base("1.0.0", json!({})), &nothing, &same);
    assert_eq!((go["ok"].clone(), ours["ok"].clone()), (json!(true), json!(true)));
}
