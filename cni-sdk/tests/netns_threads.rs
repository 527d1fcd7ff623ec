//! Namespace work must never leak into the caller's threads.
//!
//! The root-only part (`#[ignore = "needs root"]`) hammers a throwaway namespace with `run`,
//! `run_async` and `Net::open` from a multi-thread runtime, then checks that every runtime
//! worker, blocking-pool thread and the test thread are still in the original namespace. The
//! rest checks error kinds and needs no privileges (the panic test needs `setns`, so without
//! `CAP_SYS_ADMIN` it only checks that the failure is reported as "permission denied").

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cni_sdk::net::{Net, NetErrorKind};
use cni_sdk::netns::{NamedNetns, NetNs, NetnsErrorKind, TempNetns};

fn thread_netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").expect("stat /proc/thread-self/ns/net").ino()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn temp_ns() -> TempNetns {
    let name = format!("cnitest-{}-t{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    TempNetns::create(&name).expect("create test namespace (needs root)")
}

#[test]
fn open_missing_path_is_not_found() {
    let err = NetNs::open("/nonexistent/cnitest/netns").unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.kind(), NetnsErrorKind::NotFound);
    assert!(NetNs::open_optional("/nonexistent/cnitest/netns").unwrap().is_none());
    assert!(NetNs::open_optional("").unwrap().is_none());
    assert_eq!(NetNs::open("").unwrap_err().kind(), NetnsErrorKind::NotFound);
}

#[test]
fn open_regular_file_is_not_a_netns() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = NetNs::open(file.path()).unwrap_err();
    assert_eq!(err.kind(), NetnsErrorKind::NotANetns, "{err}");
    assert!(!err.is_not_found());
    // open_optional only hides "missing", not "wrong kind of file".
    assert_eq!(NetNs::open_optional(file.path()).unwrap_err().kind(), NetnsErrorKind::NotANetns);
}

#[test]
fn open_other_namespace_type_is_not_a_netns() {
    let err = NetNs::open("/proc/thread-self/ns/uts").unwrap_err();
    assert_eq!(err.kind(), NetnsErrorKind::NotANetns, "{err}");
}

#[test]
fn current_namespace_opens_and_compares() {
    let a = NetNs::current().unwrap();
    let b = NetNs::open("/proc/thread-self/ns/net").unwrap();
    assert!(a.is_same(&b).unwrap());
    assert_eq!(a.inode().unwrap(), thread_netns_inode());
}

#[test]
fn invalid_names_are_rejected_before_anything_happens() {
    for name in ["", ".", "..", "a/b", "../x"] {
        let err = NamedNetns::create(name).unwrap_err();
        assert_eq!(err.kind(), NetnsErrorKind::InvalidName, "{name:?}: {err}");
        assert_eq!(TempNetns::create(name).unwrap_err().kind(), NetnsErrorKind::InvalidName);
    }
}

#[tokio::test]
async fn net_open_path_missing_is_not_found() {
    let err = Net::open_path("/nonexistent/cnitest/netns").await.unwrap_err();
    assert_eq!(err.kind(), NetErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn panicking_closure_is_an_error() {
    let ns = NetNs::current().unwrap();
    match ns.run(|| -> u32 { panic!("boom in run") }) {
        Err(e) if e.kind() == NetnsErrorKind::PermissionDenied => {
            eprintln!("no CAP_SYS_ADMIN, setns refused: {e}");
            return;
        }
        Err(e) => {
            assert_eq!(e.kind(), NetnsErrorKind::Panicked);
            assert!(e.to_string().contains("boom in run"), "{e}");
        }
        Ok(_) => panic!("a panicking closure returned Ok"),
    }
    let e = ns.run_async(|| async { panic!("boom in run_async") }).await.unwrap_err();
    assert_eq!(e.kind(), NetnsErrorKind::Panicked);
    assert!(e.to_string().contains("boom in run_async"), "{e}");
    // Formatted panic messages (String payloads) are kept too.
    let n = 7;
    let e = ns.run(move || -> () { panic!("boom {n}") }).unwrap_err();
    assert!(e.to_string().contains("boom 7"), "{e}");
    // The thread is still fine afterwards.
    assert_eq!(ns.run(|| 41 + 1).unwrap(), 42);
}

#[test]
#[ignore = "needs root"]
fn named_namespace_lifecycle() {
    let name = format!("cnitest-{}-named", std::process::id());
    let named = NamedNetns::create(&name).unwrap();
    let path = named.path().to_path_buf();
    assert_eq!(named.name(), name);
    assert!(path.starts_with("/run/netns"));
    let ns = named.netns().unwrap();
    assert!(!ns.is_same(&NetNs::current().unwrap()).unwrap());
    assert_eq!(NamedNetns::create(&name).unwrap_err().kind(), NetnsErrorKind::AlreadyExists);
    named.remove().unwrap();
    assert!(!path.exists());
    assert!(NetNs::open_optional(&path).unwrap().is_none());

    let temp = temp_ns();
    let path = temp.path().to_path_buf();
    assert!(NetNs::open(&path).is_ok());
    drop(temp);
    assert!(!path.exists(), "TempNetns removes itself on drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs root"]
async fn namespace_work_never_leaks_into_runtime_threads() {
    let started = Instant::now();
    let original = thread_netns_inode();
    let temp = temp_ns();
    let ns = temp.netns().unwrap();
    let target = ns.inode().unwrap();
    assert_ne!(original, target);

    const ROUNDS: usize = 40;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ROUNDS {
        let ns = ns.clone();
        match i % 4 {
            0 => {
                tasks.spawn(async move {
                    // `run` blocks, so call it from the blocking pool.
                    tokio::task::spawn_blocking(move || ns.run(thread_netns_inode).unwrap()).await.unwrap()
                });
            }
            1 => {
                tasks.spawn(async move {
                    ns.run_async(|| async {
                        let before = thread_netns_inode();
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        // Tasks spawned inside run on the inner runtime, in the namespace.
                        let inner = tokio::spawn(async { thread_netns_inode() }).await.unwrap();
                        let blocking = tokio::task::spawn_blocking(thread_netns_inode).await.unwrap();
                        assert_eq!(before, inner);
                        assert_eq!(before, blocking);
                        before
                    })
                    .await
                    .unwrap()
                });
            }
            2 => {
                tasks.spawn(async move {
                    let net = Net::open(&ns).await.unwrap();
                    let links = net.links().await.unwrap();
                    assert_eq!(links.len(), 1, "only lo in the throwaway namespace");
                    // The sysctl path runs on a namespace thread too.
                    // (Its value is inherited from the host's, so only its shape is checked.)
                    let forward = net.sysctl("net.ipv4.ip_forward").await.unwrap();
                    assert!(forward == "0" || forward == "1", "{forward}");
                    ns.inode().unwrap()
                });
            }
            _ => {
                tasks.spawn(async move {
                    // Work on the runtime itself between the namespace operations.
                    tokio::task::yield_now().await;
                    let here = thread_netns_inode();
                    assert_ne!(here, ns.inode().unwrap(), "a worker entered the namespace");
                    ns.inode().unwrap()
                });
            }
        }
    }
    let mut seen = 0;
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap(), target, "work ran outside the target namespace");
        seen += 1;
    }
    assert_eq!(seen, ROUNDS);

    // Every worker and blocking thread is still in the original namespace.
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..256 {
        checks.spawn(async {
            tokio::task::yield_now().await;
            (std::thread::current().id(), thread_netns_inode())
        });
        checks.spawn(async {
            tokio::task::spawn_blocking(|| (std::thread::current().id(), thread_netns_inode())).await.unwrap()
        });
    }
    let mut threads = HashSet::new();
    while let Some(r) = checks.join_next().await {
        let (tid, inode) = r.unwrap();
        assert_eq!(inode, original, "thread {tid:?} left in another namespace");
        threads.insert(tid);
    }
    assert!(threads.len() >= 2, "checked {} threads", threads.len());
    assert_eq!(thread_netns_inode(), original);
    eprintln!("{ROUNDS} namespace operations, {} runtime threads checked, {:?}", threads.len(), started.elapsed());
    drop(temp);
}

#[tokio::test]
#[ignore = "needs root"]
async fn net_host_talks_to_the_calling_threads_namespace() {
    let temp = TempNetns::create(&format!("nsw-{}-host", std::process::id())).expect("create namespace (needs root)");
    let ns = temp.netns().unwrap();
    let target = ns.inode().unwrap();
    // Inside run_async the calling thread is in the throwaway namespace: Net::host is that one.
    let (names, inode) = ns
        .run_async(|| async {
            let net = Net::host().await.unwrap();
            let names: Vec<String> = net.links().await.unwrap().into_iter().map(|l| l.name).collect();
            (names, net.netns().unwrap().inode().unwrap())
        })
        .await
        .unwrap();
    assert_eq!(names, ["lo"], "Net::host inside the namespace saw other links");
    assert_eq!(inode, target);
    // Outside, it is the test thread's namespace.
    let host = Net::host().await.unwrap();
    assert_eq!(host.netns().unwrap().inode().unwrap(), thread_netns_inode());
    assert_ne!(thread_netns_inode(), target);
    // A link created through the inner handle's namespace is not visible from the host handle.
    let inner = Net::open(&ns).await.unwrap();
    inner.bridge("nswhostbr0").execute().await.unwrap();
    assert!(host.find_link("nswhostbr0").await.unwrap().is_none(), "the bridge appeared on the host");
    assert!(inner.find_link("nswhostbr0").await.unwrap().is_some());
}
