//! Finding and executing plugins: the part of delegation (and of the runtime side) that touches
//! processes, behind the [`Exec`] trait so tests can serve plugins in-process.
//!
//! [`ProcessExec`] follows libcni: plugin lookup with `FindInPath`'s rules ([`find_in_path`]),
//! stdin = configuration bytes, the given environment, a timeout, the child killed when the call
//! is dropped, and the "text file busy" retry. [`InProcessExec`] maps plugin types to in-process
//! handlers (a [`Plugin`] value or a closure).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cni_types::{CniError, CniResult, ErrorCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{Command, Error, Plugin, PluginOptions};

/// The default time a delegated plugin may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of a child's stderr is kept for error messages (it is always passed through whole).
const STDERR_KEEP: usize = 64 << 10;

/// One plugin execution.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// The plugin type (binary name).
    pub plugin_type: String,
    /// Directories to search (`CNI_PATH`).
    pub cni_path: Vec<PathBuf>,
    /// The complete environment of the child (nothing else is inherited).
    pub env: BTreeMap<String, String>,
    /// Bytes for stdin.
    pub stdin: Vec<u8>,
    /// Kill the plugin after this long.
    pub timeout: Duration,
}

impl ExecRequest {
    /// The verb in `CNI_COMMAND`, if it names one.
    pub fn command(&self) -> Option<Command> {
        self.env.get("CNI_COMMAND").and_then(|c| c.parse().ok())
    }
}

/// What a plugin process left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawOutput {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: Vec<u8>,
    /// The first 64 KiB of stderr.
    pub stderr: Vec<u8>,
}

impl RawOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs plugins. Implemented by [`ProcessExec`] (real binaries) and [`InProcessExec`].
#[async_trait::async_trait]
pub trait Exec: Send + Sync + fmt::Debug {
    /// Runs one plugin to completion. Errors are failures to run it at all (not found, spawn
    /// failure, timeout); a plugin that ran and failed is an `Ok` with a non-zero code.
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput>;
}

/// Finds a plugin binary the way libcni's `FindInPath` does: the name must be non-empty and
/// contain no `/`; the first regular file named `plugin_type` in `paths` wins.
pub fn find_in_path(plugin_type: &str, paths: &[PathBuf]) -> crate::Result<PathBuf> {
    check_plugin_name(plugin_type)?;
    if paths.is_empty() {
        return Err(Error::invalid_config("no paths provided"));
    }
    for dir in paths {
        let candidate = dir.join(plugin_type);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
    }
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Err(Error::invalid_config(format!("failed to find plugin {plugin_type:?} in path [{}]", list.join(" "))))
}

fn check_plugin_name(plugin_type: &str) -> crate::Result<()> {
    if plugin_type.is_empty() {
        return Err(Error::invalid_config("no plugin name provided"));
    }
    if plugin_type.contains('/') {
        return Err(Error::invalid_config(format!("invalid plugin name: {plugin_type}")));
    }
    Ok(())
}

/// Executes real plugin binaries with `tokio::process`.
#[derive(Clone, Debug, Default)]
pub struct ProcessExec {
    _priv: (),
}

impl ProcessExec {
    /// A process executor.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl Exec for ProcessExec {
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        let path = find_in_path(&request.plugin_type, &request.cni_path)?;
        let run = run_process(&path, &request);
        match tokio::time::timeout(request.timeout, run).await {
            Ok(out) => out,
            Err(_) => Err(Error::new(
                ErrorCode::TryAgainLater,
                format!("plugin {:?} timed out after {:?} and was killed", request.plugin_type, request.timeout),
            )),
        }
    }
}

async fn run_process(path: &Path, request: &ExecRequest) -> crate::Result<RawOutput> {
    let mut attempt = 0;
    let mut child = loop {
        let spawned = tokio::process::Command::new(path)
            .env_clear()
            .envs(&request.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => break child,
            // A binary being written right now (libcni retries this too).
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(Error::internal(format!("failed to execute plugin {}", path.display())).with_source(e));
            }
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let input = request.stdin.clone();
    let write = async move {
        // A plugin may exit without reading stdin (VERSION); that is not an error.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    };
    let read_out = async {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).await.map(|_| buf)
    };
    let read_err = async {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Pass the delegate's diagnostics through to our stderr.
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), &chunk[..n]);
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
        kept
    };
    let ((), out, err) = tokio::join!(write, read_out, read_err);
    let out = out.map_err(|e| Error::new(ErrorCode::IoFailure, "failed to read plugin output").with_source(e))?;
    let status = child.wait().await.map_err(|e| Error::internal("failed to wait for plugin").with_source(e))?;
    Ok(RawOutput { code: status.code(), stdout: out, stderr: err })
}

/// Interprets a plugin's output with libcni's rules: success → stdout; failure → the error
/// object on stdout, or libcni's fallback messages when there is none.
pub fn check_output(plugin_type: &str, out: &RawOutput) -> crate::Result<Vec<u8>> {
    if out.success() {
        return Ok(out.stdout.clone());
    }
    let exit = match out.code {
        Some(c) => format!("exit status {c}"),
        None => "signal: killed".to_owned(),
    };
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        let msg = if stderr.is_empty() {
            format!("netplugin failed with no error message: {exit}")
        } else {
            format!("netplugin failed: {stderr:?}: {exit}")
        };
        return Err(Error::internal(msg).with_details(format!("plugin {plugin_type}")));
    }
    match serde_json::from_slice::<CniError>(&out.stdout) {
        Ok(e) => Err(e.into()),
        Err(parse) => {
            let text = String::from_utf8_lossy(&out.stdout);
            Err(Error::internal(format!("netplugin failed but error parsing its diagnostic message {text:?}: {parse}")))
        }
    }
}

/// Parses an ADD result from a plugin's stdout: a missing `cniVersion` means the
/// configuration's, and `null` is an empty result (libcni's fix-ups).
pub fn parse_result(stdout: &[u8], config_version: &str) -> crate::Result<CniResult> {
    CniResult::parse(stdout, config_version).map_err(|e| {
        Error::new(ErrorCode::DecodingFailure, "failed to parse the delegated plugin's result").with_source(e)
    })
}

/// A handler for an in-process plugin.
type Handler = Arc<dyn Fn(ExecRequest) -> RawOutput + Send + Sync>;

/// Serves plugin types from this process (for tests): register a [`Plugin`] value or a closure
/// under a type name; unregistered types fail like a missing binary.
///
/// ```
/// use cni_sdk::exec::{Exec, ExecRequest, InProcessExec};
/// use cni_sdk::{CniResult, Command, IpConfig};
///
/// let exec = InProcessExec::new().with_fn("fake-ipam", |cmd, _stdin| match cmd {
///     Command::Add => {
///         let mut r = CniResult::default();
///         r.ips.push(IpConfig::new("10.230.0.7/24".parse().unwrap()));
///         Ok(Some(r))
///     }
///     _ => Ok(None),
/// });
/// assert_eq!(exec.calls().len(), 0);
/// ```
#[derive(Clone, Default)]
pub struct InProcessExec {
    handlers: HashMap<String, Handler>,
    calls: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl fmt::Debug for InProcessExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&String> = self.handlers.keys().collect();
        types.sort();
        f.debug_struct("InProcessExec").field("types", &types).finish_non_exhaustive()
    }
}

impl InProcessExec {
    /// No plugins.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `plugin_type` with a closure that gets the verb and the stdin bytes and returns a
    /// result (printed in the request's version), nothing, or an error.
    #[must_use]
    pub fn with_fn<F>(mut self, plugin_type: &str, f: F) -> Self
    where
        F: Fn(Command, &[u8]) -> crate::Result<Option<CniResult>> + Send + Sync + 'static,
    {
        let handler = move |req: ExecRequest| {
            let version = serde_json::from_slice::<serde_json::Value>(&req.stdin)
                .ok()
                .and_then(|v| v.get("cniVersion").and_then(|s| s.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let cmd = req.command().unwrap_or(Command::Version);
            let printed = f(cmd, &req.stdin).and_then(|r| match r {
                None => Ok(Vec::new()),
                Some(r) => {
                    let v = version.parse().map_err(|e: cni_types::VersionError| Error::internal(e.to_string()))?;
                    let doc = r.to_value(v).map_err(|e| Error::internal(e.to_string()))?;
                    Ok(serde_json::to_vec(&doc).expect("JSON values serialise"))
                }
            });
            match printed {
                Ok(stdout) => RawOutput { code: Some(0), stdout, stderr: Vec::new() },
                Err(e) => RawOutput {
                    code: Some(1),
                    stdout: serde_json::to_vec(&e.to_cni_error(&version)).expect("errors serialise"),
                    stderr: Vec::new(),
                },
            }
        };
        self.handlers.insert(plugin_type.to_owned(), Arc::new(handler));
        self
    }

    /// Serves `plugin_type` as a fake IPAM plugin: `result` on ADD (in the request's version),
    /// success without output for every other verb.
    #[must_use]
    pub fn with_ipam_result(self, plugin_type: &str, result: CniResult) -> Self {
        self.with_fn(plugin_type, move |cmd, _| match cmd {
            Command::Add => Ok(Some(result.clone())),
            _ => Ok(None),
        })
    }

    /// Serves `plugin_type` with a real [`Plugin`] value, run through the same dispatcher as a
    /// binary (on a dedicated thread with its own current-thread runtime).
    #[must_use]
    pub fn with_plugin<P>(mut self, plugin_type: &str, plugin: P, options: PluginOptions) -> Self
    where
        P: Plugin + Send + Sync + 'static,
    {
        let plugin = Arc::new(plugin);
        let options = Arc::new(options);
        let handler = move |req: ExecRequest| {
            let (plugin, options) = (plugin.clone(), options.clone());
            let joined = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
                let mut stdin: &[u8] = &req.stdin;
                let io = crate::dispatch::Invocation {
                    env: req.env,
                    stdin: &mut stdin,
                    stdout: &mut stdout,
                    stderr: &mut stderr,
                };
                let code = rt.block_on(crate::dispatch::run(&*plugin, &options, io));
                RawOutput { code: Some(code), stdout, stderr }
            })
            .join();
            joined.unwrap_or_else(|_| RawOutput {
                code: None,
                stdout: Vec::new(),
                stderr: b"in-process plugin thread panicked".to_vec(),
            })
        };
        self.handlers.insert(plugin_type.to_owned(), Arc::new(handler));
        self
    }

    /// `(plugin type, verb)` of every call so far, in order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Exec for InProcessExec {
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        let Some(handler) = self.handlers.get(&request.plugin_type).cloned() else {
            check_plugin_name(&request.plugin_type)?;
            let msg = format!("failed to find plugin {:?} in path [in-process]", request.plugin_type);
            return Err(Error::invalid_config(msg));
        };
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((request.plugin_type.clone(), request.env.get("CNI_COMMAND").cloned().unwrap_or_default()));
        }
        let timeout = request.timeout;
        let plugin_type = request.plugin_type.clone();
        let task = tokio::task::spawn_blocking(move || handler(request));
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(join)) => Err(Error::internal(format!("in-process plugin {plugin_type:?} failed: {join}"))),
            Err(_) => {
                Err(Error::new(ErrorCode::TryAgainLater, format!("plugin {plugin_type:?} timed out after {timeout:?}")))
            }
        }
    }
}
