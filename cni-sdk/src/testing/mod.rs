//! The test kit (feature `test-util`): run a plugin in-process, as a runtime would, and inspect
//! what it printed.
//!
//! [`PluginTest`] builds the environment and the configuration, runs the real dispatcher (the
//! same code the generated `main` runs) with in-memory stdin/stdout/stderr, and returns an
//! [`Outcome`]. Nothing touches the process environment, so tests run in parallel.
//!
//! **Nothing touches the host unless a test asks for it**: a `PluginTest` runs with a fresh
//! [`FakeNetwork`] (holding a namespace for [`TEST_NETNS`]) and an
//! empty [`InProcessExec`] (every delegation fails as "plugin not found") until the test gives
//! its own ([`PluginTest::network`], [`PluginTest::exec`]) or opts in to the real kernel and
//! real plugin processes with [`PluginTest::kernel`]. The builder's calls can come in any order.
//!
//! ```
//! use cni_sdk::testing::{for_each_version, PluginTest};
//! use cni_sdk::{Command, Context, CniResult, IpConfig, Plugin, Result};
//!
//! struct Static;
//! impl Plugin for Static {
//!     type Config = ();
//!     async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
//!         let mut r = CniResult::default();
//!         r.ips.push(IpConfig::new("10.200.0.2/24".parse().unwrap()));
//!         Ok(r)
//!     }
//!     async fn del(&self, _cx: &Context<()>) -> Result<()> { Ok(()) }
//!     async fn check(&self, _cx: &Context<()>) -> Result<()> { Ok(()) }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! for_each_version(|version| async move {
//!     let out = PluginTest::new(&Static).version(version).run().await;
//!     let result = out.expect_result();
//!     assert_eq!(result.ips[0].address.to_string(), "10.200.0.2/24");
//!
//!     let check = PluginTest::new(&Static).command(Command::Check).version(version).run().await;
//!     if version.has_check() { check.expect_success() } else { check.expect_error(1); }
//! })
//! .await;
//! # });
//! ```
//!
//! ## Mocked namespaces and delegates
//!
//! With [`PluginTest::network`] the plugin's [`Context::host_net`](crate::Context::host_net) and
//! [`Context::container_net`](crate::Context::container_net) are namespaces of a
//! [`FakeNetwork`]; with [`PluginTest::exec`] delegated plugins
//! (IPAM) are served in-process. A whole ADD / CHECK / DEL cycle, without root:
//!
//! ```
//! use cni_sdk::net::fake::FakeNetwork;
//! use cni_sdk::testing::{InProcessExec, PluginTest};
//! use cni_sdk::{CniResult, Command, Context, Interface, IpConfig, Plugin, Result};
//!
//! /// Moves one end of a veth pair into the container and configures it from IPAM.
//! struct Veth;
//! impl Plugin for Veth {
//!     type Config = ();
//!     async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
//!         let (host, ctr) = (cx.host_net().await?, cx.container_net().await?);
//!         cx.ipam()?.add_with_rollback(|mut r| async move {
//!             let (_, c) = host.veth("veth-test", cx.ifname()).peer_netns(&ctr).execute().await?;
//!             ctr.set_up(c.index).await?;
//!             for ip in &r.ips {
//!                 ctr.add_address(c.index, ip.address).await?;
//!                 let gw = ip.gateway.expect("IPAM gives a gateway");
//!                 ctr.route("0.0.0.0/0".parse().unwrap()).gateway(gw).dev(c.index).add().await?;
//!             }
//!             r.interfaces.push(Interface::new(cx.ifname()));
//!             Ok(r)
//!         }).await
//!     }
//!     async fn del(&self, cx: &Context<()>) -> Result<()> {
//!         cx.ipam()?.del().await?;
//!         if let Some(ctr) = cx.container_net_if_exists().await? {
//!             if let Some(link) = ctr.find_link(cx.ifname()).await? {
//!                 ctr.delete_link(link.index).await?;
//!             }
//!         }
//!         Ok(())
//!     }
//!     async fn check(&self, cx: &Context<()>) -> Result<()> {
//!         cx.container_net().await?.link(cx.ifname()).await?;
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let world = FakeNetwork::new();
//! world.add_namespace("pod1");
//! let ipam = InProcessExec::new().with_fn("fake-ipam", |cmd, _stdin| match cmd {
//!     Command::Add => {
//!         let mut r = CniResult::default();
//!         r.ips.push(IpConfig { gateway: Some("10.250.1.1".parse().unwrap()), ..IpConfig::new("10.250.1.2/24".parse().unwrap()) });
//!         Ok(Some(r))
//!     }
//!     _ => Ok(None),
//! });
//! let run = |cmd| PluginTest::new(&Veth)
//!     .command(cmd)
//!     .config_keys(serde_json::json!({"ipam": {"type": "fake-ipam"}}))
//!     .netns("/var/run/netns/pod1")
//!     .network(&world)
//!     .exec(ipam.clone())
//!     .run();
//!
//! run(Command::Add).await.expect_result();
//! let pod = world.snapshot("pod1").unwrap();
//! let eth0 = pod.links.iter().find(|l| l.name == "eth0").unwrap();
//! assert!(eth0.up);
//! assert!(pod.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.250.1.2/24"));
//! assert!(pod.routes.iter().any(|r| r.dst.prefix_len() == 0));
//! assert!(world.snapshot("host").unwrap().links.iter().any(|l| l.name == "veth-test"));
//!
//! run(Command::Check).await.expect_success();
//! run(Command::Del).await.expect_success();
//! assert!(world.snapshot("pod1").unwrap().links.iter().all(|l| l.name != "eth0"));
//! assert!(world.snapshot("host").unwrap().links.iter().all(|l| l.name != "veth-test"));
//! # });
//! ```

use std::collections::BTreeMap;
use std::future::Future;

use cni_types::{CniError, CniResult, ErrorCode, SpecVersion};
use serde_json::{Value, json};

use crate::dispatch::{self, Invocation};
use crate::exec::Exec;
use crate::net::fake::FakeNetwork;
use crate::{Command, Plugin, PluginOptions, Services};

mod inprocess;

pub use inprocess::InProcessExec;

/// The container ID tests use unless told otherwise.
pub const TEST_CONTAINER_ID: &str = "cni-sdk-test";
/// The netns path tests use unless told otherwise. The default fake network of a
/// [`PluginTest`] has a namespace of this name ([`TEST_NETNS_NAME`]); on a real host the path
/// normally does not exist.
pub const TEST_NETNS: &str = "/var/run/netns/cni-sdk-test";
/// The name of the fake namespace [`TEST_NETNS`] names.
pub const TEST_NETNS_NAME: &str = "cni-sdk-test";
/// The network name tests use unless told otherwise.
pub const TEST_NETWORK: &str = "test-net";

/// Runs a plugin value in-process for one verb.
#[must_use = "a PluginTest does nothing until `.run().await`"]
pub struct PluginTest<'p, P> {
    plugin: &'p P,
    options: PluginOptions,
    env: BTreeMap<String, String>,
    config: Value,
    prev_result: Option<CniResult>,
    stdin: Option<Vec<u8>>,
    network: Option<FakeNetwork>,
    exec: Option<Services>,
    kernel: bool,
}

impl<P> std::fmt::Debug for PluginTest<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginTest").field("env", &self.env).field("config", &self.config).finish_non_exhaustive()
    }
}

impl<'p, P: Plugin> PluginTest<'p, P> {
    /// ADD with a 1.1.0 configuration `{"name": "test-net", "type": "test"}`, container ID
    /// [`TEST_CONTAINER_ID`], netns [`TEST_NETNS`], ifname `eth0`, `CNI_PATH=/opt/cni/bin`, a
    /// fresh fake network and no delegates.
    pub fn new(plugin: &'p P) -> Self {
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", TEST_CONTAINER_ID),
            ("CNI_NETNS", TEST_NETNS),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            plugin,
            options: PluginOptions::new("test plugin"),
            env,
            config: json!({"cniVersion": "1.1.0", "name": TEST_NETWORK, "type": "test"}),
            prev_result: None,
            stdin: None,
            network: None,
            exec: None,
            kernel: false,
        }
    }

    /// The plugin's options (supported versions, strictness).
    pub fn options(mut self, options: PluginOptions) -> Self {
        self.options = options;
        self
    }

    /// The verb.
    pub fn command(self, command: Command) -> Self {
        self.env("CNI_COMMAND", command.as_str())
    }

    /// Replaces the configuration. Keys it lacks are not filled in.
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Merges keys into the configuration (top level).
    pub fn config_keys(mut self, keys: Value) -> Self {
        if let (Some(dst), Value::Object(src)) = (self.config.as_object_mut(), keys) {
            dst.extend(src);
        }
        self
    }

    /// Sets the configuration's `cniVersion`.
    pub fn version(self, version: SpecVersion) -> Self {
        self.config_keys(json!({ "cniVersion": version.as_str() }))
    }

    /// Sets `prevResult`, printed in the configuration's final version when the test runs (as
    /// a runtime would send it), whatever the order of the builder calls.
    ///
    /// # Panics
    /// In [`PluginTest::run`], when the result cannot be expressed in that version (e.g. no IP
    /// in 0.2.0).
    pub fn prev_result(mut self, result: &CniResult) -> Self {
        self.prev_result = Some(result.clone());
        self
    }

    /// `CNI_CONTAINERID`.
    pub fn container_id(self, id: &str) -> Self {
        self.env("CNI_CONTAINERID", id)
    }

    /// `CNI_NETNS`.
    pub fn netns(self, path: &str) -> Self {
        self.env("CNI_NETNS", path)
    }

    /// `CNI_IFNAME`.
    pub fn ifname(self, name: &str) -> Self {
        self.env("CNI_IFNAME", name)
    }

    /// `CNI_ARGS`.
    pub fn cni_args(self, args: &str) -> Self {
        self.env("CNI_ARGS", args)
    }

    /// Sets any environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Removes an environment variable.
    pub fn unset(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Serves delegated plugins (IPAM, chained) from this executor (usually an
    /// [`InProcessExec`]).
    pub fn exec(mut self, exec: impl Exec + 'static) -> Self {
        self.exec = Some(Services::unavailable().with_exec(exec));
        self
    }

    /// Runs against this fake network: [`Context::host_net`](crate::Context::host_net) is the
    /// fake host and `CNI_NETNS=/var/run/netns/NAME` names the fake namespace `NAME` (a path
    /// naming no namespace of the world is a namespace that is gone).
    pub fn network(mut self, world: &FakeNetwork) -> Self {
        self.network = Some(world.clone());
        self
    }

    /// Runs against the real kernel and real plugin processes ([`Services::system`]): the
    /// plugin's host namespace is the test's own, `CNI_NETNS` must name a real namespace and
    /// delegates are executables in `CNI_PATH`. For root tests in throwaway namespaces.
    /// Overrides [`PluginTest::network`] and [`PluginTest::exec`].
    pub fn kernel(mut self) -> Self {
        self.kernel = true;
        self
    }

    /// Sends these bytes on stdin instead of the configuration.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The services this test runs with.
    fn services(&self) -> Services {
        if self.kernel {
            return Services::system();
        }
        let world = self.network.clone().unwrap_or_else(|| {
            let world = FakeNetwork::new();
            world.add_namespace(TEST_NETNS_NAME);
            world
        });
        let base = self.exec.clone().unwrap_or_else(|| Services::unavailable().with_exec(InProcessExec::new()));
        base.with_net(world)
    }

    /// Runs the dispatcher.
    pub async fn run(mut self) -> Outcome {
        let services = self.services();
        if let Some(prev) = self.prev_result.take() {
            let version: SpecVersion =
                self.config["cniVersion"].as_str().unwrap_or_default().parse().unwrap_or(SpecVersion::LATEST);
            let doc = prev.to_value(version).expect("prevResult must be representable in the configuration's version");
            self = self.config_keys(json!({ "prevResult": doc }));
        }
        let stdin = self.stdin.unwrap_or_else(|| serde_json::to_vec(&self.config).expect("JSON values serialise"));
        let version = self.config.get("cniVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut input: &[u8] = &stdin;
        let io = Invocation { env: self.env, stdin: &mut input, stdout: &mut stdout, stderr: &mut stderr };
        let exit_code = dispatch::run_with(self.plugin, &self.options, io, services).await;
        Outcome { exit_code, stdout, stderr: String::from_utf8_lossy(&stderr).into_owned(), version }
    }
}

/// What a plugin run printed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The exit code.
    pub exit_code: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: String,
    version: String,
}

impl Outcome {
    /// Exit code 0.
    pub fn is_success(&self) -> bool {
        self.exit_code == 0
    }

    /// stdout parsed as exactly one JSON document (`None` when stdout is empty).
    ///
    /// # Panics
    /// When stdout holds anything but one JSON document.
    pub fn document(&self) -> Option<Value> {
        if self.stdout.is_empty() {
            return None;
        }
        match serde_json::from_slice(&self.stdout) {
            Ok(v) => Some(v),
            Err(e) => {
                panic!("stdout is not exactly one JSON document ({e}):\n{}", String::from_utf8_lossy(&self.stdout))
            }
        }
    }

    /// The error object, when the run failed.
    pub fn error(&self) -> Option<CniError> {
        if self.is_success() {
            return None;
        }
        self.document().and_then(|d| serde_json::from_value(d).ok())
    }

    /// The result in canonical form (parsed with the configuration's version as default).
    pub fn result(&self) -> Option<CniResult> {
        let doc = self.document()?;
        CniResult::from_value(doc, &self.version).ok()
    }

    /// Asserts success with a result whose `cniVersion` is the configuration's, and returns it.
    ///
    /// # Panics
    /// On failure, on an empty stdout or a result that does not parse.
    pub fn expect_result(&self) -> CniResult {
        assert!(
            self.is_success(),
            "expected success, got exit {}: {}\nstderr: {}",
            self.exit_code,
            self.stdout_text(),
            self.stderr
        );
        let doc = self.document().expect("ADD must print a result");
        let expected = if self.version.is_empty() { "0.1.0" } else { &self.version };
        assert_eq!(doc["cniVersion"], expected, "result version must equal the configuration's");
        CniResult::from_value(doc, &self.version).expect("result must parse in its version")
    }

    /// Asserts success with nothing on stdout.
    ///
    /// # Panics
    /// On failure or output.
    pub fn expect_success(&self) {
        assert!(
            self.is_success(),
            "expected success, got exit {}: {}\nstderr: {}",
            self.exit_code,
            self.stdout_text(),
            self.stderr
        );
        assert!(self.stdout.is_empty(), "expected no output, got: {}", self.stdout_text());
    }

    /// Asserts failure with error `code` and exit code 1, and returns the error object.
    ///
    /// # Panics
    /// On success, another code, or output that is not one error object.
    pub fn expect_error(&self, code: impl Into<ErrorCode>) -> CniError {
        let code = code.into();
        assert_eq!(
            self.exit_code,
            1,
            "expected exit 1 with error {code}, got {}: {}",
            self.exit_code,
            self.stdout_text()
        );
        let err = self.error().unwrap_or_else(|| panic!("expected an error object, got: {}", self.stdout_text()));
        assert_eq!(err.code, code, "wrong error code: {err:?}");
        assert!(err.cni_version.is_some(), "error objects carry cniVersion");
        err
    }

    /// stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Execs a plugin binary the way a runtime does: a cleared environment with just `env`, `stdin`
/// written to it (a plugin that exits before reading it is fine), stdout and stderr captured.
///
/// # Panics
/// When the binary cannot be started or is killed by a signal.
pub fn run_binary<I, K, V>(bin: impl AsRef<std::path::Path>, env: I, stdin: &[u8]) -> Outcome
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let bin = bin.as_ref();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    // A plugin may exit before reading stdin (an early error): a broken pipe is fine.
    let _ = child.stdin.take().expect("piped").write_all(stdin);
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("waiting for {}: {e}", bin.display()));
    let version = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Outcome {
        exit_code: out.status.code().unwrap_or_else(|| panic!("{} was killed: {}", bin.display(), out.status)),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        version,
    }
}

/// Runs `test` once per spec version, oldest first.
pub async fn for_each_version<F, Fut>(test: F)
where
    F: FnMut(SpecVersion) -> Fut,
    Fut: Future<Output = ()>,
{
    for_versions(&SpecVersion::ALL, test).await;
}

/// Runs `test` once per version in `versions`.
pub async fn for_versions<F, Fut>(versions: &[SpecVersion], mut test: F)
where
    F: FnMut(SpecVersion) -> Fut,
    Fut: Future<Output = ()>,
{
    for v in versions {
        test(*v).await;
    }
}
