//! Crash safety (issue #21): the binary is stopped at every step of an ADD and of a DEL
//! (`CNI_HOST_LOCAL_FAULT=crash=<point>` makes it `SIGKILL` itself there), through both
//! reservation paths (`O_TMPFILE` and a named temporary) and with the index valid or to be
//! rebuilt; then no empty or partial lease may exist, and DEL and GC must release everything.
//! A second test kills concurrent ADDs from outside at random instants. No root needed.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

/// Every crash point of the binary, in the order an ADD or a DEL reaches them.
const POINTS: &[&str] = &[
    "index:temp-written",
    "index:renamed",
    "index:rebuilt",
    "index:begun",
    "reserve:temp-created",
    "reserve:content-written",
    "reserve:linked",
    "reserve:temp-removed",
    "cursor:temp-written",
    "cursor:renamed",
    "release:unlinked",
    "index:updated",
    "index:committed",
    "index:stamped",
];

/// The crash points named in the sources: `fault::point("...")` literals, plus the two steps
/// of every `replace_file(.., "<what>")`.
fn points_in_source() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for src in [include_str!("../src/store.rs"), include_str!("../src/index.rs")] {
        for (i, _) in src.match_indices("fault::point(\"") {
            let rest = &src[i + "fault::point(\"".len()..];
            out.insert(rest[..rest.find('"').unwrap()].to_owned());
        }
        for (i, _) in src.match_indices("replace_file(") {
            let line = &src[i..i + src[i..].find('\n').unwrap()];
            if let Some(end) = line.find("\")") {
                let what = &line[line[..end].rfind('"').unwrap() + 1..end];
                out.insert(format!("{what}:temp-written"));
                out.insert(format!("{what}:renamed"));
            }
        }
    }
    out
}

#[test]
fn every_crash_point_is_exercised() {
    let listed: BTreeSet<String> = POINTS.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(listed, points_in_source(), "POINTS must name every crash point of the binary");
}

fn config(dir: &Path, version: &str) -> Value {
    conf(version, "crash", dir, json!({"ranges": [[{"subnet": "10.233.8.0/28"}], [{"subnet": "fd00:233:8::/124"}]]}))
}

/// Runs our binary with extra environment; never panics on a killed process.
fn run(cmd: &str, id: &str, conf: &Value, extra: &[(&str, &str)]) -> Output {
    let mut child = Command::new(RUST)
        .env_clear()
        .envs(env(cmd, id, "eth0"))
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(conf.to_string().as_bytes());
    child.wait_with_output().unwrap()
}

fn ok(cmd: &str, id: &str, conf: &Value, extra: &[(&str, &str)]) -> Value {
    let out = run(cmd, id, conf, extra);
    assert!(
        out.status.success(),
        "{cmd} {id}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn gc(conf: &Value, valid: &[&str]) {
    let mut c = conf.clone();
    c["cni.dev/valid-attachments"] =
        Value::Array(valid.iter().map(|id| json!({"containerID": id, "ifname": "eth0"})).collect());
    let mut child = Command::new(RUST)
        .env_clear()
        .envs([("CNI_COMMAND", "GC"), ("CNI_PATH", "/nonexistent")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(c.to_string().as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "GC: {}", String::from_utf8_lossy(&out.stdout));
}

/// Every lease file holds the complete owner of a known container; returns (file, owner).
fn assert_no_partial_lease(dir: &Path, owners: &[&str], what: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in leases(dir) {
        let content = fs::read_to_string(dir.join(&name)).unwrap();
        assert!(
            owners.iter().any(|o| content == format!("{o}\r\neth0")),
            "{what}: {name} holds {content:?}, not a complete lease"
        );
        out.push((name, content));
    }
    out
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[derive(Clone, Copy, Debug)]
enum Setup {
    /// The index is valid when the crashing operation starts.
    Indexed,
    /// The index is missing: the crashing operation rebuilds it first.
    Unindexed,
}

#[test]
fn a_crash_at_any_step_leaves_no_partial_lease_and_del_and_gc_release_everything() {
    let mut reached = BTreeSet::new();
    for point in POINTS {
        for no_tmpfile in [false, true] {
            for setup in [Setup::Indexed, Setup::Unindexed] {
                for verb in ["ADD", "DEL"] {
                    let what = format!("{verb} crashing at {point} ({setup:?}, no-tmpfile {no_tmpfile})");
                    let tmp = tempfile::tempdir().unwrap();
                    let c = config(tmp.path(), "1.1.0");
                    let dir = tmp.path().join("crash");
                    let mode = if no_tmpfile { "no-tmpfile" } else { "" };
                    ok("ADD", "keep-1", &c, &[]);
                    ok("ADD", "keep-2", &c, &[]);
                    if verb == "DEL" {
                        ok("ADD", "victim", &c, &[]);
                    }
                    if let Setup::Unindexed = setup {
                        fs::remove_file(dir.join(INDEX)).unwrap();
                    }
                    let before = assert_no_partial_lease(&dir, &["keep-1", "keep-2", "victim"], &what);

                    let fault = format!("crash={point},{mode}");
                    let out = run(verb, "victim", &c, &[("CNI_HOST_LOCAL_FAULT", &fault)]);
                    if out.status.signal() == Some(9) {
                        reached.insert(*point);
                    } else {
                        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stdout));
                    }

                    // No empty or partial lease, whatever the step; the others' leases intact.
                    let after = assert_no_partial_lease(&dir, &["keep-1", "keep-2", "victim"], &what);
                    let keeps = |v: &[(String, String)]| -> Vec<(String, String)> {
                        v.iter().filter(|(_, c)| c.starts_with("keep-")).cloned().collect()
                    };
                    assert_eq!(keeps(&after), keeps(&before), "{what}");
                    assert!(after.len() <= before.len() + 2, "{what}: {after:?}");

                    // DEL releases what the victim holds; twice is fine.
                    ok("DEL", "victim", &c, &[]);
                    ok("DEL", "victim", &c, &[]);
                    assert_eq!(assert_no_partial_lease(&dir, &["keep-1", "keep-2"], &what), keeps(&before), "{what}");

                    // The store (and its index) is consistent: the victim comes back on fresh
                    // addresses, CHECK sees it, and GC releases it and then everything.
                    let doc = ok("ADD", "victim", &c, &[]);
                    let got: Vec<String> =
                        doc["ips"].as_array().unwrap().iter().map(|i| first_ip(&json!({"ips": [i]}))).collect();
                    assert_eq!(got.len(), 2, "{what}");
                    assert!(
                        before.iter().filter(|(_, o)| o.starts_with("keep-")).all(|(n, _)| !got.contains(n)),
                        "{what}"
                    );
                    ok("CHECK", "victim", &c, &[]);
                    gc(&c, &["keep-1", "keep-2"]);
                    assert_eq!(assert_no_partial_lease(&dir, &["keep-1", "keep-2"], &what), keeps(&before), "{what}");
                    gc(&c, &[]);
                    assert!(leases(&dir).is_empty(), "{what}: {:?}", all_files(&dir));
                    assert_eq!(
                        all_files(&dir),
                        [INDEX, "last_reserved_ip.0", "last_reserved_ip.1", "lock"],
                        "{what}: GC leaves no temporary"
                    );
                }
            }
        }
    }
    let all: BTreeSet<&str> = POINTS.iter().copied().collect();
    assert_eq!(reached, all, "every crash point was reached by some scenario");
}

/// A SplitMix64 stream: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The experiment of issue #21: concurrent ADDs killed (SIGKILL) at random instants, then
/// every pod DELed twice: no empty lease may remain, and nothing at all after the DELs.
#[test]
fn adds_killed_at_random_instants_leave_nothing_after_del() {
    let seed = std::env::var("HL_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_0021);
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let c = conf("1.1.0", "killed", tmp.path(), json!({"ranges": [[{"subnet": "10.233.9.0/24"}]]}));
    let dir = tmp.path().join("killed");
    let stdin = c.to_string();
    let mut ids = Vec::new();
    for batch in 0..12 {
        let mut children = Vec::new();
        for i in 0..16 {
            let id = format!("pod-{batch}-{i}");
            children.push((spawn(RUST, &env("ADD", &id, "eth0"), &stdin), rng.next() % 4000));
            ids.push(id);
        }
        for (child, delay_us) in &mut children {
            std::thread::sleep(std::time::Duration::from_micros(*delay_us));
            let _ = child.kill();
        }
        for (child, _) in children {
            let _ = child.wait_with_output();
        }
        for name in leases(&dir) {
            let content = fs::read_to_string(dir.join(&name)).unwrap();
            assert!(
                content.starts_with("pod-") && content.ends_with("\r\neth0") && content.len() > 10,
                "seed {seed}: {name} holds {content:?}"
            );
        }
    }
    for _ in 0..2 {
        for chunk in ids.chunks(16) {
            let children: Vec<_> = chunk.iter().map(|id| spawn(RUST, &env("DEL", id, "eth0"), &stdin)).collect();
            for ch in children {
                wait(ch).ok();
            }
        }
    }
    assert!(leases(&dir).is_empty(), "seed {seed}: {:?}", leases(&dir));
    gc(&c, &[]);
    let left = all_files(&dir);
    assert!(left.iter().all(|f| [INDEX, "last_reserved_ip.0", "lock"].contains(&f.as_str())), "seed {seed}: {left:?}");
}
