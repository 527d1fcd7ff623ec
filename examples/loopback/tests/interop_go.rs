//! Ours against Debian's Go `loopback`, and ours driven by Go libcni (`libcni-cnitool`).

mod common;

use std::path::Path;
use std::process::Command;

use cni_test_support::Netns;
use common::*;
use serde_json::{Value, json};

/// The addresses of a result: `ips[].address` (with the interface index), or for 0.1.0 /
/// 0.2.0 documents `ip4.ip` / `ip6.ip`.
fn addresses(doc: &Value) -> Vec<(String, Value)> {
    if let Some(ips) = doc["ips"].as_array() {
        return ips.iter().map(|i| (i["address"].as_str().unwrap().to_owned(), i["interface"].clone())).collect();
    }
    ["ip4", "ip6"].iter().filter_map(|k| doc[k]["ip"].as_str()).map(|a| (a.to_owned(), json!(0))).collect()
}

/// Debian's Go loopback (plugins 1.1.1) prints the 1.x shape under every `cniVersion`: no
/// `version` in 0.3.x/0.4.0 `ips`, and `interfaces`/`ips` instead of `ip4`/`ip6` for 0.1.0 and
/// 0.2.0. We print each version's own form (spec §2.2), with the same interface and addresses.
fn compare(go: &Value, rs: &Value, go_ns: &str, rs_ns: &str, v: &str) {
    assert_eq!(go["cniVersion"], v);
    assert_eq!(rs["cniVersion"], v);
    assert_eq!(addresses(rs), addresses(go), "{v}\nGo:   {go}\nRust: {rs}");
    assert_eq!(go["interfaces"][0]["sandbox"], go_ns);
    if v >= "0.3.0" {
        let mut ifs = rs["interfaces"].clone();
        ifs[0]["sandbox"] = json!(go_ns);
        assert_eq!(ifs, go["interfaces"], "{v}");
        assert_eq!(rs["interfaces"][0]["sandbox"], rs_ns);
        if v < "1.0.0" {
            assert!(rs["ips"].as_array().unwrap().iter().all(|i| i["version"].is_string()), "{rs}");
        }
    } else {
        assert!(rs.get("interfaces").is_none() && rs["ip4"].is_object(), "{rs}");
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn same_results_and_errors_as_go() {
    assert!(Path::new(&go_bin()).is_file(), "Debian's Go loopback is missing");
    for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let (go_ns, rs_ns) = (Netns::bare("lo-go"), Netns::bare("lo-rs"));
        let (gp, rp) = (go_ns.path(), rs_ns.path());
        let go = run(&go_bin(), "ADD", Some(&gp), v).ok();
        let rs = run(RUST, "ADD", Some(&rp), v).ok();
        compare(&go, &rs, &gp, &rp, v);
        assert_eq!(lo_link(&go_ns)["flags"], lo_link(&rs_ns)["flags"], "{v}");
        assert_eq!(lo_addrs(&go_ns), lo_addrs(&rs_ns));
        // Each one's CHECK accepts the other's ADD, and DELs cross over.
        if v >= "0.4.0" {
            run(RUST, "CHECK", Some(&gp), v).ok();
            run(&go_bin(), "CHECK", Some(&rp), v).ok();
        }
        run(RUST, "DEL", Some(&gp), v).ok();
        run(&go_bin(), "DEL", Some(&rp), v).ok();
        assert!(!lo_is_up(&go_ns) && !lo_is_up(&rs_ns));
        if v >= "0.4.0" {
            assert_eq!(run(RUST, "CHECK", Some(&gp), v).err_msg(), run(&go_bin(), "CHECK", Some(&rp), v).err_msg());
        }
        go_ns.remove();
        rs_ns.remove();
        // A missing namespace: the same error; DEL succeeds for both.
        for cmd in ["ADD", "CHECK"] {
            if cmd == "CHECK" && v < "0.4.0" {
                continue;
            }
            let (go, rs) = (run(&go_bin(), cmd, Some(&gp), v), run(RUST, cmd, Some(&gp), v));
            assert_eq!((rs.err_msg(), rs.doc()["code"].clone()), (go.err_msg(), go.doc()["code"].clone()), "{cmd} {v}");
        }
        run(&go_bin(), "DEL", Some(&gp), v).ok();
        run(RUST, "DEL", Some(&rp), v).ok();
    }
}

fn libcni(verb: &str, confdir: &Path, cachedir: &Path, netns: &str, path: &str) -> (bool, String, String) {
    let out = Command::new(cni_test_support::go::libcni_cnitool())
        .args([verb, "lo-net", netns])
        .env("NETCONFPATH", confdir)
        .env("CNI_CACHE_DIR", cachedir)
        .env("CNI_PATH", path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn driven_by_go_libcni() {
    // Only our directory on CNI_PATH, so libcni cannot pick Debian's loopback.
    let ours = Path::new(RUST).parent().unwrap().display().to_string();
    for v in ["0.3.1", "0.4.0", "1.0.0"] {
        let confdir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let list = json!({"cniVersion": v, "name": "lo-net", "plugins": [{"type": "loopback"}]});
        std::fs::write(confdir.path().join("10-lo.conflist"), list.to_string()).unwrap();
        let ns = Netns::bare("lo-cni");
        let path = ns.path();
        let (ok, out, err) = libcni("add", confdir.path(), cache.path(), &path, &ours);
        assert!(ok, "{v}: {out} {err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["cniVersion"], v);
        assert_eq!(r["interfaces"][0]["name"], "lo");
        assert!(lo_is_up(&ns));
        if v != "0.3.1" {
            let (ok, out, err) = libcni("check", confdir.path(), cache.path(), &path, &ours);
            assert!(ok, "{v}: {out} {err}");
        }
        let (ok, out, err) = libcni("del", confdir.path(), cache.path(), &path, &ours);
        assert!(ok, "{v}: {out} {err}");
        assert!(!lo_is_up(&ns));
    }
}

#[test]
#[ignore = "needs the Go interop tools"]
fn libcni_decodes_our_version_reply() {
    let ours = Path::new(RUST).parent().unwrap().to_owned();
    let out = Command::new(cni_test_support::go::libcni_cnitool())
        .args(["version", "loopback"])
        .env("CNI_PATH", &ours)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["supportedVersions"], json!(ALL));
}
