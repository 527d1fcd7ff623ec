//! Logging through `tracing`, never to stdout.
//!
//! The generated `main` installs a subscriber configured by two environment variables (runtimes
//! pass a plugin's environment on, and delegated plugins inherit it):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CNI_LOG_LEVEL` | `off`, `error`, `warn`, `info`, `debug` or `trace` | `warn` |
//! | `CNI_LOG_FILE` | append log lines to this file instead of stderr | stderr |
//!
//! Every request runs inside a `cni` span carrying `verb`, `container_id` and `ifname`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::str::FromStr;
use std::sync::Mutex;

use tracing::level_filters::LevelFilter;

/// The environment variable selecting the log level.
pub const LOG_LEVEL_ENV: &str = "CNI_LOG_LEVEL";
/// The environment variable selecting a log file.
pub const LOG_FILE_ENV: &str = "CNI_LOG_FILE";

/// Whether the subscriber `env` configures would show none of the dispatcher's own events
/// (they are all at `debug`) and would not touch the file system: a valid `CNI_LOG_LEVEL` at
/// `info` or below and no `CNI_LOG_FILE`. Then installing it can wait until a handler runs, and
/// requests answered before (VERSION, protocol errors) print exactly the same without it.
pub(crate) fn dispatcher_is_silent(env: &BTreeMap<String, String>) -> bool {
    let level = match env.get(LOG_LEVEL_ENV).map(String::as_str) {
        None | Some("") => LevelFilter::WARN,
        Some(s) => match LevelFilter::from_str(s) {
            Ok(level) => level,
            // An invalid level prints a warning when the subscriber is installed.
            Err(_) => return false,
        },
    };
    level < LevelFilter::DEBUG && env.get(LOG_FILE_ENV).is_none_or(|p| p.is_empty())
}

/// Installs the global subscriber from `env` (see the module docs). Returns a warning to print
/// when the settings could not be honoured (the plugin then logs to stderr at `warn`).
pub fn init_from_env(env: &BTreeMap<String, String>) -> Option<String> {
    let mut warning = None;
    let level = match env.get(LOG_LEVEL_ENV).map(String::as_str) {
        None | Some("") => LevelFilter::WARN,
        Some(s) => LevelFilter::from_str(s).unwrap_or_else(|_| {
            warning = Some(format!("{LOG_LEVEL_ENV}={s:?} is not a level; using warn"));
            LevelFilter::WARN
        }),
    };
    let builder = tracing_subscriber::fmt().with_max_level(level).with_ansi(false).with_target(false);
    let result = match env.get(LOG_FILE_ENV).filter(|p| !p.is_empty()) {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => builder.with_writer(Mutex::new(file)).try_init(),
            Err(e) => {
                warning = Some(format!("cannot open {LOG_FILE_ENV}={path:?}: {e}; logging to stderr"));
                builder.with_writer(std::io::stderr).try_init()
            }
        },
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    if result.is_err() {
        // A subscriber is already installed (the host application chose one): keep it.
        return warning;
    }
    warning
}
