//! The real `bridge` binary in real throwaway namespaces (one as the plugin's "host", one as the
//! container), with Debian's Go `host-local` as IPAM in a temporary `dataDir`. Needs root:
//! `cargo test -p bridge -- --include-ignored`.

use std::path::Path;
use std::time::{Duration, Instant};

use cni_test_support::{Call, Netns, leases};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_bridge");

fn conf(version: &str, bridge: &str, subnet: &str, data_dir: &Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": "brtest",
        "type": "bridge",
        "bridge": bridge,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir, "routes": [{"dst": "0.0.0.0/0"}]}
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

fn chain(cid: &str) -> String {
    use sha2::{Digest, Sha512};
    let d = Sha512::digest(format!("brtest{cid}").as_bytes());
    let hex: String = d.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("CNI-{hex}")
}

#[test]
#[ignore = "needs root"]
fn add_check_del_every_version_with_go_host_local() {
    for (i, version) in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
        let host = Netns::new("brhost");
        let ctr = Netns::new("brctr");
        let data = tempfile::tempdir().unwrap();
        let subnet = format!("10.210.{i}.0/24");
        let c = conf(version, "cnitest-br1", &subnet, data.path(), json!({"isGateway": true, "ipMasq": true}));
        let cid = format!("ctr-{i}");
        let r = Call::new(BIN, "ADD", &c, &cid).in_ns(&host).netns(&ctr).ok();
        assert_eq!(r["cniVersion"], version);
        let ip = format!("10.210.{i}.2/24");
        let gw = format!("10.210.{i}.1");

        // Host: bridge up with the gateway address, one veth port, forwarding on.
        let br = host.link("cnitest-br1").expect("bridge");
        assert_eq!(br["linkinfo"]["info_kind"], "bridge");
        assert!(br["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{br}");
        assert_eq!(host.addrs("cnitest-br1"), [format!("{gw}/24")]);
        let ports: Vec<Value> = host.links().into_iter().filter(|l| l["master"] == "cnitest-br1").collect();
        assert_eq!(ports.len(), 1, "{ports:?}");
        let port = ports[0]["ifname"].as_str().unwrap().to_owned();
        assert!(port.starts_with("veth"));
        assert_eq!(ports[0]["linkinfo"]["info_kind"], "veth");
        assert_eq!(host.sysctl("net.ipv4.ip_forward"), "1");
        // Container: eth0 with the address, default route via the gateway.
        assert_eq!(ctr.addrs("eth0"), std::slice::from_ref(&ip));
        let routes = ctr.routes4();
        assert!(routes.iter().any(|r| r["dst"] == "default" && r["gateway"] == gw.as_str()), "{routes:?}");
        // Results of 0.3.0+ name the three interfaces.
        if version >= "0.3.0" {
            let names: Vec<&str> =
                r["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["cnitest-br1", port.as_str(), "eth0"]);
            // The gateway set-up pins the bridge's own MAC (as Go does), not the port's that a
            // bridge would otherwise adopt: the new bridge and its first port differ.
            assert_eq!(r["interfaces"][0]["mac"], br["address"]);
            assert_ne!(r["interfaces"][0]["mac"], r["interfaces"][1]["mac"], "{r}");
            assert_eq!(r["interfaces"][2]["sandbox"], ctr.path());
            assert_eq!(r["interfaces"][2]["mac"], ctr.link("eth0").unwrap()["address"]);
            assert_eq!(r["ips"][0]["interface"], 2);
            assert_eq!(r["ips"][0]["address"], ip.as_str());
        } else {
            assert_eq!(r["ip4"]["ip"], ip.as_str());
        }
        // iptables: Go's chain name and comment.
        let ch = chain(&cid);
        let nat = host.nat(false);
        let comment = format!("\"name: \\\"brtest\\\" id: \\\"{cid}\\\"\"");
        assert!(
            nat.contains(&format!("-A POSTROUTING -s 10.210.{i}.2/32 -m comment --comment {comment} -j {ch}")),
            "{nat}"
        );
        assert!(nat.contains(&format!("-A {ch} -d 10.210.{i}.0/24 -m comment --comment {comment} -j ACCEPT")), "{nat}");
        assert!(
            nat.contains(&format!("-A {ch} ! -d 224.0.0.0/4 -m comment --comment {comment} -j MASQUERADE")),
            "{nat}"
        );
        assert_eq!(leases(data.path(), "brtest"), [format!("10.210.{i}.2")]);

        if version >= "0.4.0" {
            let mut chk = c.clone();
            chk["prevResult"] = r.clone();
            Call::new(BIN, "CHECK", &chk, &cid).in_ns(&host).netns(&ctr).ok();
        }

        Call::new(BIN, "DEL", &c, &cid).in_ns(&host).netns(&ctr).ok();
        assert!(ctr.link_names().is_empty(), "{version}: container link removed");
        assert_eq!(host.link_names(), ["cnitest-br1"], "{version}: only the bridge is left on the host");
        assert!(host.cni_nat_rules().is_empty(), "{version}: iptables rules removed: {:?}", host.cni_nat_rules());
        assert!(leases(data.path(), "brtest").is_empty(), "{version}: lease released");
        // DEL again, then without netns: still success.
        Call::new(BIN, "DEL", &c, &cid).in_ns(&host).netns(&ctr).ok();
        let mut call = Call::new(BIN, "DEL", &c, &cid).in_ns(&host).netns(&ctr);
        call.netns = None;
        call.ok();
    }
}

#[test]
#[ignore = "needs root"]
fn options_on_the_kernel_mtu_hairpin_mac_vlan_default_gateway() {
    let host = Netns::new("brhost");
    let ctr = Netns::new("brctr");
    let data = tempfile::tempdir().unwrap();
    let c = conf(
        "1.0.0",
        "cnitest-br2",
        "10.211.0.0/24",
        data.path(),
        json!({"mtu": 1400, "hairpinMode": true, "isDefaultGateway": true, "args": {"cni": {"mac": "0a:58:0a:d3:00:09"}}}),
    );
    let mut c = c;
    c["ipam"]["routes"] = json!([]);
    let r = Call::new(BIN, "ADD", &c, "opts").in_ns(&host).netns(&ctr).ok();
    let eth0 = ctr.link("eth0").unwrap();
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["address"], "0a:58:0a:d3:00:09");
    let br = host.link("cnitest-br2").unwrap();
    assert_eq!(br["mtu"], 1400);
    let port = r["interfaces"][1]["name"].as_str().unwrap();
    let p = host.link(port).unwrap();
    assert_eq!(p["linkinfo"]["info_slave_data"]["hairpin"], true, "{p}");
    assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(r["routes"][0]["gw"], "10.211.0.1");
    assert!(ctr.routes4().iter().any(|r| r["dst"] == "default" && r["gateway"] == "10.211.0.1"));
    let mut chk = c.clone();
    chk["prevResult"] = r;
    Call::new(BIN, "CHECK", &chk, "opts").in_ns(&host).netns(&ctr).ok();
    Call::new(BIN, "DEL", &c, "opts").in_ns(&host).netns(&ctr).ok();
    assert!(ctr.link_names().is_empty());
    assert_eq!(host.link_names(), ["cnitest-br2"]);
    assert!(leases(data.path(), "brtest").is_empty());
}

#[test]
#[ignore = "needs root"]
fn ipam_failure_after_the_veth_leaves_no_veth() {
    let host = Netns::new("brhost");
    let ctr1 = Netns::new("brctr");
    let ctr2 = Netns::new("brctr");
    let data = tempfile::tempdir().unwrap();
    let mut c = conf("1.0.0", "cnitest-br3", "10.212.0.0/24", data.path(), json!({}));
    c["ipam"]["rangeStart"] = json!("10.212.0.10");
    c["ipam"]["rangeEnd"] = json!("10.212.0.10");
    Call::new(BIN, "ADD", &c, "first").in_ns(&host).netns(&ctr1).ok();
    // The range is exhausted: host-local fails after our veth exists.
    let e = Call::new(BIN, "ADD", &c, "second").in_ns(&host).netns(&ctr2).err();
    assert!(e["msg"].as_str().unwrap().contains("no IP addresses available"), "{e}");
    assert!(ctr2.link_names().is_empty(), "no container veth left");
    let ports: Vec<Value> = host.links().into_iter().filter(|l| l["linkinfo"]["info_kind"] == "veth").collect();
    assert_eq!(ports.len(), 1, "only the first container's veth: {ports:?}");
    assert_eq!(leases(data.path(), "brtest"), ["10.212.0.10"]);
}

#[test]
#[ignore = "needs root"]
fn failure_after_ipam_add_releases_the_lease_and_the_veth() {
    let host = Netns::new("brhost");
    let ctr = Netns::new("brctr");
    let data = tempfile::tempdir().unwrap();
    // The bridge already has another IPv4 address: isGateway fails after IPAM ADD.
    host.sh(&["ip", "link", "add", "cnitest-br4", "type", "bridge"]);
    host.sh(&["ip", "addr", "add", "10.213.9.1/24", "dev", "cnitest-br4"]);
    let c = conf("1.0.0", "cnitest-br4", "10.213.0.0/24", data.path(), json!({"isGateway": true, "ipMasq": true}));
    let e = Call::new(BIN, "ADD", &c, "fails").in_ns(&host).netns(&ctr).err();
    assert_eq!(
        e["msg"],
        "failed to set bridge addr: \"cnitest-br4\" already has an IP address different from 10.213.0.1/24"
    );
    assert!(leases(data.path(), "brtest").is_empty(), "IPAM DEL ran");
    assert!(ctr.link_names().is_empty());
    assert_eq!(host.link_names(), ["cnitest-br4"]);
    assert!(host.cni_nat_rules().is_empty());
    // With forceAddress it works.
    let c =
        conf("1.0.0", "cnitest-br4", "10.213.0.0/24", data.path(), json!({"isGateway": true, "forceAddress": true}));
    // The failed ADD's port came and went, which leaves the bridge (made by `ip`, its MAC never
    // pinned) with the zero MAC on this kernel (6.x): the gateway set-up then pins its current
    // MAC instead of the zero one (Go fails there).
    let before = host.link("cnitest-br4").unwrap()["address"].clone();
    let r = Call::new(BIN, "ADD", &c, "works").in_ns(&host).netns(&ctr).ok();
    let mac = host.link("cnitest-br4").unwrap()["address"].clone();
    assert_ne!(mac, "00:00:00:00:00:00", "bridge MAC before the ADD: {before}");
    assert_eq!(r["interfaces"][0]["mac"], mac);
    assert_eq!(host.addrs("cnitest-br4"), ["10.213.0.1/24"]);
    Call::new(BIN, "DEL", &c, "works").in_ns(&host).netns(&ctr).ok();
}

#[test]
#[ignore = "needs root"]
fn sigkill_midway_then_del_cleans_up() {
    let host = Netns::new("brhost");
    let ctr = Netns::new("brctr");
    let data = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let marker = bin.path().join("allocated");
    // An IPAM that allocates with Go's host-local, then hangs on ADD (the bridge is killed there).
    let script = format!(
        "#!/bin/sh\nout=$({GO}/host-local) || {{ echo \"$out\"; exit 1; }}\nif [ \"$CNI_COMMAND\" = ADD ]; then touch {m}; exec sleep 30; fi\necho \"$out\"\n",
        GO = cni_test_support::go::PLUGIN_DIR,
        m = marker.display()
    );
    let slow = bin.path().join("slow-ipam");
    std::fs::write(&slow, script).unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = conf("1.0.0", "cnitest-br5", "10.214.0.0/24", data.path(), json!({"isGateway": true, "ipMasq": true}));
    c["ipam"]["type"] = json!("slow-ipam");
    let mut call = Call::new(BIN, "ADD", &c, "killed").in_ns(&host).netns(&ctr);
    call.cni_path = format!("{}:{}", bin.path().display(), cni_test_support::go::PLUGIN_DIR);
    let mut cmd = call.command();
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        // A plugin may exit before reading stdin (an early error): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(c.to_string().as_bytes());
    }
    let start = Instant::now();
    while !marker.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "IPAM never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill the plugin and its IPAM child (the process group we created).
    let pgid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the process group of the child this test spawned.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
    assert_eq!(ctr.link_names(), ["eth0"], "ADD was interrupted with the veth in place");
    assert_eq!(leases(data.path(), "brtest").len(), 1, "and the lease taken");

    let mut del = Call::new(BIN, "DEL", &c, "killed").in_ns(&host).netns(&ctr);
    del.cni_path = call.cni_path.clone();
    del.ok();
    assert!(ctr.link_names().is_empty());
    assert_eq!(host.link_names(), ["cnitest-br5"]);
    assert!(leases(data.path(), "brtest").is_empty());
    assert!(host.cni_nat_rules().is_empty());
}

#[test]
#[ignore = "needs root"]
fn del_with_missing_netns_releases_the_lease() {
    let host = Netns::new("brhost");
    let data = tempfile::tempdir().unwrap();
    let c = conf("0.4.0", "cnitest-br6", "10.215.0.0/24", data.path(), json!({"ipMasq": true}));
    {
        let ctr = Netns::new("brctr");
        Call::new(BIN, "ADD", &c, "gone").in_ns(&host).netns(&ctr).ok();
        assert_eq!(leases(data.path(), "brtest").len(), 1);
        let mut del = Call::new(BIN, "DEL", &c, "gone").in_ns(&host).netns(&ctr);
        // The namespace disappears before DEL.
        drop(ctr);
        del.netns = Some(del.netns.take().unwrap());
        del.ok();
    }
    assert!(leases(data.path(), "brtest").is_empty());
    // Without addresses found, the chain is still removed by name.
    assert!(host.cni_nat_rules().is_empty(), "{:?}", host.cni_nat_rules());
    // The kernel tears a dead namespace's devices down asynchronously (netns cleanup work).
    for _ in 0..50 {
        if host.link_names() == ["cnitest-br6"] {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(host.link_names(), ["cnitest-br6"], "the veth went with the namespace");
}

#[test]
#[ignore = "needs root"]
fn layer2_only_and_dual_stack() {
    let host = Netns::new("brhost");
    let ctr = Netns::new("brctr");
    let l2 = json!({"cniVersion": "1.0.0", "name": "brtest", "type": "bridge", "bridge": "cnitest-br7"});
    let r = Call::new(BIN, "ADD", &l2, "l2").in_ns(&host).netns(&ctr).ok();
    assert!(r.get("ips").is_none());
    let eth0 = ctr.link("eth0").unwrap();
    assert!(eth0["flags"].as_array().unwrap().contains(&json!("UP")));
    Call::new(BIN, "DEL", &l2, "l2").in_ns(&host).netns(&ctr).ok();
    assert!(ctr.link_names().is_empty());

    let data = tempfile::tempdir().unwrap();
    let ctr = Netns::new("brctr");
    let c = json!({
        "cniVersion": "1.0.0", "name": "brtest", "type": "bridge", "bridge": "cnitest-br8",
        "isDefaultGateway": true,
        "ipam": {"type": "host-local", "dataDir": data.path(), "ranges": [[{"subnet": "10.216.0.0/24"}], [{"subnet": "fd00:216::/64"}]]}
    });
    let r = Call::new(BIN, "ADD", &c, "dual").in_ns(&host).netns(&ctr).ok();
    assert_eq!(r["ips"].as_array().unwrap().len(), 2);
    let mut br_addrs = host.addrs("cnitest-br8");
    br_addrs.sort();
    assert_eq!(br_addrs, ["10.216.0.1/24", "fd00:216::1/64"]);
    assert_eq!(host.sysctl("net.ipv6.conf.all.forwarding"), "1");
    let mut ctr_addrs = ctr.addrs("eth0");
    ctr_addrs.sort();
    assert_eq!(ctr_addrs, ["10.216.0.2/24", "fd00:216::2/64"]);
    assert!(
        ctr.routes6().iter().any(|r| r["dst"] == "default" && r["gateway"] == "fd00:216::1"),
        "{:?}",
        ctr.routes6()
    );
    let mut chk = c.clone();
    chk["prevResult"] = r;
    Call::new(BIN, "CHECK", &chk, "dual").in_ns(&host).netns(&ctr).ok();
    Call::new(BIN, "DEL", &c, "dual").in_ns(&host).netns(&ctr).ok();
    assert!(ctr.link_names().is_empty());
    assert!(leases(data.path(), "brtest").is_empty());
}

/// Whether the kernel has bridge VLAN filtering (some CI kernels lack it).
fn vlan_filtering_supported(host: &Netns) -> bool {
    let quiet = |args: &[&str]| host.cmd(args).stderr(std::process::Stdio::null()).status().unwrap().success();
    let ok = quiet(&["ip", "link", "add", "cnitest-vlprobe", "type", "bridge", "vlan_filtering", "1"]);
    quiet(&["ip", "link", "del", "cnitest-vlprobe"]);
    ok
}

#[test]
#[ignore = "needs root"]
fn vlan_access_port_on_the_kernel() {
    let host = Netns::new("brhost");
    if !vlan_filtering_supported(&host) {
        eprintln!("skipping: this kernel has no bridge VLAN filtering");
        return;
    }
    let ctr = Netns::new("brctr");
    let data = tempfile::tempdir().unwrap();
    let c = conf("1.0.0", "cnitest-br9", "10.217.0.0/24", data.path(), json!({"vlan": 42}));
    let r = Call::new(BIN, "ADD", &c, "vlan").in_ns(&host).netns(&ctr).ok();
    let br = host.link("cnitest-br9").unwrap();
    assert_eq!(br["linkinfo"]["info_data"]["vlan_filtering"], 1, "{br}");
    let port = r["interfaces"][1]["name"].as_str().unwrap();
    let vlans = host.sh(&["bridge", "-j", "vlan", "show", "dev", port]);
    let v: Value = serde_json::from_str(&vlans).unwrap();
    let entries = v[0]["vlans"].as_array().unwrap();
    let v42 = entries.iter().find(|e| e["vlan"] == 42).expect("vlan 42 on the port");
    let flags = v42["flags"].as_array().unwrap();
    assert!(flags.contains(&json!("PVID")) && flags.contains(&json!("Egress Untagged")), "{v42}");
    Call::new(BIN, "DEL", &c, "vlan").in_ns(&host).netns(&ctr).ok();
    assert!(ctr.link_names().is_empty());
}

#[test]
#[ignore = "needs root"]
fn concurrent_adds_share_one_bridge() {
    let host = Netns::new("brhost");
    let data = tempfile::tempdir().unwrap();
    let c = conf("1.0.0", "cnitest-br10", "10.218.0.0/24", data.path(), json!({"isGateway": true, "ipMasq": true}));
    let ctrs: Vec<Netns> = (0..4).map(|_| Netns::new("brctr")).collect();
    std::thread::scope(|s| {
        for (i, ctr) in ctrs.iter().enumerate() {
            let (host, c) = (&host, &c);
            s.spawn(move || Call::new(BIN, "ADD", c, &format!("par-{i}")).in_ns(host).netns(ctr).ok());
        }
    });
    let ports = host.links().into_iter().filter(|l| l["master"] == "cnitest-br10").count();
    assert_eq!(ports, 4);
    assert_eq!(host.addrs("cnitest-br10"), ["10.218.0.1/24"]);
    assert_eq!(leases(data.path(), "brtest").len(), 4);
    std::thread::scope(|s| {
        for (i, ctr) in ctrs.iter().enumerate() {
            let (host, c) = (&host, &c);
            s.spawn(move || Call::new(BIN, "DEL", c, &format!("par-{i}")).in_ns(host).netns(ctr).ok());
        }
    });
    assert_eq!(host.link_names(), ["cnitest-br10"]);
    assert!(host.cni_nat_rules().is_empty(), "{:?}", host.cni_nat_rules());
    assert!(leases(data.path(), "brtest").is_empty());
}
