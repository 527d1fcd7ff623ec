//! Interop with the Go CNI stack: Go's `tuning` and ours restore each other's backups, and our
//! `tuning` chained after Go's `bridge` + `host-local` through Go libcni (and Go's `tuning`
//! checked and deleted after our ADD, and the other way round).

use std::path::Path;
use std::process::Command;

use cni_test_support::{Netns, go};
use serde_json::{Value, json};

use crate::common::{OURS, Pod, link_state};

const MAC: &str = "c2:b0:57:49:47:f2";

#[test]
#[ignore = "needs root and Debian's Go plugins"]
fn go_and_ours_restore_each_others_backups() {
    let go_tuning = go::plugin("tuning");
    let go_tuning = go_tuning.to_str().unwrap();
    // txQLen is left out: Go 1.1.1 predates it.
    let keys = json!({"mac": MAC, "mtu": 1400, "promisc": true, "allmulti": true});
    for (add, del) in [(go_tuning, OURS), (OURS, go_tuning)] {
        let pod = Pod::new("m2i");
        let orig = pod.link();
        let conf = pod.conf("1.0.0", keys.clone());
        pod.call(add, "ADD", &conf).ok();
        assert_eq!(
            pod.link(),
            json!({"address": MAC, "mtu": 1400, "txqlen": orig["txqlen"], "promisc": true, "allmulti": true})
        );
        let mut saved = pod.backup().unwrap();
        saved.as_object_mut().unwrap().remove("network");
        assert_eq!(saved, json!({"mac": orig["address"], "promisc": false, "mtu": 1500, "allmulti": false}), "{add}");
        pod.call(del, "DEL", &conf).ok();
        assert_eq!(pod.link(), orig, "ADD by {add}, DEL by {del}");
        assert!(pod.files().is_empty(), "ADD by {add}, DEL by {del}: {:?}", pod.files());
    }
}

/// A directory whose `tuning` is ours, for the front of `CNI_PATH`.
fn our_plugin_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(OURS, d.path().join("tuning")).unwrap();
    d
}

/// Go libcni's `verb` from `host`, with capability arguments.
fn libcni(host: &Netns, verb: &str, confdir: &Path, cache: &Path, cni_path: &str, ctr: &Netns, caps: &Value) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", &host.name])
        .arg(go::libcni_cnitool())
        .args([verb, "m2chain", &ctr.path()])
        .env("CNI_CONTAINERID", format!("libcni-{}", ctr.name))
        .env("NETCONFPATH", confdir)
        .env("CNI_CACHE_DIR", cache)
        .env("CNI_PATH", cni_path)
        .env("CAP_ARGS", caps.to_string())
        .output()
        .unwrap();
    go::expect_ok(&format!("libcni {verb} ({cni_path})"), &out)
}

#[test]
#[ignore = "needs root, Debian's Go plugins and libcni-cnitool"]
fn chained_after_gos_bridge_through_go_libcni() {
    let ours = our_plugin_dir();
    let ours_first = format!("{}:{}", ours.path().display(), go::PLUGIN_DIR);
    let go_only = go::PLUGIN_DIR.to_owned();
    // (ADD path, CHECK and DEL path): ours, Go's, and each after the other.
    let mixes = [(&ours_first, &ours_first), (&go_only, &go_only), (&ours_first, &go_only), (&go_only, &ours_first)];
    for (n, (add_path, later_path)) in mixes.into_iter().enumerate() {
        let host = Netns::new("m2lh");
        let ctr = Netns::new("m2lc");
        let confdir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let leases = tempfile::tempdir().unwrap();
        let backups = tempfile::tempdir().unwrap();
        let list = json!({
            "cniVersion": "1.0.0",
            "name": "m2chain",
            "plugins": [
                {"type": "bridge", "bridge": "m2br0", "isGateway": true,
                 "ipam": {"type": "host-local", "subnet": format!("10.223.{}.0/24", 10 + n), "dataDir": leases.path()}},
                // promisc is set so that Go's CHECK (strict both ways) passes too; the sysctl
                // names the interface (Go 1.1.1's CHECK cannot substitute IFNAME).
                {"type": "tuning", "capabilities": {"mac": true}, "mtu": 1400, "promisc": true,
                 "dataDir": backups.path(), "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1", "net.core.somaxconn": "256"}}
            ]
        });
        std::fs::write(confdir.path().join("10-m2chain.conflist"), list.to_string()).unwrap();
        let caps = json!({"mac": MAC});
        let what = format!("ADD with {add_path}, CHECK/DEL with {later_path}");

        let result = libcni(&host, "add", confdir.path(), cache.path(), add_path, &ctr, &caps);
        let eth0 = result["interfaces"].as_array().unwrap().iter().find(|i| i["name"] == "eth0").unwrap();
        assert_eq!(eth0["mac"], MAC, "{what}: {result}");
        let link = link_state(&ctr, "eth0");
        assert_eq!(
            (&link["address"], &link["mtu"], &link["promisc"]),
            (&json!(MAC), &json!(1400), &json!(true)),
            "{what}"
        );
        assert_eq!(ctr.sysctl("net.core.somaxconn"), "256");
        assert_eq!(ctr.sysctl("net.ipv4.conf.eth0.arp_notify"), "1");
        assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 1, "{what}");

        libcni(&host, "check", confdir.path(), cache.path(), later_path, &ctr, &caps);
        libcni(&host, "del", confdir.path(), cache.path(), later_path, &ctr, &caps);
        assert!(ctr.link("eth0").is_none(), "{what}");
        assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0, "{what}");
        assert!(cni_test_support::leases(leases.path(), "m2chain").is_empty(), "{what}");
        // A second DEL through libcni succeeds too (both tuning plugins: nothing left to do).
        libcni(&host, "del", confdir.path(), cache.path(), later_path, &ctr, &caps);
    }
}
