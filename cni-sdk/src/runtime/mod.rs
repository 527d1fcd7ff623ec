//! The runtime side: load network configurations and run plugins for containers, as Go's
//! libcni does (the library containerd, CRI-O and podman embed).
//!
//! ```no_run
//! use cni_sdk::runtime::{CniRuntime, RuntimeConf, load_network};
//! # async fn demo() -> cni_sdk::Result<()> {
//! let cni = CniRuntime::builder().plugin_dir("/opt/cni/bin").cache_dir("/var/lib/cni").build()?;
//! let net = load_network("/etc/cni/net.d".as_ref(), "mynet")?;
//! let rt = RuntimeConf::new("ctr-1", "/var/run/netns/ctr-1", "eth0");
//! let added = cni.add(&net, &rt).await?;
//! println!("{}", added.raw);
//! cni.check(&net, &rt).await?;
//! cni.del(&net, &rt).await?;
//! # Ok(()) }
//! ```
//!
//! Behaviour follows libcni: plugins run in order for ADD (each result is the next plugin's
//! `prevResult`), in reverse order for DEL with the cached result, CHECK is gated on 0.4.0 and
//! `disableCheck`, GC deletes stale cached attachments and then sends GC (1.1.0) unless
//! `disableGC`, STATUS needs 1.1.0. The result cache uses libcni's `cniCacheV1` files, paths and
//! modes, so Go libcni and this runtime can each delete what the other added. Plugins run with a
//! cleared environment: the `CNI_*` variables plus `PATH` (plugins such as bridge run iptables)
//! and whatever [`CniRuntimeBuilder::env`] adds.
//!
//! Cache records are written crash-consistently (a temporary file renamed into place, flushed
//! to disk first if [`CniRuntimeBuilder::cache_durability`] asks for it) and read tolerantly:
//! an empty, truncated or garbage record — from a crash, or from a Go runtime, which writes in
//! place — is logged and skipped, so it never blocks DEL, and GC removes such debris.

mod cache;
mod conf;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cni_types::{Attachment, CacheRecord, CniArgs, CniResult, ErrorCode, SpecVersion, VersionInfo, ident};
use serde_json::{Map, Value, json};

pub use conf::{NetworkList, load_all, load_network};

use crate::exec::{self, Exec, ExecRequest, ProcessExec, SharedExec};
use crate::kit::Durability;
use crate::{Command, Error, Result, ResultExt as _};

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
    /// plugins that declare the capability.
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

    /// Sets a capability argument.
    #[must_use]
    pub fn capability(mut self, key: &str, value: Value) -> Self {
        self.capability_args.insert(key.into(), value);
        self
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

    /// Per-plugin timeout (default 60 s).
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
        Ok(CniRuntime {
            dirs: self.dirs,
            cache_dir: self.cache_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR)),
            exec: self.exec.unwrap_or_else(|| Arc::new(ProcessExec::new())),
            timeout: self.timeout.unwrap_or(exec::DEFAULT_TIMEOUT),
            env,
            durability: self.durability,
        })
    }
}

fn plugin_label(plugin: &Map<String, Value>) -> String {
    let t = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
    match plugin.get("name").and_then(Value::as_str) {
        Some(n) => format!("plugin type={t:?} name={n:?}"),
        None => format!("plugin type={t:?}"),
    }
}

impl CniRuntime {
    /// A builder; `inherit_path` defaults to true.
    pub fn builder() -> CniRuntimeBuilder {
        CniRuntimeBuilder { inherit_path: true, ..CniRuntimeBuilder::default() }
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

    async fn exec_plugin(&self, plugin_type: &str, env: BTreeMap<String, String>, stdin: Vec<u8>) -> Result<Vec<u8>> {
        let request = ExecRequest {
            plugin_type: plugin_type.into(),
            cni_path: self.dirs.clone(),
            env,
            stdin,
            timeout: self.timeout,
        };
        let out = self.exec.exec_boxed(request).await?;
        exec::check_output(plugin_type, &out)
    }

    fn validate_rt(net: &NetworkList, rt: &RuntimeConf) -> Result<()> {
        ident::validate_container_id(&rt.container_id)?;
        ident::validate_network_name(net.name())?;
        ident::validate_interface_name(&rt.ifname)?;
        Ok(())
    }

    /// ADD every plugin in order; writes the cache on success.
    pub async fn add(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<AddOutcome> {
        Self::validate_rt(net, rt)?;
        let version = net.version();
        let mut prev: Option<Value> = None;
        for plugin in &net.list.plugins {
            let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
            let conf = Self::plugin_request(net, plugin, prev.as_ref(), Some(rt));
            let stdin = serde_json::to_vec(&conf).expect("JSON serialises");
            let stdout = self
                .exec_plugin(plugin_type, self.env_for(Command::Add, Some(rt)), stdin)
                .await
                .map_err(|e| e.context(format!("{} failed (add)", plugin_label(plugin))))?;
            let mut doc: Value = serde_json::from_slice(&stdout).with_code(
                ErrorCode::DecodingFailure,
                format!("{} returned an unparsable result", plugin_label(plugin)),
            )?;
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
        let result = CniResult::from_value(raw.clone(), &version)
            .map_err(|e| Error::new(ErrorCode::DecodingFailure, "failed to parse the final result").with_source(e))?;
        self.write_cache(net, rt, &raw)?;
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
        cache::write(&path, rec.to_go_json().as_bytes(), self.durability).map_err(|e| {
            Error::new(ErrorCode::IoFailure, format!("failed to write the cache file {}: {e}", path.display()))
                .with_source(e)
        })
    }

    /// The cached ADD result of an attachment, converted to the list's version: `Ok(None)` when
    /// there is none; an error when the file exists but cannot be used.
    pub fn cached_result(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>> {
        let Some(path) = self.cache_path(net.name(), rt) else { return Ok(None) };
        let unusable = |why: String| {
            Error::new(ErrorCode::DecodingFailure, format!("the cache file {} is unusable: {why}", path.display()))
        };
        let raw = match cache::read(&path) {
            Ok(cache::Entry::Missing) => return Ok(None),
            Ok(cache::Entry::Record(rec)) => rec.result,
            // A legacy cache file holds a bare result.
            Ok(cache::Entry::Legacy(v)) => Some(v),
            Ok(cache::Entry::Unusable(why)) => return Err(unusable(why)),
            Err(e) => {
                return Err(Error::new(
                    ErrorCode::IoFailure,
                    format!("failed to read the cache file {}: {e}", path.display()),
                )
                .with_source(e));
            }
        };
        let Some(raw) = raw else { return Ok(None) };
        let version = net.version();
        let spec: SpecVersion =
            version.parse().map_err(|e: cni_types::VersionError| Error::invalid_config(e.to_string()))?;
        let converted = CniResult::from_value(raw, &version).and_then(|r| r.to_value(spec)).map_err(|e| {
            Error::new(
                ErrorCode::DecodingFailure,
                format!("failed to convert cached result to config version {version:?}"),
            )
            .with_source(e)
        })?;
        Ok(Some(converted))
    }

    /// CHECK every plugin in order with the cached result (libcni's gates: 0.4.0, `disableCheck`).
    pub async fn check(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<()> {
        let version = net.version();
        if !Command::Check.allowed_by(&version).map_err(|e| Error::invalid_config(e.to_string()))? {
            return Err(Error::new(
                ErrorCode::IncompatibleCniVersion,
                format!("configuration version {version:?} does not support the CHECK command"),
            ));
        }
        if net.list.disable_check {
            return Ok(());
        }
        let prev = self.cached_result(net, rt)?;
        for plugin in &net.list.plugins {
            let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
            let conf = Self::plugin_request(net, plugin, prev.as_ref(), Some(rt));
            self.exec_plugin(
                plugin_type,
                self.env_for(Command::Check, Some(rt)),
                serde_json::to_vec(&conf).expect("JSON"),
            )
            .await
            .map_err(|e| e.context(format!("{} failed (check)", plugin_label(plugin))))?;
        }
        Ok(())
    }

    /// DEL every plugin in reverse order with the cached result; a corrupt cache is deleted and
    /// ignored; the cache is removed when every plugin succeeded.
    pub async fn del(&self, net: &NetworkList, rt: &RuntimeConf) -> Result<()> {
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
            let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
            let conf = Self::plugin_request(net, plugin, prev.as_ref(), Some(rt));
            self.exec_plugin(
                plugin_type,
                self.env_for(Command::Del, Some(rt)),
                serde_json::to_vec(&conf).expect("JSON"),
            )
            .await
            .map_err(|e| e.context(format!("{} failed (delete)", plugin_label(plugin))))?;
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
        let listed = cache::list(&dir).map_err(|e| {
            Error::new(ErrorCode::IoFailure, format!("failed to list the cache directory {}: {e}", dir.display()))
                .with_source(e)
        })?;
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
    /// `valid` is `None`), then send GC with the valid attachments (1.1.0 lists). Errors of all
    /// steps are collected; every step runs.
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
        for (rt, _) in self.cached_attachments(net.name())? {
            let keep =
                valid.is_some_and(|v| v.iter().any(|a| a.container_id == rt.container_id && a.ifname == rt.ifname));
            if !keep && let Err(e) = self.del(net, &rt).await {
                errors.push(e.to_string());
            }
        }
        let version = net.version();
        if Command::Gc.allowed_by(&version).unwrap_or(false) {
            for plugin in &net.list.plugins {
                let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
                let mut conf = Self::plugin_request(net, plugin, None, None);
                if let Some(valid) = valid {
                    let list = serde_json::to_value(valid).expect("attachments serialise");
                    conf.insert("cni.dev/valid-attachments".into(), list.clone());
                    conf.insert("cni.dev/attachments".into(), list);
                }
                if let Err(e) = self
                    .exec_plugin(plugin_type, self.env_for(Command::Gc, None), serde_json::to_vec(&conf).expect("JSON"))
                    .await
                {
                    errors.push(e.context(format!("{} failed (gc)", plugin_label(plugin))).to_string());
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::internal("GC failed").with_details(errors.join("; "))) }
    }

    /// STATUS of every plugin in order (success without asking for lists older than 1.1.0).
    pub async fn status(&self, net: &NetworkList) -> Result<()> {
        if !Command::Status.allowed_by(&net.version()).unwrap_or(false) {
            return Ok(());
        }
        for plugin in &net.list.plugins {
            let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
            let conf = Self::plugin_request(net, plugin, None, None);
            self.exec_plugin(
                plugin_type,
                self.env_for(Command::Status, None),
                serde_json::to_vec(&conf).expect("JSON"),
            )
            .await?;
        }
        Ok(())
    }

    /// Asks a plugin for its supported versions (libcni's `GetVersionInfo`).
    pub async fn version_info(&self, plugin_type: &str) -> Result<VersionInfo> {
        let mut env = self.env_for(Command::Version, None);
        for (k, v) in [("CNI_NETNS", "dummy"), ("CNI_IFNAME", "dummy"), ("CNI_PATH", "dummy")] {
            env.insert(k.into(), v.into());
        }
        let stdin = serde_json::to_vec(&json!({"cniVersion": SpecVersion::LATEST.as_str()})).expect("JSON");
        match self.exec_plugin(plugin_type, env, stdin).await {
            Ok(out) => VersionInfo::decode(&out).map_err(|e| Error::new(ErrorCode::DecodingFailure, e.to_string())),
            Err(e) if e.message() == "unknown CNI_COMMAND: VERSION" => {
                Ok(VersionInfo::new("0.1.0", &[SpecVersion::V0_1_0]))
            }
            Err(e) => Err(e),
        }
    }

    /// Checks that every plugin of the list exists and supports the list's version; returns
    /// the union of the enabled capabilities.
    pub async fn validate(&self, net: &NetworkList) -> Result<Vec<String>> {
        let version = if net.version().is_empty() { "0.1.0".to_owned() } else { net.version() };
        let mut caps = Vec::new();
        for plugin in &net.list.plugins {
            let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
            let info = self
                .version_info(plugin_type)
                .await
                .map_err(|e| e.context(format!("{} failed (version)", plugin_label(plugin))))?;
            if !info.supports(&version) {
                return Err(Error::new(
                    ErrorCode::IncompatibleCniVersion,
                    format!("plugin {plugin_type} does not support config version {version:?}"),
                )
                .with_details(format!("plugin supports {:?}", info.supported_versions)));
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
