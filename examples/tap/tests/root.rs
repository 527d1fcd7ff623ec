//! Root tests of the binary in throwaway namespaces: the kernel state of the tap (`ip -d -j
//! link`: kind, owner, group, flags, MTU, MAC, master), with Go's `host-local` for addresses, the
//! labelled iproute2 path, and that DEL and failed ADDs leave nothing behind.

use cni_sdk::net::Net;
use cni_test_support::{Call, Netns, go, leases};
use serde_json::{Value, json};
use tap::{IpTuntap, Iproute2, TapTool};

const BIN: &str = env!("CARGO_BIN_EXE_tap");
/// A uid and gid without passwd/group entries, so `ip -j` prints them as numbers.
const UID: u32 = 60217;
const GID: u32 = 60218;

fn conf(extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "taproot", "type": "tap"});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn info(ns: &Netns, name: &str) -> (Value, Value) {
    let link = ns.link(name).unwrap_or_else(|| panic!("{name} in {}: {:?}", ns.name, ns.link_names()));
    let data = link["linkinfo"]["info_data"].clone();
    assert_eq!(link["linkinfo"]["info_kind"], "tun", "{link}");
    assert_eq!(data["type"], "tap", "{link}");
    assert_eq!(data["persist"], true, "{link}");
    (link, data)
}

fn with_prev(c: &Value, r: &Value) -> Value {
    let mut c = c.clone();
    c["prevResult"] = r.clone();
    c
}

#[test]
#[ignore = "needs root"]
fn layer2_taps_have_gos_kernel_state() {
    let host = Netns::new("p2tph");
    let ctr = Netns::new("p2tpc");
    // (keys, user, group, multi_queue, vnet_hdr, pi)
    let cases = [
        (json!({}), Value::Null, Value::Null, false, false, false),
        (json!({"owner": UID, "group": GID}), json!(UID), json!(GID), false, true, true),
        (json!({"owner": UID, "group": GID, "multiQueue": true}), json!(UID), json!(GID), true, true, false),
        (json!({"owner": UID, "mtu": 1400, "mac": "02:00:00:21:70:01"}), json!(UID), Value::Null, false, false, false),
        (json!({"multiQueue": true, "group": GID}), Value::Null, json!(GID), true, false, false),
    ];
    for (keys, user, group, mq, vnet, pi) in cases {
        let c = conf(keys.clone());
        let call = Call::new(BIN, "ADD", &c, "tap-root").in_ns(&host).netns(&ctr).ifname("net1");
        let r = call.ok();
        assert_eq!(r["interfaces"][0]["name"], "net1");
        assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
        let (link, data) = info(&ctr, "net1");
        assert_eq!(r["interfaces"][0]["mac"], link["address"], "{keys}");
        assert!(link["flags"].as_array().unwrap().contains(&json!("UP")), "{link}");
        assert_eq!(data.get("user").cloned().unwrap_or(Value::Null), user, "{keys}: {data}");
        assert_eq!(data.get("group").cloned().unwrap_or(Value::Null), group, "{keys}: {data}");
        assert_eq!(
            (&data["multi_queue"], &data["vnet_hdr"], &data["pi"]),
            (&json!(mq), &json!(vnet), &json!(pi)),
            "{keys}"
        );
        if keys.get("mtu").is_some() {
            assert_eq!(link["mtu"], 1400);
            assert_eq!(link["address"], "02:00:00:21:70:01");
        } else {
            assert_eq!(link["mtu"], 1500);
        }
        Call::new(BIN, "CHECK", &with_prev(&c, &r), "tap-root").in_ns(&host).netns(&ctr).ifname("net1").ok();
        call.verb("DEL").ok();
        assert!(ctr.link_names().is_empty(), "{keys}: {:?}", ctr.link_names());
        call.verb("DEL").ok();
    }
    assert!(host.link_names().is_empty());
}

#[test]
#[ignore = "needs root"]
fn layer3_with_go_host_local_and_a_bridge_port() {
    let host = Netns::new("p2tph");
    let ctr = Netns::new("p2tpc");
    let data = tempfile::tempdir().unwrap();
    let _ = go::plugin("host-local");
    ctr.sh(&["ip", "link", "add", "br0", "type", "bridge"]);
    let c = conf(json!({
        "bridge": "br0", "mtu": 1450,
        "dns": {"nameservers": ["10.217.30.53"]},
        "ipam": {"type": "host-local", "dataDir": data.path(),
                 "ranges": [[{"subnet": "10.217.30.0/24"}], [{"subnet": "fd00:217:30::/64"}]],
                 "routes": [{"dst": "10.217.31.0/24"}]}
    }));
    let call = Call::new(BIN, "ADD", &c, "tap-root-l3").in_ns(&host).netns(&ctr);
    let r = call.ok();
    assert_eq!(r["ips"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(r["dns"]["nameservers"][0], "10.217.30.53");
    let (link, _) = info(&ctr, "eth0");
    assert_eq!(link["master"], "br0");
    assert_eq!(link["mtu"], 1450);
    let mut addrs = ctr.addrs("eth0");
    addrs.sort();
    assert_eq!(addrs, ["10.217.30.2/24", "fd00:217:30::2/64"]);
    assert_eq!(ctr.sysctl("net.ipv4.conf.eth0.arp_notify"), "1");
    assert!(
        ctr.routes4().iter().any(|r| r["dst"] == "10.217.31.0/24" && r["gateway"] == "10.217.30.1"),
        "{:?}",
        ctr.routes4()
    );
    assert_eq!(leases(data.path(), "taproot").len(), 2);
    Call::new(BIN, "CHECK", &with_prev(&c, &r), "tap-root-l3").in_ns(&host).netns(&ctr).ok();
    call.verb("DEL").ok();
    assert_eq!(ctr.link_names(), ["br0"]);
    assert!(leases(data.path(), "taproot").is_empty());
}

#[test]
#[ignore = "needs root"]
fn failed_adds_leave_nothing_behind() {
    let host = Netns::new("p2tph");
    let ctr = Netns::new("p2tpc");
    let data = tempfile::tempdir().unwrap();
    let ipam = json!({"type": "host-local", "dataDir": data.path(), "subnet": "10.217.32.0/24"});
    // The interface name is taken: the temporary tap is deleted, no lease is taken.
    ctr.sh(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p0"]);
    let c = conf(json!({"ipam": ipam}));
    let e = Call::new(BIN, "ADD", &c, "tap-root-f").in_ns(&host).netns(&ctr).err();
    assert_eq!(
        (e["code"].clone(), e["msg"].clone()),
        (json!(999), json!("failed to rename tap to \"eth0\": file exists"))
    );
    assert_eq!(ctr.link_names().len(), 2, "{:?}", ctr.link_names());
    // The bridge is missing.
    let c = conf(json!({"bridge": "br9", "ipam": ipam}));
    let e = Call::new(BIN, "ADD", &c, "tap-root-f").in_ns(&host).netns(&ctr).ifname("net1").err();
    assert_eq!(e["msg"], "failed to get bridge br9: Link not found");
    // A kernel without SELinux refuses the label.
    let c = conf(json!({"selinuxContext": "system_u:system_r:container_t:s0", "ipam": ipam}));
    let e = Call::new(BIN, "ADD", &c, "tap-root-f").in_ns(&host).netns(&ctr).ifname("net1").err();
    assert_eq!(e["msg"], "failed set socket label: write /proc/thread-self/attr/exec: invalid argument");
    // A MAC the kernel refuses (multicast).
    let c = conf(json!({"mac": "01:00:5e:00:00:01", "owner": UID, "group": GID}));
    let e = Call::new(BIN, "ADD", &c, "tap-root-f").in_ns(&host).netns(&ctr).ifname("net1").err();
    assert_eq!(e["msg"], "failed to create tap: cannot assign requested address");
    let mut names = ctr.link_names();
    names.sort();
    assert_eq!(names, ["eth0", "p0"]);
    assert!(leases(data.path(), "taproot").is_empty());
    assert!(host.link_names().is_empty());
}

#[test]
#[ignore = "needs root"]
fn del_is_idempotent_when_the_namespace_is_gone() {
    let host = Netns::new("p2tph");
    let data = tempfile::tempdir().unwrap();
    let c = conf(json!({"ipam": {"type": "host-local", "dataDir": data.path(), "subnet": "10.217.33.0/24"}}));
    let (path, call) = {
        let ctr = Netns::new("p2tpc");
        let call = Call::new(BIN, "ADD", &c, "tap-root-d").in_ns(&host).netns(&ctr);
        call.ok();
        (ctr.path(), call)
    };
    assert!(!std::path::Path::new(&path).exists());
    call.verb("DEL").ok();
    assert!(leases(data.path(), "taproot").is_empty());
    let mut no_netns = call.verb("DEL");
    no_netns.netns = None;
    no_netns.ok();
}

#[test]
#[ignore = "needs root"]
fn iproute2_tool_without_a_label_makes_ip_tuntaps() {
    let ctr = Netns::new("p2tpc");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let net = Net::open_path(ctr.path()).await.unwrap();
        let req = IpTuntap {
            label: None,
            name: "tap9".into(),
            multi_queue: true,
            owner: Some(UID),
            group: None,
            mtu: Some(1280),
            mac: Some("02:00:00:21:70:09".parse().unwrap()),
        };
        Iproute2.create(&net, &req).await.unwrap();
        let (link, data) = info(&ctr, "tap9");
        assert_eq!((link["mtu"].clone(), link["address"].clone()), (json!(1280), json!("02:00:00:21:70:09")));
        assert_eq!(
            (&data["multi_queue"], &data["vnet_hdr"], &data["pi"]),
            (&json!(true), &json!(false), &json!(false))
        );
        assert_eq!(data["user"], UID);
        // iproute2's own error comes back in Go's words.
        let e = Iproute2.create(&net, &req).await.unwrap_err();
        assert!(e.message().starts_with("failed to run command "), "{}", e.message());
        assert!(e.message().ends_with(": exit status 1"), "{}", e.message());
    });
}
