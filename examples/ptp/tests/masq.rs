//! The ptp plugin's `ipMasq` on the kernel, in throwaway namespaces with Debian's Go
//! `host-local`: the masquerading is removed by a DEL without `CNI_NETNS` (Go bug B3) on both
//! backends, and after an ADD killed between its IPv4 and IPv6 iptables commits (Go bug B2).
//! Needs root: `cargo test -p ptp -- --include-ignored`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cni_test_support::{Call, Netns, leases, script, wait_until};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ptp");

fn conf(data: &Path, ranges: Value, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0",
        "name": "ptpm3",
        "type": "ptp",
        "ipMasq": true,
        "ipam": {"type": "host-local", "dataDir": data, "ranges": ranges},
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

/// The nat rules of both families mentioning `CNI-`, and the number of nftables masquerading
/// rules.
fn masq_state(host: &Netns) -> (Vec<String>, Vec<String>, usize) {
    let cni = |v6| -> Vec<String> { host.nat(v6).lines().filter(|l| l.contains("CNI-")).map(str::to_owned).collect() };
    let out = host.try_sh(&["nft", "-j", "list", "chain", "inet", "cni_plugins_masquerade", "masq_checks"]);
    let nft = if out.status.success() {
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["nftables"].as_array().unwrap().iter().filter(|i| i.get("rule").is_some()).count()
    } else {
        0
    };
    (cni(false), cni(true), nft)
}

#[test]
#[ignore = "needs root"]
fn ip_masq_goes_with_a_del_without_netns_on_both_backends() {
    for (i, backend) in ["iptables", "nftables"].into_iter().enumerate() {
        let host = Netns::new("ptpmasq");
        let ctr = Netns::new("ptpmasqc");
        let data = tempfile::tempdir().unwrap();
        let c = conf(
            data.path(),
            json!([[{"subnet": format!("10.226.{}.0/24", 120 + i)}]]),
            json!({"ipMasqBackend": backend}),
        );
        Call::new(BIN, "ADD", &c, "ptpnons").in_ns(&host).netns(&ctr).ok();
        let (v4, _, nft) = masq_state(&host);
        assert!(!v4.is_empty() || nft == 1, "{backend}: nothing installed");
        let mut del = Call::new(BIN, "DEL", &c, "ptpnons").in_ns(&host);
        del.netns = None;
        del.ok();
        assert_eq!(masq_state(&host), (vec![], vec![], 0), "{backend}");
        assert!(leases(data.path(), "ptpm3").is_empty());
    }
}

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
    let host = Netns::new("ptpkill");
    let ctr = Netns::new("ptpkillc");
    let data = tempfile::tempdir().unwrap();
    let wrap = tempfile::tempdir().unwrap();
    let marker = wrap.path().join("v6-commit");
    script(
        wrap.path(),
        "ip6tables-restore",
        &format!(
            "case \"$*\" in *--noflush*) touch {m}; exec sleep 30;; esac\nexec {real} \"$@\"",
            m = marker.display(),
            real = real_tool("ip6tables-restore").display()
        ),
    );
    let c = conf(
        data.path(),
        json!([[{"subnet": "10.226.122.0/24"}], [{"subnet": "fd00:226:122::/64"}]]),
        json!({"ipMasqBackend": "iptables"}),
    );
    let path = format!("{}:{}", wrap.path().display(), std::env::var("PATH").unwrap_or_default());
    let running = Call::new(BIN, "ADD", &c, "ptpkill").in_ns(&host).netns(&ctr).env("PATH", &path).spawn_in_own_group();
    wait_until("the IPv6 commit", Duration::from_secs(20), || marker.exists());
    running.kill_group();
    let (v4, v6, _) = masq_state(&host);
    assert!(v4.iter().any(|l| l.starts_with("-A POSTROUTING -s 10.226.122.2/32")), "{v4:?}");
    assert!(v6.is_empty(), "{v6:?}");

    Call::new(BIN, "DEL", &c, "ptpkill").in_ns(&host).netns(&ctr).ok();
    assert_eq!(masq_state(&host), (vec![], vec![], 0));
    assert!(leases(data.path(), "ptpm3").is_empty());
    assert!(ctr.link_names().is_empty());
    Call::new(BIN, "DEL", &c, "ptpkill").in_ns(&host).netns(&ctr).ok();
}
