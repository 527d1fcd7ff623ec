//! The configuration errors of our drop-in plugins against Go's, as a table: every bad
//! configuration below goes through our binary and Debian's Go binary (same environment, fresh
//! throwaway namespaces each), and the error objects must be the same `{code, msg, details}`.
//!
//! Cases where Go's plugin does something a drop-in must not copy (a panic, a message that
//! depends on Go map order) are not in the table. `KNOWN` lists the cases that still differ, with
//! the reason; the test fails when one of them starts to match (so the list stays true).

use std::path::{Path, PathBuf};

use cni_test_support::{Call, Netns, go};
use serde_json::{Value, json};

/// One bad configuration: the plugin, what is wrong, the plugin's own keys (merged into
/// `{cniVersion, name, type}`), and `CNI_ARGS` if any.
struct Case {
    plugin: &'static str,
    what: &'static str,
    keys: Value,
    args: Option<&'static str>,
}

fn case(plugin: &'static str, what: &'static str, keys: Value) -> Case {
    Case { plugin, what, keys, args: None }
}

fn with_args(plugin: &'static str, what: &'static str, keys: Value, args: &'static str) -> Case {
    Case { plugin, what, keys, args: Some(args) }
}

/// host-local's `ipam` section with `extra` merged in.
fn ipam(extra: Value) -> Value {
    let mut ipam = json!({"type": "host-local"});
    if let (Some(m), Some(e)) = (ipam.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    json!({"ipam": ipam})
}

fn cases() -> Vec<Case> {
    let v4 = |s: &str| json!({"subnet": s});
    vec![
        // host-local: LoadIPAMConfig and Range.Canonicalize.
        case("host-local", "no ipam key", json!({})),
        case("host-local", "no ranges", ipam(json!({}))),
        case("host-local", "prefix too long", ipam(json!({"subnet": "10.218.1.0/33"}))),
        case("host-local", "subnet not a CIDR", ipam(json!({"subnet": "nonsense"}))),
        case("host-local", "subnet without prefix", ipam(json!({"subnet": "10.218.1.0"}))),
        case("host-local", "ranges subnet not a CIDR", ipam(json!({"ranges": [[{"subnet": "10.218.1.0/40"}]]}))),
        case("host-local", "subnet too small", ipam(json!({"subnet": "10.218.1.4/31"}))),
        case("host-local", "v6 subnet too small", ipam(json!({"subnet": "fd00:218::/127"}))),
        case("host-local", "host bits set", ipam(json!({"subnet": "10.218.1.5/24"}))),
        case("host-local", "rangeStart outside", ipam(json!({"subnet": "10.218.1.0/24", "rangeStart": "10.218.2.5"}))),
        case("host-local", "rangeEnd outside", ipam(json!({"subnet": "10.218.1.0/24", "rangeEnd": "10.218.2.5"}))),
        case(
            "host-local",
            "rangeStart not an IP",
            ipam(json!({"subnet": "10.218.1.0/24", "rangeStart": "10.218.1.x"})),
        ),
        case("host-local", "gateway not an IP", ipam(json!({"subnet": "10.218.1.0/24", "gateway": "gw"}))),
        case("host-local", "subnet a number", ipam(json!({"subnet": 5}))),
        case("host-local", "ranges subnet a number", ipam(json!({"ranges": [[{"subnet": 5}]]}))),
        case(
            "host-local",
            "ranges gateway a number",
            ipam(json!({"ranges": [[{"subnet": "10.218.1.0/24", "gateway": 5}]]})),
        ),
        case("host-local", "rangeStart a number", ipam(json!({"subnet": "10.218.1.0/24", "rangeStart": 5}))),
        case("host-local", "value error wins over type error", ipam(json!({"dataDir": 5, "subnet": "10.218.1.0/33"}))),
        case(
            "host-local",
            "first type error wins",
            ipam(json!({"rangeStart": 5, "subnet": "10.218.1.0/24", "resolvConf": 7})),
        ),
        case(
            "host-local",
            "route gw a number",
            ipam(json!({"subnet": "10.218.1.0/24", "routes": [{"dst": "0.0.0.0/0", "gw": 5}]})),
        ),
        case(
            "host-local",
            "routes not a list",
            ipam(json!({"subnet": "10.218.1.0/24", "routes": {"dst": "0.0.0.0/0"}})),
        ),
        case("host-local", "v6 host bits set", ipam(json!({"subnet": "fd00:218::5/64"}))),
        case(
            "host-local",
            "rangeEnd not an IP in ranges",
            ipam(json!({"ranges": [[{"subnet": "10.218.1.0/24", "rangeEnd": "10.218.1.300"}]]})),
        ),
        case(
            "host-local",
            "gateway not an IP in ranges",
            ipam(json!({"ranges": [[{"subnet": "fd00:218::/64", "gateway": "fd00::218::1"}]]})),
        ),
        case("host-local", "two v4 sets on 0.2.0", {
            let mut k = ipam(json!({"ranges": [[v4("10.218.1.0/24")], [v4("10.218.2.0/24")]]}));
            k["cniVersion"] = json!("0.2.0");
            k
        }),
        case("host-local", "empty range set", ipam(json!({"ranges": [[]]}))),
        case(
            "host-local",
            "mixed families",
            ipam(json!({"ranges": [[v4("10.218.1.0/24"), {"subnet": "fd00:218::/64"}]]})),
        ),
        case("host-local", "overlap in a set", ipam(json!({"ranges": [[v4("10.218.1.0/24"), v4("10.218.1.0/25")]]}))),
        case("host-local", "sets overlap", ipam(json!({"ranges": [[v4("10.218.1.0/24")], [v4("10.218.1.128/25")]]}))),
        case(
            "host-local",
            "route dst not a CIDR",
            ipam(json!({"subnet": "10.218.1.0/24", "routes": [{"dst": "default"}]})),
        ),
        case(
            "host-local",
            "route gw not an IP",
            ipam(json!({"subnet": "10.218.1.0/24", "routes": [{"dst": "0.0.0.0/0", "gw": "x"}]})),
        ),
        case("host-local", "ranges not a list", ipam(json!({"ranges": {"subnet": "10.218.1.0/24"}}))),
        case("host-local", "dataDir a number", ipam(json!({"subnet": "10.218.1.0/24", "dataDir": 5}))),
        case(
            "host-local",
            "missing resolvConf file",
            ipam(json!({"subnet": "10.218.1.0/24", "resolvConf": "/nonexistent/resolv.conf"})),
        ),
        case("host-local", "args.cni.ips not an IP", {
            let mut k = ipam(json!({"subnet": "10.218.1.0/24"}));
            k["args"] = json!({"cni": {"ips": ["10.218.1.x"]}});
            k
        }),
        with_args("host-local", "CNI_ARGS IP not an IP", ipam(json!({"subnet": "10.218.1.0/24"})), "IP=10.218.1.x"),
        with_args("host-local", "CNI_ARGS unknown key", ipam(json!({"subnet": "10.218.1.0/24"})), "FOO=bar"),
        with_args("host-local", "CNI_ARGS not K=V", ipam(json!({"subnet": "10.218.1.0/24"})), "IP"),
        with_args("host-local", "requested IP outside", ipam(json!({"subnet": "10.218.1.0/24"})), "IP=10.218.9.9"),
        with_args(
            "host-local",
            "requested IP is the gateway",
            ipam(json!({"subnet": "10.218.1.0/24"})),
            "IP=10.218.1.1",
        ),
        // bridge: loadNetConf and the checks before any link is made.
        case("bridge", "mtu a string", json!({"mtu": "1500"})),
        case("bridge", "isGateway a string", json!({"isGateway": "yes"})),
        case("bridge", "bridge a number", json!({"bridge": 5})),
        case("bridge", "ipam a string", json!({"ipam": "host-local"})),
        case("bridge", "vlan too high", json!({"vlan": 5000})),
        case("bridge", "vlan negative", json!({"vlan": -1})),
        case("bridge", "hairpin and promisc", json!({"hairpinMode": true, "promiscMode": true})),
        case(
            "bridge",
            "bad subnet through host-local",
            json!({"ipam": {"type": "host-local", "subnet": "10.218.1.0/33"}}),
        ),
        // ptp.
        case("ptp", "mtu a string", json!({"mtu": "1500"})),
        case("ptp", "ipMasq a string", json!({"ipMasq": "yes"})),
        case("ptp", "no ipam", json!({})),
        case(
            "ptp",
            "bad subnet through host-local",
            json!({"ipam": {"type": "host-local", "subnet": "10.218.1.0/33"}}),
        ),
        // loopback.
        case("loopback", "dns a string", json!({"dns": "8.8.8.8"})),
        case("loopback", "ipam a string", json!({"ipam": "x"})),
    ]
}

/// Cases that still differ from Go, with the reason. All are decided before the plugin's own
/// code runs: the SDK's dispatcher parses `CNI_ARGS` and the typed configuration (the plugin's
/// keys and the common ones: `ipam`, `dns`, `args`), and reports failures as code 4 / 7 with
/// serde's wording, where Go's plugins report code 999 with `encoding/json`'s wording of Go's
/// own type names (`json: cannot unmarshal string into Go struct field NetConf.mtu of type int`).
/// Matching them needs a hook in the dispatcher through which a plugin words its configuration
/// errors (and Go's type names per key).
const KNOWN: [(&str, &str); 10] = [
    ("host-local", "args.cni.ips not an IP"),
    ("host-local", "CNI_ARGS not K=V"),
    ("bridge", "mtu a string"),
    ("bridge", "isGateway a string"),
    ("bridge", "bridge a number"),
    ("bridge", "ipam a string"),
    ("ptp", "mtu a string"),
    ("ptp", "ipMasq a string"),
    ("loopback", "dns a string"),
    ("loopback", "ipam a string"),
];

/// The directory of the workspace's plugin binaries (next to this test's `deps/`).
fn our_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_owned();
    for p in ["bridge", "ptp", "host-local", "loopback"] {
        assert!(
            dir.join(p).is_file(),
            "{p} missing in {}: build the workspace (cargo test --workspace does)",
            dir.display()
        );
    }
    dir
}

/// Runs one case through the plugin in `dir` (with `dir` as `CNI_PATH`, so delegation stays
/// within one implementation) in fresh namespaces; returns the error object, or the output
/// when the plugin did not fail.
fn run(dir: &Path, c: &Case, data: &Path) -> Result<Value, String> {
    let (host, ctr) = (Netns::new("rt218ah"), Netns::new("rt218ac"));
    let mut conf = json!({"cniVersion": "1.0.0", "name": "audit", "type": c.plugin});
    if let (Some(m), Some(k)) = (conf.as_object_mut(), c.keys.as_object()) {
        m.extend(k.clone());
    }
    // host-local keeps its store in the test's directory whatever the case says.
    for ipam in [conf.get_mut("ipam")].into_iter().flatten() {
        if let Some(m) = ipam.as_object_mut() {
            m.entry("dataDir").or_insert_with(|| json!(data));
        }
    }
    let mut call = Call::new(dir.join(c.plugin), "ADD", &conf, "audit-ctr")
        .in_ns(&host)
        .netns(&ctr)
        .cni_path(&dir.display().to_string());
    if let Some(a) = c.args {
        call = call.args(a);
    }
    let r = call.run();
    if r.success() {
        return Err(format!("succeeded: {}", r.stdout));
    }
    serde_json::from_str::<Value>(&r.stdout).map_err(|e| format!("no error object ({e}): {:?} {}", r.stdout, r.stderr))
}

/// `{code, msg, details}` of an error object (`cniVersion` is ours only; Go prints none).
fn essence(v: &Value) -> Value {
    json!({"code": v["code"], "msg": v["msg"], "details": v.get("details").cloned().unwrap_or(Value::Null)})
}

#[test]
#[ignore = "needs root (plugins run in throwaway namespaces), Debian's Go plugins and the workspace's plugins"]
fn config_errors_match_go() {
    let ours = our_dir();
    let gos = PathBuf::from(go::PLUGIN_DIR);
    let mut mismatches = Vec::new();
    let mut known_still_differ = 0;
    for c in cases() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let go_err = run(&gos, &c, d1.path());
        let our_err = run(&ours, &c, d2.path());
        let known = KNOWN.contains(&(c.plugin, c.what));
        let same = matches!((&go_err, &our_err), (Ok(g), Ok(o)) if essence(g) == essence(o));
        match (same, known) {
            (true, false) => {}
            (false, true) if go_err.is_ok() && our_err.is_ok() => known_still_differ += 1,
            (true, true) => mismatches.push(format!("{} / {}: now matches Go; remove it from KNOWN", c.plugin, c.what)),
            (false, _) => mismatches.push(format!(
                "{} / {}:\n    go:   {}\n    ours: {}",
                c.plugin,
                c.what,
                go_err.map(|v| essence(&v).to_string()).unwrap_or_else(|e| e),
                our_err.map(|v| essence(&v).to_string()).unwrap_or_else(|e| e),
            )),
        }
    }
    assert!(mismatches.is_empty(), "{} of {} cases:\n{}", mismatches.len(), cases().len(), mismatches.join("\n"));
    assert_eq!(known_still_differ, KNOWN.len(), "every KNOWN case is in the table");
}
