//! The real `macvlan` binary in throwaway namespaces (one as the plugin's "host" with an uplink,
//! one as the container), with Debian's Go `host-local` as IPAM in a temporary `dataDir`; the
//! kernel state is read back with `ip -d -j`. Needs root: `cargo test -p macvlan -- --include-ignored`.

use std::path::Path;

use cni_test_support::{Call, Netns, leases, script};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_macvlan");

/// A "host" namespace with an uplink `up0` (one end of a veth pair, this kernel has no dummy)
/// carrying `10.216.<net>.2/24` and the default route, and a container namespace.
struct Topo {
    host: Netns,
    ctr: Netns,
}

impl Topo {
    fn new(net: u8) -> Self {
        let host = Netns::new("mvhost");
        let ctr = Netns::new("mvctr");
        host.sh(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
        host.sh(&["ip", "link", "set", "up0", "up"]);
        host.sh(&["ip", "link", "set", "up0p", "up"]);
        host.sh(&["ip", "addr", "add", &format!("10.216.{net}.2/24"), "dev", "up0"]);
        host.sh(&["ip", "route", "add", "default", "via", &format!("10.216.{net}.1")]);
        Self { host, ctr }
    }

    fn call(&self, cmd: &str, conf: &Value, cid: &str) -> Call {
        Call::new(BIN, cmd, conf, cid).in_ns(&self.host).netns(&self.ctr)
    }

    fn uplink_index(&self) -> u64 {
        self.host.link("up0").unwrap()["ifindex"].as_u64().unwrap()
    }
}

fn conf(version: &str, net: u8, data: &Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": "mvtest",
        "type": "macvlan",
        "master": "up0",
        "ipam": {
            "type": "host-local", "subnet": format!("10.216.{net}.0/24"), "dataDir": data,
            "routes": [{"dst": "10.216.128.0/17"}]
        }
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

/// An IPAM plugin for spec 1.1.0 (Debian's Go plugins stop at 1.0.0): a script in `dir` that
/// logs its verbs to `dir/calls` and answers ADD with `10.216.<net>.2/24`.
fn script_ipam(dir: &Path, net: u8) -> String {
    let result = json!({
        "cniVersion": "1.1.0",
        "ips": [{"address": format!("10.216.{net}.2/24"), "gateway": format!("10.216.{net}.1")}],
        "routes": [{"dst": "10.216.128.0/17"}]
    });
    let log = dir.join("calls");
    script(
        dir,
        "p1-ipam",
        &format!("echo $CNI_COMMAND >> {}\nif [ $CNI_COMMAND = ADD ]; then echo '{result}'; fi", log.display()),
    );
    format!("{}:{}", dir.display(), cni_test_support::go::PLUGIN_DIR)
}

fn script_calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls")).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

#[test]
#[ignore = "needs root"]
fn add_check_del_every_version_with_go_host_local() {
    let versions = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
    for (i, version) in versions.into_iter().enumerate() {
        let net = u8::try_from(i).unwrap() + 1;
        let t = Topo::new(net);
        let data = tempfile::tempdir().unwrap();
        let mut c = conf(version, net, data.path(), json!({"mode": "vepa", "mtu": 1400}));
        let cid = format!("mv-{i}");
        let call = |cmd: &str, c: &Value| {
            let call = t.call(cmd, c, &cid);
            if version == "1.1.0" { call.cni_path(&script_ipam(data.path(), net)) } else { call }
        };
        if version == "1.1.0" {
            c["ipam"] = json!({"type": "p1-ipam"});
        }
        let r = call("ADD", &c).ok();
        assert_eq!(r["cniVersion"], version);

        let eth0 = t.ctr.link("eth0").expect("eth0 in the container");
        assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(eth0["linkinfo"]["info_data"]["mode"], "vepa");
        assert_eq!(eth0["mtu"], 1400);
        assert_eq!(eth0["link_index"].as_u64(), Some(t.uplink_index()), "{eth0}");
        assert!(eth0["flags"].as_array().unwrap().contains(&json!("UP")), "{eth0}");
        let ip = format!("10.216.{net}.2");
        assert_eq!(t.ctr.addrs("eth0"), [format!("{ip}/24")]);
        let routes = t.ctr.routes4();
        let via = routes.iter().find(|r| r["dst"] == "10.216.128.0/17").unwrap_or_else(|| panic!("{routes:?}"));
        assert_eq!(via["gateway"], format!("10.216.{net}.1"));
        assert_eq!(t.ctr.sysctl("net.ipv4.conf.eth0.arp_notify"), "1");
        // Nothing appeared in the host but the uplink pair.
        let mut host_links = t.host.link_names();
        host_links.sort();
        assert_eq!(host_links, ["up0", "up0p"]);
        if version >= "0.3.0" {
            assert_eq!(r["interfaces"][0]["name"], "eth0");
            assert_eq!(r["interfaces"][0]["mac"], eth0["address"]);
            assert_eq!(r["interfaces"][0]["sandbox"], t.ctr.path());
            assert_eq!(r["ips"][0]["interface"], 0);
            assert_eq!(r["ips"][0]["address"], format!("{ip}/24"));
        } else {
            assert_eq!(r["ip4"]["ip"], format!("{ip}/24"));
        }
        if version >= "0.4.0" {
            call("CHECK", &with_prev(&c, &r)).ok();
        }
        if version == "1.1.0" {
            call("STATUS", &c).ok();
        }
        call("DEL", &c).ok();
        assert!(t.ctr.link_names().is_empty(), "{version}: {:?}", t.ctr.link_names());
        assert!(leases(data.path(), "mvtest").is_empty(), "{version}");
        call("DEL", &c).ok();
        if version == "1.1.0" {
            assert_eq!(script_calls(data.path()), ["ADD", "CHECK", "STATUS", "DEL", "DEL"]);
        }
    }
}

#[test]
#[ignore = "needs root"]
fn modes_mac_and_broadcast_queue_on_the_kernel() {
    let t = Topo::new(20);
    let data = tempfile::tempdir().unwrap();
    for (mode, mac) in [("bridge", "0a:58:0a:d8:14:0a"), ("private", "0a:58:0a:d8:14:0b"), ("passthru", "")] {
        let mut extra = json!({"mode": mode, "bcqueuelen": 2500});
        if !mac.is_empty() {
            extra["mac"] = json!(mac);
        }
        let c = conf("1.0.0", 20, data.path(), extra);
        let r = t.call("ADD", &c, "mv-modes").ok();
        let eth0 = t.ctr.link("eth0").unwrap();
        assert_eq!(eth0["linkinfo"]["info_data"]["mode"], mode);
        assert_eq!(eth0["linkinfo"]["info_data"]["bcqueuelen"], 2500, "{eth0}");
        let expected_mac = if mac.is_empty() {
            t.host.link("up0").unwrap()["address"].as_str().unwrap().to_owned()
        } else {
            mac.into()
        };
        assert_eq!(eth0["address"], expected_mac.as_str(), "{mode}");
        assert_eq!(r["interfaces"][0]["mac"], expected_mac.as_str());
        t.call("CHECK", &with_prev(&c, &r), "mv-modes").ok();
        // CHECK notices a different mode.
        let mut vepa = with_prev(&c, &r);
        vepa["mode"] = json!("vepa");
        let e = t.call("CHECK", &vepa, "mv-modes").err();
        assert_eq!(e["msg"], format!("Container macvlan mode {mode} does not match expected value: vepa"));
        t.call("DEL", &c, "mv-modes").ok();
        assert!(t.ctr.link_names().is_empty());
    }
    // CNI_ARGS MAC overrides the configured one.
    let c = conf("1.0.0", 20, data.path(), json!({"mac": "0a:58:0a:d8:14:0c"}));
    t.call("ADD", &c, "mv-args").args("IgnoreUnknown=1;MAC=0a:58:0a:d8:14:0d;K8S_POD_NAME=p").ok();
    assert_eq!(t.ctr.link("eth0").unwrap()["address"], "0a:58:0a:d8:14:0d");
    t.call("DEL", &c, "mv-args").ok();
    assert!(leases(data.path(), "mvtest").is_empty());
}

#[test]
#[ignore = "needs root"]
fn layer2_with_the_master_in_the_container() {
    let t = Topo::new(30);
    // The container's own uplink.
    t.ctr.sh(&["ip", "link", "add", "in0", "type", "veth", "peer", "name", "in0p"]);
    t.ctr.sh(&["ip", "link", "set", "in0", "mtu", "1450", "up"]);
    let c = json!({
        "cniVersion": "1.0.0", "name": "mvl2", "type": "macvlan", "master": "in0", "linkInContainer": true,
        "bcqueuelen": 3000
    });
    let r = t.call("ADD", &c, "mv-l2").ok();
    let eth0 = t.ctr.link("eth0").unwrap();
    let in0 = t.ctr.link("in0").unwrap();
    assert_eq!(eth0["link"], "in0", "master in the same namespace: {eth0}");
    assert_eq!(eth0["mtu"], 1450);
    assert_eq!(eth0["linkinfo"]["info_data"]["mode"], "bridge");
    assert_eq!(eth0["linkinfo"]["info_data"]["bcqueuelen"], 3000);
    assert!(eth0["flags"].as_array().unwrap().contains(&json!("UP")));
    assert!(t.ctr.addrs("eth0").is_empty());
    assert!(r.get("ips").is_none(), "{r}");
    assert_eq!(r["interfaces"][0]["mac"], eth0["address"]);
    assert_ne!(eth0["address"], in0["address"]);
    t.call("CHECK", &with_prev(&c, &r), "mv-l2").ok();
    t.call("DEL", &c, "mv-l2").ok();
    let mut left = t.ctr.link_names();
    left.sort();
    assert_eq!(left, ["in0", "in0p"]);
    // A master only the host has is not found in the container.
    let mut host_master = c.clone();
    host_master["master"] = json!("up0");
    assert_eq!(t.call("ADD", &host_master, "mv-l2").err()["msg"], "Link not found");
}

#[test]
#[ignore = "needs root"]
fn failures_leave_nothing_behind() {
    let t = Topo::new(40);
    let data = tempfile::tempdir().unwrap();
    // A route IPAM asks for cannot be added: Go leaves the macvlan behind; here the link and the
    // lease are gone.
    let mut bad_route = conf("1.0.0", 40, data.path(), json!({}));
    bad_route["ipam"]["routes"] = json!([{"dst": "10.216.99.0/24", "gw": "10.216.200.1"}]);
    let e = t.call("ADD", &bad_route, "mv-fail").err();
    assert_eq!(
        e["msg"],
        "failed to add route '{10.216.99.0 ffffff00} via 10.216.200.1 dev eth0': network is unreachable"
    );
    assert!(t.ctr.link_names().is_empty(), "{:?}", t.ctr.link_names());
    assert!(leases(data.path(), "mvtest").is_empty());
    // The name is taken in the container: the temporary link is removed.
    t.ctr.sh(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
    let c = conf("1.0.0", 40, data.path(), json!({}));
    let e = t.call("ADD", &c, "mv-fail").err();
    assert_eq!(e["msg"], "failed to rename macvlan to \"eth0\": file exists");
    let mut left = t.ctr.link_names();
    left.sort();
    assert_eq!(left, ["eth0", "eth0p"]);
    assert!(leases(data.path(), "mvtest").is_empty());
    // The kernel refuses an all-zero MAC address.
    let zero = conf("1.0.0", 40, data.path(), json!({"mac": "00:00:00:00:00:00"}));
    let e = t.call("ADD", &zero, "mv-fail").ifname("net1").err();
    assert_eq!(e["msg"], "failed to create macvlan: cannot assign requested address");
    assert_eq!(t.ctr.link_names().len(), 2);
}

#[test]
#[ignore = "needs root"]
fn del_is_idempotent_whatever_is_gone() {
    let t = Topo::new(50);
    let data = tempfile::tempdir().unwrap();
    let c = conf("1.0.0", 50, data.path(), json!({}));
    t.call("ADD", &c, "mv-del").ok();
    assert_eq!(leases(data.path(), "mvtest").len(), 1);
    // The master disappears (Go v1.1.1 then fails DEL with "Link not found").
    t.host.sh(&["ip", "link", "del", "up0"]);
    assert!(t.ctr.link_names().is_empty(), "the kernel removed the macvlan with its master");
    t.call("DEL", &c, "mv-del").ok();
    assert!(leases(data.path(), "mvtest").is_empty());
    // No CNI_NETNS, a namespace that is gone.
    let mut no_ns = t.call("DEL", &c, "mv-del");
    no_ns.netns = None;
    no_ns.run().ok();
    t.call("DEL", &c, "mv-del").netns_path("/var/run/netns/cnitest-mv-gone").run().ok();
    // Without a default route there is no master to default to (ADD), but DEL still works.
    let mut no_master = conf("1.0.0", 50, data.path(), json!({}));
    no_master.as_object_mut().unwrap().remove("master");
    assert_eq!(t.call("ADD", &no_master, "mv-del").err()["msg"], "no default route interface found");
    t.call("DEL", &no_master, "mv-del").ok();
}
