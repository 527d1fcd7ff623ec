//! multi with two of Debian's Go bridge delegates, run by our cnitool in a real namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_multi")).parent().unwrap().to_owned()
}

#[test]
#[ignore = "needs root, Debian's Go plugins and the cnitool binary (cargo test --workspace builds it)"]
fn two_go_bridges_through_cnitool_run() {
    let cnitool = bin_dir().join("cnitool");
    assert!(cnitool.is_file(), "{} missing: run `cargo build -p cnitool`", cnitool.display());
    let conf = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bridge = |name: &str, subnet: &str| json!({"type": "bridge", "bridge": name, "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data.path()}});
    let list = json!({
        "cniVersion": "1.0.0", "name": "multinet",
        "plugins": [{"type": "multi", "delegates": [bridge("cnitest-ma", "10.245.0.0/24"), bridge("cnitest-mb", "10.246.0.0/24")]}]
    });
    std::fs::write(conf.path().join("10-multi.conflist"), list.to_string()).unwrap();
    let out = Command::new(&cnitool)
        .args(["run", "--", "ip", "-j", "addr"])
        .env("NETCONFPATH", conf.path())
        .env("CNI_PATH", format!("{}:/usr/lib/cni", bin_dir().display()))
        .env("CNI_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    for b in ["cnitest-ma", "cnitest-mb"] {
        let _ = Command::new("ip").args(["link", "del", b]).status();
    }
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    let addr_of = |name: &str| -> String {
        let link =
            links.as_array().unwrap().iter().find(|l| l["ifname"] == name).unwrap_or_else(|| panic!("{name} missing"));
        link["addr_info"].as_array().unwrap().iter().find(|a| a["family"] == "inet").unwrap()["local"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(addr_of("eth0").starts_with("10.245.0."));
    assert!(addr_of("net1").starts_with("10.246.0."));
    let leftovers = std::fs::read_dir(data.path())
        .unwrap()
        .filter_map(|d| std::fs::read_dir(d.ok()?.path()).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
        .count();
    assert_eq!(leftovers, 0, "both delegates released their leases");
}
