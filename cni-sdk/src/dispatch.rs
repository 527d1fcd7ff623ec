//! The dispatch core: environment + stdin in, exactly one document on stdout, an exit code out.
//!
//! Everything is injected (an environment map, a stdin reader, stdout and stderr sinks), so
//! every protocol behaviour can be exercised in-process. Only the generated `main`
//! (`cni_sdk::__private::main`) reads the real process environment and exits.
//!
//! Order of checks (Go's `skel` order, with the deviations the SDK chose):
//!
//! 1. `CNI_COMMAND` unset or empty → about text and supported versions on stderr, exit 0.
//!    Not one of `ADD DEL CHECK GC STATUS VERSION` (case-sensitive) → code 4, before stdin is
//!    read (Go reads stdin first and may report code 6 instead).
//! 2. VERSION → `{"cniVersion", "supportedVersions"}`; never fails on bad or missing stdin; echoes
//!    the requested version when it is supported, else the newest supported one.
//! 3. Required variables of the verb, in Go's order; all missing ones are reported together
//!    (code 4, `required env variables [CNI_NETNS,CNI_PATH] missing`); an invalid container ID or
//!    interface name is code 4; a malformed `CNI_ARGS` is code 4. A `CNI_*` value the verb
//!    uses that was not UTF-8 in the process environment (decoded lossily, so it holds U+FFFD)
//!    is code 4 too: a namespace path or interface name cannot be passed on unchanged, and a
//!    mangled one would name another object (Go passes such bytes through).
//! 4. stdin: read failure or more than the cap → code 5; not a JSON object → code 6; missing or
//!    invalid `name` → code 7.
//! 5. Version gate: ADD/DEL need an exact match with a supported version; CHECK needs ≥ 0.4.0,
//!    GC and STATUS ≥ 1.1.0, both for the configuration and for the plugin (code 1).
//! 6. Typed configuration (code 7) and `prevResult` (code 6).
//! 7. ADD/DEL: the netns guard (code 8 when `CNI_NETNS` is the plugin's own namespace) runs
//!    **before** the handler; `CNI_NETNS_OVERRIDE=1|true` disables it.
//! 8. The handler runs inside a span with the verb and container ID; a panic is reported as an
//!    error object. ADD prints the result in the configuration's version.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use cni_types::{CniArgs, CniResult, ErrorCode, NetworkConfig, SpecVersion, VersionInfo, ident};
use futures_util::FutureExt as _;
use serde_json::Value;
use tracing::Instrument as _;

use crate::context::Request;
use crate::{Command, Context, Error, Plugin, PluginOptions, Services};

/// Exit code of a successful run.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit code of every failure (as Go's `skel`).
pub const EXIT_FAILURE: i32 = 1;

/// The injected inputs and outputs of one plugin run.
pub struct Invocation<'a> {
    /// The environment (`CNI_*` and everything a delegate should inherit).
    pub env: BTreeMap<String, String>,
    /// Standard input.
    pub stdin: &'a mut dyn Read,
    /// Standard output: receives exactly one protocol document (or nothing).
    pub stdout: &'a mut dyn Write,
    /// Standard error: the about text; free-form diagnostics.
    pub stderr: &'a mut dyn Write,
}

impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation").field("env", &self.env).finish_non_exhaustive()
    }
}

/// Runs `plugin` for one invocation with real services and returns the process exit code.
pub async fn run<P: Plugin>(plugin: &P, options: &PluginOptions, io: Invocation<'_>) -> i32 {
    run_with(plugin, options, io, Services::system()).await
}

/// Runs `plugin` for one invocation with the given services and returns the exit code.
pub async fn run_with<P: Plugin>(plugin: &P, options: &PluginOptions, io: Invocation<'_>, services: Services) -> i32 {
    run_erased(typed::<P, &P, _>(move || plugin), options, io, services).await
}

/// [`run_with`] past the plugin type: compiled once, whatever the plugin.
async fn run_erased(prepare: Prepare<'_>, options: &PluginOptions, io: Invocation<'_>, services: Services) -> i32 {
    let Invocation { env, stdin, stdout, stderr } = io;
    let span = request_span(&env);
    let outcome = async move {
        match prepare(options, env, stdin, stderr, services)? {
            ErasedStep::Done(output) => Ok(output),
            ErasedStep::Handle(mut ready, meta) => {
                let outcome = handle(ready.start(), &meta).await;
                drop(ready);
                outcome
            }
        }
    }
    .instrument(span.clone())
    .await;
    finish(&span, outcome, stdout)
}

/// The span every request runs in, with what the environment says (validated later).
pub(crate) fn request_span(env: &BTreeMap<String, String>) -> tracing::Span {
    let field = |k: &str| env_get(env, k).unwrap_or_default().to_owned();
    tracing::info_span!(
        "cni",
        verb = %field("CNI_COMMAND"),
        container_id = %field("CNI_CONTAINERID"),
        ifname = %field("CNI_IFNAME")
    )
}

/// Writes the outcome of a request (its one document, or nothing) and returns the exit code.
pub(crate) fn finish(span: &tracing::Span, outcome: Result<Output, Failure>, stdout: &mut dyn Write) -> i32 {
    let _entered = span.enter();
    match outcome {
        Ok(Output::Nothing) => {
            tracing::debug!("request done");
            EXIT_SUCCESS
        }
        Ok(Output::Document(doc)) => match write_doc(stdout, &doc) {
            Ok(()) => EXIT_SUCCESS,
            Err(_) => EXIT_FAILURE,
        },
        Err(Failure { error, version }) => {
            tracing::debug!(code = error.code().as_u32(), msg = error.message(), "request failed");
            let obj = error.to_cni_error(&version);
            let doc = serde_json::to_value(&obj).expect("error objects serialise");
            let _ = write_doc(stdout, &Doc::Pretty(doc));
            EXIT_FAILURE
        }
    }
}

/// A document for stdout.
pub(crate) enum Doc {
    Pretty(Value),
    Compact(Value),
}

/// What a request prints on success.
pub(crate) enum Output {
    Nothing,
    Document(Doc),
}

/// A failed request: the error and the version its error object is printed in.
pub(crate) struct Failure {
    error: Error,
    version: String,
}

/// Where the protocol checks (steps 1–7) leave a request.
pub(crate) enum Step<C> {
    /// Answered without a handler (no verb, VERSION).
    Done(Output),
    /// Every check passed: the handler runs with this context; its errors are printed in the
    /// given version.
    Handle(Box<Context<C>>, String),
}

fn write_doc(out: &mut dyn Write, doc: &Doc) -> std::io::Result<()> {
    match doc {
        Doc::Pretty(v) => {
            let mut ser = serde_json::Serializer::with_formatter(
                &mut *out,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            serde::Serialize::serialize(v, &mut ser).map_err(std::io::Error::from)?;
        }
        Doc::Compact(v) => {
            serde_json::to_writer(&mut *out, v)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

fn env_get<'e>(env: &'e BTreeMap<String, String>, key: &str) -> Option<&'e str> {
    env.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

/// Which variables a verb requires.
fn required(cmd: Command, strict: bool) -> [bool; 4] {
    // [CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH]
    match cmd {
        Command::Add | Command::Check => [true, true, true, strict],
        Command::Del => [true, false, true, strict],
        Command::Gc => [false, false, false, true],
        Command::Status => [false, false, false, strict],
        _ => [false; 4],
    }
}

/// Steps 1–7: everything up to the handler, synchronous, so that the generated `main` answers
/// VERSION and rejects bad requests before it builds a runtime or the plugin value.
///
/// Only the typed configuration (step 6) depends on the plugin type: it is parsed here, between
/// the two halves compiled once ([`prepare_untyped`] and [`Partial::finish`]).
pub(crate) fn prepare<C: serde::de::DeserializeOwned>(
    options: &PluginOptions,
    env: BTreeMap<String, String>,
    stdin: &mut dyn Read,
    stderr: &mut dyn Write,
    services: Services,
) -> Result<Step<C>, Failure> {
    let (partial, obj) = match prepare_untyped(options, env, stdin, stderr, services)? {
        Untyped::Done(output) => return Ok(Step::Done(output)),
        Untyped::Parse(partial, obj) => (*partial, obj),
    };
    let config = match serde_json::from_value::<NetworkConfig<C>>(Value::Object(obj)) {
        Ok(config) => config,
        Err(e) => return Err(partial.config_error(e)),
    };
    let (request, err_version) = partial.finish()?;
    Ok(Step::Handle(Box::new(Context { request, config }), err_version))
}

/// Where steps 1–5 leave a request.
enum Untyped {
    /// Answered without a handler (no verb, VERSION).
    Done(Output),
    /// The configuration object to parse into the plugin's type, and the rest of the request.
    Parse(Box<Partial>, serde_json::Map<String, Value>),
}

/// A request past steps 1–5, waiting for its typed configuration.
struct Partial {
    request: Request,
    err_version: String,
    /// `prevResult` parsed ahead (ADD, DEL, CHECK); reported after the typed configuration.
    prev_result: Result<Option<CniResult>, cni_types::ResultError>,
}

impl Partial {
    /// Step 6 failed: the configuration does not fit the plugin's type.
    fn config_error(self, e: serde_json::Error) -> Failure {
        let msg = format!("failed to parse network configuration: {e}");
        Failure { error: Error::new(ErrorCode::InvalidNetworkConfig, msg), version: self.err_version }
    }

    /// The rest of step 6 (`prevResult`) and step 7 (the netns guard).
    fn finish(self) -> Result<(Request, String), Failure> {
        let Partial { mut request, err_version, prev_result } = self;
        let fail = |error: Error| Failure { error, version: err_version.clone() };
        request.prev_result = prev_result.map_err(|e| fail(Error::new(ErrorCode::DecodingFailure, e.to_string())))?;

        // 7. The netns guard.
        if matches!(request.command, Command::Add | Command::Del)
            && !netns_override(&request.env)
            && let Some(path) = request.netns.as_deref().and_then(|p| p.to_str())
            && crate::guard::is_own_netns(path)
        {
            let msg = "plugin's netns and netns from CNI_NETNS should not be the same";
            return Err(fail(Error::new(ErrorCode::InvalidNetNs, msg).with_details(path)));
        }
        Ok((request, err_version))
    }
}

/// Steps 1–5 and the untyped parts of step 6.
fn prepare_untyped(
    options: &PluginOptions,
    env: BTreeMap<String, String>,
    stdin: &mut dyn Read,
    stderr: &mut dyn Write,
    services: Services,
) -> Result<Untyped, Failure> {
    let newest = options.newest_version().as_str().to_owned();
    let fail = |error: Error, version: &str| Failure { error, version: version.to_owned() };

    // 1. The verb.
    let Some(raw_cmd) = env_get(&env, "CNI_COMMAND") else {
        let versions: Vec<&str> = options.supported_versions().iter().map(|v| v.as_str()).collect();
        let _ = writeln!(stderr, "{}\nCNI protocol versions supported: {}", options.about(), versions.join(", "));
        return Ok(Untyped::Done(Output::Nothing));
    };
    let cmd: Command = raw_cmd.parse().map_err(|e: cni_types::UnknownCommand| {
        fail(Error::new(ErrorCode::InvalidEnvironmentVariables, e.to_string()), &newest)
    })?;

    // 2. VERSION.
    if cmd == Command::Version {
        return Ok(Untyped::Done(Output::Document(Doc::Compact(version_reply(options, stdin)))));
    }

    // 3. Environment.
    let used: &[&str] = match cmd {
        Command::Add | Command::Check | Command::Del => {
            &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
        }
        _ => &["CNI_PATH"],
    };
    if let Some(key) = used.iter().find(|k| env_get(&env, k).is_some_and(|v| v.contains(char::REPLACEMENT_CHARACTER))) {
        let e = Error::new(ErrorCode::InvalidEnvironmentVariables, format!("{key} is not valid UTF-8")).with_details(
            "the value holds bytes that are not UTF-8 (shown as U+FFFD); it cannot be used or passed on unchanged",
        );
        return Err(fail(e, &newest));
    }
    let req = required(cmd, options.go_strict);
    let mut missing = Vec::new();
    let container_id = env_get(&env, "CNI_CONTAINERID");
    match container_id {
        None if req[0] => missing.push("CNI_CONTAINERID"),
        Some(id) if req[0] => ident::validate_container_id(id).map_err(|e| fail(e.into(), &newest))?,
        _ => {}
    }
    let netns = env_get(&env, "CNI_NETNS");
    if req[1] && netns.is_none() {
        missing.push("CNI_NETNS");
    }
    let ifname = env_get(&env, "CNI_IFNAME");
    match ifname {
        None if req[2] => missing.push("CNI_IFNAME"),
        Some(name) if req[2] => ident::validate_interface_name(name).map_err(|e| fail(e.into(), &newest))?,
        _ => {}
    }
    let cni_path = env_get(&env, "CNI_PATH");
    if req[3] && cni_path.is_none() {
        missing.push("CNI_PATH");
    }
    if !missing.is_empty() {
        let msg = format!("required env variables [{}] missing", missing.join(","));
        return Err(fail(Error::new(ErrorCode::InvalidEnvironmentVariables, msg), &newest));
    }
    let args = match (cmd, env_get(&env, "CNI_ARGS")) {
        (Command::Add | Command::Del | Command::Check, Some(raw)) => CniArgs::parse(raw).map_err(|e| {
            fail(Error::new(ErrorCode::InvalidEnvironmentVariables, format!("invalid CNI_ARGS: {e}")), &newest)
        })?,
        _ => CniArgs::default(),
    };

    // 4. stdin.
    let raw = read_capped(stdin, options.max_stdin).map_err(|e| fail(e, &newest))?;
    let obj: serde_json::Map<String, Value> = serde_json::from_slice(&raw).map_err(|e| {
        fail(Error::new(ErrorCode::DecodingFailure, format!("error unmarshall network config: {e}")), &newest)
    })?;
    let config_version = match obj.get("cniVersion") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let msg = format!("decoding version from network config: cniVersion must be a string, got {other}");
            return Err(fail(Error::new(ErrorCode::DecodingFailure, msg), &newest));
        }
    };
    // Errors from here on carry the configuration's version when the plugin supports it.
    let err_version = SpecVersion::from_document(&config_version)
        .ok()
        .filter(|v| options.supported_versions().contains(v))
        .map_or(newest.clone(), |v| v.as_str().to_owned());
    let fail = |error: Error| Failure { error, version: err_version.clone() };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
    ident::validate_network_name(name).map_err(|e| fail(e.into()))?;

    // 5. Version gate.
    let version = negotiate(cmd, &config_version, options).map_err(fail)?;

    // 6. `prevResult` (the typed configuration is parsed by `prepare`, and its errors come first;
    // when it parses, its `cniVersion` is `config_version` and its `prevResult` this value).
    let prev_result = match cmd {
        Command::Add | Command::Del | Command::Check => match obj.get("prevResult") {
            None | Some(Value::Null) => Ok(None),
            Some(prev) => SpecVersion::from_document(&config_version)
                .map_err(cni_types::ResultError::from)
                .and_then(|v| CniResult::parse_prev_result(prev, v))
                .map(Some),
        },
        _ => Ok(None),
    };
    let request = Request {
        command: cmd,
        container_id: container_id.unwrap_or_default().to_owned(),
        netns: netns.map(PathBuf::from),
        ifname: ifname.unwrap_or_default().to_owned(),
        args,
        cni_path: cni_path
            .map(|p| std::env::split_paths(p).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default(),
        prev_result: None,
        version,
        raw_config: Arc::from(raw),
        env: Arc::new(env),
        services,
    };
    Ok(Untyped::Parse(Box::new(Partial { request, err_version, prev_result }), obj))
}

/// The handler of one request, boxed: the one future that depends on the plugin type.
pub(crate) type HandlerFuture<'a> = Pin<Box<dyn Future<Output = crate::Result<Option<CniResult>>> + 'a>>;

/// What step 8 needs besides the handler's future.
pub(crate) struct HandleMeta {
    cmd: Command,
    version: SpecVersion,
    err_version: String,
}

/// A request that passed steps 1–7, with its plugin (made by `start`), behind a trait object so
/// that the dispatcher around it is compiled once.
pub(crate) trait Ready {
    /// The request's environment.
    fn env_map(&self) -> &BTreeMap<String, String>;
    /// Makes the plugin value (first call) and returns the handler of the verb.
    fn start(&mut self) -> HandlerFuture<'_>;
    /// Drops the plugin value (before the runtime it ran on goes), keeping the context.
    fn drop_plugin(&mut self);
}

/// [`Step`] with the plugin type erased.
pub(crate) enum ErasedStep<'a> {
    /// Answered without a handler (no verb, VERSION).
    Done(Output),
    /// Every check passed.
    Handle(Box<dyn Ready + 'a>, HandleMeta),
}

/// Steps 1–7 of one plugin type, behind a box (see [`typed`]).
pub(crate) type Prepare<'a> = Box<
    dyn FnOnce(
            &PluginOptions,
            BTreeMap<String, String>,
            &mut dyn Read,
            &mut dyn Write,
            Services,
        ) -> Result<ErasedStep<'a>, Failure>
        + 'a,
>;

/// The part of a request that depends on the plugin type `P`: its steps 1–7 ([`prepare`] with
/// `P::Config`) and, once they passed, its plugin value (`make`, called by [`Ready::start`]) and
/// handler. Everything else takes what this returns.
pub(crate) fn typed<'a, P, Q, F>(make: F) -> Prepare<'a>
where
    P: Plugin + 'a,
    P::Config: 'a,
    Q: Borrow<P> + 'a,
    F: FnOnce() -> Q + 'a,
{
    Box::new(move |options, env, stdin, stderr, services| {
        Ok(match prepare::<P::Config>(options, env, stdin, stderr, services)? {
            Step::Done(output) => ErasedStep::Done(output),
            Step::Handle(cx, err_version) => {
                let meta = HandleMeta { cmd: cx.request.command, version: cx.request.version, err_version };
                let ready = TypedReady::<P, Q, F> { make: Some(make), plugin: None, cx, _plugin: PhantomData };
                ErasedStep::Handle(Box::new(ready), meta)
            }
        })
    })
}

/// [`Ready`] for plugin type `P` (held as `Q`: the value or a reference to it).
struct TypedReady<P: Plugin, Q, F> {
    make: Option<F>,
    plugin: Option<Q>,
    cx: Box<Context<P::Config>>,
    _plugin: PhantomData<fn() -> P>,
}

impl<P: Plugin, Q: Borrow<P>, F: FnOnce() -> Q> Ready for TypedReady<P, Q, F> {
    fn env_map(&self) -> &BTreeMap<String, String> {
        self.cx.env_map()
    }

    fn start(&mut self) -> HandlerFuture<'_> {
        if let Some(make) = self.make.take() {
            self.plugin = Some(make());
        }
        match &self.plugin {
            Some(plugin) => Box::pin(call(plugin.borrow(), &self.cx)),
            None => Box::pin(std::future::ready(Err(Error::internal("the plugin value was already dropped")))),
        }
    }

    fn drop_plugin(&mut self) {
        self.plugin = None;
    }
}

/// Step 8: the handler, with a panic reported as an error object.
pub(crate) async fn handle(handler: HandlerFuture<'_>, meta: &HandleMeta) -> Result<Output, Failure> {
    let fail = |error: Error| Failure { error, version: meta.err_version.clone() };
    let (cmd, version) = (meta.cmd, meta.version);
    let outcome = AssertUnwindSafe(handler).catch_unwind().await;
    match outcome {
        Ok(Ok(Some(result))) => {
            let doc = result.to_value(version).map_err(|e| fail(Error::internal(e.to_string())))?;
            Ok(Output::Document(Doc::Pretty(doc)))
        }
        Ok(Ok(None)) => Ok(Output::Nothing),
        Ok(Err(e)) => Err(fail(e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_owned());
            tracing::error!(panic = %what, "plugin panicked");
            Err(fail(Error::internal(format!("plugin panicked during {cmd}")).with_details(what)))
        }
    }
}

async fn call<P: Plugin>(plugin: &P, cx: &Context<P::Config>) -> crate::Result<Option<CniResult>> {
    match cx.request.command {
        Command::Add => plugin.add(cx).await.map(Some),
        Command::Del => plugin.del(cx).await.map(|()| None),
        Command::Check => plugin.check(cx).await.map(|()| None),
        Command::Gc => plugin.gc(cx).await.map(|()| None),
        Command::Status => plugin.status(cx).await.map(|()| None),
        _ => Ok(None),
    }
}

fn netns_override(env: &BTreeMap<String, String>) -> bool {
    env_get(env, "CNI_NETNS_OVERRIDE").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

pub(crate) fn read_capped(stdin: &mut dyn Read, cap: usize) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    stdin
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| Error::new(ErrorCode::IoFailure, format!("error reading from stdin: {e}")))?;
    if buf.len() > cap {
        return Err(Error::new(
            ErrorCode::IoFailure,
            format!("network configuration on stdin is larger than the plugin's limit of {cap} bytes"),
        ));
    }
    Ok(buf)
}

/// VERSION never fails: echo the requested version when it is supported, else the newest.
fn version_reply(options: &PluginOptions, stdin: &mut dyn Read) -> Value {
    let mut buf = Vec::new();
    let requested = match stdin.take(64 << 10).read_to_end(&mut buf) {
        Ok(_) => serde_json::from_slice::<Value>(&buf)
            .ok()
            .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_owned))
            .and_then(|s| s.parse::<SpecVersion>().ok())
            .filter(|v| options.supported_versions().contains(v)),
        Err(_) => None,
    };
    let version = requested.unwrap_or(options.newest_version());
    serde_json::to_value(VersionInfo::new(version.as_str(), options.supported_versions()))
        .expect("VERSION replies serialise")
}

/// The version gate of each verb (the rule itself lives in [`cni_types::negotiate`]).
fn negotiate(cmd: Command, config_version: &str, options: &PluginOptions) -> Result<SpecVersion, Error> {
    cni_types::negotiate(cmd, config_version, options.supported_versions()).map_err(|e| {
        let err = Error::new(e.code(), e.to_string());
        match e.details() {
            Some(d) => err.with_details(d),
            None => err,
        }
    })
}
