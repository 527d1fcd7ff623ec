//! Support code for `#[cni_plugin]`-generated items. Not a public API.

use std::collections::BTreeMap;
use std::io::Write as _;

pub use cni_types;

use crate::{Plugin, PluginEntry, PluginOptions, SpecVersion};

/// Collects the process environment (lossily decoded).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
}

/// The whole life of a plugin process: read the real environment and stdin, dispatch on a
/// current-thread runtime, write stdout, exit. The only place in the SDK that exits.
#[allow(clippy::exit)]
pub fn main<P: Plugin>(plugin: P, options: PluginOptions) -> ! {
    let env = process_env();
    if let Some(warning) = crate::logging::init_from_env(&env) {
        let _ = writeln!(std::io::stderr(), "{warning}");
    }
    let code = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => {
            let mut stdin = std::io::stdin().lock();
            let mut stdout = std::io::stdout().lock();
            let mut stderr = std::io::stderr();
            let io = crate::dispatch::Invocation { env, stdin: &mut stdin, stdout: &mut stdout, stderr: &mut stderr };
            rt.block_on(crate::dispatch::run(&plugin, &options, io))
        }
        Err(e) => {
            let err = crate::Error::internal("failed to start the async runtime").with_source(e);
            let obj = err.to_cni_error(options.newest_version().as_str());
            let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string(&obj).unwrap_or_default());
            crate::dispatch::EXIT_FAILURE
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The process entry of a plugin type made by `#[cni_plugin]` (what its generated `main`, the
/// `main!` macro and multi-call binaries run).
pub fn run<P: PluginEntry>() -> ! {
    main(P::create(), P::options())
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
/// commands of the binary itself (see [`crate::multicall`]).
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
