//! Interop with the Go CNI stack: our `tap` driven by Go libcni (ADD, CHECK, DEL) with Go's
//! `host-local`, alone and chained before Go's `tuning` (which reads our result as its
//! prevResult). Needs root and the interop tools (`bash ../shared/interop/build.sh
//! target/interop/libcni-cnitool`).

use std::path::Path;

use cni_test_support::go::{self, PLUGIN_DIR, expect_ok, libcni};
use cni_test_support::{Netns, leases};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_tap");

fn our_plugin_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, d.path().join("tap")).unwrap();
    d
}

fn write_conflist(dir: &Path, version: &str, plugins: Value) {
    let list = json!({"cniVersion": version, "name": "tapinterop", "plugins": plugins});
    std::fs::write(dir.join("10-tapinterop.conflist"), list.to_string()).unwrap();
}

fn cycle(version: &str, plugins: Value, what: &str) -> (Value, Value) {
    let _ = go::plugin("host-local");
    let ours = our_plugin_dir();
    let cni_path = format!("{}:{PLUGIN_DIR}", ours.path().display());
    let host = Netns::new("p2tih");
    let ctr = Netns::new("p2tic");
    let conf = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_conflist(conf.path(), version, plugins);
    let r = expect_ok(
        &format!("{what}: ADD"),
        &libcni(Some(&host), "add", "tapinterop", conf.path(), cache.path(), &cni_path, &ctr),
    );
    let link = ctr.link("eth0").unwrap_or_else(|| panic!("{what}: no eth0 in {:?}", ctr.link_names()));
    expect_ok(
        &format!("{what}: CHECK"),
        &libcni(Some(&host), "check", "tapinterop", conf.path(), cache.path(), &cni_path, &ctr),
    );
    expect_ok(
        &format!("{what}: DEL"),
        &libcni(Some(&host), "del", "tapinterop", conf.path(), cache.path(), &cni_path, &ctr),
    );
    assert!(ctr.link_names().is_empty(), "{what}: {:?}", ctr.link_names());
    // A second DEL (libcni has dropped its cache entry; the plugins must still succeed).
    expect_ok(
        &format!("{what}: DEL again"),
        &libcni(Some(&host), "del", "tapinterop", conf.path(), cache.path(), &cni_path, &ctr),
    );
    assert!(host.link_names().is_empty(), "{what}");
    (r, link)
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn libcni_drives_our_tap_with_go_host_local() {
    for version in ["0.4.0", "1.0.0"] {
        let data = tempfile::tempdir().unwrap();
        let plugins = json!([{
            "type": "tap", "multiQueue": true, "mtu": 1400,
            "ipam": {"type": "host-local", "subnet": "10.217.40.0/24", "dataDir": data.path(),
                     "routes": [{"dst": "0.0.0.0/0"}]}
        }]);
        let (r, link) = cycle(version, plugins, version);
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][0]["name"], "eth0");
        assert_eq!(r["interfaces"][0]["mac"], link["address"]);
        assert_eq!(r["ips"][0]["address"], "10.217.40.2/24");
        assert_eq!(link["mtu"], 1400);
        assert_eq!(link["linkinfo"]["info_data"]["multi_queue"], true);
        assert!(leases(data.path(), "tapinterop").is_empty(), "{version}");
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn libcni_chains_go_tuning_after_our_tap() {
    let data = tempfile::tempdir().unwrap();
    let plugins = json!([
        {"type": "tap", "owner": 60217, "group": 60218,
         "ipam": {"type": "host-local", "subnet": "10.217.41.0/24", "dataDir": data.path()}},
        {"type": "tuning", "mac": "02:00:00:21:74:01", "promisc": true}
    ]);
    let (r, link) = cycle("1.0.0", plugins, "tap + tuning");
    // Go's tuning found our interface in the prevResult, changed it and reported the new MAC.
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:21:74:01");
    assert_eq!(link["address"], "02:00:00:21:74:01");
    assert!(link["flags"].as_array().unwrap().contains(&json!("PROMISC")), "{link}");
    assert_eq!(link["linkinfo"]["info_data"]["user"], 60217);
    assert!(leases(data.path(), "tapinterop").is_empty());
}
