//! Delegates that hang, die or print garbage, as real processes: the delegating plugin prints
//! exactly one error object, the delegate process is gone afterwards, a delegate whose state is
//! unknown is rolled back with DEL, and the next call after the fault clears succeeds.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni_sdk::exec::ProcessExec;
use cni_sdk::testing::PluginTest;
use cni_sdk::{CniResult, Command, Context, ErrorCode, Plugin, Result};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_millis(500);

/// Delegates everything to its IPAM plugin with a short timeout.
struct Main;

impl Plugin for Main {
    type Config = ();
    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        cx.ipam()?.timeout(TIMEOUT).add_with_rollback(|r| async move { Ok(r) }).await
    }
    async fn del(&self, cx: &Context<()>) -> Result<()> {
        cx.ipam()?.timeout(TIMEOUT).del().await
    }
    async fn check(&self, cx: &Context<()>) -> Result<()> {
        cx.ipam()?.timeout(TIMEOUT).check().await
    }
}

/// An IPAM plugin whose behaviour the test switches by writing `mode` next to it; it logs
/// `<verb> <mode>` per call.
const SCRIPT: &str = r#"#!/bin/sh
dir=$(dirname "$0")
mode=$(cat "$dir/mode")
echo "$CNI_COMMAND $mode" >> "$dir/calls"
cat > /dev/null
case "$CNI_COMMAND/$mode" in
  ADD/hang|DEL/hang-del) echo $$ > "$dir/hung.pid"; exec sleep 60 ;;
  ADD/die) kill -KILL $$ ;;
  ADD/partial) printf '{"cniVersion":"1.0.0","ips":[{"addr'; kill -KILL $$ ;;
  ADD/garbage) printf '{"cniVersion":"1.0.0","ips":[{"addr'; exit 0 ;;
  ADD/crash) echo "panic: runtime error" >&2; exit 2 ;;
  ADD/error) echo '{"cniVersion":"1.0.0","code":11,"msg":"pool exhausted"}'; exit 1 ;;
  ADD/*) echo '{"cniVersion":"1.0.0","ips":[{"address":"10.224.44.2/24"}]}' ;;
esac
exit 0
"#;

struct Rig {
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("flaky-ipam");
        std::fs::write(&bin, SCRIPT).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rig = Self { dir };
        rig.mode("ok");
        rig
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn mode(&self, mode: &str) {
        std::fs::write(self.path("mode"), mode).unwrap();
        let _ = std::fs::remove_file(self.path("calls"));
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    fn run(&self, cmd: Command) -> PluginTest<'static, Main> {
        PluginTest::new(&Main)
            .command(cmd)
            .exec(ProcessExec::new())
            .env("CNI_PATH", self.dir.path().to_str().unwrap())
            .config(json!({"cniVersion": "1.0.0", "name": "dnet", "type": "main", "ipam": {"type": "flaky-ipam"}}))
    }
}

/// Waits (up to 5 s) until process `pid` is gone or a zombie.
fn gone(pid: &str) -> bool {
    let stat = Path::new("/proc").join(pid).join("stat");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        match std::fs::read_to_string(&stat) {
            Err(_) => return true,
            Ok(s) if s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[tokio::test]
async fn a_hanging_delegate_is_killed_rolled_back_and_the_next_add_works() {
    let rig = Rig::new();
    rig.mode("hang");
    let e = rig.run(Command::Add).run().await.expect_error(ErrorCode::TryAgainLater);
    assert_eq!(e.msg, "delegating ADD to \"flaky-ipam\"");
    let details = e.details.unwrap_or_default();
    assert!(details.contains("timed out after 500ms and was killed"), "{details}");
    let pid = std::fs::read_to_string(rig.path("hung.pid")).unwrap();
    assert!(gone(pid.trim()), "the hung delegate {pid} was killed");
    assert_eq!(rig.calls(), ["ADD hang", "DEL hang"], "its unknown state was rolled back");
    rig.mode("ok");
    let r = rig.run(Command::Add).run().await.expect_result();
    assert_eq!(r.ips[0].address.to_string(), "10.224.44.2/24");
}

#[tokio::test]
async fn a_delegate_dying_in_every_way_gives_one_error_and_a_rollback() {
    let rig = Rig::new();
    let cases = [
        ("die", ErrorCode::Internal, "netplugin failed with no error message: signal: killed"),
        ("partial", ErrorCode::Internal, "netplugin failed but error parsing its diagnostic message"),
        ("crash", ErrorCode::Internal, "netplugin failed: \"panic: runtime error\": exit status 2"),
        ("garbage", ErrorCode::DecodingFailure, "failed to parse the delegated plugin's result"),
    ];
    for (mode, code, msg) in cases {
        rig.mode(mode);
        let out = rig.run(Command::Add).run().await;
        let e = out.expect_error(code);
        assert!(e.msg.contains(msg), "{mode}: {}", e.msg);
        assert_eq!(rig.calls(), [format!("ADD {mode}"), format!("DEL {mode}")], "{mode}: rolled back");
    }
    // An error object: the delegate undid its own work; no DEL.
    rig.mode("error");
    let e = rig.run(Command::Add).run().await.expect_error(ErrorCode::TryAgainLater);
    assert_eq!(e.msg, "pool exhausted");
    assert_eq!(rig.calls(), ["ADD error"]);
    rig.mode("ok");
    rig.run(Command::Add).run().await.expect_result();
}

#[tokio::test]
async fn a_hanging_del_is_code_11_and_a_retried_del_works() {
    let rig = Rig::new();
    rig.mode("hang-del");
    let e = rig.run(Command::Del).run().await.expect_error(ErrorCode::TryAgainLater);
    assert_eq!(e.msg, "delegating DEL to \"flaky-ipam\"");
    assert!(e.details.unwrap_or_default().contains("timed out"));
    let pid = std::fs::read_to_string(rig.path("hung.pid")).unwrap();
    assert!(gone(pid.trim()));
    rig.mode("ok");
    rig.run(Command::Del).run().await.expect_success();
}

#[tokio::test]
async fn a_delegate_missing_from_cni_path_never_ran_so_nothing_is_rolled_back() {
    let rig = Rig::new();
    std::fs::remove_file(rig.path("flaky-ipam")).unwrap();
    let out = rig.run(Command::Add).run().await;
    let e = out.expect_error(ErrorCode::InvalidNetworkConfig);
    assert!(e.msg.contains("delegating ADD to \"flaky-ipam\""), "{}", e.msg);
    assert!(rig.calls().is_empty());
}
