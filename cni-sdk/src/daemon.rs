//! Daemon-backed plugins: a thin shim binary forwards each request over a unix socket to a
//! long-running daemon that runs the same [`Plugin`].
//!
//! This is how Calico, Cilium, Multus "thick" and others are built: the plugin binary the
//! runtime execs is small and stateless, the daemon keeps state and serves many requests at
//! once. Moving a plugin behind a daemon changes one line of the plugin binary:
//!
//! ```no_run
//! # use cni_sdk::{PluginOptions, Plugin, Context, CniResult, Result};
//! # #[derive(Default)] struct MyPlugin;
//! # impl Plugin for MyPlugin { type Config = ();
//! #   async fn add(&self, _: &Context<()>) -> Result<CniResult> { Ok(CniResult::default()) }
//! #   async fn del(&self, _: &Context<()>) -> Result<()> { Ok(()) }
//! #   async fn check(&self, _: &Context<()>) -> Result<()> { Ok(()) } }
//! # fn in_process() {
//! // In-process: the binary runs the plugin itself.
//! cni_sdk::plugin_main(MyPlugin, PluginOptions::new("CNI my plugin"));
//! # }
//! # fn shim() {
//! // Behind a daemon: the binary forwards to the daemon.
//! cni_sdk::daemon::shim_main("/run/cni/my-plugin.sock", PluginOptions::new("CNI my plugin"));
//! # }
//! // The daemon (its own binary or a task of an existing agent):
//! # async fn daemon() -> cni_sdk::Result<()> {
//! cni_sdk::daemon::Daemon::builder(MyPlugin)
//!     .socket("/run/cni/my-plugin.sock")
//!     .build()?
//!     .serve_until_signal()
//!     .await
//! # }
//! ```
//!
//! **Wire format** (version 1): each message is a frame of `"CNID"`, a version byte, three
//! reserved bytes (sent as zero, ignored), a big-endian `u32` length and that many bytes of
//! JSON. A request is `{"env": {...}, "stdin": "<base64>"}` (the shim's whole environment and
//! stdin); a response is `{"exitCode": n, "stdout": "<base64>", "stderr": "<base64>"}`, which the
//! shim relays unchanged. Frames above the size limit (default 8 MiB), a wrong magic or version,
//! or bad JSON are answered with a CNI error object (code 6) and the connection is closed. The
//! payload buffer grows with the bytes actually received, so an announced length costs no
//! memory until it is sent.
//!
//! **Daemon**: serves connections concurrently on one thread (plugin futures need not be
//! `Send`), never runs two requests for the same container ID at once (the second waits),
//! applies a per-request timeout (code 11 on expiry), creates its socket with mode 0600 (root
//! only), and on shutdown stops accepting, finishes requests in flight and removes the socket.
//! A client must send its request within the I/O timeout (default 10 s) and take the answer
//! within it too; a client that connects and stays silent is dropped then, and at once when the
//! daemon shuts down, so neither can keep a task (or the shutdown) waiting.
//!
//! **Shim**: answers VERSION (and the about text) itself; when the daemon cannot be reached it
//! fails ADD, CHECK and GC with code 11 (try again later), STATUS with code 50 (plugin not
//! available), and DEL too — unless the container's namespace is already gone (`CNI_NETNS`
//! empty or missing), where the spec wants DEL to succeed. `CNI_DAEMON_SOCKET` overrides the
//! socket path (for tests and packaging).
//!
//! **Forwarding from a plugin**: [`forward`] sends one request and returns the daemon's answer,
//! telling a daemon that cannot be reached ([`ForwardError::Connect`]) from a failed exchange.
//! A plugin type whose methods forward ([`WireRequest::from_context`], [`WireResponse::outcome`])
//! is a shim that runs under the ordinary dispatcher, so it can pick its socket from the
//! network configuration and live in a multi-call binary like any other plugin.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use cni_types::{CniResult, ErrorCode};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use crate::dispatch::{self, Invocation};
use crate::{Command, Context, Error, Plugin, PluginOptions, Result, Services};

/// The frame magic.
pub const MAGIC: [u8; 4] = *b"CNID";
/// The wire format version this SDK speaks.
pub const WIRE_VERSION: u8 = 1;
/// The default largest frame (8 MiB): a request with a configuration of
/// [`DEFAULT_MAX_STDIN`](crate::DEFAULT_MAX_STDIN) (4 MiB, 5.4 MiB in base64) and its environment
/// fits.
pub const DEFAULT_MAX_FRAME: usize = 8 << 20;
/// The default time a client has to send its request and to take the answer.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The environment variable overriding the socket path.
pub const SOCKET_ENV: &str = "CNI_DAEMON_SOCKET";

/// The length of a frame header.
pub const HEADER_LEN: usize = 12;

/// Why a frame was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The peer closed the connection (or sent less than a header).
    #[error("connection closed before a complete frame was received")]
    Truncated,
    /// Not our protocol.
    #[error("bad frame magic {0:02x?} (expected \"CNID\")")]
    BadMagic([u8; 4]),
    /// Another version of our protocol.
    #[error("unsupported wire version {0} (this side speaks {WIRE_VERSION})")]
    Version(u8),
    /// Over the size limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The payload is not the expected JSON.
    #[error("bad frame payload: {0}")]
    Json(#[from] serde_json::Error),
    /// Socket I/O.
    #[error("socket I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4] = WIRE_VERSION;
    header[8..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&header).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Checks a frame header and returns the payload length it announces (at most `max`).
///
/// ```
/// use cni_sdk::daemon::{HEADER_LEN, WireError, decode_header};
/// let mut h = [0u8; HEADER_LEN];
/// h[..4].copy_from_slice(b"CNID");
/// h[4] = 1;
/// h[8..].copy_from_slice(&300u32.to_be_bytes());
/// assert_eq!(decode_header(&h, 4096).unwrap(), 300);
/// assert!(matches!(decode_header(&h, 100), Err(WireError::TooLarge { len: 300, max: 100 })));
/// h[0] = b'X';
/// assert!(matches!(decode_header(&h, 4096), Err(WireError::BadMagic(_))));
/// ```
pub fn decode_header(header: &[u8; HEADER_LEN], max: usize) -> Result<usize, WireError> {
    let magic: [u8; 4] = [header[0], header[1], header[2], header[3]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    if header[4] != WIRE_VERSION {
        return Err(WireError::Version(header[4]));
    }
    let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(len)
}

/// Reads one frame of at most `max` bytes. The payload buffer grows as bytes arrive (a peer
/// that announces a large frame and sends little costs little).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, WireError> {
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => WireError::Truncated,
        _ => WireError::Io(e),
    })?;
    let len = decode_header(&header, max)?;
    let mut payload = Vec::with_capacity(len.min(64 << 10));
    let got = r.take(u64::try_from(len).unwrap_or(u64::MAX)).read_to_end(&mut payload).await?;
    if got < len {
        return Err(WireError::Truncated);
    }
    Ok(payload)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>, WireError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| WireError::Json(<serde_json::Error as serde::de::Error>::custom(e)))
}

/// A request on the wire: the shim's environment and stdin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRequest {
    /// The environment.
    pub env: BTreeMap<String, String>,
    /// stdin, base64.
    pub stdin: String,
}

impl WireRequest {
    /// A request carrying `env` and `stdin`.
    pub fn new(env: BTreeMap<String, String>, stdin: &[u8]) -> Self {
        Self { env, stdin: b64(stdin) }
    }

    /// The request a plugin method would forward: its whole environment and the configuration
    /// exactly as it was received.
    pub fn from_context<C>(cx: &Context<C>) -> Self {
        Self::new(cx.env_map().clone(), cx.raw_config())
    }
}

/// A response on the wire: what the plugin printed and its exit code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireResponse {
    /// Exit code.
    pub exit_code: i32,
    /// stdout, base64.
    pub stdout: String,
    /// stderr, base64.
    pub stderr: String,
}

impl WireResponse {
    /// What the daemon's plugin printed on stdout.
    pub fn stdout_bytes(&self) -> Result<Vec<u8>, WireError> {
        unb64(&self.stdout)
    }

    /// What the daemon's plugin printed on stderr.
    pub fn stderr_bytes(&self) -> Result<Vec<u8>, WireError> {
        unb64(&self.stderr)
    }

    /// The daemon's answer as a plugin method's outcome: `Ok(Some(result))` when it printed a
    /// result (ADD), `Ok(None)` when it succeeded silently, and its error object (code, message
    /// and details kept) when it failed. `version` is the configuration's version, used for
    /// results that omit theirs.
    pub fn outcome(&self, version: &str) -> Result<Option<CniResult>> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            Error::new(ErrorCode::DecodingFailure, format!("the daemon sent {what}")).with_details(e.to_string())
        };
        let out = self.stdout_bytes().map_err(|e| bad("an undecodable stdout", &e))?;
        if self.exit_code == dispatch::EXIT_SUCCESS {
            if out.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return CniResult::parse(&out, version).map(Some).map_err(|e| bad("a result that does not parse", &e));
        }
        let obj: cni_types::CniError =
            serde_json::from_slice(&out).map_err(|e| bad("a failure without an error object", &e))?;
        let err = Error::new(obj.code, obj.msg);
        Err(match obj.details {
            Some(d) if !d.is_empty() => err.with_details(d),
            _ => err,
        })
    }

    fn error(err: &Error, version: &str) -> Self {
        let doc = serde_json::to_vec(&err.to_cni_error(version)).expect("errors serialise");
        Self { exit_code: dispatch::EXIT_FAILURE, stdout: b64(&doc), stderr: String::new() }
    }
}

/// Builds a [`Daemon`]; errors surface in [`DaemonBuilder::build`].
#[derive(Debug)]
#[must_use]
pub struct DaemonBuilder<P> {
    plugin: P,
    options: PluginOptions,
    socket: Option<PathBuf>,
    timeout: Duration,
    io_timeout: Duration,
    max_frame: usize,
    services: Services,
}

/// A daemon serving a [`Plugin`] on a unix socket.
pub struct Daemon<P> {
    plugin: Rc<P>,
    options: Rc<PluginOptions>,
    socket: PathBuf,
    timeout: Duration,
    io_timeout: Duration,
    max_frame: usize,
    services: Services,
    locks: Rc<RefCell<HashMap<String, Rc<tokio::sync::Mutex<()>>>>>,
    /// Set when the daemon stops: connections still waiting for their request are dropped.
    stopping: Rc<tokio::sync::watch::Sender<bool>>,
}

impl<P> std::fmt::Debug for Daemon<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("socket", &self.socket).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl<P: Plugin + 'static> Daemon<P> {
    /// Starts building a daemon for `plugin`.
    pub fn builder(plugin: P) -> DaemonBuilder<P> {
        DaemonBuilder {
            plugin,
            options: PluginOptions::default(),
            socket: None,
            timeout: Duration::from_secs(120),
            io_timeout: DEFAULT_IO_TIMEOUT,
            max_frame: DEFAULT_MAX_FRAME,
            services: Services::system(),
        }
    }
}

impl<P: Plugin + 'static> DaemonBuilder<P> {
    /// The plugin's options (versions, strictness).
    pub fn options(mut self, options: PluginOptions) -> Self {
        self.options = options;
        self
    }

    /// The socket path (required).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// Per-request timeout (default 120 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a client may take to send its request, and to take the answer (default 10 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Largest accepted frame (default [`DEFAULT_MAX_FRAME`]).
    pub fn max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame = max;
        self
    }

    /// Services for the plugin (fake networks, in-process delegates in tests).
    pub fn services(mut self, services: Services) -> Self {
        self.services = services;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<Daemon<P>> {
        let socket = self.socket.ok_or_else(|| Error::invalid_config("the daemon needs a socket path"))?;
        if self.timeout.is_zero() {
            return Err(Error::invalid_config("the request timeout must be positive"));
        }
        if self.io_timeout.is_zero() {
            return Err(Error::invalid_config("the I/O timeout must be positive"));
        }
        if self.max_frame < 1024 {
            return Err(Error::invalid_config("the frame limit must be at least 1024 bytes"));
        }
        Ok(Daemon {
            plugin: Rc::new(self.plugin),
            options: Rc::new(self.options),
            socket,
            timeout: self.timeout,
            io_timeout: self.io_timeout,
            max_frame: self.max_frame,
            services: self.services,
            locks: Rc::default(),
            stopping: Rc::new(tokio::sync::watch::channel(false).0),
        })
    }
}

impl<P: Plugin + 'static> Daemon<P> {
    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Binds the socket (mode 0600; a stale socket file is replaced, but a socket another
    /// process still listens on is an error) and serves until
    /// `shutdown` completes; then stops accepting, waits for requests in flight and removes the
    /// socket. Runs its own `LocalSet`, so call it from a current-thread runtime.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        self.bind()?.serve(shutdown).await
    }

    /// Binds the socket (mode 0600, a stale socket file is replaced) without serving yet: when
    /// this returns, clients can connect (their requests wait until [`BoundDaemon::serve`]).
    /// What a supervisor (or a test) uses to know the daemon is ready. Must be called within a
    /// tokio runtime.
    pub fn bind(self) -> Result<BoundDaemon<P>> {
        use std::os::unix::fs::PermissionsExt as _;
        if let Some(dir) = self.socket.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::internal(format!("creating {}", dir.display())).with_source(e))?;
        }
        if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("listen unix {}: bind: address already in use", self.socket.display()),
            )
            .with_details("another daemon is listening on this socket"));
        }
        match std::fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::internal("removing a stale socket").with_source(e)),
        }
        // Bind with a restrictive umask so no other user can connect even briefly.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(&self.socket);
        nix::sys::stat::umask(old);
        let listener =
            bound.map_err(|e| Error::internal(format!("binding {}", self.socket.display())).with_source(e))?;
        std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::internal("restricting the socket").with_source(e))?;
        tracing::info!(socket = %self.socket.display(), "daemon listening");
        Ok(BoundDaemon { daemon: self, listener })
    }

    /// [`Daemon::serve`] until SIGTERM or SIGINT.
    pub async fn serve_until_signal(self) -> Result<()> {
        self.bind()?.serve_until_signal().await
    }

    async fn handle(&self, mut stream: UnixStream) {
        let mut stopping = self.stopping.subscribe();
        let read = tokio::time::timeout(self.io_timeout, read_frame(&mut stream, self.max_frame));
        let received = tokio::select! {
            r = read => r,
            // Shutting down: a request that has not arrived yet is not "in flight".
            _ = stopping.wait_for(|s| *s) => {
                tracing::debug!("dropped a connection without a request at shutdown");
                return;
            }
        };
        // A client that went away mid-request may still read (a half-closed socket): answer it,
        // but its absence is no news.
        let mut gone = false;
        let response = match received {
            Ok(Ok(payload)) => match serde_json::from_slice::<WireRequest>(&payload) {
                Ok(req) => self.run(req).await,
                Err(e) => self.reject(WireError::Json(e)),
            },
            Ok(Err(e)) => {
                gone = matches!(e, WireError::Truncated);
                self.reject(e)
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.io_timeout, "a client did not send its request in time; dropped");
                return;
            }
        };
        let bytes = serde_json::to_vec(&response).expect("responses serialise");
        match tokio::time::timeout(self.io_timeout, write_frame(&mut stream, &bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if gone => tracing::debug!(error = %e, "the client is gone"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not answer a client"),
            Err(_) => tracing::warn!(timeout = ?self.io_timeout, "a client did not take its answer in time"),
        }
    }

    fn reject(&self, e: WireError) -> WireResponse {
        if matches!(e, WireError::Truncated) {
            tracing::debug!(error = %e, "rejected a request");
        } else {
            tracing::warn!(error = %e, "rejected a request");
        }
        let err = Error::new(ErrorCode::DecodingFailure, "bad request from the CNI shim").with_details(e.to_string());
        WireResponse::error(&err, self.options.newest_version().as_str())
    }

    async fn run(&self, req: WireRequest) -> WireResponse {
        let stdin = match unb64(&req.stdin) {
            Ok(b) => b,
            Err(e) => return self.reject(e),
        };
        let id = req.env.get("CNI_CONTAINERID").cloned().unwrap_or_default();
        // Per-container serialisation: a second request for the same container waits.
        let lock = (!id.is_empty()).then(|| self.locks.borrow_mut().entry(id.clone()).or_default().clone());
        let _guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input: &[u8] = &stdin;
        let io = Invocation { env: req.env, stdin: &mut input, stdout: &mut out, stderr: &mut err };
        let run = dispatch::run_with(&*self.plugin, &self.options, io, self.services.clone());
        let response = match tokio::time::timeout(self.timeout, run).await {
            Ok(code) => WireResponse { exit_code: code, stdout: b64(&out), stderr: b64(&err) },
            Err(_) => {
                let e =
                    Error::try_again_later(format!("the daemon did not finish the request within {:?}", self.timeout));
                WireResponse::error(&e, self.options.newest_version().as_str())
            }
        };
        drop(_guard);
        if let Some(l) = lock {
            // Forget the lock when nobody else holds or waits for it.
            if Rc::strong_count(&l) == 2 {
                self.locks.borrow_mut().remove(&id);
            }
        }
        response
    }
}

/// A [`Daemon`] whose socket is bound (see [`Daemon::bind`]).
pub struct BoundDaemon<P> {
    daemon: Daemon<P>,
    listener: UnixListener,
}

impl<P> std::fmt::Debug for BoundDaemon<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundDaemon").field("daemon", &self.daemon).finish_non_exhaustive()
    }
}

impl<P: Plugin + 'static> BoundDaemon<P> {
    /// [`BoundDaemon::serve`] until SIGTERM or SIGINT.
    pub async fn serve_until_signal(self) -> Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| Error::internal("signal handler").with_source(e))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::internal("signal handler").with_source(e))?;
        self.serve(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.daemon.socket
    }

    /// Serves until `shutdown` completes; then stops accepting, waits for requests in flight
    /// and removes the socket. Runs its own `LocalSet`, so call it from a current-thread
    /// runtime.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let BoundDaemon { daemon, listener } = self;
        let local = tokio::task::LocalSet::new();
        let this = Rc::new(daemon);
        let served = local
            .run_until(async {
                let mut tasks = tokio::task::JoinSet::new();
                tokio::pin!(shutdown);
                loop {
                    tokio::select! {
                        () = &mut shutdown => break,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => {
                                let this = this.clone();
                                tasks.spawn_local(async move { this.handle(stream).await });
                            }
                            Err(e) => tracing::warn!(error = %e, "accept failed"),
                        },
                        Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    }
                }
                drop(listener);
                // Graceful: finish what is in flight (each request has its own timeout); drop
                // connections whose request has not arrived.
                this.stopping.send_replace(true);
                while tasks.join_next().await.is_some() {}
            })
            .await;
        let _ = std::fs::remove_file(&this.socket);
        tracing::info!("daemon stopped");
        Ok(served)
    }
}

/// Answers VERSION and the about text locally; never runs add/del/check.
struct ShimLocal;

impl Plugin for ShimLocal {
    type Config = ();
    async fn add(&self, _: &Context<Self::Config>) -> Result<CniResult> {
        Err(Error::internal("the shim forwards ADD to its daemon"))
    }
    async fn del(&self, _: &Context<Self::Config>) -> Result<()> {
        Err(Error::internal("the shim forwards DEL to its daemon"))
    }
    async fn check(&self, _: &Context<Self::Config>) -> Result<()> {
        Err(Error::internal("the shim forwards CHECK to its daemon"))
    }
}

/// The process entry of a shim binary: forwards the request to the daemon at `socket` (or
/// `$CNI_DAEMON_SOCKET`) and exits with the daemon's answer.
#[allow(clippy::exit)]
pub fn shim_main(socket: impl AsRef<Path>, options: PluginOptions) -> ! {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let socket =
        env.get(SOCKET_ENV).filter(|s| !s.is_empty()).map_or_else(|| socket.as_ref().to_owned(), PathBuf::from);
    let code = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => {
            let mut stdin = std::io::stdin().lock();
            let mut stdout = std::io::stdout().lock();
            let mut stderr = std::io::stderr();
            let io = Invocation { env, stdin: &mut stdin, stdout: &mut stdout, stderr: &mut stderr };
            rt.block_on(shim_run(&socket, &options, io))
        }
        Err(_) => dispatch::EXIT_FAILURE,
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The shim with injected I/O (see [`shim_main`]); returns the exit code.
pub async fn shim_run(socket: &Path, options: &PluginOptions, io: Invocation<'_>) -> i32 {
    let Invocation { env, stdin, stdout, stderr } = io;
    let cmd = env.get("CNI_COMMAND").filter(|c| !c.is_empty()).and_then(|c| c.parse::<Command>().ok());
    if cmd.is_none() || cmd == Some(Command::Version) {
        // About text, VERSION and unknown verbs: the dispatcher answers without a daemon.
        let io = Invocation { env, stdin, stdout, stderr };
        return dispatch::run(&ShimLocal, options, io).await;
    }
    let cmd = cmd.expect("checked above");
    // The same cap (and error) as the dispatcher's: a configuration is never cut short.
    let buf = match dispatch::read_capped(stdin, options.max_stdin) {
        Ok(b) => b,
        Err(err) => return print_error(stdout, &err, options.newest_version().as_str()),
    };
    let version = config_version(&buf, options);
    let netns_gone = env.get("CNI_NETNS").is_none_or(|p| p.is_empty() || !Path::new(p).exists());
    let request = WireRequest::new(env, &buf);
    let size = serde_json::to_vec(&request).map_or(usize::MAX, |v| v.len());
    if size > DEFAULT_MAX_FRAME {
        let err = Error::new(
            ErrorCode::IoFailure,
            format!("the request of {size} bytes exceeds the daemon protocol's limit of {DEFAULT_MAX_FRAME} bytes"),
        );
        return print_error(stdout, &err, &version);
    }
    match forward(socket, &request).await {
        Ok(resp) => {
            let (out, err) = (unb64(&resp.stdout).unwrap_or_default(), unb64(&resp.stderr).unwrap_or_default());
            let _ = stderr.write_all(&err);
            let _ = stdout.write_all(&out);
            let _ = stdout.flush();
            resp.exit_code
        }
        Err(e) => {
            let why = format!("{}: {e}", socket.display());
            match cmd {
                Command::Del if netns_gone => {
                    let _ =
                        writeln!(stderr, "CNI daemon unreachable ({why}); the container's namespace is gone, DEL done");
                    dispatch::EXIT_SUCCESS
                }
                Command::Status => {
                    let err = Error::not_available("the plugin's daemon is not running").with_details(why);
                    print_error(stdout, &err, &version)
                }
                _ => {
                    let err = Error::try_again_later("the plugin's daemon is not reachable").with_details(why);
                    print_error(stdout, &err, &version)
                }
            }
        }
    }
}

fn config_version(stdin: &[u8], options: &PluginOptions) -> String {
    serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(|s| s.as_str()).map(str::to_owned))
        .filter(|v| v.parse::<cni_types::SpecVersion>().is_ok_and(|sv| options.supported_versions().contains(&sv)))
        .unwrap_or_else(|| options.newest_version().as_str().to_owned())
}

fn print_error(stdout: &mut dyn Write, err: &Error, version: &str) -> i32 {
    let obj = err.to_cni_error(version);
    let _ = serde_json::to_writer_pretty(&mut *stdout, &obj);
    let _ = stdout.flush();
    dispatch::EXIT_FAILURE
}

/// Why [`forward`] got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The daemon's socket could not be connected to (missing, refused, no permission): the
    /// daemon is not running.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The connection was made but the exchange failed.
    #[error(transparent)]
    Exchange(#[from] WireError),
}

/// Sends `request` to the daemon listening on `socket` and returns its answer.
pub async fn forward(socket: &Path, request: &WireRequest) -> Result<WireResponse, ForwardError> {
    let mut stream = UnixStream::connect(socket).await.map_err(ForwardError::Connect)?;
    write_frame(&mut stream, &serde_json::to_vec(request).map_err(WireError::Json)?).await.map_err(WireError::Io)?;
    let payload = read_frame(&mut stream, DEFAULT_MAX_FRAME).await?;
    Ok(serde_json::from_slice(&payload).map_err(WireError::Json)?)
}
