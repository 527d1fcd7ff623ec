//! [`InProcessExec`]: plugins served from the test process instead of `CNI_PATH`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_types::{ArgsError, CniArgs, CniResult};
use serde_json::Value;

use crate::exec::{Exec, ExecRequest, RawOutput, check_plugin_name};
use crate::{Command, Error, Plugin, PluginOptions, Services};

/// Set when a call is given up on: its deadline passed or its caller went away.
#[derive(Debug, Default)]
struct CancelFlag {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl CancelFlag {
    fn cancel(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// One call of an in-process plugin: the whole request (environment and stdin) with accessors,
/// and whether the caller has given up on it.
///
/// Handlers get it ([`InProcessExec::with_call`], [`InProcessExec::with_async`]) and
/// [`InProcessExec::requests`] records it.
#[derive(Clone, Debug)]
pub struct InProcessCall {
    request: ExecRequest,
    deadline: Instant,
    cancel: Arc<CancelFlag>,
}

impl InProcessCall {
    fn new(request: ExecRequest) -> Self {
        // A timeout too large to add is as good as none: a year from now.
        let now = Instant::now();
        let deadline = now.checked_add(request.timeout).unwrap_or(now + Duration::from_secs(86_400 * 365));
        Self { request, deadline, cancel: Arc::default() }
    }

    /// The request exactly as the executor got it.
    pub fn request(&self) -> &ExecRequest {
        &self.request
    }

    /// The plugin type called.
    pub fn plugin_type(&self) -> &str {
        &self.request.plugin_type
    }

    /// The verb (`None` when `CNI_COMMAND` is missing or not a verb).
    pub fn command(&self) -> Option<Command> {
        self.request.command()
    }

    /// An environment variable of the call.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.request.env.get(key).map(String::as_str)
    }

    /// `CNI_CONTAINERID` (empty when unset).
    pub fn container_id(&self) -> &str {
        self.env("CNI_CONTAINERID").unwrap_or_default()
    }

    /// `CNI_NETNS` (empty when unset).
    pub fn netns(&self) -> &str {
        self.env("CNI_NETNS").unwrap_or_default()
    }

    /// `CNI_IFNAME` (empty when unset).
    pub fn ifname(&self) -> &str {
        self.env("CNI_IFNAME").unwrap_or_default()
    }

    /// `CNI_ARGS`, parsed (empty when unset).
    pub fn args(&self) -> Result<CniArgs, ArgsError> {
        CniArgs::parse(self.env("CNI_ARGS").unwrap_or_default())
    }

    /// The stdin bytes.
    pub fn stdin(&self) -> &[u8] {
        &self.request.stdin
    }

    /// stdin as JSON (`Value::Null` when it is not JSON).
    pub fn config(&self) -> Value {
        serde_json::from_slice(&self.request.stdin).unwrap_or(Value::Null)
    }

    /// `cniVersion` of the configuration (empty when missing).
    pub fn cni_version(&self) -> String {
        self.config().get("cniVersion").and_then(Value::as_str).unwrap_or_default().to_owned()
    }

    /// When the caller stops waiting (the request's timeout, counted from the call).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the caller gave up on this call (timed out, or the calling future was dropped,
    /// e.g. by a runtime's cancellation). A blocking handler should look at it and stop; async
    /// handlers and plugin values are stopped for it.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.set.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }

    /// Completes when the caller gives up on this call.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.cancel.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.cancel.set.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = RawOutput> + Send + 'static>>;

/// How a plugin type is served.
#[derive(Clone)]
enum Handler {
    /// A blocking function, run on tokio's blocking pool (it cannot be stopped; it can look at
    /// [`InProcessCall::is_cancelled`]).
    Blocking(Arc<dyn Fn(&InProcessCall) -> RawOutput + Send + Sync>),
    /// A future, run as a task and aborted when the call is given up on.
    Async(Arc<dyn Fn(InProcessCall) -> BoxFuture + Send + Sync>),
}

/// Serves plugin types from this process (for tests): register a [`Plugin`] value or a closure
/// under a type name; unregistered types fail like a missing binary.
///
/// Handlers come in four shapes: [`InProcessExec::with_fn`] (verb and stdin),
/// [`InProcessExec::with_call`] (the whole request: `CNI_ARGS`, `CNI_IFNAME`, `CNI_NETNS`, ...),
/// [`InProcessExec::with_async`] (the whole request, async) and [`InProcessExec::with_raw`]
/// (the whole request, raw exit code and output, to act out crashing plugins); plus real
/// [`Plugin`] values ([`InProcessExec::with_plugin`]). Every call is recorded with its whole
/// request ([`InProcessExec::requests`]).
///
/// Deadlines are honoured: when the request's timeout passes or the calling future is dropped,
/// the call fails (timeout) or is abandoned, an async handler or a plugin value is stopped at
/// its next `.await`, and a blocking handler sees [`InProcessCall::is_cancelled`].
///
/// ```
/// use cni_sdk::testing::InProcessExec;
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
///
/// // A handler that sees the whole request: here, one address per interface name.
/// let exec = InProcessExec::new().with_call("per-if", |call| {
///     let mut r = CniResult::default();
///     let host = if call.ifname() == "eth0" { 2 } else { 3 };
///     r.ips.push(IpConfig::new(format!("10.230.0.{host}/24").parse().unwrap()));
///     Ok(Some(r))
/// });
/// ```
#[derive(Clone, Default)]
pub struct InProcessExec {
    handlers: HashMap<String, Handler>,
    calls: Arc<Mutex<Vec<InProcessCall>>>,
}

impl fmt::Debug for InProcessExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&String> = self.handlers.keys().collect();
        types.sort();
        f.debug_struct("InProcessExec").field("types", &types).finish_non_exhaustive()
    }
}

/// Prints a handler's outcome as a plugin would: the result in the request's version, nothing,
/// or an error object with exit code 1.
fn print_outcome(version: &str, outcome: crate::Result<Option<CniResult>>) -> RawOutput {
    let printed = outcome.and_then(|r| match r {
        None => Ok(Vec::new()),
        Some(r) => {
            let v = version.parse().map_err(|e: cni_types::VersionError| Error::internal(e.to_string()))?;
            let doc = r.to_value(v).map_err(|e| Error::internal(e.to_string()))?;
            serde_json::to_vec(&doc).map_err(|e| Error::internal(e.to_string()))
        }
    });
    match printed {
        Ok(stdout) => RawOutput { code: Some(0), stdout, stderr: Vec::new() },
        Err(e) => RawOutput {
            code: Some(1),
            stdout: serde_json::to_vec(&e.to_cni_error(version)).unwrap_or_default(),
            stderr: Vec::new(),
        },
    }
}

/// Cancels the call (and aborts its task) if the exec future is dropped before it finished.
struct GiveUpOnDrop {
    cancel: Arc<CancelFlag>,
    task: Option<tokio::task::AbortHandle>,
    armed: bool,
}

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.cancel.cancel();
            if let Some(t) = &self.task {
                t.abort();
            }
        }
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
    pub fn with_fn<F>(self, plugin_type: &str, f: F) -> Self
    where
        F: Fn(Command, &[u8]) -> crate::Result<Option<CniResult>> + Send + Sync + 'static,
    {
        self.with_call(plugin_type, move |call| f(call.command().unwrap_or(Command::Version), call.stdin()))
    }

    /// Serves `plugin_type` with a blocking closure that sees the whole request (environment
    /// and stdin, see [`InProcessCall`]) and returns a result (printed in the request's
    /// version), nothing, or an error.
    #[must_use]
    pub fn with_call<F>(mut self, plugin_type: &str, f: F) -> Self
    where
        F: Fn(&InProcessCall) -> crate::Result<Option<CniResult>> + Send + Sync + 'static,
    {
        let handler = move |call: &InProcessCall| print_outcome(&call.cni_version(), f(call));
        self.handlers.insert(plugin_type.to_owned(), Handler::Blocking(Arc::new(handler)));
        self
    }

    /// Serves `plugin_type` with an async closure that sees the whole request; the future runs
    /// as a task and is aborted when the caller gives up on the call.
    #[must_use]
    pub fn with_async<F, Fut>(mut self, plugin_type: &str, f: F) -> Self
    where
        F: Fn(InProcessCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = crate::Result<Option<CniResult>>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler = move |call: InProcessCall| -> BoxFuture {
            let f = f.clone();
            Box::pin(async move {
                let version = call.cni_version();
                print_outcome(&version, f(call).await)
            })
        };
        self.handlers.insert(plugin_type.to_owned(), Handler::Async(Arc::new(handler)));
        self
    }

    /// Serves `plugin_type` with a blocking closure that returns the raw exit code, stdout and
    /// stderr (a plugin that crashes, prints garbage or writes only to stderr).
    #[must_use]
    pub fn with_raw<F>(mut self, plugin_type: &str, f: F) -> Self
    where
        F: Fn(&InProcessCall) -> RawOutput + Send + Sync + 'static,
    {
        self.handlers.insert(plugin_type.to_owned(), Handler::Blocking(Arc::new(f)));
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
    /// binary (on a dedicated thread with its own current-thread runtime), with no services:
    /// its own delegations and namespace accesses fail (see
    /// [`InProcessExec::with_plugin_services`]).
    #[must_use]
    pub fn with_plugin<P>(self, plugin_type: &str, plugin: P, options: PluginOptions) -> Self
    where
        P: Plugin + Send + Sync + 'static,
    {
        self.with_plugin_services(plugin_type, plugin, options, Services::unavailable())
    }

    /// Like [`InProcessExec::with_plugin`], with the services the plugin runs with (e.g. a
    /// fake network, or another `InProcessExec` for its own delegates). A call given up on
    /// stops the plugin at its next `.await` (it exits as if killed).
    #[must_use]
    pub fn with_plugin_services<P>(
        mut self,
        plugin_type: &str,
        plugin: P,
        options: PluginOptions,
        services: Services,
    ) -> Self
    where
        P: Plugin + Send + Sync + 'static,
    {
        let plugin = Arc::new(plugin);
        let options = Arc::new(options);
        let handler = move |call: &InProcessCall| {
            let (plugin, options, services, call) = (plugin.clone(), options.clone(), services.clone(), call.clone());
            let joined = std::thread::spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        return RawOutput { code: Some(1), stdout: Vec::new(), stderr: e.to_string().into_bytes() };
                    }
                };
                let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
                let mut stdin: &[u8] = &call.request.stdin;
                let io = crate::dispatch::Invocation {
                    env: call.request.env.clone(),
                    stdin: &mut stdin,
                    stdout: &mut stdout,
                    stderr: &mut stderr,
                };
                let run = crate::dispatch::run_with(&*plugin, &options, io, services);
                // The executor cancels the call when it stops waiting (timeout or drop).
                let code = rt.block_on(async {
                    match futures_util::future::select(std::pin::pin!(run), std::pin::pin!(call.cancelled())).await {
                        futures_util::future::Either::Left((code, _)) => Some(code),
                        futures_util::future::Either::Right(_) => None,
                    }
                });
                RawOutput { code, stdout, stderr }
            })
            .join();
            joined.unwrap_or_else(|_| RawOutput {
                code: None,
                stdout: Vec::new(),
                stderr: b"in-process plugin thread panicked".to_vec(),
            })
        };
        self.handlers.insert(plugin_type.to_owned(), Handler::Blocking(Arc::new(handler)));
        self
    }

    /// `(plugin type, verb)` of every call so far, in order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.requests()
            .iter()
            .map(|c| (c.plugin_type().to_owned(), c.env("CNI_COMMAND").unwrap_or_default().to_owned()))
            .collect()
    }

    /// Every call so far, in the order they started, with the whole request.
    pub fn requests(&self) -> Vec<InProcessCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Forgets the recorded calls.
    pub fn clear_requests(&self) {
        if let Ok(mut c) = self.calls.lock() {
            c.clear();
        }
    }
}

impl Exec for InProcessExec {
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        let Some(handler) = self.handlers.get(&request.plugin_type).cloned() else {
            check_plugin_name(&request.plugin_type)?;
            let msg = format!("failed to find plugin {:?} in path [in-process]", request.plugin_type);
            return Err(Error::plugin_not_found(msg));
        };
        let timeout = request.timeout;
        let plugin_type = request.plugin_type.clone();
        let call = InProcessCall::new(request);
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call.clone());
        }
        let mut guard = GiveUpOnDrop { cancel: call.cancel.clone(), task: None, armed: true };
        let finished = match handler {
            Handler::Blocking(f) => {
                let c = call.clone();
                let task = tokio::task::spawn_blocking(move || f(&c));
                tokio::time::timeout(timeout, task).await
            }
            Handler::Async(f) => {
                let task = tokio::spawn(f(call.clone()));
                guard.task = Some(task.abort_handle());
                tokio::time::timeout(timeout, task).await
            }
        };
        let late = || Error::timeout(format!("plugin {plugin_type:?} timed out after {timeout:?} and was stopped"));
        match finished {
            // A handler that only finished because it saw its deadline pass is still late.
            Ok(Ok(_)) if Instant::now() >= call.deadline => Err(late()),
            Ok(Ok(out)) => {
                guard.armed = false;
                Ok(out)
            }
            Ok(Err(join)) => {
                guard.armed = false;
                Err(Error::internal(format!("in-process plugin {plugin_type:?} failed: {join}")))
            }
            // The guard cancels the call and aborts an async handler.
            Err(_) => {
                Err(Error::timeout(format!("plugin {plugin_type:?} timed out after {timeout:?} and was stopped")))
            }
        }
    }
}
