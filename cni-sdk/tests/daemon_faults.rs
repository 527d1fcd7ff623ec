//! The daemon against clients that misbehave at the socket: silent, slow, disconnecting, or
//! announcing more than they send. None of them may hold a task, memory or the shutdown.

use std::path::Path;
use std::time::Duration;

use cni_sdk::daemon::{self, Daemon, HEADER_LEN, WireRequest};
use cni_sdk::{CniResult, Context, IpConfig, Plugin, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

#[derive(Debug, Default)]
struct Fixed;

impl Plugin for Fixed {
    type Config = ();
    async fn add(&self, _: &Context<()>) -> Result<CniResult> {
        let mut r = CniResult::default();
        r.ips.push(IpConfig::new("10.224.77.2/24".parse().unwrap()));
        Ok(r)
    }
    async fn del(&self, _: &Context<()>) -> Result<()> {
        Ok(())
    }
    async fn check(&self, _: &Context<()>) -> Result<()> {
        Ok(())
    }
}

fn add_request() -> WireRequest {
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/nonexistent"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    WireRequest::new(env, br#"{"cniVersion":"1.0.0","name":"n","type":"fixed"}"#)
}

async fn served_by_daemon(socket: &Path) -> bool {
    match daemon::forward(socket, &add_request()).await {
        Ok(resp) => resp.exit_code == 0,
        Err(_) => false,
    }
}

/// Serves `Fixed` with `io_timeout` while `test` runs, then stops; fails when the daemon does not
/// stop within 30 s (a hang detector, not a timing measurement).
async fn with_daemon<F, Fut>(io_timeout: Duration, test: F)
where
    F: FnOnce(std::path::PathBuf, oneshot::Sender<()>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("f.sock");
    let bound = Daemon::builder(Fixed).socket(&socket).io_timeout(io_timeout).build().unwrap().bind().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = async {
        tokio::time::timeout(
            Duration::from_secs(30),
            bound.serve(async move {
                let _ = stopped.await;
            }),
        )
        .await
    };
    let (served, ()) = tokio::join!(serve, test(socket.clone(), stop));
    served.expect("the daemon stopped").unwrap();
    assert!(!socket.exists(), "socket removed");
}

#[tokio::test]
async fn silent_clients_do_not_hold_the_shutdown() {
    // An I/O timeout of an hour: only the shutdown can let go of the silent clients.
    with_daemon(Duration::from_secs(3600), |socket, stop| async move {
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(UnixStream::connect(&socket).await.unwrap());
        }
        // Half a header, then nothing.
        silent[0].write_all(b"CNID\x01").await.unwrap();
        assert!(served_by_daemon(&socket).await, "others are served meanwhile");
        let _ = stop.send(());
        // The daemon closes them without an answer.
        for mut s in silent {
            let mut buf = Vec::new();
            assert_eq!(s.read_to_end(&mut buf).await.unwrap(), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_too_slow_to_send_is_dropped_and_others_are_served() {
    with_daemon(Duration::from_millis(200), |socket, stop| async move {
        let mut slow = UnixStream::connect(&socket).await.unwrap();
        slow.write_all(b"CNID\x01\0\0\0\0\0\0\x10{").await.unwrap();
        let mut buf = Vec::new();
        // Dropped after the I/O timeout, unanswered.
        assert_eq!(slow.read_to_end(&mut buf).await.unwrap(), 0);
        assert!(served_by_daemon(&socket).await);
        let _ = stop.send(());
    })
    .await;
}

#[tokio::test]
async fn an_announced_frame_that_never_comes_is_truncated_not_allocated() {
    with_daemon(Duration::from_secs(5), |socket, stop| async move {
        // Announce 4 MiB, send 10 bytes, close the sending side.
        let mut s = UnixStream::connect(&socket).await.unwrap();
        let mut frame = b"CNID\x01\0\0\0".to_vec();
        frame.extend_from_slice(&((4u32 << 20) - 1).to_be_bytes());
        assert_eq!(frame.len(), HEADER_LEN);
        frame.extend_from_slice(b"{\"env\":{},");
        s.write_all(&frame).await.unwrap();
        s.shutdown().await.unwrap();
        let answer = daemon::read_frame(&mut s, 1 << 20).await.unwrap();
        let resp: daemon::WireResponse = serde_json::from_slice(&answer).unwrap();
        let err: cni_sdk::CniError = serde_json::from_slice(&resp.stdout_bytes().unwrap()).unwrap();
        assert_eq!(err.code.as_u32(), 6);
        assert!(err.details.unwrap().contains("connection closed before a complete frame"));
        // Many clients disconnecting mid-request, in every phase.
        for cut in [0, 3, HEADER_LEN, HEADER_LEN + 5] {
            for _ in 0..25 {
                let mut s = UnixStream::connect(&socket).await.unwrap();
                let req = serde_json::to_vec(&add_request()).unwrap();
                let mut bytes = b"CNID\x01\0\0\0".to_vec();
                bytes.extend_from_slice(&u32::try_from(req.len()).unwrap().to_be_bytes());
                bytes.extend_from_slice(&req);
                s.write_all(&bytes[..cut]).await.unwrap();
                drop(s);
            }
        }
        assert!(served_by_daemon(&socket).await, "still serving");
        let _ = stop.send(());
    })
    .await;
}

#[test]
fn builder_rejects_a_zero_io_timeout() {
    let e = Daemon::builder(Fixed).socket("/x").io_timeout(Duration::ZERO).build().unwrap_err();
    assert!(e.message().contains("I/O timeout"), "{}", e.message());
}

fn shim_env(socket: &Path) -> std::collections::BTreeMap<String, String> {
    [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/nonexistent"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        (daemon::SOCKET_ENV, socket.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn shim(socket: &Path, stdin: &[u8]) -> (i32, serde_json::Value) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = stdin;
    let io =
        cni_sdk::dispatch::Invocation { env: shim_env(socket), stdin: &mut input, stdout: &mut out, stderr: &mut err };
    let code = daemon::shim_run(socket, &cni_sdk::PluginOptions::new("fixed"), io).await;
    (code, serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null))
}

/// The shim caps stdin as the dispatcher does (code 5, same text) instead of forwarding a cut
/// configuration, and a configuration of almost the whole cap fits in one frame.
#[tokio::test]
async fn the_shim_caps_stdin_like_the_dispatcher_and_big_configurations_fit() {
    let cap = cni_sdk::DEFAULT_MAX_STDIN;
    let mut big = br#"{"cniVersion":"1.0.0","name":"n","type":"fixed","pad":""#.to_vec();
    big.resize(cap + 1, b'x');
    let (code, doc) = shim(Path::new("/nonexistent/d.sock"), &big).await;
    assert_eq!((code, doc["code"].as_u64()), (1, Some(5)), "{doc}");
    assert_eq!(doc["msg"], format!("network configuration on stdin is larger than the plugin's limit of {cap} bytes"));

    with_daemon(Duration::from_secs(10), |socket, stop| async move {
        let mut conf = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "fixed"});
        let base = serde_json::to_vec(&conf).unwrap().len();
        conf["pad"] = serde_json::json!("x".repeat(cap - base - 100));
        let bytes = serde_json::to_vec(&conf).unwrap();
        assert!(bytes.len() > cap - 100 && bytes.len() <= cap);
        let (code, doc) = shim(&socket, &bytes).await;
        assert_eq!(code, 0, "{doc}");
        assert_eq!(doc["ips"][0]["address"], "10.224.77.2/24");
        let _ = stop.send(());
    })
    .await;
}
