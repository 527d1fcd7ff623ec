//! How the runtime runs plugins: stderr routed per plugin and verb (pass-through, lines,
//! tracing), real processes killed at the call's deadline or on cancellation, and in-process
//! plugin values stopped when their call is given up on. No root needed.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_sdk::exec::{Exec, ExecRequest, PluginStderr};
use cni_sdk::runtime::{CancelToken, CniRuntime, NetworkList, RuntimeConf};
use cni_sdk::testing::InProcessExec;
use cni_sdk::{CniResult, Context, ErrorKind, Plugin, PluginOptions, Result};
use serde_json::json;

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn one(plugin: &str) -> NetworkList {
    NetworkList::from_bytes(
        json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": plugin}]}).to_string().as_bytes(),
    )
    .unwrap()
}

/// A plugin that talks on stderr and then succeeds (ADD prints an empty result).
const CHATTY: &str = r#"printf 'first line\nsecond %s' "$CNI_COMMAND" >&2
cat >/dev/null
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0"}'
exit 0"#;

#[tokio::test]
async fn stderr_lines_carry_plugin_verb_and_attachment() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "chatty", CHATTY);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let cni = CniRuntime::builder()
        .plugin_dir(dir.path())
        .cache_dir(dir.path().join("cache"))
        .plugin_stderr(PluginStderr::lines(move |l| {
            sink.lock()
                .unwrap()
                .push(format!("{} {} {} {}: {}", l.plugin_type, l.verb, l.container_id, l.ifname, l.line));
        }))
        .build()
        .unwrap();
    let rt = RuntimeConf::new("c1", "/nonexistent", "eth3");
    cni.add(&one("chatty"), &rt).await.unwrap();
    cni.del(&one("chatty"), &rt).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "chatty ADD c1 eth3: first line",
            "chatty ADD c1 eth3: second ADD",
            "chatty DEL c1 eth3: first line",
            "chatty DEL c1 eth3: second DEL"
        ]
    );
}

/// Collects what a `tracing` subscriber prints.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn stderr_into_tracing_inside_the_plugin_span() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "chatty", CHATTY);
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cni = CniRuntime::builder()
                .plugin_dir(dir.path())
                .cache_dir(dir.path().join("cache"))
                .plugin_stderr(PluginStderr::tracing())
                .build()
                .unwrap();
            cni.add(&one("chatty"), &RuntimeConf::new("c9", "/nonexistent", "eth0")).await.unwrap();
        });
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("plugin stderr")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in &lines {
        for part in [
            "cni_plugin{network=\"n\" plugin=\"chatty\" verb=\"ADD\" container_id=\"c9\" ifname=\"eth0\"}",
            "plugin=\"chatty\"",
        ] {
            assert!(l.contains(part), "{part} in {l}");
        }
    }
    assert!(lines[0].contains("line=\"first line\""), "{}", lines[0]);
    assert!(lines[1].contains("line=\"second ADD\""), "{}", lines[1]);
}

#[tokio::test]
async fn processes_are_killed_at_the_deadline_and_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    script(dir.path(), "hang", &format!("echo $$ > {}\nexec sleep 30", pidfile.display()));
    let cni = CniRuntime::builder().plugin_dir(dir.path()).cache_dir(dir.path().join("cache")).build().unwrap();
    let rt = RuntimeConf::new("c1", "/nonexistent", "eth0");
    let gone = |pidfile: &Path| {
        let pid = std::fs::read_to_string(pidfile).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        for _ in 0..100 {
            let s = std::fs::read_to_string(&stat).unwrap_or_default();
            if s.is_empty() || s.contains(") Z ") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };

    let started = Instant::now();
    let e = cni.with_deadline(Instant::now() + Duration::from_millis(300)).add(&one("hang"), &rt).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!((e.kind(), e.plugin_type()), (ErrorKind::Timeout, Some("hang")));
    assert!(e.msg().contains("deadline"), "{e}");
    assert!(gone(&pidfile), "the plugin process was killed");

    std::fs::remove_file(&pidfile).unwrap();
    let token = CancelToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        t.cancel();
    });
    let e = cni.with_cancel(token).add(&one("hang"), &rt).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert!(gone(&pidfile), "the plugin process was killed");
}

/// A plugin whose ADD never finishes; it records that its future was dropped.
struct Stuck(Arc<AtomicBool>);

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Plugin for Stuck {
    type Config = ();
    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        let _flag = SetOnDrop(self.0.clone());
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(CniResult::default())
    }
    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn in_process_plugin_values_are_stopped_when_given_up_on() {
    let dropped = Arc::new(AtomicBool::new(false));
    let exec = InProcessExec::new().with_plugin("stuck", Stuck(dropped.clone()), PluginOptions::default());
    let request = ExecRequest {
        plugin_type: "stuck".into(),
        cni_path: Vec::new(),
        env: [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/nonexistent"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        stdin: br#"{"cniVersion":"1.0.0","name":"n","type":"stuck"}"#.to_vec(),
        timeout: Duration::from_millis(200),
    };
    let started = Instant::now();
    let e = exec.exec(request).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(10));
    for _ in 0..200 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dropped.load(Ordering::SeqCst), "the plugin's ADD future was dropped");
    assert!(exec.requests()[0].is_cancelled());
}
