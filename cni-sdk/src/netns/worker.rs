//! Per-namespace workers: one OS thread per network namespace, entered once, running blocking
//! jobs one after the other.
//!
//! A [`Worker`] is shared by every [`NetNs`](super::NetNs) handle of the same namespace (same
//! device and inode, found through a process-wide registry of weak references). The thread
//! enters the namespace when it starts, never leaves it, and exits once the last handle — and
//! with it the last [`mpsc::Sender`] — is dropped. While a handle lives, the namespace stays
//! alive (the handle holds its file), so a registry key cannot be reused by another namespace
//! while its entry can still be upgraded.
//!
//! Jobs must not change the thread's namespaces or wait for another job of the same worker
//! (that job would queue behind them). Work that unshares or remounts runs on a fresh thread
//! instead (`NetNs::run_blocking_on_fresh_thread`).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};

use nix::sched::CloneFlags;

use super::NetnsError;

/// What a job is told before it runs: whether the worker is inside its namespace.
pub(super) type Entered<'a> = Result<(), &'a NetnsError>;

/// A unit of work for a worker. It receives the outcome of entering the namespace, so a worker
/// that could not enter it answers every job with that error instead of running it elsewhere.
pub(super) type Job = Box<dyn FnOnce(Entered<'_>) + Send + 'static>;

/// Identifies a namespace: device and inode of its nsfs file.
pub(super) type NsKey = (u64, u64);

/// The handle side of a worker thread. Dropping the last `Arc<Worker>` closes the queue and the
/// thread exits after the jobs already queued.
pub(super) struct Worker {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

/// Workers that may still be alive, by namespace.
static REGISTRY: Mutex<Option<HashMap<NsKey, Weak<Worker>>>> = Mutex::new(None);

impl Worker {
    /// The live worker for `key`, or a new one that enters the namespace of `fd`.
    pub(super) fn for_namespace(
        key: NsKey,
        fd: &Arc<OwnedFd>,
        path: &std::path::Path,
    ) -> Result<Arc<Self>, NetnsError> {
        // The lock is held only for lookups and thread creation, never while jobs run, so a busy
        // worker cannot hold up another namespace.
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        let map = registry.get_or_insert_with(HashMap::new);
        if let Some(worker) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(worker);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let worker = Arc::new(Self::spawn(Arc::clone(fd), path.to_path_buf())?);
        map.insert(key, Arc::downgrade(&worker));
        Ok(worker)
    }

    /// Starts the thread. It enters the namespace before taking any job.
    fn spawn(fd: Arc<OwnedFd>, path: PathBuf) -> Result<Self, NetnsError> {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("cni-netns".into())
            .spawn(move || {
                let entered = nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| NetnsError::errno(format_args!("setns {}", path.display()), e));
                // The thread itself now keeps the namespace alive; the handles keep their files.
                drop(fd);
                while let Ok(job) = jobs.recv() {
                    // Jobs catch their closure's panics themselves; this also survives a panic
                    // while a result is dropped, so the worker stays usable.
                    let _ = catch_unwind(AssertUnwindSafe(|| job(entered.as_ref().map(|_| ()))));
                }
            })
            .map_err(|e| NetnsError::io("spawn namespace worker thread", e))?;
        Ok(Self { queue })
    }

    /// Queues `job`. Fails only if the thread is gone, which does not happen while it has a
    /// handle (the loop ends only when the queue is closed).
    pub(super) fn submit(&self, job: Job) -> Result<(), NetnsError> {
        self.queue
            .send(job)
            .map_err(|_| NetnsError::new(super::NetnsErrorKind::Other, "the namespace worker thread is gone"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use crate::netns::{NetNs, NetnsErrorKind, TempNetns};

    fn thread_netns_inode() -> u64 {
        std::fs::metadata("/proc/thread-self/ns/net").expect("stat /proc/thread-self/ns/net").ino()
    }

    fn tid() -> i32 {
        nix::unistd::gettid().as_raw()
    }

    fn temp_ns() -> TempNetns {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("nsw-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        TempNetns::create(&name).expect("create test namespace (needs root)")
    }

    fn thread_alive(tid: i32) -> bool {
        std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn jobs_run_inside_the_namespace_on_one_shared_thread() {
        let temp = temp_ns();
        let ns = temp.netns().unwrap();
        let outside = thread_netns_inode();
        let (inode, first) = ns.run_blocking(|| (thread_netns_inode(), tid())).await.unwrap();
        assert_eq!(inode, ns.inode().unwrap());
        assert_ne!(inode, outside);
        assert_ne!(first, tid(), "the job ran on the caller's thread");
        assert_eq!(thread_netns_inode(), outside, "the caller's thread was switched");
        // A clone and a second, separate open of the same namespace use the same worker.
        assert_eq!(ns.clone().run_blocking(tid).await.unwrap(), first);
        let again = NetNs::open(temp.path()).unwrap();
        assert_eq!(again.run_blocking(tid).await.unwrap(), first);
        // Another namespace has a worker of its own.
        let other = temp_ns();
        let other_ns = other.netns().unwrap();
        let (other_inode, other_tid) = other_ns.run_blocking(|| (thread_netns_inode(), tid())).await.unwrap();
        assert_eq!(other_inode, other_ns.inode().unwrap());
        assert_ne!(other_tid, first);
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn a_panicking_job_is_an_error_and_the_worker_goes_on() {
        let temp = temp_ns();
        let ns = temp.netns().unwrap();
        let before = ns.run_blocking(tid).await.unwrap();
        let err = ns.run_blocking(|| -> u32 { panic!("boom in a worker job") }).await.unwrap_err();
        assert_eq!(err.kind(), NetnsErrorKind::Panicked);
        assert!(err.to_string().contains("boom in a worker job"), "{err}");
        let n = 3;
        let err = ns.run_blocking(move || -> () { panic!("boom {n}") }).await.unwrap_err();
        assert!(err.to_string().contains("boom 3"), "{err}");
        let (inode, after) = ns.run_blocking(|| (thread_netns_inode(), tid())).await.unwrap();
        assert_eq!(after, before, "the worker was replaced instead of surviving");
        assert_eq!(inode, ns.inode().unwrap());
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn the_worker_exits_when_the_last_handle_is_dropped() {
        let temp = temp_ns();
        let ns = temp.netns().unwrap();
        let clone = ns.clone();
        let worker_tid = ns.run_blocking(tid).await.unwrap();
        assert!(thread_alive(worker_tid));
        drop(ns);
        // A clone still holds it.
        assert_eq!(clone.run_blocking(tid).await.unwrap(), worker_tid);
        drop(clone);
        let deadline = Instant::now() + Duration::from_secs(10);
        while thread_alive(worker_tid) {
            assert!(
                Instant::now() < deadline,
                "worker thread {worker_tid} still runs after its last handle was dropped"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A new handle starts a new worker, inside the namespace again.
        let ns = temp.netns().unwrap();
        let (inode, new_tid) = ns.run_blocking(|| (thread_netns_inode(), tid())).await.unwrap();
        assert_eq!(inode, ns.inode().unwrap());
        assert!(thread_alive(new_tid));
        drop(ns);
        let deadline = Instant::now() + Duration::from_secs(10);
        while thread_alive(new_tid) {
            assert!(Instant::now() < deadline, "second worker thread still runs");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs root"]
    async fn concurrent_jobs_from_many_tasks_all_run_in_the_namespace() {
        let temp = temp_ns();
        let ns = temp.netns().unwrap();
        let target = ns.inode().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64u32 {
            // Half share the handle, half open the namespace again.
            let ns = if i % 2 == 0 { ns.clone() } else { NetNs::open(temp.path()).unwrap() };
            tasks.spawn(async move {
                let (inode, worker, doubled) =
                    ns.run_blocking(move || (thread_netns_inode(), tid(), i * 2)).await.unwrap();
                (i, inode, worker, doubled, thread_netns_inode())
            });
        }
        let outside = thread_netns_inode();
        let mut workers = std::collections::HashSet::new();
        let mut seen = 0;
        while let Some(joined) = tasks.join_next().await {
            let (i, inode, worker, doubled, caller) = joined.unwrap();
            assert_eq!(inode, target, "job {i} ran outside the namespace");
            assert_eq!(doubled, i * 2, "job {i} got another job's result");
            assert_eq!(caller, outside, "task {i}'s runtime thread was switched");
            workers.insert(worker);
            seen += 1;
        }
        assert_eq!(seen, 64);
        assert_eq!(workers.len(), 1, "one namespace, one worker: {workers:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs root"]
    async fn a_blocked_job_holds_up_only_its_own_namespace() {
        let (a, b) = (temp_ns(), temp_ns());
        let (ns_a, ns_b) = (a.netns().unwrap(), b.netns().unwrap());
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let blocked = tokio::spawn({
            let ns_a = ns_a.clone();
            async move {
                ns_a.run_blocking(move || {
                    let _ = started_tx.send(());
                    // Bounded, so a broken worker fails the test instead of hanging it.
                    wait.recv_timeout(Duration::from_secs(20)).is_ok()
                })
                .await
            }
        });
        started.await.unwrap();
        // B's worker answers while A's is busy, and so does a fresh worker for the caller's own
        // namespace (the registry is not locked by a running job).
        let inode_b = tokio::time::timeout(Duration::from_secs(10), ns_b.run_blocking(thread_netns_inode))
            .await
            .expect("namespace B waited for namespace A's job")
            .unwrap();
        assert_eq!(inode_b, ns_b.inode().unwrap());
        let own = NetNs::current().unwrap();
        let inode_own = tokio::time::timeout(Duration::from_secs(10), own.run_blocking(thread_netns_inode))
            .await
            .expect("the own namespace waited for namespace A's job")
            .unwrap();
        assert_eq!(inode_own, own.inode().unwrap());
        release.send(()).unwrap();
        assert!(blocked.await.unwrap().unwrap(), "A's job was not released");
        assert_eq!(ns_a.run_blocking(thread_netns_inode).await.unwrap(), ns_a.inode().unwrap());
    }
}
