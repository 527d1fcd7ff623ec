//! Write [Container Network Interface] plugins in Rust as three async methods.
//!
//! ```no_run
//! use cni_sdk::{cni_plugin, Context, CniResult, Plugin, Result};
//!
//! /// A chained plugin that passes the previous result through unchanged.
//! #[derive(Default)]
//! struct PassThrough;
//!
//! #[cni_plugin(about = "CNI pass-through plugin v0.1")]
//! impl Plugin for PassThrough {
//!     type Config = ();
//!
//!     async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
//!         Ok(cx.prev_result().cloned().unwrap_or_default())
//!     }
//!     async fn del(&self, _cx: &Context<()>) -> Result<()> {
//!         Ok(())
//!     }
//!     async fn check(&self, _cx: &Context<()>) -> Result<()> {
//!         Ok(())
//!     }
//! }
//! ```
//!
//! `#[cni_plugin]` writes `main`: it reads the `CNI_*` environment and stdin, negotiates the
//! version, validates identifiers, runs the method on a current-thread runtime, prints the
//! result in the configuration's version (or one error object) and exits. See [`dispatch`] for
//! the exact protocol behaviour, [`logging`] for log settings and `testing` (feature `test-util`) for in-process
//! tests.
//!
//! Beyond the dispatcher:
//!
//! * [`netns`] and [`net`]: network namespaces handled without ever switching an async worker,
//!   and namespace-bound netlink handles with an in-memory fake (`net::fake::FakeNetwork`,
//!   feature `test-util`) for tests that need no root;
//! * [`kit`]: the building blocks Go's reference plugins share (`plugins/pkg`): configure an
//!   interface from a result, CHECK helpers, veth setup, an ADD undo stack, IPAM helpers,
//!   Go's error wording;
//! * [`delegate`] and [`exec`]: calling IPAM and other plugins, with rollback, timeouts and
//!   in-process fakes;
//! * `firewall`: iptables and nftables rules in one model, with Go's chain names and IP
//!   masquerading;
//! * `daemon`: a thin shim binary in front of a long-running daemon; [`multicall!`]: several
//!   plugins in one binary;
//! * `runtime`: the runtime side (a libcni equivalent) used by `cnitool`;
//! * `testing`: run a plugin in-process, as a runtime would, on fakes by default.
//!
//! # Cargo features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `macros` | yes | [`cni_plugin`] (the `cni-macros` crate) |
//! | `netlink` | yes | the kernel backend of [`net`] (rtnetlink) and [`netns`]; without it `Net` handles come only from a fake |
//! | `exec` | yes | `exec::ProcessExec`: other plugins run as processes found in `CNI_PATH` (delegation in a plugin binary) |
//! | `firewall` | no | the `firewall` module |
//! | `daemon` | no | the `daemon` module |
//! | `runtime` | no | the `runtime` module (implies `exec`) |
//! | `test-util` | no | the `testing` module and the fakes `net::fake` and `firewall::fake` |
//!
//! With `default-features = false` the crate is the dispatcher, the [`Plugin`] trait, the
//! error model and the spec types ([`types`]): enough for a plugin that touches no namespace.
//! Items that need a feature say so in their documentation (docs.rs shows every feature).
//!
//! # Guides
//!
//! Starting a new plugin: the cargo-generate template in [`templates/`] (variants `main`,
//! `chained` and `ipam`). The guides in [`docs/`]: [writing a plugin], [testing],
//! [delegation and chaining], [daemon-backed plugins], [the plugin kit], [porting an existing
//! project].
//!
//! Minimum supported Rust version: 1.88 (let chains; edition 2024). Linux only.
//!
//! [Container Network Interface]: https://github.com/containernetworking/cni
//! [`templates/`]: https://github.com/cni-rs/cni-rs/tree/main/templates
//! [`docs/`]: https://github.com/cni-rs/cni-rs/tree/main/docs
//! [writing a plugin]: https://github.com/cni-rs/cni-rs/blob/main/docs/writing-a-plugin.md
//! [testing]: https://github.com/cni-rs/cni-rs/blob/main/docs/testing.md
//! [delegation and chaining]: https://github.com/cni-rs/cni-rs/blob/main/docs/delegation.md
//! [daemon-backed plugins]: https://github.com/cni-rs/cni-rs/blob/main/docs/daemon.md
//! [the plugin kit]: https://github.com/cni-rs/cni-rs/blob/main/docs/kit.md
//! [porting an existing project]: https://github.com/cni-rs/cni-rs/blob/main/docs/porting.md
#![warn(missing_docs)]

mod context;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod delegate;
pub mod dispatch;
mod error;
pub mod exec;
#[cfg(feature = "firewall")]
pub mod firewall;
mod guard;
pub mod kit;
pub mod logging;
pub mod multicall;
pub mod net;
pub mod netns;
mod options;
mod plugin;
#[cfg(feature = "runtime")]
pub mod runtime;
mod services;
#[cfg(feature = "test-util")]
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// Turns an `impl Plugin for YourType { ... }` block into a plugin program by writing its
/// `main`.
///
/// ```no_run
/// use cni_sdk::{cni_plugin, Context, CniResult, Plugin, Result};
/// use serde::Deserialize;
///
/// /// The plugin's own keys of the network configuration.
/// #[derive(Deserialize)]
/// struct MyConfig {
///     bridge: String,
/// }
///
/// struct MyPlugin {
///     mtu: u32,
/// }
///
/// impl MyPlugin {
///     fn new() -> Self {
///         Self { mtu: 1500 }
///     }
/// }
///
/// #[cni_plugin(
///     about = "CNI my plugin v0.1",
///     versions = ["1.0.0", "1.1.0"],
///     go_strict,
///     init = MyPlugin::new,
/// )]
/// impl Plugin for MyPlugin {
///     type Config = MyConfig;
///
///     async fn add(&self, cx: &Context<MyConfig>) -> Result<CniResult> {
///         let _ = (&cx.plugin_config().bridge, self.mtu);
///         Ok(CniResult::default())
///     }
///     async fn del(&self, _cx: &Context<MyConfig>) -> Result<()> {
///         Ok(())
///     }
///     async fn check(&self, _cx: &Context<MyConfig>) -> Result<()> {
///         Ok(())
///     }
/// }
/// ```
///
/// Put it in the root of a binary crate (`src/main.rs`, or a file under `src/bin/`), where
/// `main` must be, and write no `main` of your own. The plugin needs no direct dependency on
/// tokio or serde (serde only for `#[derive(Deserialize)]` on its config type).
///
/// # Options
///
/// All options are optional, separated by commas, in any order:
///
/// | Option | Meaning | Default |
/// |---|---|---|
/// | `about = "..."` | The text printed when `CNI_COMMAND` is unset (a string literal). | `"CNI <package name> plugin v<package version>"` |
/// | `versions = ["1.0.0", ...]` | The spec versions the plugin supports, checked at compile time: each one of `0.1.0`, `0.2.0`, `0.3.0`, `0.3.1`, `0.4.0`, `1.0.0`, `1.1.0`, at least one, no repeats. | all seven |
/// | `go_strict` or `go_strict = true` / `false` | Require `CNI_PATH` like Go's `skel` (see [`PluginOptions::go_strict`]). | `false` |
/// | `init = MyPlugin::new` | A path to a function taking no arguments, which is called to make the plugin value. | [`Default::default`] |
/// | `init = <expression>` | Any other expression is the plugin value itself, e.g. `init = MyPlugin { mtu: 1500 }`. So is a path whose last segment is capitalised, like a unit struct (`init = MyPlugin`) or a constant (`init = plugins::DEFAULT`). | |
/// | `name = "my-plugin"` | The name the plugin answers to in a multi-call binary ([`multicall!`]), [`PluginEntry::NAME`]. | the package name |
/// | `main = false` | Write no `main`: for a plugin type in a library crate, run by a binary with [`main!`] or [`multicall!`]. | `true` |
/// | `crate = "path"` or `crate = path` | Where `cni_sdk` is, for crates that re-export it, e.g. `crate = "my_toolkit::cni"`. | `::cni_sdk` |
///
/// # What it generates
///
/// The impl block unchanged, followed by an implementation of [`PluginEntry`] and (unless
/// `main = false`) a `main`:
///
/// ```text
/// impl ::cni_sdk::PluginEntry for MyPlugin {
///     const NAME: &'static str = "my-plugin";                  // from `name`
///     fn options() -> ::cni_sdk::PluginOptions {
///         ::cni_sdk::__private::options("CNI my plugin v0.1",  // from `about`
///             Some(&["1.0.0", "1.1.0"]),                      // from `versions`; None: all
///             true)                                           // from `go_strict`
///     }
///     fn create() -> Self { MyPlugin::new() }                 // from `init`
/// }
/// fn main() {
///     ::cni_sdk::__private::run::<MyPlugin>()        // = cni_sdk::run::<MyPlugin>()
/// }
/// ```
///
/// which reads the `CNI_*` environment and stdin, runs the requested method on a
/// current-thread tokio runtime (so neither the plugin nor its futures need to be `Send`),
/// prints the result or error and exits with the matching status. The generated code only
/// names `::cni_sdk` (or the `crate` path) and `::core`, and is free of warnings under
/// strict lints such as `#![deny(missing_docs, unused_qualifications, clippy::pedantic)]`.
/// To test a plugin without running a process, see the `testing` module (feature `test-util`).
///
/// # Compile-time checks
///
/// Each mistake is reported on the token that causes it, all in one build:
///
/// * unknown or repeated options, options without a value or with a value of the wrong
///   kind (`about = 1`), versions that are not spec versions, an empty `versions = []`;
/// * the attribute on anything but an `impl Plugin for YourType` block (a function, a
///   struct, an inherent impl, an impl of another trait, a generic impl);
/// * `add`, `del`, `check`, `status` or `gc` written without `async` (writing
///   `fn add(..) -> impl Future<Output = Result<CniResult>>` is also accepted);
/// * a missing `type Config` (write `type Config = ();` if the plugin has no own keys) or a
///   missing `add`, `del` or `check`.
///
/// After an error the impl block is still emitted, so completion in editors keeps working.
///
/// Needs the `macros` feature (on by default).
#[cfg(feature = "macros")]
#[doc(inline)]
pub use cni_macros::cni_plugin;
pub use cni_types::{
    self as types, Attachment, CniArgs, CniError, CniResult, Command, Dns, ErrorCode, Interface, IpConfig,
    NetworkConfig, Route, RuntimeConfig, SpecVersion, UnknownCommand,
};
pub use context::Context;
pub use delegate::Delegate;
pub use error::{Error, ErrorKind, Result, ResultExt};
pub use options::{DEFAULT_MAX_STDIN, PluginOptions};
pub use plugin::{Plugin, PluginEntry};
pub use services::Services;
/// The logging facade the SDK uses (see [`logging`]); plugins can log without their own dependency.
pub use tracing;

/// Runs `plugin` as this process: reads the environment and stdin, writes stdout, exits. For a
/// hand-written `main`; plugin types made with `#[cni_plugin]` use [`run`].
pub fn plugin_main<P: Plugin>(plugin: P, options: PluginOptions) -> ! {
    __private::main(plugin, options)
}

/// Runs the plugin type `P` (made with `#[cni_plugin]`) as this process.
pub fn run<P: PluginEntry>() -> ! {
    __private::run::<P>()
}

/// Writes the `main` of a binary that runs a plugin type defined in a library crate.
///
/// ```ignore
/// // src/main.rs of the `bridge` package; the plugin lives in src/lib.rs with
/// // `#[cni_plugin(..., main = false)]`.
/// cni_sdk::main!(bridge::Bridge);
/// ```
#[macro_export]
macro_rules! main {
    ($plugin:ty $(,)?) => {
        fn main() {
            $crate::run::<$plugin>()
        }
    };
}

/// Builds one binary that contains several plugins and runs the one it was invoked as
/// (`argv[0]`, i.e. the name of a symlink or hardlink in `CNI_PATH`), like busybox.
///
/// Each entry is a plugin type made with `#[cni_plugin]` (usually from a library crate); its
/// [`PluginEntry::NAME`] is the name it answers to.
///
/// ```ignore
/// // examples/cni-plugins/src/main.rs
/// cni_sdk::multicall! {
///     "cni-plugins";
///     bridge::Bridge,
///     loopback::Loopback,
/// }
/// ```
///
/// Invoked under its own name, the first argument selects the plugin (`cni-plugins bridge`),
/// and `cni-plugins install DIR` lays out the binary and one link per plugin in `DIR`
/// atomically (see [`multicall`](mod@crate::multicall)).
#[macro_export]
macro_rules! multicall {
    ($binary:literal; $($plugin:ty),+ $(,)?) => {
        fn main() {
            $crate::__private::multicall(
                $binary,
                &[$($crate::__private::MulticallEntry {
                    name: <$plugin as $crate::PluginEntry>::NAME,
                    run: $crate::__private::run_with_services::<$plugin>,
                    in_process: $crate::__private::in_process::<$plugin>,
                }),+],
            )
        }
    };
}

/// The crate README's examples, compiled as doctests (the workspace README and the guides are
/// compiled by the `cni-tests` package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
