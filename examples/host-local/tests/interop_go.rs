//! Go's host-local (Debian's `/usr/lib/cni/host-local`) and ours on one `dataDir`, and ours
//! driven by Go libcni (`libcni-cnitool`). Run with `--include-ignored` after
//! `/work/shared/interop/build.sh target/interop/libcni-cnitool` (as root).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Versions both plugins support (Debian's Go plugins stop at 1.0.0).
const SHARED: [&str; 6] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Replaces the address-dependent parts so two results can be compared. Go prints an empty
/// `"dns": {}` in 0.x results where the SDK omits it (semantically equal, notes §8 D8).
fn shape(mut doc: Value) -> Value {
    if let Some(ips) = doc.get_mut("ips").and_then(Value::as_array_mut) {
        for ip in ips {
            ip["address"] = json!("X");
        }
    }
    if let Some(ip4) = doc.get_mut("ip4") {
        ip4["ip"] = json!("X");
    }
    let obj = doc.as_object_mut().unwrap();
    if obj.get("dns") == Some(&json!({})) {
        obj.remove("dns");
    }
    doc
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn go_and_rust_alternate_on_one_data_dir() {
    need_go();
    for v in SHARED {
        let tmp = tempfile::tempdir().unwrap();
        let c = conf(v, "shared", tmp.path(), json!({"subnet": "10.209.0.0/24", "routes": [{"dst": "10.99.0.0/16"}]}));
        let dir = tmp.path().join("shared");

        let go1 = verb(GO, "ADD", "go-1", "eth0", &c).ok();
        let rs2 = verb(RUST, "ADD", "rs-2", "eth0", &c).ok();
        let go3 = verb(GO, "ADD", "go-3", "eth0", &c).ok();
        let rs4 = verb(RUST, "ADD", "rs-4", "eth0", &c).ok();
        let addr = |d: &Value| d["ips"][0]["address"].as_str().or(d["ip4"]["ip"].as_str()).unwrap().to_owned();
        let got: Vec<String> = [&go1, &rs2, &go3, &rs4].iter().map(|d| addr(d)).collect();
        assert_eq!(
            got,
            ["10.209.0.2/24", "10.209.0.3/24", "10.209.0.4/24", "10.209.0.5/24"],
            "{v}: round robin across both"
        );
        assert_eq!(shape(go1.clone()), shape(rs2.clone()), "{v}: same result shape\nGo:   {go1}\nRust: {rs2}");

        // The files are byte-identical in format, whoever wrote them. Modes: we follow upstream
        // main (0600); Debian's older Go plugin (1.1.1) writes 0644 — both read each other's.
        assert_eq!(fs::read(dir.join("10.209.0.2")).unwrap(), b"go-1\r\neth0");
        assert_eq!(fs::read(dir.join("10.209.0.3")).unwrap(), b"rs-2\r\neth0");
        assert!([0o600, 0o644].contains(&mode(&dir.join("10.209.0.2"))));
        assert_eq!(mode(&dir.join("10.209.0.3")), 0o600);
        assert_eq!(fs::read(dir.join("last_reserved_ip.0")).unwrap(), b"10.209.0.5");
        assert_eq!(mode(&dir.join("lock")) & !0o750, 0, "lock: 0750 minus the umask");

        // Each sees the other's leases.
        assert!(verb(RUST, "ADD", "go-1", "eth0", &c).err().contains("duplicate allocation is not allowed"));
        assert!(verb(GO, "ADD", "rs-2", "eth0", &c).err().contains("duplicate allocation is not allowed"));
        if v >= "0.4.0" {
            verb(RUST, "CHECK", "go-1", "eth0", &c).ok();
            verb(GO, "CHECK", "rs-2", "eth0", &c).ok();
            assert_eq!(verb(RUST, "CHECK", "nobody", "eth0", &c).err(), verb(GO, "CHECK", "nobody", "eth0", &c).err());
        }
        // Cross DELs release.
        verb(GO, "DEL", "rs-2", "eth0", &c).ok();
        verb(RUST, "DEL", "go-1", "eth0", &c).ok();
        assert_eq!(leases(&dir), ["10.209.0.4", "10.209.0.5"]);
        // Requested addresses taken by the other implementation.
        let mut req = c.clone();
        req["args"] = json!({"cni": {"ips": ["10.209.0.4"]}});
        assert_eq!(verb(RUST, "ADD", "x", "eth0", &req).err(), verb(GO, "ADD", "x", "eth0", &req).err());
        verb(RUST, "DEL", "go-3", "eth0", &c).ok();
        verb(GO, "DEL", "rs-4", "eth0", &c).ok();
        assert!(leases(&dir).is_empty());
        // Round robin continues from Go's cursor.
        assert_eq!(addr(&verb(RUST, "ADD", "rs-5", "eth0", &c).ok()), "10.209.0.6/24");
        assert_eq!(addr(&verb(GO, "ADD", "go-6", "eth0", &c).ok()), "10.209.0.7/24");
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn same_results_as_go_for_every_option() {
    need_go();
    let tmp = tempfile::tempdir().unwrap();
    let rc = tmp.path().join("resolv.conf");
    fs::write(
        &rc,
        "nameserver 10.210.0.53\nnameserver fd00:210::53\ndomain x.test\nsearch a.test b.test\noptions ndots:3\n",
    )
    .unwrap();
    for v in ["0.3.1", "0.4.0", "1.0.0"] {
        let ipam = json!({
            "subnet": "10.210.1.0/24", "rangeStart": "10.210.1.20", "rangeEnd": "10.210.1.30", "gateway": "10.210.1.254",
            "ranges": [[{"subnet": "fd00:210::/64", "rangeStart": "fd00:210::10"}], [{"subnet": "10.210.2.0/24"}, {"subnet": "10.210.3.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:210::1"}],
            "resolvConf": rc,
        });
        let go_dir = tempfile::tempdir().unwrap();
        let rs_dir = tempfile::tempdir().unwrap();
        let mut go_c = conf(v, "opts", go_dir.path(), ipam.clone());
        let mut rs_c = conf(v, "opts", rs_dir.path(), ipam.clone());
        for c in [&mut go_c, &mut rs_c] {
            c["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.210.4.0/24", "rangeStart": "10.210.4.9"}]]});
        }
        let go = verb(GO, "ADD", "c", "eth0", &go_c).ok();
        let rs = verb(RUST, "ADD", "c", "eth0", &rs_c).ok();
        assert_eq!(shape(rs.clone()), shape(go.clone()), "{v}");
        assert_eq!(rs["ips"], go["ips"], "{v}");
        // The stores hold the same files with the same contents (besides our index).
        let names = |d: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(d.join("opts"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name() != INDEX)
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(rs_dir.path()), names(go_dir.path()), "{v}");
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn same_errors_as_go() {
    need_go();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), ""),
        (json!({"ranges": [[]]}), ""),
        (json!({"subnet": "10.211.0.0/31"}), ""),
        (json!({"subnet": "fd00:211::/127"}), ""),
        (json!({"subnet": "10.211.0.3/24"}), ""),
        (json!({"subnet": "10.211.0.0/24", "rangeStart": "10.211.1.1"}), ""),
        (json!({"subnet": "10.211.0.0/24", "rangeEnd": "10.211.1.1"}), ""),
        (json!({"subnet": "10.211.0.0/24", "rangeStart": "10.211.0.9", "rangeEnd": "10.211.0.5"}), ""),
        (json!({"ranges": [[{"subnet": "10.211.0.0/24"}, {"subnet": "fd00:211::/64"}]]}), ""),
        (json!({"ranges": [[{"subnet": "10.211.0.0/24"}, {"subnet": "10.211.0.0/25"}]]}), ""),
        (json!({"subnet": "10.211.0.0/24", "ranges": [[{"subnet": "10.211.0.128/25"}]]}), ""),
        (json!({"subnet": "10.211.0.0/24", "resolvConf": "/nonexistent/resolv.conf"}), ""),
        (json!({"subnet": "10.211.0.0/24"}), "IP=10.211.0.1"),
        (json!({"subnet": "10.211.0.0/24"}), "IP=10.211.9.9"),
        (json!({"subnet": "10.211.0.0/24"}), "FOO=bar"),
        (json!({"subnet": "10.211.0.0/24"}), "IP=nope"),
        (json!({"subnet": "10.211.0.0/24"}), "IP=10.211.0.9,10.211.0.10"),
        (json!({"subnet": "10.211.0.0/24"}), "IgnoreUnknown=1;FOO=bar;IP=10.211.0.1"),
    ];
    for (ipam, args) in cases {
        for v in ["0.2.0", "1.0.0"] {
            let c = conf(v, "errs", d, ipam.clone());
            let mut e = env("ADD", "c", "eth0");
            e.push(("CNI_ARGS".into(), args.into()));
            let go = exec(GO, &e, &c.to_string());
            let rs = exec(RUST, &e, &c.to_string());
            assert_eq!((rs.err(), rs.doc()["code"].clone()), (go.err(), go.doc()["code"].clone()), "{v} {ipam} {args}");
        }
    }
    let no_ipam = json!({"cniVersion": "1.0.0", "name": "errs", "type": "bridge"});
    for cmd in ["ADD", "DEL", "CHECK"] {
        assert_eq!(verb(RUST, cmd, "c", "eth0", &no_ipam).err(), verb(GO, cmd, "c", "eth0", &no_ipam).err());
    }
    let two_v4 =
        conf("0.2.0", "errs", d, json!({"ranges": [[{"subnet": "10.211.0.0/24"}], [{"subnet": "10.211.1.0/24"}]]}));
    assert_eq!(verb(RUST, "ADD", "c", "eth0", &two_v4).err(), verb(GO, "ADD", "c", "eth0", &two_v4).err());
    // Exhaustion, duplicates and requested addresses, each against a store the other filled.
    let small = conf("1.0.0", "small", d, json!({"subnet": "10.211.2.0/30"}));
    verb(GO, "ADD", "a", "eth0", &small).ok();
    assert_eq!(verb(RUST, "ADD", "b", "eth0", &small).err(), verb(GO, "ADD", "b", "eth0", &small).err());
    assert_eq!(verb(RUST, "ADD", "a", "eth0", &small).err(), verb(GO, "ADD", "a", "eth0", &small).err());
    let mut req = small.clone();
    req["runtimeConfig"] = json!({"ips": ["10.211.2.2"]});
    assert_eq!(verb(RUST, "ADD", "b", "eth0", &req).err(), verb(GO, "ADD", "b", "eth0", &req).err());
}

/// 32 Go and 32 Rust processes ADD at once: the shared `lock` serialises them.
#[test]
#[ignore = "needs root and the Go interop tools"]
fn concurrent_go_and_rust_share_the_lock() {
    need_go();
    let tmp = tempfile::tempdir().unwrap();
    let c = conf("1.0.0", "mixed", tmp.path(), json!({"subnet": "10.212.0.0/24"}));
    let stdin = c.to_string();
    let bin = |i: usize| if i.is_multiple_of(2) { GO } else { RUST };
    let children: Vec<_> = (0..64).map(|i| spawn(bin(i), &env("ADD", &format!("c-{i}"), "eth0"), &stdin)).collect();
    let mut ips: Vec<String> = children.into_iter().map(|ch| first_ip(&wait(ch).ok())).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 64);
    let dir = tmp.path().join("mixed");
    assert_eq!(leases(&dir).len(), 64);
    // DEL by the other implementation than the one that added.
    let children: Vec<_> = (0..64).map(|i| spawn(bin(i + 1), &env("DEL", &format!("c-{i}"), "eth0"), &stdin)).collect();
    for ch in children {
        wait(ch).ok();
    }
    assert!(leases(&dir).is_empty());
}

/// A named network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("cnitest-{tag}-{}", std::process::id());
        assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success(), "ip netns add (root)");
        Self(name)
    }
    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

fn libcni(verb: &str, net: &str, confdir: &Path, cachedir: &Path, netns: &str) -> (bool, String, String) {
    let ours = Path::new(RUST).parent().unwrap().to_owned();
    let out = Command::new(cnitool())
        .args([verb, net, netns])
        .env("NETCONFPATH", confdir)
        .env("CNI_CACHE_DIR", cachedir)
        .env("CNI_PATH", format!("{}:/usr/lib/cni", ours.display()))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Go libcni runs our host-local as a plugin of its own, then Go's bridge delegates to it.
#[test]
#[ignore = "needs root and the Go interop tools"]
fn driven_by_go_libcni() {
    need_go();
    for v in ["0.3.1", "0.4.0", "1.0.0"] {
        let confdir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let ns = Netns::new("hl");

        // host-local directly.
        let list = json!({"cniVersion": v, "name": "hl-direct", "plugins": [
            {"type": "host-local", "ipam": {"type": "host-local", "dataDir": data.path(), "subnet": "10.213.0.0/24"}}
        ]});
        fs::write(confdir.path().join("10-direct.conflist"), list.to_string()).unwrap();
        let (ok, out, err) = libcni("add", "hl-direct", confdir.path(), cache.path(), &ns.path());
        assert!(ok, "{v}: {out} {err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["ips"][0]["address"], "10.213.0.2/24", "{v}: {r}");
        if v != "0.3.1" {
            let (ok, out, err) = libcni("check", "hl-direct", confdir.path(), cache.path(), &ns.path());
            assert!(ok, "{v}: {out} {err}");
        }
        let (ok, out, err) = libcni("del", "hl-direct", confdir.path(), cache.path(), &ns.path());
        assert!(ok, "{v}: {out} {err}");
        assert!(leases(&data.path().join("hl-direct")).is_empty());

        // Go's bridge delegating to our host-local (found first on CNI_PATH).
        let br = format!("cnitest-b{}", std::process::id() % 100_000);
        let list = json!({"cniVersion": v, "name": "hl-bridge", "plugins": [
            {"type": "bridge", "bridge": br, "ipam": {"type": "host-local", "dataDir": data.path(), "subnet": "10.213.1.0/24"}}
        ]});
        fs::write(confdir.path().join("20-bridge.conflist"), list.to_string()).unwrap();
        let (ok, out, err) = libcni("add", "hl-bridge", confdir.path(), cache.path(), &ns.path());
        let cleanup = || {
            let _ = Command::new("ip").args(["link", "delete", &br]).status();
        };
        if !ok {
            cleanup();
            panic!("{v}: {out} {err}");
        }
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["ips"][0]["address"], "10.213.1.2/24", "{v}: {r}");
        let addrs = Command::new("ip").args(["-n", &ns.0, "-j", "addr", "show", "eth0"]).output().unwrap();
        let addrs: Value = serde_json::from_slice(&addrs.stdout).unwrap();
        assert!(addrs[0]["addr_info"].as_array().unwrap().iter().any(|a| a["local"] == "10.213.1.2"), "{addrs}");
        assert!(!fs::read(data.path().join("hl-bridge/10.213.1.2")).unwrap().is_empty());
        if v != "0.3.1" {
            let (ok, out, err) = libcni("check", "hl-bridge", confdir.path(), cache.path(), &ns.path());
            assert!(ok, "{v}: {out} {err}");
        }
        let (ok, out, err) = libcni("del", "hl-bridge", confdir.path(), cache.path(), &ns.path());
        cleanup();
        assert!(ok, "{v}: {out} {err}");
        assert!(leases(&data.path().join("hl-bridge")).is_empty());
    }
}

#[test]
#[ignore = "needs the Go interop tools"]
fn libcni_decodes_our_version_reply() {
    let ours = Path::new(RUST).parent().unwrap().to_owned();
    let out = Command::new(cnitool()).args(["version", "host-local"]).env("CNI_PATH", &ours).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["supportedVersions"], json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
}
