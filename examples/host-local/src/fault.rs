//! Test-only fault injection for the crash-safety tests (`tests/crash.rs`).
//!
//! `CNI_HOST_LOCAL_FAULT` (a comma-separated list, read once) is never set by a runtime:
//!
//! * `crash=<point>`: the process kills itself with `SIGKILL` the first time it reaches
//!   `<point>` — no destructor runs, no buffer is flushed, the `flock` is released by the
//!   kernel: exactly what a runtime killing the plugin at that instant leaves behind.
//! * `no-tmpfile`: reserve through a named temporary file instead of `O_TMPFILE`, the path
//!   taken on file systems without `O_TMPFILE` or without `/proc`.
//!
//! The points are the `fault::point("...")` calls in `store.rs` and `index.rs`; `tests/crash.rs`
//! checks that it exercises every one of them.

use std::sync::OnceLock;

/// The environment variable read by this module.
pub(crate) const FAULT_ENV: &str = "CNI_HOST_LOCAL_FAULT";

#[derive(Debug, Default)]
struct Faults {
    crash_at: Option<String>,
    no_tmpfile: bool,
}

fn faults() -> &'static Faults {
    static FAULTS: OnceLock<Faults> = OnceLock::new();
    FAULTS.get_or_init(|| {
        let mut f = Faults::default();
        for item in std::env::var(FAULT_ENV).unwrap_or_default().split(',') {
            match item.trim() {
                "no-tmpfile" => f.no_tmpfile = true,
                other => {
                    if let Some(point) = other.strip_prefix("crash=") {
                        f.crash_at = Some(point.to_owned());
                    }
                }
            }
        }
        f
    })
}

/// Dies with `SIGKILL` when `CNI_HOST_LOCAL_FAULT` names this point.
pub(crate) fn point(name: &str) {
    if faults().crash_at.as_deref() == Some(name) {
        // SIGKILL cannot be caught: the process ends here, like one killed from outside.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// True when the tests ask for the named-temporary reservation path.
pub(crate) fn no_tmpfile() -> bool {
    faults().no_tmpfile
}
