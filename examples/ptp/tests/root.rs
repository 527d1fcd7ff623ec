//! The real `ptp` binary in real throwaway namespaces (one as the plugin's "host", one as the
//! container) with Debian's Go `host-local` as IPAM in a temporary `dataDir`. Needs root:
//! `cargo test -p ptp -- --include-ignored`.

use std::path::Path;

use cni_test_support::{Call, Netns, leases};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ptp");

fn conf(version: &str, subnet: &str, data: &Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": "ptptest",
        "type": "ptp",
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data, "routes": [{"dst": "0.0.0.0/0"}]}
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

#[test]
#[ignore = "needs root"]
fn add_check_del_every_version_with_go_host_local() {
    for (i, version) in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
        let host = Netns::new("ptphost");
        let ctr = Netns::new("ptpctr");
        let data = tempfile::tempdir().unwrap();
        let c = conf(version, &format!("10.230.{i}.0/24"), data.path(), json!({"ipMasq": true, "mtu": 1420}));
        let cid = format!("ptp-{i}");
        let r = Call::new(BIN, "ADD", &c, &cid).in_ns(&host).netns(&ctr).ok();
        assert_eq!(r["cniVersion"], version);
        let ip = format!("10.230.{i}.2");
        let gw = format!("10.230.{i}.1");
        // Container: address, no on-link subnet route, gw/32 link route, subnet and default via gw.
        assert_eq!(ctr.addrs("eth0"), [format!("{ip}/24")]);
        assert_eq!(ctr.link("eth0").unwrap()["mtu"], 1420);
        let routes = ctr.routes4();
        let find = |dst: &str| routes.iter().find(|r| r["dst"] == dst).cloned();
        let gw_route = find(&gw).unwrap_or_else(|| panic!("gw route: {routes:?}"));
        assert_eq!(gw_route["scope"], "link");
        assert_eq!(gw_route["prefsrc"], ip.as_str());
        let subnet = find(&format!("10.230.{i}.0/24")).unwrap();
        assert_eq!(subnet["gateway"], gw.as_str(), "{routes:?}");
        assert_eq!(subnet["prefsrc"], ip.as_str());
        assert_eq!(find("default").unwrap()["gateway"], gw.as_str());
        // Host: veth with gw/32 and a host route to the container.
        let veths: Vec<Value> = host.links().into_iter().filter(|l| l["linkinfo"]["info_kind"] == "veth").collect();
        assert_eq!(veths.len(), 1);
        let hv = veths[0]["ifname"].as_str().unwrap().to_owned();
        assert_eq!(host.addrs(&hv), [format!("{gw}/32")]);
        assert!(
            host.routes4().iter().any(|r| r["dst"] == ip.as_str() && r["dev"] == hv.as_str()),
            "{:?}",
            host.routes4()
        );
        assert_eq!(host.sysctl("net.ipv4.ip_forward"), "1");
        assert_eq!(host.cni_nat_rules().len(), 4, "{:?}", host.cni_nat_rules());
        if version >= "0.3.0" {
            assert_eq!(r["interfaces"][0]["name"], hv.as_str());
            assert_eq!(r["interfaces"][1]["name"], "eth0");
            assert_eq!(r["interfaces"][1]["sandbox"], ctr.path());
            assert_eq!(r["ips"][0]["interface"], 1);
        }
        if version >= "0.4.0" {
            let mut chk = c.clone();
            chk["prevResult"] = r.clone();
            Call::new(BIN, "CHECK", &chk, &cid).in_ns(&host).netns(&ctr).ok();
        }
        Call::new(BIN, "DEL", &c, &cid).in_ns(&host).netns(&ctr).ok();
        assert!(ctr.link_names().is_empty(), "{version}");
        assert!(host.link_names().is_empty(), "{version}: host veth gone");
        assert!(host.cni_nat_rules().is_empty(), "{version}: {:?}", host.cni_nat_rules());
        assert!(leases(data.path(), "ptptest").is_empty());
        Call::new(BIN, "DEL", &c, &cid).in_ns(&host).netns(&ctr).ok();
    }
}

#[test]
#[ignore = "needs root"]
fn dual_stack() {
    let host = Netns::new("ptphost");
    let ctr = Netns::new("ptpctr");
    let data = tempfile::tempdir().unwrap();
    let c = json!({
        "cniVersion": "1.0.0", "name": "ptptest", "type": "ptp",
        "ipam": {"type": "host-local", "dataDir": data.path(), "ranges": [[{"subnet": "10.231.0.0/24"}], [{"subnet": "fd00:231::/64"}]]}
    });
    let r = Call::new(BIN, "ADD", &c, "dual").in_ns(&host).netns(&ctr).ok();
    assert_eq!(r["ips"].as_array().unwrap().len(), 2);
    let mut a = ctr.addrs("eth0");
    a.sort();
    assert_eq!(a, ["10.231.0.2/24", "fd00:231::2/64"]);
    assert!(
        ctr.routes6().iter().any(|r| r["dst"] == "fd00:231::/64" && r["gateway"] == "fd00:231::1"),
        "{:?}",
        ctr.routes6()
    );
    assert_eq!(host.sysctl("net.ipv6.conf.all.forwarding"), "1");
    let mut chk = c.clone();
    chk["prevResult"] = r;
    Call::new(BIN, "CHECK", &chk, "dual").in_ns(&host).netns(&ctr).ok();
    Call::new(BIN, "DEL", &c, "dual").in_ns(&host).netns(&ctr).ok();
    assert!(ctr.link_names().is_empty() && host.link_names().is_empty());
    assert!(leases(data.path(), "ptptest").is_empty());
}

#[test]
#[ignore = "needs root"]
fn faults_leave_nothing_behind() {
    let host = Netns::new("ptphost");
    let data = tempfile::tempdir().unwrap();
    // The container already has eth0: veth creation fails after IPAM ADD.
    let ctr = Netns::new("ptpctr");
    ctr.sh(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
    let c = conf("1.0.0", "10.232.0.0/24", data.path(), json!({"ipMasq": true}));
    let e = Call::new(BIN, "ADD", &c, "exists").in_ns(&host).netns(&ctr).err();
    assert!(e["msg"].as_str().unwrap().contains("already exists"), "{e}");
    assert!(leases(data.path(), "ptptest").is_empty(), "IPAM DEL ran");
    assert!(host.link_names().is_empty());
    assert!(host.cni_nat_rules().is_empty());
    // A missing netns on DEL releases the lease.
    let gone = Netns::new("ptpctr");
    Call::new(BIN, "ADD", &c, "gone").in_ns(&host).netns(&gone).ok();
    let del = Call::new(BIN, "DEL", &c, "gone").in_ns(&host).netns(&gone);
    drop(gone);
    del.ok();
    assert!(leases(data.path(), "ptptest").is_empty());
    assert!(host.cni_nat_rules().is_empty(), "{:?}", host.cni_nat_rules());
}

#[test]
#[ignore = "needs root"]
fn sigkill_midway_then_del_cleans_up() {
    use std::time::{Duration, Instant};
    let host = Netns::new("ptphost");
    let ctr = Netns::new("ptpctr");
    let data = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let marker = bin.path().join("allocated");
    // Go's host-local allocates, then the IPAM hangs on ADD and the plugin is killed.
    let script = format!(
        "#!/bin/sh\nout=$({GO}/host-local) || {{ echo \"$out\"; exit 1; }}\nif [ \"$CNI_COMMAND\" = ADD ]; then touch {m}; exec sleep 30; fi\necho \"$out\"\n",
        GO = cni_test_support::go::PLUGIN_DIR,
        m = marker.display()
    );
    let slow = bin.path().join("slow-ipam");
    std::fs::write(&slow, script).unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = conf("1.0.0", "10.233.0.0/24", data.path(), json!({"ipMasq": true}));
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
    let pgid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the process group of the child this test spawned.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
    assert_eq!(leases(data.path(), "ptptest").len(), 1, "the lease was taken");
    let mut del = Call::new(BIN, "DEL", &c, "killed").in_ns(&host).netns(&ctr);
    del.cni_path = call.cni_path.clone();
    del.ok();
    assert!(leases(data.path(), "ptptest").is_empty());
    assert!(ctr.link_names().is_empty() && host.link_names().is_empty());
    assert!(host.cni_nat_rules().is_empty());
}
