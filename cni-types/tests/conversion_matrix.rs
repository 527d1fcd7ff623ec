//! The full result conversion matrix (spec notes §2.5), prevResult family rules (§2.6) and the
//! edge cases of reading a result document (missing / non-string / unknown `cniVersion`,
//! `null`, non-objects).

use cni_types::{CniResult, NetworkConfig, ResultError, ResultFamily, SpecVersion, VersionError, WireResult};
use serde_json::{Value, json};

const ALL: [SpecVersion; 7] = SpecVersion::ALL;

#[track_caller]
fn assert_json_eq(actual: &Value, expected: &Value, what: &str) {
    assert!(
        actual == expected,
        "{what}: JSON differs\n--- actual ---\n{}\n--- expected ---\n{}",
        serde_json::to_string_pretty(actual).unwrap(),
        serde_json::to_string_pretty(expected).unwrap()
    );
}

/// `body` with `cniVersion` set to `v`.
fn versioned(v: SpecVersion, body: Value) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("cniVersion".into(), json!(v.as_str()));
    let body = body.as_object().expect("an object").clone();
    obj.extend(body.into_iter().filter(|(k, _)| k != "cniVersion"));
    Value::Object(obj)
}

/// The representative result for a source version, in that version's wire form.
fn representative(from: SpecVersion) -> Value {
    let body = match from {
        // One address, no DNS.
        SpecVersion::V0_1_0 => json!({
            "ip4": {
                "ip": "10.1.0.5/16",
                "gateway": "10.1.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "192.168.0.0/16"}]
            }
        }),
        // Dual stack, IPv4 without gateway, full DNS.
        SpecVersion::V0_2_0 => json!({
            "ip4": {"ip": "10.2.0.5/24", "routes": [{"dst": "10.99.0.0/16", "gw": "10.2.0.254"}]},
            "ip6": {"ip": "2001:db8:2::5/64", "gateway": "2001:db8:2::1", "routes": [{"dst": "::/0"}]},
            "dns": {
                "nameservers": ["10.2.0.1"], "domain": "two.test",
                "search": ["two.test"], "options": ["ndots:3"]
            }
        }),
        // Two interfaces (index 0 and 1), two addresses per family, one without interface.
        SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0 => json!({
            "interfaces": [
                {"name": "br0", "mac": "0a:00:00:00:00:01"},
                {"name": "eth0", "mac": "0a:00:00:00:00:02", "sandbox": "/var/run/netns/m"}
            ],
            "ips": [
                {"version": "4", "interface": 1, "address": "10.4.0.5/16", "gateway": "10.4.0.1"},
                {"version": "6", "interface": 1, "address": "fd00:4::5/64", "gateway": "fd00:4::1"},
                {"version": "4", "interface": 0, "address": "10.5.0.7/24"},
                {"version": "6", "address": "fd00:5::7/64"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.4.0.1"},
                {"dst": "::/0"},
                {"dst": "192.168.0.0/16"}
            ],
            "dns": {"nameservers": ["10.4.0.1"]}
        }),
        // IPv4 addresses only, but an IPv6 route; first IPv4 address without gateway.
        SpecVersion::V1_0_0 => json!({
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/ten"}],
            "ips": [
                {"address": "10.10.0.5/24", "interface": 0},
                {"address": "10.10.1.5/24", "gateway": "10.10.1.1", "interface": 0}
            ],
            "routes": [
                {"dst": "fd00:99::/64", "gw": "fd00::1"},
                {"dst": "0.0.0.0/0", "gw": "10.10.1.1"}
            ]
        }),
        // Every 1.1 extra; IPv6 listed before IPv4.
        SpecVersion::V1_1_0 => json!({
            "interfaces": [{
                "name": "eth0", "mac": "02:00:00:00:11:01", "mtu": 1450,
                "sandbox": "/var/run/netns/eleven", "socketPath": "/run/u.sock", "pciID": "0000:00:1f.6"
            }],
            "ips": [
                {"address": "fd00:11::5/64", "gateway": "fd00:11::1", "interface": 0},
                {"address": "10.11.0.5/24", "gateway": "10.11.0.1", "interface": 0}
            ],
            "routes": [
                {"dst": "::/0", "gw": "fd00:11::1", "mtu": 1400, "advmss": 1340, "priority": 10, "table": 100, "scope": 0},
                {"dst": "10.11.0.0/16", "scope": 253}
            ],
            "dns": {"nameservers": ["fd00:11::53"], "options": ["ndots:1"]}
        }),
        // A version added to the crate needs a representative here.
        v => panic!("no representative result for {v}"),
    };
    versioned(from, body)
}

/// The exact document expected when `from`'s representative is printed in `to`.
fn expected(from: SpecVersion, to: SpecVersion) -> Value {
    use ResultFamily::{V1, V02, V04};
    let body = match (from, to.family()) {
        (SpecVersion::V0_1_0, V02) => json!({
            "ip4": {
                "ip": "10.1.0.5/16",
                "gateway": "10.1.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "192.168.0.0/16"}]
            }
        }),
        (SpecVersion::V0_1_0, V04) => json!({
            "ips": [{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "192.168.0.0/16"}]
        }),
        (SpecVersion::V0_1_0, V1) => json!({
            "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "192.168.0.0/16"}]
        }),

        (SpecVersion::V0_2_0, V02) => representative(from).as_object().unwrap().clone().into(),
        (SpecVersion::V0_2_0, V04) => json!({
            "ips": [
                {"version": "4", "address": "10.2.0.5/24"},
                {"version": "6", "address": "2001:db8:2::5/64", "gateway": "2001:db8:2::1"}
            ],
            "routes": [{"dst": "10.99.0.0/16", "gw": "10.2.0.254"}, {"dst": "::/0"}],
            "dns": {
                "nameservers": ["10.2.0.1"], "domain": "two.test",
                "search": ["two.test"], "options": ["ndots:3"]
            }
        }),
        (SpecVersion::V0_2_0, V1) => json!({
            "ips": [
                {"address": "10.2.0.5/24"},
                {"address": "2001:db8:2::5/64", "gateway": "2001:db8:2::1"}
            ],
            "routes": [{"dst": "10.99.0.0/16", "gw": "10.2.0.254"}, {"dst": "::/0"}],
            "dns": {
                "nameservers": ["10.2.0.1"], "domain": "two.test",
                "search": ["two.test"], "options": ["ndots:3"]
            }
        }),

        // Lossy: first address per family, routes split by family, interfaces dropped.
        (SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0, V02) => json!({
            "ip4": {
                "ip": "10.4.0.5/16",
                "gateway": "10.4.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.4.0.1"}, {"dst": "192.168.0.0/16"}]
            },
            "ip6": {"ip": "fd00:4::5/64", "gateway": "fd00:4::1", "routes": [{"dst": "::/0"}]},
            "dns": {"nameservers": ["10.4.0.1"]}
        }),
        (SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0, V04) => {
            representative(from).as_object().unwrap().clone().into()
        }
        (SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0, V1) => json!({
            "interfaces": [
                {"name": "br0", "mac": "0a:00:00:00:00:01"},
                {"name": "eth0", "mac": "0a:00:00:00:00:02", "sandbox": "/var/run/netns/m"}
            ],
            "ips": [
                {"interface": 1, "address": "10.4.0.5/16", "gateway": "10.4.0.1"},
                {"interface": 1, "address": "fd00:4::5/64", "gateway": "fd00:4::1"},
                {"interface": 0, "address": "10.5.0.7/24"},
                {"address": "fd00:5::7/64"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.4.0.1"},
                {"dst": "::/0"},
                {"dst": "192.168.0.0/16"}
            ],
            "dns": {"nameservers": ["10.4.0.1"]}
        }),

        // Lossy: the IPv6 route has no IPv6 address to go with, the second IPv4 address and
        // the interface are dropped.
        (SpecVersion::V1_0_0, V02) => json!({
            "ip4": {"ip": "10.10.0.5/24", "routes": [{"dst": "0.0.0.0/0", "gw": "10.10.1.1"}]}
        }),
        (SpecVersion::V1_0_0, V04) => json!({
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/ten"}],
            "ips": [
                {"version": "4", "interface": 0, "address": "10.10.0.5/24"},
                {"version": "4", "interface": 0, "address": "10.10.1.5/24", "gateway": "10.10.1.1"}
            ],
            "routes": [
                {"dst": "fd00:99::/64", "gw": "fd00::1"},
                {"dst": "0.0.0.0/0", "gw": "10.10.1.1"}
            ]
        }),
        (SpecVersion::V1_0_0, V1) => representative(from).as_object().unwrap().clone().into(),

        // Lossy: interface mtu/socketPath/pciID and route extras do not exist before 1.1.
        (SpecVersion::V1_1_0, V02) => json!({
            "ip4": {"ip": "10.11.0.5/24", "gateway": "10.11.0.1", "routes": [{"dst": "10.11.0.0/16"}]},
            "ip6": {
                "ip": "fd00:11::5/64", "gateway": "fd00:11::1",
                "routes": [{"dst": "::/0", "gw": "fd00:11::1"}]
            },
            "dns": {"nameservers": ["fd00:11::53"], "options": ["ndots:1"]}
        }),
        (SpecVersion::V1_1_0, V04) => json!({
            "interfaces": [{"name": "eth0", "mac": "02:00:00:00:11:01", "sandbox": "/var/run/netns/eleven"}],
            "ips": [
                {"version": "6", "interface": 0, "address": "fd00:11::5/64", "gateway": "fd00:11::1"},
                {"version": "4", "interface": 0, "address": "10.11.0.5/24", "gateway": "10.11.0.1"}
            ],
            "routes": [{"dst": "::/0", "gw": "fd00:11::1"}, {"dst": "10.11.0.0/16"}],
            "dns": {"nameservers": ["fd00:11::53"], "options": ["ndots:1"]}
        }),
        (SpecVersion::V1_1_0, V1) => representative(from).as_object().unwrap().clone().into(),
        (from, family) => panic!("no expected document for {from} printed as {family:?}"),
    };
    versioned(to, body)
}

/// Whether `from`'s representative survives a trip through `to`.
fn lossless(from: SpecVersion, to: SpecVersion) -> bool {
    match from {
        SpecVersion::V0_1_0 | SpecVersion::V0_2_0 => true,
        SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0 | SpecVersion::V1_0_0 => {
            to.family() != ResultFamily::V02
        }
        SpecVersion::V1_1_0 => to.family() == ResultFamily::V1,
        v => panic!("no lossless rule for {v}"),
    }
}

#[test]
fn full_matrix() {
    let mut pairs = 0;
    for from in ALL {
        let doc = representative(from);
        let canonical = CniResult::from_value(doc.clone(), "").unwrap();
        let wire = WireResult::from_value(doc.clone(), "").unwrap();
        assert_eq!(wire.version(), from);
        // Printing in the source version gives the source document back.
        assert_json_eq(&canonical.to_value(from).unwrap(), &doc, &format!("{from} identity"));

        for to in ALL {
            let what = format!("{from} -> {to}");
            let want = expected(from, to);

            let printed = canonical.to_value(to).unwrap();
            assert_json_eq(&printed, &want, &what);
            // The other printing paths agree.
            let via_wire = wire.clone().into_canonical().to_wire(to).unwrap();
            assert_eq!(via_wire.version(), to, "{what}");
            assert_json_eq(&via_wire.to_value(), &want, &what);
            let text: Value = serde_json::from_str(&canonical.to_json(to).unwrap()).unwrap();
            assert_json_eq(&text, &want, &what);

            // Loss accounting.
            let back = CniResult::from_value(printed.clone(), "").unwrap();
            assert_eq!(canonical.is_lossless_in(to), lossless(from, to), "{what}: is_lossless_in");
            assert_eq!(back == canonical, lossless(from, to), "{what}: round trip");
            if lossless(from, to) {
                assert_json_eq(&back.to_value(from).unwrap(), &doc, &format!("{what} -> {from}"));
            }
            // Converting the converted result again changes nothing.
            assert_json_eq(&back.to_value(to).unwrap(), &want, &format!("{what} twice"));
            pairs += 1;
        }
    }
    assert_eq!(pairs, 49);
}

#[test]
fn matrix_expectations_are_not_trivial() {
    // Guard against an `expected` table that just echoes its input: the down-conversions
    // really differ from the source documents.
    for from in [SpecVersion::V0_4_0, SpecVersion::V1_0_0, SpecVersion::V1_1_0] {
        let src = representative(from);
        let down = expected(from, SpecVersion::V0_2_0);
        assert!(down.get("interfaces").is_none() && down.get("ips").is_none());
        assert!(down.get("ip4").is_some());
        assert_ne!(expected(from, SpecVersion::V0_3_1)["ips"], Value::Null);
        assert_ne!(src["cniVersion"], down["cniVersion"]);
    }
    assert_ne!(
        expected(SpecVersion::V1_1_0, SpecVersion::V0_4_0)["routes"],
        representative(SpecVersion::V1_1_0)["routes"]
    );
}

#[test]
fn same_family_versions_only_change_cni_version() {
    for family in [ResultFamily::V02, ResultFamily::V04, ResultFamily::V1] {
        for &a in family.versions() {
            for &b in family.versions() {
                let mut x = expected(a, a);
                let y = expected(a, b);
                x["cniVersion"] = json!(b.as_str());
                assert_json_eq(&y, &x, &format!("{a} -> {b}"));
            }
        }
    }
}

#[test]
fn no_ips_cannot_be_converted_to_legacy_versions() {
    for from in SpecVersion::V0_3_0.and_newer() {
        let doc = versioned(
            *from,
            json!({"interfaces": [{"name": "lo", "sandbox": "/var/run/netns/lo"}], "dns": {"nameservers": ["10.0.0.1"]}}),
        );
        let r = CniResult::from_value(doc, "").unwrap();
        for to in ALL {
            if to.has_chaining() {
                let v = r.to_value(to).unwrap();
                assert_eq!(v["interfaces"][0]["name"], "lo", "{from} -> {to}");
                assert!(r.is_lossless_in(to));
            } else {
                assert!(!r.is_lossless_in(to), "{from} -> {to}");
                let err = r.to_value(to).unwrap_err();
                assert!(matches!(err, ResultError::NoValidIp), "{from} -> {to}: {err:?}");
                assert_eq!(err.to_string(), "cannot convert: no valid IP addresses");
                assert!(matches!(r.to_wire(to), Err(ResultError::NoValidIp)));
                assert!(matches!(r.to_json(to), Err(ResultError::NoValidIp)));
            }
        }
    }
    // An empty result (loopback's, plugins#381) and an address-less 0.2.0 document too.
    for doc in [json!(null), json!({"cniVersion": "0.2.0", "dns": {"domain": "x"}})] {
        let r = CniResult::from_value(doc, "0.2.0").unwrap();
        for to in [SpecVersion::V0_1_0, SpecVersion::V0_2_0] {
            assert_eq!(r.to_value(to).unwrap_err().to_string(), "cannot convert: no valid IP addresses");
        }
        assert!(r.to_value(SpecVersion::V1_0_0).is_ok());
    }
}

#[test]
fn legacy_down_conversion_is_per_family() {
    // Only IPv6 addresses: no ip4 object, IPv4 routes dropped.
    let r = CniResult::from_value(
        json!({"cniVersion": "1.0.0",
               "ips": [{"address": "fd00::2/64"}, {"address": "fd00::3/64", "gateway": "fd00::1"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "fd01::/64"}]}),
        "",
    )
    .unwrap();
    assert_json_eq(
        &r.to_value(SpecVersion::V0_1_0).unwrap(),
        &json!({"cniVersion": "0.1.0", "ip6": {"ip": "fd00::2/64", "routes": [{"dst": "fd01::/64"}]}}),
        "v6 only",
    );
}

// ---------------------------------------------------------------------------------------------
// prevResult
// ---------------------------------------------------------------------------------------------

fn go_supported_list(family: ResultFamily) -> &'static str {
    match family {
        ResultFamily::V02 => "[0.1.0 0.2.0]",
        ResultFamily::V04 => "[0.3.0 0.3.1 0.4.0]",
        ResultFamily::V1 => "[1.0.0 1.1.0]",
        f => panic!("no Go list for {f:?}"),
    }
}

#[test]
fn prev_result_family_rules() {
    for config in ALL {
        for prev in ALL {
            let doc = representative(prev);
            let got = CniResult::parse_prev_result(&doc, config);
            if config.family() == prev.family() {
                let r = got.unwrap_or_else(|e| panic!("config {config}, prev {prev}: {e}"));
                assert_eq!(r, CniResult::from_value(doc, "").unwrap());
            } else {
                let err = got.expect_err("cross-family prevResult");
                assert!(matches!(err, ResultError::FamilyMismatch { .. }), "{err:?}");
                assert_eq!(
                    err.to_string(),
                    format!(
                        "could not parse prevResult: result type supports {} but unmarshalled CNIVersion is \"{prev}\"",
                        go_supported_list(config.family())
                    )
                );
            }
        }
    }
}

#[test]
fn prev_result_go_message_example() {
    // The exact example of the spec notes (§2.6).
    let prev = json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.2/24"}]});
    assert_eq!(
        CniResult::parse_prev_result(&prev, SpecVersion::V1_0_0).unwrap_err().to_string(),
        "could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is \"0.4.0\""
    );
}

#[test]
fn prev_result_without_version_is_read_as_config_version() {
    for config in ALL {
        // A document of the configuration's shape, with cniVersion removed.
        let mut doc = representative(config);
        doc.as_object_mut().unwrap().remove("cniVersion");
        let r = CniResult::parse_prev_result(&doc, config).unwrap();
        assert_eq!(r, CniResult::from_value(representative(config), "").unwrap(), "{config}");
        assert!(!r.ips.is_empty(), "{config}: parsed with the right shape");
    }
}

#[test]
fn prev_result_through_network_config() {
    let conf = |version: &str, prev: Option<Value>| -> NetworkConfig {
        let mut v = json!({"cniVersion": version, "name": "n", "type": "t"});
        if let Some(p) = prev {
            v["prevResult"] = p;
        }
        serde_json::from_value(v).unwrap()
    };
    assert!(conf("1.0.0", None).parse_prev_result().unwrap().is_none());
    let same = conf("1.1.0", Some(representative(SpecVersion::V1_0_0)));
    assert_eq!(same.parse_prev_result().unwrap().unwrap().ips.len(), 2);
    let cross = conf("0.3.1", Some(representative(SpecVersion::V1_1_0)));
    assert!(matches!(cross.parse_prev_result(), Err(ResultError::FamilyMismatch { .. })));
    // The configuration's version picks the parser: an unknown one fails even with a good
    // prevResult.
    let unknown = conf("0.5.0", Some(representative(SpecVersion::V0_4_0)));
    assert!(matches!(
        unknown.parse_prev_result(),
        Err(ResultError::Version(VersionError::Unsupported(v))) if v == "0.5.0"
    ));
    // An empty configuration version means 0.1.0.
    let legacy = conf("", Some(json!({"ip4": {"ip": "10.0.0.2/8"}})));
    assert_eq!(legacy.parse_prev_result().unwrap().unwrap().ips.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Reading result documents
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_version_uses_default() {
    let v04 = json!({"ips": [{"version": "4", "address": "10.0.0.2/24"}]});
    for default in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let wire = WireResult::from_value(v04.clone(), default).unwrap();
        assert_eq!(wire.version().as_str(), default);
        assert_eq!(wire.into_canonical().ips[0].address.to_string(), "10.0.0.2/24");
    }
    // An empty string (missing, "" or null) is 0.1.0: the 0.x `ip4` shape.
    let v02 = json!({"ip4": {"ip": "10.0.0.2/24"}});
    for doc in [
        v02.clone(),
        json!({"cniVersion": "", "ip4": {"ip": "10.0.0.2/24"}}),
        json!({"cniVersion": null, "ip4": {"ip": "10.0.0.2/24"}}),
    ] {
        let wire = WireResult::from_value(doc, "").unwrap();
        assert_eq!(wire.version(), SpecVersion::V0_1_0);
        assert_eq!(wire.into_canonical().ips.len(), 1);
    }
    // The default applies to an empty cniVersion too.
    let wire = WireResult::from_value(json!({"cniVersion": "", "ips": []}), "1.1.0").unwrap();
    assert_eq!(wire.version(), SpecVersion::V1_1_0);
    // And a present version always wins over the default.
    let r = CniResult::parse(br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#, "1.0.0");
    assert_eq!(r.unwrap().ips.len(), 1);
}

#[test]
fn null_result_is_empty() {
    for default in std::iter::once("").chain(ALL.iter().map(|v| v.as_str())) {
        assert_eq!(CniResult::parse(b"null", default).unwrap(), CniResult::default());
        assert_eq!(CniResult::from_value(Value::Null, default).unwrap(), CniResult::default());
        let wire = WireResult::from_value(Value::Null, default).unwrap();
        assert_eq!(wire.version(), SpecVersion::from_document(default).unwrap());
    }
    assert_eq!(CniResult::parse(b" {} ", "1.0.0").unwrap(), CniResult::default());
}

#[test]
fn non_string_version_is_an_error() {
    for version in [json!(1.0), json!(1), json!(true), json!(["1.0.0"]), json!({"v": "1.0.0"})] {
        let doc = json!({"cniVersion": version, "ips": []});
        let err = CniResult::from_value(doc, "1.0.0").unwrap_err();
        assert!(matches!(err, ResultError::VersionNotString), "{version}: {err:?}");
        assert_eq!(err.to_string(), "result cniVersion is not a string");
    }
}

#[test]
fn unknown_version_is_an_error() {
    for version in ["0.5.0", "1.0", "1", "2.0.0", "v1.0.0", "1.1.0 ", "1.0.0-rc1"] {
        let doc = json!({"cniVersion": version});
        let err = CniResult::from_value(doc, "1.0.0").unwrap_err();
        match &err {
            ResultError::Version(VersionError::Unsupported(v)) => assert_eq!(v, version),
            other => panic!("{version:?}: {other:?}"),
        }
        assert!(err.to_string().contains(&format!("{version:?}")), "{err}");
    }
    // An unknown default version only matters when the document has none.
    assert!(CniResult::parse(b"{}", "9.9.9").is_err());
    assert!(CniResult::parse(br#"{"cniVersion":"1.0.0"}"#, "9.9.9").is_ok());
}

#[test]
fn malformed_documents_are_parse_errors() {
    let cases: [(&[u8], &str); 9] = [
        (b"", "1.0.0"),
        (b"{", "1.0.0"),
        (b"[]", "1.0.0"),
        (b"42", "1.0.0"),
        (b"\"1.0.0\"", "1.0.0"),
        // Arrays are not results, even when they would fill the struct's fields in order.
        (br#"["1.1.0"]"#, "1.1.0"),
        (br#"["0.4.0", [], [], [], {}]"#, "0.4.0"),
        (br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#, ""),
        (br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2"}}"#, ""),
    ];
    for (doc, default) in cases {
        let text = String::from_utf8_lossy(doc);
        let err = CniResult::parse(doc, default).expect_err(&text);
        assert!(matches!(err, ResultError::Parse { .. }), "{text}: {err:?}");
        assert!(err.to_string().starts_with("failed to parse "), "{err}");
    }
    let err = CniResult::parse(br#"{"cniVersion":"0.4.0","ips":[{"address":"x"}]}"#, "").unwrap_err();
    assert!(err.to_string().starts_with("failed to parse 0.4.0 result: "), "{err}");
}

#[test]
fn legacy_versions_put_ip4_before_ip6() {
    // An IPv6 address listed first comes back second from 0.1.0/0.2.0, so that is not lossless.
    let r = CniResult::from_value(
        json!({"cniVersion": "1.0.0", "ips": [{"address": "fd00::2/64"}, {"address": "10.0.0.2/24"}]}),
        "",
    )
    .unwrap();
    for v in [SpecVersion::V0_1_0, SpecVersion::V0_2_0] {
        assert!(!r.is_lossless_in(v), "{v}");
        let back = CniResult::from_value(r.to_value(v).unwrap(), "").unwrap();
        assert_eq!(back.ips[0].address.to_string(), "10.0.0.2/24");
        assert!(back.is_lossless_in(v));
    }
    assert!(r.is_lossless_in(SpecVersion::V0_4_0));
}
