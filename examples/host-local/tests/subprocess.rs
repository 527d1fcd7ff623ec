//! Execs the real `host-local` binary: protocol basics, the on-disk store, and 64 concurrent
//! processes on one network (no root needed).

mod common;

use std::fs;

use common::*;
use serde_json::json;

#[test]
fn about_and_version() {
    let r = exec(RUST, &[], "");
    assert_eq!(r.code, 0);
    assert!(r.stderr.starts_with("CNI host-local plugin"), "{}", r.stderr);
    let r = exec(RUST, &[("CNI_COMMAND".into(), "VERSION".into())], r#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(r.doc()["supportedVersions"], json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
}

#[test]
fn add_del_every_version_through_the_binary() {
    for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let tmp = tempfile::tempdir().unwrap();
        let c = conf(v, "sub-net", tmp.path(), json!({"subnet": "10.207.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}));
        let doc = verb(RUST, "ADD", "ctr-1", "eth0", &c).ok();
        assert_eq!(doc["cniVersion"], v);
        if v.starts_with("0.1") || v.starts_with("0.2") {
            assert_eq!(doc["ip4"]["ip"], "10.207.0.2/24", "{doc}");
            assert_eq!(doc["ip4"]["routes"][0]["dst"], "0.0.0.0/0", "{doc}");
        } else {
            assert_eq!(doc["ips"][0]["address"], "10.207.0.2/24", "{doc}");
            assert_eq!(doc["ips"][0]["gateway"], "10.207.0.1", "{doc}");
            assert!(doc.get("interfaces").is_none() && doc["ips"][0].get("interface").is_none(), "{doc}");
        }
        let dir = tmp.path().join("sub-net");
        assert_eq!(fs::read(dir.join("10.207.0.2")).unwrap(), b"ctr-1\r\neth0");
        if v >= "0.4.0" {
            verb(RUST, "CHECK", "ctr-1", "eth0", &c).ok();
        }
        assert_eq!(verb(RUST, "DEL", "ctr-1", "eth0", &c).stdout, "");
        verb(RUST, "DEL", "ctr-1", "eth0", &c).ok();
        assert!(leases(&dir).is_empty());
        assert!(dir.join("lock").is_file());
    }
}

#[test]
fn errors_are_one_document_with_code_999() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf("1.0.0", "errs", tmp.path(), json!({"subnet": "10.207.1.0/30"}));
    verb(RUST, "ADD", "a", "eth0", &c).ok();
    // .1 is the gateway: a /30 has one address to give.
    let r = verb(RUST, "ADD", "c", "eth0", &c);
    assert_eq!(r.code, 1);
    assert_eq!(r.doc()["code"], 999);
    assert_eq!(
        r.err(),
        "failed to allocate for range 0: no IP addresses available in range set: 10.207.1.1-10.207.1.2"
    );
    let r = verb(RUST, "ADD", "a", "eth0", &c);
    assert_eq!(
        r.err(),
        "failed to allocate for range 0: 10.207.1.2 has been allocated to a, duplicate allocation is not allowed"
    );
}

/// 64 processes ADD at once on one network: 64 distinct addresses; then 64 DELs at once
/// release them all, leaving only `lock` and `last_reserved_ip.0`.
#[test]
fn sixty_four_concurrent_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf("1.0.0", "busy", tmp.path(), json!({"ranges": [[{"subnet": "10.208.0.0/24"}]]}));
    let stdin = c.to_string();
    let children: Vec<_> = (0..64).map(|i| spawn(RUST, &env("ADD", &format!("ctr-{i}"), "eth0"), &stdin)).collect();
    let mut ips: Vec<String> = children.into_iter().map(|ch| first_ip(&wait(ch).ok())).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 64, "distinct addresses");
    let dir = tmp.path().join("busy");
    let mut files = leases(&dir);
    assert_eq!(files.len(), 64);
    files.sort();
    assert_eq!(files, ips);
    for ip in &ips {
        let owner = fs::read_to_string(dir.join(ip)).unwrap();
        assert!(owner.starts_with("ctr-") && owner.ends_with("\r\neth0"), "{owner:?}");
    }
    let children: Vec<_> = (0..64).map(|i| spawn(RUST, &env("DEL", &format!("ctr-{i}"), "eth0"), &stdin)).collect();
    for ch in children {
        wait(ch).ok();
    }
    assert!(leases(&dir).is_empty(), "{:?}", leases(&dir));
    let mut left: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, [INDEX, "last_reserved_ip.0", "lock"]);
}

/// GC (spec 1.1.0) through the binary: leases of attachments not listed are released.
#[test]
fn gc_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let c = conf("1.1.0", "gc-net", tmp.path(), json!({"subnet": "10.216.0.0/24"}));
    for id in ["keep", "drop-1", "drop-2"] {
        verb(RUST, "ADD", id, "eth0", &c).ok();
    }
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    gc["cni.dev/attachments"] = gc["cni.dev/valid-attachments"].clone();
    let e: Vec<(String, String)> = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/nonexistent")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let r = exec(RUST, &e, &gc.to_string());
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(leases(&tmp.path().join("gc-net")), ["10.216.0.2"]);
    assert_eq!(fs::read(tmp.path().join("gc-net/10.216.0.2")).unwrap(), b"keep\r\neth0");
}
