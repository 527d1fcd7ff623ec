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

/// containerd's go-cni front end (`tests/interop/gocni-tool.go`): `$GOCNI_TOOL`, else built
/// into `<workspace>/target/interop/gocni-tool` by `tests/interop/build-gocni.sh` (once per
/// test process; the script does nothing when the binary is up to date).
///
/// # Panics
/// When it cannot be built (the script needs root to install Debian's Go packages).
pub fn gocni_tool() -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    if let Some(p) = std::env::var_os("GOCNI_TOOL") {
        return PathBuf::from(p);
    }
    let built = BUILT.get_or_init(|| {
        let root = crate::workspace_root();
        let out = root.join("target/interop/gocni-tool");
        let run = Command::new("bash").arg(root.join("tests/interop/build-gocni.sh")).arg(&out).output();
        match run {
            Ok(o) if o.status.success() => Ok(out),
            Ok(o) => Err(format!("build-gocni.sh failed: {}", String::from_utf8_lossy(&o.stderr))),
            Err(e) => Err(format!("cannot run bash: {e}")),
        }
    });
    match built {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// go-cni's `verb` (`setup`, `setup-serial`, `check`, `remove`) through [`gocni_tool`], run
/// from the namespace `host` on `ctr`, with more flags (`-confdir`, `-plugin-dirs`, `-id`,
/// `-lo`, `-portmap`, `-label`); the plugins inherit its environment.
pub fn gocni_cmd(host: &Netns, ctr: &Netns, verb: &str, flags: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.name]).arg(gocni_tool()).arg(verb).args(["-netns", &ctr.path()]).args(flags);
    cmd
}

/// Runs [`gocni_cmd`].
pub fn gocni(host: &Netns, ctr: &Netns, verb: &str, flags: &[&str]) -> Output {
    gocni_cmd(host, ctr, verb, flags).output().expect("run gocni-tool")
}
