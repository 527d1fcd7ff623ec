//! The runtime side: load network configurations and run plugins for containers, as Go's
//! libcni does (the library containerd, CRI-O and podman embed), plus a pod-level layer like
//! containerd's go-cni ([`PodNetworks`]).
//!
//! ```no_run
//! use cni_sdk::runtime::{CniRuntime, PodNetworks, PodOptions, load_network};
//! use cni_sdk::types::PortMapping;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cni = CniRuntime::builder().plugin_dir("/opt/cni/bin").cache_dir("/var/lib/cni").build()?;
//! let dir = std::path::Path::new("/etc/cni/net.d");
//! let pod = PodNetworks::builder(cni)
//!     .loopback()
//!     .network(load_network(dir, "frontend")?) // eth0
//!     .network(load_network(dir, "storage")?)  // eth1
//!     .build()?;
//! let opts = PodOptions::new("ctr-1", "/var/run/netns/ctr-1")
//!     .label("K8S_POD_NAME", "web")
//!     .port_mapping(PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None });
//! let result = pod.setup(&opts).await?; // all networks at once; rolled back on failure
//! println!("{:?}", result.interfaces["eth0"].ips);
//! pod.check(&opts).await?;
//! pod.remove(&opts).await?; // continues past failures and reports all of them
//! # Ok(()) }
//! ```
//!
//! Behaviour of [`CniRuntime`] follows libcni: plugins run in order for ADD (each result is the
//! next plugin's `prevResult`), in reverse order for DEL with the cached result, CHECK is gated
//! on 0.4.0 and `disableCheck`, GC deletes stale cached attachments and then sends GC (1.1.0)
//! unless `disableGC`, STATUS needs 1.1.0 (older lists report [`NetworkStatus::Skipped`]). The
//! result cache uses libcni's `cniCacheV1` files, paths and modes, so Go libcni and this runtime
//! can each delete what the other added. Plugins run with a cleared environment: the `CNI_*`
//! variables plus `PATH` (plugins such as bridge run iptables) and whatever
//! [`CniRuntimeBuilder::env`] adds. Unlike libcni, identifiers (container ID, network name,
//! interface name) are validated for CHECK and DEL too, not only ADD.
//!
//! Errors are [`runtime::Error`](Error): network, plugin, verb and the plugin's own
//! `{code, msg, details}` as fields, `Display` in libcni's wording.
//!
//! Time limits: every plugin run is limited by the runtime-wide timeout
//! ([`CniRuntimeBuilder::timeout`], 60 s by default); a call can add a deadline
//! ([`CniRuntime::with_deadline`], [`PodOptions::timeout`]) and a [`CancelToken`]. Plugins are
//! killed when either passes; the error's kind is [`ErrorKind::Timeout`] or
//! [`ErrorKind::Cancelled`].
//!
//! Plugin stderr: passed through to this process's stderr by default;
//! [`CniRuntimeBuilder::plugin_stderr`] routes it into `tracing` instead (one event per line,
//! inside a `cni_plugin` span naming network, plugin, verb, container and interface). The guide
//! for runtime authors is `docs/runtime.md`.
//!
//! Cache records are written crash-consistently (a temporary file renamed into place, flushed
//! to disk first if [`CniRuntimeBuilder::cache_durability`] asks for it) and read tolerantly:
//! an empty, truncated or garbage record — from a crash, or from a Go runtime, which writes in
//! place — is logged and skipped, so it never blocks DEL, and GC removes such debris.

mod cache;
mod cancel;
mod conf;
mod error;
mod pod;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_types::{
    Attachment, CacheRecord, CniArgs, CniError, CniResult, RuntimeConfig, SpecVersion, VersionInfo, ident,
};
use serde_json::{Map, Value, json};
use tracing::Instrument as _;

pub use cancel::CancelToken;
pub use conf::{NetworkList, load_all, load_conf_dir, load_network};
pub use error::{Error, PluginRef, Result};
pub use pod::{NetworkResult, PodInterface, PodIp, PodNetwork, PodNetworks, PodNetworksBuilder, PodOptions, PodResult};

pub use crate::exec::PluginStderr;
use crate::exec::{self, Exec, ExecRequest, ProcessExec, RawOutput, SharedExec};
use crate::kit::Durability;
use crate::{Command, ErrorKind};

/// The default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// Per-container parameters of a request (libcni's `RuntimeConf`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeConf {
    /// Container ID.
    pub container_id: String,
    /// Network namespace path.
    pub netns: String,
    /// Interface name in the container.
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `ipRanges`, …), injected as `runtimeConfig` for
    /// plugins that declare the capability. [`RuntimeConf::capabilities`] sets them from typed
    /// values.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// Parameters for one container interface.
    pub fn new(container_id: &str, netns: &str, ifname: &str) -> Self {
        Self { container_id: container_id.into(), netns: netns.into(), ifname: ifname.into(), ..Self::default() }
    }

    /// Adds a `CNI_ARGS` pair.
    #[must_use]
    pub fn arg(mut self, key: &str, value: &str) -> Self {
        self.args.push((key.into(), value.into()));
        self
    }

    /// Sets a capability argument from a raw JSON value.
    #[must_use]
    pub fn capability(mut self, key: &str, value: Value) -> Self {
        self.capability_args.insert(key.into(), value);
        self
    }

    /// Sets every capability that `caps` holds (typed: port mappings, bandwidth, DNS, IP
    /// ranges, IPs, MAC, cgroup path, ..., plus its `extra` raw ones), replacing earlier values
    /// of the same keys.
    ///
    /// ```
    /// use cni_sdk::runtime::RuntimeConf;
    /// use cni_sdk::types::{PortMapping, RuntimeConfig};
    /// let caps = RuntimeConfig {
    ///     port_mappings: Some(vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None }]),
    ///     ..RuntimeConfig::default()
    /// };
    /// let rt = RuntimeConf::new("c1", "/var/run/netns/c1", "eth0").capabilities(&caps);
    /// assert_eq!(rt.capability_args["portMappings"][0]["hostPort"], 8080);
    /// ```
    #[must_use]
    pub fn capabilities(mut self, caps: &RuntimeConfig) -> Self {
        self.capability_args.extend(capability_map(caps));
        self
    }

    /// Checks the identifiers as the spec restricts them (container ID, interface name) and the
    /// network name.
    pub fn validate(&self, network: &str) -> Result<()> {
        let bad = |e: CniError| Error::new(ErrorKind::InvalidEnvironment, e.msg).with_network(network);
        ident::validate_container_id(&self.container_id).map_err(bad)?;
        ident::validate_network_name(network).map_err(bad)?;
        ident::validate_interface_name(&self.ifname).map_err(bad)?;
        Ok(())
    }
}

/// The JSON object of typed capabilities (only the keys that are set).
pub(crate) fn capability_map(caps: &RuntimeConfig) -> Map<String, Value> {
    match serde_json::to_value(caps) {
        Ok(Value::Object(m)) => m,
        // A struct of options and strings always serialises to an object.
        _ => Map::new(),
    }
}

/// The result of ADD on a network list.
#[derive(Clone, Debug, PartialEq)]
pub struct AddOutcome {
    /// The last plugin's result as it printed it.
    pub raw: Value,
    /// The same, up-converted.
    pub result: CniResult,
}

/// What STATUS found for a network list.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkStatus {
    /// Every plugin answered STATUS with success.
    Ready,
    /// Nothing was asked: the list's version has no STATUS (older than 1.1.0).
    Skipped {
        /// The list's version.
        version: String,
    },
}

impl fmt::Display for NetworkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready => f.write_str("ready"),
            Self::Skipped { version } => write!(f, "skipped (version {version} < 1.1.0)"),
        }
    }
}

/// Builds a [`CniRuntime`]; errors are reported by [`CniRuntimeBuilder::build`].
#[derive(Debug, Default)]
#[must_use]
pub struct CniRuntimeBuilder {
    dirs: Vec<PathBuf>,
    cache_dir: Option<PathBuf>,
    exec: Option<SharedExec>,
    timeout: Option<Duration>,
    env: BTreeMap<String, String>,
    inherit_path: bool,
    stderr: Option<PluginStderr>,
    durability: Durability,
}

/// Runs plugins for containers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CniRuntime {
    dirs: Vec<PathBuf>,
    cache_dir: PathBuf,
    exec: SharedExec,
    timeout: Duration,
    env: BTreeMap<String, String>,
    deadline: Option<Instant>,
    cancel: Option<CancelToken>,
    durability: Durability,
}

impl CniRuntimeBuilder {
    /// Adds a plugin directory (searched in the order added).
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dirs.push(dir.into());
        self
    }

    /// Adds plugin directories.
    pub fn plugin_dirs<I: IntoIterator<Item = P>, P: Into<PathBuf>>(mut self, dirs: I) -> Self {
        self.dirs.extend(dirs.into_iter().map(Into::into));
        self
    }

    /// The cache directory (default `/var/lib/cni`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// How far cache records are flushed. Either way a record is replaced atomically, so a
    /// killed runtime never leaves a partial one. The default, [`Durability::Process`], flushes
    /// nothing (as libcni): after a power loss a record may be missing or empty, and DEL then
    /// runs without the cached result. [`Durability::PowerLoss`] fsyncs the record and its
    /// directory, about a millisecond per ADD on a local SSD (`cargo bench -p cni-sdk --bench
    /// cache_write`).
    pub fn cache_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Per-plugin timeout, the runtime-wide default (60 s unless set). Calls can add a
    /// deadline of their own ([`CniRuntime::with_deadline`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds an environment variable for every plugin (the environment is otherwise cleared).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Whether plugins get this process's `PATH` (default: yes).
    pub fn inherit_path(mut self, yes: bool) -> Self {
        self.inherit_path = yes;
        self
    }

    /// Where the stderr of plugin processes goes (default: passed through to this process's
    /// stderr). Applies to the default process executor; an executor given to
    /// [`CniRuntimeBuilder::exec`] keeps its own setting.
    pub fn plugin_stderr(mut self, stderr: PluginStderr) -> Self {
        self.stderr = Some(stderr);
        self
    }

    /// Runs plugins through `exec` (e.g. the test kit's `InProcessExec`) instead of processes.
    pub fn exec(mut self, exec: impl Exec + 'static) -> Self {
        self.exec = Some(Arc::new(exec));
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<CniRuntime> {
        if self.exec.is_none() && self.dirs.is_empty() {
            return Err(Error::invalid_config("no plugin directories given (CNI_PATH is empty)"));
        }
        if let Some(t) = self.timeout
            && t.is_zero()
        {
            return Err(Error::invalid_config("the plugin timeout must be positive"));
        }
        let mut env = self.env;
        if self.inherit_path
            && let Some(path) = std::env::var_os("PATH")
        {
            env.entry("PATH".into()).or_insert_with(|| path.to_string_lossy().into_owned());
        }
        let stderr = self.stderr.unwrap_or_default();
        Ok(CniRuntime {
            dirs: self.dirs,
            cache_dir: self.cache_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR)),
            exec: self.exec.unwrap_or_else(|| Arc::new(ProcessExec::new().stderr(stderr))),
            timeout: self.timeout.unwrap_or(exec::DEFAULT_TIMEOUT),
            env,
            deadline: None,
            cancel: None,
            durability: self.durability,
        })
    }
}

/// One plugin run: which network, which plugin, which verb, for which attachment.
struct Step<'a> {
    net: &'a NetworkList,
    plugin: &'a Map<String, Value>,
    verb: Command,
    rt: Option<&'a RuntimeConf>,
}

impl Step<'_> {
    fn plugin_ref(&self) -> PluginRef {
        PluginRef::of(self.plugin)
    }

    /// Sets network, plugin, verb and attachment on an error; `framed` gives it libcni's
    /// `plugin ... failed (<verb>)` wording.
    fn locate(&self, e: Error, framed: bool) -> Error {
        let e = e.at_plugin(self.net.name(), self.plugin_ref(), self.verb, framed);
        match self.rt {
            Some(rt) => e.with_attachment(&rt.container_id, &rt.ifname),
            None => e,
        }
    }
}

impl CniRuntime {
    /// A builder; `inherit_path` defaults to true.
    pub fn builder() -> CniRuntimeBuilder {
        CniRuntimeBuilder { inherit_path: true, ..CniRuntimeBuilder::default() }
    }

    /// The same runtime with a deadline for its calls: plugins still running at `deadline` are
    /// killed, none is started after it, and the call fails with [`ErrorKind::Timeout`]. The
    /// per-plugin timeout still applies.
    ///
    /// ```no_run
    /// # async fn demo(cni: cni_sdk::runtime::CniRuntime, net: cni_sdk::runtime::NetworkList) -> cni_sdk::runtime::Result<()> {
    /// use std::time::{Duration, Instant};
    /// use cni_sdk::runtime::RuntimeConf;
    /// let rt = RuntimeConf::new("c1", "/var/run/netns/c1", "eth0");
    /// cni.with_deadline(Instant::now() + Duration::from_secs(5)).add(&net, &rt).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        Self { deadline: Some(self.deadline.map_or(deadline, |d| d.min(deadline))), ..self.clone() }
    }

    /// The same runtime, cancelled by `token`: when it is cancelled, running plugins are killed,
    /// none is started, and calls fail with [`ErrorKind::Cancelled`].
    #[must_use]
    pub fn with_cancel(&self, token: CancelToken) -> Self {
        Self { cancel: Some(token), ..self.clone() }
    }

    /// The same runtime without the call deadline and cancel token (for clean-up that must run
    /// after a call ran out of time).
    pub(crate) fn without_call_limits(&self) -> Self {
        Self { deadline: None, cancel: None, ..self.clone() }
    }

    /// The per-plugin timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The cache file of an attachment.
    pub fn cache_file(&self, network: &str, rt: &RuntimeConf) -> PathBuf {
        self.cache_dir.join(cache::RESULTS_DIR).join(format!("{network}-{}-{}", rt.container_id, rt.ifname))
    }

    /// The cache file of an attachment, `None` when an identifier would make it leave the
    /// cache directory (`/`, NUL) or is empty.
    fn cache_path(&self, network: &str, rt: &RuntimeConf) -> Option<PathBuf> {
        cache::entry_name(network, &rt.container_id, &rt.ifname)
            .map(|name| self.cache_dir.join(cache::RESULTS_DIR).join(name))
    }

    /// The request configuration of one plugin: its object plus `name`, `cniVersion`,
    /// `prevResult` and the `runtimeConfig` of its enabled capabilities.
    pub fn plugin_request(
        net: &NetworkList,
        plugin: &Map<String, Value>,
        prev_result: Option<&Value>,
        rt: Option<&RuntimeConf>,
    ) -> Map<String, Value> {
        let mut conf = plugin.clone();
        conf.insert("name".into(), json!(net.name()));
        conf.insert("cniVersion".into(), json!(net.version()));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        if let (Some(rt), Some(Value::Object(caps))) = (rt, plugin.get("capabilities")) {
            let runtime: Map<String, Value> = caps
                .iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .filter_map(|(cap, _)| rt.capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
                .collect();
            if !runtime.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(runtime));
            }
        }
        conf
    }

    fn env_for(&self, cmd: Command, rt: Option<&RuntimeConf>) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        let paths: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        let (id, netns, ifname, args) = match rt {
            Some(rt) => (
                rt.container_id.as_str(),
                rt.netns.as_str(),
                rt.ifname.as_str(),
                CniArgs::from_pairs(rt.args.clone()).to_env_string(),
            ),
            None => ("", "", "", String::new()),
        };
        for (k, v) in [
            ("CNI_COMMAND", cmd.as_str()),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_ARGS", args.as_str()),
            ("CNI_PATH", &paths.join(":")),
        ] {
            env.insert(k.into(), v.into());
        }
        env
    }

    /// How long the next plugin may run, and whether the call's deadline (rather than the
    /// per-plugin timeout) is what limits it.
    fn budget(&self, plugin_type: &str) -> Result<(Duration, bool)> {
        if let Some(t) = &self.cancel
            && t.is_cancelled()
        {
            return Err(Error::new(ErrorKind::Cancelled, format!("cancelled before plugin {plugin_type:?} ran")));
        }
        match self.deadline {
            None => Ok((self.timeout, false)),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Error::new(
                        ErrorKind::Timeout,
                        format!("the call's deadline passed before plugin {plugin_type:?} ran"),
                    ))
                } else if left < self.timeout {
                    Ok((left, true))
                } else {
                    Ok((self.timeout, false))
                }
            }
        }
    }

    /// Runs one plugin; returns its stdout on success. Failures carry network, plugin, verb and
    /// attachment, framed as libcni frames them when `framed`.
    async fn run_step(
        &self,
        step: &Step<'_>,
        env: BTreeMap<String, String>,
        conf: &Map<String, Value>,
        framed: bool,
    ) -> Result<Vec<u8>> {
        let plugin_type = step.plugin.get("type").and_then(Value::as_str).unwrap_or_default();
        let stdin = serde_json::to_vec(conf).map_err(|e| {
            step.locate(
                Error::new(ErrorKind::Internal, "failed to serialise the plugin configuration").with_source(e),
                framed,
            )
        })?;
        let out = self.exec_raw(plugin_type, env, stdin, step.net.name(), step.verb, step.rt).await;
        let out = out.map_err(|e| step.locate(e, framed))?;
        interpret(out).map_err(|e| step.locate(e, framed))
    }

    async fn exec_raw(
        &self,
        plugin_type: &str,
        env: BTreeMap<String, String>,
        stdin: Vec<u8>,
        network: &str,
        verb: Command,
        rt: Option<&RuntimeConf>,
    ) -> Result<RawOutput> {
        let (timeout, by_deadline) = self.budget(plugin_type)?;
        let request = ExecRequest { plugin_type: plugin_type.into(), cni_path: self.dirs.clone(), env, stdin, timeout };
        let span = tracing::info_span!(
            "cni_plugin",
            network,
            plugin = plugin_type,
            verb = verb.as_str(),
            container_id = rt.map_or("", |r| r.container_id.as_str()),
            ifname = rt.map_or("", |r| r.ifname.as_str()),
        );
        let run = self.exec.exec_boxed(request).instrument(span);
        let out = match &self.cancel {
            None => run.await,
            Some(token) => tokio::select! {
                biased;
                () = token.cancelled() => {
                    return Err(Error::new(ErrorKind::Cancelled, format!("cancelled while plugin {plugin_type:?} ran; it was stopped")));
                }
                out = run => out,
            },
        };
        out.map_err(|e| {
            if by_deadline && e.kind() == ErrorKind::Timeout {
                Error::new(
                    ErrorKind::Timeout,
                    format!("the call's deadline passed while plugin {plugin_type:?} ran; it was stopped"),
                )
            } else {
                Error::from_sdk(e)
            }
        })
    }

    /// ADD every plugin in order; writes the cache on success.
    pub async fn add(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<AddOutcome> {
        rt.validate(net.name()).map_err(|e| e.with_verb(Command::Add))?;
        let version = net.version();
        let mut prev: Option<Value> = None;
        for plugin in &net.list.plugins {
            let step = Step { net, plugin, verb: Command::Add, rt: Some(rt) };
            let conf = Self::plugin_request(net, plugin, prev.as_ref(), Some(rt));
            let stdout = self.run_step(&step, self.env_for(Command::Add, Some(rt)), &conf, true).await?;
            let mut doc: Value = serde_json::from_slice(&stdout).map_err(|e| {
                step.locate(Error::new(ErrorKind::Decoding, "failed to parse the plugin's result").with_source(e), true)
            })?;
            if doc.is_null() {
                doc = json!({});
            }
            // libcni: a result without cniVersion is read as the configuration's version.
            if let Some(obj) = doc.as_object_mut()
                && obj.get("cniVersion").is_none_or(|v| v.as_str().is_none_or(str::is_empty))
            {
                obj.insert("cniVersion".into(), json!(version));
            }
            prev = Some(doc);
        }
        let raw = prev.unwrap_or_else(|| json!({"cniVersion": version}));
        let result = CniResult::from_value(raw.clone(), &version).map_err(|e| {
            Error::new(ErrorKind::Decoding, "failed to parse the final result")
                .with_source(e)
                .with_network(net.name())
                .with_verb(Command::Add)
                .with_attachment(&rt.container_id, &rt.ifname)
        })?;
        self.write_cache(net, rt, &raw).map_err(|e| {
            e.wrap(format!("failed to set network {:?} cached result", net.name()))
                .with_network(net.name())
                .with_verb(Command::Add)
                .with_attachment(&rt.container_id, &rt.ifname)
        })?;
        Ok(AddOutcome { raw, result })
    }

    fn write_cache(&self, net: &NetworkList, rt: &RuntimeConf, result: &Value) -> Result<()> {
        let Some(path) = self.cache_path(net.name(), rt) else {
            return Err(Error::invalid_config(format!(
                "no cache file for network {:?}, container {:?}, interface {:?}",
                net.name(),
                rt.container_id,
                rt.ifname
            )));
        };
        let mut rec = CacheRecord::new(&rt.container_id, &rt.ifname, net.name(), net.bytes.clone());
        rec.netns = rt.netns.clone();
        rec.cni_args = rt.args.iter().map(|(k, v)| [k.clone(), v.clone()]).collect();
        rec.capability_args = rt.capability_args.clone();
        rec.result = Some(result.clone());
        cache::write(&path, rec.to_go_json().as_bytes(), self.durability)
            .map_err(|e| Error::cache(format!("writing {}", path.display())).with_source(e))
    }

    /// The cached ADD result of an attachment, converted to the list's version: `Ok(None)` when
    /// there is none; an error of kind [`ErrorKind::Cache`] when the file exists but cannot be
    /// used.
    pub fn cached_result(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>> {
        let Some(path) = self.cache_path(net.name(), rt) else { return Ok(None) };
        let locate = |e: Error| e.with_network(net.name()).with_attachment(&rt.container_id, &rt.ifname);
        let unusable =
            |why: String| locate(Error::cache(format!("the cache file {} is unusable: {why}", path.display())));
        let raw = match cache::read(&path) {
            Ok(cache::Entry::Missing) => return Ok(None),
            Ok(cache::Entry::Record(rec)) => rec.result,
            // A legacy cache file holds a bare result.
            Ok(cache::Entry::Legacy(v)) => Some(v),
            Ok(cache::Entry::Unusable(why)) => return Err(unusable(why)),
            Err(e) => return Err(locate(Error::cache(format!("reading {}", path.display())).with_source(e))),
        };
        let Some(raw) = raw else { return Ok(None) };
        let version = net.version();
        let spec: SpecVersion =
            version.parse().map_err(|e: cni_types::VersionError| locate(Error::invalid_config(e.to_string())))?;
        let converted = CniResult::from_value(raw, &version).and_then(|r| r.to_value(spec)).map_err(|e| {
            locate(
                Error::cache(format!("failed to convert cached result to config version {version:?}")).with_source(e),
            )
        })?;
        Ok(Some(converted))
    }

    /// CHECK every plugin in order with the cached result (libcni's gates: 0.4.0, `disableCheck`).
    pub async fn check(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<()> {
        rt.validate(net.name()).map_err(|e| e.with_verb(Command::Check))?;
        let version = net.version();
        let allowed = Command::Check
            .allowed_by(&version)
            .map_err(|e| Error::invalid_config(e.to_string()).with_network(net.name()).with_verb(Command::Check))?;
        if !allowed {
            return Err(Error::new(
                ErrorKind::IncompatibleVersion,
                format!("configuration version {version:?} does not support the CHECK command"),
            )
            .with_network(net.name())
            .with_verb(Command::Check)
            .with_attachment(&rt.container_id, &rt.ifname));
        }
        if net.list.disable_check {
            return Ok(());
        }
        let prev = self.cached_result(net, rt).map_err(|e| e.with_verb(Command::Check))?;
        for plugin in &net.list.plugins {
            let step = Step { net, plugin, verb: Command::Check, rt: Some(rt) };
            let conf = Self::plugin_request(net, plugin, prev.as_ref(), Some(rt));
            self.run_step(&step, self.env_for(Command::Check, Some(rt)), &conf, true).await?;
        }
        Ok(())
    }

    /// DEL every plugin in reverse order with the cached result; a corrupt cache is deleted and
    /// ignored; the cache is removed when every plugin succeeded.
    pub async fn del(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<()> {
        rt.validate(net.name()).map_err(|e| e.with_verb(Command::Del))?;
        let version = net.version();
        let cache = self.cache_path(net.name(), rt);
        // libcni sends the cached result on DEL from 0.4.0 (when CHECK and prevResult-on-DEL came).
        let prev = if Command::Check.allowed_by(&version).unwrap_or(false) {
            match self.cached_result(net, rt) {
                Ok(p) => p,
                Err(e) => {
                    // Never block DEL: run it without prevResult, drop the debris.
                    tracing::warn!(error = %e, "ignoring an unusable cache entry; DEL runs without the cached result");
                    if let Some(path) = &cache
                        && let Err(e) = cache::remove(path)
                    {
                        tracing::warn!(file = %path.display(), error = %e, "could not remove the unusable cache entry");
                    }
                    None
                }
            }
        } else {
            None
        };
        for plugin in net.list.plugins.iter().rev() {
            let step = Step { net, plugin, verb: Command::Del, rt: Some(rt) };
            let conf = Self::plugin_request(net, plugin, prev.as_ref(), Some(rt));
            self.run_step(&step, self.env_for(Command::Del, Some(rt)), &conf, true).await?;
        }
        // As libcni: a cache entry that cannot be removed does not fail DEL (GC retries it).
        if let Some(path) = &cache
            && let Err(e) = cache::remove(path)
        {
            tracing::warn!(file = %path.display(), error = %e, "could not remove the cache entry after DEL");
        }
        Ok(())
    }

    /// Every cached attachment of `network` (`cniCacheV1` entries).
    pub fn cached_attachments(&self, network: &str) -> Result<Vec<(RuntimeConf, Vec<u8>)>> {
        let dir = self.cache_dir.join(cache::RESULTS_DIR);
        let listed = cache::list(&dir)
            .map_err(|e| Error::cache(format!("listing {}", dir.display())).with_source(e).with_network(network))?;
        let mut out = Vec::new();
        for cache::Listed { path, entry } in listed {
            let rec = match entry {
                cache::Entry::Record(rec) => *rec,
                cache::Entry::Unusable(why) => {
                    tracing::warn!(file = %path.display(), "skipping an unusable cache entry: {why}");
                    continue;
                }
                cache::Entry::Legacy(_) | cache::Entry::Missing => continue,
            };
            if rec.network_name != network || rec.if_name.is_empty() {
                continue;
            }
            let rt = RuntimeConf {
                container_id: rec.container_id,
                netns: rec.netns,
                ifname: rec.if_name,
                args: rec.cni_args.into_iter().map(|[k, v]| (k, v)).collect(),
                capability_args: rec.capability_args,
            };
            out.push((rt, rec.config));
        }
        out.sort_by(|a, b| (&a.0.container_id, &a.0.ifname).cmp(&(&b.0.container_id, &b.0.ifname)));
        Ok(out)
    }

    /// GC: DEL every cached attachment of this network that is not in `valid` (all of them when
    /// `valid` is `None`), then send GC with the valid attachments (1.1.0 lists). Every step
    /// runs; the error holds every failure ([`Error::failures`]), each with its plugin, verb and
    /// the plugin's own code, in libcni's wording (`failed to delete stale attachment <id>
    /// <ifname>: ...`, `failed to GC plugin <type>: ...`).
    pub async fn gc(&self, net: &NetworkList, valid: Option<&[Attachment]>) -> Result<()> {
        if net.list.disable_gc {
            return Ok(());
        }
        // Debris first: temporaries of interrupted writes, and unusable records of this network
        // that belong to no valid attachment (their attachment cannot be known).
        let keep: Vec<String> = valid
            .unwrap_or_default()
            .iter()
            .filter_map(|a| cache::entry_name(net.name(), &a.container_id, &a.ifname))
            .collect();
        cache::sweep(&self.cache_dir.join(cache::RESULTS_DIR), net.name(), &keep, cache::SWEEP_GRACE);
        let mut errors = Vec::new();
        match self.cached_attachments(net.name()) {
            Ok(cached) => {
                for (rt, _) in cached {
                    let keep = valid
                        .is_some_and(|v| v.iter().any(|a| a.container_id == rt.container_id && a.ifname == rt.ifname));
                    if !keep && let Err(e) = self.del(net, &rt).await {
                        let wrapped =
                            e.wrap(format!("failed to delete stale attachment {} {}", rt.container_id, rt.ifname));
                        errors.push(wrapped);
                    }
                }
            }
            Err(e) => errors.push(e.with_verb(Command::Gc)),
        }
        let version = net.version();
        if Command::Gc.allowed_by(&version).unwrap_or(false) {
            for plugin in &net.list.plugins {
                let step = Step { net, plugin, verb: Command::Gc, rt: None };
                let mut conf = Self::plugin_request(net, plugin, None, None);
                if let Some(valid) = valid {
                    let list: Value =
                        valid.iter().map(|a| json!({"containerID": a.container_id, "ifname": a.ifname})).collect();
                    conf.insert("cni.dev/valid-attachments".into(), list.clone());
                    conf.insert("cni.dev/attachments".into(), list);
                }
                if let Err(e) = self.run_step(&step, self.env_for(Command::Gc, None), &conf, false).await {
                    let plugin_type = step.plugin_ref().plugin_type;
                    errors.push(e.wrap(format!("failed to GC plugin {plugin_type}")));
                }
            }
        }
        match Error::collect(errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// STATUS of every plugin in order: [`NetworkStatus::Ready`] when all succeed,
    /// [`NetworkStatus::Skipped`] without running anything for lists older than 1.1.0. The
    /// first failure is returned as the plugin printed it (libcni returns it unwrapped), with
    /// network, plugin and verb as fields.
    pub async fn status(&self, net: &NetworkList) -> Result<NetworkStatus> {
        let version = net.version();
        if !Command::Status.allowed_by(&version).unwrap_or(false) {
            return Ok(NetworkStatus::Skipped { version });
        }
        for plugin in &net.list.plugins {
            let step = Step { net, plugin, verb: Command::Status, rt: None };
            let conf = Self::plugin_request(net, plugin, None, None);
            self.run_step(&step, self.env_for(Command::Status, None), &conf, false).await?;
        }
        Ok(NetworkStatus::Ready)
    }

    /// Asks a plugin for its supported versions (libcni's `GetVersionInfo`).
    pub async fn version_info(&self, plugin_type: &str) -> Result<VersionInfo> {
        let mut env = self.env_for(Command::Version, None);
        for (k, v) in [("CNI_NETNS", "dummy"), ("CNI_IFNAME", "dummy"), ("CNI_PATH", "dummy")] {
            env.insert(k.into(), v.into());
        }
        let stdin = json!({"cniVersion": SpecVersion::LATEST.as_str()}).to_string().into_bytes();
        let locate = |e: Error| {
            e.at_plugin("", PluginRef { plugin_type: plugin_type.to_owned(), name: None }, Command::Version, false)
        };
        let out = self.exec_raw(plugin_type, env, stdin, "", Command::Version, None).await.map_err(locate)?;
        match interpret(out) {
            Ok(out) => VersionInfo::decode(&out).map_err(|e| locate(Error::new(ErrorKind::Decoding, e.to_string()))),
            // Plugins older than VERSION answer it like any unknown verb.
            Err(e) if e.plugin_error().is_some_and(|p| p.msg == "unknown CNI_COMMAND: VERSION") => {
                Ok(VersionInfo::new("0.1.0", &[SpecVersion::V0_1_0]))
            }
            Err(e) => Err(locate(e)),
        }
    }

    /// Checks that every plugin of the list exists and supports the list's version; returns
    /// the union of the enabled capabilities.
    pub async fn validate(&self, net: &NetworkList) -> Result<Vec<String>> {
        let version = if net.version().is_empty() { "0.1.0".to_owned() } else { net.version() };
        let mut caps = Vec::new();
        for plugin in &net.list.plugins {
            let pref = PluginRef::of(plugin);
            let info = self
                .version_info(&pref.plugin_type)
                .await
                .map_err(|e| e.at_plugin(net.name(), pref.clone(), Command::Version, true))?;
            if !info.supports(&version) {
                return Err(Error::new(
                    ErrorKind::IncompatibleVersion,
                    format!("plugin {} does not support config version {version:?}", pref.plugin_type),
                )
                .with_details(format!("plugin supports {:?}", info.supported_versions))
                .at_plugin(net.name(), pref, Command::Version, false));
            }
            if let Some(Value::Object(c)) = plugin.get("capabilities") {
                for (k, on) in c {
                    if on.as_bool() == Some(true) && !caps.contains(k) {
                        caps.push(k.clone());
                    }
                }
            }
        }
        caps.sort();
        Ok(caps)
    }
}

/// libcni's reading of a finished plugin: stdout on success; else the error object it printed,
/// or libcni's fallback messages (code 999 here; Go leaves the code 0) when there is none.
fn interpret(out: RawOutput) -> Result<Vec<u8>> {
    if out.success() {
        return Ok(out.stdout);
    }
    let exit = match out.code {
        Some(c) => format!("exit status {c}"),
        None => "signal: killed".to_owned(),
    };
    let e = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        let msg = if stderr.is_empty() {
            format!("netplugin failed with no error message: {exit}")
        } else {
            format!("netplugin failed: {stderr:?}")
        };
        Error::new(ErrorKind::Internal, msg)
    } else {
        match serde_json::from_slice::<CniError>(&out.stdout) {
            Ok(reported) => Error::from_plugin(reported),
            Err(parse) => {
                let text = String::from_utf8_lossy(&out.stdout);
                Error::new(
                    ErrorKind::Internal,
                    format!("netplugin failed but error parsing its diagnostic message {text:?}: {parse}"),
                )
            }
        }
    };
    Err(e.with_stderr(&out.stderr))
}

/// The examples of the runtime guide (`docs/runtime.md`), compiled (and run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/runtime.md")]
pub struct RuntimeGuideDoctests;
