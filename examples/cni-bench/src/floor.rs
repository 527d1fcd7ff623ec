//! The floor of a VERSION exec: a statically linked Rust program that reads its stdin and
//! prints the same reply our plugins give (`{"cniVersion":..,"supportedVersions":[..]}`) and
//! does nothing else. The bench builds it itself with the `rustc` that built the workspace, so
//! the row needs no download and measures this machine's exec cost, not a guess.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = r##"use std::io::{Read, Write};
fn main() {
    let mut config = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut config);
    let _ = std::io::stdout().write_all(br#"{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#);
}
"##;

/// `rustc`: `$RUSTC`, else the one on `PATH`, else rustup's under `$HOME` or `/root` (sudo's
/// secure path does not hold `~/.cargo/bin`).
fn rustc() -> Option<PathBuf> {
    let candidates = std::env::var_os("RUSTC").map(PathBuf::from).into_iter().chain([PathBuf::from("rustc")]).chain(
        [std::env::var_os("HOME").map(PathBuf::from), Some(PathBuf::from("/root"))]
            .into_iter()
            .flatten()
            .map(|h| h.join(".cargo/bin/rustc")),
    );
    candidates.into_iter().find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Builds the floor program into `dir` and returns its path, or why it could not.
pub(crate) fn build(dir: &Path) -> Result<PathBuf, String> {
    let rustc = rustc().ok_or("no rustc found ($RUSTC, PATH, ~/.cargo/bin)")?;
    let src = dir.join("floor.rs");
    let out = dir.join("cni-floor");
    std::fs::write(&src, SOURCE).map_err(|e| format!("write {}: {e}", src.display()))?;
    let built = Command::new(&rustc)
        .args(["--edition", "2021", "-C", "opt-level=3", "-C", "panic=abort", "-C", "strip=symbols"])
        .args(["-C", "target-feature=+crt-static", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| format!("{}: {e}", rustc.display()))?;
    if !built.status.success() {
        return Err(format!("rustc failed: {}", String::from_utf8_lossy(&built.stderr).trim()));
    }
    Ok(out)
}
