//! Execs the real `host-local` binary as root: the default `dataDir`
//! (`/var/lib/cni/networks`), a real throwaway namespace as `CNI_NETNS`, and DEL leaving no
//! lease behind. Run with `--include-ignored`.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use cni_sdk::netns::TempNetns;
use common::*;
use serde_json::{Value, json};

/// Removes the network's directory below the default dataDir when dropped.
struct NetDir(PathBuf);

impl Drop for NetDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn env_in(cmd: &str, id: &str, netns: &Path) -> Vec<(String, String)> {
    let mut e = env(cmd, id, "eth0");
    e.retain(|(k, _)| k != "CNI_NETNS");
    e.push(("CNI_NETNS".into(), netns.display().to_string()));
    e
}

#[test]
#[ignore = "needs root"]
fn default_data_dir_in_a_real_namespace() {
    let name = format!("cnitest-hl-{}", std::process::id());
    let dir = NetDir(Path::new("/var/lib/cni/networks").join(&name));
    let ns = TempNetns::create(&name).expect("create a network namespace (root needed)");
    let conf = json!({"cniVersion": "1.0.0", "name": name, "type": "bridge",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.215.0.0/24"}], [{"subnet": "fd00:215::/64"}]]}});
    let stdin = conf.to_string();

    let mut ips = Vec::new();
    for i in 0..3 {
        let doc: Value = exec(RUST, &env_in("ADD", &format!("ctr-{i}"), ns.path()), &stdin).ok();
        ips.push((doc["ips"][0]["address"].clone(), doc["ips"][1]["address"].clone()));
    }
    assert_eq!(ips[2], (json!("10.215.0.4/24"), json!("fd00:215::4/64")));
    assert_eq!(leases(&dir.0).len(), 6);
    let meta = fs::metadata(dir.0.join("10.215.0.2")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    assert_eq!(fs::read(dir.0.join("fd00:215::3")).unwrap(), b"ctr-1\r\neth0");
    for i in 0..3 {
        exec(RUST, &env_in("CHECK", &format!("ctr-{i}"), ns.path()), &stdin).ok();
        exec(RUST, &env_in("DEL", &format!("ctr-{i}"), ns.path()), &stdin).ok();
    }
    assert!(leases(&dir.0).is_empty(), "DEL leaves no lease: {:?}", leases(&dir.0));
    let mut left: Vec<String> =
        fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, [INDEX, "last_reserved_ip.0", "last_reserved_ip.1", "lock"]);

    // DEL after the namespace is gone still releases.
    exec(RUST, &env_in("ADD", "ctr-9", ns.path()), &stdin).ok();
    let path = ns.path().to_owned();
    ns.remove().unwrap();
    exec(RUST, &env_in("DEL", "ctr-9", &path), &stdin).ok();
    assert!(leases(&dir.0).is_empty());
}
