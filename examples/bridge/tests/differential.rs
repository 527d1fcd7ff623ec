//! Differential tests: Debian's Go `bridge` and ours get the same requests in twin namespaces;
//! results (with generated names and MACs masked) and error messages must match. Needs root and
//! Debian's Go plugins (`/usr/lib/cni`).

use cni_test_support::go::PLUGIN_DIR as GO_PLUGINS;
use cni_test_support::{Call, Netns};
use serde_json::{Value, json};

const OURS: &str = env!("CARGO_BIN_EXE_bridge");

fn go_bridge() -> String {
    format!("{GO_PLUGINS}/bridge")
}

/// Masks what differs between two runs by design: random veth names and MACs.
fn mask(v: &Value) -> Value {
    let mut v = v.clone();
    // Go prints an empty `"dns": {}` in 0.x results; we omit it (semantically equal).
    if v.get("dns") == Some(&json!({})) {
        v.as_object_mut().unwrap().remove("dns");
    }
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            if i.get("mac").is_some() {
                i["mac"] = json!("MAC");
            }
            if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                i["name"] = json!("VETH");
            }
        }
    }
    v
}

/// Runs `cmd` with `conf` through both plugins, each in its own host/container namespaces
/// prepared by `setup`, and returns (Go's output, ours).
fn both(cmd: &str, conf: &Value, setup: impl Fn(&Netns, &Netns)) -> (Value, Value) {
    both_with(cmd, conf, setup, |_| {})
}

/// A change to an invocation.
type Tweak = dyn Fn(&mut Call);

/// [`both`], with a change to the invocation (environment).
fn both_with(cmd: &str, conf: &Value, setup: impl Fn(&Netns, &Netns), tweak: impl Fn(&mut Call)) -> (Value, Value) {
    let mut outs = Vec::new();
    for bin in [go_bridge(), OURS.to_owned()] {
        let host = Netns::new("dfhost");
        let ctr = Netns::new("dfctr");
        setup(&host, &ctr);
        let data = tempfile::tempdir().unwrap();
        let mut conf = conf.clone();
        if conf.get("ipam").is_some() {
            conf["ipam"]["dataDir"] = json!(data.path());
        }
        let mut call = Call::new(&bin, cmd, &conf, "diff").in_ns(&host).netns(&ctr);
        tweak(&mut call);
        let out = call.run();
        let v: Value = if out.stdout.is_empty() { Value::Null } else { serde_json::from_str(&out.stdout).unwrap() };
        let mut v = mask(&v);
        // The container's sandbox path differs by namespace name.
        if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
            for i in ifs {
                if i.get("sandbox").is_some() {
                    i["sandbox"] = json!("SANDBOX");
                }
            }
        }
        let mut ctr_routes: Vec<String> = ctr.routes4().iter().map(Value::to_string).collect();
        ctr_routes.sort();
        let mut br_addrs = if host.link("cnitest-br30").is_some() { host.addrs("cnitest-br30") } else { vec![] };
        br_addrs.sort();
        outs.push(json!({
            "ok": out.success(),
            "out": v,
            "ctr_routes": ctr_routes,
            "ctr_addrs": if ctr.link("eth0").is_some() { ctr.addrs("eth0") } else { vec![] },
            "br_addrs": br_addrs,
            "nat": host.cni_nat_rules().len(),
            "forwarding": host.sysctl("net.ipv4.ip_forward"),
        }));
    }
    (outs[0].clone(), outs[1].clone())
}

fn base(version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": "difftest", "type": "bridge", "bridge": "cnitest-br30",
        "ipam": {"type": "host-local", "subnet": "10.250.30.0/24", "routes": [{"dst": "0.0.0.0/0"}]}
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn same_results_as_go_bridge() {
    let nothing = |_: &Netns, _: &Netns| {};
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        for extra in [
            json!({}),
            json!({"isGateway": true}),
            json!({"isDefaultGateway": true, "ipam": {"type": "host-local", "subnet": "10.250.30.0/24"}}),
            json!({"ipMasq": true, "mtu": 1400, "hairpinMode": true}),
            json!({"dns": {"nameservers": ["10.250.30.53"], "search": ["example.test"]}}),
        ] {
            let (go, ours) = both("ADD", &base(version, extra.clone()), nothing);
            assert_eq!(go, ours, "{version} {extra}");
        }
    }
    // Layer 2 only (1.0.0: no IPs; 0.2.0: Go fails to convert, so do we).
    for version in ["0.2.0", "1.0.0"] {
        let c = json!({"cniVersion": version, "name": "difftest", "type": "bridge", "bridge": "cnitest-br30"});
        let (go, ours) = both("ADD", &c, nothing);
        assert_eq!(go["ok"], ours["ok"], "{version}: {go} {ours}");
        if go["ok"] == true {
            assert_eq!(go, ours, "{version}");
        }
    }
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn same_errors_as_go_bridge() {
    let nothing = |_: &Netns, _: &Netns| {};
    let cases = [
        json!({"vlan": 4095}),
        json!({"vlan": -3}),
        json!({"hairpinMode": true, "promiscMode": true}),
        // (`vlanTrunk` checks are upstream's; Debian's Go build predates the key, so the unit
        // tests cover those messages.)
    ];
    let mut diffs = Vec::new();
    for extra in cases {
        let (go, ours) = both("ADD", &base("1.0.0", extra.clone()), nothing);
        if go["out"]["msg"] != ours["out"]["msg"] || go["out"]["code"] != ours["out"]["code"] {
            diffs.push(format!("{extra}:\n  go:   {go}\n  ours: {ours}"));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // A link of the bridge's name that is not a bridge.
    let veth = |host: &Netns, _: &Netns| {
        host.sh(&["ip", "link", "add", "cnitest-br30", "type", "veth", "peer", "name", "cnitest-p30"]);
    };
    let (go, ours) = both("ADD", &base("1.0.0", json!({})), veth);
    assert_eq!(go["out"]["msg"], ours["out"]["msg"]);
    // A bridge with another address and isGateway.
    let addr = |host: &Netns, _: &Netns| {
        host.sh(&["ip", "link", "add", "cnitest-br30", "type", "bridge"]);
        host.sh(&["ip", "addr", "add", "10.250.99.1/24", "dev", "cnitest-br30"]);
    };
    let (go, ours) = both("ADD", &base("1.0.0", json!({"isGateway": true})), addr);
    assert_eq!(go["out"]["msg"], ours["out"]["msg"]);
    // Environment problems.
    let tweaks: [(&str, Box<Tweak>); 3] = [
        ("unknown CNI_ARGS", Box::new(|c: &mut Call| c.args = Some("FOO=bar".to_owned()))),
        ("bad MAC", Box::new(|c: &mut Call| c.args = Some("MAC=zz".to_owned()))),
        ("missing netns", Box::new(|c: &mut Call| c.netns = Some("/var/run/netns/cnitest-nope".into()))),
    ];
    for (what, tweak) in tweaks {
        let (go, ours) = both_with("ADD", &base("1.0.0", json!({})), nothing, tweak);
        assert_eq!(go["ok"], false, "{what}");
        assert_eq!((&go["out"]["code"], &go["out"]["msg"]), (&ours["out"]["code"], &ours["out"]["msg"]), "{what}");
    }
    // CHECK without prevResult.
    let (go, ours) = both("CHECK", &base("1.0.0", json!({})), nothing);
    assert_eq!(go["ok"], false);
    assert_eq!(go["out"]["code"], ours["out"]["code"]);
}
