//! The multi-call binary dispatches on the name it is invoked as.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cni-plugins");
const NAMES: [(&str, &str); 3] = [
    ("passthrough", "CNI passthrough plugin v0.1.0"),
    ("route-override", "CNI route-override plugin v0.1.0"),
    ("multi", "CNI multi (meta) plugin v0.1.0"),
];

fn run(exe: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(exe)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A plugin may exit before reading stdin (an early error): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn symlinks_and_hardlinks_select_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, about)) in NAMES.iter().enumerate() {
        let link = dir.path().join(name);
        if i % 2 == 0 {
            std::os::unix::fs::symlink(BIN, &link).unwrap();
        } else if std::fs::hard_link(BIN, &link).is_err() {
            // Another filesystem: fall back to a copy, which dispatches the same way.
            std::fs::copy(BIN, &link).unwrap();
        }
        let (code, stdout, stderr) = run(&link, &[], &[], "");
        assert_eq!((code, stdout.as_str()), (0, ""));
        assert!(stderr.starts_with(about), "{name}: {stderr}");
        let (code, stdout, _) = run(&link, &[], &[("CNI_COMMAND", "VERSION")], "{\"cniVersion\":\"0.4.0\"}");
        assert_eq!(code, 0);
        assert!(stdout.starts_with("{\"cniVersion\":\"0.4.0\""), "{stdout}");
    }
    // A real request through a link: passthrough returns the prevResult.
    let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"passthrough","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.247.0.2/24"}]}}"#;
    let env = [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/nonexistent"), ("CNI_IFNAME", "eth0")];
    let (code, stdout, _) = run(&dir.path().join("passthrough"), &[], &env, conf);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["ips"][0]["address"], "10.247.0.2/24");
}

#[test]
fn own_name_takes_the_plugin_from_the_first_argument() {
    let (code, _, stderr) = run(Path::new(BIN), &["multi"], &[], "");
    assert_eq!(code, 0);
    assert!(stderr.starts_with("CNI multi (meta) plugin"), "{stderr}");
    let (code, _, stderr) = run(Path::new(BIN), &["bogus"], &[], "");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("one of these names: bridge, ptp, host-local, loopback, passthrough, route-override, multi"),
        "{stderr}"
    );
}
