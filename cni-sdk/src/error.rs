//! The SDK's error type: what went wrong ([`ErrorKind`], for code to match on), the CNI error
//! code to print, a message, optional details and a cause chain.

use std::error::Error as StdError;
use std::fmt;

use cni_types::{CniError, ErrorCode};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the wording: match on this, never on messages.
///
/// Every kind has a default CNI [`ErrorCode`] ([`ErrorKind::default_code`]); an error can carry
/// another code (e.g. Go prints most failures as 999 whatever their cause).
///
/// ```
/// use cni_sdk::{Error, ErrorCode, ErrorKind};
/// let e = Error::plugin_not_found("failed to find plugin \"host-local\" in path [/opt/cni/bin]")
///     .wrap("delegating ADD");
/// assert_eq!(e.kind(), ErrorKind::PluginNotFound);
/// assert_eq!(e.code(), ErrorCode::InvalidNetworkConfig);
/// assert!(e.message().starts_with("delegating ADD: failed to find plugin"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration's version is not one the plugin handles (code 1).
    IncompatibleVersion,
    /// A configuration key has a value the plugin does not support (code 2).
    UnsupportedField,
    /// The container is unknown or does not exist (code 3).
    UnknownContainer,
    /// Required environment variables are missing or invalid (code 4).
    InvalidEnvironment,
    /// Reading or writing failed (code 5).
    Io,
    /// A document could not be decoded (code 6).
    Decoding,
    /// The network configuration is invalid (code 7).
    InvalidConfig,
    /// `CNI_NETNS` is unusable, e.g. the plugin's own namespace (code 8, Go only).
    InvalidNetns,
    /// The container's network namespace does not exist (any more) (code 8).
    NetnsGone,
    /// A plugin binary was not found in `CNI_PATH` (code 7, as libcni).
    PluginNotFound,
    /// A delegated plugin or a daemon did not answer in time and was given up on (code 11).
    Timeout,
    /// The caller cancelled the operation before it finished (runtime side; code 999).
    Cancelled,
    /// The runtime's result cache could not be read, parsed or written (code 5).
    Cache,
    /// A transient condition; the caller should try again later (code 11).
    TryAgainLater,
    /// A resource is busy (`EBUSY`, a held lock) (code 11).
    Busy,
    /// STATUS: the plugin cannot serve ADD (codes 50 and 51).
    NotAvailable,
    /// An object (link, address, route, chain, rule, file) does not exist (code 999).
    NotFound,
    /// An object already exists (code 999).
    Exists,
    /// Missing privilege (code 999).
    PermissionDenied,
    /// The kernel or a tool lacks the feature (code 999).
    NotSupported,
    /// A gateway or device is not usable for a route (code 999).
    Unreachable,
    /// An argument of an operation is invalid (code 999).
    InvalidArgument,
    /// Plugin code panicked (code 999).
    Panicked,
    /// An error with a plugin-defined code (≥ 100).
    Plugin,
    /// Anything else (code 999).
    Internal,
}

impl ErrorKind {
    /// The code an error of this kind prints unless told otherwise.
    pub const fn default_code(self) -> ErrorCode {
        match self {
            Self::IncompatibleVersion => ErrorCode::IncompatibleCniVersion,
            Self::UnsupportedField => ErrorCode::UnsupportedField,
            Self::UnknownContainer => ErrorCode::UnknownContainer,
            Self::InvalidEnvironment => ErrorCode::InvalidEnvironmentVariables,
            Self::Io | Self::Cache => ErrorCode::IoFailure,
            Self::Decoding => ErrorCode::DecodingFailure,
            Self::InvalidConfig | Self::PluginNotFound => ErrorCode::InvalidNetworkConfig,
            Self::InvalidNetns | Self::NetnsGone => ErrorCode::InvalidNetNs,
            Self::Timeout | Self::TryAgainLater | Self::Busy => ErrorCode::TryAgainLater,
            Self::NotAvailable => ErrorCode::PluginNotAvailable,
            Self::Plugin => ErrorCode::Plugin(100),
            Self::NotFound
            | Self::Exists
            | Self::PermissionDenied
            | Self::NotSupported
            | Self::Unreachable
            | Self::InvalidArgument
            | Self::Panicked
            | Self::Cancelled
            | Self::Internal => ErrorCode::Internal,
        }
    }

    /// The kind an error object with `code` has when nothing more is known (a delegate's error).
    pub const fn from_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::IncompatibleCniVersion => Self::IncompatibleVersion,
            ErrorCode::UnsupportedField => Self::UnsupportedField,
            ErrorCode::UnknownContainer => Self::UnknownContainer,
            ErrorCode::InvalidEnvironmentVariables => Self::InvalidEnvironment,
            ErrorCode::IoFailure => Self::Io,
            ErrorCode::DecodingFailure => Self::Decoding,
            ErrorCode::InvalidNetworkConfig => Self::InvalidConfig,
            ErrorCode::InvalidNetNs => Self::InvalidNetns,
            ErrorCode::TryAgainLater => Self::TryAgainLater,
            ErrorCode::PluginNotAvailable | ErrorCode::LimitedConnectivity => Self::NotAvailable,
            ErrorCode::Plugin(_) => Self::Plugin,
            // Codes a later spec names fall back to internal until they get a kind of their own.
            _ => Self::Internal,
        }
    }

    /// A short lower-case description.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IncompatibleVersion => "incompatible version",
            Self::UnsupportedField => "unsupported field",
            Self::UnknownContainer => "unknown container",
            Self::InvalidEnvironment => "invalid environment",
            Self::Io => "I/O failure",
            Self::Decoding => "decoding failure",
            Self::InvalidConfig => "invalid configuration",
            Self::InvalidNetns => "invalid network namespace",
            Self::NetnsGone => "network namespace gone",
            Self::PluginNotFound => "plugin not found",
            Self::Timeout => "timed out",
            Self::Cancelled => "cancelled",
            Self::Cache => "result cache failure",
            Self::TryAgainLater => "try again later",
            Self::Busy => "busy",
            Self::NotAvailable => "not available",
            Self::NotFound => "not found",
            Self::Exists => "already exists",
            Self::PermissionDenied => "permission denied",
            Self::NotSupported => "not supported",
            Self::Unreachable => "unreachable",
            Self::InvalidArgument => "invalid argument",
            Self::Panicked => "panicked",
            Self::Plugin => "plugin error",
            Self::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a plugin returns, printed as a CNI error object.
///
/// Build one from a kind ([`Error::from_kind`] and the shortcuts) or a code ([`Error::new`]),
/// or let `?` convert any [`std::error::Error`]: a [`CniError`] keeps its code, message and
/// details; the SDK's service errors ([`NetError`](crate::net::NetError),
/// [`NetnsError`](crate::netns::NetnsError), `std::io::Error`) keep their kind; anything else is
/// [`ErrorKind::Internal`]. Non-CNI errors print code 999 (Go's `ErrInternal`) with their message
/// and their whole cause chain in `details`.
///
/// ```
/// use cni_sdk::{Error, ErrorCode, ErrorKind};
/// let e = Error::new(ErrorCode::TryAgainLater, "IP pool exhausted").with_details("10.22.0.0/16");
/// assert_eq!((e.code(), e.kind()), (ErrorCode::TryAgainLater, ErrorKind::TryAgainLater));
///
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such bridge");
/// let e = Error::from(io);
/// assert_eq!((e.code(), e.kind()), (ErrorCode::Internal, ErrorKind::NotFound));
/// assert_eq!(e.message(), "no such bridge");
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    code: ErrorCode,
    msg: String,
    details: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error with a code and a message; the kind follows from the code.
    pub fn new(code: impl Into<ErrorCode>, msg: impl Into<String>) -> Self {
        let code = code.into();
        Self::build(ErrorKind::from_code(code), code, msg.into())
    }

    /// An error of `kind` with its default code.
    pub fn from_kind(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Self::build(kind, kind.default_code(), msg.into())
    }

    fn build(kind: ErrorKind, code: ErrorCode, msg: String) -> Self {
        Self { inner: Box::new(Inner { kind, code, msg, details: None, source: None }) }
    }

    /// [`ErrorKind::Internal`], code 999.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::from_kind(ErrorKind::Internal, msg)
    }

    /// [`ErrorKind::InvalidConfig`], code 7 (invalid network configuration).
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::from_kind(ErrorKind::InvalidConfig, msg)
    }

    /// [`ErrorKind::UnsupportedField`], code 2; the message names the key and the value, as the
    /// spec asks.
    pub fn unsupported_field(key: &str, value: impl fmt::Display) -> Self {
        Self::from_kind(ErrorKind::UnsupportedField, format!("unsupported field {key:?} with value {value}"))
    }

    /// [`ErrorKind::TryAgainLater`], code 11.
    pub fn try_again_later(msg: impl Into<String>) -> Self {
        Self::from_kind(ErrorKind::TryAgainLater, msg)
    }

    /// [`ErrorKind::NotAvailable`], code 50 (STATUS: plugin not available).
    pub fn not_available(msg: impl Into<String>) -> Self {
        Self::from_kind(ErrorKind::NotAvailable, msg)
    }

    /// [`ErrorKind::Timeout`], code 11.
    pub fn timeout(msg: impl Into<String>) -> Self {
        Self::from_kind(ErrorKind::Timeout, msg)
    }

    /// [`ErrorKind::PluginNotFound`], code 7.
    pub fn plugin_not_found(msg: impl Into<String>) -> Self {
        Self::from_kind(ErrorKind::PluginNotFound, msg)
    }

    /// [`ErrorKind::NotFound`], code 999.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::from_kind(ErrorKind::NotFound, msg)
    }

    /// Sets the code to print, keeping the kind.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<ErrorCode>) -> Self {
        self.inner.code = code.into();
        self
    }

    /// Sets the details (replacing the cause chain text).
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        let d = details.into();
        self.inner.details = (!d.is_empty()).then_some(d);
        self
    }

    /// Attaches a source error; its chain is appended to the details when printed.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Wraps this error in a higher-level message, keeping kind and code: the old message
    /// moves in front of the details (`msg` stays short, `details` tells the whole story).
    #[must_use]
    pub fn context(mut self, msg: impl Into<String>) -> Self {
        let old = std::mem::replace(&mut self.inner.msg, msg.into());
        let chain = match self.chain_text() {
            Some(rest) => format!("{old}: {rest}"),
            None => old,
        };
        self.inner.details = Some(chain);
        self.inner.source = None;
        self
    }

    /// Go-style wrapping (`fmt.Errorf("msg: %v", err)`), keeping kind and code: the message
    /// becomes `msg: <message>` followed by `; <details>` when there are details (how Go prints
    /// a CNI error), and the details are cleared.
    ///
    /// ```
    /// use cni_sdk::{Error, ErrorKind};
    /// let e = Error::not_found("Link not found").with_details("eth9").wrap("failed to lookup \"eth9\"");
    /// assert_eq!(e.message(), "failed to lookup \"eth9\": Link not found; eth9");
    /// assert_eq!((e.kind(), e.details()), (ErrorKind::NotFound, None));
    /// ```
    #[must_use]
    pub fn wrap(mut self, msg: impl fmt::Display) -> Self {
        let cause = match self.chain_text() {
            Some(d) => format!("{}; {d}", self.inner.msg),
            None => std::mem::take(&mut self.inner.msg),
        };
        self.inner.msg = format!("{msg}: {cause}");
        self.inner.details = None;
        self.inner.source = None;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.inner.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.inner.msg
    }

    /// The details as they will be printed: explicit details, else the cause chain.
    pub fn details(&self) -> Option<String> {
        self.chain_text()
    }

    fn chain_text(&self) -> Option<String> {
        let mut parts: Vec<String> = self.inner.details.iter().cloned().collect();
        let mut next = self.inner.source.as_deref().map(|s| s as &(dyn StdError + 'static));
        while let Some(e) = next {
            parts.push(e.to_string());
            next = e.source();
        }
        (!parts.is_empty()).then(|| parts.join(": "))
    }

    /// The error object to print, stamped with `cni_version`.
    pub fn to_cni_error(&self, cni_version: &str) -> CniError {
        let mut e = CniError::new(self.code(), self.message()).with_version(cni_version);
        e.details = self.details();
        e
    }

    /// Whether this error carries `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == code
    }

    /// The kind of a service error from the SDK, if `err` is one.
    fn kind_of(err: &(dyn StdError + 'static)) -> Option<ErrorKind> {
        if let Some(e) = err.downcast_ref::<crate::net::NetError>() {
            return Some(e.kind().into());
        }
        if let Some(e) = err.downcast_ref::<crate::netns::NetnsError>() {
            return Some(e.kind().into());
        }
        #[cfg(feature = "firewall")]
        if let Some(e) = err.downcast_ref::<crate::firewall::FirewallError>() {
            return Some(e.kind().into());
        }
        if let Some(e) = err.downcast_ref::<std::io::Error>() {
            return Some(io_kind(e));
        }
        None
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match e.kind() {
        Io::NotFound => ErrorKind::NotFound,
        Io::PermissionDenied => ErrorKind::PermissionDenied,
        Io::AlreadyExists => ErrorKind::Exists,
        Io::TimedOut => ErrorKind::Timeout,
        Io::InvalidInput => ErrorKind::InvalidArgument,
        Io::Unsupported => ErrorKind::NotSupported,
        Io::ResourceBusy | Io::WouldBlock => ErrorKind::Busy,
        _ => ErrorKind::Internal,
    }
}

impl From<crate::net::NetErrorKind> for ErrorKind {
    /// Network kinds map to the spec's codes where it has one (busy → 11); the rest print 999.
    fn from(kind: crate::net::NetErrorKind) -> Self {
        use crate::net::NetErrorKind as N;
        match kind {
            N::Exists => Self::Exists,
            N::NotFound => Self::NotFound,
            N::PermissionDenied => Self::PermissionDenied,
            N::InvalidArgument | N::NotABridge => Self::InvalidArgument,
            N::Unreachable => Self::Unreachable,
            N::Busy => Self::Busy,
            N::NotSupported => Self::NotSupported,
            _ => Self::Internal,
        }
    }
}

impl From<crate::netns::NetnsErrorKind> for ErrorKind {
    fn from(kind: crate::netns::NetnsErrorKind) -> Self {
        use crate::netns::NetnsErrorKind as N;
        match kind {
            N::NotFound => Self::NotFound,
            N::NotANetns | N::InvalidName => Self::InvalidArgument,
            N::AlreadyExists => Self::Exists,
            N::PermissionDenied => Self::PermissionDenied,
            N::Panicked => Self::Panicked,
            _ => Self::Internal,
        }
    }
}

#[cfg(feature = "firewall")]
impl From<crate::firewall::FirewallErrorKind> for ErrorKind {
    /// A tool that is missing or unusable is "not supported"; a chain still referenced by
    /// another rule is an internal error (retrying will not help).
    fn from(kind: crate::firewall::FirewallErrorKind) -> Self {
        use crate::firewall::FirewallErrorKind as F;
        match kind {
            F::NotFound => Self::NotFound,
            F::Exists => Self::Exists,
            F::PermissionDenied => Self::PermissionDenied,
            F::Unavailable => Self::NotSupported,
            F::InvalidArgument => Self::InvalidArgument,
            _ => Self::Internal,
        }
    }
}

impl<E> From<E> for Error
where
    E: StdError + Send + Sync + 'static,
{
    fn from(err: E) -> Self {
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(err);
        match boxed.downcast::<CniError>() {
            Ok(cni) => {
                let CniError { code, msg, details, .. } = *cni;
                let mut e = Self::new(code, msg);
                e.inner.details = details;
                e
            }
            Err(other) => {
                // The runtime's typed error: keep kind and code; the message is libcni's text.
                #[cfg(feature = "runtime")]
                let other = match other.downcast::<crate::runtime::Error>() {
                    Ok(rt) => return Self::build(rt.kind(), rt.code(), rt.to_string()),
                    Err(other) => other,
                };
                let kind = Self::kind_of(&*other).unwrap_or(ErrorKind::Internal);
                // Service errors print 999 like Go's plain errors, except where the spec has a
                // code for the condition (busy → try again later).
                let code = if kind == ErrorKind::Busy { ErrorCode::TryAgainLater } else { ErrorCode::Internal };
                let msg = other.to_string();
                let source = other.source().map(|s| -> Box<dyn StdError + Send + Sync> { Box::new(ChainLink::of(s)) });
                let mut e = Self::build(kind, code, msg);
                e.inner.source = source;
                e
            }
        }
    }
}

/// A snapshot of a borrowed cause chain, so the chain survives the conversion.
#[derive(Debug)]
struct ChainLink {
    text: String,
    next: Option<Box<ChainLink>>,
}

impl ChainLink {
    fn of(e: &(dyn StdError + 'static)) -> Self {
        Self { text: e.to_string(), next: e.source().map(|s| Box::new(Self::of(s))) }
    }
}

impl fmt::Display for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl StdError for ChainLink {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.next.as_deref().map(|n| n as &(dyn StdError + 'static))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("code", &self.code().as_u32())
            .field("msg", &self.inner.msg)
            .field("details", &self.details())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.details() {
            Some(d) => write!(f, "{} (code {}): {}", self.inner.msg, self.code().as_u32(), d),
            None => write!(f, "{} (code {})", self.inner.msg, self.code().as_u32()),
        }
    }
}

/// `Error` cannot implement [`std::error::Error`] itself (that would clash with the conversion
/// from every error type); this adapter carries it where a `Box<dyn Error>` is wanted.
struct StdAdapter(Error);

impl fmt::Debug for StdAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for StdAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for StdAdapter {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.inner.source.as_deref().map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<Error> for Box<dyn StdError + Send + Sync + 'static> {
    /// So `?` works in functions returning `Box<dyn Error + Send + Sync>`.
    fn from(e: Error) -> Self {
        Box::new(StdAdapter(e))
    }
}

impl From<Error> for Box<dyn StdError + 'static> {
    /// So `?` works in functions returning `Box<dyn Error>`.
    fn from(e: Error) -> Self {
        Box::new(StdAdapter(e))
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> Self {
        let mut out = CniError::new(e.code(), e.message());
        out.details = e.details();
        out
    }
}

/// Adds CNI codes and context to any `Result`.
///
/// ```
/// use cni_sdk::{ErrorCode, ErrorKind, ResultExt};
/// fn read() -> cni_sdk::Result<String> {
///     std::fs::read_to_string("/nonexistent/cni-conf")
///         .with_code(ErrorCode::IoFailure, "reading the configuration")
/// }
/// let e = read().unwrap_err();
/// assert_eq!((e.code(), e.kind()), (ErrorCode::IoFailure, ErrorKind::NotFound));
/// assert!(e.details().unwrap().contains("No such file"));
///
/// let e = std::fs::read("/nonexistent/lease").wrap("failed to read the lease").unwrap_err();
/// assert!(e.message().starts_with("failed to read the lease: No such file"));
/// ```
pub trait ResultExt<T> {
    /// Replaces the error's message by `msg` (kind and code kept); the old message and cause
    /// move into the details.
    fn context(self, msg: impl Into<String>) -> Result<T>;
    /// Like [`ResultExt::context`], and prints `code`.
    fn with_code(self, code: ErrorCode, msg: impl Into<String>) -> Result<T>;
    /// Go-style `msg: cause` (see [`Error::wrap`]).
    fn wrap(self, msg: impl fmt::Display) -> Result<T>;
    /// [`ResultExt::wrap`] with a message computed only on error.
    fn wrap_with<M: fmt::Display>(self, msg: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, msg: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(msg))
    }

    fn with_code(self, code: ErrorCode, msg: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(msg).with_code(code))
    }

    fn wrap(self, msg: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().wrap(msg))
    }

    fn wrap_with<M: fmt::Display>(self, msg: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| e.into().wrap(msg()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_goes_to_details() {
        let e = Error::from(Outer(std::io::Error::other("inner")));
        assert_eq!((e.code(), e.kind()), (ErrorCode::Internal, ErrorKind::Internal));
        assert_eq!(e.message(), "outer");
        assert_eq!(e.details().as_deref(), Some("inner"));
    }

    #[test]
    fn cni_error_keeps_code() {
        let e = Error::from(CniError::new(ErrorCode::Plugin(101), "custom").with_details("d"));
        assert_eq!((e.code(), e.message(), e.details().as_deref()), (ErrorCode::Plugin(101), "custom", Some("d")));
        assert_eq!(e.kind(), ErrorKind::Plugin);
    }

    #[test]
    fn context_keeps_code_kind_and_history() {
        let e = Error::try_again_later("pool busy").with_details("lock held").context("IPAM failed");
        assert_eq!((e.code(), e.kind()), (ErrorCode::TryAgainLater, ErrorKind::TryAgainLater));
        assert_eq!(e.message(), "IPAM failed");
        assert_eq!(e.details().as_deref(), Some("pool busy: lock held"));
    }

    #[test]
    fn kinds_survive_wrapping() {
        let e = Error::timeout("plugin \"slow\" timed out").context("delegating ADD").wrap("bridge");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(e.message(), "bridge: delegating ADD; plugin \"slow\" timed out");
        let e = Error::plugin_not_found("x").with_code(ErrorCode::Internal);
        assert_eq!((e.kind(), e.code()), (ErrorKind::PluginNotFound, ErrorCode::Internal));
    }

    #[test]
    fn service_errors_keep_their_kind() {
        use crate::net::{NetError, NetErrorKind};
        let e = Error::from(NetError::from_errno(libc::EEXIST, "create link \"eth0\""));
        assert_eq!((e.kind(), e.code()), (ErrorKind::Exists, ErrorCode::Internal));
        assert_eq!(e.message(), "create link \"eth0\": File exists (os error 17)");
        let e = Error::from(NetError::new(NetErrorKind::Busy, "device busy"));
        assert_eq!((e.kind(), e.code()), (ErrorKind::Busy, ErrorCode::TryAgainLater));
        let e = Error::from(std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn codes_and_kinds_round_trip() {
        for code in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 999] {
            let code = ErrorCode::from(code);
            assert_eq!(ErrorKind::from_code(code).default_code(), code, "{code:?}");
        }
    }
}
