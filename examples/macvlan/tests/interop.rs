//! Interop with the Go CNI stack: our `macvlan` driven by Go libcni (ADD, CHECK, DEL) with Go's
//! `host-local`, and Go's `macvlan` and ours taking over each other's attachments. Needs root
//! and the interop tools (`bash ../shared/interop/build.sh target/interop/libcni-cnitool`).

use std::path::Path;

use cni_test_support::{Netns, go, leases};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_macvlan");

fn our_plugin_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, d.path().join("macvlan")).unwrap();
    d
}

fn write_conflist(dir: &Path, version: &str, net: u8, data: &Path) {
    let list = json!({
        "cniVersion": version,
        "name": "mvinterop",
        "plugins": [{
            "type": "macvlan",
            "master": "up0",
            "mode": "bridge",
            "mtu": 1400,
            "ipam": {
                "type": "host-local", "subnet": format!("10.216.{net}.0/24"), "dataDir": data,
                // A default route: Go's CHECK cannot find a non-default route without a
                // gateway (it compares the kernel's gateway with none), even after its own ADD.
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        }]
    });
    std::fs::write(dir.join("10-mvinterop.conflist"), list.to_string()).unwrap();
}

/// ADD with `add_path`, then CHECK and DEL with `check_del_path`, all through Go libcni; returns
/// the ADD result and the container's link as `ip -d -j` showed it.
fn run(add_path: &str, check_del_path: &str, version: &str, net: u8, what: &str) -> (Value, Value) {
    let host = Netns::new("mvihost");
    let ctr = Netns::new("mvictr");
    host.sh(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    host.sh(&["ip", "link", "set", "up0", "up"]);
    let conf = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write_conflist(conf.path(), version, net, data.path());
    let libcni =
        |verb: &str, path: &str| go::libcni(Some(&host), verb, "mvinterop", conf.path(), cache.path(), path, &ctr);
    let r = go::expect_ok(&format!("{what}: ADD"), &libcni("add", add_path));
    assert_eq!(r["cniVersion"], version);
    let eth0 = ctr.link("eth0").unwrap_or_else(|| panic!("{what}: no eth0"));
    assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(eth0["linkinfo"]["info_data"]["mode"], "bridge");
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(ctr.addrs("eth0"), [format!("10.216.{net}.2/24")]);
    assert_eq!(leases(data.path(), "mvinterop").len(), 1);
    if version != "0.3.1" {
        go::expect_ok(&format!("{what}: CHECK"), &libcni("check", check_del_path));
        // CHECK fails once the interface differs from the cached result.
        ctr.sh(&["ip", "addr", "flush", "dev", "eth0"]);
        let out = libcni("check", check_del_path);
        assert!(!out.status.success(), "{what}: CHECK passed without the address");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(&format!("Failed to match addr 10.216.{net}.2/24 on interface eth0")), "{what}: {text}");
    }
    go::expect_ok(&format!("{what}: DEL"), &libcni("del", check_del_path));
    assert!(ctr.link_names().is_empty(), "{what}: {:?}", ctr.link_names());
    assert!(leases(data.path(), "mvinterop").is_empty(), "{what}");
    go::expect_ok(&format!("{what}: second DEL"), &libcni("del", check_del_path));
    (r, eth0)
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn libcni_drives_our_macvlan_with_go_host_local() {
    let ours = our_plugin_dir();
    let ours_path = format!("{}:{}", ours.path().display(), go::PLUGIN_DIR);
    for (i, version) in ["0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
        let net = 60 + u8::try_from(i).unwrap();
        let (r, eth0) = run(&ours_path, &ours_path, version, net, version);
        assert_eq!(r["interfaces"][0]["name"], "eth0");
        assert_eq!(r["interfaces"][0]["mac"], eth0["address"]);
        assert_eq!(r["ips"][0]["interface"], 0);
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn go_macvlan_and_ours_take_over_each_others_attachments() {
    let ours = our_plugin_dir();
    let ours_path = format!("{}:{}", ours.path().display(), go::PLUGIN_DIR);
    let (go_r, _) = run(go::PLUGIN_DIR, &ours_path, "1.0.0", 70, "Go ADD, our CHECK/DEL");
    let (our_r, _) = run(&ours_path, go::PLUGIN_DIR, "1.0.0", 70, "our ADD, Go CHECK/DEL");
    let strip = |r: &Value| {
        let mut r = r.clone();
        r["interfaces"][0]["mac"] = json!("MAC");
        r["interfaces"][0]["sandbox"] = json!("SANDBOX");
        r.as_object_mut().unwrap().remove("dns");
        r
    };
    assert_eq!(strip(&go_r), strip(&our_r));
}
