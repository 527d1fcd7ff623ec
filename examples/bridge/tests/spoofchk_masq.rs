//! The bridge plugin's `macspoofchk` and `ipMasq` on the kernel, in throwaway namespaces (the
//! plugin's "host" is one too), with Debian's Go `host-local` as IPAM and Debian's Go `bridge`
//! as the peer: Go's nftables objects, frames from another MAC dropped, Go and ours removing each
//! other's checks; masquerading removed by a DEL without `CNI_NETNS` and after an ADD killed
//! between its two firewall commits. Needs root: `cargo test -p bridge -- --include-ignored`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cni_sdk::netns::NetNs;
use cni_test_support::{Call, Netns, go, leases, script, wait_until};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_bridge");

fn conf(bridge: &str, n: u8, data: &Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0",
        "name": "brm3",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": format!("10.226.{n}.0/24")}]]},
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

/// Whether a TCP connection from `ns` to `addr` gets an answer (a refusal counts: the frames
/// went through).
fn answers(ns: &Netns, addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    NetNs::open(ns.path())
        .unwrap()
        .run(move || match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        })
        .unwrap()
}

/// `nft -j list table bridge nat`, normalised: per chain its name, hook and rules (expressions
/// and comment), with `veth` and `mac` masked; `None` when the table does not exist.
fn spoof_table(host: &Netns, veth: &str, mac: &str) -> Option<Vec<Value>> {
    let out = host.try_sh(&["nft", "-j", "list", "table", "bridge", "nat"]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).unwrap().replace(veth, "VETH").replace(mac, "MAC");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut chains: Vec<Value> = Vec::new();
    for item in doc["nftables"].as_array().unwrap() {
        if let Some(c) = item.get("chain") {
            chains.push(
                json!({"name": c["name"], "hook": c["hook"], "prio": c["prio"], "policy": c["policy"], "rules": []}),
            );
        }
        if let Some(r) = item.get("rule") {
            let chain = chains.iter_mut().find(|c| c["name"] == r["chain"]).unwrap();
            chain["rules"].as_array_mut().unwrap().push(json!([r["expr"], r["comment"]]));
        }
    }
    Some(chains)
}

/// The container's MAC as `ip` prints it.
fn mac_of(ns: &Netns, dev: &str) -> String {
    ns.link(dev).unwrap()["address"].as_str().unwrap().to_owned()
}

#[test]
#[ignore = "needs root"]
fn macspoofchk_drops_frames_from_another_mac_and_del_removes_it() {
    let host = Netns::new("brspoof");
    let ctr = Netns::new("brspoofc");
    let data = tempfile::tempdir().unwrap();
    let c = conf("cnim3-br1", 100, data.path(), json!({"macspoofchk": true}));
    let r = Call::new(BIN, "ADD", &c, "spoof").in_ns(&host).netns(&ctr).ok();
    let veth = r["interfaces"][1]["name"].as_str().unwrap().to_owned();
    let mac = mac_of(&ctr, "eth0");
    let chains = spoof_table(&host, &veth, &mac).expect("table bridge nat");
    let c_if = "cni-br-iface-spoof-eth0";
    let c_mac = "cni-br-iface-spoof-eth0-mac";
    let names: Vec<&Value> = chains.iter().map(|c| &c["name"]).collect();
    assert_eq!(names, ["PREROUTING", c_if, c_mac]);
    assert_eq!(
        (&chains[0]["hook"], &chains[0]["prio"], &chains[0]["policy"]),
        (&json!("prerouting"), &json!(-300), &json!("accept"))
    );
    let comment = json!("macspoofchk-spoof-eth0");
    assert_eq!(chains[0]["rules"][0][1], comment);
    assert_eq!(chains[2]["rules"].as_array().unwrap().len(), 2);

    // Frames from the container's MAC pass; from another MAC they are dropped at the port.
    let gw = "10.226.100.1:9";
    assert!(answers(&ctr, gw));
    ctr.sh(&["ip", "link", "set", "eth0", "address", "02:00:00:00:0e:01"]);
    ctr.sh(&["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(!answers(&ctr, gw), "a spoofed MAC gets through");
    ctr.sh(&["ip", "link", "set", "eth0", "address", &mac]);
    assert!(answers(&ctr, gw));

    Call::new(BIN, "DEL", &c, "spoof").in_ns(&host).netns(&ctr).ok();
    let chains = spoof_table(&host, &veth, &mac).expect("the table stays (Go)");
    assert_eq!(chains.len(), 1, "{chains:?}");
    assert_eq!(chains[0]["rules"], json!([]));
    Call::new(BIN, "DEL", &c, "spoof").in_ns(&host).netns(&ctr).ok();
    assert!(leases(data.path(), "brm3").is_empty());
}

#[test]
#[ignore = "needs root"]
fn macspoofchk_objects_are_gos_and_each_removes_the_others() {
    let go = go::plugin("bridge");
    let go = go.to_str().unwrap();
    let mut tables = Vec::new();
    for (i, (adder, remover)) in [(go, BIN), (BIN, go)].into_iter().enumerate() {
        let host = Netns::new("brspgo");
        let ctr = Netns::new("brspgoc");
        let data = tempfile::tempdir().unwrap();
        let c = conf("cnim3-br2", 102 + u8::try_from(i).unwrap(), data.path(), json!({"macspoofchk": true}));
        let r = Call::new(adder, "ADD", &c, "spoofgo").in_ns(&host).netns(&ctr).ok();
        let veth = r["interfaces"][1]["name"].as_str().unwrap().to_owned();
        let mac = mac_of(&ctr, "eth0");
        tables.push(spoof_table(&host, &veth, &mac).expect("table bridge nat"));
        Call::new(remover, "DEL", &c, "spoofgo").in_ns(&host).netns(&ctr).ok();
        let left = spoof_table(&host, &veth, &mac).unwrap();
        assert_eq!(left.len(), 1, "{adder} -> {remover}: {left:?}");
        assert_eq!(left[0]["rules"], json!([]), "{adder} -> {remover}");
    }
    assert_eq!(tables[0], tables[1], "Go's objects and ours");
}

/// The nat rules of both families that belong to `brm3`'s masquerading, and the nftables
/// masquerading rules.
fn masq_state(host: &Netns) -> (Vec<String>, Vec<String>, usize) {
    let v4: Vec<String> = host.nat(false).lines().filter(|l| l.contains("CNI-")).map(str::to_owned).collect();
    let v6: Vec<String> = host.nat(true).lines().filter(|l| l.contains("CNI-")).map(str::to_owned).collect();
    let out = host.try_sh(&["nft", "-j", "list", "chain", "inet", "cni_plugins_masquerade", "masq_checks"]);
    let nft = if out.status.success() {
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["nftables"].as_array().unwrap().iter().filter(|i| i.get("rule").is_some()).count()
    } else {
        0
    };
    (v4, v6, nft)
}

#[test]
#[ignore = "needs root"]
fn ip_masq_goes_with_a_del_without_netns_on_both_backends() {
    for (i, backend) in ["iptables", "nftables"].into_iter().enumerate() {
        let host = Netns::new("brmasq");
        let ctr = Netns::new("brmasqc");
        let data = tempfile::tempdir().unwrap();
        let c = conf(
            "cnim3-br3",
            104 + u8::try_from(i).unwrap(),
            data.path(),
            json!({"ipMasq": true, "ipMasqBackend": backend}),
        );
        Call::new(BIN, "ADD", &c, "masqnons").in_ns(&host).netns(&ctr).ok();
        let (v4, _, nft) = masq_state(&host);
        assert!(!v4.is_empty() || nft == 1, "{backend}: nothing installed");
        // The runtime lost the namespace path: DEL without CNI_NETNS (Go leaks, bug B3).
        let mut del = Call::new(BIN, "DEL", &c, "masqnons").in_ns(&host);
        del.netns = None;
        del.ok();
        assert_eq!(masq_state(&host), (vec![], vec![], 0), "{backend}");
        assert!(leases(data.path(), "brm3").is_empty());
    }
}

/// The real `ip6tables-restore`.
fn real_tool(name: &str) -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found"))
}

#[test]
#[ignore = "needs root"]
fn ip_masq_goes_after_an_add_killed_between_its_firewall_commits() {
    let host = Netns::new("brkill");
    let ctr = Netns::new("brkillc");
    let data = tempfile::tempdir().unwrap();
    let wrap = tempfile::tempdir().unwrap();
    let marker = wrap.path().join("v6-commit");
    // IPv4's commit goes through; IPv6's hangs and the plugin is killed there.
    script(
        wrap.path(),
        "ip6tables-restore",
        &format!(
            "case \"$*\" in *--noflush*) touch {m}; exec sleep 30;; esac\nexec {real} \"$@\"",
            m = marker.display(),
            real = real_tool("ip6tables-restore").display()
        ),
    );
    let mut c = conf("cnim3-br4", 106, data.path(), json!({"ipMasq": true, "ipMasqBackend": "iptables"}));
    c["ipam"]["ranges"] = json!([[{"subnet": "10.226.106.0/24"}], [{"subnet": "fd00:226:106::/64"}]]);
    let path = format!("{}:{}", wrap.path().display(), std::env::var("PATH").unwrap_or_default());
    let add = Call::new(BIN, "ADD", &c, "masqkill").in_ns(&host).netns(&ctr).env("PATH", &path);
    let running = add.spawn_in_own_group();
    wait_until("the IPv6 commit", Duration::from_secs(20), || marker.exists());
    running.kill_group();
    let (v4, v6, _) = masq_state(&host);
    assert!(v4.iter().any(|l| l.starts_with("-A POSTROUTING -s 10.226.106.2/32")), "{v4:?}");
    assert!(v6.is_empty(), "{v6:?}");
    assert_eq!(leases(data.path(), "brm3").len(), 2);

    Call::new(BIN, "DEL", &c, "masqkill").in_ns(&host).netns(&ctr).ok();
    assert_eq!(masq_state(&host), (vec![], vec![], 0));
    assert!(leases(data.path(), "brm3").is_empty());
    assert!(ctr.link_names().is_empty());
    Call::new(BIN, "DEL", &c, "masqkill").in_ns(&host).netns(&ctr).ok();
}
