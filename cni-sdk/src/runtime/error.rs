//! The runtime's typed error: which network, plugin and verb failed, and what the plugin itself
//! said, kept as fields.

use std::error::Error as StdError;
use std::fmt;

use cni_types::{Attachment, CniError, Command, ErrorCode};
use serde_json::{Map, Value, json};

use crate::ErrorKind;

/// A `Result` whose error is the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A plugin of a network configuration list: its `type` (the binary) and, when the plugin
/// object has one, its own `name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginRef {
    /// The plugin type (binary name).
    pub plugin_type: String,
    /// The `name` key of the plugin object, if any (rare: libcni injects the list's name).
    pub name: Option<String>,
}

impl PluginRef {
    /// Reads `type` and `name` from a plugin object of a list.
    pub fn of(plugin: &Map<String, Value>) -> Self {
        Self {
            plugin_type: plugin.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
            name: plugin.get("name").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

impl fmt::Display for PluginRef {
    /// libcni's `pluginDescription`: `type="bridge"`, plus ` name="n"` when the object has one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type={:?}", self.plugin_type)?;
        if let Some(n) = &self.name {
            write!(f, " name={n:?}")?;
        }
        Ok(())
    }
}

/// The word libcni uses for a verb in `plugin ... failed (<word>)`.
pub(crate) fn verb_word(verb: Command) -> &'static str {
    match verb {
        Command::Add => "add",
        Command::Del => "delete",
        Command::Check => "check",
        Command::Gc => "gc",
        Command::Status => "status",
        _ => "version",
    }
}

/// An error of the runtime side: one failed step of an operation, with what is known about it
/// as fields, and any further failures of the same operation.
///
/// * [`Error::kind`] says what went wrong (match on it, never on text):
///   [`ErrorKind::Timeout`] when the runtime gave up on a plugin (its per-plugin timeout or the
///   call's deadline), [`ErrorKind::Cancelled`] when the caller cancelled, [`ErrorKind::PluginNotFound`],
///   [`ErrorKind::InvalidConfig`] for configurations and arguments the runtime rejects,
///   [`ErrorKind::Cache`] for the result cache; for an error object a plugin printed, the kind
///   of its code (so a plugin's own "try again later" is [`ErrorKind::TryAgainLater`], never
///   `Timeout`).
/// * [`Error::network`], [`Error::plugin`], [`Error::verb`], [`Error::attachment`] say where.
/// * [`Error::plugin_error`] is the plugin's own `{code, msg, details}`, untouched;
///   [`Error::code`], [`Error::msg`] and [`Error::details`] read it (or the runtime's own
///   code and text when the plugin printed nothing usable); [`Error::stderr`] is what the
///   plugin wrote to stderr.
/// * `Display` is Go libcni's wording, e.g.
///   `plugin type="portmap" failed (add): <msg>; <details>`.
/// * Operations that continue past failures (a pod's teardown, GC) report every failure:
///   [`Error::failures`] iterates them all, [`Error::rollback_failures`] lists the clean-up
///   steps of a failed pod setup that failed too.
///
/// ```
/// use cni_sdk::runtime::Error;
/// use cni_sdk::{Command, CniError, ErrorCode, ErrorKind};
///
/// let printed = CniError::new(ErrorCode::TryAgainLater, "pool busy").with_details("lock held");
/// let e = Error::from_plugin(printed).at("pod-net", "host-local", Command::Add);
/// assert_eq!(e.kind(), ErrorKind::TryAgainLater);
/// assert_eq!((e.network(), e.plugin_type(), e.verb()), (Some("pod-net"), Some("host-local"), Some(Command::Add)));
/// assert_eq!((e.msg(), e.details()), ("pool busy", Some("lock held")));
/// assert_eq!(e.to_string(), "plugin type=\"host-local\" failed (add): pool busy; lock held");
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    code: ErrorCode,
    /// What the plugin printed, when it printed a parsable error object.
    reported: Option<CniError>,
    /// The message when the plugin printed nothing usable (or the failure is the runtime's).
    msg: String,
    details: Option<String>,
    network: Option<String>,
    plugin: Option<PluginRef>,
    verb: Option<Command>,
    attachment: Option<Attachment>,
    stderr: Option<String>,
    /// Outer wording, innermost last (`failed to delete stale attachment c eth0`, ...).
    prefixes: Vec<String>,
    /// Whether `Display` frames the failure as `plugin ... failed (<verb>)`.
    plugin_frame: bool,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
    others: Vec<Error>,
    rollback: Vec<Error>,
}

impl Error {
    /// A failure of the runtime itself (no plugin error object), with the kind's default code.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                code: kind.default_code(),
                reported: None,
                msg: msg.into(),
                details: None,
                network: None,
                plugin: None,
                verb: None,
                attachment: None,
                stderr: None,
                prefixes: Vec::new(),
                plugin_frame: false,
                source: None,
                others: Vec::new(),
                rollback: Vec::new(),
            }),
        }
    }

    /// The error object a plugin printed; the kind follows from its code.
    pub fn from_plugin(reported: CniError) -> Self {
        let kind = ErrorKind::from_code(reported.code);
        let mut e = Self::new(kind, reported.msg.clone());
        e.inner.code = reported.code;
        e.inner.details = reported.details.clone();
        e.inner.reported = Some(reported);
        e
    }

    /// [`ErrorKind::InvalidConfig`].
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, msg)
    }

    /// [`ErrorKind::Cache`].
    pub(crate) fn cache(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cache, msg)
    }

    /// Keeps kind, code, message, details and cause of an SDK error (e.g. the executor's
    /// "not found" or "timed out").
    pub fn from_sdk(e: crate::Error) -> Self {
        let mut out = Self::new(e.kind(), e.message());
        out.inner.code = e.code();
        out.inner.details = e.details();
        out
    }

    /// Sets where the failure happened and frames `Display` as libcni does
    /// (`plugin type="t" failed (<verb>): ...`).
    #[must_use]
    pub fn at(mut self, network: &str, plugin_type: &str, verb: Command) -> Self {
        self.inner.network = Some(network.to_owned());
        self.inner.plugin = Some(PluginRef { plugin_type: plugin_type.to_owned(), name: None });
        self.inner.verb = Some(verb);
        self.inner.plugin_frame = true;
        self
    }

    pub(crate) fn at_plugin(mut self, network: &str, plugin: PluginRef, verb: Command, framed: bool) -> Self {
        self.inner.network = Some(network.to_owned());
        self.inner.plugin = Some(plugin);
        self.inner.verb = Some(verb);
        self.inner.plugin_frame = framed;
        self
    }

    /// Sets the network only.
    #[must_use]
    pub fn with_network(mut self, network: &str) -> Self {
        self.inner.network = Some(network.to_owned());
        self
    }

    /// Sets the verb only.
    #[must_use]
    pub(crate) fn with_verb(mut self, verb: Command) -> Self {
        self.inner.verb = Some(verb);
        self
    }

    /// Sets the attachment (container ID and interface) the failure concerns.
    #[must_use]
    pub fn with_attachment(mut self, container_id: &str, ifname: &str) -> Self {
        self.inner.attachment = Some(Attachment::new(container_id, ifname));
        self
    }

    /// Sets the details (when the plugin printed none).
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        let d = details.into();
        self.inner.details = (!d.is_empty()).then_some(d);
        self
    }

    /// Attaches the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        let source = source.into();
        if self.inner.details.is_none() {
            self.inner.details = Some(source.to_string());
        }
        self.inner.source = Some(source);
        self
    }

    pub(crate) fn with_stderr(mut self, stderr: &[u8]) -> Self {
        let text = String::from_utf8_lossy(stderr).trim().to_owned();
        self.inner.stderr = (!text.is_empty()).then_some(text);
        self
    }

    /// Puts Go-style context in front of the `Display` text (`context: <error>`), keeping every
    /// field.
    #[must_use]
    pub fn wrap(mut self, context: impl Into<String>) -> Self {
        self.inner.prefixes.insert(0, context.into());
        self
    }

    /// Adds failures of the same operation that happened after (or beside) this one.
    #[must_use]
    pub(crate) fn also(mut self, more: impl IntoIterator<Item = Error>) -> Self {
        for mut e in more {
            let nested = std::mem::take(&mut e.inner.others);
            self.inner.rollback.append(&mut e.inner.rollback);
            self.inner.others.push(e);
            self.inner.others.extend(nested);
        }
        self
    }

    /// Adds failures of the clean-up that followed this failure.
    #[must_use]
    pub(crate) fn with_rollback(mut self, failed: Vec<Error>) -> Self {
        self.inner.rollback.extend(failed);
        self
    }

    /// Builds one error from several failures of one operation (the first is the primary);
    /// `None` when there are none.
    pub(crate) fn collect(errors: Vec<Error>) -> Option<Self> {
        let mut it = errors.into_iter();
        let first = it.next()?;
        Some(first.also(it))
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The code: the plugin's when it printed an error object, else the kind's.
    pub fn code(&self) -> ErrorCode {
        self.inner.code
    }

    /// The plugin's `msg` when it printed an error object, else the runtime's message.
    pub fn msg(&self) -> &str {
        &self.inner.msg
    }

    /// The plugin's `details` when it printed an error object, else the runtime's details.
    pub fn details(&self) -> Option<&str> {
        self.inner.details.as_deref()
    }

    /// The error object the plugin printed, exactly as it printed it (`None` when the failure is
    /// the runtime's: not found, timed out, cancelled, no or unparsable output, ...).
    pub fn plugin_error(&self) -> Option<&CniError> {
        self.inner.reported.as_ref()
    }

    /// The network the failure concerns.
    pub fn network(&self) -> Option<&str> {
        self.inner.network.as_deref()
    }

    /// The plugin that failed.
    pub fn plugin(&self) -> Option<&PluginRef> {
        self.inner.plugin.as_ref()
    }

    /// The type of the plugin that failed.
    pub fn plugin_type(&self) -> Option<&str> {
        self.inner.plugin.as_ref().map(|p| p.plugin_type.as_str())
    }

    /// The verb that failed.
    pub fn verb(&self) -> Option<Command> {
        self.inner.verb
    }

    /// The container and interface the failure concerns.
    pub fn attachment(&self) -> Option<&Attachment> {
        self.inner.attachment.as_ref()
    }

    /// What the plugin wrote to stderr (the first 64 KiB, trimmed), when it failed and wrote
    /// something.
    pub fn stderr(&self) -> Option<&str> {
        self.inner.stderr.as_deref()
    }

    /// This failure and every further failure of the same operation, in order (the pod's
    /// network order, GC's order of steps).
    pub fn failures(&self) -> impl Iterator<Item = &Error> {
        std::iter::once(self).chain(self.inner.others.iter())
    }

    /// The clean-up steps (DELs of a failed pod setup) that failed too.
    pub fn rollback_failures(&self) -> &[Error] {
        &self.inner.rollback
    }

    /// This failure (without the further ones) as a JSON object: `network`, `plugin`
    /// (`pluginName` when set), `verb`, `containerID`, `ifname`, `kind`, `code`, `codeName`,
    /// `msg`, `details`, `stderr` (absent keys are unknown), and `error`, the `Display` text.
    pub fn to_json(&self) -> Value {
        let i = &self.inner;
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                m.insert(k.to_owned(), v);
            }
        };
        put("network", json!(i.network));
        put("plugin", json!(i.plugin.as_ref().map(|p| &p.plugin_type)));
        put("pluginName", json!(i.plugin.as_ref().and_then(|p| p.name.as_ref())));
        put("verb", json!(i.verb.map(Command::as_str)));
        put("containerID", json!(i.attachment.as_ref().map(|a| &a.container_id)));
        put("ifname", json!(i.attachment.as_ref().map(|a| &a.ifname)));
        put("kind", json!(i.kind.as_str()));
        put("code", json!(i.code.as_u32()));
        put("codeName", json!(i.code.name()));
        put("msg", json!(i.msg));
        put("details", json!(i.details));
        put("stderr", json!(i.stderr));
        put("error", json!(self.single_text()));
        Value::Object(m)
    }

    /// Every failure as [`Error::to_json`] objects, then the rollback failures, as
    /// `{"errors": [...], "rollbackErrors": [...]}`.
    pub fn to_json_all(&self) -> Value {
        json!({
            "errors": self.failures().map(Error::to_json).collect::<Vec<_>>(),
            "rollbackErrors": self.inner.rollback.iter().map(Error::to_json).collect::<Vec<_>>(),
        })
    }

    /// libcni's text for this failure alone.
    fn single_text(&self) -> String {
        let i = &self.inner;
        let mut core = match &i.reported {
            Some(r) => r.to_string(),
            None => match &i.details {
                Some(d) => format!("{}; {d}", i.msg),
                None => i.msg.clone(),
            },
        };
        if i.plugin_frame
            && let (Some(p), Some(v)) = (&i.plugin, i.verb)
        {
            core = format!("plugin {p} failed ({}): {core}", verb_word(v));
        }
        for p in i.prefixes.iter().rev() {
            core = format!("{p}: {core}");
        }
        core
    }
}

impl fmt::Display for Error {
    /// libcni's wording of the failure, then `; ` and each further failure, then
    /// `; rollback: ` and each failed clean-up step.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.single_text())?;
        for o in &self.inner.others {
            write!(f, "; {}", o.single_text())?;
        }
        for (n, r) in self.inner.rollback.iter().enumerate() {
            let sep = if n == 0 { "; rollback: " } else { "; " };
            write!(f, "{sep}{}", r.single_text())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Error");
        d.field("kind", &i.kind)
            .field("code", &i.code.as_u32())
            .field("network", &i.network)
            .field("plugin", &i.plugin)
            .field("verb", &i.verb)
            .field("attachment", &i.attachment)
            .field("msg", &i.msg)
            .field("details", &i.details)
            .field("plugin_error", &i.reported.is_some());
        if !i.others.is_empty() {
            d.field("others", &i.others);
        }
        if !i.rollback.is_empty() {
            d.field("rollback", &i.rollback);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_deref().map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Self::from_sdk(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_wording_and_fields() {
        let e = Error::from_plugin(CniError::new(ErrorCode::InvalidNetworkConfig, "bad").with_details("why"))
            .at_plugin("n", PluginRef { plugin_type: "bridge".into(), name: Some("b1".into()) }, Command::Del, true)
            .with_attachment("c1", "eth0");
        assert_eq!(e.to_string(), "plugin type=\"bridge\" name=\"b1\" failed (delete): bad; why");
        assert_eq!((e.kind(), e.code()), (ErrorKind::InvalidConfig, ErrorCode::InvalidNetworkConfig));
        let j = e.to_json();
        assert_eq!(j["pluginName"], "b1");
        assert_eq!(j["verb"], "DEL");
        assert_eq!(j["codeName"], "InvalidNetworkConfig");
        assert_eq!(j["containerID"], "c1");
        assert!(j.get("stderr").is_none());

        let e = e.wrap("failed to delete stale attachment c1 eth0");
        assert!(e.to_string().starts_with("failed to delete stale attachment c1 eth0: plugin type=\"bridge\""));
    }

    #[test]
    fn runtime_failures_keep_their_kind() {
        let e = Error::from_sdk(crate::Error::timeout("plugin \"slow\" timed out after 1s and was killed")).at(
            "n",
            "slow",
            Command::Add,
        );
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.plugin_error().is_none());
        assert_eq!(
            e.to_string(),
            "plugin type=\"slow\" failed (add): plugin \"slow\" timed out after 1s and was killed"
        );
    }

    #[test]
    fn several_failures_flatten() {
        let a = Error::new(ErrorKind::Internal, "a");
        let b = Error::new(ErrorKind::Internal, "b").also([Error::new(ErrorKind::Internal, "c")]);
        let all = Error::collect(vec![a, b]).unwrap().with_rollback(vec![Error::new(ErrorKind::Internal, "r")]);
        let msgs: Vec<&str> = all.failures().map(Error::msg).collect();
        assert_eq!(msgs, ["a", "b", "c"]);
        assert_eq!(all.to_string(), "a; b; c; rollback: r");
        assert_eq!(all.to_json_all()["rollbackErrors"][0]["msg"], "r");
        assert!(Error::collect(Vec::new()).is_none());
    }
}
