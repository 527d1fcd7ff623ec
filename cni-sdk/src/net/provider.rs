//! Where a plugin's [`Net`] handles come from: the kernel, or a `FakeNetwork` in tests.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use super::{Net, NetResult};

/// Hands out namespace-bound [`Net`] handles to plugin code (via
/// [`Context::host_net`](crate::Context::host_net) and
/// [`Context::container_net`](crate::Context::container_net)).
///
/// Implemented by [`KernelNet`] (feature `netlink`) and by the test kit's
/// `net::fake::FakeNetwork` (feature `test-util`); a plain trait with
/// `async fn`s, so other implementations need no extra crate.
pub trait NetProvider: Send + Sync + fmt::Debug {
    /// The plugin's own (host) namespace.
    fn host(&self) -> impl Future<Output = NetResult<Net>> + Send;
    /// The namespace at `path`; `None` when it no longer exists.
    fn open(&self, path: &Path) -> impl Future<Output = NetResult<Option<Net>>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`NetProvider`], for holding any provider behind one pointer.
pub(crate) trait DynNetProvider: Send + Sync + fmt::Debug {
    fn host_boxed(&self) -> BoxFuture<'_, NetResult<Net>>;
    fn open_boxed<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, NetResult<Option<Net>>>;
}

impl<T: NetProvider> DynNetProvider for T {
    fn host_boxed(&self) -> BoxFuture<'_, NetResult<Net>> {
        Box::pin(self.host())
    }

    fn open_boxed<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, NetResult<Option<Net>>> {
        Box::pin(self.open(path))
    }
}

/// Real namespaces through netlink (feature `netlink`).
#[cfg(feature = "netlink")]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelNet;

#[cfg(feature = "netlink")]
impl NetProvider for KernelNet {
    async fn host(&self) -> NetResult<Net> {
        Net::host().await
    }

    async fn open(&self, path: &Path) -> NetResult<Option<Net>> {
        match crate::netns::NetNs::open_optional(path)? {
            Some(ns) => Ok(Some(Net::open(&ns).await?)),
            None => Ok(None),
        }
    }
}

/// A fake world: the host is [`FakeNetwork::host`](super::fake::FakeNetwork::host), and a
/// `CNI_NETNS` path names the fake namespace called like its last component
/// (`/var/run/netns/ctr1` → `ctr1`).
#[cfg(feature = "test-util")]
impl NetProvider for super::fake::FakeNetwork {
    async fn host(&self) -> NetResult<Net> {
        Ok(super::fake::FakeNetwork::host(self))
    }

    async fn open(&self, path: &Path) -> NetResult<Option<Net>> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Ok(self.namespace(name))
    }
}
