//! In-process delegation: bridge with host-local IPAM through an installed multi-call layout
//! (`cni-plugins install DIR`) delegates to host-local in its own process when `CNI_PATH` leads
//! back to the same executable, and executes it otherwise (`CNI_SDK_NO_INPROC=1`, or
//! host-local being another file). Every way gives the same result, the same host-local store
//! and the same container. Needs root (namespaces); everything lives in throwaway namespaces
//! and temporary directories.

use std::path::Path;
use std::process::Command;

use cni_test_support::{Call, Netns};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cni-plugins");
const IN_PROCESS: &str = "delegate runs in-process";
const AS_PROCESS: &str = "delegate runs as a process";

/// `cni-plugins install DIR [--hardlink]`.
fn install(dir: &Path, hardlink: bool) {
    let mut cmd = Command::new(BIN);
    cmd.arg("install").arg(dir).args(["--only", "bridge,host-local"]);
    if hardlink {
        cmd.arg("--hardlink");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "install: {}", String::from_utf8_lossy(&out.stderr));
}

/// Masks what differs between runs by design: veth names, MACs, the sandbox path.
fn mask(mut v: Value) -> Value {
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            if i.get("mac").is_some() {
                i["mac"] = json!("MAC");
            }
            if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                i["name"] = json!("VETH");
            }
            if i.get("sandbox").is_some() {
                i["sandbox"] = json!("SANDBOX");
            }
        }
    }
    v
}

/// What one bridge ADD + DEL left behind.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// The ADD result, masked.
    add: Value,
    /// Addresses of the container's `eth0` after ADD.
    ctr_addrs: Vec<String>,
    /// host-local's lease for 10.231.9.2 after ADD (container ID and interface name).
    lease: String,
    /// The ADD of a second container with the same configuration that asks for a taken address:
    /// host-local's error, as bridge reports it.
    taken: Value,
    /// DEL's stdout (nothing).
    del: Value,
    /// Whether the lease is gone after DEL.
    released: bool,
}

/// Runs bridge ADD and DEL through `dir`, with `env` added; returns the outcome and the debug log.
fn bridge_add_del(dir: &Path, env: &[(&str, &str)]) -> (Outcome, String) {
    let host = Netns::new("ip9h");
    let ctr = Netns::new("ip9c");
    let ctr2 = Netns::new("ip9d");
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("cni.log");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "ip9net", "type": "bridge", "bridge": "ip9br0", "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.231.9.0/24", "dataDir": data.path().join("ipam"),
                 "routes": [{"dst": "0.0.0.0/0"}]}
    });
    let call = |cid: &str, ns: &Netns| {
        let mut c = Call::new(dir.join("bridge"), "ADD", &conf, cid)
            .in_ns(&host)
            .netns(ns)
            .cni_path(&dir.display().to_string())
            .env("CNI_LOG_LEVEL", "debug")
            .env("CNI_LOG_FILE", &log.display().to_string());
        for (k, v) in env {
            c = c.env(k, v);
        }
        c
    };
    let add = call("ip9cid", &ctr).ok();
    let lease_path = data.path().join("ipam/ip9net/10.231.9.2");
    let lease = std::fs::read_to_string(&lease_path).unwrap_or_default();
    let ctr_addrs = ctr.addrs("eth0");
    let taken = call("ip9cid2", &ctr2).args("IgnoreUnknown=1;IP=10.231.9.2").err();
    let del = call("ip9cid", &ctr).verb("DEL").ok();
    let outcome = Outcome { add: mask(add), ctr_addrs, lease, taken, del, released: !lease_path.exists() };
    (outcome, std::fs::read_to_string(&log).unwrap_or_default())
}

/// The debug lines of `log` about delegating to host-local.
fn host_local_lines<'a>(log: &'a str, marker: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(marker) && l.contains("plugin=host-local")).collect()
}

#[test]
#[ignore = "needs root"]
fn bridge_delegates_to_host_local_in_process_with_the_same_outcome_as_exec() {
    let symlinks = tempfile::tempdir().unwrap();
    install(symlinks.path(), false);
    let hardlinks = tempfile::tempdir().unwrap();
    install(hardlinks.path(), true);
    // host-local as another file (a copy of the binary): executed although it is the same code.
    let copied = tempfile::tempdir().unwrap();
    install(copied.path(), false);
    let host_local = copied.path().join("host-local");
    std::fs::remove_file(&host_local).unwrap();
    std::fs::copy(BIN, &host_local).unwrap();

    let (inproc, inproc_log) = bridge_add_del(symlinks.path(), &[]);
    let (hard, hard_log) = bridge_add_del(hardlinks.path(), &[]);
    let (forced, forced_log) = bridge_add_del(symlinks.path(), &[("CNI_SDK_NO_INPROC", "1")]);
    let (other, other_log) = bridge_add_del(copied.path(), &[]);

    // The outcome itself is right...
    assert_eq!(inproc.add["ips"][0]["address"], "10.231.9.2/24", "{:?}", inproc.add);
    assert!(inproc.ctr_addrs.iter().any(|a| a == "10.231.9.2/24"), "{:?}", inproc.ctr_addrs);
    assert!(inproc.lease.starts_with("ip9cid"), "{:?}", inproc.lease);
    let taken = inproc.taken["msg"].as_str().unwrap_or_default();
    assert!(taken.contains("requested IP address 10.231.9.2 is not available"), "{}", inproc.taken);
    assert_eq!(inproc.del, Value::Null);
    assert!(inproc.released);
    // ... and the same every way.
    assert_eq!(inproc, forced);
    assert_eq!(hard, forced);
    assert_eq!(other, forced);

    // ADD, the failing ADD and DEL: three delegations each, in-process only through a link to
    // the running executable.
    for (what, log) in [("symlinks", &inproc_log), ("hardlinks", &hard_log)] {
        assert_eq!(host_local_lines(log, IN_PROCESS).len(), 3, "{what}:\n{log}");
        assert!(host_local_lines(log, AS_PROCESS).is_empty(), "{what}:\n{log}");
    }
    let forced_lines = host_local_lines(&forced_log, AS_PROCESS);
    assert_eq!(forced_lines.len(), 3, "{forced_log}");
    assert!(forced_lines.iter().all(|l| l.contains("reason=Disabled")), "{forced_log}");
    assert!(host_local_lines(&forced_log, IN_PROCESS).is_empty(), "{forced_log}");
    let other_lines = host_local_lines(&other_log, AS_PROCESS);
    assert_eq!(other_lines.len(), 3, "{other_log}");
    assert!(other_lines.iter().all(|l| l.contains("reason=OtherFile")), "{other_log}");
    assert!(host_local_lines(&other_log, IN_PROCESS).is_empty(), "{other_log}");
}
