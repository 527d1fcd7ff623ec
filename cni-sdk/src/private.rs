//! Support code for `#[cni_plugin]`-generated items. Not a public API.

use std::collections::BTreeMap;
use std::io::{Read, Write};

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
    main_with_services(plugin, options, crate::Services::system())
}

/// The process entry of a plugin type made by `#[cni_plugin]` (what its generated `main`, the
/// `main!` macro and multi-call binaries run). The plugin value is made first, as a plain `main`
/// would: making it may decide what the process is (`dhcp daemon` runs its daemon from
/// `PluginEntry::create`).
pub fn run<P: PluginEntry>() -> ! {
    main(P::create(), P::options())
}

/// [`main`] with the services the plugin runs with.
///
/// Cheapest first: the protocol checks (no verb, VERSION, bad environment or configuration) are
/// answered before the async runtime and — when nothing the dispatcher logs could be shown
/// (`CNI_LOG_LEVEL` at `info` or below, no `CNI_LOG_FILE`) — the logging subscriber are built.
/// What is printed is the same as with everything built up front.
fn main_with_services<P: Plugin>(plugin: P, options: PluginOptions, services: crate::Services) -> ! {
    main_erased(crate::dispatch::typed::<P, P, _>(move || plugin), options, services)
}

/// [`main_with_services`] past the plugin type: compiled once, whatever the plugin.
#[allow(clippy::exit)]
fn main_erased(prepare: crate::dispatch::Prepare<'_>, options: PluginOptions, services: crate::Services) -> ! {
    let env = process_env();
    let lazy_logging = crate::logging::dispatcher_is_silent(&env);
    if !lazy_logging {
        init_logging(&env);
    }
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let io = Io { stdin: &mut stdin, stdout: &mut stdout, stderr: &mut stderr };
    let mut before_handler = |env: &BTreeMap<String, String>| {
        if lazy_logging {
            init_logging(env);
        }
    };
    let code = serve(prepare, &options, env, io, services, &mut before_handler, std::pin::pin!(std::future::pending()))
        .unwrap_or(crate::dispatch::EXIT_FAILURE);
    let _ = stdout.flush();
    std::process::exit(code)
}

/// The standard streams of one run.
struct Io<'a> {
    stdin: &'a mut dyn Read,
    stdout: &'a mut dyn Write,
    stderr: &'a mut dyn Write,
}

/// One plugin run as its process runs it (the protocol checks, then the handler on a
/// current-thread runtime, then the one document on stdout); returns the exit code, or `None`
/// when `cancel` completed first (the run was stopped, as a killed process).
///
/// Shared by the process entry and by in-process delegation in multi-call binaries, so that both
/// print exactly the same bytes.
fn serve(
    prepare: crate::dispatch::Prepare<'_>,
    options: &PluginOptions,
    env: BTreeMap<String, String>,
    io: Io<'_>,
    services: crate::Services,
    before_handler: &mut dyn FnMut(&BTreeMap<String, String>),
    cancel: std::pin::Pin<&mut dyn std::future::Future<Output = ()>>,
) -> Option<i32> {
    let Io { stdin, stdout, stderr } = io;
    let span = crate::dispatch::request_span(&env);
    let prepared = {
        let _entered = span.enter();
        prepare(options, env, stdin, stderr, services)
    };
    let outcome = match prepared {
        Ok(crate::dispatch::ErasedStep::Handle(mut ready, meta)) => {
            before_handler(ready.env_map());
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => {
                    let outcome = {
                        let handled =
                            std::pin::pin!(crate::dispatch::handle(ready.start(), &meta).instrument(span.clone()));
                        match rt.block_on(futures_util::future::select(handled, cancel)) {
                            futures_util::future::Either::Left((outcome, _)) => Some(outcome),
                            futures_util::future::Either::Right(((), _)) => None,
                        }
                    };
                    // The plugin value goes before the runtime it ran on, the context after.
                    ready.drop_plugin();
                    outcome?
                }
                Err(e) => {
                    let err = crate::Error::internal("failed to start the async runtime").with_source(e);
                    let obj = err.to_cni_error(options.newest_version().as_str());
                    let _ = writeln!(stdout, "{}", serde_json::to_string(&obj).unwrap_or_default());
                    let _ = stdout.flush();
                    return Some(crate::dispatch::EXIT_FAILURE);
                }
            }
        }
        Ok(crate::dispatch::ErasedStep::Done(output)) => Ok(output),
        Err(failure) => Err(failure),
    };
    Some(crate::dispatch::finish(&span, outcome, stdout))
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

/// One plugin of a multi-call binary, as [`multicall!`](crate::multicall!) lists it.
#[derive(Debug, Clone, Copy)]
pub struct MulticallEntry {
    /// The name it answers to ([`PluginEntry::NAME`]).
    pub name: &'static str,
    /// Its process entry ([`run_with_services`]).
    pub run: fn(crate::Services) -> !,
    /// Its in-process entry ([`in_process`]), for delegations to it from this binary.
    pub in_process: fn(InProcessRequest) -> crate::exec::RawOutput,
}

/// [`run`] with the given services (what a multi-call binary runs).
pub fn run_with_services<P: PluginEntry>(services: crate::Services) -> ! {
    main_with_services(P::create(), P::options(), services)
}

/// A delegation served in this process: what the plugin process would have been given, and a
/// signal that stops it (as a kill would).
#[derive(Debug)]
pub struct InProcessRequest {
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) stdin: Vec<u8>,
    pub(crate) services: crate::Services,
    /// Completes (sent or dropped) when the caller gives up on the call.
    pub(crate) cancel: tokio::sync::oneshot::Receiver<()>,
}

/// Runs plugin `P` in this thread exactly as its process would (same checks, same handler, same
/// printed bytes) on `request`'s environment and stdin, with no logging set up (the process's
/// subscriber is used). The exit code is `None` when the call was stopped.
pub fn in_process<P: PluginEntry>(request: InProcessRequest) -> crate::exec::RawOutput {
    let InProcessRequest { env, stdin, services, cancel } = request;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut input: &[u8] = &stdin;
    let io = Io { stdin: &mut input, stdout: &mut stdout, stderr: &mut stderr };
    let stopped = std::pin::pin!(async {
        let _ = cancel.await;
    });
    let code =
        serve(crate::dispatch::typed::<P, P, _>(P::create), &P::options(), env, io, services, &mut |_| {}, stopped);
    crate::exec::RawOutput { code, stdout, stderr }
}

/// The process entry of a multi-call binary: runs the entry whose name is the file name this
/// binary was invoked as (a symlink or hardlink named `bridge`, `host-local`, …), or the first
/// argument when invoked under its own name (`cni-plugins bridge`); `install` and `list` are
/// commands of the binary itself (see [`mod@crate::multicall`]). With feature `exec`, the plugin's
/// delegations to plugins of this binary run in-process (see [`mod@crate::multicall`]).
#[allow(clippy::exit)]
pub fn multicall(binary: &str, entries: &[MulticallEntry]) -> ! {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let names: Vec<&str> = entries.iter().map(|e| e.name).collect();
    let invocation = crate::multicall::parse(binary, &args);
    if let crate::multicall::Invocation::Plugin(wanted) = &invocation
        && let Some(entry) = entries.iter().find(|e| e.name == wanted)
    {
        (entry.run)(multicall_services(entries))
    }
    std::process::exit(crate::multicall::run_command(binary, &names, invocation))
}

/// The services of a plugin run by a multi-call binary.
fn multicall_services(entries: &[MulticallEntry]) -> crate::Services {
    #[cfg(feature = "exec")]
    {
        crate::Services::system().with_exec(crate::multicall::MulticallExec::from_process(entries))
    }
    #[cfg(not(feature = "exec"))]
    {
        let _ = entries;
        crate::Services::system()
    }
}
