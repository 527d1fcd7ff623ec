//! Running `iptables`, `iptables-restore` and `nft`, in the caller's namespace or in a given one.
//!
//! The tool always runs as a child of a dedicated OS thread (never of a tokio worker): a
//! short-lived one in the caller's namespace, or the target namespace's worker thread, which
//! lives inside it ([`NetNs::run_blocking`]); a child forked from a thread inherits the thread's
//! network namespace.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::error::{FirewallError, FirewallErrorKind, FirewallResult};
use crate::netns::NetNs;

/// How long a tool may run before it is killed, unless configured otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how tools run.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub(crate) netns: Option<NetNs>,
    pub(crate) timeout: Duration,
}

impl Default for Runner {
    fn default() -> Self {
        Self { netns: None, timeout: DEFAULT_TIMEOUT }
    }
}

/// A finished tool run.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The command line as a string, for messages.
pub(crate) fn command_line(program: &str, args: &[String]) -> String {
    let mut s = program.to_owned();
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(a);
        }
    }
    s
}

impl Runner {
    /// Runs `program args`, feeding `stdin`, and returns its output whatever the exit status.
    /// Errors only when the tool cannot be started (kind `Unavailable` when it is missing) or
    /// times out.
    pub(crate) async fn run(&self, program: &str, args: &[String], stdin: Option<String>) -> FirewallResult<Output> {
        let program_owned = program.to_owned();
        let args_owned = args.to_vec();
        let timeout = self.timeout;
        let job = move || run_blocking(&program_owned, &args_owned, stdin.as_deref(), timeout);
        let result = on_thread(self.netns.as_ref(), &format!("run {program}"), job).await;
        result.map_err(|e| e.with_command(command_line(program, args)))
    }

    /// Runs the tool and turns a non-zero exit into a classified error.
    pub(crate) async fn run_ok(&self, program: &str, args: &[String], stdin: Option<String>) -> FirewallResult<String> {
        let out = self.run(program, args, stdin).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(FirewallError::tool(command_line(program, args), &out.stderr, out.code))
        }
    }
}

/// Runs the blocking `job` on a dedicated OS thread — the worker of `netns` when given —
/// and awaits its result without blocking the caller's thread. `what` names the job in errors.
pub(crate) async fn on_thread<T: Send + 'static>(
    netns: Option<&NetNs>,
    what: &str,
    job: impl FnOnce() -> FirewallResult<T> + Send + 'static,
) -> FirewallResult<T> {
    match netns {
        Some(ns) => ns.run_blocking(job).await.map_err(|e| {
            FirewallError::new(
                match e.kind() {
                    crate::netns::NetnsErrorKind::PermissionDenied => FirewallErrorKind::PermissionDenied,
                    crate::netns::NetnsErrorKind::NotFound => FirewallErrorKind::NotFound,
                    _ => FirewallErrorKind::Other,
                },
                format!("{what} in network namespace {}: {e}", ns.path().display()),
            )
            .with_source(e)
        })?,
        None => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("cni-firewall".into())
                .spawn(move || {
                    // The receiver may be gone if the caller stopped waiting.
                    let _ = tx.send(job());
                })
                .map_err(|e| FirewallError::new(FirewallErrorKind::Other, format!("spawn a thread to {what}: {e}")))?;
            rx.await.map_err(|_| {
                FirewallError::new(FirewallErrorKind::Other, format!("the thread to {what} ended without a result"))
            })?
        }
    }
}

/// Spawns the tool from the current (dedicated) thread and waits for it with a deadline.
fn run_blocking(program: &str, args: &[String], stdin: Option<&str>, timeout: Duration) -> FirewallResult<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Tools print messages in the C locale, which the classification expects.
        .env("LC_ALL", "C");
    let mut child = cmd.spawn().map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => FirewallErrorKind::Unavailable,
            std::io::ErrorKind::PermissionDenied => FirewallErrorKind::PermissionDenied,
            _ => FirewallErrorKind::Other,
        };
        FirewallError::new(kind, format!("cannot run {program}: {e}")).with_source(e)
    })?;
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            // A read error leaves what was read so far; the exit status tells what happened.
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = child.stdout.take().map(|p| reader(Box::new(p)));
    let stderr = child.stderr.take().map(|p| reader(Box::new(p)));
    // Written from its own thread, so a tool that never reads cannot block the deadline.
    let writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_owned();
            Some(std::thread::spawn(move || {
                // A tool that exits early closes its stdin; its exit status reports why.
                let _ = pipe.write_all(input.as_bytes());
            }))
        }
        _ => None,
    };
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(FirewallError::new(
                    FirewallErrorKind::Other,
                    format!("{program} did not finish within {} s and was killed", timeout.as_secs()),
                ));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(
                    FirewallError::new(FirewallErrorKind::Other, format!("waiting for {program}: {e}")).with_source(e)
                );
            }
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let join = |h: Option<std::thread::JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    Ok(Output { code: status.code(), stdout: join(stdout), stderr: join(stderr) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_a_tool_with_stdin_and_reports_status() {
        let r = Runner::default();
        let out = r.run("sh", &["-c".into(), "cat; echo err >&2; exit 3".into()], Some("hello".into())).await.unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.stderr, "err\n");
        let err =
            r.run_ok("sh", &["-c".into(), "echo 'iptables: Chain already exists.' >&2; exit 1".into()], None).await;
        let err = err.unwrap_err();
        assert_eq!(err.kind(), FirewallErrorKind::Exists);
        assert_eq!(err.command(), Some("sh -c \"echo 'iptables: Chain already exists.' >&2; exit 1\""));
    }

    #[tokio::test]
    async fn a_missing_tool_is_unavailable() {
        let err = Runner::default().run("cni-rs-no-such-tool", &[], None).await.unwrap_err();
        assert_eq!(err.kind(), FirewallErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("cni-rs-no-such-tool"), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_tool_is_killed() {
        let r = Runner { netns: None, timeout: Duration::from_millis(200) };
        let err = r.run("sleep", &["5".into()], None).await.unwrap_err();
        assert_eq!(err.kind(), FirewallErrorKind::Other);
        assert!(err.to_string().contains("did not finish"), "{err}");
    }
}
