//! Property tests: conversions between result versions, round trips of every document type,
//! and "parsing never panics" for everything that reads untrusted input.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_types::{
    CacheRecord, CniArgs, CniResult, Dns, HardwareAddr, Interface, IpConfig, MacAddr, NetworkConfig, NetworkConfigList,
    Route, Semver, SpecVersion, VersionInfo, WireResult,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

// ---------------------------------------------------------------------------------------------
// Strategies: canonical results
// ---------------------------------------------------------------------------------------------

fn v4_net() -> impl Strategy<Value = IpNet> {
    (any::<[u8; 4]>(), 0u8..=32).prop_map(|(o, p)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(o), p).unwrap()))
}

fn v6_net() -> impl Strategy<Value = IpNet> {
    (any::<[u8; 16]>(), 0u8..=128).prop_map(|(o, p)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(o), p).unwrap()))
}

/// An address with a prefix; host bits are usually set (`10.1.0.5/16`).
fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![v4_net(), v6_net()]
}

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::from(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::from(Ipv6Addr::from(o))),
    ]
}

/// 6-, 8- or 20-octet hardware addresses, written in either case.
fn hw_addr() -> impl Strategy<Value = HardwareAddr> {
    (prop_oneof![vec(any::<u8>(), 6), vec(any::<u8>(), 8), vec(any::<u8>(), 20)], any::<bool>()).prop_map(
        |(octets, upper)| {
            let parts: Vec<String> =
                octets.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
            parts.join(":").parse().unwrap()
        },
    )
}

/// Optional numbers, including the zero Go treats as "unset".
fn opt_u32() -> impl Strategy<Value = Option<u32>> {
    option::of(prop_oneof![Just(0u32), 1u32..10_000, any::<u32>()])
}

/// Optional strings, including the empty string Go treats as "unset".
fn opt_string() -> impl Strategy<Value = Option<String>> {
    option::of(prop_oneof![Just(String::new()), "[a-z0-9/:._-]{1,16}", any::<String>()])
}

fn interface() -> impl Strategy<Value = Interface> {
    ("[a-z][a-z0-9.-]{0,14}", option::of(hw_addr()), opt_u32(), opt_string(), opt_string(), opt_string()).prop_map(
        |(name, mac, mtu, sandbox, socket_path, pci_id)| Interface { name, mac, mtu, sandbox, socket_path, pci_id },
    )
}

fn ip_config() -> impl Strategy<Value = IpConfig> {
    (net(), option::of(ip_addr()), option::of(0usize..4)).prop_map(|(address, gateway, interface)| IpConfig {
        address,
        gateway,
        interface,
    })
}

fn route() -> impl Strategy<Value = Route> {
    let extras = (
        opt_u32(),
        opt_u32(),
        opt_u32(),
        option::of(prop_oneof![Just(0u32), Just(254), any::<u32>()]),
        option::of(prop_oneof![Just(0u32), Just(253), Just(254)]),
    );
    (net(), option::of(ip_addr()), prop_oneof![Just((None, None, None, None, None)), extras]).prop_map(
        |(dst, gw, (mtu, advmss, priority, table, scope))| Route { dst, gw, mtu, advmss, priority, table, scope },
    )
}

fn dns() -> impl Strategy<Value = Dns> {
    let list = || vec("[a-z0-9.:]{1,12}", 0..3);
    (list(), opt_string(), list(), list()).prop_map(|(nameservers, domain, search, options)| Dns {
        nameservers,
        domain,
        search,
        options,
    })
}

/// Arbitrary canonical results; about a third of them have the shape 0.1.0/0.2.0 can hold.
fn result() -> impl Strategy<Value = CniResult> {
    let general = (vec(interface(), 0..3), vec(ip_config(), 0..4), vec(route(), 0..4), dns())
        .prop_map(|(interfaces, ips, routes, dns)| CniResult { interfaces, ips, routes, dns });
    // No interfaces, at most one address per family, plain routes.
    let legacy =
        (option::of(v4_net()), option::of(v6_net()), any::<bool>(), vec((net(), option::of(ip_addr())), 0..4), dns())
            .prop_map(|(v4, v6, swap, routes, dns)| {
                let mut ips: Vec<IpConfig> = [v4, v6].into_iter().flatten().map(IpConfig::new).collect();
                if swap {
                    ips.reverse();
                }
                CniResult {
                    interfaces: vec![],
                    ips,
                    routes: routes.into_iter().map(|(d, g)| Route::new(d, g)).collect(),
                    dns,
                }
            });
    prop_oneof![2 => general, 1 => legacy]
}

fn version() -> impl Strategy<Value = SpecVersion> {
    proptest::sample::select(SpecVersion::ALL.to_vec())
}

/// What printing does to values Go treats as unset: a zero MTU/advmss/priority and an empty
/// string are omitted, so they read back as `None`.
fn canon(r: &CniResult) -> CniResult {
    let zero = |v: Option<u32>| v.filter(|n| *n != 0);
    let empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let mut r = r.clone();
    for i in &mut r.interfaces {
        i.mtu = zero(i.mtu);
        i.sandbox = empty(&i.sandbox);
        i.socket_path = empty(&i.socket_path);
        i.pci_id = empty(&i.pci_id);
    }
    for rt in &mut r.routes {
        rt.mtu = zero(rt.mtu);
        rt.advmss = zero(rt.advmss);
        rt.priority = zero(rt.priority);
    }
    r.dns.domain = empty(&r.dns.domain);
    r
}

// ---------------------------------------------------------------------------------------------
// Strategies: arbitrary JSON near the CNI schemas
// ---------------------------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "plugins",
    "ipam",
    "dns",
    "args",
    "cni",
    "runtimeConfig",
    "prevResult",
    "capabilities",
    "cni.dev/valid-attachments",
    "cni.dev/attachments",
    "containerID",
    "ifname",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "interfaces",
    "ips",
    "routes",
    "ip4",
    "ip6",
    "ip",
    "gateway",
    "gw",
    "dst",
    "address",
    "version",
    "interface",
    "mac",
    "mtu",
    "sandbox",
    "socketPath",
    "pciID",
    "advmss",
    "priority",
    "table",
    "scope",
    "nameservers",
    "domain",
    "search",
    "options",
    "kind",
    "containerId",
    "config",
    "ifName",
    "networkName",
    "netns",
    "cniArgs",
    "capabilityArgs",
    "result",
    "supportedVersions",
    "portMappings",
    "hostPort",
    "containerPort",
    "protocol",
    "hostIP",
    "ipRanges",
    "subnet",
    "rangeStart",
    "rangeEnd",
    "bandwidth",
    "ingressRate",
    "deviceID",
    "aliases",
    "labels",
    "key",
    "value",
    "code",
    "msg",
    "details",
];

const STRINGS: &[&str] = &[
    "",
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
    "1.0",
    "1",
    "2.0.0",
    "0.4.0-rc1",
    "1.2.3.4",
    "true",
    "FALSE",
    "yes",
    "4",
    "6",
    "10.0.0.1",
    "10.0.0.1/24",
    "10.0.0.300/24",
    "fd00::1",
    "fd00::1/64",
    "::/0",
    "0.0.0.0/0",
    "0a:58:0a:1e:00:05",
    "C2-11-22-33-44-55",
    "c211.2233.4455",
    "cniCacheV1",
    "e30=",
    "not base64!",
    "host-local",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u32..300).prop_map(Value::from),
        // Floats with a short exact decimal form: serde_json (without its `float_roundtrip`
        // feature) may read long decimals back one ulp off, which is not this crate's concern.
        (any::<i16>(), 0i32..10)
            .prop_map(|(m, e)| { Value::Number(Number::from_f64(f64::from(m) / 2f64.powi(e)).unwrap()) }),
        proptest::sample::select(STRINGS).prop_map(Value::from),
        // MAC- and address-like strings, well- and ill-formed.
        "[0-9a-fA-F.:/-]{0,24}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KEYS).prop_map(String::from),
        1 => "[a-zA-Z./-]{0,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key(), inner), 0..8).prop_map(|kvs| Value::Object(kvs.into_iter().collect())),
        ]
    })
}

/// Objects whose keys are all schema keys (deeper hits than [`json_value`]).
fn json_object() -> impl Strategy<Value = Value> {
    vec((key(), json_value()), 0..10).prop_map(|kvs| Value::Object(kvs.into_iter().collect()))
}

/// Feeds one document to every parser; none may panic, and whatever parses must print.
fn parse_everything(bytes: &[u8]) {
    for default in std::iter::once("").chain(SpecVersion::ALL.iter().map(|v| v.as_str())) {
        if let Ok(r) = CniResult::parse(bytes, default) {
            for v in SpecVersion::ALL {
                let _ = r.is_lossless_in(v);
                if let Ok(doc) = r.to_value(v) {
                    CniResult::from_value(doc, "").expect("a printed result parses");
                }
                let _ = r.to_json(v);
            }
        }
    }
    if let Ok(conf) = serde_json::from_slice::<NetworkConfig>(bytes) {
        let _ = conf.spec_version();
        let _ = conf.parse_prev_result();
        let _ = conf.gc_attachments();
        let _ = conf.has_capability("mac");
        let printed = serde_json::to_value(&conf).unwrap();
        let again: NetworkConfig = serde_json::from_value(printed).expect("printed config parses");
        assert_eq!(again, conf);
    }
    if let Ok(list) = NetworkConfigList::from_slice(bytes) {
        let _ = list.selected_version();
        let _ = list.plugin_type(0);
        let printed = serde_json::to_vec(&list).unwrap();
        NetworkConfigList::from_slice(&printed).expect("printed list parses");
    }
    if let Ok(list) = NetworkConfigList::from_single_conf(bytes) {
        assert_eq!(list.plugins.len(), 1);
    }
    if let Ok(info) = VersionInfo::decode(bytes) {
        assert!(!info.supported_versions.is_empty());
    }
    if let Ok(rec) = CacheRecord::from_slice(bytes) {
        let again = CacheRecord::from_slice(rec.to_go_json().as_bytes()).expect("printed record");
        assert_eq!(again.config, rec.config);
    }
    let _ = serde_json::from_slice::<cni_types::CniError>(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        parse_strings(s);
    }
}

fn parse_strings(s: &str) {
    let _ = Semver::parse(s);
    let _ = s.parse::<SpecVersion>();
    let _ = SpecVersion::from_document(s);
    let _ = s.parse::<MacAddr>();
    let _ = s.parse::<HardwareAddr>();
    let _ = s.parse::<cni_types::IpRequest>();
    if let Ok(args) = CniArgs::parse(s) {
        let _ = args.ip();
        let _ = args.mac();
        let _ = args.ignore_unknown();
        let _ = args.check_known(&["IP", "MAC"]);
    }
    let _ = cni_types::ident::validate_container_id(s);
    let _ = cni_types::ident::validate_network_name(s);
    let _ = cni_types::ident::validate_interface_name(s);
    let _ = cni_types::ident::validate_plugin_type(s);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    // Integration tests have no lib.rs for proptest to put a regressions file next to.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// (a) A result that is lossless in `v` survives printing in `v` and reading back — and a
    /// result that is not, does not (so `is_lossless_in` is exact, not just cautious).
    #[test]
    fn lossless_results_survive_their_version(r in result()) {
        for v in SpecVersion::ALL {
            let back = r
                .to_value(v)
                .ok()
                .map(|doc| CniResult::from_value(doc, "").expect("printed result parses"));
            let survives = back.as_ref() == Some(&canon(&r));
            prop_assert_eq!(
                r.is_lossless_in(v), survives,
                "version {}: printed {:?}", v, r.to_value(v).ok()
            );
            // The explicit version in the document wins over any default.
            if let Ok(doc) = r.to_value(v) {
                prop_assert_eq!(CniResult::from_value(doc, "1.1.0").unwrap(), back.unwrap());
            }
        }
        // 1.x keeps everything.
        prop_assert!(r.is_lossless_in(SpecVersion::V1_1_0));
    }

    /// (b) Converting to a version projects the result onto what the version can hold: the
    /// projection converts to the same wire document again, and is lossless there.
    #[test]
    fn conversion_is_a_projection(r in result(), v in version()) {
        match r.to_wire(v) {
            Err(e) => {
                prop_assert!(!v.has_chaining() && r.ips.is_empty(), "{e}");
            }
            Ok(wire) => {
                prop_assert_eq!(wire.version(), v);
                let projected = wire.clone().into_canonical();
                prop_assert_eq!(projected.to_wire(v).unwrap(), wire.clone());
                prop_assert!(projected.is_lossless_in(v));
                // The JSON form agrees with the wire struct.
                let from_json = CniResult::from_value(wire.to_value(), "").unwrap();
                prop_assert_eq!(&from_json, &canon(&projected));
                prop_assert_eq!(
                    WireResult::from_value(wire.to_value(), "").unwrap().to_value(),
                    wire.to_value()
                );
                // Going through any other version and back to `v` gives the same projection
                // whenever the other version holds at least as much as `v`.
                for u in SpecVersion::ALL {
                    if u.family() >= v.family() {
                        let via = CniResult::from_value(projected.to_value(u).unwrap(), "").unwrap();
                        prop_assert_eq!(via.to_value(v).unwrap(), wire.to_value());
                    }
                }
            }
        }
    }

    /// (c) No parser panics on arbitrary bytes.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        parse_everything(&bytes);
    }

    /// (c) No parser panics on arbitrary JSON built from the schemas' keys and values.
    #[test]
    fn arbitrary_json_never_panics(v in prop_oneof![json_value(), json_object()]) {
        parse_everything(&serde_json::to_vec(&v).unwrap());
        for default in ["", "0.2.0", "0.4.0", "1.1.0"] {
            let _ = CniResult::from_value(v.clone(), default);
        }
        for config in SpecVersion::ALL {
            let _ = CniResult::parse_prev_result(&v, config);
        }
        // The same value as a prevResult, and in a result's or a config's key positions.
        for (k, wrap) in [
            ("prevResult", json!({"cniVersion": "1.0.0", "name": "n", "type": "t"})),
            ("runtimeConfig", json!({"cniVersion": "0.4.0", "name": "n", "type": "t"})),
            ("ips", json!({"cniVersion": "1.1.0"})),
            ("ip4", json!({"cniVersion": "0.2.0"})),
            ("interfaces", json!({"cniVersion": "0.3.1"})),
            ("plugins", json!({"cniVersion": "1.1.0", "name": "n"})),
            ("result", json!({"kind": "cniCacheV1", "containerId": "c", "config": "e30=",
                              "ifName": "eth0", "networkName": "n"})),
        ] {
            let mut doc = wrap;
            doc[k] = v.clone();
            parse_everything(&serde_json::to_vec(&doc).unwrap());
        }
    }

    /// (c) Strings: versions, MACs, CNI_ARGS, identifiers.
    #[test]
    fn arbitrary_strings_never_panic(
        s in prop_oneof![any::<String>(), "[0-9a-fA-F.:-]{0,64}", "[0-9.]{0,12}", "[A-Za-z0-9=;./]{0,32}"]
    ) {
        parse_strings(&s);
        let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "runtimeConfig": {"mac": s}});
        parse_everything(&serde_json::to_vec(&conf).unwrap());
        let res = json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mac": s}]});
        parse_everything(&serde_json::to_vec(&res).unwrap());
        if let Ok(args) = CniArgs::parse(&format!("MAC={s}")) {
            let _ = args.mac();
        }
    }

    /// Version strings: canonical ones round-trip, loose ones print in full.
    #[test]
    fn semver_display_round_trips(major in 0u64..1000, minor in 0u64..1000, micro in 0u64..1000) {
        let v = Semver::new(major, minor, micro);
        prop_assert_eq!(Semver::parse(&v.to_string()).unwrap(), v);
        prop_assert_eq!(Semver::parse(&format!("{major}.{minor}")).unwrap(), Semver::new(major, minor, 0));
        prop_assert_eq!(Semver::parse(&format!("{major}")).unwrap(), Semver::new(major, 0, 0));
        let four_parts = format!("{major}.{minor}.{micro}.0");
        prop_assert!(Semver::parse(&four_parts).is_err());
        let spec = v.to_string().parse::<SpecVersion>();
        prop_assert_eq!(spec.ok(), v.spec_version());
    }

    /// (d) A configuration keeps every key it does not know, unchanged.
    #[test]
    fn config_keeps_extra_keys(
        version in version(),
        name in "[a-z][a-z0-9-]{0,10}",
        extras in btree_map("[a-zA-Z_][a-zA-Z0-9_./-]{0,12}", json_value(), 0..6),
        with_known in any::<bool>(),
    ) {
        const WELL_KNOWN: &[&str] = &[
            "cniVersion", "name", "type", "capabilities", "ipam", "dns", "args", "runtimeConfig",
            "prevResult", "cni.dev/valid-attachments", "cni.dev/attachments",
        ];
        let extras: BTreeMap<String, Value> =
            extras.into_iter().filter(|(k, _)| !WELL_KNOWN.contains(&k.as_str())).collect();
        let mut doc = json!({"cniVersion": version.as_str(), "name": name, "type": "plug"});
        if with_known {
            doc["ipam"] = json!({"type": "host-local", "custom": [1, {"x": null}]});
            doc["runtimeConfig"] = json!({"portMappings": [{"hostPort": 1, "containerPort": 2}], "zz": 1});
        }
        for (k, v) in &extras {
            doc[k] = v.clone();
        }
        let conf: NetworkConfig = serde_json::from_slice(&serde_json::to_vec(&doc).unwrap()).unwrap();
        let expected_extra: Map<String, Value> = extras.clone().into_iter().collect();
        prop_assert_eq!(&conf.extra, &expected_extra);
        prop_assert_eq!(conf.spec_version().unwrap(), version);
        let printed = serde_json::to_value(&conf).unwrap();
        prop_assert_eq!(&printed, &doc);
        let again: NetworkConfig = serde_json::from_slice(&serde_json::to_vec(&printed).unwrap()).unwrap();
        prop_assert_eq!(again, conf);
    }

    /// (e) CNI_ARGS: parse → to_env_string reproduces the input; printing pairs parses back.
    #[test]
    fn cni_args_round_trip(
        pairs in vec(("[^;=]{0,10}", "[^;=]{0,16}"), 0..6),
        s in "[A-Za-z0-9_=;./:-]{0,40}",
    ) {
        let args = CniArgs::from_pairs(pairs.clone());
        let text = args.to_env_string();
        let parsed = CniArgs::parse(&text).unwrap();
        prop_assert_eq!(parsed.pairs(), args.pairs());
        prop_assert_eq!(parsed.to_env_string(), text);
        // Any string that parses prints back as itself, and is stable from then on.
        if let Ok(a) = CniArgs::parse(&s) {
            prop_assert_eq!(a.to_env_string(), s.clone());
            prop_assert_eq!(CniArgs::parse(&a.to_env_string()).unwrap(), a);
        } else {
            prop_assert!(!s.is_empty());
        }
        // The last value of a key wins.
        if let Some((k, v)) = pairs.last() {
            prop_assert_eq!(parsed.get(k), Some(v.as_str()));
        }
    }

    /// (f) Cache records: to_go_json → from_slice gives the record back; the text is Go's
    /// (HTML-escaped, map keys sorted) and printing again is byte-identical.
    #[test]
    fn cache_record_round_trip(
        ids in ("\\PC{0,12}", "\\PC{0,8}", "\\PC{0,12}", "\\PC{0,20}"),
        config in vec(any::<u8>(), 0..64),
        cni_args in vec(("\\PC{0,8}", "\\PC{0,8}"), 0..4),
        caps in btree_map("\\PC{0,8}", json_value(), 0..4),
        result in option::of(json_object()),
        special in proptest::sample::select(vec!["", "<", ">", "&", "\u{2028}", "\u{2029}", "a<b>&c"]),
    ) {
        let (container_id, if_name, network_name, netns) = ids;
        let mut rec = CacheRecord::new(&format!("{container_id}{special}"), &if_name, &network_name, config);
        rec.netns = netns;
        rec.cni_args = cni_args.into_iter().map(|(k, v)| [k, format!("{v}{special}")]).collect();
        rec.capability_args = caps.into_iter().collect();
        rec.result = result;
        let text = rec.to_go_json();
        for c in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
            prop_assert!(!text.contains(c), "{:?} not escaped in {}", c, text);
        }
        let back = CacheRecord::from_slice(text.as_bytes()).unwrap();
        prop_assert_eq!(&back, &rec);
        prop_assert_eq!(back.to_go_json(), text.clone());
        // Same content as a plain serialisation, with map keys sorted.
        let v: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&v, &serde_json::to_value(&rec).unwrap());
        let caps_keys: Vec<&String> = v.get("capabilityArgs").and_then(Value::as_object).map(|m| m.keys().collect()).unwrap_or_default();
        prop_assert!(caps_keys.windows(2).all(|w| w[0] <= w[1]), "sorted: {:?}", caps_keys);
    }
}

#[test]
fn mac_parsers_reject_dotted_forms_with_extra_dots() {
    // Found by the string strategy above: 14 characters with dots at 4 and 9 and one more dot.
    for s in ["aaaa.bbbb.cc.d", "aaaa.bbbb.c.dd", "a.aa.bbbb.cccc", "aaaa.bbbb....."] {
        assert!(s.parse::<MacAddr>().is_err(), "{s}");
        assert!(s.parse::<HardwareAddr>().is_err(), "{s}");
    }
    assert!("aaaa.bbbb.cccc".parse::<MacAddr>().is_ok());
}
