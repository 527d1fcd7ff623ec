//! The plugin the runtime runs: it forwards every verb to the daemon over its unix socket and
//! prints the daemon's answer, with Go's error texts (`error dialing DHCP daemon: ...`,
//! `error calling DHCP.Allocate: ...`).

use std::path::{Path, PathBuf};

use cni_sdk::daemon::{self, ForwardError, WireRequest};
use cni_sdk::{CniResult, Command, Context, Error, Result};

use crate::config::{self, DEFAULT_SOCKET_PATH};

/// Go's `syscall.Errno` text: the C message with a lower-case first letter.
fn errno_text(e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(n) => std::io::Error::from_raw_os_error(n).to_string(),
        None => e.to_string(),
    };
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// The daemon's socket: `ipam.daemonSocketPath`, else `$CNI_DAEMON_SOCKET`, else Go's default.
fn socket_of<C>(cx: &Context<C>) -> Result<PathBuf> {
    match config::socket_path(cx.raw_config()) {
        Ok(Some(p)) => Ok(PathBuf::from(p)),
        Ok(None) => {
            Ok(PathBuf::from(cx.env(daemon::SOCKET_ENV).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_SOCKET_PATH)))
        }
        Err(e) if e.starts_with("IPAM config") => Err(Error::invalid_config(e)),
        Err(e) => Err(Error::internal(format!("error obtaining socketPath: {e}"))),
    }
}

/// The name of Go's RPC method for the verb (kept in error texts).
fn method(cmd: Command) -> &'static str {
    match cmd {
        Command::Del => "DHCP.Release",
        Command::Status => "DHCP.Status",
        Command::Gc => "DHCP.GC",
        _ => "DHCP.Allocate",
    }
}

/// Forwards the request to the daemon; returns its result (ADD) or error.
pub(crate) async fn forward<C>(cx: &Context<C>) -> Result<Option<CniResult>> {
    let socket = socket_of(cx)?;
    let method = method(cx.command());
    let mut request = WireRequest::from_context(cx);
    // The daemon may run in another directory: make CNI_NETNS absolute (as Go's shim does).
    if let Some(ns) = request.env.get_mut("CNI_NETNS")
        && !ns.is_empty()
        && Path::new(ns.as_str()).is_relative()
    {
        let abs = std::env::current_dir()
            .map(|d| d.join(ns.as_str()))
            .map_err(|e| Error::internal(format!("failed to make {ns:?} an absolute path: {}", errno_text(&e))))?;
        *ns = abs.display().to_string();
    }
    let response = match daemon::forward(&socket, &request).await {
        Ok(r) => r,
        Err(ForwardError::Connect(e)) => return unreachable(cx, &socket, &e),
        Err(e) => return Err(Error::internal(format!("error calling {method}: {e}"))),
    };
    if let Ok(err) = response.stderr_bytes()
        && !err.is_empty()
    {
        tracing::warn!(daemon_stderr = %String::from_utf8_lossy(&err), "the DHCP daemon wrote to stderr");
    }
    response.outcome(cx.version().as_str()).map_err(|e| {
        let wrapped = Error::new(e.code(), format!("error calling {method}: {}", e.message()));
        match e.details() {
            Some(d) => wrapped.with_details(d),
            None => wrapped,
        }
    })
}

/// No daemon: DEL of a container whose namespace is gone succeeds (nothing can be released
/// from its interface any more), STATUS says "not available" (code 50), the rest fail like Go.
fn unreachable<C>(cx: &Context<C>, socket: &Path, e: &std::io::Error) -> Result<Option<CniResult>> {
    let msg = format!("error dialing DHCP daemon: dial unix {}: connect: {}", socket.display(), errno_text(e));
    match cx.command() {
        Command::Del if cx.netns().is_none_or(|p| p.as_os_str().is_empty() || !p.exists()) => {
            tracing::warn!("{msg}; the container's namespace is gone, DEL done");
            Ok(None)
        }
        Command::Status => Err(Error::not_available(msg)),
        _ => Err(Error::internal(msg)),
    }
}
