//! The same requests to Debian's Go `static` (1.1.1) and ours: results and errors must be
//! identical (as JSON values; Go's key order and indentation aside). Needs no root: static
//! touches nothing.

use cni_test_support::{Call, Run, go};
use serde_json::{Value, json};

/// Versions both speak (Go 1.1.1 stops at 1.0.0).
const VERSIONS: [&str; 6] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

struct Case {
    what: &'static str,
    cmd: &'static str,
    conf: Value,
    args: Option<&'static str>,
}

fn conf(version: &str, ipam: Value) -> Value {
    json!({"cniVersion": version, "name": "sdiff", "type": "static", "ipam": ipam})
}

fn call(bin: &std::path::Path, case: &Case) -> Run {
    let mut c = Call::new(bin, case.cmd, &case.conf, "ctr-sdiff").netns_path("/var/run/netns/cni-static-diff-absent");
    if let Some(a) = case.args {
        c = c.args(a);
    }
    c.run()
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for v in VERSIONS {
        out.push(Case {
            what: "addresses, routes, dns",
            cmd: "ADD",
            conf: conf(
                v,
                json!({
                    "type": "static",
                    "addresses": [{"address": "10.219.1.5/24", "gateway": "10.219.1.1"}, {"address": "fd00:219::5/64", "gateway": "fd00:219::1"}],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.219.9.0/24", "gw": "10.219.1.254"}, {"dst": "fd00:9::/64"}],
                    "dns": {"nameservers": ["10.219.1.53"], "domain": "example.test", "search": ["a.test"], "options": ["ndots:2"]}
                }),
            ),
            args: None,
        });
        out.push(Case {
            what: "CNI_ARGS IP and GATEWAY",
            cmd: "ADD",
            conf: conf(v, json!({"type": "static", "addresses": [{"address": "fd00:219::7/64"}]})),
            args: Some("IP=10.219.3.6/24;GATEWAY=10.219.3.1"),
        });
        out.push(Case {
            what: "two addresses of a family",
            cmd: "ADD",
            conf: conf(
                v,
                json!({"type": "static", "addresses": [{"address": "10.219.1.5/24"}, {"address": "10.219.2.5/24"}]}),
            ),
            args: None,
        });
        out.push(Case { what: "no addresses", cmd: "ADD", conf: conf(v, json!({"type": "static"})), args: None });
        out.push(Case {
            what: "DEL without ipam",
            cmd: "DEL",
            conf: json!({"cniVersion": v, "name": "sdiff", "type": "static"}),
            args: None,
        });
    }
    let v = "1.0.0";
    let mut rc = conf(v, json!({"type": "static", "addresses": [{"address": "10.219.1.5/24"}]}));
    rc["args"] = json!({"cni": {"ips": ["10.219.6.6/24"]}});
    rc["runtimeConfig"] = json!({"ips": ["10.219.8.8/24", "10.219.8.9/16"]});
    out.push(Case { what: "runtimeConfig ips win", cmd: "ADD", conf: rc.clone(), args: Some("IP=10.219.7.7/24") });
    rc.as_object_mut().unwrap().remove("runtimeConfig");
    out.push(Case { what: "args.cni.ips replace", cmd: "ADD", conf: rc, args: Some("IP=10.219.7.7/24") });
    let mut bad_ips = conf(v, json!({"type": "static"}));
    bad_ips["runtimeConfig"] = json!({"ips": ["10.219.8.8"]});
    out.push(Case { what: "ips entry without prefix", cmd: "ADD", conf: bad_ips, args: None });
    let errors: [(&str, Value, Option<&'static str>); 7] = [
        ("address without prefix", json!({"type": "static", "addresses": [{"address": "10.219.1.5"}]}), None),
        (
            "bad gateway",
            json!({"type": "static", "addresses": [{"address": "10.219.1.5/24", "gateway": "nope"}]}),
            None,
        ),
        ("CNI_ARGS IP without prefix", json!({"type": "static"}), Some("IP=10.219.1.5")),
        ("CNI_ARGS bad GATEWAY", json!({"type": "static"}), Some("IP=10.219.1.5/24;GATEWAY=nope")),
        ("unknown CNI_ARGS", json!({"type": "static"}), Some("IP=10.219.1.5/24;FOO=bar")),
        ("IgnoreUnknown", json!({"type": "static"}), Some("IgnoreUnknown=1;IP=10.219.1.5/24;FOO=bar")),
        ("bad route dst", json!({"type": "static", "routes": [{"dst": "10.0.0.0"}]}), None),
    ];
    for (what, ipam, args) in errors {
        out.push(Case { what, cmd: "ADD", conf: conf(v, ipam), args });
    }
    out.push(Case {
        what: "no ipam",
        cmd: "ADD",
        conf: json!({"cniVersion": v, "name": "sdiff", "type": "static"}),
        args: None,
    });

    // CHECK (0.4.0+): the gateway comparison both plugins make.
    for v in ["0.4.0", "1.0.0"] {
        let ipam = json!({"type": "static", "addresses": [{"address": "10.219.1.5/24", "gateway": "10.219.1.1"}]});
        let mut ok = conf(v, ipam.clone());
        ok["prevResult"] =
            json!({"cniVersion": v, "ips": [{"version": "4", "address": "10.219.1.5/24", "gateway": "10.219.1.1"}]});
        out.push(Case { what: "CHECK matching", cmd: "CHECK", conf: ok, args: None });
        let mut wrong_gw = conf(v, ipam.clone());
        wrong_gw["prevResult"] =
            json!({"cniVersion": v, "ips": [{"version": "4", "address": "10.219.1.5/24", "gateway": "10.219.1.9"}]});
        out.push(Case { what: "CHECK gateway mismatch", cmd: "CHECK", conf: wrong_gw, args: None });
        out.push(Case { what: "CHECK without prevResult", cmd: "CHECK", conf: conf(v, ipam), args: None });
    }
    out
}

fn comparable(run: &Run) -> (bool, Value) {
    if run.success() {
        let mut doc = if run.stdout.trim().is_empty() { Value::Null } else { run.doc() };
        // Go always prints `"dns": {}`; cni-types leaves an empty dns out. Same meaning.
        if let Some(obj) = doc.as_object_mut() {
            obj.entry("dns").or_insert_with(|| json!({}));
        }
        (true, doc)
    } else {
        let e = run.doc();
        (false, json!({"code": e["code"], "msg": e["msg"]}))
    }
}

#[test]
fn same_results_and_errors_as_go() {
    let ours = std::path::PathBuf::from(env!("CARGO_BIN_EXE_static"));
    let theirs = go::plugin("static");
    let mut checked = 0;
    let mut diffs = Vec::new();
    for case in cases() {
        let (a, b) = (call(&ours, &case), call(&theirs, &case));
        let (a, b) = (comparable(&a), comparable(&b));
        if a != b {
            diffs.push(format!(
                "{} {} ({}):\n  ours: {a:?}\n  Go's: {b:?}",
                case.cmd, case.what, case.conf["cniVersion"]
            ));
        }
        checked += 1;
    }
    assert!(diffs.is_empty(), "{} of {checked} cases differ:\n{}", diffs.len(), diffs.join("\n"));
    assert!(checked > 40, "only {checked} cases ran");
}

/// Go's CHECK does not notice a configured address that prevResult lacks (upstream bug); ours
/// does. Both agree when the address is there.
#[test]
fn check_reports_missing_addresses_unlike_go() {
    let ipam = json!({"type": "static", "addresses": [{"address": "10.219.1.5/24"}]});
    let mut c = conf("1.0.0", ipam);
    c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.219.1.6/24"}]});
    let case = Case { what: "missing address", cmd: "CHECK", conf: c, args: None };
    let theirs = call(&go::plugin("static"), &case);
    assert!(theirs.success(), "Go's static passes: {}", theirs.stdout);
    let ours = call(std::path::Path::new(env!("CARGO_BIN_EXE_static")), &case);
    assert_eq!(ours.err_msg(), "static: Failed to match addr 10.219.1.5 on interface eth0");
}
