//! The [`Plugin`] trait and the [`Context`] its methods receive.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cni_types::{Attachment, CniArgs, CniResult, NetworkConfig, RuntimeConfig, SpecVersion};
use serde::de::DeserializeOwned;

use crate::Result;

/// A CNI verb (`CNI_COMMAND`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Command {
    /// Add a container to a network.
    Add,
    /// Remove a container from a network.
    Del,
    /// Check a container's networking is as expected (≥ 0.4.0).
    Check,
    /// Garbage-collect resources of containers that no longer exist (≥ 1.1.0).
    Gc,
    /// Report readiness (≥ 1.1.0).
    Status,
    /// Report supported versions.
    Version,
}

impl Command {
    /// All verbs.
    pub const ALL: [Command; 6] = [Self::Add, Self::Del, Self::Check, Self::Gc, Self::Status, Self::Version];

    /// The `CNI_COMMAND` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Gc => "GC",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
        }
    }

    /// The lowest spec version that has this verb.
    pub const fn since(self) -> SpecVersion {
        match self {
            Self::Add | Self::Del => SpecVersion::V0_1_0,
            Self::Version => SpecVersion::V0_2_0,
            Self::Check => SpecVersion::V0_4_0,
            Self::Gc | Self::Status => SpecVersion::V1_1_0,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a `CNI_COMMAND` value that is not a verb (verbs are case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CNI_COMMAND: {0}")]
pub struct UnknownCommand(pub String);

impl FromStr for Command {
    type Err = UnknownCommand;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownCommand(s.to_owned()))
    }
}

/// Everything a plugin method knows about the request.
///
/// Built by the dispatcher from the environment and stdin after all protocol checks passed,
/// so the values here are already validated: the version is one the plugin supports, the
/// container ID and interface name follow the spec's rules, and the configuration parsed
/// into `NetworkConfig<C>`.
pub struct Context<C> {
    pub(crate) command: Command,
    pub(crate) container_id: String,
    pub(crate) netns: Option<PathBuf>,
    pub(crate) ifname: String,
    pub(crate) args: CniArgs,
    pub(crate) cni_path: Vec<PathBuf>,
    pub(crate) config: NetworkConfig<C>,
    pub(crate) prev_result: Option<CniResult>,
    pub(crate) version: SpecVersion,
    pub(crate) raw_config: Arc<[u8]>,
    pub(crate) env: Arc<BTreeMap<String, String>>,
    pub(crate) exec: Arc<dyn crate::exec::Exec>,
    pub(crate) net: Arc<dyn crate::net::NetProvider>,
}

impl<C> Context<C> {
    /// The verb being run.
    pub fn command(&self) -> Command {
        self.command
    }

    /// `CNI_CONTAINERID` (empty for GC and STATUS).
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// `CNI_NETNS`, if set (always set for ADD and CHECK; optional for DEL).
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// `CNI_IFNAME` (empty for GC and STATUS).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Parsed `CNI_ARGS`.
    pub fn args(&self) -> &CniArgs {
        &self.args
    }

    /// `CNI_PATH`, split on `:`.
    pub fn cni_path(&self) -> &[PathBuf] {
        &self.cni_path
    }

    /// The whole typed network configuration.
    pub fn config(&self) -> &NetworkConfig<C> {
        &self.config
    }

    /// The plugin's own configuration keys (shortcut for `config().plugin`).
    pub fn plugin_config(&self) -> &C {
        &self.config.plugin
    }

    /// The previous plugin's result, up-converted to the canonical model (ADD, CHECK, DEL).
    pub fn prev_result(&self) -> Option<&CniResult> {
        self.prev_result.as_ref()
    }

    /// `runtimeConfig`, if the runtime sent one.
    pub fn runtime_config(&self) -> Option<&RuntimeConfig> {
        self.config.runtime_config.as_ref()
    }

    /// GC: the attachments that are still valid (`cni.dev/valid-attachments`, falling back to
    /// `cni.dev/attachments`); empty for other verbs.
    pub fn gc_attachments(&self) -> &[Attachment] {
        self.config.gc_attachments().unwrap_or_default()
    }

    /// The negotiated spec version (the configuration's `cniVersion`).
    pub fn version(&self) -> SpecVersion {
        self.version
    }

    /// The configuration bytes exactly as received on stdin.
    pub fn raw_config(&self) -> &[u8] {
        &self.raw_config
    }

    /// A variable of the plugin's environment (the injected map, not the process's).
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// The plugin's own (host) network namespace.
    pub async fn host_net(&self) -> Result<crate::net::Net> {
        self.net.host().await.map_err(|e| crate::Error::from(e).context("cannot open the host network namespace"))
    }

    /// The container's network namespace (`CNI_NETNS`); an error when it is unset or gone.
    pub async fn container_net(&self) -> Result<crate::net::Net> {
        match self.container_net_if_exists().await? {
            Some(net) => Ok(net),
            None => {
                let path = self.netns.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
                Err(crate::Error::new(cni_types::ErrorCode::InvalidNetNs, format!("failed to open netns {path:?}"))
                    .with_details("the network namespace does not exist"))
            }
        }
    }

    /// The container's network namespace, or `None` when `CNI_NETNS` is unset or the namespace
    /// is already gone (what DEL needs to stay idempotent).
    pub async fn container_net_if_exists(&self) -> Result<Option<crate::net::Net>> {
        let Some(path) = self.netns.as_deref() else { return Ok(None) };
        self.net.open(path).await.map_err(|e| {
            crate::Error::from(e).context(format!("failed to open netns {:?}", path.display().to_string()))
        })
    }

    /// The whole environment the plugin was started with (delegates inherit it).
    pub fn env_map(&self) -> &BTreeMap<String, String> {
        &self.env
    }
}

impl<C: fmt::Debug> fmt::Debug for Context<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("command", &self.command)
            .field("container_id", &self.container_id)
            .field("netns", &self.netns)
            .field("ifname", &self.ifname)
            .field("version", &self.version)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A CNI plugin: ADD, DEL and CHECK, with STATUS and GC optional.
///
/// Write the impl and put `#[cni_plugin]` on it; the macro writes `main`. The methods are
/// native `async fn`s run on a current-thread runtime, so futures need not be `Send` (hold an
/// `Rc` if you like).
///
/// * `add` returns the canonical [`CniResult`]; the SDK prints it in the configuration's
///   version. With a `prevResult` (chained plugins), return it, modified or not.
/// * `del` must succeed when there is nothing to delete (repeated DEL, netns already gone).
/// * `check` returns an error when the container's networking is not as ADD left it.
/// * `status` (default: ready) and `gc` (default: nothing to collect) need spec 1.1.0.
#[allow(async_fn_in_trait)]
pub trait Plugin {
    /// The plugin's own configuration keys (use `()` for none).
    type Config: DeserializeOwned;

    /// ADD.
    async fn add(&self, cx: &Context<Self::Config>) -> Result<CniResult>;

    /// DEL.
    async fn del(&self, cx: &Context<Self::Config>) -> Result<()>;

    /// CHECK.
    async fn check(&self, cx: &Context<Self::Config>) -> Result<()>;

    /// STATUS: `Ok` means ready for ADD; return code 50 or 51 otherwise.
    async fn status(&self, cx: &Context<Self::Config>) -> Result<()> {
        let _ = cx;
        Ok(())
    }

    /// GC: release resources of attachments not in [`Context::gc_attachments`].
    async fn gc(&self, cx: &Context<Self::Config>) -> Result<()> {
        let _ = cx;
        Ok(())
    }
}
