//! The [`Context`] a plugin method receives: the validated request, and the services to act on it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cni_types::{Attachment, CniArgs, CniResult, NetworkConfig, RuntimeConfig, SpecVersion};

use crate::{Command, Result, Services};

/// Everything a plugin method knows about the request.
///
/// Built by the dispatcher from the environment and stdin after all protocol checks passed,
/// so the values here are already validated: the version is one the plugin supports, the
/// container ID and interface name follow the spec's rules, and the configuration parsed
/// into `NetworkConfig<C>`.
pub struct Context<C> {
    pub(crate) request: Request,
    pub(crate) config: NetworkConfig<C>,
}

/// Every part of a [`Context`] but the typed configuration: what the dispatcher validates
/// before it knows the plugin's configuration type.
pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) container_id: String,
    pub(crate) netns: Option<PathBuf>,
    pub(crate) ifname: String,
    pub(crate) args: CniArgs,
    pub(crate) cni_path: Vec<PathBuf>,
    pub(crate) prev_result: Option<CniResult>,
    pub(crate) version: SpecVersion,
    pub(crate) raw_config: Arc<[u8]>,
    pub(crate) env: Arc<BTreeMap<String, String>>,
    pub(crate) services: Services,
}

impl<C> Context<C> {
    /// The verb being run.
    pub fn command(&self) -> Command {
        self.request.command
    }

    /// `CNI_CONTAINERID` (empty for GC and STATUS).
    pub fn container_id(&self) -> &str {
        &self.request.container_id
    }

    /// `CNI_NETNS`, if set (always set for ADD and CHECK; optional for DEL).
    pub fn netns(&self) -> Option<&Path> {
        self.request.netns.as_deref()
    }

    /// `CNI_IFNAME` (empty for GC and STATUS).
    pub fn ifname(&self) -> &str {
        &self.request.ifname
    }

    /// Parsed `CNI_ARGS`.
    pub fn args(&self) -> &CniArgs {
        &self.request.args
    }

    /// `CNI_PATH`, split on `:`.
    pub fn cni_path(&self) -> &[PathBuf] {
        &self.request.cni_path
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
        self.request.prev_result.as_ref()
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
        self.request.version
    }

    /// The configuration bytes exactly as received on stdin.
    pub fn raw_config(&self) -> &[u8] {
        &self.request.raw_config
    }

    /// A variable of the plugin's environment (the injected map, not the process's).
    pub fn env(&self, key: &str) -> Option<&str> {
        self.request.env.get(key).map(String::as_str)
    }

    /// The services (executor, network namespaces) this request runs with: the real ones in a
    /// plugin binary, fakes in tests.
    pub fn services(&self) -> &Services {
        &self.request.services
    }

    /// The plugin's own (host) network namespace.
    pub fn host_net(&self) -> impl std::future::Future<Output = Result<crate::net::Net>> + '_ {
        host_net(&self.request.services)
    }

    /// The container's network namespace (`CNI_NETNS`); an error when it is unset or gone.
    pub fn container_net(&self) -> impl std::future::Future<Output = Result<crate::net::Net>> + '_ {
        container_net(&self.request.services, self.request.netns.as_deref())
    }

    /// The container's network namespace, or `None` when `CNI_NETNS` is unset or the namespace
    /// is already gone (what DEL needs to stay idempotent).
    pub fn container_net_if_exists(&self) -> impl std::future::Future<Output = Result<Option<crate::net::Net>>> + '_ {
        container_net_if_exists(&self.request.services, self.request.netns.as_deref())
    }

    /// The whole environment the plugin was started with (delegates inherit it).
    pub fn env_map(&self) -> &BTreeMap<String, String> {
        &self.request.env
    }
}

// The namespace methods of `Context`, compiled once instead of once per configuration type.

async fn host_net(services: &Services) -> Result<crate::net::Net> {
    services.host_net().await.map_err(|e| crate::Error::from(e).context("cannot open the host network namespace"))
}

async fn container_net(services: &Services, netns: Option<&Path>) -> Result<crate::net::Net> {
    match container_net_if_exists(services, netns).await? {
        Some(net) => Ok(net),
        None => {
            let path = netns.map(|p| p.display().to_string()).unwrap_or_default();
            Err(crate::Error::from_kind(crate::ErrorKind::NetnsGone, format!("failed to open netns {path:?}"))
                .with_details("the network namespace does not exist"))
        }
    }
}

async fn container_net_if_exists(services: &Services, netns: Option<&Path>) -> Result<Option<crate::net::Net>> {
    let Some(path) = netns else { return Ok(None) };
    services
        .open_net(path)
        .await
        .map_err(|e| crate::Error::from(e).context(format!("failed to open netns {:?}", path.display().to_string())))
}

impl<C: fmt::Debug> fmt::Debug for Context<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("command", &self.request.command)
            .field("container_id", &self.request.container_id)
            .field("netns", &self.request.netns)
            .field("ifname", &self.request.ifname)
            .field("version", &self.request.version)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
