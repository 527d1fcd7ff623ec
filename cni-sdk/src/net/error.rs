//! The error type of network operations.

use std::fmt;

use crate::netns::{NetnsError, NetnsErrorKind};

/// The category of a [`NetError`], independent of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetErrorKind {
    /// The object already exists (`EEXIST`): a link name, an address, a route.
    Exists,
    /// The object does not exist (`ENODEV`, `ENOENT`, `ESRCH`, `EADDRNOTAVAIL`), including a
    /// missing network namespace.
    NotFound,
    /// Missing privilege (`EPERM`, `EACCES`).
    PermissionDenied,
    /// The request is invalid (`EINVAL`, `ERANGE`, ...): a bad name, MTU out of range, ...
    InvalidArgument,
    /// A link of the requested name exists but is not a bridge.
    NotABridge,
    /// The gateway (or the device) of a route is not usable: no connected route reaches the
    /// gateway ("Nexthop has invalid gateway", `EHOSTUNREACH`, `ENETUNREACH`) or the output device
    /// is down (`ENETDOWN`).
    Unreachable,
    /// The resource is busy (`EBUSY`).
    Busy,
    /// The operation is not supported (`EOPNOTSUPP`), e.g. a link kind the kernel lacks.
    NotSupported,
    /// Anything else.
    Other,
}

impl fmt::Display for NetErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Exists => "already exists",
            Self::NotFound => "not found",
            Self::PermissionDenied => "permission denied",
            Self::InvalidArgument => "invalid argument",
            Self::NotABridge => "not a bridge",
            Self::Unreachable => "unreachable",
            Self::Busy => "busy",
            Self::NotSupported => "not supported",
            Self::Other => "error",
        };
        f.write_str(s)
    }
}

impl NetErrorKind {
    /// Maps an `errno` value to a kind.
    pub fn from_errno(errno: i32) -> Self {
        match errno {
            libc::EEXIST => Self::Exists,
            libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL => Self::NotFound,
            libc::EPERM | libc::EACCES => Self::PermissionDenied,
            libc::EINVAL | libc::ERANGE | libc::E2BIG => Self::InvalidArgument,
            libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN => Self::Unreachable,
            libc::EBUSY => Self::Busy,
            libc::EOPNOTSUPP => Self::NotSupported,
            _ => Self::Other,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a network operation: a [kind](NetError::kind), a message naming the operation
/// and object, and the underlying error if any.
#[derive(Debug)]
pub struct NetError {
    kind: NetErrorKind,
    message: String,
    errno: Option<i32>,
    source: Option<BoxError>,
}

impl NetError {
    /// A new error of `kind` with `message` and no source.
    pub fn new(kind: NetErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), errno: None, source: None }
    }

    /// An error for `errno` (positive), with a message giving the context.
    pub fn from_errno(errno: i32, context: impl fmt::Display) -> Self {
        let io = std::io::Error::from_raw_os_error(errno);
        Self {
            kind: NetErrorKind::from_errno(errno),
            message: format!("{context}: {io}"),
            errno: Some(errno),
            source: Some(Box::new(io)),
        }
    }

    /// Attaches an underlying error.
    pub fn with_source(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_kind(mut self, kind: NetErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The category of the error.
    pub fn kind(&self) -> NetErrorKind {
        self.kind
    }

    /// The `errno` reported by the kernel (or simulated by the fake), if any.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The message (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True for [`NetErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == NetErrorKind::NotFound
    }

    /// True for [`NetErrorKind::Exists`].
    pub fn is_exists(&self) -> bool {
        self.kind == NetErrorKind::Exists
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<NetnsError> for NetError {
    fn from(e: NetnsError) -> Self {
        let kind = match e.kind() {
            NetnsErrorKind::NotFound => NetErrorKind::NotFound,
            NetnsErrorKind::PermissionDenied => NetErrorKind::PermissionDenied,
            NetnsErrorKind::NotANetns | NetnsErrorKind::InvalidName => NetErrorKind::InvalidArgument,
            NetnsErrorKind::AlreadyExists => NetErrorKind::Exists,
            _ => NetErrorKind::Other,
        };
        Self { kind, message: e.to_string(), errno: None, source: Some(Box::new(e)) }
    }
}

/// Result alias for network operations.
pub type NetResult<T> = Result<T, NetError>;
