//! Delegating to other plugins (IPAM, chained or meta plugins) from a plugin method.
//!
//! ```no_run
//! # use cni_sdk::{Context, CniResult, Result};
//! # async fn add(cx: &Context<()>) -> Result<CniResult> {
//! // Run the configured IPAM plugin; if anything after it fails, its ADD is undone with DEL.
//! let result = cx
//!     .ipam()?
//!     .add_with_rollback(|ipam| async move {
//!         // ... configure the interface with ipam.ips ...
//!         Ok(ipam)
//!     })
//!     .await?;
//! # Ok(result) }
//! ```
//!
//! Delegates get the calling plugin's whole environment with `CNI_COMMAND` replaced (as Go's
//! `invoke.Delegate*`), the configuration bytes the plugin received on stdin, and their stderr is
//! passed through. Plugins are found in `CNI_PATH` with libcni's rules, or served in-process in
//! tests (see `cni_sdk::testing::InProcessExec`, feature `test-util`).

use std::future::Future;
use std::time::Duration;

use cni_types::{CniError, CniResult, SpecVersion};

use crate::exec::{self, DEFAULT_TIMEOUT, ExecRequest, RawOutput, SharedExec};
use crate::{Command, Context, Error, ErrorKind, Result};

/// A call to another plugin, built from a [`Context`].
#[must_use = "a Delegate does nothing until one of its verbs is awaited"]
pub struct Delegate<'a> {
    plugin_type: String,
    exec: SharedExec,
    env: &'a std::collections::BTreeMap<String, String>,
    cni_path: &'a [std::path::PathBuf],
    stdin: Vec<u8>,
    version: SpecVersion,
    timeout: Duration,
    overrides: Vec<(String, String)>,
}

impl std::fmt::Debug for Delegate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegate")
            .field("plugin_type", &self.plugin_type)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<C> Context<C> {
    /// A call to the plugin `plugin_type` with this request's configuration bytes.
    pub fn delegate(&self, plugin_type: &str) -> Delegate<'_> {
        Delegate {
            plugin_type: plugin_type.to_owned(),
            exec: self.request.services.exec.clone(),
            env: &self.request.env,
            cni_path: &self.request.cni_path,
            stdin: self.request.raw_config.to_vec(),
            version: self.request.version,
            timeout: DEFAULT_TIMEOUT,
            overrides: Vec::new(),
        }
    }

    /// A call to the IPAM plugin named by `ipam.type` (code 7 when the configuration has none).
    pub fn ipam(&self) -> Result<Delegate<'_>> {
        let ipam_type = self.config.ipam.as_ref().map(|i| i.plugin_type.as_str()).unwrap_or_default();
        if ipam_type.is_empty() {
            return Err(Error::invalid_config("the network configuration has no \"ipam\" section with a \"type\""));
        }
        Ok(self.delegate(ipam_type))
    }
}

impl Delegate<'_> {
    /// Sends these bytes instead of the plugin's own configuration (meta plugins).
    pub fn stdin(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.stdin = config.into();
        self
    }

    /// Parses results as this version (default: the negotiated version of the request).
    pub fn version(mut self, version: SpecVersion) -> Self {
        self.version = version;
        self
    }

    /// Overrides one environment variable for the delegate (e.g. `CNI_IFNAME` for a meta
    /// plugin's second interface). `CNI_COMMAND` is always set by the verb.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.overrides.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Kills the delegate after `timeout` (default 60 s); the call then fails with code 11.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the delegate for `cmd`: its raw output, or why it could not run to the end (not
    /// found, not startable, killed after the timeout).
    async fn run(&self, cmd: Command) -> Result<RawOutput> {
        let mut env = self.env.clone();
        env.extend(self.overrides.iter().cloned());
        env.insert("CNI_COMMAND".to_owned(), cmd.as_str().to_owned());
        let request = ExecRequest {
            plugin_type: self.plugin_type.clone(),
            cni_path: self.cni_path.to_vec(),
            env,
            stdin: self.stdin.clone(),
            timeout: self.timeout,
        };
        tracing::debug!(plugin = %self.plugin_type, verb = %cmd, "delegating");
        self.exec
            .exec_boxed(request)
            .await
            .map_err(|e| e.context(format!("delegating {cmd} to {:?}", self.plugin_type)))
    }

    async fn call(&self, cmd: Command) -> Result<Vec<u8>> {
        let out = self.run(cmd).await?;
        exec::check_output(&self.plugin_type, &out)
    }

    /// ADD, telling a failure the delegate reported (an error object: it undid its own work)
    /// from one that leaves its state unknown (`true`): killed by a signal or after the
    /// timeout, a failure without an error object, or a success whose result does not parse.
    async fn add_classified(&self) -> std::result::Result<CniResult, (Error, bool)> {
        let out = match self.run(Command::Add).await {
            Ok(out) => out,
            Err(e) => {
                let unknown = e.kind() == ErrorKind::Timeout;
                return Err((e, unknown));
            }
        };
        let unknown =
            out.code.is_none() || (!out.success() && serde_json::from_slice::<CniError>(&out.stdout).is_err());
        let stdout = exec::check_output(&self.plugin_type, &out).map_err(|e| (e, unknown))?;
        exec::parse_result(&stdout, self.version.as_str()).map_err(|e| (e, true))
    }

    /// DELs the delegate after a failure `e`; a failing DEL is logged and added to `e`'s details.
    async fn roll_back(&self, e: Error) -> Error {
        match self.del().await {
            Ok(()) => e,
            Err(del) => {
                tracing::warn!(plugin = %self.plugin_type, error = %del, "rollback DEL failed");
                let details = match e.details() {
                    Some(d) => format!("{d}; rollback DEL of {:?} also failed: {del}", self.plugin_type),
                    None => format!("rollback DEL of {:?} also failed: {del}", self.plugin_type),
                };
                Error::from_kind(e.kind(), e.message()).with_code(e.code()).with_details(details)
            }
        }
    }

    /// ADD: the delegate's result, up-converted.
    pub async fn add(&self) -> Result<CniResult> {
        let stdout = self.call(Command::Add).await?;
        exec::parse_result(&stdout, self.version.as_str())
    }

    /// DEL.
    pub async fn del(&self) -> Result<()> {
        self.call(Command::Del).await.map(drop)
    }

    /// CHECK.
    pub async fn check(&self) -> Result<()> {
        self.call(Command::Check).await.map(drop)
    }

    /// STATUS.
    pub async fn status(&self) -> Result<()> {
        self.call(Command::Status).await.map(drop)
    }

    /// GC.
    pub async fn gc(&self) -> Result<()> {
        self.call(Command::Gc).await.map(drop)
    }

    /// ADD, then `then` with the delegate's result; when `then` fails, DEL the delegate before
    /// returning `then`'s error (a failed DEL is logged and added to the error's details).
    ///
    /// The delegate is also DELed when its own ADD failed in a way that leaves its state unknown:
    /// it hung and was killed after the timeout, died from a signal, failed without printing an
    /// error object, or printed a result that does not parse (it may have allocated before any
    /// of that). A delegate that printed an error object is trusted to have undone its own work,
    /// as the spec asks. Either way the caller gets the ADD's error.
    pub async fn add_with_rollback<T, F, Fut>(&self, then: F) -> Result<T>
    where
        F: FnOnce(CniResult) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let result = match self.add_classified().await {
            Ok(r) => r,
            Err((e, true)) => {
                tracing::warn!(plugin = %self.plugin_type, error = %e, "the delegate's ADD ended in an unknown state; rolling back with DEL");
                return Err(self.roll_back(e).await);
            }
            Err((e, false)) => return Err(e),
        };
        match then(result).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.roll_back(e).await),
        }
    }
}
