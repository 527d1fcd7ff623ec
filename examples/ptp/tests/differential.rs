//! Differential tests: Debian's Go `ptp` and ours get the same requests in twin namespaces;
//! results (random veth names and MACs masked), kernel state and error messages must match.
//! Needs root and Debian's Go plugins (`/usr/lib/cni`).

use cni_test_support::go::PLUGIN_DIR as GO_PLUGINS;
use cni_test_support::{Call, Netns};
use serde_json::{Value, json};

const OURS: &str = env!("CARGO_BIN_EXE_ptp");

fn normalize(v: &Value) -> Value {
    let mut v = v.clone();
    if v.get("dns") == Some(&json!({})) {
        v.as_object_mut().unwrap().remove("dns");
    }
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            i["mac"] = json!("MAC");
            if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                i["name"] = json!("VETH");
            }
            if i.get("sandbox").is_some() {
                i["sandbox"] = json!("SANDBOX");
            }
        }
    }
    v
}

/// Runs `cmd` through Go's ptp and ours; returns (ok, output, container routes, host routes) of each.
fn both(cmd: &str, conf: &Value, netns_override: Option<&str>) -> [Value; 2] {
    let run = |bin: &str| {
        let host = Netns::new("pdhost");
        let ctr = Netns::new("pdctr");
        let data = tempfile::tempdir().unwrap();
        let mut conf = conf.clone();
        if conf.get("ipam").is_some() {
            conf["ipam"]["dataDir"] = json!(data.path());
        }
        let mut call = Call::new(bin, cmd, &conf, "diff").in_ns(&host).netns(&ctr);
        if let Some(ns) = netns_override {
            call.netns = Some(ns.to_owned());
        }
        let out = call.run();
        let v: Value = if out.stdout.is_empty() { Value::Null } else { serde_json::from_str(&out.stdout).unwrap() };
        let strip = |routes: Vec<Value>| -> Vec<Value> {
            routes
                .into_iter()
                .map(|mut r| {
                    if r["dev"].as_str().is_some_and(|d| d.starts_with("veth")) {
                        r["dev"] = json!("VETH");
                    }
                    r
                })
                .collect()
        };
        json!({
            "ok": out.success(),
            "out": normalize(&v),
            "ctr_routes": strip(ctr.routes4()),
            "host_routes": strip(host.routes4()),
            "nat": host.cni_nat_rules().len(),
        })
    };
    [run(&format!("{GO_PLUGINS}/ptp")), run(OURS)]
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn same_results_and_state_as_go_ptp() {
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        for extra in
            [json!({}), json!({"ipMasq": true, "mtu": 1400}), json!({"dns": {"nameservers": ["10.250.40.53"]}})]
        {
            let mut c = json!({
                "cniVersion": version, "name": "pdiff", "type": "ptp",
                "ipam": {"type": "host-local", "subnet": "10.250.40.0/24", "routes": [{"dst": "0.0.0.0/0"}]}
            });
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let [go, ours] = both("ADD", &c, None);
            assert_eq!(go, ours, "{version} {extra}");
        }
    }
}

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn same_errors_as_go_ptp() {
    let c = json!({"cniVersion": "1.0.0", "name": "pdiff", "type": "ptp",
        "ipam": {"type": "host-local", "subnet": "10.250.41.0/24"}});
    let no_ipam = json!({"cniVersion": "1.0.0", "name": "pdiff", "type": "ptp"});
    let cases: [(&str, &str, &Value, Option<&str>); 3] = [
        ("missing netns", "ADD", &c, Some("/var/run/netns/cnitest-nope")),
        ("no ipam", "ADD", &no_ipam, None),
        ("CHECK without prevResult", "CHECK", &c, None),
    ];
    for (what, cmd, conf, ns) in cases {
        let [go, ours] = both(cmd, conf, ns);
        assert_eq!(go["ok"], false, "{what}: {go}");
        assert_eq!((&go["out"]["code"], &go["out"]["msg"]), (&ours["out"]["code"], &ours["out"]["msg"]), "{what}");
        assert_eq!(go["nat"], ours["nat"], "{what}");
    }
}
