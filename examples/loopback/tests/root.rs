//! Execs the real `loopback` binary in throwaway network namespaces and checks the kernel's
//! state with `ip -j`. Needs root: run with `--include-ignored`.

mod common;

use cni_test_support::Netns;
use common::*;
use serde_json::json;

#[test]
fn about_and_version() {
    let r = run(RUST, "VERSION", None, "1.0.0");
    assert_eq!(r.doc()["supportedVersions"], json!(ALL));
}

#[test]
#[ignore = "needs root"]
fn add_check_del_in_a_real_namespace_every_version() {
    for v in ALL {
        let ns = Netns::bare("lo");
        let path = ns.path();
        assert!(!lo_is_up(&ns), "a new namespace has lo down");
        let doc = run(RUST, "ADD", Some(&path), v).ok();
        assert!(lo_is_up(&ns), "{v}");
        assert_eq!(lo_addrs(&ns), ["127.0.0.1/8", "::1/128"], "{v}");
        assert_eq!(doc["cniVersion"], v);
        if v >= "0.3.0" {
            assert_eq!(
                doc["interfaces"],
                json!([{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": path}]),
                "{doc}"
            );
            let addrs: Vec<&str> =
                doc["ips"].as_array().unwrap().iter().map(|i| i["address"].as_str().unwrap()).collect();
            assert_eq!(addrs, ["127.0.0.1/8", "::1/128"]);
            assert!(doc["ips"].as_array().unwrap().iter().all(|i| i["interface"] == 0));
        } else {
            assert_eq!((doc["ip4"]["ip"].as_str(), doc["ip6"]["ip"].as_str()), (Some("127.0.0.1/8"), Some("::1/128")));
        }
        if v >= "0.4.0" {
            run(RUST, "CHECK", Some(&path), v).ok();
        }
        assert_eq!(run(RUST, "DEL", Some(&path), v).ok(), serde_json::Value::Null);
        assert!(!lo_is_up(&ns), "{v}: DEL sets lo down");
        if v >= "0.4.0" {
            assert_eq!(run(RUST, "CHECK", Some(&path), v).err_msg(), "loopback interface is down");
        }
        run(RUST, "DEL", Some(&path), v).ok();
        ns.remove();
        assert!(!std::path::Path::new(&path).exists(), "namespace cleaned up");
        run(RUST, "DEL", Some(&path), v).ok();
        run(RUST, "DEL", None, v).ok();
    }
}

#[test]
#[ignore = "needs root"]
fn add_on_a_missing_namespace_fails() {
    let r = run(RUST, "ADD", Some("/var/run/netns/cnitest-lo-never-created"), "1.0.0");
    assert!(!r.success());
    r.err();
}

#[test]
#[ignore = "needs root"]
fn the_hosts_lo_is_left_alone() {
    let ns = Netns::bare("lo-host");
    let before = std::process::Command::new("ip").args(["-j", "link", "show", "lo"]).output().unwrap().stdout;
    run(RUST, "ADD", Some(&ns.path()), "1.0.0").ok();
    run(RUST, "DEL", Some(&ns.path()), "1.0.0").ok();
    let after = std::process::Command::new("ip").args(["-j", "link", "show", "lo"]).output().unwrap().stdout;
    assert_eq!(before, after);
}
