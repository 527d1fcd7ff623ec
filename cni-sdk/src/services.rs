//! [`Services`]: everything plugin code reaches the outside world through — the plugin
//! executor and the network namespaces — so that tests can replace each with a fake.
//!
//! A plugin binary runs with [`Services::system`]: processes for delegation (feature `exec`) and
//! the kernel's namespaces (feature `netlink`). A service whose feature is off fails every call
//! with [`ErrorKind::NotSupported`](crate::ErrorKind::NotSupported), so a build can leave out
//! what its plugin never uses. The test kit (feature `test-util`) runs plugins with fakes.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::exec::{self, Exec, ExecRequest, NoExec, RawOutput, SharedExec};
use crate::net::{DynNetProvider, Net, NetError, NetErrorKind, NetProvider, NetResult};

/// The services of one plugin run. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub(crate) exec: SharedExec,
    net: Arc<dyn DynNetProvider>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services").field("exec", &self.exec).field("net", &self.net).finish()
    }
}

impl Default for Services {
    /// [`Services::system`].
    fn default() -> Self {
        Self::system()
    }
}

impl Services {
    /// The real world: plugin processes found in `CNI_PATH` and the kernel's network namespaces
    /// (each only when its cargo feature is on).
    pub fn system() -> Self {
        Self { exec: exec::system(), net: system_net() }
    }

    /// No services at all: every delegation and every namespace access fails with
    /// [`ErrorKind::NotSupported`](crate::ErrorKind::NotSupported). What a test starts from when
    /// it must not touch the host.
    pub fn unavailable() -> Self {
        Self { exec: Arc::new(NoExec), net: Arc::new(NoNet { why: "no network backend was given to this run" }) }
    }

    /// Runs delegated plugins through `exec`.
    #[must_use]
    pub fn with_exec(mut self, exec: impl Exec + 'static) -> Self {
        self.exec = Arc::new(exec);
        self
    }

    /// Takes network namespaces from `net` (e.g. the test kit's `FakeNetwork`).
    #[must_use]
    pub fn with_net(mut self, net: impl NetProvider + 'static) -> Self {
        self.net = Arc::new(net);
        self
    }

    /// Runs one plugin through the executor.
    pub async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        self.exec.exec_boxed(request).await
    }

    /// A handle for the plugin's own (host) network namespace.
    pub async fn host_net(&self) -> NetResult<Net> {
        self.net.host_boxed().await
    }

    /// A handle for the namespace at `path`; `None` when it does not exist (any more).
    pub async fn open_net(&self, path: &Path) -> NetResult<Option<Net>> {
        self.net.open_boxed(path).await
    }
}

fn system_net() -> Arc<dyn DynNetProvider> {
    #[cfg(feature = "netlink")]
    {
        Arc::new(crate::net::KernelNet)
    }
    #[cfg(not(feature = "netlink"))]
    {
        Arc::new(NoNet { why: "built without the `netlink` feature of cni-sdk" })
    }
}

/// The network provider of a run without one.
#[derive(Debug)]
struct NoNet {
    why: &'static str,
}

impl NetProvider for NoNet {
    async fn host(&self) -> NetResult<Net> {
        Err(NetError::new(NetErrorKind::NotSupported, format!("cannot open the host network namespace: {}", self.why)))
    }

    async fn open(&self, path: &Path) -> NetResult<Option<Net>> {
        Err(NetError::new(
            NetErrorKind::NotSupported,
            format!("cannot open network namespace {}: {}", path.display(), self.why),
        ))
    }
}
