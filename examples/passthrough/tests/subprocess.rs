//! Execs the real `passthrough` binary with a real environment and stdin.

use serde_json::{Value, json};

const VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn exec(env: &[(&str, &str)], stdin: &str) -> cni_test_support::Run {
    cni_test_support::exec(env!("CARGO_BIN_EXE_passthrough"), env, stdin.as_bytes())
}

fn base(cmd: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "ctr-1"),
        ("CNI_NETNS", "/var/run/netns/does-not-exist"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn prev_for(version: &str) -> Value {
    match version {
        "0.1.0" | "0.2.0" => json!({"cniVersion": version, "ip4": {"ip": "10.210.0.2/24", "gateway": "10.210.0.1"}}),
        "0.3.0" | "0.3.1" | "0.4.0" => json!({
            "cniVersion": version,
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": [{"version": "4", "interface": 0, "address": "10.210.0.2/24", "gateway": "10.210.0.1"}]
        }),
        _ => json!({
            "cniVersion": version,
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x", "mtu": 1450}],
            "ips": [{"interface": 0, "address": "10.210.0.2/24", "gateway": "10.210.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.210.0.1"}]
        }),
    }
}

#[test]
fn about_text_without_command() {
    let r = exec(&[], "");
    assert_eq!(r.code, Some(0));
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.starts_with("CNI passthrough plugin v0.1.0\nCNI protocol versions supported: 0.1.0, "),
        "{}",
        r.stderr
    );
}

#[test]
fn version_reply() {
    let r = exec(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
    assert_eq!(r.code, Some(0));
    assert_eq!(r.doc(), json!({"cniVersion": "0.4.0", "supportedVersions": VERSIONS}));
    assert!(r.stdout.ends_with('\n'));
    // No stdin at all still answers.
    let r = exec(&[("CNI_COMMAND", "VERSION")], "");
    assert_eq!((r.code, r.doc()["cniVersion"].clone()), (Some(0), json!("1.1.0")));
}

#[test]
fn add_returns_prev_result_in_every_version() {
    for v in VERSIONS {
        let conf = json!({"cniVersion": v, "name": "chain", "type": "passthrough", "prevResult": prev_for(v)});
        let r = exec(&base("ADD"), &conf.to_string());
        assert_eq!(r.code, Some(0), "{v}: {} {}", r.stdout, r.stderr);
        assert_eq!(r.doc(), prev_for(v), "{v}: result must equal prevResult");
    }
}

#[test]
fn add_without_prev_result_is_a_config_error() {
    let r = exec(&base("ADD"), r#"{"cniVersion":"1.0.0","name":"chain","type":"passthrough"}"#);
    assert_eq!(r.code, Some(1));
    let e = r.doc();
    assert_eq!((e["code"].as_u64(), e["cniVersion"].as_str()), (Some(7), Some("1.0.0")));
}

#[test]
fn del_check_and_errors() {
    let conf = json!({"cniVersion": "1.1.0", "name": "chain", "type": "passthrough", "prevResult": prev_for("1.1.0")});
    let r = exec(&base("DEL"), &conf.to_string());
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""));
    let r = exec(&base("CHECK"), &conf.to_string());
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""));
    let r = exec(&base("STATUS"), &conf.to_string());
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""));

    let mut env = base("ADD");
    env.retain(|(k, _)| *k != "CNI_NETNS" && *k != "CNI_IFNAME");
    let r = exec(&env, &conf.to_string());
    assert_eq!(r.code, Some(1));
    assert_eq!(r.doc()["msg"], "required env variables [CNI_NETNS,CNI_IFNAME] missing");

    let r = exec(&base("ADD"), "{not json");
    assert_eq!((r.code, r.doc()["code"].as_u64()), (Some(1), Some(6)));

    let r = exec(&base("add"), &conf.to_string());
    assert_eq!((r.code, r.doc()["code"].as_u64()), (Some(1), Some(4)));

    let r = exec(&base("CHECK"), &json!({"cniVersion": "0.3.1", "name": "chain", "type": "passthrough"}).to_string());
    assert_eq!((r.code, r.doc()["code"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn netns_guard_before_handler() {
    let conf = json!({"cniVersion": "1.1.0", "name": "chain", "type": "passthrough", "prevResult": prev_for("1.1.0")});
    let mut env = base("ADD");
    env.retain(|(k, _)| *k != "CNI_NETNS");
    env.push(("CNI_NETNS", "/proc/self/ns/net"));
    let r = exec(&env, &conf.to_string());
    assert_eq!(r.code, Some(1));
    assert_eq!(r.doc()["code"], 8, "exactly one document, the error: {}", r.stdout);
    env.push(("CNI_NETNS_OVERRIDE", "1"));
    assert_eq!(exec(&env, &conf.to_string()).code, Some(0));
}

#[test]
fn logs_go_to_the_configured_file_never_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("plugin.log");
    let mut env = base("ADD");
    let log_path = log.to_str().unwrap().to_owned();
    env.push(("CNI_LOG_LEVEL", "debug"));
    env.push(("CNI_LOG_FILE", &log_path));
    let r = exec(&env, r#"{"cniVersion":"1.0.0","name":"chain","type":"passthrough"}"#);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.doc()["code"], 7, "stdout still holds exactly one document");
    assert!(r.stderr.is_empty(), "nothing on stderr when a log file is set: {}", r.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("request failed")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("verb=ADD") && line.contains("container_id=ctr-1"), "span fields: {line}");
    // A bad level falls back to warn with a notice on stderr.
    let mut env = base("DEL");
    env.push(("CNI_LOG_LEVEL", "loud"));
    let r = exec(&env, r#"{"cniVersion":"1.0.0","name":"chain","type":"passthrough"}"#);
    assert_eq!(r.code, Some(0));
    assert!(r.stderr.contains("CNI_LOG_LEVEL=\"loud\" is not a level"), "{}", r.stderr);
}
