//! Hostile input to real processes, the in-process binary and the shim in front of the daemon:
//! environment values that are not UTF-8, interface names at the length limit, identifiers with
//! path tricks, oversized and deeply nested stdin. Each run exits 1 with exactly one error object
//! of the expected code (or succeeds), and the daemon keeps serving.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead as _, BufReader};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cni_sdk::testing::{Outcome, run_binary};
use serde_json::json;

const INPROC: &str = env!("CARGO_BIN_EXE_memory-ipam-inproc");
const SHIM: &str = env!("CARGO_BIN_EXE_memory-ipam");

struct Daemon(Child);

impl Daemon {
    fn start(socket: &Path) -> Self {
        let mut child =
            Command::new(env!("CARGO_BIN_EXE_memory-ipamd")).arg(socket).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening on"), "{line}");
        Self(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn conf() -> Vec<u8> {
    json!({"cniVersion": "1.0.0", "name": "hostnet", "type": "memory-ipam",
           "ipam": {"type": "memory-ipam", "subnet": "10.224.70.0/24"}})
    .to_string()
    .into_bytes()
}

/// Runs `bin` for ADD with the standard environment, `overrides` replacing entries.
fn run(bin: &str, socket: &Path, overrides: &[(&str, &OsStr)], stdin: &[u8]) -> Outcome {
    let mut env: Vec<(OsString, OsString)> = [
        ("CNI_DAEMON_SOCKET", socket.as_os_str()),
        ("CNI_COMMAND", OsStr::new("ADD")),
        ("CNI_CONTAINERID", OsStr::new("ctr1")),
        ("CNI_NETNS", OsStr::new("/nonexistent")),
        ("CNI_IFNAME", OsStr::new("eth0")),
        ("CNI_PATH", OsStr::new("/opt/cni/bin")),
    ]
    .iter()
    .map(|(k, v)| (OsString::from(k), v.to_os_string()))
    .collect();
    for (k, v) in overrides {
        env.retain(|(key, _)| key != k);
        env.push((OsString::from(k), v.to_os_string()));
    }
    run_binary(bin, env, stdin)
}

fn both(socket: &Path, check: impl Fn(&str, Outcome)) {
    for bin in [INPROC, SHIM] {
        let name = Path::new(bin).file_name().unwrap().to_string_lossy().into_owned();
        check(&name, run(bin, socket, &[], &conf()));
    }
}

#[test]
fn hostile_environment_and_stdin_through_both_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("h.sock");
    let _daemon = Daemon::start(&socket);
    both(&socket, |bin, out| assert_eq!(out.exit_code, 0, "{bin}: {}", out.stdout_text()));

    let not_utf8 = OsStr::from_bytes(b"/var/run/netns/\xff\xfe");
    // (environment overrides, stdin, expected code, part of the expected message)
    type Case<'a> = (Vec<(&'a str, &'a OsStr)>, Vec<u8>, u32, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec![("CNI_NETNS", not_utf8)], conf(), 4, "CNI_NETNS is not valid UTF-8"),
        (vec![("CNI_IFNAME", OsStr::from_bytes(b"eth\xc3"))], conf(), 4, "CNI_IFNAME is not valid UTF-8"),
        (vec![("CNI_ARGS", OsStr::from_bytes(b"K8S_POD_NAME=\x80"))], conf(), 4, "CNI_ARGS is not valid UTF-8"),
        (vec![("CNI_IFNAME", OsStr::new("a234567890123456"))], conf(), 4, "interface name is too long"),
        (vec![("CNI_CONTAINERID", OsStr::new("../../etc/passwd"))], conf(), 4, "invalid characters in containerID"),
        (
            vec![],
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            6,
            "error unmarshall network config",
        ),
        (
            vec![],
            format!(
                r#"{{"cniVersion":"1.0.0","name":"hostnet","type":"memory-ipam","x":{}1{}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
            6,
            "recursion limit exceeded",
        ),
    ];
    for (env, stdin, code, msg) in &cases {
        for bin in [INPROC, SHIM] {
            let out = run(bin, &socket, env, stdin);
            let e = out.expect_error(*code);
            assert!(e.msg.contains(msg), "{bin} {env:?}: {}", e.msg);
        }
    }
    // A variable the plugin does not use may hold anything.
    for bin in [INPROC, SHIM] {
        let out = run(bin, &socket, &[("HOME", not_utf8)], &conf());
        assert_eq!(out.exit_code, 0, "{}", out.stdout_text());
    }
    // An interface name of exactly 15 bytes is fine.
    for bin in [INPROC, SHIM] {
        let out = run(bin, &socket, &[("CNI_IFNAME", OsStr::new("a23456789012345"))], &conf());
        assert_eq!(out.exit_code, 0, "{}", out.stdout_text());
    }
    // 16 MiB on stdin: code 5 from either binary, which stop reading at the cap.
    let mut huge = conf();
    huge.pop();
    huge.extend_from_slice(br#","pad":""#);
    huge.resize(16 << 20, b'x');
    for bin in [INPROC, SHIM] {
        let e = run(bin, &socket, &[], &huge).expect_error(5);
        assert_eq!(e.msg, "network configuration on stdin is larger than the plugin's limit of 4194304 bytes");
    }
    // The daemon still serves.
    both(&socket, |bin, out| assert_eq!(out.exit_code, 0, "{bin}: {}", out.stdout_text()));
}
