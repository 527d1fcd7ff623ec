//! In-process tests of every protocol behaviour of the dispatcher.

use std::cell::RefCell;
use std::collections::BTreeMap;

use cni_sdk::dispatch::{self, Invocation};
use cni_sdk::testing::{Outcome, PluginTest, TEST_CONTAINER_ID, for_each_version};
use cni_sdk::{
    CniError, CniResult, Command, Context, Error, ErrorCode, Interface, IpConfig, Plugin, PluginOptions, Result, Route,
    SpecVersion,
};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    behaviour: Option<String>,
}

/// Records what each call saw and behaves as `behaviour` says.
#[derive(Default)]
struct Probe {
    seen: RefCell<Vec<String>>,
}

fn full_result() -> CniResult {
    let mut r = CniResult::default();
    r.interfaces.push(Interface {
        mtu: Some(1400),
        sandbox: Some("/var/run/netns/x".into()),
        ..Interface::new("eth0")
    });
    r.ips.push(IpConfig {
        address: "10.201.0.5/16".parse().unwrap(),
        gateway: Some("10.201.0.1".parse().unwrap()),
        interface: Some(0),
    });
    r.ips.push(IpConfig { address: "fd00:201::5/64".parse().unwrap(), gateway: None, interface: Some(0) });
    r.routes.push(Route {
        priority: Some(10),
        ..Route::new("0.0.0.0/0".parse().unwrap(), Some("10.201.0.1".parse().unwrap()))
    });
    r
}

impl Probe {
    fn record(&self, cx: &Context<Conf>) {
        self.seen.borrow_mut().push(format!(
            "{} id={} netns={:?} if={} ver={} bridge={:?} prev={} args={} path={}",
            cx.command(),
            cx.container_id(),
            cx.netns(),
            cx.ifname(),
            cx.version(),
            cx.plugin_config().bridge,
            cx.prev_result().map_or(0, |r| r.ips.len()),
            cx.args().to_env_string(),
            cx.cni_path().len()
        ));
    }

    async fn behave(&self, cx: &Context<Conf>) -> Result<()> {
        self.record(cx);
        match cx.plugin_config().behaviour.as_deref() {
            Some("panic") => panic!("boom in {}", cx.command()),
            Some("io") => Err(std::io::Error::other("disk on fire").into()),
            Some("custom") => Err(Error::new(ErrorCode::Plugin(142), "custom failure").with_details("more")),
            Some("cni") => Err(CniError::new(ErrorCode::TryAgainLater, "busy").into()),
            _ => Ok(()),
        }
    }
}

impl Plugin for Probe {
    type Config = Conf;

    async fn add(&self, cx: &Context<Conf>) -> Result<CniResult> {
        self.behave(cx).await?;
        if cx.plugin_config().behaviour.as_deref() == Some("empty") {
            return Ok(CniResult::default());
        }
        Ok(cx.prev_result().cloned().unwrap_or_else(full_result))
    }

    async fn del(&self, cx: &Context<Conf>) -> Result<()> {
        self.behave(cx).await
    }

    async fn check(&self, cx: &Context<Conf>) -> Result<()> {
        self.behave(cx).await
    }

    async fn gc(&self, cx: &Context<Conf>) -> Result<()> {
        self.behave(cx).await?;
        self.seen.borrow_mut().push(format!("gc keep={}", cx.gc_attachments().len()));
        Ok(())
    }

    async fn status(&self, cx: &Context<Conf>) -> Result<()> {
        self.behave(cx).await?;
        match cx.plugin_config().behaviour.as_deref() {
            Some("down") => Err(Error::not_available("daemon down")),
            _ => Ok(()),
        }
    }
}

async fn run(p: &Probe, f: impl FnOnce(PluginTest<'_, Probe>) -> PluginTest<'_, Probe>) -> Outcome {
    f(PluginTest::new(p)).run().await
}

#[tokio::test]
async fn no_command_prints_about_and_exits_zero() {
    let p = Probe::default();
    let out = run(&p, |t| t.unset("CNI_COMMAND").options(PluginOptions::new("CNI probe v9"))).await;
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.is_empty());
    assert_eq!(
        out.stderr,
        "CNI probe v9\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"
    );
    let out = run(&p, |t| t.env("CNI_COMMAND", "")).await;
    assert_eq!(out.exit_code, 0, "empty is unset");
    assert!(p.seen.borrow().is_empty());
}

#[tokio::test]
async fn unknown_and_lower_case_verbs_are_code_4_before_stdin() {
    let p = Probe::default();
    for verb in ["add", "FOO", "Del", "version"] {
        let out = run(&p, |t| t.env("CNI_COMMAND", verb).stdin("not json")).await;
        let e = out.expect_error(4);
        assert_eq!(e.msg, format!("unknown CNI_COMMAND: {verb}"));
    }
}

#[tokio::test]
async fn version_echoes_supported_request_and_never_fails() {
    let p = Probe::default();
    let opts = || PluginOptions::new("x").versions(&[SpecVersion::V0_4_0, SpecVersion::V1_0_0]);
    let cases: [(&[u8], &str); 5] = [
        (br#"{"cniVersion":"0.4.0"}"#, "0.4.0"),
        (br#"{"cniVersion":"1.1.0"}"#, "1.0.0"),
        (b"garbage", "1.0.0"),
        (b"", "1.0.0"),
        (br#"{"cniVersion":5}"#, "1.0.0"),
    ];
    for (stdin, expect) in cases {
        let out = run(&p, |t| t.command(Command::Version).options(opts()).stdin(stdin).unset("CNI_CONTAINERID")).await;
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.document().unwrap(), json!({"cniVersion": expect, "supportedVersions": ["0.4.0", "1.0.0"]}));
    }
    // VERSION ignores invalid identifiers.
    let out = run(&p, |t| t.command(Command::Version).container_id("bad id").ifname("a/b")).await;
    assert_eq!(out.exit_code, 0);
}

#[tokio::test]
async fn missing_variables_are_reported_together() {
    let p = Probe::default();
    let out = run(&p, |t| t.unset("CNI_CONTAINERID").unset("CNI_NETNS").unset("CNI_IFNAME")).await;
    assert_eq!(out.expect_error(4).msg, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing");
    // Empty counts as missing.
    let out = run(&p, |t| t.netns("")).await;
    assert_eq!(out.expect_error(4).msg, "required env variables [CNI_NETNS] missing");
    // DEL does not need CNI_NETNS.
    run(&p, |t| t.command(Command::Del).unset("CNI_NETNS")).await.expect_success();
    // CNI_PATH is optional by spec, required in Go-strict mode.
    run(&p, |t| t.unset("CNI_PATH")).await.expect_result();
    let strict = run(&p, |t| t.unset("CNI_PATH").options(PluginOptions::new("x").go_strict(true))).await;
    assert_eq!(strict.expect_error(4).msg, "required env variables [CNI_PATH] missing");
    // GC always needs CNI_PATH; STATUS only in strict mode.
    let gc = run(&p, |t| t.command(Command::Gc).unset("CNI_PATH")).await;
    assert_eq!(gc.expect_error(4).msg, "required env variables [CNI_PATH] missing");
    run(&p, |t| t.command(Command::Status).unset("CNI_PATH").unset("CNI_CONTAINERID")).await.expect_success();
    let st = run(&p, |t| t.command(Command::Status).unset("CNI_PATH").options(PluginOptions::new("x").go_strict(true)))
        .await;
    st.expect_error(4);
}

#[tokio::test]
async fn invalid_identifiers() {
    let p = Probe::default();
    let e = run(&p, |t| t.container_id("_bad")).await.expect_error(4);
    assert_eq!((e.msg.as_str(), e.details.as_deref()), ("invalid characters in containerID", Some("_bad")));
    // A validation failure wins over later missing variables.
    let e = run(&p, |t| t.container_id("a b").unset("CNI_IFNAME")).await.expect_error(4);
    assert_eq!(e.msg, "invalid characters in containerID");
    let e = run(&p, |t| t.ifname("eth0:1")).await.expect_error(4);
    assert_eq!(e.msg, "interface name contains / or : or whitespace characters");
    let e = run(&p, |t| t.ifname("a-very-long-ifname")).await.expect_error(4);
    assert_eq!(e.msg, "interface name is too long");
    let e = run(&p, |t| t.cni_args("A=1;")).await.expect_error(4);
    assert_eq!(e.msg, "invalid CNI_ARGS: ARGS: invalid pair \"\"");
    // GC and STATUS ignore the per-container variables.
    run(&p, |t| t.command(Command::Status).container_id("bad id")).await.expect_success();
}

#[tokio::test]
async fn stdin_failures() {
    let p = Probe::default();
    let e = run(&p, |t| t.stdin("[1,2]")).await.expect_error(6);
    assert!(e.msg.starts_with("error unmarshall network config:"), "{}", e.msg);
    run(&p, |t| t.stdin("")).await.expect_error(6);
    let e = run(&p, |t| t.config(json!({"cniVersion": "1.0.0", "type": "x"}))).await.expect_error(7);
    assert_eq!(e.msg, "missing network name");
    let e = run(&p, |t| t.config_keys(json!({"name": "my net"}))).await.expect_error(7);
    assert_eq!((e.msg.as_str(), e.details.as_deref()), ("invalid characters found in network name", Some("my net")));
    let e = run(&p, |t| t.config_keys(json!({"cniVersion": 1}))).await.expect_error(6);
    assert!(e.msg.contains("cniVersion must be a string"));
    // Size cap.
    let big = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"x","pad":"{}"}}"#, "x".repeat(2000));
    let e = run(&p, |t| t.stdin(big).options(PluginOptions::new("x").max_stdin_bytes(1024))).await.expect_error(5);
    assert!(e.msg.contains("limit of 1024 bytes"), "{}", e.msg);
    // Typed configuration errors are code 7.
    let e = run(&p, |t| t.config_keys(json!({"bridge": 5}))).await.expect_error(7);
    assert!(e.msg.starts_with("failed to parse network configuration"), "{}", e.msg);
    assert!(p.seen.borrow().is_empty(), "no handler ran");
}

struct FailingReader;
impl std::io::Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("bad fd"))
    }
}

#[tokio::test]
async fn stdin_read_failure_is_code_5() {
    let env: BTreeMap<String, String> = [("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "eth0")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let io = Invocation { env, stdin: &mut FailingReader, stdout: &mut out, stderr: &mut err };
    let code = dispatch::run(&Probe::default(), &PluginOptions::default(), io).await;
    assert_eq!(code, 1);
    let e: CniError = serde_json::from_slice(&out).unwrap();
    assert_eq!((e.code, e.msg.as_str()), (ErrorCode::IoFailure, "error reading from stdin: bad fd"));
}

#[tokio::test]
async fn version_gates_for_every_verb_and_version() {
    for_each_version(|v| async move {
        let p = Probe::default();
        for cmd in [Command::Add, Command::Del, Command::Check, Command::Gc, Command::Status] {
            let out = run(&p, |t| t.command(cmd).version(v)).await;
            let allowed = v >= cmd.since();
            match (cmd, allowed) {
                (Command::Add, _) => drop(out.expect_result()),
                (_, true) => out.expect_success(),
                (_, false) => {
                    let e = out.expect_error(1);
                    assert_eq!(e.msg, format!("config version does not allow {cmd}"));
                    assert_eq!(e.cni_version.as_deref(), Some(v.as_str()));
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn version_negotiation_is_exact_for_add_and_del() {
    let p = Probe::default();
    let e = run(&p, |t| t.config_keys(json!({"cniVersion": "1.0"}))).await.expect_error(1);
    assert_eq!(e.msg, "incompatible CNI versions");
    assert_eq!(
        e.details.as_deref(),
        Some(r#"config is "1.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#)
    );
    let only1 = || PluginOptions::new("x").versions(&[SpecVersion::V1_0_0]);
    let e = run(&p, |t| t.version(SpecVersion::V0_4_0).options(only1())).await.expect_error(1);
    assert_eq!(e.details.as_deref(), Some(r#"config is "0.4.0", plugin supports ["1.0.0"]"#));
    assert_eq!(e.cni_version.as_deref(), Some("1.0.0"), "unsupported config version: newest supported is used");
    // Missing cniVersion means 0.1.0.
    let out = run(&p, |t| t.config(json!({"name": "n", "type": "x"}))).await;
    let doc = out.document().unwrap();
    assert_eq!(doc["cniVersion"], "0.1.0");
    assert_eq!(doc["ip4"]["ip"], "10.201.0.5/16");
    // CHECK: the plugin variant of the message.
    let only04 = PluginOptions::new("x").versions(&[SpecVersion::V0_4_0]);
    let e = run(&p, |t| t.command(Command::Check).version(SpecVersion::V1_1_0).options(only04)).await.expect_error(1);
    assert_eq!(e.msg, "plugin version does not allow CHECK");
    let e = run(&p, |t| t.command(Command::Status).config_keys(json!({"cniVersion": "x.y"}))).await.expect_error(6);
    assert!(e.msg.contains("invalid version"), "{}", e.msg);
    let e = run(&p, |t| t.command(Command::Gc).config_keys(json!({"cniVersion": "1.2.0"}))).await.expect_error(1);
    assert_eq!(e.msg, "plugin version does not allow GC");
}

#[tokio::test]
async fn add_output_is_converted_to_the_config_version() {
    for_each_version(|v| async move {
        let p = Probe::default();
        let out = run(&p, |t| t.version(v)).await;
        let doc = out.document().unwrap();
        assert_eq!(doc["cniVersion"], v.as_str());
        let back = out.expect_result();
        let expected = CniResult::from_value(full_result().to_value(v).unwrap(), v.as_str()).unwrap();
        assert_eq!(back, expected);
        match v.family() {
            cni_sdk::types::ResultFamily::V02 => {
                assert_eq!(doc["ip4"]["gateway"], "10.201.0.1");
                assert_eq!(doc["ip6"]["ip"], "fd00:201::5/64");
                assert!(doc.get("interfaces").is_none());
            }
            cni_sdk::types::ResultFamily::V04 => {
                assert_eq!(doc["ips"][1]["version"], "6");
                assert!(doc["interfaces"][0].get("mtu").is_none());
                assert!(doc["routes"][0].get("priority").is_none());
            }
            cni_sdk::types::ResultFamily::V1 => {
                assert_eq!(doc["interfaces"][0]["mtu"], 1400);
                assert_eq!(doc["routes"][0]["priority"], 10);
                assert!(doc["ips"][0].get("version").is_none());
            }
            family => panic!("no expectations for {family:?}"),
        }
        // Printed like Go: four-space indentation.
        assert!(out.stdout_text().contains("\n    \"cniVersion\""), "{}", out.stdout_text());
    })
    .await;
}

#[tokio::test]
async fn empty_result_in_0_2_0_is_an_error_not_an_empty_document() {
    let p = Probe::default();
    let out = run(&p, |t| t.version(SpecVersion::V0_2_0).config_keys(json!({"behaviour": "empty"}))).await;
    assert_eq!(out.expect_error(999).msg, "cannot convert: no valid IP addresses");
    run(&p, |t| t.version(SpecVersion::V0_3_1).config_keys(json!({"behaviour": "empty"}))).await.expect_result();
}

#[tokio::test]
async fn prev_result_passes_through_in_every_version() {
    for_each_version(|v| async move {
        let p = Probe::default();
        let mut prev = CniResult::default();
        prev.ips.push(IpConfig::new("10.202.3.4/24".parse().unwrap()));
        let got = run(&p, |t| t.version(v).prev_result(&prev)).await.expect_result();
        assert_eq!(got, prev);
        assert!(p.seen.borrow()[0].contains("prev=1"));
        if v.has_check() {
            run(&p, |t| t.command(Command::Check).version(v).prev_result(&prev)).await.expect_success();
            let seen = p.seen.borrow();
            assert!(seen[1].starts_with("CHECK") && seen[1].contains("prev=1"), "{}", seen[1]);
        }
    })
    .await;
}

#[tokio::test]
async fn prev_result_of_another_family_is_code_6() {
    let p = Probe::default();
    let prev = json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.203.0.2/24"}]});
    let out = run(&p, |t| t.version(SpecVersion::V1_0_0).config_keys(json!({"prevResult": prev.clone()}))).await;
    let e = out.expect_error(6);
    assert!(e.msg.contains("could not parse prevResult"), "{}", e.msg);
    // Same family (0.3.1 config, 0.4.0 prevResult) is accepted.
    run(&p, |t| t.version(SpecVersion::V0_3_1).config_keys(json!({"prevResult": prev}))).await.expect_result();
}

#[tokio::test]
async fn context_carries_everything() {
    let p = Probe::default();
    run(&p, |t| {
        t.version(SpecVersion::V1_0_0)
            .config_keys(json!({"bridge": "br9"}))
            .cni_args("IgnoreUnknown=1;K8S_POD_NAME=web")
            .env("CNI_PATH", "/a:/b:")
    })
    .await
    .expect_result();
    assert_eq!(
        p.seen.borrow()[0],
        format!(
            "ADD id={TEST_CONTAINER_ID} netns=Some(\"/var/run/netns/cni-sdk-test\") if=eth0 ver=1.0.0 bridge=Some(\"br9\") prev=0 args=IgnoreUnknown=1;K8S_POD_NAME=web path=2"
        )
    );
}

#[tokio::test]
async fn gc_sees_valid_attachments() {
    let p = Probe::default();
    let atts = json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth1"}]);
    run(&p, |t| t.command(Command::Gc).config_keys(json!({"cni.dev/valid-attachments": atts}))).await.expect_success();
    assert_eq!(p.seen.borrow()[1], "gc keep=2");
}

#[tokio::test]
async fn errors_keep_codes_or_become_999_with_cause_chain() {
    let p = Probe::default();
    let e = run(&p, |t| t.config_keys(json!({"behaviour": "custom"}))).await.expect_error(142);
    assert_eq!(
        (e.msg.as_str(), e.details.as_deref(), e.cni_version.as_deref()),
        ("custom failure", Some("more"), Some("1.1.0"))
    );
    let e = run(&p, |t| t.command(Command::Del).config_keys(json!({"behaviour": "cni"}))).await.expect_error(11);
    assert_eq!(e.msg, "busy");
    let e = run(&p, |t| t.command(Command::Check).config_keys(json!({"behaviour": "io"}))).await.expect_error(999);
    assert_eq!(e.msg, "disk on fire");
    let e = run(&p, |t| t.command(Command::Status).config_keys(json!({"behaviour": "down"}))).await.expect_error(50);
    assert_eq!(e.msg, "daemon down");
}

#[tokio::test]
async fn panics_become_error_objects() {
    for cmd in [Command::Add, Command::Del, Command::Check] {
        let p = Probe::default();
        let out = run(&p, |t| t.command(cmd).config_keys(json!({"behaviour": "panic"}))).await;
        let e = out.expect_error(999);
        assert_eq!(e.msg, format!("plugin panicked during {cmd}"));
        assert_eq!(e.details, Some(format!("boom in {cmd}")));
    }
}

#[tokio::test]
async fn netns_guard_runs_before_the_handler() {
    let p = Probe::default();
    for cmd in [Command::Add, Command::Del] {
        let e = run(&p, |t| t.command(cmd).netns("/proc/thread-self/ns/net")).await.expect_error(8);
        assert_eq!(e.msg, "plugin's netns and netns from CNI_NETNS should not be the same");
    }
    assert!(p.seen.borrow().is_empty(), "the handler never ran");
    for value in ["1", "true", "TRUE"] {
        let out = run(&p, |t| t.netns("/proc/thread-self/ns/net").env("CNI_NETNS_OVERRIDE", value)).await;
        out.expect_result();
    }
    // CHECK is not guarded (as in Go); unopenable paths pass.
    run(&p, |t| t.command(Command::Check).netns("/proc/thread-self/ns/net")).await.expect_success();
    run(&p, |t| t.netns("/nonexistent/ns")).await.expect_result();
}

#[tokio::test]
async fn stdout_holds_exactly_one_document() {
    let p = Probe::default();
    for behaviour in [json!(null), json!("panic"), json!("io")] {
        let out = run(&p, |t| t.config_keys(json!({"behaviour": behaviour}))).await;
        let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        assert!(doc.is_object());
    }
}

#[tokio::test]
async fn unknown_config_keys_are_tolerated() {
    let p = Probe::default();
    run(&p, |t| {
        t.config_keys(json!({
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "future": 1},
            "args": {"cni": {"ips": ["10.204.0.9"]}},
            "ipam": {"type": "host-local", "subnet": "10.204.0.0/16"},
            "whatever": {"nested": true}
        }))
    })
    .await
    .expect_result();
}
