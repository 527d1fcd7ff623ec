//! Support code for `#[cni_plugin]`-generated items. Not a public API.

use std::collections::BTreeMap;
use std::io::Write as _;

use tracing::Instrument as _;

pub use cni_types;

use crate::{Plugin, PluginEntry, PluginOptions, SpecVersion};

/// Collects the process environment (lossily decoded).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
}

/// The whole life of a plugin process: read the real environment and stdin, dispatch, write
/// stdout, exit. The only place in the SDK that exits.
pub fn main<P: Plugin>(plugin: P, options: PluginOptions) -> ! {
    main_with(move || plugin, options)
}

/// The process entry of a plugin type made by `#[cni_plugin]` (what its generated `main`, the
/// `main!` macro and multi-call binaries run).
pub fn run<P: PluginEntry>() -> ! {
    main_with(P::create, P::options())
}

/// [`main`] with the plugin value made only when a handler runs.
///
/// Cheapest first: the protocol checks (no verb, VERSION, bad environment or configuration) are
/// answered before the plugin value, the async runtime and — when nothing the dispatcher logs
/// could be shown (`CNI_LOG_LEVEL` at `info` or below, no `CNI_LOG_FILE`) — the logging
/// subscriber are built. What is printed is the same as with everything built up front.
#[allow(clippy::exit)]
fn main_with<P: Plugin>(make: impl FnOnce() -> P, options: PluginOptions) -> ! {
    let env = process_env();
    let lazy_logging = crate::logging::dispatcher_is_silent(&env);
    if !lazy_logging {
        init_logging(&env);
    }
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let span = crate::dispatch::request_span(&env);
    let prepared = {
        let _entered = span.enter();
        crate::dispatch::prepare::<P::Config>(&options, env, &mut stdin, &mut stderr, crate::Services::system())
    };
    let outcome = match prepared {
        Ok(crate::dispatch::Step::Handle(cx, err_version)) => {
            if lazy_logging {
                init_logging(cx.env_map());
            }
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => {
                    let plugin = make();
                    rt.block_on(crate::dispatch::handle(&plugin, &cx, &err_version).instrument(span.clone()))
                }
                Err(e) => {
                    let err = crate::Error::internal("failed to start the async runtime").with_source(e);
                    let obj = err.to_cni_error(options.newest_version().as_str());
                    let _ = writeln!(stdout, "{}", serde_json::to_string(&obj).unwrap_or_default());
                    let _ = stdout.flush();
                    std::process::exit(crate::dispatch::EXIT_FAILURE)
                }
            }
        }
        Ok(crate::dispatch::Step::Done(output)) => Ok(output),
        Err(failure) => Err(failure),
    };
    let code = crate::dispatch::finish(&span, outcome, &mut stdout);
    let _ = stdout.flush();
    std::process::exit(code)
}

/// Installs the subscriber configured by the environment, printing its warning if any.
fn init_logging(env: &BTreeMap<String, String>) {
    if let Some(warning) = crate::logging::init_from_env(env) {
        let _ = writeln!(std::io::stderr(), "{warning}");
    }
}

/// Builds the options from the macro's arguments.
pub fn options(about: &'static str, versions: Option<&[&str]>, go_strict: bool) -> PluginOptions {
    let mut opts = PluginOptions::new(about).go_strict(go_strict);
    if let Some(versions) = versions {
        // The macro validated every string at compile time.
        let parsed: Vec<SpecVersion> = versions.iter().filter_map(|v| v.parse().ok()).collect();
        opts = opts.versions(&parsed);
    }
    opts
}

/// Makes the plugin value with `Default` (the macro's default `init`).
pub fn default_plugin<P: Default>() -> P {
    P::default()
}

/// The process entry of a multi-call binary: runs the entry whose name is the file name this
/// binary was invoked as (a symlink or hardlink named `bridge`, `host-local`, …), or the first
/// argument when invoked under its own name (`cni-plugins bridge`); `install` and `list` are
/// commands of the binary itself (see [`mod@crate::multicall`]).
#[allow(clippy::exit)]
pub fn multicall(binary: &str, entries: &[(&str, fn() -> !)]) -> ! {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let names: Vec<&str> = entries.iter().map(|(n, _)| *n).collect();
    let invocation = crate::multicall::parse(binary, &args);
    if let crate::multicall::Invocation::Plugin(wanted) = &invocation
        && let Some((_, entry)) = entries.iter().find(|(name, _)| name == wanted)
    {
        entry();
    }
    std::process::exit(crate::multicall::run_command(binary, &names, invocation))
}
