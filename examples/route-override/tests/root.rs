//! route-override chained after Debian's Go bridge + host-local, run by our cnitool in a real
//! private namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_route-override")).parent().unwrap().to_owned()
}

#[test]
#[ignore = "needs root, Debian's Go plugins and the cnitool binary (cargo test --workspace builds it)"]
fn chained_after_go_bridge_through_cnitool_run() {
    let cnitool = bin_dir().join("cnitool");
    assert!(
        cnitool.is_file(),
        "{} missing: run `cargo build -p cnitool` (cargo test --workspace does)",
        cnitool.display()
    );
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let conf = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let list = json!({
        "cniVersion": "1.0.0", "name": "ronet",
        "plugins": [
            {"type": "bridge", "bridge": "cnitest-ro", "isGateway": true,
             "ipam": {"type": "host-local", "subnet": "10.241.0.0/24", "dataDir": data.path(), "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "route-override", "flushgateway": true, "addroutes": [{"dst": "10.242.0.0/16", "gw": "10.241.0.1"}]}
        ]
    });
    std::fs::write(conf.path().join("10-ro.conflist"), list.to_string()).unwrap();
    let out = Command::new(&cnitool)
        .args(["run", "--", "ip", "-j", "route"])
        .env("NETCONFPATH", conf.path())
        .env("CNI_PATH", format!("{}:/usr/lib/cni", bin_dir().display()))
        .env("CNI_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let _ = Command::new("ip").args(["link", "del", "cnitest-ro"]).status();
    // The gateway bridge turned on forwarding in this (the host's) namespace: restore it.
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", forwarding);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let routes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dsts: Vec<&str> = routes.as_array().unwrap().iter().map(|r| r["dst"].as_str().unwrap()).collect();
    assert!(!dsts.contains(&"default"), "default route flushed: {dsts:?}");
    assert!(dsts.contains(&"10.242.0.0/16"), "route added: {dsts:?}");
    let leases = std::fs::read_dir(data.path().join("ronet")).unwrap().filter_map(|e| e.ok());
    assert!(leases.filter(|e| e.file_name().to_string_lossy().starts_with("10.")).count() == 0, "DEL ran");
}
