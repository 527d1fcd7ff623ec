//! The SDK's error type: a CNI error code, a message, optional details and a cause chain.

use std::error::Error as StdError;
use std::fmt;

use cni_types::{CniError, ErrorCode};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error a plugin returns, printed as a CNI error object.
///
/// Build one with a code ([`Error::new`] and the shortcuts), or let `?` convert any
/// [`std::error::Error`]: a [`CniError`] keeps its code, message and details; anything else
/// becomes code 999 (Go's `ErrInternal`) with its message and its whole cause chain in
/// `details`.
///
/// ```
/// use cni_sdk::{Error, ErrorCode};
/// let e = Error::new(ErrorCode::TryAgainLater, "IP pool exhausted").with_details("10.22.0.0/16");
/// assert_eq!(e.code(), ErrorCode::TryAgainLater);
///
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such bridge");
/// let e = Error::from(io);
/// assert_eq!(e.code(), ErrorCode::Internal);
/// assert_eq!(e.message(), "no such bridge");
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    code: ErrorCode,
    msg: String,
    details: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: impl Into<ErrorCode>, msg: impl Into<String>) -> Self {
        Self { inner: Box::new(Inner { code: code.into(), msg: msg.into(), details: None, source: None }) }
    }

    /// Code 999 (internal error).
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, msg)
    }

    /// Code 7 (invalid network configuration).
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidNetworkConfig, msg)
    }

    /// Code 2 (unsupported field); the message names the key and the value, as the spec asks.
    pub fn unsupported_field(key: &str, value: impl fmt::Display) -> Self {
        Self::new(ErrorCode::UnsupportedField, format!("unsupported field {key:?} with value {value}"))
    }

    /// Code 11 (try again later).
    pub fn try_again_later(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::TryAgainLater, msg)
    }

    /// Code 50 (STATUS: plugin not available).
    pub fn not_available(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::PluginNotAvailable, msg)
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

    /// Wraps this error in a higher-level message, keeping the code: the old message moves in
    /// front of the details (`msg` stays short, `details` tells the whole story).
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
                Self { inner: Box::new(Inner { code, msg, details, source: None }) }
            }
            Err(other) => {
                let msg = other.to_string();
                let source = other.source().map(|s| -> Box<dyn StdError + Send + Sync> { Box::new(ChainLink::of(s)) });
                Self { inner: Box::new(Inner { code: ErrorCode::Internal, msg, details: None, source }) }
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
            .field("code", &self.code().as_u32())
            .field("msg", &self.inner.msg)
            .field("details", &self.details())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.details() {
            Some(d) => write!(f, "{} ({}): {}", self.inner.msg, self.code(), d),
            None => write!(f, "{} ({})", self.inner.msg, self.code()),
        }
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
/// use cni_sdk::{ErrorCode, ResultExt};
/// fn read() -> cni_sdk::Result<String> {
///     std::fs::read_to_string("/nonexistent/cni-conf")
///         .with_code(ErrorCode::IoFailure, "reading the configuration")
/// }
/// let e = read().unwrap_err();
/// assert_eq!(e.code(), ErrorCode::IoFailure);
/// assert!(e.details().unwrap().contains("No such file"));
/// ```
pub trait ResultExt<T> {
    /// Replaces the error by `msg` with code 999, keeping the original as the cause.
    fn context(self, msg: impl Into<String>) -> Result<T>;
    /// Replaces the error by `msg` with `code`, keeping the original as the cause.
    fn with_code(self, code: ErrorCode, msg: impl Into<String>) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, msg: impl Into<String>) -> Result<T> {
        self.map_err(|e| {
            let e: Error = e.into();
            let code = e.code();
            e.context(msg).with_code_kept(code)
        })
    }

    fn with_code(self, code: ErrorCode, msg: impl Into<String>) -> Result<T> {
        self.map_err(|e| {
            let mut e = e.into().context(msg);
            e.inner.code = code;
            e
        })
    }
}

impl Error {
    fn with_code_kept(mut self, code: ErrorCode) -> Self {
        self.inner.code = code;
        self
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
        assert_eq!(e.code(), ErrorCode::Internal);
        assert_eq!(e.message(), "outer");
        assert_eq!(e.details().as_deref(), Some("inner"));
    }

    #[test]
    fn cni_error_keeps_code() {
        let e = Error::from(CniError::new(ErrorCode::Plugin(101), "custom").with_details("d"));
        assert_eq!((e.code(), e.message(), e.details().as_deref()), (ErrorCode::Plugin(101), "custom", Some("d")));
    }

    #[test]
    fn context_keeps_code_and_history() {
        let e = Error::try_again_later("pool busy").with_details("lock held").context("IPAM failed");
        assert_eq!(e.code(), ErrorCode::TryAgainLater);
        assert_eq!(e.message(), "IPAM failed");
        assert_eq!(e.details().as_deref(), Some("pool busy: lock held"));
    }
}
