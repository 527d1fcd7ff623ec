//! Delegation: in-process fakes, real processes (shell-script plugins) and Debian's Go host-local.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_sdk::exec::{Exec, ExecRequest, ProcessExec, find_in_path};
use cni_sdk::testing::InProcessExec;
use cni_sdk::testing::PluginTest;
use cni_sdk::{CniResult, Command, Context, Error, ErrorCode, IpConfig, Plugin, PluginOptions, Result, SpecVersion};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    fail_after_ipam: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// A plugin that gets its address from IPAM and fails afterwards when told to.
struct UsesIpam;

impl Plugin for UsesIpam {
    type Config = Conf;

    async fn add(&self, cx: &Context<Conf>) -> Result<CniResult> {
        let mut ipam = cx.ipam()?;
        if let Some(ms) = cx.plugin_config().timeout_ms {
            ipam = ipam.timeout(Duration::from_millis(ms));
        }
        ipam.add_with_rollback(|r| async move {
            if cx.plugin_config().fail_after_ipam {
                return Err(Error::internal("veth setup failed"));
            }
            Ok(r)
        })
        .await
    }

    async fn del(&self, cx: &Context<Conf>) -> Result<()> {
        cx.ipam()?.del().await
    }

    async fn check(&self, cx: &Context<Conf>) -> Result<()> {
        cx.ipam()?.check().await
    }

    async fn status(&self, cx: &Context<Conf>) -> Result<()> {
        cx.ipam()?.status().await
    }
}

fn fake_ipam(log: Arc<Mutex<Vec<String>>>) -> InProcessExec {
    InProcessExec::new().with_fn("fake-ipam", move |cmd, stdin| {
        let conf: serde_json::Value = serde_json::from_slice(stdin).unwrap();
        log.lock().unwrap().push(format!("{cmd} {}", conf["name"].as_str().unwrap()));
        match cmd {
            Command::Add => {
                let mut r = CniResult::default();
                r.ips.push(IpConfig {
                    gateway: Some("10.230.0.1".parse().unwrap()),
                    ..IpConfig::new("10.230.0.7/24".parse().unwrap())
                });
                Ok(Some(r))
            }
            Command::Check => Err(Error::new(ErrorCode::Plugin(120), "lease missing")),
            _ => Ok(None),
        }
    })
}

fn ipam_conf(ipam: &str) -> serde_json::Value {
    json!({"cniVersion": "1.0.0", "name": "dnet", "type": "uses-ipam", "ipam": {"type": ipam}})
}

#[tokio::test]
async fn ipam_result_and_errors_through_in_process_fake() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let out = PluginTest::new(&UsesIpam).config(ipam_conf("fake-ipam")).exec(fake_ipam(log.clone())).run().await;
    let r = out.expect_result();
    assert_eq!(r.ips[0].address.to_string(), "10.230.0.7/24");
    let e = PluginTest::new(&UsesIpam)
        .command(Command::Check)
        .config(ipam_conf("fake-ipam"))
        .exec(fake_ipam(log.clone()))
        .run()
        .await
        .expect_error(120);
    assert_eq!(e.msg, "lease missing", "the delegate's code and message are kept");
    assert_eq!(*log.lock().unwrap(), ["ADD dnet", "CHECK dnet"]);
}

#[tokio::test]
async fn failure_after_ipam_add_rolls_back_with_del() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut conf = ipam_conf("fake-ipam");
    conf["failAfterIpam"] = json!(true);
    let e = PluginTest::new(&UsesIpam).config(conf).exec(fake_ipam(log.clone())).run().await.expect_error(999);
    assert_eq!(e.msg, "veth setup failed");
    assert_eq!(*log.lock().unwrap(), ["ADD dnet", "DEL dnet"]);
}

#[tokio::test]
async fn missing_ipam_section_and_missing_plugin() {
    let e = PluginTest::new(&UsesIpam)
        .config(json!({"cniVersion": "1.0.0", "name": "n", "type": "x"}))
        .run()
        .await
        .expect_error(7);
    assert!(e.msg.contains("no \"ipam\" section"), "{}", e.msg);
    let e = PluginTest::new(&UsesIpam).config(ipam_conf("nope")).exec(InProcessExec::new()).run().await.expect_error(7);
    assert!(e.msg.contains("delegating ADD to \"nope\""), "{}", e.msg);
    assert!(e.details.unwrap().contains("failed to find plugin \"nope\""));
}

#[tokio::test]
async fn a_real_plugin_value_served_in_process() {
    let log = Arc::new(Mutex::new(Vec::new()));
    // A plugin value served as "inner".
    let exec = fake_ipam(log.clone()).with_plugin("inner", Chained, PluginOptions::new("inner"));
    let out = PluginTest::new(&Outer).config(ipam_conf("fake-ipam")).exec(exec.clone()).run().await;
    let r = out.expect_result();
    assert_eq!(r.interfaces[0].name, "from-inner");
    assert_eq!(exec.calls(), [("inner".to_owned(), "ADD".to_owned())]);
}

/// Delegates to "inner" (served in-process).
struct Outer;
impl Plugin for Outer {
    type Config = ();
    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        cx.delegate("inner").add().await
    }
    async fn del(&self, cx: &Context<()>) -> Result<()> {
        cx.delegate("inner").del().await
    }
    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}

struct Chained;
impl Plugin for Chained {
    type Config = ();
    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        let mut r = CniResult::default();
        r.interfaces.push(cni_sdk::Interface::new("from-inner"));
        Ok(r)
    }
    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn request(dir: &Path, plugin: &str, cmd: &str, timeout: Duration) -> ExecRequest {
    ExecRequest {
        plugin_type: plugin.to_owned(),
        cni_path: vec![dir.join("missing"), dir.to_owned()],
        env: [("CNI_COMMAND".to_owned(), cmd.to_owned()), ("MARK".to_owned(), "inherited".to_owned())].into(),
        stdin: br#"{"cniVersion":"0.4.0","name":"n"}"#.to_vec(),
        timeout,
    }
}

#[tokio::test]
async fn process_exec_env_stdin_and_libcni_fallbacks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Echoes its environment and stdin: the child sees exactly the given environment.
    script(
        d,
        "echo-env",
        r#"printf '{"cmd":"%s","mark":"%s","home":"%s","stdin":%s}' "$CNI_COMMAND" "$MARK" "${HOME:-unset}" "$(cat)""#,
    );
    let out = ProcessExec::new().exec(request(d, "echo-env", "ADD", Duration::from_secs(10))).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"cmd": "ADD", "mark": "inherited", "home": "unset", "stdin": {"cniVersion": "0.4.0", "name": "n"}})
    );

    script(d, "no-version", r#"echo '{"ips":[{"version":"4","address":"10.231.0.2/24"}]}'"#);
    let out = ProcessExec::new().exec(request(d, "no-version", "ADD", Duration::from_secs(10))).await.unwrap();
    let r = cni_sdk::exec::parse_result(&cni_sdk::exec::check_output("no-version", &out).unwrap(), "0.4.0").unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.231.0.2/24", "missing cniVersion = config version");

    script(d, "silent-fail", "exit 3");
    let out = ProcessExec::new().exec(request(d, "silent-fail", "ADD", Duration::from_secs(10))).await.unwrap();
    let e = cni_sdk::exec::check_output("silent-fail", &out).unwrap_err();
    assert_eq!(e.message(), "netplugin failed with no error message: exit status 3");

    script(d, "stderr-fail", "echo 'it broke' >&2; exit 1");
    let out = ProcessExec::new().exec(request(d, "stderr-fail", "ADD", Duration::from_secs(10))).await.unwrap();
    let e = cni_sdk::exec::check_output("stderr-fail", &out).unwrap_err();
    assert_eq!(e.message(), "netplugin failed: \"it broke\": exit status 1");

    script(d, "garbage", "echo 'not json'; exit 1");
    let out = ProcessExec::new().exec(request(d, "garbage", "ADD", Duration::from_secs(10))).await.unwrap();
    let e = cni_sdk::exec::check_output("garbage", &out).unwrap_err();
    assert!(
        e.message().starts_with("netplugin failed but error parsing its diagnostic message \"not json\\n\""),
        "{}",
        e.message()
    );

    script(d, "error-obj", r#"echo '{"code":11,"msg":"busy","details":"retry"}'; exit 1"#);
    let out = ProcessExec::new().exec(request(d, "error-obj", "DEL", Duration::from_secs(10))).await.unwrap();
    let e = cni_sdk::exec::check_output("error-obj", &out).unwrap_err();
    assert_eq!((e.code(), e.message(), e.details().as_deref()), (ErrorCode::TryAgainLater, "busy", Some("retry")));
}

#[tokio::test]
async fn hanging_delegate_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    script(dir.path(), "hang", &format!("echo $$ > {}; exec sleep 30", pidfile.display()));
    let started = Instant::now();
    let e = ProcessExec::new().exec(request(dir.path(), "hang", "ADD", Duration::from_millis(500))).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TryAgainLater);
    assert!(e.message().contains("timed out"), "{}", e.message());
    assert!(started.elapsed() < Duration::from_secs(20), "did not wait for the child");
    // The child was killed (kill_on_drop), not left running.
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let mut gone = false;
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "delegate {pid} still running");
}

#[tokio::test]
async fn timeout_through_the_context_api() {
    let exec = InProcessExec::new().with_fn("slow-ipam", |_, _| {
        std::thread::sleep(Duration::from_millis(800));
        Ok(None)
    });
    let mut conf = ipam_conf("slow-ipam");
    conf["timeoutMs"] = json!(100);
    let e = PluginTest::new(&UsesIpam).config(conf).exec(exec).run().await.expect_error(11);
    assert!(e.msg.starts_with("delegating ADD to \"slow-ipam\""), "{}", e.msg);
}

#[test]
fn find_in_path_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    std::fs::create_dir(d.join("a")).unwrap();
    std::fs::create_dir(d.join("b")).unwrap();
    std::fs::create_dir(d.join("a/dironly")).unwrap();
    script(&d.join("b"), "dironly", "true");
    script(&d.join("a"), "both", "true");
    script(&d.join("b"), "both", "true");
    let paths = vec![d.join("a"), d.join("b")];
    assert_eq!(find_in_path("both", &paths).unwrap(), d.join("a/both"), "first directory wins");
    assert_eq!(find_in_path("dironly", &paths).unwrap(), d.join("b/dironly"), "directories are skipped");
    assert_eq!(find_in_path("", &paths).unwrap_err().message(), "no plugin name provided");
    assert_eq!(find_in_path("../x", &paths).unwrap_err().message(), "invalid plugin name: ../x");
    assert_eq!(find_in_path("x", &[]).unwrap_err().message(), "no paths provided");
    let e = find_in_path("nope", &paths).unwrap_err();
    assert!(e.message().starts_with("failed to find plugin \"nope\" in path ["), "{}", e.message());
}

#[tokio::test]
#[ignore = "needs Debian's Go plugins in /usr/lib/cni (.ci/run installs them)"]
async fn delegates_to_debians_go_host_local() {
    assert!(Path::new("/usr/lib/cni/host-local").is_file(), "install containernetworking-plugins");
    let data = tempfile::tempdir().unwrap();
    for version in [SpecVersion::V0_3_1, SpecVersion::V0_4_0, SpecVersion::V1_0_0] {
        let conf = json!({
            "cniVersion": version.as_str(), "name": "gonet", "type": "uses-ipam",
            "ipam": {"type": "host-local", "subnet": "10.232.0.0/24", "dataDir": data.path()}
        });
        let t = |cmd| {
            PluginTest::new(&UsesIpam)
                .command(cmd)
                .config(conf.clone())
                .env("CNI_PATH", "/usr/lib/cni")
                .exec(ProcessExec::new())
        };
        let r = t(Command::Add).run().await.expect_result();
        let addr = r.ips[0].address;
        assert!(addr.to_string().starts_with("10.232.0."), "{addr}");
        let lease = data.path().join("gonet").join(addr.addr().to_string());
        assert!(lease.is_file(), "Go host-local wrote its lease file");
        if version.has_check() {
            t(Command::Check).run().await.expect_success();
        }
        t(Command::Del).run().await.expect_success();
        assert!(!lease.exists(), "DEL released the lease");

        // Rollback: our ADD fails after host-local allocated; the lease must be released.
        let mut failing = conf.clone();
        failing["failAfterIpam"] = json!(true);
        let out = PluginTest::new(&UsesIpam)
            .config(failing)
            .env("CNI_PATH", "/usr/lib/cni")
            .exec(ProcessExec::new())
            .run()
            .await;
        out.expect_error(999);
        let leases: Vec<_> = std::fs::read_dir(data.path().join("gonet"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
            .collect();
        assert!(leases.is_empty(), "rollback DEL released the lease: {leases:?}");
    }
    // Go's error objects come through with their code.
    let bad = json!({"cniVersion": "1.0.0", "name": "gonet", "type": "uses-ipam", "ipam": {"type": "host-local"}});
    let out =
        PluginTest::new(&UsesIpam).config(bad).env("CNI_PATH", "/usr/lib/cni").exec(ProcessExec::new()).run().await;
    assert_eq!(out.exit_code, 1);
    let e = out.error().unwrap();
    assert!(!e.msg.is_empty());
}
