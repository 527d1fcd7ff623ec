//! The shim and daemon binaries as real processes over a unix socket (no root needed).

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon and waits for its readiness line (the socket accepts connections then).
    fn start(socket: &Path) -> Self {
        let mut child =
            Command::new(env!("CARGO_BIN_EXE_memory-ipamd")).arg(socket).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("listening on {}", socket.display()), "readiness line");
        assert!(socket.exists(), "daemon created its socket");
        Self { child, socket: socket.to_owned() }
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful shutdown exits 0: {status:?}");
        assert!(!self.socket.exists(), "socket removed");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn conf() -> Value {
    json!({"cniVersion": "1.0.0", "name": "memnet", "type": "memory-ipam",
           "ipam": {"type": "memory-ipam", "subnet": "10.236.0.0/24", "gateway": "10.236.0.1"}})
}

fn call(bin: &str, socket: &Path, cmd: &str, id: &str, netns: &str) -> (i32, Value) {
    let socket = socket.to_str().unwrap();
    let env = [
        ("CNI_DAEMON_SOCKET", socket),
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];
    let out = cni_sdk::testing::run_binary(bin, env, conf().to_string().as_bytes());
    (out.exit_code, out.document().unwrap_or(Value::Null))
}

const SHIM: &str = env!("CARGO_BIN_EXE_memory-ipam");

#[test]
fn concurrent_add_and_del_through_the_shim() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("m.sock");
    let daemon = Daemon::start(&socket);
    let adds: Vec<(i32, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let socket = &socket;
                s.spawn(move || call(SHIM, socket, "ADD", &format!("ctr{i}"), "/nonexistent"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: BTreeSet<String> = adds
        .iter()
        .map(|(code, doc)| {
            assert_eq!(*code, 0, "{doc}");
            doc["ips"][0]["address"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(addrs.len(), 32, "32 distinct addresses");
    assert!(!addrs.contains("10.236.0.1/24"), "gateway never handed out");
    assert_eq!(call(SHIM, &socket, "CHECK", "ctr3", "/nonexistent").0, 0);

    std::thread::scope(|s| {
        for i in 0..32 {
            let socket = &socket;
            s.spawn(move || assert_eq!(call(SHIM, socket, "DEL", &format!("ctr{i}"), "/nonexistent").0, 0));
        }
    });
    let (code, doc) = call(SHIM, &socket, "CHECK", "ctr3", "/nonexistent");
    assert_eq!((code, doc["msg"].as_str()), (1, Some("no lease for ctr3 eth0")));
    daemon.stop();
}

#[test]
fn daemon_restart_between_add_and_del() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("r.sock");
    let daemon = Daemon::start(&socket);
    // A path that exists stands for a live container namespace (the shim only checks existence).
    let live = dir.path().join("live-netns");
    std::fs::write(&live, b"").unwrap();
    let live = live.to_str().unwrap();
    let (code, first) = call(SHIM, &socket, "ADD", "r1", "/nonexistent");
    assert_eq!(code, 0);
    daemon.stop();

    // Daemon down: ADD says "try again later", DEL of a live namespace too, DEL of a gone one succeeds.
    let (code, doc) = call(SHIM, &socket, "ADD", "r2", "/nonexistent");
    assert_eq!((code, doc["code"].as_u64()), (1, Some(11)));
    let (code, doc) = call(SHIM, &socket, "DEL", "r1", live);
    assert_eq!((code, doc["code"].as_u64()), (1, Some(11)));
    let (code, _) = call(SHIM, &socket, "DEL", "r1", "/nonexistent");
    assert_eq!(code, 0);

    // Back up: the runtime's retried DEL and a new ADD work.
    let daemon = Daemon::start(&socket);
    assert_eq!(call(SHIM, &socket, "DEL", "r1", live).0, 0);
    let (code, again) = call(SHIM, &socket, "ADD", "r1", "/nonexistent");
    assert_eq!(code, 0);
    assert_eq!(again["ips"], first["ips"], "a fresh daemon hands out the first address again");
    daemon.stop();
}

#[test]
fn same_plugin_in_process_and_behind_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let daemon = Daemon::start(&socket);
    let (code, via_daemon) = call(SHIM, &socket, "ADD", "x1", "/nonexistent");
    assert_eq!(code, 0);
    let (code, in_process) = call(env!("CARGO_BIN_EXE_memory-ipam-inproc"), &socket, "ADD", "x1", "/nonexistent");
    assert_eq!(code, 0);
    assert_eq!(via_daemon, in_process, "byte-identical documents either way");
    let (code, version) = call(SHIM, Path::new("/nonexistent.sock"), "VERSION", "", "");
    assert_eq!((code, version["supportedVersions"].as_array().map(Vec::len)), (0, Some(7)));
    daemon.stop();
}
