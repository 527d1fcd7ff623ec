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
//! the exact protocol behaviour, [`logging`] for log settings and [`testing`] for in-process
//! tests.
//!
//! [Container Network Interface]: https://github.com/containernetworking/cni
#![warn(missing_docs)]

pub mod delegate;
pub mod dispatch;
mod error;
pub mod exec;
mod guard;
pub mod logging;
pub mod net;
pub mod netns;
mod options;
mod plugin;
pub mod runtime;
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[cfg(feature = "macros")]
pub use cni_macros::cni_plugin;
pub use cni_types::{
    self as types, Attachment, CniArgs, CniError, CniResult, Dns, ErrorCode, Interface, IpConfig, NetworkConfig, Route,
    RuntimeConfig, SpecVersion,
};
pub use delegate::Delegate;
pub use error::{Error, Result, ResultExt};
pub use options::{DEFAULT_MAX_STDIN, PluginOptions};
pub use plugin::{Command, Context, Plugin, UnknownCommand};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
