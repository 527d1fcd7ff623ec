//! The CNI error object `{cniVersion, code, msg, details}` and its well-known codes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CNI error code.
///
/// Codes 0–99 are reserved by the specification; plugins use 100 and above
/// ([`ErrorCode::Plugin`]). Go's reference library also uses 8 and 999, which are kept for
/// compatibility.
///
/// ```
/// use cni_types::ErrorCode;
/// assert_eq!(ErrorCode::from(7), ErrorCode::InvalidNetworkConfig);
/// assert_eq!(u32::from(ErrorCode::TryAgainLater), 11);
/// assert_eq!(ErrorCode::from(142), ErrorCode::Plugin(142));
///
/// // Names for logs and error reports; `Display` gives number and description.
/// assert_eq!(ErrorCode::TryAgainLater.name(), "TryAgainLater");
/// assert_eq!(ErrorCode::TryAgainLater.go_name(), Some("ErrTryAgainLater"));
/// assert_eq!(ErrorCode::TryAgainLater.to_string(), "11 (try again later)");
/// assert_eq!(ErrorCode::from(142).to_string(), "142 (plugin-specific error)");
/// assert_eq!("InvalidNetworkConfig".parse::<ErrorCode>(), Ok(ErrorCode::InvalidNetworkConfig));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleCniVersion,
    /// 2: unsupported field in the network configuration; the message names key and value.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid or missing environment variables; the message names them.
    InvalidEnvironmentVariables,
    /// 5: I/O failure, e.g. reading stdin.
    IoFailure,
    /// 6: failed to decode content.
    DecodingFailure,
    /// 7: invalid network configuration.
    InvalidNetworkConfig,
    /// 8: `CNI_NETNS` is the plugin's own namespace (Go-only, not in the specification).
    InvalidNetNs,
    /// 11: transient failure; try again later.
    TryAgainLater,
    /// 50: STATUS: the plugin cannot service ADD requests.
    PluginNotAvailable,
    /// 51: STATUS: not available, and existing containers may have limited connectivity.
    LimitedConnectivity,
    /// 999: internal error (Go's code for plain errors).
    Internal,
    /// 100 and above: defined by the plugin.
    Plugin(u32),
    /// Any other reserved code (0–99) this crate has no name for.
    Reserved(u32),
}

impl ErrorCode {
    /// The numeric code.
    pub const fn as_u32(self) -> u32 {
        match self {
            Self::IncompatibleCniVersion => 1,
            Self::UnsupportedField => 2,
            Self::UnknownContainer => 3,
            Self::InvalidEnvironmentVariables => 4,
            Self::IoFailure => 5,
            Self::DecodingFailure => 6,
            Self::InvalidNetworkConfig => 7,
            Self::InvalidNetNs => 8,
            Self::TryAgainLater => 11,
            Self::PluginNotAvailable => 50,
            Self::LimitedConnectivity => 51,
            Self::Internal => 999,
            Self::Plugin(n) | Self::Reserved(n) => n,
        }
    }

    /// A stable name for the code, the same as the variant's (`"InvalidNetworkConfig"`,
    /// `"TryAgainLater"`, ...); every plugin-defined code is `"Plugin"` and every unnamed
    /// reserved one `"Reserved"`. [`str::parse`] reads these names back (and plain numbers).
    pub const fn name(self) -> &'static str {
        match self {
            Self::IncompatibleCniVersion => "IncompatibleCniVersion",
            Self::UnsupportedField => "UnsupportedField",
            Self::UnknownContainer => "UnknownContainer",
            Self::InvalidEnvironmentVariables => "InvalidEnvironmentVariables",
            Self::IoFailure => "IoFailure",
            Self::DecodingFailure => "DecodingFailure",
            Self::InvalidNetworkConfig => "InvalidNetworkConfig",
            Self::InvalidNetNs => "InvalidNetNs",
            Self::TryAgainLater => "TryAgainLater",
            Self::PluginNotAvailable => "PluginNotAvailable",
            Self::LimitedConnectivity => "LimitedConnectivity",
            Self::Internal => "Internal",
            Self::Plugin(_) => "Plugin",
            Self::Reserved(_) => "Reserved",
        }
    }

    /// The name of the constant Go's `pkg/types` gives the code (`"ErrTryAgainLater"`), for
    /// codes Go names; `None` for plugin-defined and unnamed reserved codes.
    pub const fn go_name(self) -> Option<&'static str> {
        Some(match self {
            Self::IncompatibleCniVersion => "ErrIncompatibleCNIVersion",
            Self::UnsupportedField => "ErrUnsupportedField",
            Self::UnknownContainer => "ErrUnknownContainer",
            Self::InvalidEnvironmentVariables => "ErrInvalidEnvironmentVariables",
            Self::IoFailure => "ErrIOFailure",
            Self::DecodingFailure => "ErrDecodingFailure",
            Self::InvalidNetworkConfig => "ErrInvalidNetworkConfig",
            Self::InvalidNetNs => "ErrInvalidNetNS",
            Self::TryAgainLater => "ErrTryAgainLater",
            Self::PluginNotAvailable => "ErrPluginNotAvailable",
            Self::LimitedConnectivity => "ErrLimitedConnectivity",
            Self::Internal => "ErrInternal",
            Self::Plugin(_) | Self::Reserved(_) => return None,
        })
    }

    /// The specification's short description of the code.
    pub const fn description(self) -> &'static str {
        match self {
            Self::IncompatibleCniVersion => "incompatible CNI version",
            Self::UnsupportedField => "unsupported field in network configuration",
            Self::UnknownContainer => "container unknown or does not exist",
            Self::InvalidEnvironmentVariables => "invalid necessary environment variables",
            Self::IoFailure => "I/O failure",
            Self::DecodingFailure => "failed to decode content",
            Self::InvalidNetworkConfig => "invalid network config",
            Self::InvalidNetNs => "invalid network namespace",
            Self::TryAgainLater => "try again later",
            Self::PluginNotAvailable => "plugin is not available",
            Self::LimitedConnectivity => {
                "plugin is not available and existing containers may have limited connectivity"
            }
            Self::Internal => "internal error",
            Self::Plugin(_) => "plugin-specific error",
            Self::Reserved(_) => "reserved error code",
        }
    }
}

impl From<u32> for ErrorCode {
    fn from(code: u32) -> Self {
        match code {
            1 => Self::IncompatibleCniVersion,
            2 => Self::UnsupportedField,
            3 => Self::UnknownContainer,
            4 => Self::InvalidEnvironmentVariables,
            5 => Self::IoFailure,
            6 => Self::DecodingFailure,
            7 => Self::InvalidNetworkConfig,
            8 => Self::InvalidNetNs,
            11 => Self::TryAgainLater,
            50 => Self::PluginNotAvailable,
            51 => Self::LimitedConnectivity,
            999 => Self::Internal,
            n if n >= 100 => Self::Plugin(n),
            n => Self::Reserved(n),
        }
    }
}

impl From<ErrorCode> for u32 {
    fn from(code: ErrorCode) -> Self {
        code.as_u32()
    }
}

impl fmt::Display for ErrorCode {
    /// The number and the description: `7 (invalid network config)`. The wire form is the bare
    /// number ([`ErrorCode::as_u32`], and what `Serialize` writes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_u32(), self.description())
    }
}

/// The error of parsing an [`ErrorCode`] from text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownErrorCode(pub String);

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown CNI error code {:?}", self.0)
    }
}

impl std::error::Error for UnknownErrorCode {}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    /// A number (`"11"`), a [name](ErrorCode::name) of a named code (`"TryAgainLater"`) or its
    /// [Go name](ErrorCode::go_name) (`"ErrTryAgainLater"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.parse::<u32>() {
            return Ok(Self::from(n));
        }
        const NAMED: [ErrorCode; 12] = [
            ErrorCode::IncompatibleCniVersion,
            ErrorCode::UnsupportedField,
            ErrorCode::UnknownContainer,
            ErrorCode::InvalidEnvironmentVariables,
            ErrorCode::IoFailure,
            ErrorCode::DecodingFailure,
            ErrorCode::InvalidNetworkConfig,
            ErrorCode::InvalidNetNs,
            ErrorCode::TryAgainLater,
            ErrorCode::PluginNotAvailable,
            ErrorCode::LimitedConnectivity,
            ErrorCode::Internal,
        ];
        NAMED
            .into_iter()
            .find(|c| c.name() == s || c.go_name() == Some(s))
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u32::deserialize(deserializer).map(Self::from)
    }
}

/// The error object a plugin prints on failure.
///
/// `cniVersion` is required by the specification but omitted by Go, so it is optional when
/// reading and printed when set.
///
/// ```
/// use cni_types::{CniError, ErrorCode};
/// let e = CniError::new(ErrorCode::InvalidNetworkConfig, "missing network name")
///     .with_version("1.1.0");
/// assert_eq!(
///     serde_json::to_string(&e).unwrap(),
///     r#"{"cniVersion":"1.1.0","code":7,"msg":"missing network name"}"#
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CniError {
    /// The protocol version in use.
    #[serde(rename = "cniVersion", default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<String>,
    /// The error code.
    pub code: ErrorCode,
    /// A short message.
    #[serde(default)]
    pub msg: String,
    /// A longer explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<ErrorCode>, msg: impl Into<String>) -> Self {
        Self { cni_version: None, code: code.into(), msg: msg.into(), details: None }
    }

    /// Sets `details` (an empty string clears it).
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        let d = details.into();
        self.details = (!d.is_empty()).then_some(d);
        self
    }

    /// Sets `cniVersion`.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.cni_version = Some(version.into());
        self
    }
}

impl fmt::Display for CniError {
    /// Go's `types.Error.Error()`: `msg`, or `msg; details` when `details` is not empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.details {
            Some(d) if !d.is_empty() => write!(f, "{}; {}", self.msg, d),
            _ => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999, 100, 4242, 0, 42] {
            assert_eq!(ErrorCode::from(n).as_u32(), n);
        }
        assert_eq!(ErrorCode::from(42), ErrorCode::Reserved(42));
    }

    #[test]
    fn names_parse_back() {
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999] {
            let code = ErrorCode::from(n);
            assert_eq!(code.name().parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.go_name().unwrap().parse::<ErrorCode>(), Ok(code));
            assert!(code.to_string().starts_with(&format!("{n} (")), "{code}");
        }
        assert_eq!(ErrorCode::Plugin(120).go_name(), None);
        assert_eq!("Plugin".parse::<ErrorCode>(), Err(UnknownErrorCode("Plugin".into())));
        assert_eq!("nope".parse::<ErrorCode>().unwrap_err().to_string(), "unknown CNI error code \"nope\"");
    }

    #[test]
    fn go_shape_parses() {
        let e: CniError = serde_json::from_str(r#"{"code":4,"msg":"m","details":"d","extra":1}"#).unwrap();
        assert_eq!(e.code, ErrorCode::InvalidEnvironmentVariables);
        assert_eq!(e.to_string(), "m; d");
        assert_eq!(e.cni_version, None);
    }
}
