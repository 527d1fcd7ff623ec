//! `passthrough` chained after Debian's Go `loopback`, driven by Go libcni (`libcni-cnitool`,
//! built by `../shared/interop/build.sh`; `.ci/run` builds it). Needs root for `ip netns`.

use std::path::Path;
use std::process::Command;

use cni_test_support::Netns;
use cni_test_support::go::libcni_cnitool as cnitool;
use serde_json::{Value, json};

fn libcni(verb: &str, confdir: &Path, cachedir: &Path, netns: &str) -> (bool, String, String) {
    let plugin_dir = Path::new(env!("CARGO_BIN_EXE_passthrough")).parent().unwrap().to_owned();
    let out = Command::new(cnitool())
        .args([verb, "chain", netns])
        .env("NETCONFPATH", confdir)
        .env("CNI_CACHE_DIR", cachedir)
        .env("CNI_PATH", format!("{}:/usr/lib/cni", plugin_dir.display()))
        .output()
        .expect("run libcni-cnitool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root, Debian's Go plugins and libcni-cnitool (.ci/run provides them)"]
fn chained_after_go_loopback_through_go_libcni() {
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let conf = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let list = json!({
            "cniVersion": version,
            "name": "chain",
            "plugins": [{"type": "loopback"}, {"type": "passthrough"}]
        });
        std::fs::write(conf.path().join("10-chain.conflist"), list.to_string()).unwrap();
        let ns = Netns::new("pass");

        let (ok, stdout, stderr) = libcni("add", conf.path(), cache.path(), &ns.path());
        assert!(ok, "{version}: libcni ADD failed: {stdout} {stderr}");
        let result: Value = serde_json::from_str(&stdout).expect("libcni printed the result");
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["interfaces"][0]["name"], "lo", "{version}: loopback's result passed through: {result}");
        let ips = result["ips"].as_array().unwrap();
        assert!(ips.iter().any(|ip| ip["address"] == "127.0.0.1/8"), "{result}");

        if version != "0.3.1" {
            let (ok, stdout, stderr) = libcni("check", conf.path(), cache.path(), &ns.path());
            assert!(ok, "{version}: libcni CHECK failed: {stdout} {stderr}");
        }
        let (ok, stdout, stderr) = libcni("del", conf.path(), cache.path(), &ns.path());
        assert!(ok, "{version}: libcni DEL failed: {stdout} {stderr}");
        let left: Vec<_> = std::fs::read_dir(cache.path().join("results")).map(|d| d.collect()).unwrap_or_default();
        assert!(left.is_empty(), "{version}: libcni removed its cache entry after DEL");
    }
}

#[test]
#[ignore = "needs libcni-cnitool (.ci/run builds it)"]
fn libcni_decodes_our_version_reply() {
    let plugin_dir = Path::new(env!("CARGO_BIN_EXE_passthrough")).parent().unwrap().to_owned();
    let out = Command::new(cnitool()).args(["version", "passthrough"]).env("CNI_PATH", &plugin_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["supportedVersions"], json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
}
