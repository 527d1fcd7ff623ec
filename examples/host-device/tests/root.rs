//! Root tests of the binary in throwaway namespaces (the plugin's "host" is a namespace too, and
//! veth ends stand in for NICs): the kernel state after ADD, CHECK and DEL (`ip -d -j`), with
//! Go's `host-local`; rollback of failed ADDs; DEL after the container's namespace died.

mod common;

use cni_test_support::{Call, go, leases};
use common::{BIN, conf, state, with_prev, world};
use serde_json::json;

#[test]
#[ignore = "needs root"]
fn moves_in_and_back_with_every_selector() {
    let _ = go::plugin("host-local");
    let selectors = [
        json!({"device": "hd0"}),
        json!({"hwaddr": "02:17:00:00:60:01"}),
        json!({"hwaddr": "02-17-00-00-60-01"}),
        // sysfs of the host namespace (`ip netns exec` mounts it): hd0 sorts first.
        json!({"kernelpath": "/sys/devices/virtual"}),
    ];
    for sel in selectors {
        let data = tempfile::tempdir().unwrap();
        let (host, ctr) = world("p2hdr");
        let mut c = conf(
            "1.0.0",
            json!({"ipam": {"type": "host-local", "subnet": "10.217.60.0/24", "dataDir": data.path(),
                                        "routes": [{"dst": "10.217.61.0/24"}]}}),
        );
        c.as_object_mut().unwrap().extend(sel.as_object().unwrap().clone());
        let call = Call::new(BIN, "ADD", &c, "hd-root").in_ns(&host).netns(&ctr).ifname("net1");
        let r = call.ok();
        assert_eq!(r["interfaces"][0]["name"], "net1", "{sel}");
        assert_eq!(r["interfaces"][0]["mac"], "02:17:00:00:60:01");
        assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
        assert_eq!(r["ips"][0]["interface"], 0);
        assert!(host.link("hd0").is_none(), "{sel}");
        assert_eq!(
            state(&ctr, "net1").unwrap(),
            json!({"name": "net1", "alias": "hd0", "up": true, "mac": "02:17:00:00:60:01", "addrs": ["10.217.60.2/24"]}),
            "{sel}"
        );
        assert!(ctr.routes4().iter().any(|r| r["dst"] == "10.217.61.0/24" && r["dev"] == "net1"));
        Call::new(BIN, "CHECK", &with_prev(&c, &r), "hd-root").in_ns(&host).netns(&ctr).ifname("net1").ok();
        call.verb("DEL").ok();
        assert!(ctr.link("net1").is_none());
        // Back under its name, alias cleared (Go v1.1.1 leaves it), down like Go's.
        assert_eq!(
            state(&host, "hd0").unwrap(),
            json!({"name": "hd0", "alias": null, "up": false, "mac": "02:17:00:00:60:01", "addrs": []}),
            "{sel}"
        );
        assert!(leases(data.path(), "hdroot").is_empty());
        // DEL again: Go fails (`failed to find "net1": Link not found`); a no-op here.
        call.verb("DEL").ok();
    }
}

#[test]
#[ignore = "needs root"]
fn failed_adds_leave_the_device_where_it_was() {
    let (host, ctr) = world("p2hdf");
    let data = tempfile::tempdir().unwrap();
    // The name is taken in the container: nothing moves (Go moves it and leaves it there).
    ctr.sh(&["ip", "link", "add", "net1", "type", "veth", "peer", "name", "p1"]);
    let c = conf(
        "1.0.0",
        json!({"device": "hd0", "ipam": {"type": "host-local", "subnet": "10.217.62.0/24", "dataDir": data.path()}}),
    );
    let e = Call::new(BIN, "ADD", &c, "hd-root").in_ns(&host).netns(&ctr).ifname("net1").err();
    assert_eq!(e["msg"], r#"failed to move link failed to rename device "hd0" to "net1": file exists"#);
    let before = json!({"name": "hd0", "alias": "uplink", "up": true, "mac": "02:17:00:00:60:01", "addrs": []});
    assert_eq!(state(&host, "hd0").unwrap(), before);
    // IPAM fails after the move: moved back, name, alias and up state restored.
    let bad_ipam = conf("1.0.0", json!({"device": "hd0", "ipam": {"type": "p2-no-such-ipam"}}));
    let e = Call::new(BIN, "ADD", &bad_ipam, "hd-root").in_ns(&host).netns(&ctr).ifname("net2").err();
    assert!(e["msg"].as_str().unwrap().contains("p2-no-such-ipam"), "{e}");
    assert_eq!(state(&host, "hd0").unwrap(), before);
    // A layer-2 result cannot be printed as 0.2.0: Go's error, device back.
    let e = Call::new(BIN, "ADD", &conf("0.2.0", json!({"device": "hd0"})), "hd-root")
        .in_ns(&host)
        .netns(&ctr)
        .ifname("net2")
        .err();
    assert_eq!(e["msg"], "cannot convert: no valid IP addresses");
    assert_eq!(state(&host, "hd0").unwrap(), before);
    assert_eq!(ctr.link_names().len(), 2);
    assert!(leases(data.path(), "hdroot").is_empty());
}

/// When a namespace dies, the kernel hands physical NICs back to the *initial* namespace under
/// their container name; veth ends (virtual) would die with it instead. The tests play the
/// kernel's part: they move the device back themselves, keeping its container name and alias,
/// then delete the container's namespace.
fn kernel_returns(host: &cni_test_support::Netns, ctr: cni_test_support::Netns, ifname: &str) {
    ctr.sh(&["ip", "link", "set", ifname, "down"]);
    ctr.sh(&["ip", "link", "set", ifname, "netns", &host.name]);
    drop(ctr);
}

#[test]
#[ignore = "needs root"]
fn del_after_the_namespace_died_restores_the_returned_device() {
    let data = tempfile::tempdir().unwrap();
    for sel in [json!({"device": "hd0"}), json!({"hwaddr": "02:17:00:00:60:01"})] {
        let (host, ctr) = world("p2hdd");
        let mut c =
            conf("1.0.0", json!({"ipam": {"type": "host-local", "subnet": "10.217.63.0/24", "dataDir": data.path()}}));
        c.as_object_mut().unwrap().extend(sel.as_object().unwrap().clone());
        let path = ctr.path();
        let call = Call::new(BIN, "ADD", &c, "hd-root").in_ns(&host).netns(&ctr).ifname("net1");
        call.ok();
        kernel_returns(&host, ctr, "net1");
        assert_eq!(state(&host, "net1").unwrap()["alias"], "hd0");
        assert!(!std::path::Path::new(&path).exists());
        call.verb("DEL").ok();
        assert!(host.link("net1").is_none(), "{sel}");
        assert_eq!(state(&host, "hd0").unwrap()["alias"], json!(null), "{sel}");
        assert!(leases(data.path(), "hdroot").is_empty(), "{sel}");
        call.verb("DEL").ok();
    }
}

#[test]
#[ignore = "needs root"]
fn a_later_add_finds_a_returned_device() {
    let (host, ctr) = world("p2hdl");
    let c = conf("1.0.0", json!({"device": "hd0"}));
    Call::new(BIN, "ADD", &c, "hd-root-1").in_ns(&host).netns(&ctr).ifname("net1").ok();
    kernel_returns(&host, ctr, "net1");
    // The runtime lost track (no DEL); the device is `net1` in the host, alias `hd0`.
    let ctr2 = cni_test_support::Netns::new("p2hdl2");
    let call = Call::new(BIN, "ADD", &c, "hd-root-2").in_ns(&host).netns(&ctr2).ifname("eth0");
    let r = call.ok();
    assert_eq!(r["interfaces"][0]["mac"], "02:17:00:00:60:01");
    assert_eq!(state(&ctr2, "eth0").unwrap()["alias"], "hd0");
    call.verb("DEL").ok();
    assert_eq!(
        state(&host, "hd0").unwrap(),
        json!({"name": "hd0", "alias": null, "up": false, "mac": "02:17:00:00:60:01", "addrs": []})
    );
    assert!(host.link("net1").is_none());
}
