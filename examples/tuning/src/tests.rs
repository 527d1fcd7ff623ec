//! Unit tests on fake namespaces: every key and source, every error path, every spec version,
//! the backup file, DEL's idempotence and GC. No root, no binaries.

use std::path::{Path, PathBuf};

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{Link, Net, NetErrorKind};
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::types::MacAddr;
use cni_sdk::{CniResult, Command, ErrorCode, Interface, IpConfig, SpecVersion};
use serde_json::{Value, json};

use super::{Saved, Tuning, backup, same_sysctl_value};

const NS: &str = "/var/run/netns/ctr";
const CID: &str = "c0ffee";
const NET: &str = "tunenet";
const MAC: &str = "c2:b0:57:49:47:f1";

/// A container namespace with `eth0` (a veth whose peer is in the same namespace), a data dir
/// and the plugin.
struct Env {
    world: FakeNetwork,
    ctr: Net,
    data: tempfile::TempDir,
    plugin: Tuning,
}

impl Env {
    async fn new() -> Self {
        Self::with_plugin(Tuning::new()).await
    }

    async fn with_plugin(plugin: Tuning) -> Self {
        let world = FakeNetwork::new();
        let ctr = world.add_namespace("ctr");
        ctr.veth("eth0", "peer0").execute().await.unwrap();
        Self { world, ctr, data: tempfile::tempdir().unwrap(), plugin }
    }

    /// `cmd` with the plugin's keys `keys`, the prevResult of [`prev`], version 1.0.0.
    fn test(&self, cmd: Command, keys: Value) -> PluginTest<'_, Tuning> {
        PluginTest::new(&self.plugin)
            .command(cmd)
            .config_keys(json!({"cniVersion": "1.0.0", "name": NET, "type": "tuning", "dataDir": self.data.path()}))
            .config_keys(keys)
            .prev_result(&prev())
            .container_id(CID)
            .netns(NS)
            .network(&self.world)
    }

    async fn eth0(&self) -> Link {
        self.ctr.link("eth0").await.unwrap()
    }

    fn backup(&self) -> PathBuf {
        backup::path(self.data.path(), CID, "eth0")
    }

    fn saved(&self) -> Option<Saved> {
        std::fs::read(self.backup()).ok().map(|b| Saved::from_bytes(&b).unwrap())
    }

    fn sysctl(&self, key: &str) -> Option<String> {
        self.world.snapshot("ctr").unwrap().sysctls.get(key).cloned()
    }

    fn files(&self) -> Vec<String> {
        files_in(self.data.path())
    }

    /// `cmd` with a configuration whose `sysctl` names `net.ipv4.ip_forward` twice (which a
    /// `json!` value cannot hold), sent as raw bytes.
    fn test_duplicate_sysctl(&self, cmd: Command) -> PluginTest<'_, Tuning> {
        let conf = json!({
            "cniVersion": "1.0.0", "name": NET, "type": "tuning", "dataDir": self.data.path(),
            "sysctl": {"net.ipv4.ip_forward": "0"},
            "prevResult": prev().to_value(SpecVersion::V1_0_0).unwrap(),
        });
        let text = conf.to_string().replacen("\"sysctl\":{", "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\",", 1);
        PluginTest::new(&self.plugin).command(cmd).stdin(text).container_id(CID).netns(NS).network(&self.world)
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// What the interface plugin before tuning returned: the container's `eth0`, a host interface
/// that happens to be called `eth0` too, and an address.
fn prev() -> CniResult {
    let mut r = CniResult::default();
    let old: MacAddr = "0a:00:00:00:00:01".parse().unwrap();
    r.interfaces.push(Interface { mac: Some(old.into()), sandbox: Some(NS.into()), ..Interface::new("eth0") });
    r.interfaces.push(Interface { mac: Some(old.into()), ..Interface::new("eth0") });
    r.interfaces.push(Interface { mac: Some(old.into()), ..Interface::new("veth1") });
    r.ips.push(IpConfig { interface: Some(0), ..IpConfig::new("10.223.0.2/24".parse().unwrap()) });
    r
}

fn all_keys() -> Value {
    json!({
        "mac": MAC, "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 2000,
        "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1", "net.ipv4.ip_forward": "1"}
    })
}

#[tokio::test]
async fn every_key_every_version_add_check_del() {
    for_each_version(|version| async move {
        let env = Env::new().await;
        let orig = env.eth0().await;
        let keys = all_keys();
        let run = |cmd| env.test(cmd, keys.clone()).version(version).run();
        let result = run(Command::Add).await.expect_result();

        // The result is the previous one (in the configuration's version) with the new MAC on
        // every interface called CNI_IFNAME.
        if version >= SpecVersion::V0_3_0 {
            let macs: Vec<String> = result.interfaces.iter().map(|i| i.mac.unwrap().to_string()).collect();
            assert_eq!(macs, [MAC, MAC, "0a:00:00:00:00:01"], "{version}");
        }
        assert_eq!(
            result.ips,
            prev()
                .ips
                .iter()
                .cloned()
                .map(|mut ip| {
                    if version < SpecVersion::V0_3_0 {
                        ip.interface = None;
                    }
                    ip
                })
                .collect::<Vec<_>>()
        );

        let l = env.eth0().await;
        assert_eq!(l.mac.to_string(), MAC);
        assert_eq!((l.mtu, l.promisc, l.allmulti, l.txqlen), (1400, true, true, 2000));
        assert_eq!(env.sysctl("net/ipv4/conf/eth0/arp_notify").as_deref(), Some("1"));
        assert_eq!(env.sysctl("net/ipv4/ip_forward").as_deref(), Some("1"));
        let saved = env.saved().unwrap();
        assert_eq!(
            saved,
            Saved {
                mac: Some(orig.mac.to_string()),
                promisc: Some(false),
                mtu: Some(1500),
                allmulti: Some(false),
                tx_qlen: Some(i64::from(orig.txqlen)),
                network: Some(NET.into()),
            }
        );

        let check = run(Command::Check).await;
        if version.has_check() {
            check.expect_success();
        } else {
            check.expect_error(ErrorCode::IncompatibleCniVersion);
        }

        run(Command::Del).await.expect_success();
        let l = env.eth0().await;
        assert_eq!((l.mac, l.mtu, l.promisc, l.allmulti, l.txqlen), (orig.mac, 1500, false, false, orig.txqlen));
        assert!(env.files().is_empty(), "{version}: {:?}", env.files());
        // Sysctls are not restored (Go does not either).
        assert_eq!(env.sysctl("net/ipv4/ip_forward").as_deref(), Some("1"));
        run(Command::Del).await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn the_backup_is_gos_file_and_go_files_restore() {
    let env = Env::new().await;
    env.test(Command::Add, json!({"mtu": 1400, "promisc": true})).run().await.expect_result();
    let text = std::fs::read_to_string(env.backup()).unwrap();
    assert_eq!(text, "{\n \"promisc\": false,\n \"mtu\": 1500,\n \"network\": \"tunenet\"\n}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(env.backup()).unwrap().permissions().mode() & 0o777, 0o600);
    env.test(Command::Del, json!({})).run().await.expect_success();

    // A file Go's tuning wrote (no network; mtu and MAC) is restored, then removed.
    let l = env.eth0().await;
    env.ctr.set_mtu(l.index, 1300).await.unwrap();
    env.ctr.set_mac(l.index, MAC.parse().unwrap()).await.unwrap();
    let go = format!("{{\n \"mac\": \"{}\",\n \"mtu\": 1500\n}}", l.mac);
    std::fs::write(env.backup(), go).unwrap();
    env.test(Command::Del, json!({})).run().await.expect_success();
    let after = env.eth0().await;
    assert_eq!((after.mtu, after.mac), (1500, l.mac));
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn mac_sources_in_gos_order() {
    let cases = [
        (json!({"mac": "02:00:00:00:00:01"}), None, "02:00:00:00:00:01"),
        (json!({"mac": "02:00:00:00:00:01"}), Some("MAC=02:00:00:00:00:02"), "02:00:00:00:00:02"),
        (
            json!({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}}),
            Some("IgnoreUnknown=1;MAC=02:00:00:00:00:02;K8S_POD_NAME=p"),
            "02:00:00:00:00:03",
        ),
        (
            json!({"runtimeConfig": {"mac": "02:00:00:00:00:03"}, "args": {"cni": {"mac": "02-00-00-00-00-04"}}}),
            Some("MAC=02:00:00:00:00:02"),
            "02:00:00:00:00:04",
        ),
    ];
    for (keys, args, want) in cases {
        let env = Env::new().await;
        let mut t = env.test(Command::Add, keys.clone());
        if let Some(a) = args {
            t = t.cni_args(a);
        }
        let r = t.run().await.expect_result();
        assert_eq!(env.eth0().await.mac.to_string(), want, "{keys} {args:?}");
        assert_eq!(r.interfaces[0].mac.unwrap().to_string(), want);
        // CHECK takes the MAC from the same sources.
        let mut c = env.test(Command::Check, keys.clone());
        if let Some(a) = args {
            c = c.cni_args(a);
        }
        c.run().await.expect_success();
    }
}

#[tokio::test]
async fn args_cni_keys_override_the_configuration() {
    let env = Env::new().await;
    let keys = json!({
        "mtu": 1400, "promisc": true, "allmulti": false, "txQLen": 10,
        "args": {"cni": {"mtu": 1300, "promisc": false, "allmulti": true, "txQLen": 20,
                         "sysctl": {"net.ipv4.conf.IFNAME.rp_filter": "2"}}}
    });
    env.test(Command::Add, keys.clone()).run().await.expect_result();
    let l = env.eth0().await;
    assert_eq!((l.mtu, l.promisc, l.allmulti, l.txqlen), (1300, false, true, 20));
    // Go panics on `args.cni.sysctl` without a top-level `sysctl` (B14); here it is merged.
    assert_eq!(env.sysctl("net/ipv4/conf/eth0/rp_filter").as_deref(), Some("2"));
    env.test(Command::Check, keys).run().await.expect_success();
}

#[tokio::test]
async fn keys_match_case_insensitively_like_go() {
    let env = Env::new().await;
    env.test(Command::Add, json!({"MTU": 1450, "Promisc": true, "SYSCTL": {"net.ipv4.ip_forward": "1"}}))
        .run()
        .await
        .expect_result();
    let l = env.eth0().await;
    assert_eq!((l.mtu, l.promisc), (1450, true));
    assert_eq!(env.sysctl("net/ipv4/ip_forward").as_deref(), Some("1"));
}

#[tokio::test]
async fn dotted_interface_names_and_ifname_keys() {
    let world = FakeNetwork::new();
    let ctr = world.add_namespace("ctr");
    ctr.veth("eth0.100", "peer0").execute().await.unwrap();
    let plugin = Tuning::new();
    let data = tempfile::tempdir().unwrap();
    let keys = json!({"dataDir": data.path(), "mtu": 1400, "sysctl": {"net.ipv4.conf.IFNAME.proxy_arp": "1"}});
    let run = |cmd| {
        PluginTest::new(&plugin)
            .command(cmd)
            .config_keys(keys.clone())
            .prev_result(&prev())
            .netns(NS)
            .ifname("eth0.100")
            .network(&world)
            .run()
    };
    run(Command::Add).await.expect_result();
    assert_eq!(world.snapshot("ctr").unwrap().sysctls.get("net/ipv4/conf/eth0.100/proxy_arp").unwrap(), "1");
    assert_eq!(files_in(data.path()), [format!("{}_eth0.100.json", cni_sdk::testing::TEST_CONTAINER_ID)]);
    // CHECK substitutes IFNAME too (Go 1.1.1 did not: B15).
    run(Command::Check).await.expect_success();
    run(Command::Del).await.expect_success();
    assert_eq!(ctr.link("eth0.100").await.unwrap().mtu, 1500);
}

#[tokio::test]
async fn add_errors_are_gos_and_leave_nothing_changed() {
    // (keys, CNI_ARGS, message)
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (json!({"sysctl": {"kernel.hostname": "x"}}), None, r#"invalid net sysctl key: "kernel.hostname""#),
        (
            json!({"sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "512"}}),
            None,
            "open /proc/sys/net/core/somaxconn: no such file or directory",
        ),
        (
            json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1", "net.ipv4.ip_forward": "abc"}}),
            None,
            "write /proc/sys/net/ipv4/ip_forward: invalid argument",
        ),
        (
            json!({"sysctl": {"net.ipv4.ip_forward": "1"}, "mac": "zz", "mtu": 1400}),
            None,
            "invalid args zz for MAC addr: address zz: invalid MAC address",
        ),
        (json!({"mac": "01:00:5e:00:00:01"}), None, "cannot assign requested address"),
        (json!({"mac": MAC, "promisc": true, "mtu": 70000}), None, "invalid argument"),
        (json!({"mac": MAC, "mtu": -1}), None, "invalid argument"),
        (json!({"allmulti": true, "txQLen": -5}), None, "invalid argument"),
        (json!({"mtu": 1400}), Some("FOO=bar"), r#"ARGS: unknown args ["FOO=bar"]"#),
        (
            json!({"mtu": "1400"}),
            None,
            "failed to load netconf: json: cannot unmarshal string into Go struct field TuningConf.mtu of type int",
        ),
    ];
    for (keys, args, msg) in cases {
        let env = Env::new().await;
        let before = env.eth0().await;
        let mut t = env.test(Command::Add, keys.clone());
        if let Some(a) = args {
            t = t.cni_args(a);
        }
        let err = t.run().await.expect_error(ErrorCode::Internal);
        assert_eq!(err.msg, msg, "{keys}");
        assert_eq!(env.eth0().await, before, "{keys}: the link must be as before");
        let sysctls = env.world.snapshot("ctr").unwrap().sysctls;
        assert!(sysctls.values().all(|v| v == "0"), "{keys}: sysctls must be back: {sysctls:?}");
        assert!(env.files().is_empty(), "{keys}: {:?}", env.files());
    }
}

#[tokio::test]
async fn duplicate_sysctl_keys_are_refused_by_add_and_check() {
    let env = Env::new().await;
    for cmd in [Command::Add, Command::Check] {
        let err = env.test_duplicate_sysctl(cmd).run().await.expect_error(ErrorCode::Internal);
        assert_eq!(err.msg, "duplicated sysctl keys are not allowed");
    }
    assert_eq!(env.sysctl("net/ipv4/ip_forward"), None);
    // DEL does not look (neither does Go's).
    env.test_duplicate_sysctl(Command::Del).run().await.expect_success();
}

#[tokio::test]
async fn a_failure_at_any_link_step_undoes_the_earlier_ones() {
    for kind in [OpKind::SetMac, OpKind::SetPromisc, OpKind::SetMtu, OpKind::SetAllMulti, OpKind::SetTxQLen] {
        let env = Env::new().await;
        let before = env.eth0().await;
        env.world.fail_next_in("ctr", kind, NetErrorKind::Busy);
        let out = env.test(Command::Add, all_keys()).run().await;
        let err = out.expect_error(ErrorCode::Internal);
        assert!(err.msg.starts_with("injected error (busy)"), "{kind:?}: {}", err.msg);
        assert_eq!(env.eth0().await, before, "{kind:?}");
        assert_eq!(env.sysctl("net/ipv4/ip_forward").as_deref(), Some("0"), "{kind:?}");
        assert!(env.files().is_empty(), "{kind:?}");
    }
    // A failed ADD after an earlier ADD puts the earlier backup back.
    let env = Env::new().await;
    env.test(Command::Add, json!({"mtu": 1400})).run().await.expect_result();
    let first = std::fs::read(env.backup()).unwrap();
    env.world.fail_next_in("ctr", OpKind::SetMtu, NetErrorKind::Busy);
    env.test(Command::Add, json!({"mtu": 1300})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(std::fs::read(env.backup()).unwrap(), first);
    assert_eq!(env.eth0().await.mtu, 1400);
}

#[tokio::test]
async fn add_needs_a_prev_result_a_namespace_and_the_link() {
    let env = Env::new().await;
    let cfg = json!({"cniVersion": "1.0.0", "name": NET, "type": "tuning", "mtu": 1400, "dataDir": env.data.path()});
    let no_prev = PluginTest::new(&env.plugin).config(cfg).netns(NS).network(&env.world).run().await;
    assert_eq!(no_prev.expect_error(ErrorCode::Internal).msg, "Required prevResult missing");

    let gone = env.test(Command::Add, json!({"mtu": 1400})).netns("/var/run/netns/gone").run().await;
    assert_eq!(
        gone.expect_error(ErrorCode::Internal).msg,
        r#"failed to Statfs "/var/run/netns/gone": no such file or directory"#
    );

    let no_link = env.test(Command::Add, json!({"mtu": 1400})).ifname("eth9").run().await;
    assert_eq!(no_link.expect_error(ErrorCode::Internal).msg, r#"failed to get "eth9": Link not found"#);
    // Namespace-wide sysctls need no link.
    env.test(Command::Add, json!({"sysctl": {"net.ipv4.ip_forward": "1"}})).ifname("eth9").run().await.expect_result();
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn the_allowlist_restricts_sysctl_keys() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("allowlist.conf");
    std::fs::write(&list, "^net\\.ipv4\\.conf\\.IFNAME\\.arp_notify$\n").unwrap();
    let env = Env::with_plugin(Tuning::with_allowlist(&list)).await;
    env.test(Command::Add, json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}})).run().await.expect_result();
    let err = env.test(Command::Add, json!({"sysctl": {"net.ipv4.ip_forward": "1"}})).run().await;
    assert_eq!(
        err.expect_error(ErrorCode::Internal).msg,
        r"Sysctl net.ipv4.ip_forward is not allowed. Only the following sysctls are allowed: [^net\.ipv4\.conf\.IFNAME\.arp_notify$]"
    );
    assert_eq!(env.sysctl("net/ipv4/ip_forward"), None);
}

#[tokio::test]
async fn re_add_keeps_the_first_originals() {
    // Go overwrites the backup with already tuned values (B17), so DEL restores nothing.
    let env = Env::new().await;
    let orig = env.eth0().await;
    env.test(Command::Add, json!({"mtu": 1400, "mac": MAC})).run().await.expect_result();
    env.test(Command::Add, json!({"mtu": 1400, "mac": MAC, "allmulti": true})).run().await.expect_result();
    let saved = env.saved().unwrap();
    assert_eq!((saved.mtu, saved.mac.clone(), saved.allmulti), (Some(1500), Some(orig.mac.to_string()), Some(false)));
    // A third ADD that changes only the promiscuous mode keeps what the others saved.
    env.test(Command::Add, json!({"promisc": true})).run().await.expect_result();
    assert_eq!(env.saved().unwrap().mtu, Some(1500));
    env.test(Command::Del, json!({})).run().await.expect_success();
    let l = env.eth0().await;
    assert_eq!((l.mtu, l.mac, l.allmulti, l.promisc), (1500, orig.mac, false, false));
}

#[tokio::test]
async fn a_stale_backup_does_not_override_a_fresh_link() {
    // A backup left for this attachment whose values the link does not have: this ADD saves
    // what the link has now.
    let env = Env::new().await;
    std::fs::write(env.backup(), "{\n \"mtu\": 9000\n}").unwrap();
    env.test(Command::Add, json!({"mtu": 1400})).run().await.expect_result();
    assert_eq!(env.saved().unwrap().mtu, Some(1500));
}

#[tokio::test]
async fn check_reports_each_difference_with_gos_text() {
    let env = Env::new().await;
    env.test(Command::Add, all_keys()).run().await.expect_result();
    let l = env.eth0().await;
    let cases = [
        (
            json!({"sysctl": {"net.ipv4.ip_forward": "0"}}),
            "Error: Tuning configured value of /proc/sys/net/ipv4/ip_forward is 0, current value is 1",
        ),
        (
            json!({"sysctl": {"net.core.somaxconn": "5"}}),
            "open /proc/sys/net/core/somaxconn: no such file or directory",
        ),
        (json!({"sysctl": {"kernel.x": "5"}}), r#"invalid net sysctl key: "kernel.x""#),
        (
            json!({"mac": "c2:b0:57:49:47:f2"}),
            "Error: Tuning configured Ethernet of eth0 is c2:b0:57:49:47:f2, current value is c2:b0:57:49:47:f1",
        ),
        (json!({"mtu": 1300}), "Error: Tuning configured MTU of eth0 is 1300, current value is 1400"),
        (
            json!({"allmulti": false}),
            "Error: Tuning configured all-multicast mode of eth0 is false, current value is true",
        ),
        (json!({"txQLen": 5}), "Error: Tuning configured Transmit Queue Length of eth0 is 5, current value is 2000"),
    ];
    for (keys, msg) in cases {
        let err = env.test(Command::Check, keys.clone()).run().await.expect_error(ErrorCode::Internal);
        assert_eq!(err.msg, msg, "{keys}");
    }
    // Promiscuous mode requested but off.
    env.ctr.set_promisc(l.index, false).await.unwrap();
    let err = env.test(Command::Check, json!({"promisc": true})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(err.msg, "Error: Tuning link eth0 configured promisc is true, current value is 0");
    // The link must exist.
    let err = env.test(Command::Check, json!({})).ifname("eth9").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(err.msg, "Cannot find container link eth9");
    // And a prevResult is required.
    let cfg = json!({"cniVersion": "1.0.0", "name": NET, "type": "tuning"});
    let out =
        PluginTest::new(&env.plugin).command(Command::Check).config(cfg).netns(NS).network(&env.world).run().await;
    assert_eq!(out.expect_error(ErrorCode::Internal).msg, "Required prevResult missing");
}

#[tokio::test]
async fn check_has_none_of_gos_false_alarms() {
    let env = Env::new().await;
    let l = env.eth0().await;
    // Promiscuous mode set by someone else while `promisc` is unset (Go: B17).
    env.ctr.set_promisc(l.index, true).await.unwrap();
    env.test(Command::Check, json!({})).run().await.expect_success();
    // A MAC written in upper case or with dashes (Go compares the strings).
    env.test(Command::Add, json!({"mac": "C2-B0-57-49-47-F1"})).run().await.expect_result();
    env.test(Command::Check, json!({"mac": "C2:B0:57:49:47:F1"})).run().await.expect_success();
    // IFNAME in a key (Go 1.1.1: B15).
    env.test(Command::Add, json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1"}})).run().await.expect_result();
    env.test(Command::Check, json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1"}})).run().await.expect_success();
}

#[test]
fn multi_value_sysctls_compare_by_field() {
    assert!(same_sysctl_value("4096 131072 6291456", "4096\t131072\t6291456"));
    assert!(same_sysctl_value("1", "1"));
    assert!(!same_sysctl_value("1", "0"));
    assert!(!same_sysctl_value("4096 131072", "4096\t131072\t6291456"));
}

#[tokio::test]
async fn del_is_idempotent_and_drops_what_it_cannot_restore() {
    // The namespace is gone, or CNI_NETNS is not given: nothing to restore, the file goes.
    for how in ["gone", "unset"] {
        let env = Env::new().await;
        env.test(Command::Add, json!({"mtu": 1400})).run().await.expect_result();
        let t = env.test(Command::Del, json!({}));
        let t = if how == "gone" { t.netns("/var/run/netns/gone") } else { t.unset("CNI_NETNS") };
        t.run().await.expect_success();
        assert!(env.files().is_empty(), "{how}");
        env.test(Command::Del, json!({})).run().await.expect_success();
    }
    // The interface is gone.
    let env = Env::new().await;
    env.test(Command::Add, json!({"mtu": 1400})).run().await.expect_result();
    env.ctr.delete_link(env.eth0().await.index).await.unwrap();
    env.test(Command::Del, json!({})).run().await.expect_success();
    assert!(env.files().is_empty());
    // No backup at all (tuning only wrote sysctls, or a second DEL).
    let env = Env::new().await;
    for _ in 0..2 {
        env.test(Command::Del, json!({"sysctl": {"net.ipv4.ip_forward": "1"}})).run().await.expect_success();
    }
}

#[tokio::test]
async fn del_tolerates_damaged_backups() {
    for bytes in [&b""[..], b"{\"mtu\": 14", b"\0garbage", b"[1, 2]", b"{\"mtu\": \"x\"}"] {
        let env = Env::new().await;
        let before = env.eth0().await;
        std::fs::write(env.backup(), bytes).unwrap();
        let out = env.test(Command::Del, json!({})).run().await;
        out.expect_success();
        assert!(env.files().is_empty(), "{bytes:?}");
        assert_eq!(env.eth0().await, before);
    }
}

#[tokio::test]
async fn del_restores_what_it_can_and_keeps_the_file_for_a_retry() {
    let env = Env::new().await;
    let l = env.eth0().await;
    env.ctr.set_mtu(l.index, 1400).await.unwrap();
    std::fs::write(env.backup(), "{\"mac\": \"zz\", \"mtu\": 1500}").unwrap();
    env.test(Command::Del, json!({})).run().await.expect_success();
    assert_eq!(env.eth0().await.mtu, 1500);
    assert_eq!(env.files().len(), 1);
}

#[tokio::test]
async fn del_fails_only_on_a_bad_configuration_like_go() {
    let env = Env::new().await;
    let err = env.test(Command::Del, json!({"mtu": "x"})).run().await.expect_error(ErrorCode::Internal);
    assert!(err.msg.starts_with("failed to load netconf: json: cannot unmarshal string"), "{}", err.msg);
    let err = env.test(Command::Del, json!({})).cni_args("FOO=1").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(err.msg, r#"ARGS: unknown args ["FOO=1"]"#);
    // A bad MAC is not parsed by DEL.
    env.test(Command::Del, json!({"mac": "zz"})).run().await.expect_success();
}

#[tokio::test]
async fn gc_releases_the_saved_values_of_gone_attachments_of_its_network() {
    let env = Env::new().await;
    let data = env.data.path();
    let ours = Saved { mtu: Some(1500), network: Some(NET.into()), ..Saved::default() };
    let theirs = Saved { network: Some("othernet".into()), ..ours.clone() };
    for (cid, saved) in [("keep", &ours), ("lost", &ours), ("other", &theirs)] {
        std::fs::write(backup::path(data, cid, "eth0"), saved.to_bytes()).unwrap();
    }
    std::fs::write(backup::path(data, "gofile", "eth0"), "{\n \"mtu\": 1500\n}").unwrap();
    std::fs::write(data.join(".cni-tmp-99-0-killed_eth0.json"), "{\n \"mt").unwrap();
    let gc = |valid: Value| {
        PluginTest::new(&env.plugin)
            .command(Command::Gc)
            .config(json!({"cniVersion": "1.1.0", "name": NET, "type": "tuning", "dataDir": data,
                           "cni.dev/valid-attachments": valid}))
            .unset("CNI_CONTAINERID")
            .unset("CNI_NETNS")
            .unset("CNI_IFNAME")
            .network(&env.world)
            .run()
    };
    gc(json!([{"containerID": "keep", "ifname": "eth0"}])).await.expect_success();
    assert_eq!(env.files(), ["gofile_eth0.json", "keep_eth0.json", "other_eth0.json"]);
    // An empty list releases every attachment of the network, never another network's.
    gc(json!([])).await.expect_success();
    assert_eq!(env.files(), ["gofile_eth0.json", "other_eth0.json"]);
    // Nothing to do without the directory.
    let none = PluginTest::new(&env.plugin)
        .command(Command::Gc)
        .config(json!({"cniVersion": "1.1.0", "name": NET, "type": "tuning", "dataDir": data.join("none")}))
        .run()
        .await;
    none.expect_success();
    // GC needs spec 1.1.0.
    let old = PluginTest::new(&env.plugin)
        .command(Command::Gc)
        .config(json!({"cniVersion": "1.0.0", "name": NET, "type": "tuning", "dataDir": data}))
        .run()
        .await;
    old.expect_error(ErrorCode::IncompatibleCniVersion);
}

#[tokio::test]
async fn an_attachment_added_then_lost_is_collected_end_to_end() {
    let env = Env::new().await;
    env.test(Command::Add, json!({"mtu": 1400})).run().await.expect_result();
    assert_eq!(env.files().len(), 1);
    let gc = PluginTest::new(&env.plugin)
        .command(Command::Gc)
        .config(json!({"cniVersion": "1.1.0", "name": NET, "type": "tuning", "dataDir": env.data.path(),
                       "cni.dev/valid-attachments": [{"containerID": "someone-else", "ifname": "eth0"}]}))
        .network(&env.world)
        .run()
        .await;
    gc.expect_success();
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn status_is_ready() {
    let env = Env::new().await;
    let cfg = json!({"cniVersion": "1.1.0", "name": NET, "type": "tuning"});
    PluginTest::new(&env.plugin).command(Command::Status).config(cfg).run().await.expect_success();
}

#[test]
fn the_plugin_supports_every_version() {
    use cni_sdk::PluginEntry as _;
    assert_eq!(Tuning::NAME, "tuning");
    assert_eq!(Tuning::options().supported_versions(), SpecVersion::ALL);
    assert_eq!(Tuning::options().about(), "CNI tuning plugin (cni-rs)");
}
