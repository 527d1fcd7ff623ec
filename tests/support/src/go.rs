//! Debian's Go reference plugins (`containernetworking-plugins`) and the Go libcni front end
//! (`libcni-cnitool`, built by `scripts/build-interop`), the interop peers of the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::Netns;

/// Where Debian installs the Go plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/cni";

/// The Go plugin `name`.
///
/// # Panics
/// When it is not installed (the README's test command installs it).
pub fn plugin(name: &str) -> PathBuf {
    let p = Path::new(PLUGIN_DIR).join(name);
    assert!(p.is_file(), "{} missing: install Debian's containernetworking-plugins", p.display());
    p
}

/// The Go libcni front end: `$LIBCNI_CNITOOL`, else `<workspace>/target/interop/libcni-cnitool`.
///
/// # Panics
/// When it has not been built.
pub fn libcni_cnitool() -> PathBuf {
    let p = std::env::var_os("LIBCNI_CNITOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/interop/libcni-cnitool"));
    assert!(
        p.is_file(),
        "{} missing: run scripts/build-interop (the README's test command, scripts/test, does)",
        p.display()
    );
    p
}

/// Runs Go libcni's `verb` (`add`, `check`, `del`, ...) for network `net` on `ctr`, from the
/// namespace `host` (or the test's own), with container ID `libcni-<ctr name>`.
pub fn libcni(
    host: Option<&Netns>,
    verb: &str,
    net: &str,
    confdir: &Path,
    cachedir: &Path,
    cni_path: &str,
    ctr: &Netns,
) -> Output {
    let tool = libcni_cnitool();
    let mut cmd = match host {
        Some(h) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &h.name]).arg(&tool);
            c
        }
        None => Command::new(&tool),
    };
    cmd.args([verb, net, &ctr.path()])
        .env("CNI_CONTAINERID", format!("libcni-{}", ctr.name))
        .env("NETCONFPATH", confdir)
        .env("CNI_CACHE_DIR", cachedir)
        .env("CNI_PATH", cni_path)
        .output()
        .expect("run libcni-cnitool")
}

/// Panics with the tool's output unless it succeeded; returns stdout as JSON (`Null` if empty).
pub fn expect_ok(what: &str, out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }
}
