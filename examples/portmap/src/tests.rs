//! Unit tests on the fake firewalls and the fake network: no root, no binaries.

use std::collections::BTreeMap;

use cni_sdk::firewall::fake::FakeFirewall;
use cni_sdk::firewall::{FirewallErrorKind, IpFamily, TableFamily, TableId};
use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Interface, IpConfig, SpecVersion};
use serde_json::{Value, json};

use cni_sdk::PluginEntry;

use super::Portmap;

const NS: &str = "/var/run/netns/pm-ctr";
const NET: &str = "pmnet";
const CID: &str = "ctr-pm";
const DN: &str = "CNI-DN-7adb6a9566e33a23756fa";
const BRIDGE: &str = "pm-br0";

struct Env {
    world: FakeNetwork,
    ipt: FakeFirewall,
    nft: FakeFirewall,
    plugin: Portmap,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Self {
        let world = FakeNetwork::new();
        let host = world.host();
        let br = host.bridge(BRIDGE).execute().await.unwrap();
        host.set_up(br.index).await.unwrap();
        host.add_address(br.index, "10.222.7.1/24".parse().unwrap()).await.unwrap();
        host.add_address(br.index, "fd00:222:7::1/64".parse().unwrap()).await.unwrap();
        let (ipt, nft) = (FakeFirewall::iptables(), FakeFirewall::nftables());
        let plugin = Portmap::with_firewalls(ipt.firewall(), nft.firewall());
        Self { world, ipt, nft, plugin, dir: tempfile::tempdir().unwrap() }
    }

    fn conf(&self, version: SpecVersion, keys: Value, mappings: Value) -> Value {
        let mut c = json!({
            "cniVersion": version.as_str(),
            "name": NET,
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "dataDir": self.dir.path(),
            "runtimeConfig": {"portMappings": mappings},
        });
        c.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        c
    }

    fn run(&self, cmd: Command, conf: &Value, prev: Option<&CniResult>) -> PluginTest<'_, Portmap> {
        let t = PluginTest::new(&self.plugin)
            .options(Portmap::options())
            .command(cmd)
            .config(conf.clone())
            .container_id(CID)
            .netns(NS)
            .network(&self.world);
        match prev {
            Some(p) => t.prev_result(p),
            None => t,
        }
    }

    /// The nat table of `family` as `iptables -S` prints it, by chain.
    fn nat(&self, family: IpFamily) -> BTreeMap<String, Vec<String>> {
        by_chain(&self.ipt.save(&TableId::iptables(family, "nat")))
    }

    fn nft_rules(&self, family: TableFamily, chain: &str) -> Vec<String> {
        let t = self.nft.table(&TableId::new(family, "cni_hostport"));
        t.and_then(|t| t.chain(chain).map(|c| c.rules.iter().map(|r| r.rule.to_string()).collect())).unwrap_or_default()
    }

    fn route_localnet(&self) -> Option<String> {
        self.world.snapshot("host").unwrap().sysctls.get(&format!("net/ipv4/conf/{BRIDGE}/route_localnet")).cloned()
    }
}

/// `-N`/`-P` lines under `""`, `-A` lines by chain, in order.
fn by_chain(save: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in save.lines() {
        let key = match line.strip_prefix("-A ") {
            Some(rest) => rest.split(' ').next().unwrap().to_owned(),
            None => String::new(),
        };
        out.entry(key).or_default().push(line.to_owned());
    }
    if let Some(defs) = out.get_mut("") {
        defs.sort();
    }
    out
}

fn lines(text: &str) -> BTreeMap<String, Vec<String>> {
    by_chain(&text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n"))
}

/// A bridge plugin's result: bridge, host veth, container `eth0` with the given addresses.
fn prev(addrs: &[&str]) -> CniResult {
    let mut r = CniResult {
        interfaces: vec![
            Interface::new(BRIDGE),
            Interface::new("veth0123abcd"),
            Interface { sandbox: Some(NS.into()), ..Interface::new("eth0") },
        ],
        ..CniResult::default()
    };
    for a in addrs {
        r.ips.push(IpConfig { interface: Some(2), ..IpConfig::new(a.parse().unwrap()) });
    }
    r
}

fn go_mappings() -> Value {
    json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8443, "containerPort": 443, "protocol": "tcp", "hostIP": "10.222.7.1"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
        {"hostPort": 9090, "containerPort": 90, "protocol": "sctp"},
        {"hostPort": 7070, "containerPort": 70, "protocol": "tcp", "hostIP": "fd00:222:7::1"}
    ])
}

/// What Go v1.1.1 writes for [`go_mappings`] (the verified rule set of the notes, on this
/// test's subnet, plus a mapping bound to an IPv6 host address).
const GO_NAT_V4: &str = r#"
-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N CNI-DN-7adb6a9566e33a23756fa
-N CNI-HOSTPORT-DNAT
-N CNI-HOSTPORT-MASQ
-N CNI-HOSTPORT-SETMARK
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-7adb6a9566e33a23756fa -s 10.222.7.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.222.7.5:80
-A CNI-DN-7adb6a9566e33a23756fa -s 10.222.7.0/24 -d 10.222.7.1/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -s 127.0.0.1/32 -d 10.222.7.1/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -d 10.222.7.1/32 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.222.7.5:443
-A CNI-DN-7adb6a9566e33a23756fa -s 10.222.7.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -s 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -p udp -m udp --dport 5353 -j DNAT --to-destination 10.222.7.5:53
-A CNI-DN-7adb6a9566e33a23756fa -s 10.222.7.0/24 -p sctp -m sctp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -s 127.0.0.1/32 -p sctp -m sctp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -p sctp -m sctp --dport 9090 -j DNAT --to-destination 10.222.7.5:90
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment "dnat name: \"pmnet\" id: \"ctr-pm\"" -m multiport --dports 9090 -j CNI-DN-7adb6a9566e33a23756fa
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"pmnet\" id: \"ctr-pm\"" -m multiport --dports 8080,8443,7070 -j CNI-DN-7adb6a9566e33a23756fa
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"pmnet\" id: \"ctr-pm\"" -m multiport --dports 5353 -j CNI-DN-7adb6a9566e33a23756fa
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
"#;

const GO_NAT_V6: &str = r#"
-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N CNI-DN-7adb6a9566e33a23756fa
-N CNI-HOSTPORT-DNAT
-N CNI-HOSTPORT-MASQ
-N CNI-HOSTPORT-SETMARK
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-7adb6a9566e33a23756fa -s fd00:222:7::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:222:7::5]:80
-A CNI-DN-7adb6a9566e33a23756fa -s fd00:222:7::/64 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00:222:7::5]:53
-A CNI-DN-7adb6a9566e33a23756fa -s fd00:222:7::/64 -p sctp -m sctp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -p sctp -m sctp --dport 9090 -j DNAT --to-destination [fd00:222:7::5]:90
-A CNI-DN-7adb6a9566e33a23756fa -s fd00:222:7::/64 -d fd00:222:7::1/128 -p tcp -m tcp --dport 7070 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-7adb6a9566e33a23756fa -d fd00:222:7::1/128 -p tcp -m tcp --dport 7070 -j DNAT --to-destination [fd00:222:7::5]:70
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment "dnat name: \"pmnet\" id: \"ctr-pm\"" -m multiport --dports 9090 -j CNI-DN-7adb6a9566e33a23756fa
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"pmnet\" id: \"ctr-pm\"" -m multiport --dports 8080,8443,7070 -j CNI-DN-7adb6a9566e33a23756fa
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"pmnet\" id: \"ctr-pm\"" -m multiport --dports 5353 -j CNI-DN-7adb6a9566e33a23756fa
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
"#;

/// What DEL leaves: the shared chains (Go never removes them).
const SHARED_ONLY: &str = r#"
-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N CNI-HOSTPORT-DNAT
-N CNI-HOSTPORT-MASQ
-N CNI-HOSTPORT-SETMARK
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
"#;

#[tokio::test]
async fn iptables_add_check_del_in_every_version_writes_gos_rules() {
    for_each_version(|v| async move {
        let env = Env::new().await;
        let c = env.conf(v, json!({}), go_mappings());
        let p = prev(&["10.222.7.5/24"]);
        let r = env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
        let addrs = |r: &CniResult| r.ips.iter().map(|i| i.address).collect::<Vec<_>>();
        assert_eq!(addrs(&r), addrs(&p), "{v}: prevResult passes through");
        if v.has_chaining() {
            assert_eq!(r, p, "{v}: prevResult passes through unchanged");
        }
        assert_eq!(env.nat(IpFamily::V4), lines(GO_NAT_V4), "{v}");
        assert_eq!(
            env.nat(IpFamily::V6),
            lines("-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT"),
            "{v}: no IPv6 address, nothing in ip6tables"
        );
        assert_eq!(env.route_localnet().as_deref(), Some("1"), "{v}");
        assert_eq!(env.ipt.commits(), 1, "{v}: one iptables-restore");
        if v.has_check() {
            env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
        }
        env.run(Command::Del, &c, None).run().await.expect_success();
        assert_eq!(env.nat(IpFamily::V4), lines(SHARED_ONLY), "{v}");
        env.run(Command::Del, &c, None).run().await.expect_success();
        // No netns at all (a runtime that lost it): still fine.
        env.run(Command::Del, &c, None).unset("CNI_NETNS").run().await.expect_success();
        if v.has_check() {
            let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
            assert_eq!(e.msg, format!("could not check ipv4 dnat: chain {DN} not found in iptables table nat"));
        }
    })
    .await;
}

#[tokio::test]
async fn dual_stack_and_ipv4_only_check() {
    let env = Env::new().await;
    let c = env.conf(SpecVersion::V1_0_0, json!({}), go_mappings());
    let p = prev(&["10.222.7.5/24", "fd00:222:7::5/64", "10.222.7.6/24"]);
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    assert_eq!(env.nat(IpFamily::V4), lines(GO_NAT_V4));
    assert_eq!(env.nat(IpFamily::V6), lines(GO_NAT_V6));
    assert_eq!(env.ipt.commits(), 2, "one iptables-restore per family");
    env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
    // Go 1.1.1 fails CHECK of an IPv4-only container looking for the IPv6 chain (B1).
    env.run(Command::Del, &c, None).run().await.expect_success();
    let v4 = prev(&["10.222.7.5/24"]);
    env.run(Command::Add, &c, Some(&v4)).run().await.expect_result();
    env.run(Command::Check, &c, Some(&v4)).run().await.expect_success();
    env.run(Command::Del, &c, None).run().await.expect_success();
    assert_eq!(env.nat(IpFamily::V4), lines(SHARED_ONLY));
    assert_eq!(env.nat(IpFamily::V6), lines(SHARED_ONLY));
}

#[tokio::test]
async fn check_reports_the_missing_rules_like_go() {
    let env = Env::new().await;
    let m = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    let c = env.conf(SpecVersion::V1_1_0, json!({}), m);
    let p = prev(&["10.222.7.5/24"]);
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    let fw = env.ipt.firewall();
    let nat = TableId::iptables(IpFamily::V4, "nat");
    let dnat_rule = fw.list_rules(&nat.chain(DN)).await.unwrap().pop().unwrap();
    fw.delete_rule_handle(&nat.chain(DN), dnat_rule.handle).await.unwrap();
    let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
    assert_eq!(
        e.msg,
        format!(
            "could not check ipv4 dnat: rule [[-p tcp --dport 8080 -s 10.222.7.5/24 -j CNI-HOSTPORT-SETMARK] \
             [-p tcp --dport 8080 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK] \
             [-p tcp --dport 8080 -j DNAT --to-destination 10.222.7.5:80]] in chain {DN} not found in table nat"
        )
    );
    // The entry rule.
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    fw.delete_rules_where(&nat.chain("CNI-HOSTPORT-DNAT"), |r| r.verdict.target_chain() == Some(DN)).await.unwrap();
    let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
    assert_eq!(
        e.msg,
        "could not check ipv4 dnat: rule [[-m comment --comment dnat name: \"pmnet\" id: \"ctr-pm\" -m multiport \
         -p tcp --destination-ports 8080]] in chain CNI-HOSTPORT-DNAT not found in table nat"
    );
}

#[tokio::test]
async fn readd_replaces_stale_rules() {
    // Go adds the missing rules only, so the old mapping keeps forwarding (B33).
    let env = Env::new().await;
    let p = prev(&["10.222.7.5/24"]);
    let c1 =
        env.conf(SpecVersion::V1_0_0, json!({}), json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]));
    env.run(Command::Add, &c1, Some(&p)).run().await.expect_result();
    let c2 =
        env.conf(SpecVersion::V1_0_0, json!({}), json!([{"hostPort": 8081, "containerPort": 81, "protocol": "udp"}]));
    env.run(Command::Add, &c2, Some(&p)).run().await.expect_result();
    let nat = env.nat(IpFamily::V4);
    let all: String = nat.values().flatten().cloned().collect::<Vec<_>>().join("\n");
    assert!(!all.contains("8080"), "{all}");
    assert_eq!(nat[DN].len(), 3, "{all}");
    assert_eq!(nat["CNI-HOSTPORT-DNAT"].len(), 1, "{all}");
    assert!(nat["CNI-HOSTPORT-DNAT"][0].contains("-p udp") && nat["CNI-HOSTPORT-DNAT"][0].contains("--dports 8081"));
    env.run(Command::Check, &c2, Some(&p)).run().await.expect_success();
    env.run(Command::Check, &c1, Some(&p)).run().await.expect_error(999);
    // Re-running the same ADD keeps the same rules.
    env.run(Command::Add, &c2, Some(&p)).run().await.expect_result();
    assert_eq!(env.nat(IpFamily::V4), nat);
}

#[tokio::test]
async fn snat_mark_bit_masq_all_and_external_chain() {
    let p = prev(&["10.222.7.5/24"]);
    let m = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);

    // snat false: no mark chains, only the DNAT, no route_localnet.
    let env = Env::new().await;
    env.run(Command::Add, &env.conf(SpecVersion::V1_0_0, json!({"snat": false}), m.clone()), Some(&p))
        .run()
        .await
        .expect_result();
    let nat = env.nat(IpFamily::V4);
    assert_eq!(
        nat[DN],
        ["-A CNI-DN-7adb6a9566e33a23756fa -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.222.7.5:80"]
    );
    assert!(!nat[""].iter().any(|l| l.contains("SETMARK") || l.contains("MASQ")), "{nat:?}");
    assert_eq!(env.route_localnet(), None);

    // markMasqBit 20.
    let env = Env::new().await;
    env.run(Command::Add, &env.conf(SpecVersion::V1_0_0, json!({"markMasqBit": 20}), m.clone()), Some(&p))
        .run()
        .await
        .expect_result();
    let nat = env.nat(IpFamily::V4);
    assert_eq!(nat["CNI-HOSTPORT-MASQ"], ["-A CNI-HOSTPORT-MASQ -m mark --mark 0x100000/0x100000 -j MASQUERADE"]);
    assert_eq!(
        nat["CNI-HOSTPORT-SETMARK"],
        [
            "-A CNI-HOSTPORT-SETMARK -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x100000/0x100000"
        ]
    );

    // masqAll: the hairpin rule matches every source, no localhost rule.
    let env = Env::new().await;
    let c = env.conf(SpecVersion::V1_0_0, json!({"masqAll": true}), m.clone());
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    assert_eq!(
        env.nat(IpFamily::V4)[DN],
        [
            "-A CNI-DN-7adb6a9566e33a23756fa -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
            "-A CNI-DN-7adb6a9566e33a23756fa -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.222.7.5:80",
        ]
    );
    env.run(Command::Check, &c, Some(&p)).run().await.expect_success();

    // externalSetMarkChain: jumps there, creates no mark chains; a missing chain is an error
    // that leaves nothing behind.
    let env = Env::new().await;
    let c = env.conf(SpecVersion::V1_0_0, json!({"externalSetMarkChain": "KUBE-MARK-MASQ"}), m.clone());
    let e = env.run(Command::Add, &c, Some(&p)).run().await.expect_error(999);
    assert!(e.msg.starts_with("unable to setup DNAT: "), "{}", e.msg);
    assert!(e.msg.contains("KUBE-MARK-MASQ"), "{}", e.msg);
    assert_eq!(env.ipt.commits(), 0);
    let nat = TableId::iptables(IpFamily::V4, "nat");
    env.ipt.firewall().ensure_chain(&nat, cni_sdk::firewall::Chain::regular("KUBE-MARK-MASQ")).await.unwrap();
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    let got = env.nat(IpFamily::V4);
    assert_eq!(
        got[DN][0],
        "-A CNI-DN-7adb6a9566e33a23756fa -s 10.222.7.0/24 -p tcp -m tcp --dport 8080 -j KUBE-MARK-MASQ"
    );
    assert!(!got.contains_key("CNI-HOSTPORT-SETMARK") && !got.contains_key("POSTROUTING"), "{got:?}");
    env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
}

#[tokio::test]
async fn conditions_and_long_port_lists_in_entry_rules() {
    let env = Env::new().await;
    let ports: Vec<Value> =
        (0..17).map(|i| json!({"hostPort": 9000 + i, "containerPort": 80, "protocol": "tcp"})).collect();
    let c =
        env.conf(SpecVersion::V1_0_0, json!({"conditionsV4": ["-s", "10.222.99.0/24", "!", "-i", "lo"]}), json!(ports));
    let p = prev(&["10.222.7.5/24"]);
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    let entry = &env.nat(IpFamily::V4)["CNI-HOSTPORT-DNAT"];
    assert_eq!(entry.len(), 2, "multiport takes 15 ports: {entry:?}");
    let first: Vec<String> = (9000..9015).map(|p: u16| p.to_string()).collect();
    assert!(entry[0].contains(&format!("--dports {}", first.join(","))), "{entry:?}");
    assert!(entry[1].contains("--dports 9015,9016"), "{entry:?}");
    for e in entry {
        assert!(e.contains("-s 10.222.99.0/24") && e.contains("! -i lo"), "{e}");
    }
    // CHECK compares the rules as iptables lists them, conditions included.
    env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
}

#[tokio::test]
async fn addresses_of_other_interfaces_are_skipped() {
    let env = Env::new().await;
    let mut p = prev(&["10.222.7.5/24"]);
    // An address on the host side first (Go skips interfaces without a sandbox or of another name).
    p.ips.insert(0, IpConfig { interface: Some(0), ..IpConfig::new("10.222.7.1/24".parse().unwrap()) });
    let c =
        env.conf(SpecVersion::V1_0_0, json!({}), json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]));
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    let dn = &env.nat(IpFamily::V4)[DN];
    assert!(dn.last().unwrap().ends_with("--to-destination 10.222.7.5:80"), "{dn:?}");
    // Another CNI_IFNAME: no address of it, nothing to do.
    let env = Env::new().await;
    env.run(Command::Add, &c, Some(&p)).ifname("net1").run().await.expect_result();
    assert_eq!(env.ipt.commits(), 0);
}

#[tokio::test]
async fn nothing_to_map_passes_prev_result_through() {
    let env = Env::new().await;
    let p = prev(&["10.222.7.5/24"]);
    for c in [env.conf(SpecVersion::V1_0_0, json!({}), json!([])), {
        let mut c = env.conf(SpecVersion::V1_0_0, json!({}), json!([]));
        c.as_object_mut().unwrap().remove("runtimeConfig");
        c
    }] {
        let r = env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
        assert_eq!(r.ips, p.ips);
        env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
        env.run(Command::Del, &c, None).run().await.expect_success();
    }
    assert_eq!(env.ipt.commits(), 0);
    assert_eq!(env.route_localnet(), None);
}

#[tokio::test]
async fn configuration_errors_have_gos_messages() {
    let env = Env::new().await;
    let p = prev(&["10.222.7.5/24"]);
    let m = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    let cases: Vec<(Value, Value, &str)> = vec![
        (
            json!({"markMasqBit": 5, "externalSetMarkChain": "X"}),
            m.clone(),
            "Cannot specify externalSetMarkChain and markMasqBit",
        ),
        (json!({"markMasqBit": 32}), m.clone(), "MasqMarkBit must be between 0 and 31"),
        (json!({"markMasqBit": -1}), m.clone(), "MasqMarkBit must be between 0 and 31"),
        (
            json!({}),
            json!([{"hostPort": 8080, "containerPort": 0, "protocol": "tcp"}]),
            "Invalid container port number: 0",
        ),
        (json!({}), json!([{"hostPort": 0, "containerPort": 80, "protocol": "tcp"}]), "Invalid host port number: 0"),
        (json!({"backend": "pf"}), m.clone(), "unrecognized backend \"pf\""),
        (json!({"backend": ""}), m.clone(), "unrecognized backend \"\""),
        (
            json!({"backend": "nftables", "externalSetMarkChain": "X", "conditionsV6": ["-s", "::1"]}),
            m.clone(),
            "nftables backend was requested but configuration contains iptables-specific options [externalSetMarkChain conditionsV6]",
        ),
        (
            json!({"conditionsV4": ["ip saddr 10.0.0.0/8"]}),
            m.clone(),
            "iptables backend was requested but configuration contains nftables-specific options [conditionsV4]",
        ),
        (
            json!({}),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}]),
            "Invalid protocol \"icmp\" for host port 8080 (want tcp, udp or sctp)",
        ),
        (
            json!({}),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "nope"}]),
            "Invalid host IP \"nope\" for host port 8080",
        ),
    ];
    for (keys, mappings, msg) in cases {
        let c = env.conf(SpecVersion::V1_0_0, keys.clone(), mappings);
        let e = env.run(Command::Add, &c, Some(&p)).run().await.expect_error(999);
        assert_eq!(e.msg, format!("failed to parse config: {msg}"), "ADD {keys}");
        let e = env.run(Command::Del, &c, None).run().await.expect_error(999);
        assert_eq!(e.msg, format!("failed to parse config: {msg}"), "DEL {keys}");
        let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
        assert_eq!(e.msg, msg, "CHECK {keys}: not wrapped, as Go");
    }
    let c = env.conf(SpecVersion::V1_0_0, json!({}), m);
    let e = env.run(Command::Add, &c, None).run().await.expect_error(999);
    assert_eq!(e.msg, "must be called as chained plugin");
    let e = env.run(Command::Check, &c, None).run().await.expect_error(999);
    assert_eq!(e.msg, "Required prevResult missing");
    // Ports out of range do not even parse (Go's int would take them and fail later).
    let c =
        env.conf(SpecVersion::V1_0_0, json!({}), json!([{"hostPort": 70000, "containerPort": 80, "protocol": "tcp"}]));
    env.run(Command::Add, &c, Some(&p)).run().await.expect_error(7);
    assert_eq!(env.ipt.commits() + env.nft.commits(), 0);
}

#[tokio::test]
async fn a_failed_add_leaves_nothing_behind() {
    // The external chain exists for IPv4 only: IPv4 commits, IPv6 fails, IPv4 is taken back.
    let env = Env::new().await;
    let nat4 = TableId::iptables(IpFamily::V4, "nat");
    env.ipt.firewall().ensure_chain(&nat4, cni_sdk::firewall::Chain::regular("MARK-IT")).await.unwrap();
    let before = (env.nat(IpFamily::V4), env.nat(IpFamily::V6));
    let c = env.conf(
        SpecVersion::V1_0_0,
        json!({"externalSetMarkChain": "MARK-IT"}),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let e =
        env.run(Command::Add, &c, Some(&prev(&["10.222.7.5/24", "fd00:222:7::5/64"]))).run().await.expect_error(999);
    assert!(e.msg.starts_with("unable to setup DNAT: "), "{}", e.msg);
    let after = (env.nat(IpFamily::V4), env.nat(IpFamily::V6));
    assert!(!after.0.values().flatten().any(|l| l.contains(DN)), "{after:?}");
    assert_eq!(after.1, before.1);
    // An unusable iptables is Go's "failed to open iptables".
    let env = Env::new().await;
    env.ipt.fail_next_commit(FirewallErrorKind::Unavailable, "iptables-restore: not found");
    let c = env.conf(
        SpecVersion::V1_0_0,
        json!({"backend": "iptables"}),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let e = env.run(Command::Add, &c, Some(&prev(&["10.222.7.5/24"]))).run().await.expect_error(999);
    assert_eq!(e.msg, "failed to open iptables: iptables-restore: not found");
}

#[tokio::test]
async fn del_needs_a_usable_iptables_family() {
    let env = Env::new().await;
    env.ipt.set_usable(false);
    let c = env.conf(
        SpecVersion::V1_0_0,
        json!({"backend": "iptables"}),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let e = env.run(Command::Del, &c, None).run().await.expect_error(999);
    assert!(e.msg.starts_with("neither iptables nor ip6tables is usable, (iptables) "), "{}", e.msg);
}

/// The nft rules of `chain` for the Go mappings.
fn nft_expected_v4() -> Vec<String> {
    vec![
        "proto tcp dport 8080 dnat to 10.222.7.5:80 comment \"ctr-pm\"".into(),
        "dst 10.222.7.1/32 proto tcp dport 8443 dnat to 10.222.7.5:443 comment \"ctr-pm\"".into(),
        "proto udp dport 5353 dnat to 10.222.7.5:53 comment \"ctr-pm\"".into(),
        "proto sctp dport 9090 dnat to 10.222.7.5:90 comment \"ctr-pm\"".into(),
    ]
}

#[tokio::test]
async fn nftables_add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new().await;
        let c = env.conf(v, json!({"backend": "nftables"}), go_mappings());
        let p = prev(&["10.222.7.5/24"]);
        env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
        assert_eq!(env.nft.commits(), 1, "{v}: one nft transaction");
        assert_eq!(env.ipt.commits(), 0, "{v}");
        let t = env.nft.table(&TableId::new(TableFamily::Ip, "cni_hostport")).expect("ip cni_hostport");
        assert_eq!(t.table.comment.as_deref(), Some("CNI portmap plugin"));
        let names: Vec<&str> = t.chains.iter().map(|c| c.chain.name.as_str()).collect();
        assert_eq!(names, ["hostports", "hostip_hostports", "hostports_all", "prerouting", "output", "masquerading"]);
        assert!(env.nft.table(&TableId::new(TableFamily::Ip6, "cni_hostport")).is_none(), "{v}");
        assert_eq!(env.nft_rules(TableFamily::Ip, "hostports"), nft_expected_v4(), "{v}");
        assert_eq!(env.nft_rules(TableFamily::Ip, "hostports_all"), ["jump hostip_hostports", "jump hostports"]);
        assert_eq!(env.nft_rules(TableFamily::Ip, "prerouting"), ["dst-type local jump hostports_all"]);
        assert_eq!(env.nft_rules(TableFamily::Ip, "output"), ["dst-type local jump hostports_all"]);
        assert_eq!(
            env.nft_rules(TableFamily::Ip, "masquerading"),
            [
                "src 10.222.7.5/32 dst 10.222.7.5/32 masquerade comment \"ctr-pm\"",
                "src 127.0.0.1/32 dst 10.222.7.5/32 masquerade comment \"ctr-pm\"",
            ]
        );
        assert_eq!(env.route_localnet().as_deref(), Some("1"), "{v}: both backends set route_localnet");
        if v.has_check() {
            env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
        }
        env.run(Command::Del, &c, None).run().await.expect_success();
        for chain in ["hostports", "hostip_hostports", "masquerading"] {
            assert!(env.nft_rules(TableFamily::Ip, chain).is_empty(), "{v}: {chain}");
        }
        env.run(Command::Del, &c, None).run().await.expect_success();
        if v.has_check() {
            let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
            assert_eq!(e.msg, "missing hostport rules in \"hostports\" chain");
        }
        assert!(
            env.dir.path().read_dir().unwrap().all(|d| d.unwrap().path().read_dir().unwrap().next().is_none()),
            "{v}: no record left"
        );
    })
    .await;
}

#[tokio::test]
async fn nftables_dual_stack_conditions_and_masq_all() {
    let env = Env::new().await;
    let c = env.conf(
        SpecVersion::V1_1_0,
        json!({"backend": "nftables", "masqAll": true, "conditionsV6": ["ip6 saddr fd00:222::/32"]}),
        go_mappings(),
    );
    let p = prev(&["10.222.7.5/24", "fd00:222:7::5/64"]);
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    assert_eq!(env.nft.commits(), 1, "both families in one transaction");
    assert_eq!(
        env.nft_rules(TableFamily::Ip6, "hostports"),
        [
            "proto tcp dport 8080 dnat to [fd00:222:7::5]:80 comment \"ctr-pm\"",
            "proto udp dport 5353 dnat to [fd00:222:7::5]:53 comment \"ctr-pm\"",
            "proto sctp dport 9090 dnat to [fd00:222:7::5]:90 comment \"ctr-pm\"",
            "dst fd00:222:7::1/128 proto tcp dport 7070 dnat to [fd00:222:7::5]:70 comment \"ctr-pm\"",
        ]
    );
    assert_eq!(
        env.nft_rules(TableFamily::Ip6, "prerouting"),
        ["[ip6 saddr fd00:222::/32] dst-type local jump hostports_all"]
    );
    assert_eq!(env.nft_rules(TableFamily::Ip, "prerouting"), ["dst-type local jump hostports_all"]);
    assert_eq!(
        env.nft_rules(TableFamily::Ip, "masquerading"),
        ["src 0.0.0.0/0 dst 10.222.7.5/32 masquerade comment \"ctr-pm\""]
    );
    assert_eq!(
        env.nft_rules(TableFamily::Ip6, "masquerading"),
        ["src ::/0 dst fd00:222:7::5/128 masquerade comment \"ctr-pm\""]
    );
    env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
    // A re-ADD replaces this attachment's rules instead of adding duplicates (Go adds them).
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    assert_eq!(env.nft_rules(TableFamily::Ip, "hostports"), nft_expected_v4());
    // DEL without prevResult finds the addresses in the record.
    env.run(Command::Del, &c, None).run().await.expect_success();
    assert!(env.nft_rules(TableFamily::Ip6, "hostports").is_empty());
    assert!(env.nft_rules(TableFamily::Ip, "masquerading").is_empty());
}

#[tokio::test]
async fn nftables_keeps_the_same_container_on_another_network() {
    let env = Env::new().await;
    let m = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    let a = env.conf(SpecVersion::V1_0_0, json!({"backend": "nftables"}), m.clone());
    let mut b = env.conf(
        SpecVersion::V1_0_0,
        json!({"backend": "nftables"}),
        json!([{"hostPort": 9090, "containerPort": 90, "protocol": "tcp"}]),
    );
    b["name"] = json!("othernet");
    let pa = prev(&["10.222.7.5/24"]);
    let mut pb = prev(&["10.222.8.5/24"]);
    pb.interfaces[2].name = "net1".into();
    env.run(Command::Add, &a, Some(&pa)).run().await.expect_result();
    env.run(Command::Add, &b, Some(&pb)).ifname("net1").run().await.expect_result();
    assert_eq!(env.nft_rules(TableFamily::Ip, "hostports").len(), 2);
    // Re-ADD and DEL of network a leave network b's rules (Go deletes every rule of the container).
    env.run(Command::Add, &a, Some(&pa)).run().await.expect_result();
    env.run(Command::Del, &a, Some(&pa)).run().await.expect_success();
    assert_eq!(
        env.nft_rules(TableFamily::Ip, "hostports"),
        ["proto tcp dport 9090 dnat to 10.222.8.5:90 comment \"ctr-pm\""]
    );
    env.run(Command::Check, &b, Some(&pb)).ifname("net1").run().await.expect_success();
}

#[tokio::test]
async fn backend_is_nftables_when_only_nftables_is_usable() {
    let env = Env::new().await;
    env.ipt.set_usable(false);
    let c = env.conf(
        SpecVersion::V1_0_0,
        json!({"conditionsV4": ["ip saddr 10.0.0.0/8"]}),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    env.run(Command::Add, &c, Some(&prev(&["10.222.7.5/24"]))).run().await.expect_result();
    assert_eq!(env.nft.commits(), 1);
    assert_eq!(env.nft_rules(TableFamily::Ip, "output"), ["[ip saddr 10.0.0.0/8] dst-type local jump hostports_all"]);
}

#[tokio::test]
async fn gc_removes_only_stale_attachments_of_the_network() {
    let env = Env::new().await;
    let m = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    let conf = |name: &str, backend: &str| {
        let mut c = env.conf(SpecVersion::V1_1_0, json!({"backend": backend}), m.clone());
        c["name"] = json!(name);
        c
    };
    for backend in ["iptables", "nftables"] {
        for (net, cid, ip) in
            [("gcnet", "c1", "10.222.9.1/24"), ("gcnet", "c2", "10.222.9.2/24"), ("gcother", "c2", "10.222.10.2/24")]
        {
            env.run(Command::Add, &conf(net, backend), Some(&prev(&[ip])))
                .container_id(cid)
                .run()
                .await
                .expect_result();
        }
    }
    let dnat_chains = || -> Vec<String> {
        env.nat(IpFamily::V4)[""].iter().filter(|l| l.starts_with("-N CNI-DN-")).cloned().collect()
    };
    assert_eq!(dnat_chains().len(), 3);
    let gc = |name: &str, valid: Value| {
        let mut c = conf(name, "iptables");
        c.as_object_mut().unwrap().remove("runtimeConfig");
        c["cni.dev/valid-attachments"] = valid.clone();
        c["cni.dev/attachments"] = valid;
        PluginTest::new(&env.plugin)
            .options(Portmap::options())
            .command(Command::Gc)
            .config(c)
            .network(&env.world)
            .run()
    };
    gc("gcnet", json!([{"containerID": "c1", "ifname": "eth0"}])).await.expect_success();
    let chains = dnat_chains();
    assert_eq!(chains.len(), 2, "{chains:?}");
    let c2 = cni_sdk::firewall::names::portmap_dnat_chain("gcnet", "c2");
    assert!(!chains.iter().any(|l| l.ends_with(&c2)), "{chains:?}");
    for cid in ["c1"] {
        env.run(Command::Check, &conf("gcnet", "iptables"), Some(&prev(&["10.222.9.1/24"])))
            .container_id(cid)
            .run()
            .await
            .expect_success();
        env.run(Command::Check, &conf("gcnet", "nftables"), Some(&prev(&["10.222.9.1/24"])))
            .container_id(cid)
            .run()
            .await
            .expect_success();
    }
    let hostports = env.nft_rules(TableFamily::Ip, "hostports");
    assert_eq!(
        hostports,
        [
            "proto tcp dport 8080 dnat to 10.222.9.1:80 comment \"c1\"",
            "proto tcp dport 8080 dnat to 10.222.10.2:80 comment \"c2\""
        ],
        "c2 of gcnet goes, c2 of gcother stays"
    );
    // An empty list releases everything of the network, and nothing of another.
    gc("gcnet", json!([])).await.expect_success();
    assert_eq!(dnat_chains(), [format!("-N {}", cni_sdk::firewall::names::portmap_dnat_chain("gcother", "c2"))]);
    assert_eq!(
        env.nft_rules(TableFamily::Ip, "hostports"),
        ["proto tcp dport 8080 dnat to 10.222.10.2:80 comment \"c2\""]
    );
    env.run(Command::Check, &conf("gcother", "iptables"), Some(&prev(&["10.222.10.2/24"])))
        .container_id("c2")
        .run()
        .await
        .expect_success();
    env.run(Command::Check, &conf("gcother", "nftables"), Some(&prev(&["10.222.10.2/24"])))
        .container_id("c2")
        .run()
        .await
        .expect_success();
    // GC needs spec 1.1.0.
    let mut old = conf("gcnet", "iptables");
    old["cniVersion"] = json!("1.0.0");
    PluginTest::new(&env.plugin)
        .options(Portmap::options())
        .command(Command::Gc)
        .config(old)
        .network(&env.world)
        .run()
        .await
        .expect_error(1);
}

#[tokio::test]
async fn status_is_ready() {
    let env = Env::new().await;
    let c = env.conf(SpecVersion::V1_1_0, json!({}), json!([]));
    PluginTest::new(&env.plugin)
        .options(Portmap::options())
        .command(Command::Status)
        .config(c)
        .run()
        .await
        .expect_success();
}
