//! Finding and executing plugins: the part of delegation (and of the runtime side) that touches
//! processes, behind the [`Exec`] trait so tests can serve plugins in-process.
//!
//! [`ProcessExec`] (feature `exec`) follows libcni: plugin lookup with `FindInPath`'s rules
//! ([`find_in_path`]), stdin = configuration bytes, the given environment, a timeout, the child
//! killed when the call is dropped, and the "text file busy" retry. In tests, plugins are served
//! in-process by `cni_sdk::testing::InProcessExec` (feature `test-util`).
//!
//! Implementing [`Exec`] needs no extra crate: it is a plain trait with an `async fn`.
//!
//! ```
//! use cni_sdk::exec::{Exec, ExecRequest, RawOutput};
//!
//! /// Answers every call with an empty success.
//! #[derive(Debug)]
//! struct Nothing;
//!
//! impl Exec for Nothing {
//!     async fn exec(&self, _request: ExecRequest) -> cni_sdk::Result<RawOutput> {
//!         Ok(RawOutput { code: Some(0), ..RawOutput::default() })
//!     }
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cni_types::{CniError, CniResult, ErrorCode};

use crate::{Command, Error, ErrorKind};

#[cfg(feature = "exec")]
mod process;
#[cfg(feature = "exec")]
pub use process::{PluginStderr, ProcessExec, StderrLine};

/// The default time a delegated plugin may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Runs plugins. Implemented by [`ProcessExec`] (real binaries) and the test kit's
/// `InProcessExec`.
pub trait Exec: Send + Sync + fmt::Debug {
    /// Runs one plugin to completion. Errors are failures to run it at all (not found, spawn
    /// failure, timeout); a plugin that ran and failed is an `Ok` with a non-zero code.
    fn exec(&self, request: ExecRequest) -> impl Future<Output = crate::Result<RawOutput>> + Send;
}

/// The object-safe form of [`Exec`], for holding any executor behind one pointer.
pub(crate) trait DynExec: Send + Sync + fmt::Debug {
    fn exec_boxed(&self, request: ExecRequest) -> Pin<Box<dyn Future<Output = crate::Result<RawOutput>> + Send + '_>>;
}

impl<T: Exec> DynExec for T {
    fn exec_boxed(&self, request: ExecRequest) -> Pin<Box<dyn Future<Output = crate::Result<RawOutput>> + Send + '_>> {
        Box::pin(self.exec(request))
    }
}

/// A shared executor of any type.
pub(crate) type SharedExec = Arc<dyn DynExec>;

/// The executor of a build without the `exec` feature: every call fails with
/// [`ErrorKind::NotSupported`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoExec;

impl Exec for NoExec {
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        Err(Error::from_kind(
            ErrorKind::NotSupported,
            format!("cannot run plugin {:?}: built without the `exec` feature of cni-sdk", request.plugin_type),
        ))
    }
}

/// The executor the generated `main` uses: processes with feature `exec`, else [`NoExec`].
pub(crate) fn system() -> SharedExec {
    #[cfg(feature = "exec")]
    {
        Arc::new(ProcessExec::new())
    }
    #[cfg(not(feature = "exec"))]
    {
        Arc::new(NoExec)
    }
}

/// Finds a plugin binary the way libcni's `FindInPath` does: the name must be non-empty and
/// contain no `/`; the first regular file named `plugin_type` in `paths` wins.
pub fn find_in_path(plugin_type: &str, paths: &[PathBuf]) -> crate::Result<PathBuf> {
    check_plugin_name(plugin_type)?;
    if paths.is_empty() {
        return Err(Error::plugin_not_found("no paths provided"));
    }
    for dir in paths {
        let candidate = dir.join(plugin_type);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
    }
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Err(Error::plugin_not_found(format!("failed to find plugin {plugin_type:?} in path [{}]", list.join(" "))))
}

pub(crate) fn check_plugin_name(plugin_type: &str) -> crate::Result<()> {
    if plugin_type.is_empty() {
        return Err(Error::invalid_config("no plugin name provided"));
    }
    if plugin_type.contains('/') {
        return Err(Error::invalid_config(format!("invalid plugin name: {plugin_type}")));
    }
    Ok(())
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
