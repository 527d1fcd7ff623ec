//! Daemon-backed plugins: the shim and the daemon in-process, over a real unix socket.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use cni_sdk::daemon::{self, Daemon, WireResponse};
use cni_sdk::dispatch::Invocation;
use cni_sdk::{CniError, CniResult, Context, ErrorCode, IpConfig, Plugin, PluginOptions, Result};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Notify, oneshot};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    /// Hold the call until the test opens the gate.
    #[serde(default)]
    gated: bool,
}

/// Logs the start and end of every call; calls with `gated` wait for the test to open the
/// gate. The test shares the value (same thread), so it orders requests by these events rather
/// than by sleeping.
#[derive(Clone, Default)]
struct Slow {
    log: Rc<RefCell<Vec<String>>>,
    changed: Rc<Notify>,
    gate: Rc<Notify>,
}

impl Slow {
    async fn work(&self, cx: &Context<Conf>) {
        self.record(format!("start {} {}", cx.command(), cx.container_id()));
        if cx.plugin_config().gated {
            self.gate.notified().await;
        }
        self.record(format!("end {} {}", cx.command(), cx.container_id()));
    }

    fn record(&self, event: String) {
        self.log.borrow_mut().push(event);
        self.changed.notify_waiters();
    }

    /// Waits until `event` has been logged.
    async fn seen(&self, event: &str) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.log.borrow().iter().any(|e| e == event) {
                return;
            }
            changed.await;
        }
    }

    /// Lets one gated call (now or the next one) finish.
    fn open_gate(&self) {
        self.gate.notify_one();
    }
}

impl Plugin for Slow {
    type Config = Conf;
    async fn add(&self, cx: &Context<Conf>) -> Result<CniResult> {
        self.work(cx).await;
        let mut r = CniResult::default();
        r.ips.push(IpConfig::new("10.235.0.3/24".parse().unwrap()));
        Ok(r)
    }
    async fn del(&self, cx: &Context<Conf>) -> Result<()> {
        self.work(cx).await;
        Ok(())
    }
    async fn check(&self, cx: &Context<Conf>) -> Result<()> {
        self.work(cx).await;
        Ok(())
    }
}

struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Out {
    fn doc(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.stdout)))
    }
}

async fn shim(socket: &Path, cmd: &str, id: &str, netns: &str, conf: Value) -> Out {
    let env: BTreeMap<String, String> = [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let stdin = serde_json::to_vec(&conf).unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut input: &[u8] = &stdin;
    let io = Invocation { env, stdin: &mut input, stdout: &mut stdout, stderr: &mut stderr };
    let code = daemon::shim_run(socket, &PluginOptions::new("slow"), io).await;
    Out { code, stdout, stderr }
}

fn conf(gated: bool) -> Value {
    json!({"cniVersion": "1.0.0", "name": "dnet", "type": "slow", "gated": gated})
}

/// Runs `test` against a daemon on a fresh socket; shuts the daemon down afterwards.
async fn with_daemon<F, Fut>(plugin: Slow, timeout: Duration, test: F)
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    // Bound before serving: the socket exists when `bind` returns.
    let daemon = Daemon::builder(plugin).socket(&socket).request_timeout(timeout).build().unwrap().bind().unwrap();
    assert!(socket.exists());
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = daemon.serve(async move {
        let _ = stopped.await;
    });
    let run = async {
        test(socket.clone()).await;
        let _ = stop.send(());
    };
    let (served, ()) = tokio::join!(serve, run);
    served.unwrap();
    assert!(!socket.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn shim_relays_results_and_the_socket_is_root_only() {
    let plugin = Slow::default();
    with_daemon(plugin, Duration::from_secs(10), |socket| async move {
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let out = shim(&socket, "ADD", "c1", "/nonexistent", conf(false)).await;
        assert_eq!(out.code, 0, "{}", String::from_utf8_lossy(&out.stdout));
        let doc = out.doc();
        assert_eq!(doc["cniVersion"], "1.0.0");
        assert_eq!(doc["ips"][0]["address"], "10.235.0.3/24");
        // Errors come back unchanged: an unsupported version is the daemon's code 1.
        let mut bad = conf(false);
        bad["cniVersion"] = json!("9.9.9");
        let out = shim(&socket, "ADD", "c1", "/nonexistent", bad).await;
        assert_eq!((out.code, out.doc()["code"].as_u64()), (1, Some(1)));
    })
    .await;
}

#[tokio::test]
async fn one_container_at_a_time_but_containers_in_parallel() {
    let plugin = Slow::default();
    let events = plugin.clone();
    let inside = plugin.clone();
    with_daemon(plugin, Duration::from_secs(10), |socket| async move {
        let events = inside;
        let (a, b, c) = tokio::join!(
            // ADD of `same` starts and holds until the gate opens.
            shim(&socket, "ADD", "same", "/nonexistent", conf(true)),
            async {
                events.seen("start ADD same").await;
                // Sent while ADD of `same` is in progress: must wait for it.
                shim(&socket, "DEL", "same", "/nonexistent", conf(false)).await
            },
            async {
                events.seen("start ADD same").await;
                // Another container: not held up by `same`.
                let out = shim(&socket, "ADD", "other", "/nonexistent", conf(false)).await;
                events.open_gate();
                out
            },
        );
        assert!(a.code == 0 && b.code == 0 && c.code == 0);
    })
    .await;
    let log = events.log.borrow().clone();
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap_or_else(|| panic!("{s} missing in {log:?}"));
    assert!(pos("end ADD same") < pos("start DEL same"), "DEL waited for ADD of the same container: {log:?}");
    assert!(pos("end ADD other") < pos("end ADD same"), "another container was not held up: {log:?}");
}

#[tokio::test]
async fn request_timeout_is_code_11() {
    // The gate never opens: only the daemon's timeout ends the request.
    with_daemon(Slow::default(), Duration::from_millis(100), |socket| async move {
        let out = shim(&socket, "ADD", "c1", "/nonexistent", conf(true)).await;
        assert_eq!(out.code, 1);
        assert_eq!(out.doc()["code"], 11);
    })
    .await;
}

async fn raw_exchange(socket: &Path, bytes: &[u8]) -> WireResponse {
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    let payload = daemon::read_frame(&mut s, 1 << 20).await.unwrap();
    serde_json::from_slice(&payload).unwrap()
}

fn error_of(resp: &WireResponse) -> CniError {
    use base64::Engine as _;
    let out = base64::engine::general_purpose::STANDARD.decode(&resp.stdout).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[tokio::test]
async fn garbage_and_oversize_frames_get_clear_errors() {
    with_daemon(Slow::default(), Duration::from_secs(5), |socket| async move {
        let resp = raw_exchange(&socket, b"GET / HTTP/1.1\r\n\r\n").await;
        let e = error_of(&resp);
        assert_eq!((resp.exit_code, e.code), (1, ErrorCode::DecodingFailure));
        assert!(e.details.unwrap().contains("bad frame magic"));

        let mut huge = b"CNID\x01\0\0\0".to_vec();
        huge.extend_from_slice(&(512u32 << 20).to_be_bytes());
        let e = error_of(&raw_exchange(&socket, &huge).await);
        assert!(e.details.unwrap().contains("exceeds the limit"), "oversize frame");

        let mut v2 = b"CNID\x02\0\0\0".to_vec();
        v2.extend_from_slice(&2u32.to_be_bytes());
        v2.extend_from_slice(b"{}");
        let e = error_of(&raw_exchange(&socket, &v2).await);
        assert!(e.details.unwrap().contains("unsupported wire version 2"));

        let mut junk = b"CNID\x01\0\0\0".to_vec();
        junk.extend_from_slice(&5u32.to_be_bytes());
        junk.extend_from_slice(b"[1,2]");
        let e = error_of(&raw_exchange(&socket, &junk).await);
        assert!(e.details.unwrap().contains("bad frame payload"));

        let e = error_of(&raw_exchange(&socket, b"CNI").await);
        assert!(e.details.unwrap().contains("connection closed"));

        // The daemon still serves real requests afterwards.
        assert_eq!(shim(&socket, "ADD", "c9", "/nonexistent", conf(false)).await.code, 0);
    })
    .await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("g.sock");
    let plugin = Slow::default();
    let events = plugin.clone();
    let daemon = Daemon::builder(plugin).socket(&socket).build().unwrap().bind().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = daemon.serve(async move {
        let _ = stopped.await;
    });
    let client = async {
        let pending = shim(&socket, "ADD", "c1", "/nonexistent", conf(true));
        let trigger = async {
            // Shut down while the ADD is in flight, then let it finish.
            events.seen("start ADD c1").await;
            let _ = stop.send(());
            events.open_gate();
        };
        let (out, ()) = tokio::join!(pending, trigger);
        out
    };
    let (served, out) = tokio::join!(serve, client);
    served.unwrap();
    assert_eq!(out.code, 0, "the in-flight ADD completed");
    assert!(!socket.exists());
}

#[tokio::test]
async fn shim_without_daemon() {
    let socket = Path::new("/nonexistent/daemon.sock");
    let out = shim(socket, "ADD", "c1", "/nonexistent", conf(false)).await;
    assert_eq!((out.code, out.doc()["code"].as_u64()), (1, Some(11)));
    assert_eq!(out.doc()["cniVersion"], "1.0.0");
    let out = shim(socket, "CHECK", "c1", "/nonexistent", conf(false)).await;
    assert_eq!(out.doc()["code"], 11);
    let mut status_conf = conf(false);
    status_conf["cniVersion"] = json!("1.1.0");
    let out = shim(socket, "STATUS", "", "", status_conf).await;
    assert_eq!((out.code, out.doc()["code"].as_u64()), (1, Some(50)));
    // DEL: fine when the namespace is gone, code 11 when it still exists.
    let out = shim(socket, "DEL", "c1", "/nonexistent", conf(false)).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("namespace is gone"));
    let out = shim(socket, "DEL", "c1", "/proc/self/ns/net", conf(false)).await;
    assert_eq!((out.code, out.doc()["code"].as_u64()), (1, Some(11)));
    // VERSION needs no daemon.
    let out = shim(socket, "VERSION", "", "", json!({"cniVersion": "0.4.0"})).await;
    assert_eq!((out.code, out.doc()["cniVersion"].as_str()), (0, Some("0.4.0")));
}

#[test]
fn builder_validates() {
    assert!(Daemon::builder(Slow::default()).build().is_err(), "socket required");
    let e = Daemon::builder(Slow::default()).socket("/x").request_timeout(Duration::ZERO).build().unwrap_err();
    assert!(e.message().contains("timeout"));
}

#[tokio::test]
async fn forward_from_a_plugin_method() {
    with_daemon(Slow::default(), Duration::from_secs(5), |socket| async move {
        let env: BTreeMap<String, String> = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/nonexistent"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let stdin = serde_json::to_vec(&conf(false)).unwrap();
        let resp = daemon::forward(&socket, &daemon::WireRequest::new(env.clone(), &stdin)).await.unwrap();
        let result = resp.outcome("1.0.0").unwrap().expect("ADD prints a result");
        assert_eq!(result.ips[0].address.to_string(), "10.235.0.3/24");

        // A failure comes back as the daemon's error object, code and message kept.
        let mut bad = conf(false);
        bad["cniVersion"] = json!("9.9.9");
        let stdin = serde_json::to_vec(&bad).unwrap();
        let resp = daemon::forward(&socket, &daemon::WireRequest::new(env.clone(), &stdin)).await.unwrap();
        let err = resp.outcome("1.0.0").unwrap_err();
        assert_eq!(err.code(), ErrorCode::IncompatibleCniVersion);

        // DEL succeeds silently.
        let mut del = env;
        del.insert("CNI_COMMAND".into(), "DEL".into());
        let stdin = serde_json::to_vec(&conf(false)).unwrap();
        let resp = daemon::forward(&socket, &daemon::WireRequest::new(del, &stdin)).await.unwrap();
        assert!(resp.outcome("1.0.0").unwrap().is_none());

        // A second daemon does not take over a socket that is in use.
        let second = Daemon::builder(Slow::default()).socket(&socket).build().unwrap();
        let err = second.serve(async {}).await.unwrap_err();
        assert!(err.message().contains("address already in use"), "{}", err.message());
        assert_eq!(shim(&socket, "ADD", "c2", "/nonexistent", conf(false)).await.code, 0, "the first one still serves");
    })
    .await;
    let missing = Path::new("/nonexistent/d.sock");
    let req = daemon::WireRequest::new(BTreeMap::new(), b"{}");
    assert!(matches!(daemon::forward(missing, &req).await, Err(daemon::ForwardError::Connect(_))));
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "a socket file nobody listens on");
    with_daemon_at(&socket).await;
}

async fn with_daemon_at(socket: &Path) {
    let daemon = Daemon::builder(Slow::default()).socket(socket).build().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = daemon.serve(async move {
        let _ = stopped.await;
    });
    let run = async {
        let mut out = None;
        for _ in 0..100 {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                out = Some(shim(socket, "ADD", "c1", "/nonexistent", conf(false)).await);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(());
        out
    };
    let (served, out) = tokio::join!(serve, run);
    served.unwrap();
    assert_eq!(out.expect("the daemon came up").code, 0);
}
