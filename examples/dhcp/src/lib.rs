//! `dhcp`: an IPAM plugin that leases addresses from a DHCP server on the container's
//! interface — a drop-in replacement for Go's `plugins/ipam/dhcp`.
//!
//! One binary, two roles, as in Go:
//!
//! * run by the runtime, it is a **shim** ([`Dhcp`]) that forwards every request to the daemon
//!   over a unix socket (`ipam.daemonSocketPath`, default `/run/cni/dhcp.sock`);
//! * `dhcp daemon [flags]` is the **daemon**, with Go's flags (`-socketpath`, `-pidfile`,
//!   `-hostprefix`, `-broadcast`, `-timeout`, `-resendmax`, `-resendtimeout`, plus
//!   `-statedir`). It acquires each lease inside the container's namespace on `CNI_IFNAME`,
//!   renews it in the background (T1/T2), releases it on DEL and on GC, and keeps it on disk
//!   so a restarted daemon keeps renewing.
//!
//! Shim and daemon speak the SDK's daemon protocol (`cni_sdk::daemon`), not Go's gob RPC: the
//! binary replaces both roles of Go's binary together.

pub(crate) mod cli;
pub(crate) mod client;
pub mod config;
#[cfg(test)]
mod fake;
pub mod flags;
pub(crate) mod lease;
pub(crate) mod port;
pub(crate) mod server;
mod shim;
pub(crate) mod store;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_load;

use cni_sdk::{CniResult, Context, Plugin, Result, cni_plugin};

/// The dhcp plugin as the runtime runs it: a shim in front of the daemon.
#[derive(Debug, Default)]
pub struct Dhcp;

impl Dhcp {
    /// Makes the plugin value, unless this process was started as the daemon (`dhcp daemon
    /// [flags]`, or `cni-plugins dhcp daemon [flags]`): then it runs the daemon and exits,
    /// as Go's `main` does before `skel` when `os.Args[1] == "daemon"`.
    pub fn from_process() -> Self {
        if let Some(args) = cli::daemon_args() {
            cli::main(args)
        }
        Self
    }
}

#[cni_plugin(about = "CNI dhcp plugin (cni-rs)", name = "dhcp", init = Dhcp::from_process, main = false)]
impl Plugin for Dhcp {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        Ok(shim::forward(cx).await?.unwrap_or_default())
    }

    async fn del(&self, cx: &Context<()>) -> Result<()> {
        shim::forward(cx).await.map(drop)
    }

    async fn check(&self, cx: &Context<()>) -> Result<()> {
        shim::forward(cx).await.map(drop)
    }

    /// Whether the daemon answers (code 50 when it does not).
    async fn status(&self, cx: &Context<()>) -> Result<()> {
        shim::forward(cx).await.map(drop)
    }

    /// The daemon releases the leases of attachments that are not valid any more.
    async fn gc(&self, cx: &Context<()>) -> Result<()> {
        shim::forward(cx).await.map(drop)
    }
}
