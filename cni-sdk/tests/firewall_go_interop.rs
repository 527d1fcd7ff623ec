//! Go's bridge plugin (Debian's `containernetworking-plugins` 1.1.1 in `/usr/lib/cni`) and
//! `cni_sdk::firewall::ipmasq` read and remove each other's iptables masquerading.
//!
//! Everything runs inside a throwaway "host" namespace (`fwt-<pid>-gh`) with a container
//! namespace next to it; needs root:
//! `cargo test -p cni-sdk --features firewall,test-util --test firewall_go_interop -- --include-ignored`.
#![cfg(all(feature = "firewall", feature = "test-util"))]

use std::io::Write;
use std::process::{Command, Stdio};

use cni_sdk::firewall::IpFamily;
use cni_sdk::firewall::ipmasq::{IpMasq, IpMasqBackend};
use cni_sdk::netns::TempNetns;
use ipnet::IpNet;
use serde_json::{Value, json};

const GO_PLUGINS: &str = "/usr/lib/cni";
const NET: &str = "fwtgo";
const CID: &str = "fwtgo-ctr1";

fn ns(suffix: &str) -> TempNetns {
    TempNetns::create(&format!("fwt-{}-{suffix}", std::process::id())).expect("create test namespace (needs root)")
}

/// Runs Go's bridge plugin from inside `host`.
fn go_bridge(host: &TempNetns, ctr: &TempNetns, command: &str, conf: &Value) -> Value {
    let conf = conf.to_string();
    let netns = ctr.path().to_owned();
    let command = command.to_owned();
    let out = host
        .netns()
        .unwrap()
        .run(move || {
            let mut child = Command::new(format!("{GO_PLUGINS}/bridge"))
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CNI_COMMAND", &command)
                .env("CNI_CONTAINERID", CID)
                .env("CNI_NETNS", &netns)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", GO_PLUGINS)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run Go's bridge plugin");
            child.stdin.take().unwrap().write_all(conf.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "Go bridge failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    if stdout.trim().is_empty() { Value::Null } else { serde_json::from_str(&stdout).unwrap() }
}

fn nat_save(host: &TempNetns, family: IpFamily) -> Vec<String> {
    let tool = if family == IpFamily::V4 { "iptables" } else { "ip6tables" };
    let out = host
        .netns()
        .unwrap()
        .run(move || Command::new(tool).args(["-w", "5", "-t", "nat", "-S"]).output().unwrap())
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().filter(|l| l.contains("CNI-")).map(str::to_owned).collect()
}

#[tokio::test]
#[ignore = "needs root"]
async fn go_bridge_and_ipmasq_remove_each_others_rules() {
    let host = ns("gh");
    let ctr = ns("gc");
    let data = tempfile::tempdir().unwrap();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": NET,
        "type": "bridge",
        "bridge": "fwt-br0",
        "isGateway": true,
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.210.200.0/24"}], [{"subnet": "fd00:210:200::/64"}]],
            "dataDir": data.path(),
        },
    });
    let result = go_bridge(&host, &ctr, "ADD", &conf);
    let addrs: Vec<IpNet> =
        result["ips"].as_array().unwrap().iter().map(|ip| ip["address"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(addrs.len(), 2, "{result}");
    let go_v4 = nat_save(&host, IpFamily::V4);
    let go_v6 = nat_save(&host, IpFamily::V6);
    assert_eq!((go_v4.len(), go_v6.len()), (4, 4), "Go's chain, jump and two rules per family: {go_v4:?} {go_v6:?}");

    let masq = IpMasq::in_netns(host.netns().unwrap());
    // Go's rules are ours: CHECK passes on them ...
    masq.check(IpMasqBackend::Iptables, NET, "eth0", CID, &addrs).await.unwrap();
    // ... and our teardown removes them, without the addresses.
    masq.teardown(NET, "eth0", CID).await.unwrap();
    assert!(nat_save(&host, IpFamily::V4).is_empty() && nat_save(&host, IpFamily::V6).is_empty());

    // Our setup writes exactly Go's rules ...
    masq.setup(IpMasqBackend::Iptables, NET, "eth0", CID, &addrs).await.unwrap();
    assert_eq!(nat_save(&host, IpFamily::V4), go_v4);
    assert_eq!(nat_save(&host, IpFamily::V6), go_v6);
    // ... which Go's DEL removes.
    go_bridge(&host, &ctr, "DEL", &conf);
    assert!(nat_save(&host, IpFamily::V4).is_empty(), "{:?}", nat_save(&host, IpFamily::V4));
    assert!(nat_save(&host, IpFamily::V6).is_empty(), "{:?}", nat_save(&host, IpFamily::V6));
}
