//! Network namespaces: open them, run code inside them, create named ones.
//!
//! `setns(2)` changes the namespace of the *calling thread only*. Async code must therefore never
//! switch the thread it runs on: a tokio task shares its thread with other tasks and may move
//! between threads at every `.await`. This module offers no guard that switches the current thread.
//! Instead:
//!
//! * [`NetNs::run`] runs a synchronous closure on a fresh, dedicated OS thread that enters the
//!   namespace first and exits afterwards (a thread that dies needs no "switch back");
//! * [`NetNs::run_async`] does the same for async code: the dedicated thread enters the namespace
//!   first, *then* builds its own current-thread tokio runtime, so that runtime and any blocking
//!   threads it spawns live in the namespace;
//! * [`crate::net::Net`] creates its netlink socket inside the namespace and uses it from anywhere
//!   afterwards (a socket belongs to the namespace it was created in).
//!
//! # The namespace worker
//!
//! The SDK's own short blocking jobs in a namespace — creating the netlink socket of a
//! [`Net`](crate::net::Net) (except for `Net::host`, which makes it on the calling thread, already
//! in that namespace), reading and writing sysctls, creating tun/tap devices, running
//! firewall tools in a target namespace — do not get a thread each. Every namespace has at most
//! one *worker*: an OS thread started on first use that enters the namespace once, never leaves
//! it, and runs the jobs queued to it one after the other. All [`NetNs`] handles of the namespace
//! (clones, and separate [`NetNs::open`]s of the same namespace, matched by device and inode)
//! share it; it exits when the last of them is dropped. So one CNI request touches each
//! namespace from one thread, however many operations it makes, and no thread is ever left in
//! a switched namespace beyond the handles' lifetime. A panicking job is reported as
//! [`NetnsErrorKind::Panicked`] and the worker goes on with the next one; if the worker cannot
//! enter the namespace, every job gets that error. Jobs of different namespaces never wait for
//! each other; jobs of one namespace do (a firewall tool running in it delays that namespace's
//! next sysctl write until it ends). A long-lived process that keeps handles open keeps one idle
//! thread per namespace they refer to; a CNI plugin's handles live for one request.
//!
//! [`NetNs::run`] and [`NetNs::run_async`] keep a thread of their own per call: their closures
//! and futures are the caller's code, which may run for long, build a runtime of their own, or
//! change the thread's state (another `setns`, `unshare`); none of that may reach a thread that
//! other jobs share. Reading sysfs for another namespace (it unshares the mount namespace) also
//! keeps a fresh thread. Either way, namespace work runs only on dedicated OS threads that enter
//! the namespace before doing anything and never switch back, never on a tokio worker or
//! blocking-pool thread.
//!
//! Pitfalls: never call `setns` inside an `async fn` or `spawn_blocking`; read the current
//! namespace from `/proc/thread-self/ns/net` (`/proc/self` is the thread-group leader); query links
//! over netlink, not `/sys/class/net` (which follows the sysfs mount, not the thread).

use std::any::Any;
use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

mod worker;
use worker::Worker;

/// `NSFS_MAGIC` from `linux/magic.h`: the filesystem of `/proc/<pid>/ns/*` and their bind mounts.
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `PROC_SUPER_MAGIC`: older kernels report namespace files as procfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// `NS_GET_NSTYPE` ioctl request (`_IO(0xb7, 0x3)`).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The directory `ip netns` keeps named namespaces in.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The path of the calling thread's network namespace.
pub const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// What went wrong in a namespace operation (see [`NetnsError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetnsErrorKind {
    /// The namespace path does not exist (for DEL this usually means "already gone").
    NotFound,
    /// The path exists but is not a network namespace.
    NotANetns,
    /// A named namespace with that name already exists.
    AlreadyExists,
    /// The namespace name is not acceptable (empty, `.`, `..`, or containing `/`).
    InvalidName,
    /// The caller lacks the privilege (`CAP_SYS_ADMIN`) for the operation.
    PermissionDenied,
    /// The closure run inside the namespace panicked.
    Panicked,
    /// Any other operating-system or runtime failure.
    Other,
}

/// An error from a namespace operation.
#[derive(Debug)]
pub struct NetnsError {
    kind: NetnsErrorKind,
    message: String,
    source: Option<io::Error>,
}

impl NetnsError {
    fn new(kind: NetnsErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    fn io(context: impl fmt::Display, err: io::Error) -> Self {
        let kind = match err.raw_os_error() {
            Some(libc::ENOENT) => NetnsErrorKind::NotFound,
            Some(libc::EEXIST) => NetnsErrorKind::AlreadyExists,
            Some(libc::EPERM | libc::EACCES) => NetnsErrorKind::PermissionDenied,
            _ => NetnsErrorKind::Other,
        };
        Self { kind, message: format!("{context}: {err}"), source: Some(err) }
    }

    fn errno(context: impl fmt::Display, errno: Errno) -> Self {
        Self::io(context, io::Error::from_raw_os_error(errno as i32))
    }

    /// A copy for another caller: same kind and message, and the same OS error as source.
    fn duplicate(&self) -> Self {
        let source = self.source.as_ref().map(|e| match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        });
        Self { kind: self.kind, message: self.message.clone(), source }
    }

    fn panicked(payload: Box<dyn Any + Send>) -> Self {
        Self::new(
            NetnsErrorKind::Panicked,
            format!("closure run in network namespace panicked: {}", panic_message(payload.as_ref())),
        )
    }

    /// The category of the error.
    pub fn kind(&self) -> NetnsErrorKind {
        self.kind
    }

    /// True when the namespace path does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == NetnsErrorKind::NotFound
    }

    /// The human-readable message (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NetnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Extracts the text of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// An open network-namespace file.
///
/// Cheap to clone (the file descriptor is shared). Keeping it open keeps the namespace alive even
/// if its bind mount is removed. Handles of the same namespace share one worker thread for the
/// SDK's blocking namespace work (see the [module documentation](self)).
#[derive(Clone)]
pub struct NetNs {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    /// The namespace's worker once this handle (or a clone) has used it.
    worker: Arc<OnceLock<Arc<Worker>>>,
}

impl fmt::Debug for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetNs").field("path", &self.path).field("fd", &self.fd.as_raw_fd()).finish()
    }
}

impl NetNs {
    /// Opens `path` and checks that it is a network namespace.
    ///
    /// A missing path gives an error of kind [`NetnsErrorKind::NotFound`]; a file that is not a
    /// namespace gives [`NetnsErrorKind::NotANetns`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetnsError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Err(NetnsError::new(NetnsErrorKind::NotFound, "empty network namespace path"));
        }
        let file = File::open(path).map_err(|e| NetnsError::io(format_args!("open {}", path.display()), e))?;
        let fd = OwnedFd::from(file);
        let fs = nix::sys::statfs::fstatfs(&fd)
            .map_err(|e| NetnsError::errno(format_args!("fstatfs {}", path.display()), e))?;
        let magic = fs.filesystem_type().0 as i64;
        if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
            return Err(NetnsError::new(
                NetnsErrorKind::NotANetns,
                format!("{} is not a network namespace (filesystem magic {magic:#x})", path.display()),
            ));
        }
        // SAFETY: `fd` is a valid open descriptor for the duration of the call and
        // NS_GET_NSTYPE takes no argument; the kernel only returns an integer.
        let nstype = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
        if nstype >= 0 && nstype != libc::CLONE_NEWNET {
            return Err(NetnsError::new(
                NetnsErrorKind::NotANetns,
                format!("{} is a namespace, but not a network namespace", path.display()),
            ));
        }
        Ok(Self { fd: Arc::new(fd), path: path.to_path_buf(), worker: Arc::new(OnceLock::new()) })
    }

    /// Like [`NetNs::open`], but returns `Ok(None)` when the path is empty or does not exist.
    ///
    /// This is what DEL wants: a namespace that is already gone is not an error.
    pub fn open_optional(path: impl AsRef<Path>) -> Result<Option<Self>, NetnsError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        match Self::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the calling thread's network namespace (`/proc/thread-self/ns/net`).
    pub fn current() -> Result<Self, NetnsError> {
        Self::open(THREAD_SELF_NETNS)
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when both handles refer to the same namespace (same device and inode).
    pub fn is_same(&self, other: &NetNs) -> Result<bool, NetnsError> {
        Ok(self.key()? == other.key()?)
    }

    /// The inode number of the namespace (what `ls -i /proc/thread-self/ns/net` shows).
    pub fn inode(&self) -> Result<u64, NetnsError> {
        Ok(self.key()?.1)
    }

    /// Device and inode of the namespace file: what identifies the namespace.
    fn key(&self) -> Result<worker::NsKey, NetnsError> {
        let st = nix::sys::stat::fstat(self.as_fd())
            .map_err(|e| NetnsError::errno(format_args!("fstat {}", self.path.display()), e))?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Runs `f` on a new OS thread that has entered this namespace, and returns its result.
    ///
    /// The thread exits when `f` returns, so the namespace switch can never leak. This blocks the
    /// calling thread until `f` is done; from async code prefer [`NetNs::run_async`]. A panic in
    /// `f` is returned as an error of kind [`NetnsErrorKind::Panicked`].
    pub fn run<F, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self.clone();
        let handle = std::thread::Builder::new()
            .name("cni-netns".into())
            .spawn(move || -> Result<T, NetnsError> {
                ns.enter_this_thread()?;
                catch_unwind(AssertUnwindSafe(f)).map_err(NetnsError::panicked)
            })
            .map_err(|e| NetnsError::io("spawn namespace thread", e))?;
        handle.join().map_err(NetnsError::panicked)?
    }

    /// Runs the future made by `f` inside this namespace and awaits its result.
    ///
    /// A dedicated OS thread enters the namespace first, then builds its own current-thread tokio
    /// runtime (all drivers enabled) and drives the future to completion; the result comes back
    /// over a channel, so the caller's runtime thread is never blocked or switched. Consequences:
    ///
    /// * `tokio::spawn` inside the future spawns onto the inner runtime (in the namespace), and
    ///   those tasks are dropped when the future finishes;
    /// * a `tokio::runtime::Handle` captured outside and used inside runs work in the *caller's*
    ///   namespace;
    /// * the future itself need not be `Send`.
    ///
    /// A panic (in `f` or the future) is returned as an error of kind [`NetnsErrorKind::Panicked`].
    pub async fn run_async<F, Fut, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        self.spawn_thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| NetnsError::io("build namespace runtime", e))?;
            catch_unwind(AssertUnwindSafe(|| rt.block_on(f()))).map_err(NetnsError::panicked)
        })
        .await?
    }

    /// Runs the blocking closure `f` on this namespace's worker thread and awaits the result
    /// without blocking the caller's thread.
    ///
    /// The worker is started on first use and shared by every handle of the namespace; jobs run
    /// one at a time, in the order they were queued. `f` must not change the thread's namespaces
    /// (use [`NetNs::run_blocking_on_fresh_thread`] for that) and must not wait for another job
    /// of the same namespace. A panic in `f` is returned as [`NetnsErrorKind::Panicked`]; the
    /// worker carries on with the next job.
    #[cfg_attr(not(any(feature = "netlink", feature = "firewall")), allow(dead_code))]
    pub(crate) async fn run_blocking<F, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.worker()?.submit(Box::new(move |entered| {
            let result = match entered {
                Ok(()) => catch_unwind(AssertUnwindSafe(f)).map_err(NetnsError::panicked),
                Err(e) => Err(e.duplicate()),
            };
            // The receiver may be gone if the caller stopped waiting; nothing to do then.
            let _ = tx.send(result);
        }))?;
        rx.await.map_err(|_| NetnsError::new(NetnsErrorKind::Panicked, "namespace worker dropped the job"))?
    }

    /// Like [`NetNs::run_blocking`], but on a new thread that exits afterwards: for jobs that
    /// change the thread's state beyond the network namespace (e.g. unshare the mount namespace).
    #[cfg_attr(not(feature = "netlink"), allow(dead_code))]
    pub(crate) async fn run_blocking_on_fresh_thread<F, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_thread(move || catch_unwind(AssertUnwindSafe(f)).map_err(NetnsError::panicked)).await?
    }

    /// This namespace's worker, started (or found in the registry) on first use.
    fn worker(&self) -> Result<&Arc<Worker>, NetnsError> {
        if let Some(worker) = self.worker.get() {
            return Ok(worker);
        }
        let worker = Worker::for_namespace(self.key()?, &self.fd, &self.path)?;
        // Another clone may have set it meanwhile; the registry gave both the same worker.
        Ok(self.worker.get_or_init(|| worker))
    }

    /// Spawns a thread that enters the namespace and runs `f`; the outer `Result` reports
    /// failures to start, enter or finish the thread.
    async fn spawn_thread<F, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("cni-netns".into())
            .spawn(move || {
                let result = ns.enter_this_thread().map(|()| f());
                // The receiver may be gone if the caller stopped waiting; nothing to do then.
                let _ = tx.send(result);
            })
            .map_err(|e| NetnsError::io("spawn namespace thread", e))?;
        rx.await.map_err(|_| NetnsError::new(NetnsErrorKind::Panicked, "namespace thread ended without a result"))?
    }

    /// Moves the calling thread into this namespace. Only ever called on threads this module
    /// spawned and that exit afterwards.
    fn enter_this_thread(&self) -> Result<(), NetnsError> {
        nix::sched::setns(self.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetnsError::errno(format_args!("setns {}", self.path.display()), e))
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn validate_name(name: &str) -> Result<(), NetnsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(NetnsError::new(NetnsErrorKind::InvalidName, format!("invalid network namespace name {name:?}")));
    }
    Ok(())
}

/// Makes `dir` a shared mount point, as `ip netns add` does, so that namespace bind mounts made
/// below it propagate to other mount namespaces.
fn make_shared_mount_dir(dir: &Path) -> Result<(), NetnsError> {
    std::fs::create_dir_all(dir).map_err(|e| NetnsError::io(format_args!("create {}", dir.display()), e))?;
    let shared =
        || nix::mount::mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then make it shared.
            nix::mount::mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(|e| NetnsError::errno(format_args!("bind-mount {}", dir.display()), e))?;
            shared().map_err(|e| NetnsError::errno(format_args!("make {} shared", dir.display()), e))
        }
        Err(e) => Err(NetnsError::errno(format_args!("make {} shared", dir.display()), e)),
    }
}

/// A named network namespace: a new namespace bind-mounted onto a file, like `ip netns add`.
///
/// It stays alive until [`NamedNetns::remove`] is called (dropping this value does not remove
/// it; see [`TempNetns`] for that). A runtime that restarts finds its namespaces again with
/// [`NamedNetns::open`] or [`NamedNetns::list`], and removes them by name or path
/// ([`NamedNetns::remove_named`], [`NamedNetns::remove_path`]) even without a handle.
///
/// ```no_run
/// use cni_sdk::netns::NamedNetns;
/// # fn demo() -> Result<(), cni_sdk::netns::NetnsError> {
/// let ns = NamedNetns::create("pod-1")?;           // /run/netns/pod-1
/// drop(ns);                                          // e.g. the runtime restarts
/// let again = NamedNetns::open("pod-1")?;           // found again by name
/// assert!(NamedNetns::list()?.iter().any(|n| n.name() == "pod-1"));
/// again.remove()?;
/// NamedNetns::remove_named("pod-1")?;               // already gone: not an error
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NamedNetns {
    name: String,
    path: PathBuf,
}

impl NamedNetns {
    /// Creates `/run/netns/<name>` holding a new, empty network namespace.
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        Self::create_in(NETNS_RUN_DIR, name)
    }

    /// Creates `<dir>/<name>` holding a new, empty network namespace. `dir` is created and made
    /// a shared mount point if needed.
    pub fn create_in(dir: impl AsRef<Path>, name: &str) -> Result<Self, NetnsError> {
        validate_name(name)?;
        let dir = dir.as_ref();
        make_shared_mount_dir(dir)?;
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| NetnsError::io(format_args!("create {}", path.display()), e))?;
        let target = path.clone();
        let made = std::thread::Builder::new()
            .name("cni-netns-add".into())
            .spawn(move || -> Result<(), NetnsError> {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| NetnsError::errno("unshare(CLONE_NEWNET)", e))?;
                nix::mount::mount(
                    Some(OsStr::new(THREAD_SELF_NETNS)),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| NetnsError::errno(format_args!("bind-mount onto {}", target.display()), e))
            })
            .map_err(|e| NetnsError::io("spawn namespace thread", e))
            .and_then(|h| h.join().map_err(NetnsError::panicked)?);
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Self { name: name.to_owned(), path })
    }

    /// Opens the existing named namespace `/run/netns/<name>` (made by this process, another
    /// one, or `ip netns add`). Kind [`NetnsErrorKind::NotFound`] when it does not exist,
    /// [`NetnsErrorKind::NotANetns`] when the file is not a mounted network namespace.
    pub fn open(name: &str) -> Result<Self, NetnsError> {
        Self::open_in(NETNS_RUN_DIR, name)
    }

    /// Opens the existing named namespace `<dir>/<name>`.
    pub fn open_in(dir: impl AsRef<Path>, name: &str) -> Result<Self, NetnsError> {
        validate_name(name)?;
        Self::from_path(dir.as_ref().join(name))
    }

    /// Opens the namespace bind-mounted at `path` (any directory); its name is the file name.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, NetnsError> {
        let path = path.as_ref();
        NetNs::open(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| NetnsError::new(NetnsErrorKind::InvalidName, format!("{} names no file", path.display())))?;
        Ok(Self { name, path: path.to_path_buf() })
    }

    /// Every named network namespace in `/run/netns`, sorted by name (files there that are not
    /// mounted network namespaces are left out).
    pub fn list() -> Result<Vec<Self>, NetnsError> {
        Self::list_in(NETNS_RUN_DIR)
    }

    /// Every named network namespace in `dir`, sorted by name; an absent directory has none.
    pub fn list_in(dir: impl AsRef<Path>) -> Result<Vec<Self>, NetnsError> {
        let dir = dir.as_ref();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetnsError::io(format_args!("list {}", dir.display()), e)),
        };
        let mut out: Vec<Self> =
            entries.filter_map(|e| e.ok()).filter_map(|e| Self::from_path(e.path()).ok()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes the named namespace `/run/netns/<name>` (see [`NamedNetns::remove_path`]).
    pub fn remove_named(name: &str) -> Result<(), NetnsError> {
        validate_name(name)?;
        Self::remove_path(Path::new(NETNS_RUN_DIR).join(name))
    }

    /// Unmounts (lazily) and deletes the namespace file at `path`, like `ip netns delete`. A
    /// path that does not exist is not an error (removal is idempotent); a file that is neither
    /// a network namespace nor the empty placeholder a failed creation leaves behind is refused
    /// with [`NetnsErrorKind::NotANetns`] and left alone.
    pub fn remove_path(path: impl AsRef<Path>) -> Result<(), NetnsError> {
        let path = path.as_ref();
        match NetNs::open(path) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.kind() == NetnsErrorKind::NotANetns => {
                let placeholder = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0);
                if !placeholder {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        remove_path(path)
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mount path, suitable as `CNI_NETNS`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the namespace.
    pub fn netns(&self) -> Result<NetNs, NetnsError> {
        NetNs::open(&self.path)
    }

    /// Unmounts (lazily) and deletes the namespace file. The namespace itself disappears once no
    /// process, thread or open [`NetNs`] refers to it.
    pub fn remove(self) -> Result<(), NetnsError> {
        remove_path(&self.path)
    }
}

fn remove_path(path: &Path) -> Result<(), NetnsError> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetnsError::errno(format_args!("unmount {}", path.display()), e));
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetnsError::io(format_args!("remove {}", path.display()), e)),
    }
}

/// A named network namespace that removes itself when dropped (for tests).
#[derive(Debug)]
pub struct TempNetns {
    inner: Option<NamedNetns>,
}

impl TempNetns {
    /// Creates `/run/netns/<name>`; it is removed when the value is dropped.
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        Self::create_in(NETNS_RUN_DIR, name)
    }

    /// Creates `<dir>/<name>`; it is removed when the value is dropped.
    pub fn create_in(dir: impl AsRef<Path>, name: &str) -> Result<Self, NetnsError> {
        Ok(Self { inner: Some(NamedNetns::create_in(dir, name)?) })
    }

    fn named(&self) -> &NamedNetns {
        self.inner.as_ref().expect("TempNetns holds its namespace until dropped")
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        self.named().name()
    }

    /// The bind-mount path.
    pub fn path(&self) -> &Path {
        self.named().path()
    }

    /// Opens the namespace.
    pub fn netns(&self) -> Result<NetNs, NetnsError> {
        self.named().netns()
    }

    /// Removes the namespace now, reporting errors (dropping does the same but ignores them).
    pub fn remove(mut self) -> Result<(), NetnsError> {
        match self.inner.take() {
            Some(named) => named.remove(),
            None => Ok(()),
        }
    }
}

impl Drop for TempNetns {
    fn drop(&mut self) {
        if let Some(named) = self.inner.take()
            && let Err(e) = named.remove()
        {
            tracing::warn!(error = %e, "could not remove temporary network namespace");
        }
    }
}
