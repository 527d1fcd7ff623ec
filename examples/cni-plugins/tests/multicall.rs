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
        stderr.contains("one of these names: bridge, ptp, host-local, loopback, passthrough, route-override, multi,"),
        "{stderr}"
    );
}

/// Every plugin of the suite, as `cni-plugins list` prints them.
const SUITE: [&str; 22] = [
    "bridge",
    "ptp",
    "host-local",
    "loopback",
    "passthrough",
    "route-override",
    "multi",
    "macvlan",
    "ipvlan",
    "vlan",
    "host-device",
    "dummy",
    "tap",
    "static",
    "dhcp",
    "tuning",
    "portmap",
    "firewall",
    "bandwidth",
    "sbr",
    "vrf",
    "cni-plugins",
];

#[test]
fn install_lays_out_every_plugin_and_each_link_answers_as_its_plugin() {
    let (code, listed, _) = run(Path::new(BIN), &["list"], &[], "");
    assert_eq!(code, 0);
    let listed: Vec<&str> = listed.lines().collect();
    // Every name listed is a plugin of Go's suite (or an example of ours), and no name twice.
    let mut unique = listed.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), listed.len(), "{listed:?}");
    assert!(listed.iter().all(|n| SUITE.contains(n)), "{listed:?}");

    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(Path::new(BIN), &["install", dir.path().to_str().unwrap()], &[], "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), listed.len() + 1, "{stdout}");
    for name in &listed {
        let link = dir.path().join(name);
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("cni-plugins"), "{name}");
        let (code, stdout, _) = run(&link, &[], &[("CNI_COMMAND", "VERSION")], "{\"cniVersion\":\"1.0.0\"}");
        assert_eq!(code, 0, "{name}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert!(v["supportedVersions"].as_array().is_some_and(|a| !a.is_empty()), "{name}: {stdout}");
    }
    // Installing again replaces everything in place and leaves no temporary file.
    let (code, _, stderr) =
        run(Path::new(BIN), &["install", dir.path().to_str().unwrap(), "--only", "bridge"], &[], "");
    assert_eq!(code, 0, "{stderr}");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (code, _, stderr) = run(Path::new(BIN), &["install"], &[], "");
    assert_eq!(code, 1);
    assert!(stderr.contains("install needs a directory") && stderr.contains("usage:"), "{stderr}");
}
