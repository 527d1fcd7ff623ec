//! Hostile input through the dispatcher: oversized and deeply nested JSON, values that were not
//! UTF-8, interface names at the length limit, identifiers with path tricks, absurd `CNI_ARGS`.
//! Every case ends in exactly one document on stdout (a result, or one error object with the
//! expected code) and the plugin method runs only for valid requests.

use std::cell::Cell;

use cni_sdk::testing::PluginTest;
use cni_sdk::{CniResult, Context, ErrorCode, IpConfig, Plugin, PluginOptions, Result};
use serde_json::{Value, json};

/// Counts the calls that reached the plugin.
#[derive(Default)]
struct Counter {
    calls: Cell<usize>,
}

impl Plugin for Counter {
    type Config = Value;
    async fn add(&self, _: &Context<Value>) -> Result<CniResult> {
        self.calls.set(self.calls.get() + 1);
        let mut r = CniResult::default();
        r.ips.push(IpConfig::new("10.224.33.2/24".parse().unwrap()));
        Ok(r)
    }
    async fn del(&self, _: &Context<Value>) -> Result<()> {
        self.calls.set(self.calls.get() + 1);
        Ok(())
    }
    async fn check(&self, _: &Context<Value>) -> Result<()> {
        self.calls.set(self.calls.get() + 1);
        Ok(())
    }
}

fn conf() -> Value {
    json!({"cniVersion": "1.0.0", "name": "hostile", "type": "counter"})
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn oversized_stdin_is_code_5_and_never_read_whole() {
    let p = Counter::default();
    let options = PluginOptions::new("hostile").max_stdin_bytes(64 << 10);
    // Just at the limit: accepted (padding inside a valid configuration).
    let mut at_limit = conf();
    let base = serde_json::to_vec(&at_limit).unwrap().len();
    at_limit["pad"] = json!("x".repeat((64 << 10) - base - r#","pad":"""#.len()));
    let bytes = serde_json::to_vec(&at_limit).unwrap();
    assert_eq!(bytes.len(), 64 << 10);
    PluginTest::new(&p).options(options.clone()).config(at_limit).stdin(bytes).run().await.expect_result();
    // One byte more, and 16 MiB more: code 5, the same answer.
    for extra in [1usize, 16 << 20] {
        let mut big = Vec::with_capacity((64 << 10) + extra);
        big.extend_from_slice(br#"{"cniVersion":"1.0.0","name":"hostile","type":"counter","pad":""#);
        big.resize((64 << 10) + extra, b'x');
        let e = PluginTest::new(&p).options(options.clone()).stdin(big).run().await.expect_error(ErrorCode::IoFailure);
        assert_eq!(e.msg, "network configuration on stdin is larger than the plugin's limit of 65536 bytes");
    }
    assert_eq!(p.calls.get(), 1);
}

#[tokio::test]
async fn deeply_nested_json_is_a_decoding_error_not_a_stack_overflow() {
    let p = Counter::default();
    for depth in [200usize, 10_000, 1_000_000] {
        // As the whole document, inside a key of the configuration, and inside prevResult.
        let whole = nested(depth, "");
        let in_key =
            format!(r#"{{"cniVersion":"1.0.0","name":"hostile","type":"counter","deep":{}}}"#, nested(depth, "1"));
        let in_prev = format!(
            r#"{{"cniVersion":"1.0.0","name":"hostile","type":"counter","prevResult":{{"ips":{}}}}}"#,
            nested(depth, "")
        );
        let e = PluginTest::new(&p).stdin(whole).run().await.expect_error(ErrorCode::DecodingFailure);
        assert!(e.msg.contains("expected a map"), "depth {depth}: {}", e.msg);
        for doc in [in_key, in_prev] {
            let e = PluginTest::new(&p).stdin(doc).run().await.expect_error(ErrorCode::DecodingFailure);
            assert!(e.msg.contains("recursion limit exceeded"), "depth {depth}: {}", e.msg);
        }
    }
    // Nesting within serde_json's limit of 128 is data like any other.
    let mut ok = conf();
    ok["deep"] = serde_json::from_str(&nested(100, "1")).unwrap();
    PluginTest::new(&p).config(ok).run().await.expect_result();
    // ... also for VERSION, which never fails.
    let out = PluginTest::new(&p).command(cni_sdk::Command::Version).stdin(nested(100_000, "")).run().await;
    assert!(out.is_success());
    assert_eq!(p.calls.get(), 1);
}

#[tokio::test]
async fn values_that_were_not_utf8_are_code_4() {
    let p = Counter::default();
    // What the process-environment reader makes of invalid bytes.
    let mangled = "/var/run/netns/ctr\u{FFFD}\u{FFFD}";
    for key in ["CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH", "CNI_CONTAINERID"] {
        let value = match key {
            "CNI_IFNAME" => "eth\u{FFFD}",
            "CNI_ARGS" => "K8S_POD_NAME=web\u{FFFD}",
            "CNI_CONTAINERID" => "abc\u{FFFD}",
            _ => mangled,
        };
        let e = PluginTest::new(&p).env(key, value).run().await.expect_error(ErrorCode::InvalidEnvironmentVariables);
        assert_eq!(e.msg, format!("{key} is not valid UTF-8"), "{key}");
    }
    // GC and STATUS do not use the per-container variables.
    let gc = json!({"cniVersion": "1.1.0", "name": "hostile", "type": "counter"});
    PluginTest::new(&p)
        .command(cni_sdk::Command::Status)
        .env("CNI_NETNS", mangled)
        .config(gc.clone())
        .run()
        .await
        .expect_success();
    let e = PluginTest::new(&p)
        .command(cni_sdk::Command::Gc)
        .env("CNI_PATH", mangled)
        .config(gc)
        .run()
        .await
        .expect_error(ErrorCode::InvalidEnvironmentVariables);
    assert_eq!(e.msg, "CNI_PATH is not valid UTF-8");
    assert_eq!(p.calls.get(), 0);
}

#[tokio::test]
async fn interface_names_at_the_length_limit() {
    let p = Counter::default();
    // 15 bytes is the kernel's limit (IFNAMSIZ - 1), counted in bytes, not characters.
    for ok in ["a23456789012345", "ééééééé1", "x"] {
        assert!(ok.len() <= 15);
        PluginTest::new(&p).ifname(ok).run().await.expect_result();
    }
    for (bad, msg) in [
        ("a234567890123456", "interface name is too long"),
        ("éééééééé", "interface name is too long"),
        (".", "interface name is . or .."),
        ("..", "interface name is . or .."),
        ("eth0/../x", "interface name contains / or : or whitespace characters"),
        ("eth 0", "interface name contains / or : or whitespace characters"),
        ("eth0:1", "interface name contains / or : or whitespace characters"),
        ("eth\u{a0}0", "interface name contains / or : or whitespace characters"),
    ] {
        let e = PluginTest::new(&p).ifname(bad).run().await.expect_error(ErrorCode::InvalidEnvironmentVariables);
        assert_eq!(e.msg, msg, "{bad:?}");
    }
    let long = "x".repeat(1 << 20);
    let e = PluginTest::new(&p).ifname(&long).run().await.expect_error(ErrorCode::InvalidEnvironmentVariables);
    assert_eq!(e.msg, "interface name is too long");
    assert_eq!(p.calls.get(), 3);
}

#[tokio::test]
async fn container_ids_and_network_names_with_path_tricks() {
    let p = Counter::default();
    for bad in ["../../etc/passwd", "..", ".", "a/b", "/abs", "-rf", "a\0b", "ctr\n1", "ctr;rm"] {
        for cmd in [cni_sdk::Command::Add, cni_sdk::Command::Del, cni_sdk::Command::Check] {
            let e = PluginTest::new(&p)
                .command(cmd)
                .container_id(bad)
                .run()
                .await
                .expect_error(ErrorCode::InvalidEnvironmentVariables);
            assert_eq!(e.msg, "invalid characters in containerID", "{bad:?}");
            assert_eq!(e.details.as_deref(), Some(bad));
        }
        let mut c = conf();
        c["name"] = json!(bad);
        let e = PluginTest::new(&p).config(c).run().await.expect_error(ErrorCode::InvalidNetworkConfig);
        assert_eq!(e.msg, "invalid characters found in network name", "{bad:?}");
    }
    // Long but valid: accepted (the spec sets no limit).
    PluginTest::new(&p).container_id(&"a".repeat(64 << 10)).run().await.expect_result();
    assert_eq!(p.calls.get(), 1);
}

#[tokio::test]
async fn absurd_cni_args_are_code_4() {
    let p = Counter::default();
    let many: String = (0..100_000).map(|i| format!("K{i}=v{i}")).collect::<Vec<_>>().join(";");
    let cases: Vec<(String, Option<&str>)> = vec![
        ("=".into(), None),
        (";".into(), Some("ARGS: invalid pair \"\"")),
        (";;;;".into(), Some("ARGS: invalid pair \"\"")),
        ("A==B".into(), Some("ARGS: invalid pair \"A==B\"")),
        ("A".into(), Some("ARGS: invalid pair \"A\"")),
        (format!("A={}", "=".repeat(1 << 16)), None),
        (many, Some("ok")),
    ];
    for (args, want) in cases {
        let out = PluginTest::new(&p).cni_args(&args).run().await;
        match want {
            Some("ok") => {
                out.expect_result();
            }
            Some(msg) => {
                let e = out.expect_error(ErrorCode::InvalidEnvironmentVariables);
                assert_eq!(e.msg, format!("invalid CNI_ARGS: {msg}"));
            }
            None => {
                // "=" splits into ("", ""): Go accepts an empty key, and so do we; the long one
                // has more than one "=".
                let shown: String = args.chars().take(20).collect();
                if args == "=" {
                    out.expect_result();
                } else {
                    let e = out.expect_error(ErrorCode::InvalidEnvironmentVariables);
                    assert!(e.msg.starts_with("invalid CNI_ARGS: ARGS: invalid pair"), "{shown}: {}", e.msg);
                }
            }
        }
    }
}

#[tokio::test]
async fn non_json_and_non_object_stdin() {
    let p = Counter::default();
    for bytes in [&b""[..], b"\xff\xfe\x00", b"null", b"[]", b"\"str\"", b"1e999999", b"{\"name\":\"a\"", b"{}{}"] {
        let out = PluginTest::new(&p).stdin(bytes.to_vec()).run().await;
        let e = out.error().unwrap_or_else(|| panic!("{bytes:?}: {}", out.stdout_text()));
        assert!(
            matches!(e.code.as_u32(), 6 | 7),
            "{bytes:?}: one error object with a decoding or configuration code, got {e:?}"
        );
    }
    // Keys of the wrong type in well-known places are configuration errors, not panics.
    for (k, v) in [
        ("cniVersion", json!(1.0)),
        ("name", json!(["x"])),
        ("ipam", json!("host-local")),
        ("dns", json!(7)),
        ("prevResult", json!("x")),
        ("runtimeConfig", json!([1])),
        ("args", json!(false)),
    ] {
        let mut c = conf();
        c[k] = v;
        let out = PluginTest::new(&p).config(c).run().await;
        let e = out.error().unwrap_or_else(|| panic!("{k}: {}", out.stdout_text()));
        assert!(matches!(e.code.as_u32(), 6 | 7), "{k}: {e:?}");
    }
    assert_eq!(p.calls.get(), 0);
}
