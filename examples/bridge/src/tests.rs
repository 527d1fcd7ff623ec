//! Unit tests on fake namespaces with a fake IPAM, a model nat table and recorded iproute2
//! calls: no root, no binaries.

use std::sync::Arc;

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{LinkKind, NetErrorKind};
use cni_sdk::testing::InProcessExec;
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Error, ErrorCode, IpConfig, Route, SpecVersion};
use serde_json::{Value, json};

use cni_sdk::firewall::fake::FakeFirewall;
use cni_sdk::firewall::ipmasq::IpMasq;
use cni_sdk::firewall::{FirewallErrorKind, IpFamily, TableId, names};

use super::Bridge;
use super::l2::RecordingL2;

const NS: &str = "/var/run/netns/ctr";
const CID: &str = "0123456789abcdef";

fn ipam_result(ips: &[(&str, Option<&str>)], routes: &[(&str, Option<&str>)]) -> CniResult {
    let mut r = CniResult::default();
    for (a, gw) in ips {
        r.ips.push(IpConfig { gateway: gw.map(|g| g.parse().unwrap()), ..IpConfig::new(a.parse().unwrap()) });
    }
    for (d, gw) in routes {
        r.routes.push(Route::new(d.parse().unwrap(), gw.map(|g| g.parse().unwrap())));
    }
    r
}

/// An IPAM that hands out `result` on ADD and succeeds otherwise.
fn ipam_with(result: CniResult) -> InProcessExec {
    InProcessExec::new().with_ipam_result("fake-ipam", result)
}

fn default_ipam() -> InProcessExec {
    ipam_with(ipam_result(&[("10.250.0.2/24", Some("10.250.0.1"))], &[("0.0.0.0/0", None)]))
}

struct Env {
    world: FakeNetwork,
    ipt: FakeFirewall,
    nft: FakeFirewall,
    l2: Arc<RecordingL2>,
    plugin: Bridge,
    ipam: InProcessExec,
}

impl Env {
    fn new(ipam: InProcessExec) -> Self {
        let world = FakeNetwork::new();
        world.add_namespace("ctr");
        let (ipt, nft) = (FakeFirewall::iptables(), FakeFirewall::nftables());
        let l2 = Arc::new(RecordingL2::default());
        let masq = IpMasq::new(ipt.firewall(), nft.firewall()).expect("one firewall of each kind");
        let plugin = Bridge { masq, spoof: nft.firewall(), l2: l2.clone() };
        Self { world, ipt, nft, l2, plugin, ipam }
    }

    fn test(&self, cmd: Command, conf: &Value) -> PluginTest<'_, Bridge> {
        PluginTest::new(&self.plugin)
            .command(cmd)
            .config(conf.clone())
            .container_id(CID)
            .netns(NS)
            .network(&self.world)
            .exec(self.ipam.clone())
    }

    /// The iptables nat lines that mention CNI chains (both families), as `iptables -S` prints them.
    fn cni_nat(&self) -> Vec<String> {
        [IpFamily::V4, IpFamily::V6]
            .into_iter()
            .flat_map(|f| self.ipt.save(&TableId::iptables(f, "nat")).lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| l.contains("CNI-"))
            .collect()
    }

    /// Whether no per-container nftables masquerading rule is left (the shared `postrouting`
    /// chain stays, as Go leaves it).
    fn no_nft_masq(&self) -> bool {
        self.nft
            .tables()
            .iter()
            .all(|t| t.chains.iter().filter(|c| c.chain.name == "masq_checks").all(|c| c.rules.is_empty()))
    }

    fn ipam_calls(&self) -> Vec<String> {
        self.ipam.calls().into_iter().map(|c| c.1).collect()
    }

    fn host(&self) -> cni_sdk::net::fake::NsSnapshot {
        self.world.snapshot("host").unwrap()
    }

    fn ctr(&self) -> cni_sdk::net::fake::NsSnapshot {
        self.world.snapshot("ctr").unwrap()
    }

    /// Host links other than lo and bridges (the host veth ends).
    fn host_veths(&self) -> Vec<String> {
        self.host().links.into_iter().filter(|l| l.kind == LinkKind::Veth).map(|l| l.name).collect()
    }

    fn ctr_links(&self) -> Vec<String> {
        self.ctr().links.into_iter().filter(|l| l.kind != LinkKind::Loopback).map(|l| l.name).collect()
    }
}

fn conf(version: SpecVersion, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version.as_str(),
        "name": "testnet",
        "type": "bridge",
        "bridge": "cnitest0",
        "ipam": {"type": "fake-ipam"}
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

#[tokio::test]
async fn add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam());
        let c = conf(v, json!({"isGateway": true}));
        let out = env.test(Command::Add, &c).run().await;
        let r = out.expect_result();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.ips[0].address.to_string(), "10.250.0.2/24");
        if v.has_chaining() {
            let names: Vec<_> = r.interfaces.iter().map(|i| i.name.as_str()).collect();
            assert_eq!(names.len(), 3, "{v}: {names:?}");
            assert_eq!(names[0], "cnitest0");
            assert!(names[1].starts_with("veth") && names[1].len() == 12, "{names:?}");
            assert_eq!(names[2], "eth0");
            assert_eq!(r.interfaces[2].sandbox.as_deref(), Some(NS));
            assert!(r.interfaces[0].sandbox.is_none() && r.interfaces[1].sandbox.is_none());
            assert!(r.interfaces.iter().all(|i| i.mac.is_some()));
            assert_eq!(r.ips[0].interface, Some(2));
        }
        // Kernel state.
        let host = env.host();
        let br = host.links.iter().find(|l| l.name == "cnitest0").expect("bridge");
        assert_eq!(br.kind, LinkKind::Bridge);
        assert!(br.up);
        let port = host.links.iter().find(|l| l.kind == LinkKind::Veth).expect("host veth");
        assert_eq!(port.master, Some(br.index));
        assert!(port.up);
        assert_eq!(port.hairpin, Some(false));
        assert!(host.addresses.iter().any(|a| a.index == br.index && a.addr.to_string() == "10.250.0.1/24"));
        assert_eq!(host.sysctls.get("net/ipv4/ip_forward").map(String::as_str), Some("1"));
        assert_eq!(host.sysctls.get(&format!("net/ipv6/conf/{}/accept_ra", port.name)).map(String::as_str), Some("0"));
        let ctr = env.ctr();
        let eth0 = ctr.links.iter().find(|l| l.name == "eth0").expect("eth0");
        assert!(eth0.up);
        assert_eq!(eth0.kind, LinkKind::Veth);
        assert!(ctr.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.250.0.2/24"));
        assert!(
            ctr.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.gateway == Some("10.250.0.1".parse().unwrap())),
            "default route via the IPAM gateway: {:?}",
            ctr.routes
        );

        if v.has_check() {
            let mut prev = r.clone();
            prev.interfaces = r.interfaces.clone();
            env.test(Command::Check, &c).prev_result(&prev).run().await.expect_success();
        }
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(env.host_veths().is_empty(), "{v}: host veth removed");
        assert!(env.ctr_links().is_empty(), "{v}: container veth removed");
        let expected: &[&str] = if v.has_check() { &["ADD", "CHECK", "DEL"] } else { &["ADD", "DEL"] };
        assert_eq!(env.ipam_calls(), expected);
        // DEL again: still fine.
        env.test(Command::Del, &c).run().await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn defaults_bridge_cni0_no_gateway_no_forwarding() {
    let env = Env::new(default_ipam());
    let mut c = conf(SpecVersion::V1_0_0, json!({}));
    c.as_object_mut().unwrap().remove("bridge");
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(r.interfaces[0].name, "cni0");
    let host = env.host();
    let br = host.links.iter().find(|l| l.name == "cni0").unwrap();
    assert!(host.addresses.iter().all(|a| a.index != br.index), "no gateway address without isGateway");
    assert!(!host.sysctls.contains_key("net/ipv4/ip_forward"));
    assert!(env.cni_nat().is_empty() && env.no_nft_masq(), "no ipMasq by default");
    assert!(env.l2.log().is_empty(), "no VLAN work by default");
    // The IPAM's default route (without gw) goes through the container interface.
    assert!(env.ctr().routes.iter().any(|r| r.dst.prefix_len() == 0));
}

#[tokio::test]
async fn is_gateway_fills_a_missing_gateway() {
    let env = Env::new(ipam_with(ipam_result(&[("10.250.1.7/24", None)], &[])));
    let r = env.test(Command::Add, &conf(SpecVersion::V1_1_0, json!({"isGateway": true}))).run().await.expect_result();
    assert_eq!(r.ips[0].gateway, Some("10.250.1.1".parse().unwrap()));
    let host = env.host();
    assert!(host.addresses.iter().any(|a| a.addr.to_string() == "10.250.1.1/24"));
    assert!(r.routes.is_empty(), "isGateway alone adds no default route");
}

#[tokio::test]
async fn is_default_gateway_adds_default_routes() {
    let env = Env::new(ipam_with(ipam_result(&[("10.250.2.7/24", None), ("fd00:250::7/64", None)], &[])));
    let r = env
        .test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"isDefaultGateway": true})))
        .run()
        .await
        .expect_result();
    assert_eq!(r.routes.len(), 2, "{:?}", r.routes);
    assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
    assert_eq!(r.routes[0].gw, Some("10.250.2.1".parse().unwrap()));
    assert_eq!(r.routes[1].dst.to_string(), "::/0");
    assert_eq!(r.routes[1].gw, Some("fd00:250::1".parse().unwrap()));
    let ctr = env.ctr();
    assert!(ctr.routes.iter().any(|x| x.dst.to_string() == "0.0.0.0/0" && x.gateway == r.routes[0].gw));
    assert!(ctr.routes.iter().any(|x| x.dst.to_string() == "::/0" && x.gateway == r.routes[1].gw));
    let host = env.host();
    assert!(host.addresses.iter().any(|a| a.addr.to_string() == "10.250.2.1/24"));
    assert!(host.addresses.iter().any(|a| a.addr.to_string() == "fd00:250::1/64"));
    assert_eq!(host.sysctls.get("net/ipv6/conf/all/forwarding").map(String::as_str), Some("1"));
    assert_eq!(ctr.sysctls.get("net/ipv6/conf/eth0/disable_ipv6").map(String::as_str), None, "already 0");
    assert_eq!(ctr.sysctls.get("net/ipv6/conf/eth0/accept_dad").map(String::as_str), Some("0"));
}

#[tokio::test]
async fn is_default_gateway_keeps_an_existing_default_route() {
    let env = Env::new(ipam_with(ipam_result(&[("10.250.3.7/24", None)], &[("0.0.0.0/0", Some("10.250.3.254"))])));
    let r = env
        .test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"isDefaultGateway": true})))
        .run()
        .await
        .expect_result();
    assert_eq!(r.routes.len(), 1);
    assert_eq!(r.routes[0].gw, Some("10.250.3.254".parse().unwrap()));
}

#[tokio::test]
async fn force_address_replaces_a_different_bridge_address() {
    let env = Env::new(default_ipam());
    let host = env.world.host();
    let br = host.bridge("cnitest0").execute().await.unwrap();
    host.add_address(br.index, "10.99.0.1/24".parse().unwrap()).await.unwrap();
    let c = conf(SpecVersion::V1_0_0, json!({"isGateway": true}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to set bridge addr: \"cnitest0\" already has an IP address different from 10.250.0.1/24");
    assert!(env.host_veths().is_empty() && env.ctr_links().is_empty(), "nothing left behind");
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);

    let c = conf(SpecVersion::V1_0_0, json!({"isGateway": true, "forceAddress": true}));
    env.test(Command::Add, &c).run().await.expect_result();
    let addrs: Vec<String> =
        env.host().addresses.iter().filter(|a| a.index == br.index).map(|a| a.addr.to_string()).collect();
    assert_eq!(addrs, ["10.250.0.1/24"]);
}

#[tokio::test]
async fn ip_masq_rules_match_go_and_del_removes_them() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"ipMasq": true}));
    env.test(Command::Add, &c).run().await.expect_result();
    let chain = names::chain_name("testnet", CID);
    let comment = r#""name: \"testnet\" id: \"0123456789abcdef\"""#;
    // Exactly the lines Go's bridge leaves in `iptables -t nat -S`.
    assert_eq!(
        env.cni_nat(),
        [
            format!("-N {chain}"),
            format!("-A POSTROUTING -s 10.250.0.2/32 -m comment --comment {comment} -j {chain}"),
            format!("-A {chain} -d 10.250.0.0/24 -m comment --comment {comment} -j ACCEPT"),
            format!("-A {chain} ! -d 224.0.0.0/4 -m comment --comment {comment} -j MASQUERADE"),
        ]
    );
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.cni_nat().is_empty(), "{:?}", env.cni_nat());
}

#[tokio::test]
async fn ip_masq_failure_rolls_everything_back() {
    let env = Env::new(default_ipam());
    env.ipt.fail_next_commit(FirewallErrorKind::PermissionDenied, "iptables: Permission denied");
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"ipMasq": true}))).run().await.expect_error(999);
    assert!(e.msg.contains("Permission denied"), "{e:?}");
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    assert!(env.host_veths().is_empty() && env.ctr_links().is_empty());
}

#[tokio::test]
async fn mtu_hairpin_promisc() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"mtu": 1400, "hairpinMode": true}));
    env.test(Command::Add, &c).run().await.expect_result();
    let host = env.host();
    let br = host.links.iter().find(|l| l.name == "cnitest0").unwrap();
    assert_eq!(br.mtu, 1400);
    let port = host.links.iter().find(|l| l.kind == LinkKind::Veth).unwrap();
    assert_eq!(port.mtu, 1400);
    assert_eq!(port.hairpin, Some(true));
    assert!(!br.promisc);
    assert_eq!(env.ctr().links.iter().find(|l| l.name == "eth0").unwrap().mtu, 1400);

    let env = Env::new(default_ipam());
    env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"promiscMode": true}))).run().await.expect_result();
    assert!(env.host().links.iter().find(|l| l.name == "cnitest0").unwrap().promisc);

    let env = Env::new(default_ipam());
    let e = env
        .test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"promiscMode": true, "hairpinMode": true})))
        .run()
        .await
        .expect_error(999);
    assert_eq!(e.msg, "cannot set hairpin mode and promiscuous mode at the same time.");
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn vlan_access_and_trunk() {
    let env = Env::new(default_ipam());
    let r = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"vlan": 100}))).run().await.expect_result();
    let port = &r.interfaces[1].name;
    assert_eq!(
        env.l2.log(),
        ["vlan_filtering cnitest0".to_owned(), format!("vlan add {port} 100 pvid=true untagged=true")]
    );

    let env = Env::new(default_ipam());
    let c = conf(
        SpecVersion::V1_0_0,
        json!({"vlanTrunk": [{"minID": 10, "maxID": 12}, {"id": 11}, {"id": 20}], "preserveDefaultVlan": false}),
    );
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let port = &r.interfaces[1].name;
    assert_eq!(
        env.l2.log(),
        [
            "vlan_filtering cnitest0".to_owned(),
            format!("vlan del {port} 1"),
            format!("vlan add {port} 10 pvid=false untagged=false"),
            format!("vlan add {port} 11 pvid=false untagged=false"),
            format!("vlan add {port} 12 pvid=false untagged=false"),
            format!("vlan add {port} 20 pvid=false untagged=false"),
        ]
    );
}

#[tokio::test]
async fn vlan_configuration_errors() {
    let cases = [
        (json!({"vlan": 4095}), "invalid VLAN ID 4095 (must be between 0 and 4094)"),
        (json!({"vlan": -1}), "invalid VLAN ID -1 (must be between 0 and 4094)"),
        (json!({"vlan": 5, "vlanTrunk": [{"id": 6}]}), "cannot set vlan and vlanTrunk at the same time"),
        (json!({"vlanTrunk": [{"id": 0}]}), "incorrect trunk id parameter"),
        (json!({"vlanTrunk": [{"minID": 0, "maxID": 3}]}), "incorrect trunk minID parameter"),
        (json!({"vlanTrunk": [{"minID": 1, "maxID": 4095}]}), "incorrect trunk maxID parameter"),
        (json!({"vlanTrunk": [{"minID": 5, "maxID": 3}]}), "minID is greater than maxID in trunk parameter"),
        (json!({"vlanTrunk": [{"maxID": 3}]}), "minID and maxID should be configured simultaneously, minID is missing"),
        (json!({"vlanTrunk": [{"minID": 3}]}), "minID and maxID should be configured simultaneously, maxID is missing"),
        (json!({"ipMasqBackend": "pf"}), "unknown ipmasq backend \"pf\""),
    ];
    for (extra, msg) in cases {
        let env = Env::new(default_ipam());
        let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, extra.clone())).run().await.expect_error(999);
        assert_eq!(e.msg, msg, "{extra}");
        assert!(env.ipam_calls().is_empty());
        assert!(env.host().links.iter().all(|l| l.name != "cnitest0"), "failed before touching the host");
    }
}

#[tokio::test]
async fn mac_from_cni_args_args_and_runtime_config() {
    let mac_of = |r: &CniResult| r.interfaces[2].mac.as_ref().unwrap().to_string();
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let r = env.test(Command::Add, &c).cni_args("MAC=0a:58:0a:00:00:01").run().await.expect_result();
    assert_eq!(mac_of(&r), "0a:58:0a:00:00:01");
    let eth0 = env.ctr().links.into_iter().find(|l| l.name == "eth0").unwrap();
    assert_eq!(eth0.mac.to_string(), "0a:58:0a:00:00:01");

    // args.cni.mac beats CNI_ARGS, runtimeConfig.mac beats both.
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"args": {"cni": {"mac": "0a:58:0a:00:00:02"}}}));
    let r = env.test(Command::Add, &c).cni_args("MAC=0a:58:0a:00:00:01").run().await.expect_result();
    assert_eq!(mac_of(&r), "0a:58:0a:00:00:02");
    let env = Env::new(default_ipam());
    let c = conf(
        SpecVersion::V1_0_0,
        json!({"args": {"cni": {"mac": "0a:58:0a:00:00:02"}}, "runtimeConfig": {"mac": "0a:58:0a:00:00:03"}}),
    );
    let r = env.test(Command::Add, &c).cni_args("MAC=0a:58:0a:00:00:01").run().await.expect_result();
    assert_eq!(mac_of(&r), "0a:58:0a:00:00:03");
}

#[tokio::test]
async fn bad_mac_fails_add_but_not_del() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let e = env.test(Command::Add, &c).cni_args("MAC=zz").run().await.expect_error(999);
    assert_eq!(e.msg, "failed to make veth pair: address zz: invalid MAC address");
    assert!(env.ipam_calls().is_empty());
    env.test(Command::Del, &c).cni_args("MAC=zz").run().await.expect_success();
}

#[tokio::test]
async fn is_gateway_with_vlan_is_rejected_up_front() {
    let env = Env::new(default_ipam());
    let e = env
        .test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"isGateway": true, "vlan": 7})))
        .run()
        .await
        .expect_error(ErrorCode::UnsupportedField);
    assert!(e.msg.contains("vlan"), "{e:?}");
    assert!(env.ipam_calls().is_empty() && env.host_veths().is_empty());
}

#[tokio::test]
async fn cni_args_unknown_keys_need_ignore_unknown() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let e = env.test(Command::Add, &c).cni_args("K8S_POD_NAME=x").run().await.expect_error(999);
    assert!(e.msg.contains("unknown args"), "{e:?}");
    env.test(Command::Add, &c).cni_args("IgnoreUnknown=1;K8S_POD_NAME=x").run().await.expect_result();
}

#[tokio::test]
async fn layer2_only_without_ipam() {
    let env = Env::new(InProcessExec::new());
    let mut c = conf(SpecVersion::V1_0_0, json!({}));
    c.as_object_mut().unwrap().remove("ipam");
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert!(r.ips.is_empty());
    assert_eq!(r.interfaces.len(), 3);
    assert!(env.ctr().links.iter().find(|l| l.name == "eth0").unwrap().up);
    // No IP: 0.2.0 cannot express the result (as Go: "cannot convert: no valid IP addresses").
    let env = Env::new(InProcessExec::new());
    let mut c = conf(SpecVersion::V0_2_0, json!({}));
    c.as_object_mut().unwrap().remove("ipam");
    let out = env.test(Command::Add, &c).run().await;
    assert!(!out.is_success());
    // DEL without IPAM only removes the link.
    let env = Env::new(InProcessExec::new());
    let mut c = conf(SpecVersion::V1_0_0, json!({}));
    c.as_object_mut().unwrap().remove("ipam");
    env.test(Command::Add, &c).run().await.expect_result();
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.ctr_links().is_empty());
    // CHECK in L2 mode fails like Go's (it delegates to an empty IPAM type).
    let e = env.test(Command::Check, &c).prev_result(&CniResult::default()).run().await.expect_error(999);
    assert_eq!(e.msg, "no plugin name provided");
}

#[tokio::test]
async fn existing_non_bridge_link_is_an_error() {
    let env = Env::new(default_ipam());
    env.world.host().dummy("cnitest0").execute().await.unwrap();
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to create bridge \"cnitest0\": \"cnitest0\" already exists but is not a bridge");
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn existing_container_interface_is_an_error() {
    let env = Env::new(default_ipam());
    env.world.namespace("ctr").unwrap().dummy("eth0").execute().await.unwrap();
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert!(e.msg.starts_with("container veth name (\"eth0\") peer provided"), "{e:?}");
    assert!(e.msg.ends_with("already exists"), "{e:?}");
    assert!(env.ipam_calls().is_empty());
    assert!(env.host_veths().is_empty());
}

#[tokio::test]
async fn missing_netns_on_add_is_an_error() {
    let env = Env::new(default_ipam());
    let e = env
        .test(Command::Add, &conf(SpecVersion::V1_0_0, json!({})))
        .netns("/var/run/netns/nope")
        .run()
        .await
        .expect_error(999);
    assert_eq!(
        e.msg,
        "failed to open netns \"/var/run/netns/nope\": failed to Statfs \"/var/run/netns/nope\": no such file or directory"
    );
    assert!(env.ipam_calls().is_empty());
}

#[tokio::test]
async fn ipam_failure_leaves_no_veth() {
    let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Err(Error::new(ErrorCode::TryAgainLater, "no addresses left")),
        _ => Ok(None),
    });
    let env = Env::new(ipam);
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(11);
    assert_eq!(e.msg, "no addresses left");
    assert!(env.host_veths().is_empty(), "host veth removed");
    assert!(env.ctr_links().is_empty(), "container veth removed");
    assert_eq!(env.ipam_calls(), ["ADD"]);
}

#[tokio::test]
async fn ipam_without_ips_is_an_error() {
    let env = Env::new(ipam_with(CniResult::default()));
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM plugin returned missing IP config");
    assert_eq!(env.ipam_calls(), ["ADD", "DEL"]);
    assert!(env.host_veths().is_empty() && env.ctr_links().is_empty());
}

#[tokio::test]
async fn netlink_failure_after_ipam_runs_ipam_del_and_removes_the_veth() {
    for kind in [OpKind::AddAddress, OpKind::AddRoute] {
        let env = Env::new(default_ipam());
        env.world.fail_next_in("ctr", kind, NetErrorKind::PermissionDenied);
        let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
        assert!(e.msg.to_lowercase().contains("permission"), "{kind:?}: {e:?}");
        assert_eq!(env.ipam_calls(), ["ADD", "DEL"], "{kind:?}");
        assert!(env.host_veths().is_empty(), "{kind:?}: no host veth left");
        assert!(env.ctr_links().is_empty(), "{kind:?}: no container veth left");
    }
    // A failure while attaching the port (before IPAM): no IPAM call, no veth.
    let env = Env::new(default_ipam());
    env.world.fail_next(OpKind::SetMaster, NetErrorKind::Busy);
    let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert!(e.msg.starts_with("failed to connect"), "{e:?}");
    assert!(env.ipam_calls().is_empty());
    assert!(env.host_veths().is_empty() && env.ctr_links().is_empty());
}

#[tokio::test]
async fn del_is_idempotent() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"ipMasq": true}));
    // Nothing was ever added.
    env.test(Command::Del, &c).run().await.expect_success();
    // No netns at all: IPAM DEL only.
    env.test(Command::Del, &c).unset("CNI_NETNS").run().await.expect_success();
    // Netns gone.
    env.test(Command::Del, &c).netns("/var/run/netns/gone").run().await.expect_success();
    assert_eq!(env.ipam_calls(), ["DEL", "DEL", "DEL"]);
    // After a real ADD, twice, then with the namespace removed.
    env.test(Command::Add, &c).run().await.expect_result();
    env.test(Command::Del, &c).run().await.expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    env.world.remove_namespace("ctr");
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.cni_nat().is_empty());
}

#[tokio::test]
async fn del_reports_ipam_failure() {
    let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Del => Err(Error::internal("store locked")),
        _ => Ok(None),
    });
    let env = Env::new(ipam);
    let e = env.test(Command::Del, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_error(999);
    assert_eq!(e.msg, "store locked");
}

#[tokio::test]
async fn check_detects_drift() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"isDefaultGateway": true}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let check = |prev: CniResult, c: Value| {
        let t = env.test(Command::Check, &c).prev_result(&prev);
        async move { t.run().await }
    };
    check(r.clone(), c.clone()).await.expect_success();

    // No prevResult.
    let e = env.test(Command::Check, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "Required prevResult missing");
    // Wrong container MAC.
    let mut bad = r.clone();
    bad.interfaces[2].mac = Some("0a:00:00:00:00:09".parse::<cni_sdk::types::MacAddr>().unwrap().into());
    let e = check(bad, c.clone()).await.expect_error(999);
    assert!(e.msg.contains("doesn't match container Mac"), "{e:?}");
    // Wrong bridge MAC.
    let mut bad = r.clone();
    bad.interfaces[0].mac = Some("0a:00:00:00:00:09".parse::<cni_sdk::types::MacAddr>().unwrap().into());
    let e = check(bad, c.clone()).await.expect_error(999);
    assert!(e.msg.starts_with("Bridge interface cnitest0 Mac doesn't match"), "{e:?}");
    // Promiscuous mode differs from the configuration.
    let e = check(r.clone(), conf(SpecVersion::V1_0_0, json!({"isDefaultGateway": true, "promiscMode": true})))
        .await
        .expect_error(999);
    assert!(e.msg.contains("configured Promisc Mode true doesn't match current state: false"), "{e:?}");
    // An address that is not there.
    let mut bad = r.clone();
    bad.ips[0].address = "10.250.0.99/24".parse().unwrap();
    let e = check(bad, c.clone()).await.expect_error(999);
    assert_eq!(e.msg, "Failed to match addr 10.250.0.99/24 on interface eth0");
    // A route that is not there.
    let mut bad = r.clone();
    bad.routes.push(Route::new("10.77.0.0/16".parse().unwrap(), Some("10.250.0.1".parse().unwrap())));
    let e = check(bad, c.clone()).await.expect_error(999);
    assert!(e.msg.starts_with("Expected Route"), "{e:?}");
    // The host veth was detached from the bridge.
    let host = env.world.host();
    let port = host.link(&r.interfaces[1].name).await.unwrap();
    host.set_no_master(port.index).await.unwrap();
    let e = check(r.clone(), c.clone()).await.expect_error(999);
    assert!(e.msg.contains("in bridge cnitest0 not found"), "{e:?}");
    // The container interface is gone.
    let ctr = env.world.namespace("ctr").unwrap();
    ctr.delete_link(ctr.link("eth0").await.unwrap().index).await.unwrap();
    let e = check(r.clone(), c.clone()).await.expect_error(999);
    assert_eq!(e.msg, "Interface name eth0 not found");
}

#[tokio::test]
async fn check_fails_when_ipam_check_fails() {
    let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Add => Ok(Some(ipam_result(&[("10.250.0.2/24", Some("10.250.0.1"))], &[]))),
        Command::Check => Err(Error::internal("host-local: Failed to find address added by container")),
        _ => Ok(None),
    });
    let env = Env::new(ipam);
    let c = conf(SpecVersion::V1_0_0, json!({}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    let e = env.test(Command::Check, &c).prev_result(&r).run().await.expect_error(999);
    assert!(e.msg.starts_with("host-local: Failed to find"), "{e:?}");
}

#[tokio::test]
async fn status_delegates_to_ipam() {
    let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _| match cmd {
        Command::Status => Err(Error::not_available("pool exhausted")),
        _ => Ok(None),
    });
    let env = Env::new(ipam);
    let e = env.test(Command::Status, &conf(SpecVersion::V1_1_0, json!({}))).run().await.expect_error(50);
    assert_eq!(e.msg, "pool exhausted");
    assert_eq!(env.ipam_calls(), ["STATUS"]);
    let env = Env::new(InProcessExec::new());
    let mut c = conf(SpecVersion::V1_1_0, json!({}));
    c.as_object_mut().unwrap().remove("ipam");
    env.test(Command::Status, &c).run().await.expect_success();
}

#[tokio::test]
async fn dns_from_config_overrides_ipam() {
    let mut ipam = ipam_result(&[("10.250.0.2/24", Some("10.250.0.1"))], &[]);
    ipam.dns.nameservers = vec!["10.250.0.53".into()];
    let env = Env::new(ipam_with(ipam.clone()));
    let r = env.test(Command::Add, &conf(SpecVersion::V1_0_0, json!({}))).run().await.expect_result();
    assert_eq!(r.dns.nameservers, ["10.250.0.53"]);
    let env = Env::new(ipam_with(ipam));
    let c = conf(SpecVersion::V1_0_0, json!({"dns": {"nameservers": ["1.1.1.1"], "search": ["example"]}}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(r.dns.nameservers, ["1.1.1.1"]);
    assert_eq!(r.dns.search, ["example"]);
}

#[tokio::test]
async fn disabled_container_interface_with_ipam_is_refused_before_anything_changes() {
    let env = Env::new(default_ipam());
    let e = env
        .test(Command::Add, &conf(SpecVersion::V1_0_0, json!({"disableContainerInterface": true})))
        .run()
        .await
        .expect_error(999);
    assert_eq!(e.msg, "cannot use IPAM when DisableContainerInterface flag is set");
    assert!(env.host().links.iter().all(|l| l.name != "cnitest0"), "checked before the bridge is made (Go)");
    assert!(env.host_veths().is_empty() && env.ctr_links().is_empty());
    assert!(env.ipam_calls().is_empty());
}

/// The nft rules of `bridge nat` chain `chain`, as (match, verdict) text.
fn spoof_rules(env: &Env, chain: &str) -> Vec<String> {
    let t = env.nft.table(&TableId::new(cni_sdk::firewall::TableFamily::Bridge, "nat"));
    t.and_then(|t| t.chain(chain).map(|c| c.rules.iter().map(|r| format!("{:?}", r.rule)).collect()))
        .unwrap_or_default()
}

#[tokio::test]
async fn macspoofchk_installs_gos_nftables_objects_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new(default_ipam());
        let c = conf(v, json!({"macspoofchk": true}));
        env.test(Command::Add, &c).run().await.expect_result();
        let veth = env.host_veths().pop().unwrap();
        let mac = env.ctr().links.into_iter().find(|l| l.name == "eth0").unwrap().mac;
        let chain = names::macspoofchk_chain(CID, "eth0");
        let pre = spoof_rules(&env, "PREROUTING");
        assert_eq!(pre.len(), 1, "{v}");
        assert!(pre[0].contains(&format!("InInterface(\"{veth}\")")) && pre[0].contains(&format!("Jump(\"{chain}\")")));
        assert!(pre[0].contains(&format!("macspoofchk-{CID}-eth0")));
        let mac_rules = spoof_rules(&env, &format!("{chain}-mac"));
        assert_eq!(mac_rules.len(), 2);
        assert!(mac_rules[0].contains(&format!("EtherSource({mac:?})")) && mac_rules[0].contains("Return"));
        assert!(mac_rules[1].contains("Drop"));
        env.test(Command::Del, &c).run().await.expect_success();
        assert!(spoof_rules(&env, "PREROUTING").is_empty());
        assert!(spoof_rules(&env, &chain).is_empty() && spoof_rules(&env, &format!("{chain}-mac")).is_empty());
        env.test(Command::Del, &c).run().await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn macspoofchk_is_removed_when_add_fails_and_without_netns() {
    // A later step fails: the check goes with the veth.
    let env = Env::new(ipam_with(CniResult::default()));
    let c = conf(SpecVersion::V1_0_0, json!({"macspoofchk": true}));
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM plugin returned missing IP config");
    assert!(spoof_rules(&env, "PREROUTING").is_empty());
    assert!(env.host_veths().is_empty());
    // DEL without CNI_NETNS still removes it (by name).
    let env = Env::new(default_ipam());
    env.test(Command::Add, &c).run().await.expect_result();
    env.test(Command::Del, &c).unset("CNI_NETNS").run().await.expect_success();
    assert!(spoof_rules(&env, "PREROUTING").is_empty());
    // An nftables failure at setup fails ADD with Go's prefix and leaves nothing.
    let env = Env::new(default_ipam());
    env.nft.fail_next_commit(FirewallErrorKind::PermissionDenied, "injected");
    let e = env.test(Command::Add, &c).run().await.expect_error(999);
    assert!(e.msg.starts_with("failed to setup spoof-check: "), "{}", e.msg);
    assert!(env.host_veths().is_empty() && env.ctr_links().is_empty());
}

#[tokio::test]
async fn ip_masq_with_nftables_matches_go_layout_and_del_removes_it() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_0_0, json!({"ipMasq": true, "ipMasqBackend": "nftables"}));
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert!(env.cni_nat().is_empty(), "nothing in iptables");
    let table = env.nft.table(&TableId::new(cni_sdk::firewall::TableFamily::Inet, "cni_plugins_masquerade"));
    let table = table.expect("Go's table inet cni_plugins_masquerade");
    let checks = table.chains.iter().find(|c| c.chain.name == "masq_checks").expect("masq_checks");
    assert_eq!(checks.rules.len(), 1);
    let comment = checks.rules[0].rule.comment.clone().unwrap_or_default();
    assert!(comment.ends_with(&format!("net: testnet, if: eth0, id: {CID}")), "{comment}");
    env.test(Command::Check, &c).prev_result(&r).run().await.expect_success();
    env.test(Command::Del, &c).run().await.expect_success();
    assert!(env.no_nft_masq());
}

#[tokio::test]
async fn gc_removes_masquerading_of_attachments_no_longer_valid() {
    let env = Env::new(default_ipam());
    let c = conf(SpecVersion::V1_1_0, json!({"ipMasq": true}));
    for (cid, ns) in [("ctr-keep", "/var/run/netns/ctr"), ("ctr-gone", "/var/run/netns/ctr2")] {
        env.world.add_namespace(ns.rsplit('/').next().unwrap());
        env.test(Command::Add, &c).container_id(cid).netns(ns).run().await.expect_result();
    }
    assert_eq!(env.cni_nat().iter().filter(|l| l.starts_with("-N")).count(), 2);
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-keep", "ifname": "eth0"}]);
    env.test(Command::Gc, &gc).run().await.expect_success();
    let left = env.cni_nat();
    assert!(left.iter().any(|l| l.contains(&names::chain_name("testnet", "ctr-keep"))), "{left:?}");
    assert!(!left.iter().any(|l| l.contains(&names::chain_name("testnet", "ctr-gone"))), "{left:?}");
    assert!(env.ipam_calls().contains(&"GC".to_owned()), "GC is delegated to IPAM");
}

#[tokio::test]
async fn port_isolation_and_disabled_container_interface() {
    let env = Env::new(InProcessExec::new());
    let mut c = conf(SpecVersion::V1_0_0, json!({"portIsolation": true, "disableContainerInterface": true}));
    c.as_object_mut().unwrap().remove("ipam");
    let r = env.test(Command::Add, &c).run().await.expect_result();
    assert_eq!(env.l2.log(), [format!("isolated {}", r.interfaces[1].name)]);
}

#[tokio::test]
async fn port_option_failures_use_gos_texts_and_leave_nothing() {
    let cases = [
        ("isolated", json!({"portIsolation": true}), "failed to set isolated on for "),
        (
            "vlan del",
            json!({"vlan": 7, "preserveDefaultVlan": false}),
            "failed to remove default vlan on interface \"veth",
        ),
        ("vlan add", json!({"vlanTrunk": [{"id": 9}]}), "failed to setup vlan tag on interface \"veth"),
    ];
    for (op, extra, prefix) in cases {
        let env = Env::new(default_ipam());
        env.l2.fail_on(op);
        let e = env.test(Command::Add, &conf(SpecVersion::V1_0_0, extra)).run().await.expect_error(999);
        assert!(e.msg.starts_with(prefix) && e.msg.ends_with("Operation not supported"), "{op}: {}", e.msg);
        assert!(env.host_veths().is_empty() && env.ctr_links().is_empty(), "{op}");
        assert!(env.ipam_calls().is_empty(), "{op}: before IPAM, as in Go");
    }
}

#[tokio::test]
async fn two_containers_share_the_bridge() {
    let env = Env::new(default_ipam());
    env.world.add_namespace("ctr2");
    let c = conf(SpecVersion::V1_0_0, json!({"isGateway": true}));
    env.test(Command::Add, &c).run().await.expect_result();
    env.test(Command::Add, &c).container_id("second").netns("/var/run/netns/ctr2").run().await.expect_result();
    let host = env.host();
    let br = host.links.iter().find(|l| l.name == "cnitest0").unwrap();
    assert_eq!(host.links.iter().filter(|l| l.master == Some(br.index)).count(), 2);
    assert_eq!(host.links.iter().filter(|l| l.kind == LinkKind::Bridge).count(), 1);
    env.test(Command::Del, &c).run().await.expect_success();
    let host = env.host();
    assert_eq!(host.links.iter().filter(|l| l.master == Some(br.index)).count(), 1);
    assert!(host.links.iter().any(|l| l.name == "cnitest0"), "DEL keeps the bridge, like Go");
}
