//! [`ProcessExec`]: plugins as child processes (feature `exec`), and [`PluginStderr`], where
//! their stderr goes.

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Exec, ExecRequest, RawOutput, find_in_path};
use crate::Error;

/// How much of a child's stderr is kept for error messages (the sink sees all of it), and the
/// longest line given to a line sink (longer ones are split).
const STDERR_KEEP: usize = 64 << 10;

/// One line a plugin wrote to stderr, for [`PluginStderr::lines`].
#[derive(Clone, Copy, Debug)]
pub struct StderrLine<'a> {
    /// The plugin type.
    pub plugin_type: &'a str,
    /// `CNI_COMMAND` of the run (`ADD`, `DEL`, ...).
    pub verb: &'a str,
    /// `CNI_CONTAINERID` of the run (empty for GC, STATUS and VERSION).
    pub container_id: &'a str,
    /// `CNI_IFNAME` of the run.
    pub ifname: &'a str,
    /// The line, without its line break (invalid UTF-8 replaced).
    pub line: &'a str,
}

type LineFn = Arc<dyn Fn(&StderrLine<'_>) + Send + Sync>;

#[derive(Clone)]
enum StderrRepr {
    PassThrough,
    Tracing(tracing::Level),
    Discard,
    Lines(LineFn),
}

/// Where the stderr of plugin processes goes. Whatever the choice, the first 64 KiB are also
/// kept for error reports ([`RawOutput::stderr`](super::RawOutput::stderr)).
///
/// ```
/// use cni_sdk::exec::{PluginStderr, ProcessExec};
/// // One `tracing` event per line, at WARN, with the fields plugin, verb, container_id and
/// // ifname (and, through the runtime, inside a `cni_plugin` span naming the network).
/// let exec = ProcessExec::new().stderr(PluginStderr::tracing_at(cni_sdk::tracing::Level::WARN));
/// // Or a function per line:
/// let exec = ProcessExec::new().stderr(PluginStderr::lines(|l| {
///     if l.plugin_type == "bridge" && l.verb == "ADD" { eprintln!("bridge: {}", l.line) }
/// }));
/// ```
#[derive(Clone)]
pub struct PluginStderr(StderrRepr);

impl Default for PluginStderr {
    /// [`PluginStderr::pass_through`].
    fn default() -> Self {
        Self::pass_through()
    }
}

impl fmt::Debug for PluginStderr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            StderrRepr::PassThrough => f.write_str("PluginStderr::PassThrough"),
            StderrRepr::Tracing(l) => write!(f, "PluginStderr::Tracing({l})"),
            StderrRepr::Discard => f.write_str("PluginStderr::Discard"),
            StderrRepr::Lines(_) => f.write_str("PluginStderr::Lines(..)"),
        }
    }
}

impl PluginStderr {
    /// Copied to this process's stderr as it arrives (the default; libcni's
    /// `RawExec{Stderr: os.Stderr}`).
    pub fn pass_through() -> Self {
        Self(StderrRepr::PassThrough)
    }

    /// One `tracing` event per line at INFO, target `cni_sdk::plugin_stderr`, with the fields
    /// `plugin`, `verb`, `container_id`, `ifname` and `line`; filter per plugin or verb with
    /// those fields.
    pub fn tracing() -> Self {
        Self(StderrRepr::Tracing(tracing::Level::INFO))
    }

    /// Like [`PluginStderr::tracing`] at another level.
    pub fn tracing_at(level: tracing::Level) -> Self {
        Self(StderrRepr::Tracing(level))
    }

    /// Dropped (still kept for error reports).
    pub fn discard() -> Self {
        Self(StderrRepr::Discard)
    }

    /// Each line given to `f`, with the plugin type, verb, container and interface.
    pub fn lines(f: impl Fn(&StderrLine<'_>) + Send + Sync + 'static) -> Self {
        Self(StderrRepr::Lines(Arc::new(f)))
    }
}

/// Splits a stream into lines for a [`PluginStderr`] sink.
struct LineSink<'a> {
    mode: &'a PluginStderr,
    request: &'a ExecRequest,
    partial: Vec<u8>,
}

impl LineSink<'_> {
    fn feed(&mut self, chunk: &[u8]) {
        match &self.mode.0 {
            StderrRepr::PassThrough => {
                let _ = std::io::Write::write_all(&mut std::io::stderr(), chunk);
            }
            StderrRepr::Discard => {}
            StderrRepr::Tracing(_) | StderrRepr::Lines(_) => {
                self.partial.extend_from_slice(chunk);
                while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.partial.drain(..=pos).collect();
                    self.emit(&line[..line.len() - 1]);
                }
                if self.partial.len() >= STDERR_KEEP {
                    let long = std::mem::take(&mut self.partial);
                    self.emit(&long);
                }
            }
        }
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(&rest);
        }
    }

    fn emit(&self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let line = text.trim_end_matches('\r');
        let env = |k: &str| self.request.env.get(k).map_or("", String::as_str);
        let l = StderrLine {
            plugin_type: &self.request.plugin_type,
            verb: env("CNI_COMMAND"),
            container_id: env("CNI_CONTAINERID"),
            ifname: env("CNI_IFNAME"),
            line,
        };
        match &self.mode.0 {
            StderrRepr::Tracing(level) => {
                macro_rules! ev {
                    ($lvl:expr) => {
                        tracing::event!(target: "cni_sdk::plugin_stderr", $lvl,
                            plugin = l.plugin_type, verb = l.verb, container_id = l.container_id,
                            ifname = l.ifname, line = l.line, "plugin stderr")
                    };
                }
                match *level {
                    tracing::Level::ERROR => ev!(tracing::Level::ERROR),
                    tracing::Level::WARN => ev!(tracing::Level::WARN),
                    tracing::Level::INFO => ev!(tracing::Level::INFO),
                    tracing::Level::DEBUG => ev!(tracing::Level::DEBUG),
                    _ => ev!(tracing::Level::TRACE),
                }
            }
            StderrRepr::Lines(f) => f(&l),
            StderrRepr::PassThrough | StderrRepr::Discard => {}
        }
    }
}

/// Executes real plugin binaries with `tokio::process`.
#[derive(Clone, Debug, Default)]
pub struct ProcessExec {
    stderr: PluginStderr,
}

impl ProcessExec {
    /// A process executor that passes plugin stderr through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where plugin stderr goes (default [`PluginStderr::pass_through`]).
    #[must_use]
    pub fn stderr(mut self, stderr: PluginStderr) -> Self {
        self.stderr = stderr;
        self
    }
}

impl ProcessExec {
    /// Gives the whole stderr of a run that did not happen in a child process (a multi-call
    /// binary's in-process delegation) to this executor's sink, as if the child had written it;
    /// returns what a process run keeps for error reports (the first 64 KiB).
    pub(crate) fn deliver_stderr(&self, request: &ExecRequest, stderr: &[u8]) -> Vec<u8> {
        let mut lines = LineSink { mode: &self.stderr, request, partial: Vec::new() };
        if !stderr.is_empty() {
            lines.feed(stderr);
        }
        lines.finish();
        stderr[..stderr.len().min(STDERR_KEEP)].to_vec()
    }
}

impl Exec for ProcessExec {
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        let path = find_in_path(&request.plugin_type, &request.cni_path)?;
        let run = run_process(&path, &request, &self.stderr);
        match tokio::time::timeout(request.timeout, run).await {
            Ok(out) => out,
            Err(_) => Err(Error::timeout(format!(
                "plugin {:?} timed out after {:?} and was killed",
                request.plugin_type, request.timeout
            ))),
        }
    }
}

async fn run_process(path: &Path, request: &ExecRequest, sink: &PluginStderr) -> crate::Result<RawOutput> {
    let mut attempt = 0;
    let mut child = loop {
        let spawned = tokio::process::Command::new(path)
            .env_clear()
            .envs(&request.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => break child,
            // A binary being written right now (libcni retries this too).
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(Error::internal(format!("failed to execute plugin {}", path.display())).with_source(e));
            }
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let input = request.stdin.clone();
    let write = async move {
        // A plugin may exit without reading stdin (VERSION); that is not an error.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    };
    let read_out = async {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).await.map(|_| buf)
    };
    let read_err = async {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 8192];
        let mut lines = LineSink { mode: sink, request, partial: Vec::new() };
        loop {
            match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    lines.feed(&chunk[..n]);
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
        lines.finish();
        kept
    };
    let ((), out, err) = tokio::join!(write, read_out, read_err);
    let out =
        out.map_err(|e| Error::new(cni_types::ErrorCode::IoFailure, "failed to read plugin output").with_source(e))?;
    let status = child.wait().await.map_err(|e| Error::internal("failed to wait for plugin").with_source(e))?;
    Ok(RawOutput { code: status.code(), stdout: out, stderr: err })
}
