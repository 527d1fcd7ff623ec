//! In-process tests with the SDK's test kit against a temporary `dataDir` (no root).

use std::fs;
use std::path::Path;

use cni_sdk::testing::{PluginTest, for_each_version, for_versions};
use cni_sdk::{Command, SpecVersion};
use serde_json::{Value, json};

use super::HostLocal;

fn conf(dir: &Path, version: SpecVersion, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(dir);
    json!({"cniVersion": version.as_str(), "name": "net1", "type": "bridge", "ipam": ipam})
}

fn leases(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("net1"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    v.retain(|n| n != "lock" && !n.starts_with("last_reserved_ip.") && !n.starts_with(".cni-rs."));
    v.sort();
    v
}

fn run(cfg: &Value, cmd: Command, id: &str) -> PluginTest<'static, HostLocal> {
    static PLUGIN: HostLocal = HostLocal;
    PluginTest::new(&PLUGIN).command(cmd).config(cfg.clone()).container_id(id)
}

#[tokio::test]
async fn add_check_del_every_version() {
    for_each_version(|v| async move {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = conf(
            tmp.path(),
            v,
            json!({"subnet": "10.205.0.0/24", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.99.0.0/16", "gw": "10.205.0.254"}]}),
        );
        let out = run(&cfg, Command::Add, "ctr-1").run().await;
        let r = out.expect_result();
        assert_eq!(r.ips.len(), 1, "{v}");
        assert_eq!(r.ips[0].address.to_string(), "10.205.0.2/24");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.205.0.1");
        assert_eq!(r.ips[0].interface, None, "IPAM results carry no interface index");
        assert!(r.interfaces.is_empty());
        assert_eq!(r.routes.len(), 2, "{v}");
        let doc = out.document().unwrap();
        if v >= SpecVersion::V0_3_0 {
            assert!(doc.get("interfaces").is_none(), "{doc}");
            assert!(doc["ips"][0].get("interface").is_none(), "{doc}");
        } else {
            assert_eq!(doc["ip4"]["ip"], "10.205.0.2/24", "{doc}");
        }
        assert_eq!(fs::read(tmp.path().join("net1/10.205.0.2")).unwrap(), b"ctr-1\r\neth0");

        let check = run(&cfg, Command::Check, "ctr-1").run().await;
        if v.has_check() {
            check.expect_success();
            let e = run(&cfg, Command::Check, "ctr-2").run().await.expect_error(999);
            assert_eq!(e.msg, "host-local: Failed to find address added by container ctr-2");
        } else {
            check.expect_error(1);
        }
        run(&cfg, Command::Del, "ctr-1").run().await.expect_success();
        assert!(leases(tmp.path()).is_empty());
        run(&cfg, Command::Del, "ctr-1").run().await.expect_success();
        // lock and last_reserved_ip stay, as in Go.
        assert!(tmp.path().join("net1/lock").is_file());
        assert_eq!(fs::read(tmp.path().join("net1/last_reserved_ip.0")).unwrap(), b"10.205.0.2");
    })
    .await;
}

#[tokio::test]
async fn dual_stack_and_legacy_plus_ranges() {
    for_versions(SpecVersion::V0_3_0.and_newer(), |v| async move {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = conf(
            tmp.path(),
            v,
            json!({
                "subnet": "10.205.1.0/24", "rangeStart": "10.205.1.100", "rangeEnd": "10.205.1.101", "gateway": "10.205.1.254",
                "ranges": [[{"subnet": "fd00:205::/64"}], [{"subnet": "10.205.2.0/24"}]]
            }),
        );
        let r = run(&cfg, Command::Add, "c").run().await.expect_result();
        let got: Vec<(String, String)> =
            r.ips.iter().map(|i| (i.address.to_string(), i.gateway.unwrap().to_string())).collect();
        assert_eq!(
            got,
            [
                ("10.205.1.100/24".into(), "10.205.1.254".into()),
                ("fd00:205::2/64".into(), "fd00:205::1".into()),
                ("10.205.2.2/24".into(), "10.205.2.1".into())
            ]
        );
        assert_eq!(fs::read(tmp.path().join("net1/last_reserved_ip.1")).unwrap(), b"fd00:205::2");
        assert_eq!(fs::read(tmp.path().join("net1/last_reserved_ip.2")).unwrap(), b"10.205.2.2");
        run(&cfg, Command::Del, "c").run().await.expect_success();
        assert!(leases(tmp.path()).is_empty());
    })
    .await;
}

#[tokio::test]
async fn old_versions_allow_one_address_per_family() {
    for v in [SpecVersion::V0_1_0, SpecVersion::V0_2_0] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg =
            conf(tmp.path(), v, json!({"ranges": [[{"subnet": "10.205.1.0/24"}], [{"subnet": "10.205.2.0/24"}]]}));
        let e = run(&cfg, Command::Add, "c").run().await.expect_error(999);
        assert_eq!(e.msg, format!("CNI version {} does not support more than 1 address per family", v.as_str()));
        // One of each family works, printed as ip4 and ip6.
        let cfg =
            conf(tmp.path(), v, json!({"ranges": [[{"subnet": "10.205.1.0/24"}], [{"subnet": "fd00:205::/120"}]]}));
        let out = run(&cfg, Command::Add, "c").run().await;
        out.expect_result();
        let doc = out.document().unwrap();
        assert_eq!(
            (doc["ip4"]["ip"].as_str(), doc["ip6"]["ip"].as_str()),
            (Some("10.205.1.2/24"), Some("fd00:205::2/120"))
        );
    }
}

#[tokio::test]
async fn round_robin_continues_between_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = conf(tmp.path(), SpecVersion::V1_0_0, json!({"ranges": [[{"subnet": "10.205.3.0/29"}]]}));
    let mut got = Vec::new();
    for i in 0..5 {
        let r = run(&cfg, Command::Add, &format!("c{i}")).run().await.expect_result();
        got.push(r.ips[0].address.addr().to_string());
    }
    assert_eq!(got, ["10.205.3.2", "10.205.3.3", "10.205.3.4", "10.205.3.5", "10.205.3.6"]);
    let e = run(&cfg, Command::Add, "c9").run().await.expect_error(999);
    assert_eq!(e.msg, "failed to allocate for range 0: no IP addresses available in range set: 10.205.3.1-10.205.3.6");
    run(&cfg, Command::Del, "c2").run().await.expect_success();
    let r = run(&cfg, Command::Add, "c9").run().await.expect_result();
    assert_eq!(r.ips[0].address.to_string(), "10.205.3.4/29");
    let e = run(&cfg, Command::Add, "c9").run().await.expect_error(999);
    assert_eq!(
        e.msg,
        "failed to allocate for range 0: 10.205.3.4 has been allocated to c9, duplicate allocation is not allowed"
    );
    // Another interface of the same container is a separate lease.
    run(&cfg, Command::Del, "c0").run().await.expect_success();
    let r = run(&cfg, Command::Add, "c9").ifname("net2").run().await.expect_result();
    assert_eq!(r.ips[0].address.to_string(), "10.205.3.2/29");
    run(&cfg, Command::Del, "c9").run().await.expect_success();
    assert_eq!(fs::read(tmp.path().join("net1/10.205.3.2")).unwrap(), b"c9\r\nnet2", "DEL is per interface");
}

#[tokio::test]
async fn requested_ips_from_all_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = conf(
        tmp.path(),
        SpecVersion::V1_1_0,
        json!({"ranges": [[{"subnet": "10.205.4.0/24"}], [{"subnet": "fd00:205:4::/64"}], [{"subnet": "10.205.5.0/24"}]]}),
    );
    cfg["args"] = json!({"cni": {"ips": ["fd00:205:4::42"]}});
    cfg["runtimeConfig"] = json!({"ips": ["10.205.5.9/24"]});
    let r = run(&cfg, Command::Add, "c")
        .cni_args("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.205.4.7")
        .run()
        .await
        .expect_result();
    let got: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(got, ["10.205.4.7/24", "fd00:205:4::42/64", "10.205.5.9/24"]);

    // The same address from several sources is one request.
    let mut dup = cfg.clone();
    dup["args"] = json!({"cni": {"ips": ["10.205.4.8"]}});
    dup["runtimeConfig"] = json!({"ips": ["10.205.4.8/24"]});
    let r = run(&dup, Command::Add, "dup").cni_args("IP=10.205.4.8").run().await.expect_result();
    let got: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(
        got,
        ["10.205.4.8/24", "fd00:205:4::43/64", "10.205.5.10/24"],
        "round robin continues after the requested ones"
    );
    run(&dup, Command::Del, "dup").run().await.expect_success();

    // The same address again: taken.
    let e = run(&cfg, Command::Add, "d").cni_args("IP=10.205.4.7").run().await.expect_error(999);
    assert_eq!(
        e.msg,
        "failed to allocate for range 0: requested IP address 10.205.4.7 is not available in range set 10.205.4.1-10.205.4.254"
    );
    assert_eq!(leases(tmp.path()).len(), 3, "the failed ADD released nothing of c's");

    // Not in any range: nothing is kept.
    let mut cfg2 = cfg.clone();
    cfg2.as_object_mut().unwrap().remove("args");
    cfg2["runtimeConfig"] = json!({"ips": ["10.205.77.1"]});
    let e = run(&cfg2, Command::Add, "e").run().await.expect_error(999);
    assert_eq!(e.msg, "failed to allocate all requested IPs: 10.205.77.1");
    assert_eq!(leases(tmp.path()).len(), 3, "e's addresses were released");

    // The gateway cannot be requested.
    let e = run(&cfg2, Command::Add, "e").cni_args("IP=10.205.4.1").run().await.expect_error(999);
    assert!(e.msg.ends_with("requested ip 10.205.4.1 is subnet's gateway"), "{}", e.msg);

    // Unknown CNI_ARGS without IgnoreUnknown.
    let e = run(&cfg2, Command::Add, "e").cni_args("FOO=bar").run().await.expect_error(999);
    assert_eq!(e.msg, "ARGS: unknown args [\"FOO=bar\"]");
    let e = run(&cfg2, Command::Add, "e").cni_args("IP=nope").run().await.expect_error(999);
    assert_eq!(e.msg, "ARGS: error parsing value of pair \"IP=nope\": invalid IP address nope");
    // `ip/prefix` is accepted (the prefix is ignored), an empty value requests nothing.
    let mut cfg3 = cfg2.clone();
    cfg3.as_object_mut().unwrap().remove("runtimeConfig");
    let r = run(&cfg3, Command::Add, "f").cni_args("IP=10.205.4.99/8").run().await.expect_result();
    assert_eq!(r.ips[0].address.to_string(), "10.205.4.99/24");
    let r = run(&cfg3, Command::Add, "g").cni_args("IP=").run().await.expect_result();
    assert_eq!(r.ips.len(), 3);
}

#[tokio::test]
async fn ip_ranges_capability_is_prepended() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = conf(tmp.path(), SpecVersion::V1_0_0, json!({"subnet": "10.205.6.0/24"}));
    cfg["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.205.7.0/24", "rangeStart": "10.205.7.50"}]]});
    let r = run(&cfg, Command::Add, "c").run().await.expect_result();
    let got: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(got, ["10.205.7.50/24", "10.205.6.2/24"]);
    assert_eq!(fs::read(tmp.path().join("net1/last_reserved_ip.0")).unwrap(), b"10.205.7.50");
}

#[tokio::test]
async fn resolv_conf_and_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let rc = tmp.path().join("resolv.conf");
    fs::write(&rc, "nameserver 10.205.0.53\ndomain d.test\nsearch a.test b.test\noptions ndots:2\n").unwrap();
    let cfg = conf(tmp.path(), SpecVersion::V1_1_0, json!({"subnet": "10.205.8.0/24", "resolvConf": rc}));
    let out = run(&cfg, Command::Add, "c").run().await;
    let r = out.expect_result();
    assert_eq!(r.dns.nameservers, ["10.205.0.53"]);
    assert_eq!(r.dns.domain.as_deref(), Some("d.test"));
    assert_eq!(r.dns.search, ["a.test", "b.test"]);
    assert_eq!(r.dns.options, ["ndots:2"]);
    let cfg =
        conf(tmp.path(), SpecVersion::V1_1_0, json!({"subnet": "10.205.8.0/24", "resolvConf": "/nonexistent/rc"}));
    let e = run(&cfg, Command::Add, "d").run().await.expect_error(999);
    assert_eq!(e.msg, "open /nonexistent/rc: no such file or directory");
    assert_eq!(leases(tmp.path()).len(), 1, "nothing allocated when resolvConf fails");
}

#[tokio::test]
async fn configuration_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let v = SpecVersion::V1_0_0;
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "no IP ranges specified"),
        (json!({"ranges": [[]]}), "invalid range set 0: empty range set"),
        (json!({"subnet": "10.205.9.0/31"}), "invalid range set 0: Network 10.205.9.0/31 too small to allocate from"),
        (
            json!({"subnet": "10.205.9.3/24"}),
            "invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.205.9.0",
        ),
        (
            json!({"subnet": "10.205.9.0/24", "rangeStart": "10.205.10.1"}),
            "invalid range set 0: RangeStart 10.205.10.1 not in network 10.205.9.0/24",
        ),
        (
            json!({"subnet": "10.205.9.0/24", "rangeEnd": "10.205.10.1"}),
            "invalid range set 0: RangeEnd 10.205.10.1 not in network 10.205.9.0/24",
        ),
        (
            json!({"ranges": [[{"subnet": "10.205.9.0/24"}, {"subnet": "fd00:205::/64"}]]}),
            "invalid range set 0: mixed address families",
        ),
        (
            json!({"ranges": [[{"subnet": "10.205.9.0/24"}, {"subnet": "10.205.9.0/25"}]]}),
            "invalid range set 0: subnets 10.205.9.1-10.205.9.254 and 10.205.9.1-10.205.9.126 overlap",
        ),
        (
            json!({"subnet": "10.205.9.0/24", "ranges": [[{"subnet": "10.205.9.128/25"}]]}),
            "range set 0 overlaps with 1",
        ),
    ];
    for (ipam, msg) in cases {
        let cfg = conf(d, v, ipam.clone());
        for cmd in [Command::Add, Command::Del, Command::Check] {
            let e = run(&cfg, cmd, "c").run().await.expect_error(999);
            assert_eq!(e.msg, msg, "{cmd} {ipam}");
        }
    }
    let no_ipam = json!({"cniVersion": "1.0.0", "name": "net1", "type": "bridge"});
    for cmd in [Command::Add, Command::Del, Command::Check] {
        let e = run(&no_ipam, cmd, "c").run().await.expect_error(999);
        assert_eq!(e.msg, "IPAM config missing 'ipam' key");
    }
    // A malformed key is a plain error too.
    let cfg = conf(d, v, json!({"subnet": "not-a-cidr"}));
    run(&cfg, Command::Add, "c").run().await.expect_error(999);
    assert!(!d.join("net1").exists(), "no store is created for a bad configuration");
}

#[tokio::test]
async fn unwritable_data_dir_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    fs::write(&file, "").unwrap();
    let cfg = conf(&file, SpecVersion::V1_0_0, json!({"subnet": "10.205.10.0/24"}));
    let e = run(&cfg, Command::Add, "c").run().await.expect_error(999);
    assert!(e.msg.starts_with("mkdir "), "{}", e.msg);
}

#[tokio::test]
async fn network_name_cannot_leave_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["..", "a/b", "../escape"] {
        let mut cfg = conf(tmp.path(), SpecVersion::V1_0_0, json!({"subnet": "10.205.11.0/24"}));
        cfg["name"] = json!(name);
        run(&cfg, Command::Add, "c").run().await.expect_error(7);
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    // Container IDs are validated by the SDK before the plugin runs, and only ever written as content.
    let cfg = conf(tmp.path(), SpecVersion::V1_0_0, json!({"subnet": "10.205.11.0/24"}));
    run(&cfg, Command::Add, "../../etc").run().await.expect_error(4);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn del_without_leases_and_legacy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = conf(tmp.path(), SpecVersion::V0_4_0, json!({"subnet": "10.205.12.0/24"}));
    run(&cfg, Command::Del, "never-added").run().await.expect_success();
    fs::write(tmp.path().join("net1/10.205.12.9"), "legacy-ctr").unwrap();
    run(&cfg, Command::Check, "legacy-ctr").run().await.expect_success();
    run(&cfg, Command::Del, "legacy-ctr").run().await.expect_success();
    assert!(leases(tmp.path()).is_empty());
}

#[tokio::test]
async fn gc_releases_leases_of_invalid_attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = conf(tmp.path(), SpecVersion::V1_1_0, json!({"subnet": "10.205.13.0/24"}));
    for (id, ifname) in [("a", "eth0"), ("a", "eth1"), ("b", "eth0"), ("c", "eth0")] {
        run(&cfg, Command::Add, id).ifname(ifname).run().await.expect_result();
    }
    fs::write(tmp.path().join("net1/10.205.13.100"), "b").unwrap(); // legacy, container b still valid
    fs::write(tmp.path().join("net1/10.205.13.101"), "gone").unwrap(); // legacy, container gone
    let mut gc = cfg.clone();
    gc["cni.dev/valid-attachments"] =
        json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth0"}]);
    run(&gc, Command::Gc, "")
        .unset("CNI_CONTAINERID")
        .unset("CNI_IFNAME")
        .unset("CNI_NETNS")
        .run()
        .await
        .expect_success();
    assert_eq!(leases(tmp.path()), ["10.205.13.100", "10.205.13.2", "10.205.13.4"]);
    assert_eq!(fs::read(tmp.path().join("net1/10.205.13.2")).unwrap(), b"a\r\neth0");
    assert_eq!(fs::read(tmp.path().join("net1/10.205.13.4")).unwrap(), b"b\r\neth0");
    assert!(tmp.path().join("net1/lock").exists() && tmp.path().join("net1/last_reserved_ip.0").exists());
    // An empty list releases everything; GC needs 1.1.0.
    let mut gc = cfg.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    run(&gc, Command::Gc, "").run().await.expect_success();
    assert!(leases(tmp.path()).is_empty());
    let old = conf(tmp.path(), SpecVersion::V1_0_0, json!({"subnet": "10.205.13.0/24"}));
    run(&old, Command::Gc, "").run().await.expect_error(1);
}

#[tokio::test]
async fn status_is_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = conf(tmp.path(), SpecVersion::V1_1_0, json!({"subnet": "10.205.14.0/24"}));
    run(&cfg, Command::Status, "").run().await.expect_success();
}
