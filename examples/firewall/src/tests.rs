//! Unit tests on the fake firewall: no root, no binaries.

use cni_sdk::firewall::fake::FakeFirewall;
use cni_sdk::firewall::{Batch, IpFamily, Match, Rule, TableId, Verdict};
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, Interface, IpConfig, SpecVersion};
use serde_json::{Value, json};

use cni_sdk::PluginEntry;

use super::FirewallPlugin;

const NS: &str = "/var/run/netns/fw-ctr";
const NET: &str = "fwnet";
const CID: &str = "ctr-fw";
const BRIDGE: &str = "fw-br0";

struct Env {
    ipt: FakeFirewall,
    plugin: FirewallPlugin,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let ipt = FakeFirewall::iptables();
        let plugin = FirewallPlugin::with_firewall(ipt.firewall());
        Self { ipt, plugin, dir: tempfile::tempdir().unwrap() }
    }

    fn conf(&self, version: SpecVersion, keys: Value) -> Value {
        let mut c =
            json!({"cniVersion": version.as_str(), "name": NET, "type": "firewall", "dataDir": self.dir.path()});
        c.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        c
    }

    fn run(&self, cmd: Command, conf: &Value, prev: Option<&CniResult>) -> PluginTest<'_, FirewallPlugin> {
        let t = PluginTest::new(&self.plugin)
            .options(FirewallPlugin::options())
            .command(cmd)
            .config(conf.clone())
            .container_id(CID)
            .netns(NS);
        match prev {
            Some(p) => t.prev_result(p),
            None => t,
        }
    }

    /// `iptables -t filter -S` (or ip6tables) as lines.
    fn filter(&self, family: IpFamily) -> Vec<String> {
        self.ipt.save(&TableId::iptables(family, "filter")).lines().map(str::to_owned).collect()
    }
}

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

fn text(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// Go v1.1.1's filter table for one container at 10.222.20.5 (the verified rule set).
const GO_FILTER: &str = r#"
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N CNI-ADMIN
-N CNI-FORWARD
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.222.20.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.222.20.5/32 -j ACCEPT
"#;

const EMPTY_FILTER: &str = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT";

#[tokio::test]
async fn add_check_del_in_every_version() {
    for_each_version(|v| async move {
        let env = Env::new();
        let c = env.conf(v, json!({}));
        let p = prev(&["10.222.20.5/24"]);
        let out = env.run(Command::Add, &c, Some(&p)).run().await;
        if !v.has_check() {
            let e = out.expect_error(1);
            assert_eq!(e.msg, "incompatible CNI versions", "{v}");
            return;
        }
        assert_eq!(out.expect_result(), p, "{v}: prevResult passes through");
        assert_eq!(env.filter(IpFamily::V4), text(GO_FILTER), "{v}");
        assert_eq!(env.filter(IpFamily::V6), text(EMPTY_FILTER), "{v}: IPv4 only");
        assert_eq!(env.ipt.commits(), 1, "{v}");
        env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
        // Idempotent.
        env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
        assert_eq!(env.ipt.commits(), 1, "{v}: nothing to change");
        env.run(Command::Del, &c, Some(&p)).run().await.expect_success();
        let left = env.filter(IpFamily::V4);
        assert!(!left.iter().any(|l| l.contains("10.222.20.5")), "{v}: {left:?}");
        assert_eq!(left.len(), 7, "{v}: chains and jumps stay, as in Go: {left:?}");
        env.run(Command::Del, &c, Some(&p)).run().await.expect_success();
        env.run(Command::Del, &c, None).run().await.expect_success();
        env.run(Command::Del, &c, Some(&p)).unset("CNI_NETNS").run().await.expect_success();
        let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
        assert_eq!(
            e.msg,
            "expected rule [-d 10.222.20.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT] not found"
        );
    })
    .await;
}

#[tokio::test]
async fn dual_stack_and_admin_chain_name() {
    let env = Env::new();
    let c = env.conf(SpecVersion::V1_0_0, json!({"iptablesAdminChainName": "MY-ADMIN"}));
    let p = prev(&["10.222.20.5/24", "fd00:222:20::5/64"]);
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    let v6 = env.filter(IpFamily::V6);
    assert_eq!(
        v6,
        text(
            r#"-P INPUT ACCEPT
            -P FORWARD ACCEPT
            -P OUTPUT ACCEPT
            -N CNI-FORWARD
            -N MY-ADMIN
            -A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
            -A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j MY-ADMIN
            -A CNI-FORWARD -d fd00:222:20::5/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
            -A CNI-FORWARD -s fd00:222:20::5/128 -j ACCEPT"#
        )
    );
    assert!(env.filter(IpFamily::V4).iter().any(|l| l.ends_with("-j MY-ADMIN")));
    env.run(Command::Check, &c, Some(&p)).run().await.expect_success();
    // CHECK with the default admin chain looks for the default jump.
    let e = env.run(Command::Check, &env.conf(SpecVersion::V1_0_0, json!({})), Some(&p)).run().await.expect_error(999);
    assert_eq!(
        e.msg,
        "expected CNI-FORWARD rule [-m comment --comment CNI firewall plugin admin overrides -j CNI-ADMIN] not found"
    );
    env.run(Command::Del, &c, Some(&p)).run().await.expect_success();
    assert!(!env.filter(IpFamily::V6).iter().any(|l| l.contains("fd00:222:20::5")));
}

#[tokio::test]
async fn check_does_not_create_chains_and_names_the_missing_rule() {
    let env = Env::new();
    let c = env.conf(SpecVersion::V1_1_0, json!({}));
    let p = prev(&["10.222.20.5/24"]);
    let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
    assert_eq!(
        e.msg,
        "expected FORWARD rule [-m comment --comment CNI firewall plugin rules -j CNI-FORWARD] not found"
    );
    assert_eq!(env.filter(IpFamily::V4), text(EMPTY_FILTER), "Go's CHECK creates the chains (B26)");
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    env.ipt
        .firewall()
        .delete_rule(
            &TableId::iptables(IpFamily::V4, "filter").chain("CNI-FORWARD"),
            super::rules::address_rules(&"10.222.20.5/24".parse().unwrap())[1].rule.clone(),
        )
        .await
        .unwrap();
    let e = env.run(Command::Check, &c, Some(&p)).run().await.expect_error(999);
    assert_eq!(e.msg, "expected rule [-s 10.222.20.5/32 -j ACCEPT] not found");
}

/// Go v1.1.1's same-bridge rules (verified), plus the address rules.
const GO_SAME_BRIDGE: &str = r#"
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N CNI-ADMIN
-N CNI-FORWARD
-N CNI-ISOLATION-STAGE-1
-N CNI-ISOLATION-STAGE-2
-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-1
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.222.20.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.222.20.5/32 -j ACCEPT
-A CNI-ISOLATION-STAGE-1 -i fw-br0 ! -o fw-br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN
-A CNI-ISOLATION-STAGE-2 -o fw-br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN
"#;

#[tokio::test]
async fn ingress_policy_same_bridge_and_isolated() {
    let env = Env::new();
    let c = env.conf(SpecVersion::V1_0_0, json!({"ingressPolicy": "same-bridge"}));
    let p = prev(&["10.222.20.5/24"]);
    env.run(Command::Add, &c, Some(&p)).run().await.expect_result();
    assert_eq!(env.filter(IpFamily::V4), text(GO_SAME_BRIDGE));
    env.run(Command::Check, &c, Some(&p)).run().await.expect_success();

    // isolated on another bridge: v1.7's rules, sharing the jump and the returns.
    let mut p2 = prev(&["10.222.21.5/24"]);
    p2.interfaces[0].name = "fw-br1".into();
    let c2 = env.conf(SpecVersion::V1_0_0, json!({"ingressPolicy": "isolated"}));
    env.run(Command::Add, &c2, Some(&p2)).container_id("ctr-iso").run().await.expect_result();
    let f = env.filter(IpFamily::V4);
    let of = |chain: &str| f.iter().filter(|l| l.starts_with(&format!("-A {chain} "))).cloned().collect::<Vec<_>>();
    assert_eq!(
        of("CNI-ISOLATION-STAGE-1"),
        text(
            r#"-A CNI-ISOLATION-STAGE-1 -i fw-br1 -o fw-br1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
            -A CNI-ISOLATION-STAGE-1 -i fw-br1 ! -o fw-br1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
            -A CNI-ISOLATION-STAGE-1 -i fw-br0 ! -o fw-br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
            -A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN"#
        )
    );
    assert_eq!(
        of("CNI-ISOLATION-STAGE-2"),
        text(
            r#"-A CNI-ISOLATION-STAGE-2 -o fw-br1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
            -A CNI-ISOLATION-STAGE-2 -o fw-br0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP
            -A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j RETURN"#
        )
    );
    assert_eq!(of("FORWARD").len(), 2, "one jump to STAGE-1, one to CNI-FORWARD: {f:?}");
    // DEL leaves the per-bridge rules, as Go.
    env.run(Command::Del, &c2, Some(&p2)).container_id("ctr-iso").run().await.expect_success();
    env.run(Command::Del, &c, Some(&p)).run().await.expect_success();
    let f = env.filter(IpFamily::V4);
    assert!(f.iter().any(|l| l.contains("fw-br1")) && !f.iter().any(|l| l.contains("10.222.2")), "{f:?}");
}

#[tokio::test]
async fn errors_fail_before_anything_is_added() {
    let env = Env::new();
    let p = prev(&["10.222.20.5/24"]);
    let c = env.conf(SpecVersion::V1_0_0, json!({}));
    let e = env.run(Command::Add, &c, None).run().await.expect_error(999);
    assert_eq!(e.msg, "missing prevResult from earlier plugin");
    let e = env.run(Command::Check, &c, None).run().await.expect_error(999);
    assert_eq!(e.msg, "missing prevResult from earlier plugin");

    let bad = env.conf(SpecVersion::V1_0_0, json!({"ingressPolicy": "closed"}));
    let e = env.run(Command::Add, &bad, Some(&p)).run().await.expect_error(999);
    assert_eq!(e.msg, "unknown ingress policy: \"closed\"");
    assert_eq!(env.ipt.commits(), 0, "Go adds the address rules first and leaks them");

    let sb = env.conf(SpecVersion::V1_0_0, json!({"ingressPolicy": "same-bridge"}));
    let mut no_intf = p.clone();
    no_intf.interfaces.clear();
    for ip in &mut no_intf.ips {
        ip.interface = None;
    }
    let e = env.run(Command::Add, &sb, Some(&no_intf)).run().await.expect_error(999);
    assert_eq!(
        e.msg,
        "interface needs to be set for ingress policy \"same-bridge\", make sure to chain \"firewall\" plugin with \"bridge\""
    );
    let mut empty = p.clone();
    empty.interfaces[0].name = String::new();
    let e = env.run(Command::Add, &sb, Some(&empty)).run().await.expect_error(999);
    assert_eq!(e.msg, "got empty bridge name");
    assert_eq!(env.ipt.commits(), 0);

    let fwd = env.conf(SpecVersion::V1_0_0, json!({"backend": "firewalld"}));
    for cmd in [Command::Add, Command::Check, Command::Del] {
        let e = env.run(cmd, &fwd, Some(&p)).run().await.expect_error(2);
        assert_eq!(e.msg, "unsupported field \"backend\" with value \"firewalld\"");
        assert!(e.details.unwrap_or_default().contains("D-Bus"));
    }
    // Any other backend value is Go's automatic choice, which is iptables without firewalld.
    let auto = env.conf(SpecVersion::V1_0_0, json!({"backend": "auto", "firewalldZone": "public"}));
    env.run(Command::Add, &auto, Some(&p)).run().await.expect_result();
    assert_eq!(env.filter(IpFamily::V4), text(GO_FILTER));
}

#[tokio::test]
async fn del_without_prev_result_uses_the_record() {
    // Go deletes nothing without prevResult (B26).
    let env = Env::new();
    let c = env.conf(SpecVersion::V1_0_0, json!({}));
    env.run(Command::Add, &c, Some(&prev(&["10.222.20.5/24", "fd00:222:20::5/64"]))).run().await.expect_result();
    env.run(Command::Del, &c, None).run().await.expect_success();
    for f in [IpFamily::V4, IpFamily::V6] {
        let left = env.filter(f);
        assert!(!left.iter().any(|l| l.contains("-d ") || l.contains("-s ")), "{left:?}");
    }
    // An unknown policy is reported after the rules are gone, as in Go.
    env.run(Command::Add, &c, Some(&prev(&["10.222.20.5/24"]))).run().await.expect_result();
    let bad = env.conf(SpecVersion::V1_0_0, json!({"ingressPolicy": "closed"}));
    let e = env.run(Command::Del, &bad, None).run().await.expect_error(999);
    assert_eq!(e.msg, "unknown ingress policy: \"closed\"");
    assert!(!env.filter(IpFamily::V4).iter().any(|l| l.contains("10.222.20.5")));
}

#[tokio::test]
async fn an_address_another_attachment_holds_keeps_its_rules() {
    let env = Env::new();
    let c = env.conf(SpecVersion::V1_0_0, json!({}));
    let p = prev(&["10.222.20.5/24"]);
    env.run(Command::Add, &c, Some(&p)).container_id("old").run().await.expect_result();
    // The address was handed out again (the old container's state was lost).
    env.run(Command::Add, &c, Some(&p)).container_id("new").run().await.expect_result();
    env.run(Command::Del, &c, Some(&p)).container_id("old").run().await.expect_success();
    env.run(Command::Check, &c, Some(&p)).container_id("new").run().await.expect_success();
    env.run(Command::Del, &c, Some(&p)).container_id("new").run().await.expect_success();
    assert!(!env.filter(IpFamily::V4).iter().any(|l| l.contains("10.222.20.5")));
}

#[tokio::test]
async fn rules_written_by_go_are_removed() {
    // Go's address rules are found by their specification (they carry no comment).
    let env = Env::new();
    let t = TableId::iptables(IpFamily::V4, "filter");
    let fw = env.ipt.firewall();
    let mut b = Batch::new();
    b.ensure_chain(&t, cni_sdk::firewall::Chain::regular("CNI-FORWARD")).append(
        &t.chain("CNI-FORWARD"),
        Rule::new(Verdict::Raw(cni_sdk::firewall::Raw::Iptables(vec!["-j".into(), "ACCEPT".into()])))
            .when(Match::Raw(cni_sdk::firewall::Raw::Iptables(vec!["-s".into(), "10.222.20.5/32".into()]))),
    );
    fw.apply(&b).await.unwrap();
    env.run(Command::Del, &env.conf(SpecVersion::V1_0_0, json!({})), Some(&prev(&["10.222.20.5/24"])))
        .run()
        .await
        .expect_success();
    assert_eq!(env.filter(IpFamily::V4), text("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N CNI-FORWARD"));
}

#[tokio::test]
async fn gc_removes_only_stale_attachments_of_the_network() {
    let env = Env::new();
    let conf = |name: &str| {
        let mut c = env.conf(SpecVersion::V1_1_0, json!({}));
        c["name"] = json!(name);
        c
    };
    for (net, cid, ip) in
        [("gcnet", "c1", "10.222.22.1/24"), ("gcnet", "c2", "10.222.22.2/24"), ("gcother", "c3", "10.222.23.3/24")]
    {
        env.run(Command::Add, &conf(net), Some(&prev(&[ip]))).container_id(cid).run().await.expect_result();
    }
    // c2's address was reused by gcother's c4 after c2's state was lost.
    env.run(Command::Add, &conf("gcother"), Some(&prev(&["10.222.22.2/24"])))
        .container_id("c4")
        .run()
        .await
        .expect_result();
    env.run(Command::Add, &conf("gcnet"), Some(&prev(&["10.222.22.9/24"])))
        .container_id("c9")
        .run()
        .await
        .expect_result();
    let gc = |name: &str, valid: Value| {
        let mut c = conf(name);
        c["cni.dev/valid-attachments"] = valid;
        PluginTest::new(&env.plugin).options(FirewallPlugin::options()).command(Command::Gc).config(c).run()
    };
    let has = |ip: &str| env.filter(IpFamily::V4).iter().any(|l| l.contains(&format!("{ip}/32")));
    gc("gcnet", json!([{"containerID": "c1", "ifname": "eth0"}])).await.expect_success();
    assert!(has("10.222.22.1"), "valid");
    assert!(!has("10.222.22.9"), "stale");
    assert!(has("10.222.22.2"), "stale, but gcother's c4 holds the address");
    assert!(has("10.222.23.3"), "another network");
    gc("gcnet", json!([])).await.expect_success();
    assert!(!has("10.222.22.1"));
    assert!(has("10.222.23.3") && has("10.222.22.2"));
    gc("gcother", json!([])).await.expect_success();
    assert!(!has("10.222.23.3") && !has("10.222.22.2"));
    // Nothing left to collect; a second GC is a no-op.
    let commits = env.ipt.commits();
    gc("gcother", json!([])).await.expect_success();
    assert_eq!(env.ipt.commits(), commits);
}

#[tokio::test]
async fn status_is_ready() {
    let env = Env::new();
    PluginTest::new(&env.plugin)
        .options(FirewallPlugin::options())
        .command(Command::Status)
        .config(env.conf(SpecVersion::V1_1_0, json!({})))
        .run()
        .await
        .expect_success();
}
