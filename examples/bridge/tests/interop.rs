//! Interop with the Go CNI stack: our `bridge` driven by Go libcni (`libcni-cnitool`) with
//! Debian's Go `host-local`, and Go's `bridge` and ours cleaning up each other's iptables rules.
//! Everything runs inside a throwaway "host" namespace. Needs root and the interop tools
//! (`bash ../shared/interop/build.sh target/interop/libcni-cnitool`; `.ci/run` does it).

use std::path::Path;

use cni_test_support::go::{PLUGIN_DIR as GO_PLUGINS, expect_ok, libcni};
use cni_test_support::{Netns, leases};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_bridge");

/// A directory holding only our `bridge`, so that `host-local` always comes from Go.
fn our_plugin_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, d.path().join("bridge")).unwrap();
    d
}

fn write_conflist(dir: &Path, version: &str, bridge: &str, subnet: &str, data: &Path) {
    let list = json!({
        "cniVersion": version,
        "name": "brinterop",
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data, "routes": [{"dst": "0.0.0.0/0"}]}
        }]
    });
    std::fs::write(dir.join("10-brinterop.conflist"), list.to_string()).unwrap();
}

fn assert_clean(host: &Netns, ctr: &Netns, bridge: &str, data: &Path, what: &str) {
    assert!(ctr.link_names().is_empty(), "{what}: container link removed");
    assert_eq!(host.link_names(), [bridge], "{what}: only the bridge is left");
    assert!(host.cni_nat_rules().is_empty(), "{what}: iptables rules removed: {:?}", host.cni_nat_rules());
    assert!(leases(data, "brinterop").is_empty(), "{what}: lease released");
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn libcni_drives_our_bridge_with_go_host_local() {
    let ours = our_plugin_dir();
    let cni_path = format!("{}:{GO_PLUGINS}", ours.path().display());
    for (i, version) in ["0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
        let host = Netns::new("brihost");
        let ctr = Netns::new("brictr");
        let conf = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        write_conflist(conf.path(), version, "cnitest-br20", &format!("10.220.{i}.0/24"), data.path());

        let r = expect_ok(
            "libcni ADD",
            &libcni(Some(&host), "add", "brinterop", conf.path(), cache.path(), &cni_path, &ctr),
        );
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][0]["name"], "cnitest-br20");
        assert_eq!(r["interfaces"][2]["name"], "eth0");
        assert_eq!(r["ips"][0]["address"], format!("10.220.{i}.2/24"));
        assert_eq!(ctr.addrs("eth0"), [format!("10.220.{i}.2/24")]);
        assert_eq!(host.addrs("cnitest-br20"), [format!("10.220.{i}.1/24")]);
        assert_eq!(host.cni_nat_rules().len(), 4, "{:?}", host.cni_nat_rules());
        if version != "0.3.1" {
            expect_ok(
                "libcni CHECK",
                &libcni(Some(&host), "check", "brinterop", conf.path(), cache.path(), &cni_path, &ctr),
            );
        }
        expect_ok("libcni DEL", &libcni(Some(&host), "del", "brinterop", conf.path(), cache.path(), &cni_path, &ctr));
        assert_clean(&host, &ctr, "cnitest-br20", data.path(), version);
    }
}

/// ADD with one implementation and CHECK + DEL with the other, through libcni.
fn cross(add_path: &str, del_path: &str, what: &str, n: u8) -> (Value, Vec<String>) {
    let host = Netns::new("brihost");
    let ctr = Netns::new("brictr");
    let cid = format!("libcni-{}", ctr.name);
    let conf = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write_conflist(conf.path(), "1.0.0", "cnitest-br21", &format!("10.221.{n}.0/24"), data.path());
    let r = expect_ok(
        &format!("{what}: ADD"),
        &libcni(Some(&host), "add", "brinterop", conf.path(), cache.path(), add_path, &ctr),
    );
    let rules = host.cni_nat_rules();
    assert_eq!(rules.len(), 4, "{what}: chain, POSTROUTING jump and two chain rules: {rules:?}");
    // The other implementation accepts the result and the state (CHECK) ...
    expect_ok(
        &format!("{what}: CHECK"),
        &libcni(Some(&host), "check", "brinterop", conf.path(), cache.path(), del_path, &ctr),
    );
    // ... and removes everything, including the iptables rules (same chain names and comments).
    expect_ok(
        &format!("{what}: DEL"),
        &libcni(Some(&host), "del", "brinterop", conf.path(), cache.path(), del_path, &ctr),
    );
    assert_clean(&host, &ctr, "cnitest-br21", data.path(), what);
    // The rules with this container's ID, chain and subnet replaced, to compare Go's and ours.
    let chain = rules.iter().find_map(|r| r.strip_prefix("-N ")).unwrap().to_owned();
    let rules = rules
        .iter()
        .map(|r| r.replace(&chain, "CHAIN").replace(&cid, "CID").replace(&format!("10.221.{n}."), "10.221.X."))
        .collect();
    (r, rules)
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn go_bridge_and_ours_clean_up_each_others_rules() {
    let ours = our_plugin_dir();
    let ours_path = format!("{}:{GO_PLUGINS}", ours.path().display());
    let (go, go_rules) = cross(GO_PLUGINS, &ours_path, "Go ADD, our CHECK/DEL", 0);
    let (rust, rust_rules) = cross(&ours_path, GO_PLUGINS, "our ADD, Go CHECK/DEL", 1);
    assert_eq!(go_rules, rust_rules, "identical iptables rules");
    // Same result shape.
    for r in [&go, &rust] {
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 3, "{r}");
        assert_eq!(r["ips"][0]["interface"], 2);
        assert_eq!(r["ips"][0]["gateway"], r["ips"][0]["address"].as_str().unwrap().replace(".2/24", ".1"));
    }
    assert_eq!(go["routes"], rust["routes"]);
    assert_eq!(go["dns"], rust["dns"]);
}
