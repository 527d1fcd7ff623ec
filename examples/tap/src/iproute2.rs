//! The `selinuxContext` path: the tap is made by iproute2's `ip`, spawned with that SELinux exec
//! label, so the device gets the label (as Go's tap plugin does).

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::process::Command;

use cni_sdk::net::Net;
use cni_sdk::types::MacAddr;
use cni_sdk::{Error, ErrorKind, Result};

/// One `ip tuntap add` (and `ip link set`) request, run inside the container's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpTuntap {
    /// The SELinux label the `ip` processes are started with (`/proc/thread-self/attr/exec`).
    pub label: Option<String>,
    /// The device name.
    pub name: String,
    /// `multi_queue`.
    pub multi_queue: bool,
    /// `user <uid>`.
    pub owner: Option<u32>,
    /// `group <gid>`.
    pub group: Option<u32>,
    /// `mtu <n>` (second command).
    pub mtu: Option<u32>,
    /// `address <mac>` (second command).
    pub mac: Option<MacAddr>,
}

impl IpTuntap {
    /// The arguments of `ip tuntap add`, in Go's order.
    pub fn add_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["tuntap", "add", "mode", "tap", "name", &self.name].map(str::to_owned).to_vec();
        if self.multi_queue {
            args.push("multi_queue".into());
        }
        if let Some(uid) = self.owner {
            args.extend(["user".into(), uid.to_string()]);
        }
        if let Some(gid) = self.group {
            args.extend(["group".into(), gid.to_string()]);
        }
        args
    }

    /// The arguments of `ip link set`, or `None` when there is nothing to set.
    pub fn set_args(&self) -> Option<Vec<String>> {
        if self.mtu.is_none() && self.mac.is_none() {
            return None;
        }
        let mut args: Vec<String> = vec!["link".into(), "set".into(), self.name.clone()];
        if let Some(mtu) = self.mtu {
            args.extend(["mtu".into(), mtu.to_string()]);
        }
        if let Some(mac) = self.mac {
            args.extend(["address".into(), mac.to_string()]);
        }
        Some(args)
    }
}

/// Makes a tap device with a labelled `ip` (see [`Iproute2`]); replaceable in tests.
pub trait TapTool: Send + Sync + fmt::Debug {
    /// Creates the device `req` describes in `ctr`'s namespace. Errors carry Go's texts:
    /// `failed set socket label: ...`, `failed to run command <output>: <status>`.
    fn create(&self, ctr: &Net, req: &IpTuntap) -> impl Future<Output = Result<()>> + Send;
}

/// The object-safe form of [`TapTool`], for the plugin to hold any tool.
pub(crate) trait DynTapTool: Send + Sync + fmt::Debug {
    fn create_boxed<'a>(
        &'a self,
        ctr: &'a Net,
        req: &'a IpTuntap,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

impl<T: TapTool> DynTapTool for T {
    fn create_boxed<'a>(
        &'a self,
        ctr: &'a Net,
        req: &'a IpTuntap,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(self.create(ctr, req))
    }
}

/// The real tool: on a thread inside the namespace, writes the label to
/// `/proc/thread-self/attr/exec` and runs `ip tuntap add mode tap name <n> [multi_queue]
/// [user <uid>] [group <gid>]`, then `ip link set <n> [mtu <m>] [address <mac>]` (iproute2's
/// `ip` must be in `PATH`). Without a label the processes run unlabelled.
#[derive(Debug, Default, Clone, Copy)]
pub struct Iproute2;

impl TapTool for Iproute2 {
    async fn create(&self, ctr: &Net, req: &IpTuntap) -> Result<()> {
        let Some(ns) = ctr.netns().cloned() else {
            return Err(Error::from_kind(ErrorKind::NotSupported, "iproute2 needs a kernel network namespace"));
        };
        let req = req.clone();
        ns.run_async(move || async move { run(&req) }).await?
    }
}

/// Runs on the namespace thread (the label is per thread and inherited by the children).
fn run(req: &IpTuntap) -> Result<()> {
    if let Some(label) = &req.label {
        set_exec_label(label).map_err(|e| Error::internal(format!("failed set socket label: {e}")))?;
    }
    ip(&req.add_args())?;
    if let Some(args) = req.set_args() {
        ip(&args)?;
    }
    Ok(())
}

/// Go's `selinux.SetExecLabel`: the label the next `execve` of this thread (and of children
/// it forks) runs with.
fn set_exec_label(label: &str) -> std::result::Result<(), String> {
    const ATTR: &str = "/proc/thread-self/attr/exec";
    let mut f = std::fs::OpenOptions::new().write(true).open(ATTR).map_err(|e| go_path_error("open", ATTR, &e))?;
    f.write_all(label.as_bytes()).map_err(|e| go_path_error("write", ATTR, &e))
}

/// Go's `*os.PathError` text: `write /proc/...: invalid argument`.
fn go_path_error(op: &str, path: &str, e: &std::io::Error) -> String {
    format!("{op} {path}: {}", errno_text(e))
}

/// An OS error as Go prints it (C text, lower-case first letter).
fn errno_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// Runs `ip <args>` like Go's `exec.Command("ip", ...).CombinedOutput()`.
fn ip(args: &[String]) -> Result<()> {
    let out = match Command::new("ip").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::internal(
                "failed to run command : exec: \"ip\": executable file not found in $PATH".to_owned(),
            ));
        }
        Err(e) => return Err(Error::internal(format!("failed to run command : {}", errno_text(&e)))),
    };
    if out.status.success() {
        return Ok(());
    }
    let mut combined = out.stdout;
    combined.extend_from_slice(&out.stderr);
    let status = match out.status.code() {
        Some(code) => format!("exit status {code}"),
        None => "signal: killed".to_owned(),
    };
    Err(Error::internal(format!("failed to run command {}: {status}", String::from_utf8_lossy(&combined))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_go() {
        let mut req = IpTuntap {
            label: None,
            name: "veth0123abcd".into(),
            multi_queue: true,
            owner: Some(1000),
            group: None,
            mtu: None,
            mac: None,
        };
        assert_eq!(req.add_args().join(" "), "tuntap add mode tap name veth0123abcd multi_queue user 1000");
        assert_eq!(req.set_args(), None);
        req.mtu = Some(1400);
        req.mac = Some("02:00:00:00:00:07".parse().unwrap());
        req.group = Some(7);
        req.multi_queue = false;
        assert_eq!(req.add_args().join(" "), "tuntap add mode tap name veth0123abcd user 1000 group 7");
        assert_eq!(req.set_args().unwrap().join(" "), "link set veth0123abcd mtu 1400 address 02:00:00:00:00:07");
    }

    #[test]
    fn os_errors_read_like_go() {
        let e = std::io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(
            go_path_error("write", "/proc/thread-self/attr/exec", &e),
            "write /proc/thread-self/attr/exec: invalid argument"
        );
    }
}
