//! Interop with the Go CNI stack: our `ptp` driven by Go libcni with Go's `host-local`, and Go's
//! `ptp` and ours cleaning up each other's state and iptables rules. Needs root and the interop
//! tools (`bash ../shared/interop/build.sh target/interop/libcni-cnitool`).

use std::path::Path;

use cni_test_support::go::{PLUGIN_DIR as GO_PLUGINS, expect_ok, libcni};
use cni_test_support::{Netns, leases};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ptp");

fn our_plugin_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, d.path().join("ptp")).unwrap();
    d
}

fn write_conflist(dir: &Path, version: &str, subnet: &str, data: &Path) {
    let list = json!({
        "cniVersion": version,
        "name": "ptpinterop",
        "plugins": [{
            "type": "ptp",
            "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data, "routes": [{"dst": "0.0.0.0/0"}]}
        }]
    });
    std::fs::write(dir.join("10-ptpinterop.conflist"), list.to_string()).unwrap();
}

fn run(add_path: &str, check_del_path: &str, version: &str, n: u8, what: &str) -> (Value, Vec<String>) {
    let host = Netns::new("ptpihost");
    let ctr = Netns::new("ptpictr");
    let cid = format!("libcni-{}", ctr.name);
    let conf = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write_conflist(conf.path(), version, &format!("10.240.{n}.0/24"), data.path());
    let r = expect_ok(
        &format!("{what}: ADD"),
        &libcni(Some(&host), "add", "ptpinterop", conf.path(), cache.path(), add_path, &ctr),
    );
    assert_eq!(r["cniVersion"], version);
    let rules = host.cni_nat_rules();
    assert_eq!(rules.len(), 4, "{what}: {rules:?}");
    let mut routes: Vec<String> = ctr.routes4().iter().map(|r| r.to_string()).collect();
    routes.sort();
    if version != "0.3.1" {
        expect_ok(
            &format!("{what}: CHECK"),
            &libcni(Some(&host), "check", "ptpinterop", conf.path(), cache.path(), check_del_path, &ctr),
        );
    }
    expect_ok(
        &format!("{what}: DEL"),
        &libcni(Some(&host), "del", "ptpinterop", conf.path(), cache.path(), check_del_path, &ctr),
    );
    assert!(ctr.link_names().is_empty(), "{what}");
    assert!(host.link_names().is_empty(), "{what}");
    assert!(host.cni_nat_rules().is_empty(), "{what}: {:?}", host.cni_nat_rules());
    assert!(leases(data.path(), "ptpinterop").is_empty(), "{what}");
    let chain = rules.iter().find_map(|r| r.strip_prefix("-N ")).unwrap().to_owned();
    let mut norm: Vec<String> = rules
        .iter()
        .map(|r| r.replace(&chain, "CHAIN").replace(&cid, "CID").replace(&format!("10.240.{n}."), "10.240.X."))
        .collect();
    norm.extend(routes.iter().map(|r| r.replace(&format!("10.240.{n}."), "10.240.X.")));
    (r, norm)
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn libcni_drives_our_ptp_with_go_host_local() {
    let ours = our_plugin_dir();
    let ours_path = format!("{}:{GO_PLUGINS}", ours.path().display());
    for (i, version) in ["0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
        let (r, _) = run(&ours_path, &ours_path, version, u8::try_from(i).unwrap(), version);
        assert_eq!(r["interfaces"][1]["name"], "eth0");
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn go_ptp_and_ours_clean_up_each_other() {
    let ours = our_plugin_dir();
    let ours_path = format!("{}:{GO_PLUGINS}", ours.path().display());
    let (go, go_state) = run(GO_PLUGINS, &ours_path, "1.0.0", 10, "Go ADD, our CHECK/DEL");
    let (rust, rust_state) = run(&ours_path, GO_PLUGINS, "1.0.0", 11, "our ADD, Go CHECK/DEL");
    assert_eq!(go_state, rust_state, "same iptables rules and container routes");
    assert_eq!(go["ips"], rust["ips"].to_string().replace("10.240.11.", "10.240.10.").parse::<Value>().unwrap());
    assert_eq!(go["routes"], rust["routes"]);
}
