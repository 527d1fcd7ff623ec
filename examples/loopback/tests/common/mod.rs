//! Helpers shared by the loopback subprocess tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use cni_sdk::netns::TempNetns;
use serde_json::{Value, json};

pub const RUST: &str = env!("CARGO_BIN_EXE_loopback");
pub const GO: &str = "/usr/lib/cni/loopback";
pub const ALL: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn doc(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?} {}", self.stdout, self.stderr))
    }
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "failed: {} {}", self.stdout, self.stderr);
        if self.stdout.is_empty() { Value::Null } else { self.doc() }
    }
    pub fn err(&self) -> String {
        assert_ne!(self.code, 0, "unexpected success: {}", self.stdout);
        self.doc()["msg"].as_str().unwrap_or_default().to_owned()
    }
}

/// Runs `bin` for `cmd` in the namespace at `netns` (`None`: `CNI_NETNS` unset).
pub fn run(bin: &str, cmd: &str, netns: Option<&str>, version: &str) -> Run {
    let mut env =
        vec![("CNI_COMMAND", cmd), ("CNI_CONTAINERID", "ctr-lo"), ("CNI_IFNAME", "eth0"), ("CNI_PATH", "/nonexistent")];
    env.extend(netns.map(|ns| ("CNI_NETNS", ns)));
    let conf = json!({"cniVersion": version, "name": "lo-net", "type": "loopback"});
    let out = cni_sdk::testing::run_binary(bin, env, conf.to_string().as_bytes());
    Run { code: out.exit_code, stdout: out.stdout_text(), stderr: out.stderr }
}

/// A fresh namespace with a unique name (removed on drop).
pub fn netns(tag: &str) -> TempNetns {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("cnitest-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    TempNetns::create(&name).expect("create a network namespace (root needed)")
}

/// `ip -n NS -j link show lo`.
pub fn lo_link(ns: &TempNetns) -> Value {
    let out = Command::new("ip").args(["-n", ns.name(), "-j", "link", "show", "lo"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

pub fn lo_is_up(ns: &TempNetns) -> bool {
    lo_link(ns)["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

/// The addresses on `lo` as `addr/prefix`.
pub fn lo_addrs(ns: &TempNetns) -> Vec<String> {
    let out = Command::new("ip").args(["-n", ns.name(), "-j", "addr", "show", "lo"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["addr_info"]
        .as_array()
        .map(|a| a.iter().map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"])).collect())
        .unwrap_or_default()
}

pub fn path_of(ns: &TempNetns) -> String {
    ns.path().display().to_string()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn cnitool() -> PathBuf {
    let p = std::env::var_os("LIBCNI_CNITOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/interop/libcni-cnitool"));
    assert!(p.is_file(), "{} missing: run /work/shared/interop/build.sh target/interop/libcni-cnitool", p.display());
    p
}
