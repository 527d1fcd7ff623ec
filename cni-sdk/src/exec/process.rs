//! [`ProcessExec`]: plugins as child processes (feature `exec`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Exec, ExecRequest, RawOutput, find_in_path};
use crate::Error;

/// How much of a child's stderr is kept for error messages (it is always passed through whole).
const STDERR_KEEP: usize = 64 << 10;

/// Executes real plugin binaries with `tokio::process`.
#[derive(Clone, Debug, Default)]
pub struct ProcessExec {
    _priv: (),
}

impl ProcessExec {
    /// A process executor.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Exec for ProcessExec {
    async fn exec(&self, request: ExecRequest) -> crate::Result<RawOutput> {
        let path = find_in_path(&request.plugin_type, &request.cni_path)?;
        let run = run_process(&path, &request);
        match tokio::time::timeout(request.timeout, run).await {
            Ok(out) => out,
            Err(_) => Err(Error::timeout(format!(
                "plugin {:?} timed out after {:?} and was killed",
                request.plugin_type, request.timeout
            ))),
        }
    }
}

async fn run_process(path: &Path, request: &ExecRequest) -> crate::Result<RawOutput> {
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
        loop {
            match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Pass the delegate's diagnostics through to our stderr.
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), &chunk[..n]);
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
        kept
    };
    let ((), out, err) = tokio::join!(write, read_out, read_err);
    let out =
        out.map_err(|e| Error::new(cni_types::ErrorCode::IoFailure, "failed to read plugin output").with_source(e))?;
    let status = child.wait().await.map_err(|e| Error::internal("failed to wait for plugin").with_source(e))?;
    Ok(RawOutput { code: status.code(), stdout: out, stderr: err })
}
