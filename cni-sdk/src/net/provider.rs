//! Where a plugin's [`Net`] handles come from: the kernel, or a [`FakeNetwork`] in tests.

use std::fmt;
use std::path::Path;

use super::fake::FakeNetwork;
use super::{Net, NetResult};
use crate::netns::NetNs;

/// Hands out namespace-bound [`Net`] handles to plugin code (via
/// [`Context::host_net`](crate::Context::host_net) and
/// [`Context::container_net`](crate::Context::container_net)).
#[async_trait::async_trait]
pub trait NetProvider: Send + Sync + fmt::Debug {
    /// The plugin's own (host) namespace.
    async fn host(&self) -> NetResult<Net>;
    /// The namespace at `path`; `None` when it no longer exists.
    async fn open(&self, path: &Path) -> NetResult<Option<Net>>;
}

/// Real namespaces through netlink.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelNet;

#[async_trait::async_trait]
impl NetProvider for KernelNet {
    async fn host(&self) -> NetResult<Net> {
        Net::host().await
    }

    async fn open(&self, path: &Path) -> NetResult<Option<Net>> {
        match NetNs::open_optional(path)? {
            Some(ns) => Ok(Some(Net::open(&ns).await?)),
            None => Ok(None),
        }
    }
}

/// A fake world: the host is [`FakeNetwork::host`], and a `CNI_NETNS` path names the fake
/// namespace called like its last component (`/var/run/netns/ctr1` → `ctr1`).
#[async_trait::async_trait]
impl NetProvider for FakeNetwork {
    async fn host(&self) -> NetResult<Net> {
        Ok(FakeNetwork::host(self))
    }

    async fn open(&self, path: &Path) -> NetResult<Option<Net>> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Ok(self.namespace(name))
    }
}
