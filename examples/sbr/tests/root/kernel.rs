//! The binary on the kernel: rules and tables as `ip -j` reports them, the `table` key, DEL
//! leaving no rule of ours (and every rule that is not ours), concurrent ADDs serialised by the
//! namespace lock (with Go's sbr too).

use cni_test_support::go;
use serde_json::{Value, json};

use crate::common::{OURS, Pod};

fn default_rules() -> Vec<Value> {
    vec![
        json!(["inet", 0, "all", "local"]),
        json!(["inet", 32766, "all", "main"]),
        json!(["inet", 32767, "all", "default"]),
        json!(["inet6", 0, "all", "local"]),
        json!(["inet6", 32766, "all", "main"]),
    ]
}

#[test]
#[ignore = "needs root"]
fn add_check_del_on_the_kernel_in_every_version() {
    for (i, version) in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let n = u8::try_from(70 + i).unwrap();
        let pod = Pod::new("sbk");
        pod.interface("eth0", n);
        let conf = pod.conf(version, "eth0", n, json!({}));
        let r = pod.call(OURS, "ADD", "eth0", &conf).ok();
        assert_eq!(r["cniVersion"], version);
        let (v4, v6) = (format!("10.226.{n}.5"), format!("fd00:226:{n}::5"));
        let mut want = default_rules();
        want.insert(1, json!(["inet", 32765, v4, "100"]));
        want.insert(5, json!(["inet6", 32765, v6, "101"]));
        // (0.1.0 and 0.2.0 results have no interface indexes: both addresses count as eth0's.)
        assert_eq!(pod.rules(), want, "{version}");
        let routes = pod.routes();
        let (gw4, gw6) = (format!("10.226.{n}.1"), format!("fd00:226:{n}::1"));
        let has = |dst: &str, gw: Option<&str>, table: &str| {
            routes.iter().any(|r| r[0] == dst && r[3] == table && gw.is_none_or(|g| r[1] == g))
        };
        assert!(has("default", Some(&gw4), "100"), "{routes:?}");
        assert!(has(&format!("10.226.{n}.0/24"), None, "100"));
        assert!(has(&format!("10.99.{n}.0/24"), Some(&gw4), "100"));
        assert!(has(&format!("fd00:226:{n}::/64"), None, "100"), "the generic IPv6 route goes to every table (Go)");
        assert!(has("default", Some(&gw6), "101"));
        assert!(has(&format!("fd00:226:{n}::/64"), None, "101"));
        assert!(routes.iter().all(|r| r[3] != "main" && r[3] != json!(null)), "main keeps nothing: {routes:?}");
        // Traffic from the address now resolves through its table.
        let get = pod.ns.sh(&["ip", "-j", "route", "get", "192.0.2.9", "from", &v4]);
        assert!(get.contains(&gw4), "{get}");
        if version >= "0.4.0" {
            let mut check = conf.clone();
            check["prevResult"] = r;
            pod.call(OURS, "CHECK", "eth0", &check).ok();
        }
        pod.call(OURS, "DEL", "eth0", &conf).ok();
        assert_eq!(pod.rules(), default_rules(), "{version}");
        pod.call(OURS, "DEL", "eth0", &conf).ok();
    }
}

#[test]
#[ignore = "needs root"]
fn the_table_key_adds_rules_only() {
    let pod = Pod::new("sbt");
    pod.interface("eth0", 80);
    let before = pod.routes();
    let conf = pod.conf("1.1.0", "eth0", 80, json!({"table": 1234}));
    pod.call(OURS, "ADD", "eth0", &conf).ok();
    let mut want = default_rules();
    want.insert(1, json!(["inet", 32765, "10.226.80.5", "1234"]));
    want.insert(5, json!(["inet6", 32765, "fd00:226:80::5", "1234"]));
    assert_eq!(pod.rules(), want);
    assert_eq!(pod.routes(), before);
    pod.call(OURS, "DEL", "eth0", &conf).ok();
    assert_eq!(pod.rules(), default_rules());
}

#[test]
#[ignore = "needs root"]
fn del_leaves_other_rules_and_needs_neither_link_nor_namespace() {
    let pod = Pod::new("sbd");
    pod.interface("eth0", 81);
    // Rules from the container's address that sbr did not make (Go deletes them, B24).
    pod.ns.sh(&["ip", "rule", "add", "from", "10.226.81.5", "lookup", "300", "pref", "500"]);
    pod.ns.sh(&["ip", "rule", "add", "from", "10.226.81.5", "fwmark", "7", "lookup", "100", "pref", "501"]);
    let conf = pod.conf("1.0.0", "eth0", 81, json!({}));
    pod.call(OURS, "ADD", "eth0", &conf).ok();
    let rules = pod.rules();
    // 100 is taken by the fwmark rule: ours are 101 and 102, below the existing ones.
    assert!(rules.contains(&json!(["inet", 499, "10.226.81.5", "101"])), "{rules:?}");
    assert!(rules.contains(&json!(["inet6", 32765, "fd00:226:81::5", "102"])), "{rules:?}");
    pod.call(OURS, "DEL", "eth0", &conf).ok();
    let left: Vec<Value> = pod.rules().into_iter().filter(|r| r[2] != "all").collect();
    assert_eq!(left, [json!(["inet", 500, "10.226.81.5", "300"]), json!(["inet", 501, "10.226.81.5", "100"])]);
    // The interface gone (B23) and the namespace gone (B22): success, and no file appears.
    let pod = Pod::new("sbd");
    pod.interface("eth0", 81);
    pod.call(OURS, "ADD", "eth0", &conf).ok();
    pod.ns.sh(&["ip", "link", "del", "eth0"]);
    pod.call(OURS, "DEL", "eth0", &conf).ok();
    let gone = format!("/var/run/netns/cnitest-m3sbr-gone-{}", std::process::id());
    pod.call(OURS, "DEL", "eth0", &conf).netns_path(&gone).ok();
    assert!(!std::path::Path::new(&gone).exists(), "a file appeared at {gone}");
}

#[test]
#[ignore = "needs root"]
fn concurrent_adds_in_one_namespace_take_distinct_tables_with_gos_too() {
    let pod = Pod::new("sbc");
    let ifaces: Vec<(String, u8)> = (0..6).map(|i| (format!("net{i}"), 82 + i)).collect();
    for (ifname, n) in &ifaces {
        pod.interface(ifname, *n);
    }
    let go = go::plugin("sbr");
    std::thread::scope(|s| {
        for (i, (ifname, n)) in ifaces.iter().enumerate() {
            let (pod, go) = (&pod, &go);
            s.spawn(move || {
                let bin = if i % 2 == 0 { OURS.to_owned() } else { go.to_str().unwrap().to_owned() };
                let conf = pod.conf("1.0.0", ifname, *n, json!({}));
                pod.call(&bin, "ADD", ifname, &conf).ok();
            });
        }
    });
    let mut tables: Vec<String> =
        pod.rules().iter().filter(|r| r[2] != "all").map(|r| r[3].as_str().unwrap().to_owned()).collect();
    tables.sort();
    tables.dedup();
    assert_eq!(tables.len(), 12, "one table per address: {tables:?}");
    for (ifname, n) in &ifaces {
        pod.call(OURS, "DEL", ifname, &pod.conf("1.0.0", ifname, *n, json!({}))).ok();
    }
    assert_eq!(pod.rules(), default_rules());
}

#[test]
#[ignore = "needs root"]
fn go_and_ours_delete_each_others_rules() {
    let go = go::plugin("sbr");
    let go = go.to_str().unwrap();
    for (adder, remover) in [(go, OURS), (OURS, go)] {
        let pod = Pod::new("sbi");
        pod.interface("eth0", 88);
        let conf = pod.conf("1.0.0", "eth0", 88, json!({}));
        pod.call(adder, "ADD", "eth0", &conf).ok();
        assert_eq!(pod.rules().len(), default_rules().len() + 2);
        pod.call(remover, "DEL", "eth0", &conf).ok();
        assert_eq!(pod.rules(), default_rules(), "{adder} -> {remover}");
    }
}
