//! Helpers shared by the subprocess tests: exec a plugin binary with a clean environment.
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// Our binary.
pub const RUST: &str = env!("CARGO_BIN_EXE_host-local");
/// Debian's Go reference plugin.
pub const GO: &str = "/usr/lib/cni/host-local";

/// What a run printed.
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

    /// Asserts success and returns the result document.
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "failed: {} {}", self.stdout, self.stderr);
        if self.stdout.is_empty() { Value::Null } else { self.doc() }
    }

    /// Asserts failure and returns the error message.
    pub fn err(&self) -> String {
        assert_ne!(self.code, 0, "unexpected success: {}", self.stdout);
        self.doc()["msg"].as_str().unwrap_or_default().to_owned()
    }
}

/// The `CNI_*` environment for a verb (with `CNI_PATH`, which Go's skel requires).
pub fn env(cmd: &str, id: &str, ifname: &str) -> Vec<(String, String)> {
    [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", "/var/run/netns/cnitest-does-not-exist"),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/nonexistent"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn spawn(bin: &str, env: &[(String, String)], stdin: &str) -> Child {
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    // A plugin may exit before reading stdin (an early error): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child
}

pub fn wait(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn exec(bin: &str, env: &[(String, String)], stdin: &str) -> Run {
    let out = cni_sdk::testing::run_binary(bin, env.iter().map(|(k, v)| (k, v)), stdin.as_bytes());
    Run { code: out.exit_code, stdout: out.stdout_text(), stderr: out.stderr }
}

/// Runs a verb for (id, ifname).
pub fn verb(bin: &str, cmd: &str, id: &str, ifname: &str, conf: &Value) -> Run {
    exec(bin, &env(cmd, id, ifname), &conf.to_string())
}

/// A network configuration named `name` with this `ipam` section (dataDir added).
pub fn conf(version: &str, name: &str, data_dir: &Path, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data_dir);
    json!({"cniVersion": version, "name": name, "type": "bridge", "ipam": ipam})
}

/// Our index file in a network directory.
pub const INDEX: &str = ".cni-rs.index";

/// Lease file names of a network directory (without `lock`, `last_reserved_ip.*` and our
/// `.cni-rs.*` index and temporaries).
pub fn leases(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    v.retain(|n| n != "lock" && !n.starts_with("last_reserved_ip.") && !n.starts_with(".cni-rs."));
    v.sort();
    v
}

/// The first address of an ADD result (any version ≥ 0.3.0) without prefix.
pub fn first_ip(doc: &Value) -> String {
    let a = doc["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no ips in {doc}"));
    a.split('/').next().unwrap().to_owned()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `libcni-cnitool` (`LIBCNI_CNITOOL`, else `<workspace>/target/interop/libcni-cnitool`).
pub fn cnitool() -> PathBuf {
    let p = std::env::var_os("LIBCNI_CNITOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/interop/libcni-cnitool"));
    assert!(
        p.is_file(),
        "{} missing: run /work/shared/interop/build.sh target/interop/libcni-cnitool (.ci/run does)",
        p.display()
    );
    p
}

/// Asserts Debian's Go plugin is installed.
pub fn need_go() {
    assert!(Path::new(GO).is_file(), "{GO} missing: run /work/shared/interop/build.sh (installs Debian's Go plugins)");
}
