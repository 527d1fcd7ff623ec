//! Root tests: the `tuning` binary on the kernel, run inside a throwaway "host" namespace on a
//! veth in a throwaway container namespace; link attributes read back with `ip -d -j link`,
//! sysctls with `sysctl -n`. The modules hold the interop tests with Go's tuning and Go libcni
//! and the differential tests against Debian's Go `tuning`.
//!
//! `cargo test -p tuning --test root -- --include-ignored` as root (the interop module also
//! needs `../shared/interop/build.sh`'s `libcni-cnitool`).

mod common;
mod differential;
mod interop;

use std::time::Instant;

use common::{OURS, Pod};
use serde_json::{Value, json};

const MAC: &str = "c2:b0:57:49:47:f1";

fn all_keys() -> Value {
    json!({
        "mac": MAC, "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 2000,
        "sysctl": {
            "net.core.somaxconn": "512",
            "net.ipv4.conf.IFNAME.arp_notify": "1",
            "net.ipv4.tcp_rmem": "4096 87380 4194304"
        }
    })
}

#[test]
#[ignore = "needs root"]
fn add_check_del_set_and_restore_the_kernel_state() {
    for version in ["0.3.1", "1.0.0", "1.1.0"] {
        let pod = Pod::new("m2k");
        let orig = pod.link();
        let conf = pod.conf(version, all_keys());
        let r = pod.call(OURS, "ADD", &conf).ok();
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][0]["mac"], MAC, "{r}");
        assert_eq!(r["ips"][0]["address"], "10.223.0.2/24");
        assert_eq!(pod.link(), json!({"address": MAC, "mtu": 1400, "txqlen": 2000, "promisc": true, "allmulti": true}));
        assert_eq!(pod.ctr.sysctl("net.core.somaxconn"), "512");
        assert_eq!(pod.ctr.sysctl("net.ipv4.conf.eth0.arp_notify"), "1");
        assert_eq!(pod.ctr.sysctl("net.ipv4.tcp_rmem"), "4096\t87380\t4194304");
        assert_eq!(
            pod.backup().unwrap(),
            json!({"mac": orig["address"], "promisc": false, "mtu": 1500, "allmulti": false,
                   "txQLen": orig["txqlen"], "network": "tunenet"})
        );

        if version != "0.3.1" {
            // The kernel prints tcp_rmem with tabs; CHECK compares the values, not the spacing.
            pod.call(OURS, "CHECK", &conf).ok();
            pod.ctr.sh(&["ip", "link", "set", "eth0", "mtu", "1300"]);
            let err = pod.call(OURS, "CHECK", &conf).err();
            assert_eq!(err["msg"], "Error: Tuning configured MTU of eth0 is 1400, current value is 1300");
            pod.ctr.sh(&["ip", "link", "set", "eth0", "mtu", "1400"]);
            pod.ctr.sh(&["sysctl", "-qw", "net.core.somaxconn=100"]);
            let err = pod.call(OURS, "CHECK", &conf).err();
            assert_eq!(
                err["msg"],
                "Error: Tuning configured value of /proc/sys/net/core/somaxconn is 512, current value is 100"
            );
        }

        pod.call(OURS, "DEL", &conf).ok();
        assert_eq!(pod.link(), orig, "{version}");
        assert!(pod.files().is_empty(), "{:?}", pod.files());
        pod.call(OURS, "DEL", &conf).ok();
    }
}

#[test]
#[ignore = "needs root"]
fn a_failed_add_leaves_the_kernel_as_it_was() {
    let pod = Pod::new("m2f");
    let orig = pod.link();
    let somaxconn = pod.ctr.sysctl("net.core.somaxconn");
    let keys =
        json!({"sysctl": {"net.core.somaxconn": "512"}, "mac": MAC, "promisc": true, "allmulti": true, "mtu": 70000});
    let err = pod.call(OURS, "ADD", &pod.conf("1.0.0", keys)).err();
    assert_eq!((err["code"].as_u64(), err["msg"].as_str()), (Some(999), Some("invalid argument")));
    assert_eq!(pod.link(), orig);
    assert_eq!(pod.ctr.sysctl("net.core.somaxconn"), somaxconn);
    assert!(pod.files().is_empty());
    // An unknown sysctl after a known one: the known one is put back.
    let keys = json!({"sysctl": {"net.core.somaxconn": "512", "net.core.nosuchthing": "1"}});
    let err = pod.call(OURS, "ADD", &pod.conf("1.0.0", keys)).err();
    assert_eq!(err["msg"], "open /proc/sys/net/core/nosuchthing: no such file or directory");
    assert_eq!(pod.ctr.sysctl("net.core.somaxconn"), somaxconn);
}

#[test]
#[ignore = "needs root"]
fn interface_names_with_dots() {
    let pod = Pod::with_ifname("m2d", "eth0.100");
    let orig = pod.link();
    let conf = pod.conf("1.0.0", json!({"mtu": 1400, "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}));
    pod.call(OURS, "ADD", &conf).ok();
    assert_eq!(pod.ctr.sysctl("net/ipv4/conf/eth0.100/arp_notify"), "1");
    assert_eq!(pod.link()["mtu"], 1400);
    pod.call(OURS, "CHECK", &conf).ok();
    pod.call(OURS, "DEL", &conf).ok();
    assert_eq!(pod.link(), orig);
}

#[test]
#[ignore = "needs root"]
fn del_after_the_namespace_is_gone_succeeds_and_drops_the_backup() {
    let pod = Pod::new("m2g");
    let conf = pod.conf("1.0.0", json!({"mtu": 1400}));
    pod.call(OURS, "ADD", &conf).ok();
    assert_eq!(pod.files().len(), 1);
    let st = std::process::Command::new("ip").args(["netns", "delete", &pod.ctr.name]).status().unwrap();
    assert!(st.success());
    pod.call(OURS, "DEL", &conf).ok();
    assert!(pod.files().is_empty());
    pod.call(OURS, "DEL", &conf).ok();
    // Without CNI_NETNS at all, too.
    let mut call = pod.call(OURS, "DEL", &conf);
    call.netns = None;
    call.ok();
}

#[test]
#[ignore = "needs root"]
fn adds_killed_at_any_point_never_lose_the_original_values() {
    let pod = Pod::new("m2x");
    let orig = pod.link();
    let conf = pod.conf("1.0.0", json!({"mac": MAC, "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 2000}));
    // Spread the kills over the time a whole ADD takes here (process start included).
    let full = (0..3)
        .map(|_| {
            let start = Instant::now();
            pod.call(OURS, "ADD", &conf).ok();
            let took = start.elapsed();
            pod.call(OURS, "DEL", &conf).ok();
            took
        })
        .max()
        .unwrap();
    let (mut before_backup, mut mid_way, mut finished) = (0, 0, 0);
    const KILLS: u32 = 60;
    for i in 0..KILLS {
        let delay = full * i / KILLS;
        let child = pod.call(OURS, "ADD", &conf).spawn_in_own_group();
        std::thread::sleep(delay);
        child.kill_group();
        match (pod.backup().is_some(), pod.link() == orig) {
            (false, _) => before_backup += 1,
            (true, true) => mid_way += 1,
            (true, false) => finished += 1,
        }
        // Whatever the kill left, DEL succeeds and puts the original values back.
        pod.call(OURS, "DEL", &conf).ok();
        assert_eq!(pod.link(), orig, "ADD killed after {delay:?}");
        assert!(pod.backup().is_none());
        assert!(pod.files().iter().all(|f| f.starts_with(cni_sdk::kit::TEMP_FILE_PREFIX)), "{:?}", pod.files());
    }
    eprintln!(
        "ADD takes {full:?}; killed before the backup: {before_backup}, after it: {mid_way}, after changes: {finished}"
    );
    // GC collects the temporaries of writes that were killed.
    let gc = json!({"cniVersion": "1.1.0", "name": "tunenet", "type": "tuning", "dataDir": pod.data.path(),
                    "cni.dev/valid-attachments": []});
    cni_test_support::Call::new(OURS, "GC", &gc, "").in_ns(&pod.host).ok();
    assert!(pod.files().is_empty(), "{:?}", pod.files());
}

#[test]
#[ignore = "needs root"]
fn gc_frees_exactly_the_backup_of_the_container_whose_state_was_lost() {
    let a = Pod::new("m2ga");
    let b = Pod::new("m2gb");
    let data = a.data.path();
    let conf_of = |pod: &Pod, net: &str| {
        let mut c = pod.conf("1.1.0", json!({"mtu": 1400, "dataDir": data}));
        c["name"] = json!(net);
        c
    };
    a.call(OURS, "ADD", &conf_of(&a, "tunenet")).ok();
    b.call(OURS, "ADD", &conf_of(&b, "tunenet")).ok();
    // Another network's attachment of `b` (another interface) in the same directory.
    b.ctr.sh(&["ip", "link", "add", "net1", "type", "veth", "peer", "name", "peer1"]);
    let other = conf_of(&b, "othernet");
    b.call(OURS, "ADD", &other).ifname("net1").ok();
    assert_eq!(a.files().len(), 3);

    // The runtime lost `b`'s state: only `a` is valid.
    let gc = json!({"cniVersion": "1.1.0", "name": "tunenet", "type": "tuning", "dataDir": data,
                    "cni.dev/valid-attachments": [{"containerID": a.cid, "ifname": "eth0"}]});
    cni_test_support::Call::new(OURS, "GC", &gc, "").in_ns(&a.host).ok();
    let left = a.files();
    assert_eq!(left, {
        let mut v = vec![format!("{}_eth0.json", a.cid), format!("{}_net1.json", b.cid)];
        v.sort();
        v
    });
    // `a` is untouched and still restores.
    let before = a.link();
    a.call(OURS, "DEL", &conf_of(&a, "tunenet")).ok();
    assert_eq!(a.link()["mtu"], 1500);
    assert_ne!(before, a.link());
}
