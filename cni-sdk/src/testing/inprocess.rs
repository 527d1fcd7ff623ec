//! [`InProcessExec`]: plugins served from the test process instead of `CNI_PATH`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cni_types::CniResult;

use crate::exec::{Exec, ExecRequest, RawOutput, check_plugin_name};
use crate::{Command, Error, Plugin, PluginOptions, Services};

/// A handler for an in-process plugin.
type Handler = Arc<dyn Fn(ExecRequest) -> RawOutput + Send + Sync>;

/// Serves plugin types from this process (for tests): register a [`Plugin`] value or a closure
/// under a type name; unregistered types fail like a missing binary.
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
    /// fake network, or another `InProcessExec` for its own delegates).
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
        let handler = move |req: ExecRequest| {
            let (plugin, options, services) = (plugin.clone(), options.clone(), services.clone());
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
                let code = rt.block_on(crate::dispatch::run_with(&*plugin, &options, io, services));
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

impl Exec for InProcessExec {
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        let Some(handler) = self.handlers.get(&request.plugin_type).cloned() else {
            check_plugin_name(&request.plugin_type)?;
            let msg = format!("failed to find plugin {:?} in path [in-process]", request.plugin_type);
            return Err(Error::plugin_not_found(msg));
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
            Err(_) => Err(Error::timeout(format!("plugin {plugin_type:?} timed out after {timeout:?}"))),
        }
    }
}
