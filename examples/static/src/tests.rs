//! In-process tests with the SDK's test kit: every key, source and error, every spec version.

use cni_sdk::testing::{PluginTest, for_each_version, for_versions};
use cni_sdk::{CniResult, Command, IpConfig, SpecVersion};
use serde_json::{Value, json};

use super::Static;

static PLUGIN: Static = Static;

fn conf(version: SpecVersion, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("static");
    json!({"cniVersion": version.as_str(), "name": "snet", "type": "bridge", "ipam": ipam})
}

fn run(cfg: &Value, cmd: Command) -> PluginTest<'static, Static> {
    PluginTest::new(&PLUGIN).command(cmd).config(cfg.clone())
}

fn ips(r: &CniResult) -> Vec<(String, Option<String>)> {
    r.ips.iter().map(|i| (i.address.to_string(), i.gateway.map(|g| g.to_string()))).collect()
}

fn pair(a: &str, g: Option<&str>) -> (String, Option<String>) {
    (a.to_owned(), g.map(str::to_owned))
}

#[tokio::test]
async fn addresses_routes_and_dns_every_version() {
    for_each_version(|v| async move {
        let cfg = conf(
            v,
            json!({
                "addresses": [
                    {"address": "10.219.1.5/24", "gateway": "10.219.1.1"},
                    {"address": "fd00:219::5/64"}
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.219.9.0/24", "gw": "10.219.1.254"}],
                "dns": {"nameservers": ["10.219.1.53"], "domain": "example.test", "search": ["a.test"], "options": ["ndots:2"]}
            }),
        );
        let out = run(&cfg, Command::Add).run().await;
        let r = out.expect_result();
        assert_eq!(ips(&r), vec![pair("10.219.1.5/24", Some("10.219.1.1")), pair("fd00:219::5/64", None)], "{v}");
        assert!(r.ips.iter().all(|i| i.interface.is_none()), "no interface index");
        assert!(r.interfaces.is_empty());
        assert_eq!(r.routes.len(), 2, "{v}");
        assert_eq!(r.routes[1].gw.unwrap().to_string(), "10.219.1.254");
        assert_eq!(r.dns.nameservers, vec!["10.219.1.53"]);
        assert_eq!(r.dns.domain.as_deref(), Some("example.test"));
        assert_eq!(r.dns.search, vec!["a.test"]);
        assert_eq!(r.dns.options, vec!["ndots:2"]);
        let doc = out.document().unwrap();
        if v.has_chaining() {
            assert!(doc.get("interfaces").is_none(), "{doc}");
            assert_eq!(doc["ips"][0]["address"], "10.219.1.5/24", "{doc}");
        } else {
            assert_eq!(doc["ip4"]["ip"], "10.219.1.5/24", "{doc}");
            assert_eq!(doc["ip6"]["ip"], "fd00:219::5/64", "{doc}");
        }
    })
    .await;
}

#[tokio::test]
async fn host_bits_are_kept_and_no_addresses_is_no_ips() {
    let out = run(&conf(SpecVersion::V1_0_0, json!({"addresses": [{"address": "10.219.2.77/16"}]})), Command::Add)
        .run()
        .await;
    assert_eq!(ips(&out.expect_result()), vec![pair("10.219.2.77/16", None)]);
    let out = run(&conf(SpecVersion::V1_0_0, json!({})), Command::Add).run().await;
    let doc = out.document().unwrap();
    assert!(out.is_success());
    assert!(doc.get("ips").is_none(), "{doc}");
}

#[tokio::test]
async fn cni_args_ip_appends_and_gateway_applies_to_them_only() {
    let cfg = conf(SpecVersion::V1_0_0, json!({"addresses": [{"address": "10.219.3.5/24"}]}));
    let out =
        run(&cfg, Command::Add).cni_args("IP=10.219.3.6/24, 10.219.4.6/24;GATEWAY=10.219.3.1,10.219.4.1").run().await;
    assert_eq!(
        ips(&out.expect_result()),
        vec![
            // Go parses config addresses after applying GATEWAY, so they never get one.
            pair("10.219.3.5/24", None),
            pair("10.219.3.6/24", Some("10.219.3.1")),
            pair("10.219.4.6/24", Some("10.219.4.1")),
        ]
    );
}

#[tokio::test]
async fn cni_args_are_strict_like_go() {
    let cfg = conf(SpecVersion::V1_0_0, json!({}));
    let e = run(&cfg, Command::Add).cni_args("IP=10.219.3.6/24;FOO=1").run().await.expect_error(999);
    assert_eq!(e.msg, "ARGS: unknown args [\"FOO=1\"]");
    let out = run(&cfg, Command::Add).cni_args("IgnoreUnknown=1;IP=10.219.3.6/24;FOO=1").run().await;
    assert_eq!(ips(&out.expect_result()), vec![pair("10.219.3.6/24", None)]);
    let e = run(&cfg, Command::Add).cni_args("IP=10.219.3.6").run().await.expect_error(999);
    assert_eq!(e.msg, "the 'ip' field is expected to be in CIDR notation, got: '10.219.3.6'");
    let e = run(&cfg, Command::Add).cni_args("IP=10.219.3.6/24;GATEWAY=nope").run().await.expect_error(999);
    assert_eq!(e.msg, "invalid gateway address: nope");
}

#[tokio::test]
async fn args_ips_replace_and_runtime_config_ips_win() {
    let ipam = json!({"addresses": [{"address": "10.219.5.5/24", "gateway": "10.219.5.1"}]});
    let mut cfg = conf(SpecVersion::V1_0_0, ipam);
    cfg["args"] = json!({"cni": {"ips": ["10.219.6.6/24"]}});
    let out = run(&cfg, Command::Add).cni_args("IP=10.219.7.7/24").run().await;
    assert_eq!(ips(&out.expect_result()), vec![pair("10.219.6.6/24", None)]);
    cfg["runtimeConfig"] = json!({"ips": ["10.219.8.8/24", "fd00:219::8/64"]});
    let out = run(&cfg, Command::Add).run().await;
    assert_eq!(ips(&out.expect_result()), vec![pair("10.219.8.8/24", None), pair("fd00:219::8/64", None)]);
    // Empty lists replace nothing.
    cfg["runtimeConfig"] = json!({"ips": []});
    cfg["args"] = json!({"cni": {"ips": []}});
    let out = run(&cfg, Command::Add).run().await;
    assert_eq!(ips(&out.expect_result()), vec![pair("10.219.5.5/24", Some("10.219.5.1"))]);
}

#[tokio::test]
async fn config_errors_are_gos() {
    let v = SpecVersion::V1_0_0;
    let e =
        run(&json!({"cniVersion": "1.0.0", "name": "snet", "type": "x"}), Command::Add).run().await.expect_error(999);
    assert_eq!(e.msg, "IPAM config missing 'ipam' key");
    let e =
        run(&conf(v, json!({"addresses": [{"address": "10.219.1.5"}]})), Command::Add).run().await.expect_error(999);
    assert_eq!(e.msg, "the 'address' field is expected to be in CIDR notation, got: '10.219.1.5'");
    let e = run(&conf(v, json!({"addresses": [{"address": "10.219.1.5/24", "gateway": "x.y"}]})), Command::Add)
        .run()
        .await
        .expect_error(999);
    assert_eq!(e.msg, "invalid IP address: x.y");
    let mut cfg = conf(v, json!({}));
    cfg["runtimeConfig"] = json!({"ips": ["10.219.1.9"]});
    let e = run(&cfg, Command::Add).run().await.expect_error(999);
    assert_eq!(e.msg, "an entry in the 'ips' field is NOT in CIDR notation, got: '10.219.1.9'");
    let e = run(&conf(v, json!({"routes": [{"dst": "10.219.0.0"}]})), Command::Add).run().await.expect_error(999);
    assert_eq!(e.msg, "invalid CIDR address: 10.219.0.0");
}

#[tokio::test]
async fn old_versions_take_one_address_per_family() {
    let two = json!({"addresses": [{"address": "10.219.1.5/24"}, {"address": "10.219.1.6/24"}]});
    for_versions(&[SpecVersion::V0_1_0, SpecVersion::V0_2_0], |v| {
        let two = two.clone();
        async move {
            let e = run(&conf(v, two), Command::Add).run().await.expect_error(999);
            assert_eq!(e.msg, format!("CNI version {} does not support more than 1 address per family", v.as_str()));
        }
    })
    .await;
    let out = run(&conf(SpecVersion::V0_3_0, two), Command::Add).run().await;
    assert_eq!(out.expect_result().ips.len(), 2);
}

fn prev(entries: &[(&str, Option<&str>)]) -> CniResult {
    CniResult {
        ips: entries
            .iter()
            .map(|(a, g)| IpConfig { gateway: g.map(|g| g.parse().unwrap()), ..IpConfig::new(a.parse().unwrap()) })
            .collect(),
        ..CniResult::default()
    }
}

#[tokio::test]
async fn check_compares_addresses_and_gateways() {
    for_versions(SpecVersion::V0_4_0.and_newer(), |v| async move {
        let cfg = conf(v, json!({"addresses": [{"address": "10.219.1.5/24", "gateway": "10.219.1.1"}]}));
        run(&cfg, Command::Check)
            .prev_result(&prev(&[("10.219.1.5/24", Some("10.219.1.1"))]))
            .run()
            .await
            .expect_success();
        let e = run(&cfg, Command::Check)
            .prev_result(&prev(&[("10.219.1.5/24", Some("10.219.1.254"))]))
            .run()
            .await
            .expect_error(999);
        assert_eq!(e.msg, "static: Failed to match addr 10.219.1.5 on interface eth0");
        // Go ignores configured addresses missing from prevResult; we report them.
        let e = run(&cfg, Command::Check).prev_result(&prev(&[("10.219.1.6/24", None)])).run().await.expect_error(999);
        assert_eq!(e.msg, "static: Failed to match addr 10.219.1.5 on interface eth0");
        let e = run(&cfg, Command::Check).run().await.expect_error(999);
        assert_eq!(e.msg, "Required prevResult missing");
    })
    .await;
}

#[tokio::test]
async fn del_needs_nothing_and_status_gc_succeed() {
    for_each_version(|v| async move {
        let bare = json!({"cniVersion": v.as_str(), "name": "snet", "type": "static"});
        run(&bare, Command::Del).run().await.expect_success();
    })
    .await;
    let cfg = conf(SpecVersion::V1_1_0, json!({}));
    run(&cfg, Command::Status).run().await.expect_success();
    run(&cfg, Command::Gc).run().await.expect_success();
}
