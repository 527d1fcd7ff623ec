//! Interop with the Go CNI stack: our `host-device` driven by Go libcni (ADD, CHECK, DEL) with
//! Go's `host-local`, and libcni switching between Go's plugin and ours between ADD and DEL (the
//! `ifalias` convention is shared). Needs root and the interop tools (`bash
//! ../shared/interop/build.sh target/interop/libcni-cnitool`).

mod common;

use std::path::Path;

use cni_test_support::go::{self, PLUGIN_DIR, expect_ok, libcni};
use cni_test_support::{Netns, leases};
use common::{BIN, conf, state, with_prev, world};
use serde_json::{Value, json};

/// A directory with our plugin under its name, first in `CNI_PATH`.
fn our_plugin_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, d.path().join("host-device")).unwrap();
    d
}

fn write_conflist(dir: &Path, version: &str, data: &Path) {
    let mut plugin = conf(
        version,
        json!({
            "device": "hd0",
            "ipam": {"type": "host-local", "subnet": "10.217.70.0/24", "dataDir": data,
                     "routes": [{"dst": "10.217.71.0/24", "gw": "10.217.70.1"}]}
        }),
    );
    let obj = plugin.as_object_mut().unwrap();
    obj.remove("cniVersion");
    obj.remove("name");
    let list = json!({"cniVersion": version, "name": "hdinterop", "plugins": [plugin]});
    std::fs::write(dir.join("10-hdinterop.conflist"), list.to_string()).unwrap();
}

fn tool(host: &Netns, verb: &str, conf: &Path, cache: &Path, cni_path: &str, ctr: &Netns) -> Value {
    expect_ok(
        &format!("libcni {verb} ({cni_path})"),
        &libcni(Some(host), verb, "hdinterop", conf, cache, cni_path, ctr),
    )
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn libcni_drives_our_host_device() {
    let _ = go::plugin("host-local");
    let ours = our_plugin_dir();
    let cni_path = format!("{}:{PLUGIN_DIR}", ours.path().display());
    for version in ["0.4.0", "1.0.0"] {
        let (host, ctr) = world("p2hdi");
        let (confdir, cache, data) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_conflist(confdir.path(), version, data.path());
        let r = tool(&host, "add", confdir.path(), cache.path(), &cni_path, &ctr);
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][0]["name"], "eth0");
        assert_eq!(r["interfaces"][0]["mac"], "02:17:00:00:60:01");
        let s = state(&ctr, "eth0").unwrap();
        assert_eq!(
            (s["alias"].clone(), s["up"].clone(), s["addrs"].clone()),
            (json!("hd0"), json!(true), json!(["10.217.70.2/24"]))
        );
        // CHECK directly too, with the same prevResult libcni passes.
        let single = conf(version, json!({"device": "hd0"}));
        let mut as_prev = r.clone();
        as_prev["ips"] = json!([]);
        as_prev["routes"] = json!([]);
        cni_test_support::Call::new(BIN, "CHECK", &with_prev(&single, &as_prev), "x").in_ns(&host).netns(&ctr).ok();
        tool(&host, "check", confdir.path(), cache.path(), &cni_path, &ctr);
        tool(&host, "del", confdir.path(), cache.path(), &cni_path, &ctr);
        assert!(ctr.link("eth0").is_none());
        assert_eq!(state(&host, "hd0").unwrap()["alias"], Value::Null);
        assert!(leases(data.path(), "hdinterop").is_empty(), "{version}");
        tool(&host, "del", confdir.path(), cache.path(), &cni_path, &ctr);
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn libcni_with_go_for_add_and_ours_for_del_and_back() {
    let ours = our_plugin_dir();
    let ours_first = format!("{}:{PLUGIN_DIR}", ours.path().display());
    for (add_path, del_path) in
        [(PLUGIN_DIR.to_owned(), ours_first.clone()), (ours_first.clone(), PLUGIN_DIR.to_owned())]
    {
        let (host, ctr) = world("p2hdj");
        let (confdir, cache, data) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_conflist(confdir.path(), "1.0.0", data.path());
        tool(&host, "add", confdir.path(), cache.path(), &add_path, &ctr);
        assert_eq!(state(&ctr, "eth0").unwrap()["alias"], "hd0");
        tool(&host, "check", confdir.path(), cache.path(), &del_path, &ctr);
        tool(&host, "del", confdir.path(), cache.path(), &del_path, &ctr);
        assert!(ctr.link("eth0").is_none(), "ADD via {add_path}");
        assert_eq!(state(&host, "hd0").unwrap()["name"], "hd0", "ADD via {add_path}");
        assert!(leases(data.path(), "hdinterop").is_empty());
    }
}
