//! Golden fixtures: every file under `tests/fixtures/` is parsed into its type, serialised back
//! and compared with the file *semantically* (`serde_json::Value` equality, key order ignored),
//! after the documented normalisations listed in [`Norm`]. Each fixture also has a few typed
//! assertions. [`every_fixture_is_covered`] fails when a fixture has no test (or a test names a
//! missing fixture).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cni_types::result::scope;
use cni_types::{
    CacheError, CacheRecord, CniArgs, CniError, CniResult, ErrorCode, MacAddr, NetworkConfig, NetworkConfigList,
    RuntimeConfig, SpecVersion, VersionInfo, VersionInfoError, WireResult,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn bytes(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn value(rel: &str) -> Value {
    serde_json::from_slice(&bytes(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

#[track_caller]
fn assert_json_eq(actual: &Value, expected: &Value, what: &str) {
    assert!(
        actual == expected,
        "{what}: JSON differs\n--- actual ---\n{}\n--- expected ---\n{}",
        serde_json::to_string_pretty(actual).unwrap(),
        serde_json::to_string_pretty(expected).unwrap()
    );
}

/// The documented differences between what a fixture says and what this crate prints.
#[derive(Clone, Copy, Debug)]
enum Norm {
    /// Hardware addresses are printed in lower case (`mac` keys, and `runtimeConfig.mac`).
    LowerMacs,
    /// An empty top-level `"dns": {}` (Go always prints it in 0.x) is omitted.
    DropEmptyDns,
    /// Conflist booleans given as strings (`"true"`, `"FALSE"`) are printed as JSON booleans,
    /// and a false boolean is omitted.
    ConflistBools,
}

fn normalise(mut v: Value, norms: &[Norm]) -> Value {
    for norm in norms {
        match norm {
            Norm::LowerMacs => lower_macs(&mut v),
            Norm::DropEmptyDns => {
                let obj = v.as_object_mut().expect("a document object");
                if obj.get("dns") == Some(&json!({})) {
                    obj.remove("dns");
                }
            }
            Norm::ConflistBools => {
                let obj = v.as_object_mut().expect("a conflist object");
                for key in ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"] {
                    let b = match obj.get(key) {
                        None => continue,
                        Some(Value::Bool(b)) => *b,
                        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                        Some(other) => panic!("bad fixture: {key} = {other}"),
                    };
                    if b {
                        obj.insert(key.to_owned(), Value::Bool(true));
                    } else {
                        obj.remove(key);
                    }
                }
            }
        }
    }
    v
}

fn lower_macs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                match item {
                    Value::String(s) if k == "mac" => *s = s.to_ascii_lowercase(),
                    _ => lower_macs(item),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(lower_macs),
        _ => {}
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Registry: one test per fixture, and the list the coverage test checks.
// ---------------------------------------------------------------------------------------------

macro_rules! golden {
    ($($test:ident: $path:literal => $check:ident;)*) => {
        $(
            #[test]
            fn $test() {
                $check($path);
            }
        )*
        const COVERED: &[&str] = &[$($path),*];
    };
}

golden! {
    config_0_1_0: "config/0.1.0.json" => check_config_0_1_0;
    config_0_2_0: "config/0.2.0.json" => check_config_0_2_0;
    config_0_3_0: "config/0.3.0.json" => check_config_0_3_0;
    config_0_3_1: "config/0.3.1.json" => check_config_0_3_1;
    config_0_4_0: "config/0.4.0.json" => check_config_0_4_0;
    config_1_0_0: "config/1.0.0.json" => check_config_1_0_0;
    config_1_1_0_add: "config/1.1.0-add.json" => check_config_1_1_0_add;
    config_1_1_0_gc: "config/1.1.0-gc.json" => check_config_1_1_0_gc;

    conflist_0_3_1: "conflist/0.3.1.json" => check_conflist_0_3_1;
    conflist_0_4_0: "conflist/0.4.0.json" => check_conflist_0_4_0;
    conflist_1_0_0: "conflist/1.0.0.json" => check_conflist_1_0_0;
    conflist_1_1_0: "conflist/1.1.0.json" => check_conflist_1_1_0;
    conflist_single_conf_0_2_0: "conflist/conf-0.2.0.json" => check_single_conf_0_2_0;
    conflist_1_1_0_no_plugins: "conflist/1.1.0-no-plugins.json" => check_conflist_no_plugins;

    result_0_1_0: "result/0.1.0.json" => check_result_0_1_0;
    result_0_2_0: "result/0.2.0.json" => check_result_0_2_0;
    result_0_3_0: "result/0.3.0.json" => check_result_0_3_0;
    result_0_3_1: "result/0.3.1.json" => check_result_0_3_1;
    result_0_4_0: "result/0.4.0.json" => check_result_0_4_0;
    result_0_4_0_ipam: "result/0.4.0-ipam.json" => check_result_0_4_0_ipam;
    result_1_0_0: "result/1.0.0.json" => check_result_1_0_0;
    result_1_1_0: "result/1.1.0.json" => check_result_1_1_0;
    result_1_1_0_ipoib: "result/1.1.0-ipoib.json" => check_result_1_1_0_ipoib;

    error_go_shape: "error/go-shape.json" => check_error_go_shape;
    error_go_internal: "error/go-internal.json" => check_error_go_internal;
    error_spec_1_1_0: "error/spec-1.1.0.json" => check_error_spec_1_1_0;
    error_plugin_code: "error/plugin-code.json" => check_error_plugin_code;
    error_try_again_0_4_0: "error/status-0.4.0.json" => check_error_try_again;

    version_1_1_0: "version/1.1.0.json" => check_version_1_1_0;
    version_0_3_1: "version/0.3.1.json" => check_version_0_3_1;
    version_0_2_0_legacy: "version/0.2.0-legacy.json" => check_version_0_2_0_legacy;
    version_1_0_0_extra_key: "version/1.0.0-from-1.0.json" => check_version_1_0_0_extra;

    cache_v1: "cache/v1.json" => check_cache_v1;
    cache_v1_minimal: "cache/v1-minimal.json" => check_cache_v1_minimal;
    cache_legacy_result: "cache/legacy-result.json" => check_cache_legacy;
}

#[test]
fn every_fixture_is_covered() {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect();
                out.insert(rel.join("/"));
            }
        }
    }
    let root = fixtures_dir();
    let mut on_disk = BTreeSet::new();
    walk(&root, &root, &mut on_disk);
    let covered: BTreeSet<String> = COVERED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(covered.len(), COVERED.len(), "a fixture is listed twice");
    let untested: Vec<_> = on_disk.difference(&covered).collect();
    let missing: Vec<_> = covered.difference(&on_disk).collect();
    assert!(untested.is_empty(), "fixtures without a golden test: {untested:?}");
    assert!(missing.is_empty(), "golden tests naming missing fixtures: {missing:?}");
    // Every spec version has a configuration and a result fixture.
    for v in SpecVersion::ALL {
        for kind in ["config", "result"] {
            let prefix = format!("{kind}/{v}");
            assert!(on_disk.iter().any(|f| f.starts_with(&prefix)), "no {kind} fixture for {v}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plugin configurations
// ---------------------------------------------------------------------------------------------

/// A plugin's own keys, as a bridge-like plugin would declare them.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BridgeKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    is_gateway: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip_masq: Option<bool>,
}

/// Parses as `NetworkConfig<()>` and as `NetworkConfig<BridgeKeys>`, checks both print the
/// (normalised) fixture, and that printing is stable.
fn config_roundtrip(rel: &str, norms: &[Norm]) -> (NetworkConfig, NetworkConfig<BridgeKeys>) {
    let raw = bytes(rel);
    let expected = normalise(value(rel), norms);

    let untyped: NetworkConfig = serde_json::from_slice(&raw).unwrap();
    let printed = serde_json::to_value(&untyped).unwrap();
    assert_json_eq(&printed, &expected, rel);
    let again: NetworkConfig = serde_json::from_value(printed).unwrap();
    assert_eq!(again, untyped, "{rel}: reparse of printed config");

    let typed: NetworkConfig<BridgeKeys> = serde_json::from_slice(&raw).unwrap();
    assert_json_eq(&serde_json::to_value(&typed).unwrap(), &expected, rel);
    for key in ["bridge", "isGateway", "ipMasq"] {
        assert!(!typed.extra.contains_key(key), "{rel}: typed key {key} also in extra");
        assert_eq!(untyped.extra.contains_key(key), expected.get(key).is_some(), "{rel}: untyped keeps {key} in extra");
    }
    assert_eq!(untyped.spec_version().unwrap().as_str(), untyped.cni_version);
    (untyped, typed)
}

fn check_config_0_1_0(rel: &str) {
    let (conf, typed) = config_roundtrip(rel, &[]);
    assert_eq!(conf.spec_version().unwrap(), SpecVersion::V0_1_0);
    assert_eq!((conf.name.as_str(), conf.plugin_type.as_str()), ("legacy-net", "bridge"));
    assert_eq!(typed.plugin, BridgeKeys { bridge: Some("cni0".into()), is_gateway: Some(true), ip_masq: Some(true) });
    let ipam = conf.ipam.as_ref().unwrap();
    assert_eq!(ipam.plugin_type, "host-local");
    assert_eq!(ipam.extra["subnet"], "10.10.0.0/16");
    assert_eq!(conf.dns.as_ref().unwrap().nameservers, ["10.10.0.1"]);
    assert!(conf.args.is_none() && conf.runtime_config.is_none());
    assert!(conf.parse_prev_result().unwrap().is_none());
}

fn check_config_0_2_0(rel: &str) {
    let (conf, typed) = config_roundtrip(rel, &[]);
    assert_eq!(typed.plugin.bridge.as_deref(), Some("br-args"));
    let dns = conf.dns.as_ref().unwrap();
    assert_eq!(dns.domain.as_deref(), Some("argnet.local"));
    assert_eq!(dns.options, ["ndots:2", "edns0"]);
    let args = conf.args.as_ref().unwrap();
    let cni = args.cni.as_ref().unwrap();
    let ips = cni.ips.as_ref().unwrap();
    assert_eq!((ips[0].addr, ips[0].prefix), (ip("10.20.0.42"), Some(24)));
    assert_eq!((ips[1].addr, ips[1].prefix), (ip("fd00:20::42"), None));
    assert_eq!(ips[1].to_net().to_string(), "fd00:20::42/128");
    let labels = cni.labels.as_ref().unwrap();
    assert_eq!((labels[1].key.as_str(), labels[1].value.as_str()), ("tier", "backend"));
    assert_eq!(cni.extra["futureConvention"]["enabled"], true);
    assert_eq!(args.extra["org.example"]["rack"], 7);
}

fn check_config_0_3_0(rel: &str) {
    let (conf, _) = config_roundtrip(rel, &[]);
    assert!(conf.has_capability("portMappings"));
    assert!(!conf.has_capability("bandwidth"), "declared false");
    assert!(!conf.has_capability("mac"), "not declared");
    let rc = conf.runtime_config.as_ref().unwrap();
    let pm = &rc.port_mappings.as_ref().unwrap()[0];
    assert_eq!((pm.host_port, pm.container_port, pm.protocol.as_str()), (8080, 80, "tcp"));
    assert_eq!(pm.host_ip, None);
    assert_eq!(conf.extra["mtu"], 1400);
    assert_eq!(conf.extra["ipMasq"], false);
    assert_eq!(conf.ipam.as_ref().unwrap().extra["dataDir"], "/run/cni/mesh");
}

fn check_config_0_3_1(rel: &str) {
    let (conf, _) = config_roundtrip(rel, &[]);
    let pms = conf.runtime_config.as_ref().unwrap().port_mappings.as_ref().unwrap();
    assert_eq!(pms[0].host_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(pms[0].protocol, "udp");
    assert_eq!(pms[1].protocol, "", "protocol is optional");
    // prevResult has no cniVersion: it is read as the configuration's version.
    let wire = WireResult::from_value(conf.prev_result.clone().unwrap(), &conf.cni_version).unwrap();
    assert_eq!(wire.version(), SpecVersion::V0_3_1);
    let prev = conf.parse_prev_result().unwrap().unwrap();
    assert_eq!(prev.interfaces.len(), 2);
    assert_eq!(prev.interfaces[0].sandbox, None);
    assert_eq!(prev.ips[0].interface, Some(1));
    assert_eq!(prev.ips[0].gateway, Some(ip("10.31.0.1")));
    assert_eq!(prev.routes[0].gw, None);
    assert!(prev.dns.is_empty());
}

fn check_config_0_4_0(rel: &str) {
    let (conf, _) = config_roundtrip(rel, &[Norm::LowerMacs]);
    let mac = conf.runtime_config.as_ref().unwrap().mac.unwrap();
    assert_eq!(mac, MacAddr::new([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
    assert_eq!(conf.extra["sysctl"]["net.core.somaxconn"], "500");
    // prevResult 0.3.0 in a 0.4.0 configuration: same result family, accepted.
    let prev = conf.parse_prev_result().unwrap().unwrap();
    assert_eq!(prev.ips.len(), 2);
    assert!(prev.ips[1].address.addr().is_ipv6());
    assert_eq!(prev.ips[1].interface, Some(0));
    assert_eq!(prev.dns.nameservers, ["10.40.0.1"]);
}

fn check_config_1_0_0(rel: &str) {
    let (conf, typed) = config_roundtrip(rel, &[]);
    assert_eq!(typed.plugin.bridge.as_deref(), Some("cni-all"));
    assert_eq!(conf.extra["hairpinMode"], false);
    let caps = conf.capabilities.as_ref().unwrap();
    assert_eq!(caps.len(), 11);
    assert!(conf.has_capability("io.example/quota"));

    let rc = conf.runtime_config.as_ref().unwrap();
    // The fixture uses every well-known capability key: with the unknown one removed, the
    // typed struct prints exactly the ten keys of CONVENTIONS.md.
    let mut known_only: RuntimeConfig = rc.clone();
    assert_eq!(known_only.extra.remove("io.example/quota").unwrap()["burst"], json!([1, 2, 3]));
    assert!(known_only.extra.is_empty());
    let keys: BTreeSet<String> =
        serde_json::to_value(&known_only).unwrap().as_object().unwrap().keys().cloned().collect();
    let expected: BTreeSet<String> = [
        "portMappings",
        "ipRanges",
        "bandwidth",
        "dns",
        "ips",
        "mac",
        "infinibandGUID",
        "deviceID",
        "aliases",
        "cgroupPath",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys, expected);

    assert_eq!(rc.port_mappings.as_ref().unwrap()[0].protocol, "sctp");
    let ranges = rc.ip_ranges.as_ref().unwrap();
    assert_eq!(ranges[0][0].subnet.to_string(), "10.101.0.0/24");
    assert_eq!(ranges[0][0].range_start, Some(ip("10.101.0.50")));
    assert_eq!(ranges[0][0].range_end, Some(ip("10.101.0.60")));
    assert_eq!(ranges[1][0].gateway, Some(ip("fd00:101::1")));
    assert_eq!(ranges[1][0].range_start, None);
    let bw = rc.bandwidth.as_ref().unwrap();
    assert_eq!(
        (bw.ingress_rate, bw.ingress_burst, bw.egress_rate, bw.egress_burst),
        (Some(1_000_000), Some(2_000_000), Some(3_000_000), Some(4_000_000))
    );
    let dns = rc.dns.as_ref().unwrap();
    assert_eq!((dns.servers.len(), dns.searches.len(), dns.options.len()), (1, 1, 1));
    let ips = rc.ips.as_ref().unwrap();
    assert_eq!(ips[0].to_net().to_string(), "10.100.0.77/24");
    assert_eq!(ips[1].prefix, None);
    assert_eq!(rc.mac.unwrap().to_string(), "c2:00:00:00:10:77");
    assert_eq!(rc.infiniband_guid.as_deref(), Some("c2:11:22:33:44:55:66:77"));
    assert_eq!(rc.device_id.as_deref(), Some("0000:04:00.5"));
    assert_eq!(rc.aliases.as_ref().unwrap(), &["web", "web.primary"]);
    assert!(rc.cgroup_path.as_deref().unwrap().starts_with("/kubelet.slice/"));

    let args_ips = conf.args.as_ref().unwrap().cni.as_ref().unwrap().ips.as_ref().unwrap();
    assert_eq!(args_ips[0].to_net().to_string(), "10.100.0.77/32");
    let prev = conf.parse_prev_result().unwrap().unwrap();
    assert_eq!(prev.ips[0].interface, Some(0));
    assert_eq!(prev.interfaces[0].mac, None);
}

fn check_config_1_1_0_add(rel: &str) {
    let (conf, _) = config_roundtrip(rel, &[]);
    assert_eq!(conf.spec_version().unwrap(), SpecVersion::V1_1_0);
    let rc = conf.runtime_config.as_ref().unwrap();
    assert_eq!(rc.device_id.as_deref(), Some("0000:3b:02.1"));
    assert_eq!(rc.extra["x-unknown-capability"], "kept");
    assert_eq!(conf.extra["vlan"], 100);
    let prev = conf.parse_prev_result().unwrap().unwrap();
    let iface = &prev.interfaces[0];
    assert_eq!(iface.mtu, Some(9000));
    assert_eq!(iface.socket_path.as_deref(), Some("/run/vhost/net1.sock"));
    assert_eq!(iface.pci_id.as_deref(), Some("0000:3b:02.1"));
    let r0 = &prev.routes[0];
    assert_eq!(
        (r0.mtu, r0.advmss, r0.priority, r0.table, r0.scope),
        (Some(1500), Some(1460), Some(100), Some(254), Some(scope::UNIVERSE))
    );
    assert_eq!(prev.routes[1].scope, Some(scope::LINK));
    assert_eq!(prev.dns.domain.as_deref(), Some("modern.example.test"));
    assert!(conf.gc_attachments().is_none());
}

fn check_config_1_1_0_gc(rel: &str) {
    let (conf, _) = config_roundtrip(rel, &[]);
    let atts = conf.gc_attachments().unwrap();
    assert_eq!(atts.len(), 2);
    assert_eq!((atts[1].container_id.as_str(), atts[1].ifname.as_str()), ("f00dfeed", "net1"));
    assert_eq!(conf.valid_attachments, conf.attachments);
    assert!(conf.prev_result.is_none() && conf.runtime_config.is_none());
}

// ---------------------------------------------------------------------------------------------
// Configuration lists
// ---------------------------------------------------------------------------------------------

fn conflist_roundtrip(rel: &str) -> NetworkConfigList {
    let list = NetworkConfigList::from_slice(&bytes(rel)).unwrap();
    let printed = serde_json::to_value(&list).unwrap();
    assert_json_eq(&printed, &normalise(value(rel), &[Norm::ConflistBools]), rel);
    let again = NetworkConfigList::from_slice(&serde_json::to_vec(&list).unwrap()).unwrap();
    assert_eq!(again, list, "{rel}: reparse of printed list");
    list
}

fn check_conflist_0_3_1(rel: &str) {
    let list = conflist_roundtrip(rel);
    assert_eq!(list.selected_version().unwrap(), "0.3.1");
    assert_eq!(list.name, "k8s-pod-network");
    assert_eq!(list.plugins.len(), 2);
    assert_eq!(list.plugin_type(0), Some("bridge"));
    assert_eq!(list.plugin_type(1), Some("portmap"));
    assert_eq!(list.plugin_type(2), None);
    assert_eq!(list.plugins[1]["capabilities"]["portMappings"], true);
    assert!(!list.disable_check && !list.disable_gc && !list.load_only_inlined_plugins);
    assert_eq!(list.cni_versions, None);
}

fn check_conflist_0_4_0(rel: &str) {
    let list = conflist_roundtrip(rel);
    assert!(list.disable_check);
    assert!(!list.disable_gc);
    assert_eq!(list.plugin_type(1), Some("firewall"));
    // Plugin entries are kept verbatim, so each can be parsed as a plugin configuration.
    let first: NetworkConfig = serde_json::from_value(Value::Object(list.plugins[0].clone())).unwrap();
    assert_eq!(first.ipam.unwrap().plugin_type, "static");
}

fn check_conflist_1_0_0(rel: &str) {
    let list = conflist_roundtrip(rel);
    assert!(!list.disable_check, "the string \"false\" is false");
    assert_eq!(list.plugins.len(), 3);
    assert_eq!(list.plugins[0]["keyA"][2], "configuration");
    assert_eq!(list.selected_version().unwrap(), "1.0.0");
    assert!(list.extra.is_empty());
}

fn check_conflist_1_1_0(rel: &str) {
    let list = conflist_roundtrip(rel);
    assert_eq!(list.cni_version, "1.0.0");
    assert_eq!(list.cni_versions.as_ref().unwrap().len(), 3);
    // Highest of cniVersion ∪ cniVersions that is not newer than 1.1.0.
    assert_eq!(list.selected_version().unwrap(), "1.1.0");
    assert!(list.disable_check, "\"True\"");
    assert!(list.disable_gc, "\"TRUE\"");
    assert!(list.load_only_inlined_plugins);
    assert_eq!(list.extra["x-vendor-extension"]["owner"], "platform-team");
    assert_eq!(list.plugin_type(1), Some("bandwidth"));
}

fn check_conflist_no_plugins(rel: &str) {
    // Without `plugins` (and without loadOnlyInlinedPlugins) the runtime loads the plugins from
    // `<confdir>/<name>/`; printing such a list must not invent an empty `plugins` array, which
    // would then be rejected as "no plugins in list".
    let list = conflist_roundtrip(rel);
    assert!(list.plugins.is_empty());
    assert!(!list.disable_gc && !list.load_only_inlined_plugins);
    assert_eq!(list.selected_version().unwrap(), "1.1.0");
    assert!(serde_json::to_value(&list).unwrap().get("plugins").is_none());
}

fn check_single_conf_0_2_0(rel: &str) {
    let conf = value(rel);
    let list = NetworkConfigList::from_single_conf(&bytes(rel)).unwrap();
    assert_eq!((list.name.as_str(), list.cni_version.as_str()), ("single", "0.2.0"));
    assert_eq!(list.plugins.len(), 1);
    assert_eq!(list.plugin_type(0), Some("macvlan"));
    let expected = json!({"cniVersion": "0.2.0", "name": "single", "plugins": [conf.clone()]});
    assert_json_eq(&serde_json::to_value(&list).unwrap(), &expected, rel);
    // The same file, as the plugin receives it.
    let (plugin_conf, _) = config_roundtrip(rel, &[]);
    assert_eq!(plugin_conf.extra["master"], "eth1");
    assert_eq!(plugin_conf.ipam.unwrap().plugin_type, "dhcp");
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// Parses a result fixture, prints it in its own version and compares; also checks the wire
/// level (`WireResult`), the indented printer, and that the fixture is lossless in its version.
fn result_roundtrip(rel: &str, norms: &[Norm]) -> (CniResult, Value) {
    let raw = bytes(rel);
    let fixture = value(rel);
    let version: SpecVersion = fixture["cniVersion"].as_str().unwrap().parse().unwrap();
    let expected = normalise(fixture.clone(), norms);

    // The default version must not matter when cniVersion is present.
    let canonical = CniResult::parse(&raw, "").unwrap();
    for default in SpecVersion::ALL {
        assert_eq!(CniResult::parse(&raw, default.as_str()).unwrap(), canonical, "{rel}");
    }
    assert!(canonical.is_lossless_in(version), "{rel} in its own version");

    let printed = canonical.to_value(version).unwrap();
    assert_json_eq(&printed, &expected, rel);

    let wire = WireResult::from_value(fixture, "").unwrap();
    assert_eq!(wire.version(), version);
    assert_json_eq(&wire.to_value(), &expected, rel);
    assert_eq!(wire.clone().into_canonical(), canonical);
    assert_eq!(canonical.to_wire(version).unwrap(), wire);

    let text = canonical.to_json(version).unwrap();
    assert!(text.contains("\n    \""), "{rel}: four-space indentation");
    assert!(!text.ends_with('\n'), "{rel}: no trailing newline, like Go");
    let reparsed: Value = serde_json::from_str(&text).unwrap();
    assert_json_eq(&reparsed, &expected, rel);
    (canonical, printed)
}

fn check_result_0_1_0(rel: &str) {
    let (r, printed) = result_roundtrip(rel, &[Norm::DropEmptyDns]);
    assert_eq!(r.ips.len(), 1);
    assert_eq!(r.ips[0].address.to_string(), "10.10.0.5/16", "host bits kept");
    assert_eq!(r.ips[0].gateway, Some(ip("10.10.0.1")));
    assert_eq!(r.ips[0].interface, None);
    assert_eq!(r.routes.len(), 2);
    assert_eq!(r.routes[1].gw, None);
    assert!(r.interfaces.is_empty() && r.dns.is_empty());
    assert!(printed.get("ip6").is_none() && printed.get("dns").is_none());
}

fn check_result_0_2_0(rel: &str) {
    let (r, _) = result_roundtrip(rel, &[]);
    assert_eq!(r.ips.len(), 2, "dual stack");
    assert!(r.ips[0].address.addr().is_ipv4() && r.ips[1].address.addr().is_ipv6());
    assert_eq!(r.ips[1].gateway, Some(ip("fd00:20::1")));
    // Routes: ip4's, then ip6's.
    let dsts: Vec<String> = r.routes.iter().map(|rt| rt.dst.to_string()).collect();
    assert_eq!(dsts, ["0.0.0.0/0", "::/0"]);
    assert_eq!(r.routes[1].gw, Some(ip("fd00:20::1")));
    assert_eq!(r.dns.nameservers, ["10.20.0.1", "fd00:20::1"]);
    assert_eq!(r.dns.domain.as_deref(), Some("argnet.local"));
    assert_eq!((r.dns.search.len(), r.dns.options.len()), (1, 1));
}

fn check_result_0_3_0(rel: &str) {
    let (r, printed) = result_roundtrip(rel, &[Norm::LowerMacs, Norm::DropEmptyDns]);
    assert_eq!(r.interfaces[0].mac.unwrap().to_string(), "0a:58:0a:1e:00:05");
    assert_eq!(r.interfaces[0].sandbox.as_deref(), Some("/var/run/netns/mesh-1"));
    assert_eq!(r.ips[0].interface, Some(0));
    // Interface index 0 is printed, not omitted.
    assert_eq!(printed["ips"][0]["interface"], 0);
    assert_eq!(printed["ips"][0]["version"], "4");
}

fn check_result_0_3_1(rel: &str) {
    let (r, _) = result_roundtrip(rel, &[]);
    assert_eq!(r.interfaces.len(), 3);
    assert!(r.interfaces[..2].iter().all(|i| i.sandbox.is_none()), "host side");
    assert_eq!(r.ips.iter().map(|i| i.interface).collect::<Vec<_>>(), [Some(2), Some(2)]);
    assert!(r.ips[1].address.addr().is_ipv6());
    assert_eq!(r.routes[1].gw, Some(ip("fd00:31::1")));
    assert_eq!(r.dns.search, ["chain.svc.example.test", "svc.example.test"]);
    assert_eq!(r.dns.domain, None);
}

fn check_result_0_4_0(rel: &str) {
    let (r, _) = result_roundtrip(rel, &[]);
    assert_eq!(r.ips.len(), 3);
    assert_eq!(r.ips.iter().filter(|i| i.address.addr().is_ipv4()).count(), 2);
    assert_eq!(r.ips[1].gateway, None);
    assert_eq!(r.dns.domain.as_deref(), Some("tuned.local"));
    // Two IPv4 addresses: not expressible in 0.2.0.
    assert!(!r.is_lossless_in(SpecVersion::V0_2_0));
    assert!(r.is_lossless_in(SpecVersion::V1_0_0));
}

fn check_result_0_4_0_ipam(rel: &str) {
    let (r, printed) = result_roundtrip(rel, &[Norm::DropEmptyDns]);
    assert!(r.interfaces.is_empty(), "IPAM results have no interfaces");
    assert!(r.ips.iter().all(|i| i.interface.is_none()));
    assert!(printed.get("interfaces").is_none());
    assert!(printed["ips"][0].get("interface").is_none());
    assert_eq!(printed["ips"][1]["version"], "6");
    assert_eq!(r.ips[1].gateway, None);
}

fn check_result_1_0_0(rel: &str) {
    let (r, printed) = result_roundtrip(rel, &[Norm::LowerMacs]);
    assert_eq!(r.interfaces[0].mac.unwrap().to_string(), "c2:00:00:00:00:01");
    assert_eq!(r.interfaces[0].mac.unwrap().as_mac(), Some(MacAddr::new([0xc2, 0, 0, 0, 0, 1])));
    assert_eq!(r.ips[1].interface, Some(1));
    assert!(printed["ips"][0].get("version").is_none(), "no version in 1.x");
    assert_eq!(r.routes[2].gw, Some(ip("10.100.0.254")));
    assert_eq!(r.dns.search.len(), 2);
    // Lossless down to 0.3.0 (no 1.1 extras) but not to 0.2.0 (interfaces).
    assert!(r.is_lossless_in(SpecVersion::V0_3_0));
    assert!(!r.is_lossless_in(SpecVersion::V0_1_0));
}

fn check_result_1_1_0(rel: &str) {
    let (r, printed) = result_roundtrip(rel, &[]);
    let i = &r.interfaces[0];
    assert_eq!(i.mtu, Some(9000));
    assert_eq!(i.pci_id.as_deref(), Some("0000:3b:02.1"));
    assert_eq!(i.socket_path.as_deref(), Some("/run/vhost/net1.sock"));
    let r0 = &r.routes[0];
    assert_eq!(
        (r0.mtu, r0.advmss, r0.priority, r0.table, r0.scope),
        (Some(1500), Some(1460), Some(100), Some(254), Some(0))
    );
    // table and scope are pointers in Go: zero is printed when set.
    assert_eq!(r.routes[1].table, Some(0));
    assert_eq!(printed["routes"][1]["table"], 0);
    assert_eq!(printed["routes"][0]["scope"], 0);
    assert_eq!(r.routes[2].priority, Some(1024));
    assert!(printed["routes"][2].get("table").is_none());
    assert!(!r.is_lossless_in(SpecVersion::V0_4_0), "1.1 extras");
}

fn check_result_1_1_0_ipoib(rel: &str) {
    let (r, _) = result_roundtrip(rel, &[Norm::LowerMacs]);
    let mac = r.interfaces[0].mac.unwrap();
    assert_eq!(mac.octets().len(), 20, "IP-over-InfiniBand hardware address");
    assert_eq!(mac.as_mac(), None);
    assert_eq!(mac.octets()[4], 0xfe);
    assert_eq!(r.interfaces[0].mtu, Some(2044));
    assert!(r.dns.is_empty() && r.routes.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn error_roundtrip(rel: &str) -> CniError {
    let e: CniError = serde_json::from_slice(&bytes(rel)).unwrap();
    assert_json_eq(&serde_json::to_value(&e).unwrap(), &value(rel), rel);
    e
}

fn check_error_go_shape(rel: &str) {
    let e = error_roundtrip(rel);
    assert_eq!(e.cni_version, None, "Go omits cniVersion");
    assert_eq!(e.code, ErrorCode::InvalidEnvironmentVariables);
    assert_eq!(e.details, None);
    assert_eq!(e.to_string(), "required env variables [CNI_NETNS,CNI_PATH] missing");
}

fn check_error_go_internal(rel: &str) {
    let e = error_roundtrip(rel);
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(e.code.as_u32(), 999);
    assert!(e.msg.starts_with("could not parse prevResult"));
}

fn check_error_spec_1_1_0(rel: &str) {
    let e = error_roundtrip(rel);
    assert_eq!(e.cni_version.as_deref(), Some("1.1.0"));
    assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
    assert_eq!(e.to_string(), "Invalid Configuration; Network 192.168.0.0/31 too small to allocate from.");
    let built = CniError::new(ErrorCode::InvalidNetworkConfig, "Invalid Configuration")
        .with_details("Network 192.168.0.0/31 too small to allocate from.")
        .with_version("1.1.0");
    assert_eq!(built, e);
}

fn check_error_plugin_code(rel: &str) {
    let e = error_roundtrip(rel);
    assert_eq!(e.code, ErrorCode::Plugin(101));
    assert_eq!(e.code.description(), "plugin-specific error");
    assert_eq!(e.cni_version.as_deref(), Some("1.0.0"));
    assert!(e.details.as_deref().unwrap().contains("10.22.0.2-10.22.0.3"));
}

fn check_error_try_again(rel: &str) {
    let e = error_roundtrip(rel);
    assert_eq!(e.code, ErrorCode::TryAgainLater);
    // An empty `details` is kept as written, and (like Go's Error()) not shown.
    assert_eq!(e.details.as_deref(), Some(""));
    assert_eq!(e.to_string(), "try again later");
}

// ---------------------------------------------------------------------------------------------
// VERSION replies
// ---------------------------------------------------------------------------------------------

fn check_version_1_1_0(rel: &str) {
    let info = VersionInfo::decode(&bytes(rel)).unwrap();
    assert_json_eq(&serde_json::to_value(&info).unwrap(), &value(rel), rel);
    assert_eq!(info, VersionInfo::new("1.1.0", &SpecVersion::ALL));
    for v in SpecVersion::ALL {
        assert!(info.supports(v.as_str()));
    }
    assert!(!info.supports("1.0"), "exact string match");
}

fn check_version_0_3_1(rel: &str) {
    let info = VersionInfo::decode(&bytes(rel)).unwrap();
    assert_json_eq(&serde_json::to_value(&info).unwrap(), &value(rel), rel);
    assert!(info.supports("0.3.0") && !info.supports("0.4.0"));
    let parsed: Vec<SpecVersion> = info.supported_versions.iter().map(|v| v.parse().unwrap()).collect();
    assert_eq!(parsed, &SpecVersion::ALL[..4]);
}

fn check_version_0_2_0_legacy(rel: &str) {
    let info = VersionInfo::decode(&bytes(rel)).unwrap();
    // Documented normalisation: a 0.2.0 reply without supportedVersions means 0.1.0 and 0.2.0.
    let mut expected = value(rel);
    expected["supportedVersions"] = json!(["0.1.0", "0.2.0"]);
    assert_json_eq(&serde_json::to_value(&info).unwrap(), &expected, rel);
    assert!(info.supports("0.1.0") && !info.supports("0.3.0"));
    // The same reply claiming another version is an error.
    assert!(matches!(VersionInfo::decode(br#"{"cniVersion":"0.3.0"}"#), Err(VersionInfoError::MissingSupported)));
}

fn check_version_1_0_0_extra(rel: &str) {
    let info = VersionInfo::decode(&bytes(rel)).unwrap();
    // Documented normalisation: unknown keys of a VERSION reply are ignored.
    let mut expected = value(rel);
    expected.as_object_mut().unwrap().remove("x-plugin");
    assert_json_eq(&serde_json::to_value(&info).unwrap(), &expected, rel);
    assert_eq!(info.cni_version, "1.0.0");
    assert_eq!(info.supported_versions, ["0.4.0", "1.0.0"]);
}

// ---------------------------------------------------------------------------------------------
// Result cache
// ---------------------------------------------------------------------------------------------

fn check_cache_v1(rel: &str) {
    let raw = bytes(rel);
    let rec = CacheRecord::from_slice(&raw).unwrap();
    // Byte-exact: the fixture is written the way Go's json.Marshal writes it.
    let text = std::str::from_utf8(&raw).unwrap().trim_end();
    assert_eq!(rec.to_go_json(), text);
    assert_eq!(rec.kind, "cniCacheV1");
    assert_eq!(
        (rec.container_id.as_str(), rec.if_name.as_str(), rec.network_name.as_str()),
        ("3f1e5d9c2b7a", "eth0", "dbnet")
    );
    assert_eq!(rec.netns, "/var/run/netns/cni-5e2c");
    let list = NetworkConfigList::from_slice(&rec.config).unwrap();
    assert_eq!(list.name, rec.network_name);
    assert_eq!(list.plugin_type(1), Some("portmap"));
    let args = CniArgs::from_pairs(rec.cni_args.iter().map(|[k, v]| (k.clone(), v.clone())));
    assert_eq!(args.k8s_pod_name(), Some("db-0"));
    assert!(args.ignore_unknown().unwrap());
    assert_eq!(rec.capability_args["portMappings"][0]["hostPort"], 15432);
    let result = CniResult::from_value(rec.result.clone().unwrap(), &list.cni_version).unwrap();
    assert_eq!(result.ips[0].address.to_string(), "10.1.0.5/16");
    assert_eq!(result.ips[0].interface, Some(0));
}

fn check_cache_v1_minimal(rel: &str) {
    let raw = bytes(rel);
    let rec = CacheRecord::from_slice(&raw).unwrap();
    assert_eq!(rec.to_go_json(), std::str::from_utf8(&raw).unwrap().trim_end());
    assert_eq!(rec, CacheRecord::new("abc", "net1", "n", b"{}".to_vec()));
    assert!(rec.netns.is_empty() && rec.cni_args.is_empty() && rec.capability_args.is_empty());
    assert_eq!(rec.result, None);
}

fn check_cache_legacy(rel: &str) {
    let raw = bytes(rel);
    // Not a cniCacheV1 record: libcni then reads the file as a bare result.
    assert!(matches!(CacheRecord::from_slice(&raw), Err(CacheError::NotV1)));
    let (r, _) = result_roundtrip(rel, &[Norm::DropEmptyDns]);
    assert_eq!(r.interfaces[0].name, "eth0");
    assert_eq!(r.to_value(SpecVersion::V1_1_0).unwrap()["ips"][0], json!({"address": "10.9.0.3/24", "interface": 0}));
}
