//! The verbs of the protocol (`CNI_COMMAND`), the spec version each one needs, and version
//! negotiation — the one place these rules are written.
//!
//! Both sides use it: a plugin's dispatcher gates every request with [`negotiate`], and a
//! runtime decides whether it may send a verb to a configuration with [`Command::allowed_by`].
//!
//! ```
//! use cni_types::{Command, NegotiationError, SpecVersion, negotiate};
//!
//! let all = &SpecVersion::ALL;
//! assert_eq!(negotiate(Command::Add, "0.3.1", all), Ok(SpecVersion::V0_3_1));
//! // ADD and DEL match versions exactly: "1.0" is not "1.0.0".
//! assert!(matches!(negotiate(Command::Add, "1.0", all), Err(NegotiationError::Incompatible { .. })));
//! // CHECK needs 0.4.0, GC and STATUS need 1.1.0.
//! assert!(matches!(negotiate(Command::Check, "0.3.1", all), Err(NegotiationError::ConfigTooOld { .. })));
//! assert!(Command::Gc.allowed_by("1.1.0").unwrap());
//! assert!(!Command::Status.allowed_by("1.0.0").unwrap());
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::{CniError, ErrorCode};
use crate::version::{Semver, SpecVersion, VersionError};

/// A CNI verb (`CNI_COMMAND`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Command {
    /// Add a container to a network.
    Add,
    /// Remove a container from a network.
    Del,
    /// Check a container's networking is as expected (≥ 0.4.0).
    Check,
    /// Garbage-collect resources of containers that no longer exist (≥ 1.1.0).
    Gc,
    /// Report readiness (≥ 1.1.0).
    Status,
    /// Report supported versions (≥ 0.2.0).
    Version,
}

impl Command {
    /// All verbs.
    pub const ALL: [Command; 6] = [Self::Add, Self::Del, Self::Check, Self::Gc, Self::Status, Self::Version];

    /// The `CNI_COMMAND` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Gc => "GC",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
        }
    }

    /// The lowest spec version that has this verb.
    pub const fn since(self) -> SpecVersion {
        match self {
            Self::Add | Self::Del => SpecVersion::V0_1_0,
            Self::Version => SpecVersion::V0_2_0,
            Self::Check => SpecVersion::V0_4_0,
            Self::Gc | Self::Status => SpecVersion::V1_1_0,
        }
    }

    /// Whether `version` has this verb.
    pub fn exists_in(self, version: SpecVersion) -> bool {
        version >= self.since()
    }

    /// Whether a configuration whose `cniVersion` is `version` allows this verb, compared
    /// numerically with Go's loose parse (`""` is 0.1.0, `"1.1"` is 1.1.0) as libcni does.
    /// Only the gated verbs (CHECK, GC, STATUS) can answer `false`.
    pub fn allowed_by(self, version: &str) -> Result<bool, VersionError> {
        if !self.is_gated() {
            return Ok(true);
        }
        Ok(Semver::parse(version)? >= self.since().semver())
    }

    /// Whether the verb has a version floor that configurations are checked against (CHECK,
    /// GC, STATUS); ADD and DEL are negotiated by exact match instead.
    const fn is_gated(self) -> bool {
        matches!(self, Self::Check | Self::Gc | Self::Status)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a `CNI_COMMAND` value that is not a verb (verbs are case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CNI_COMMAND: {0}")]
pub struct UnknownCommand(pub String);

impl FromStr for Command {
    type Err = UnknownCommand;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownCommand(s.to_owned()))
    }
}

/// Why a request's version was refused (see [`negotiate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The configuration's `cniVersion` is not a version number (code 6).
    #[error("{0}")]
    Malformed(VersionError),
    /// The configuration's version is older than the verb (code 1).
    #[error("config version does not allow {command}")]
    ConfigTooOld {
        /// The verb.
        command: Command,
    },
    /// None of the plugin's versions is as new as the configuration's (code 1).
    #[error("plugin version does not allow {command}")]
    PluginTooOld {
        /// The verb.
        command: Command,
    },
    /// The configuration's version is not one the plugin supports (code 1).
    #[error("incompatible CNI versions")]
    Incompatible {
        /// The configuration's version (`"0.1.0"` when it has none).
        config: String,
        /// The plugin's versions.
        supported: Vec<SpecVersion>,
    },
}

impl NegotiationError {
    /// The CNI error code to report.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::DecodingFailure,
            _ => ErrorCode::IncompatibleCniVersion,
        }
    }

    /// The error object's `details` (Go's wording), if any.
    pub fn details(&self) -> Option<String> {
        match self {
            Self::Incompatible { config, supported } => {
                let list: Vec<String> = supported.iter().map(|v| format!("{:?}", v.as_str())).collect();
                Some(format!("config is {config:?}, plugin supports [{}]", list.join(" ")))
            }
            _ => None,
        }
    }
}

impl From<NegotiationError> for CniError {
    fn from(e: NegotiationError) -> Self {
        let mut err = CniError::new(e.code(), e.to_string());
        err.details = e.details();
        err
    }
}

/// The plugin side's version gate of a request: the spec version the plugin runs it in.
///
/// * CHECK, GC and STATUS: the configuration's version (loosely parsed) must reach the verb's
///   floor, and some supported version must be at least as new as the configuration's.
/// * Then every verb: the configuration's version (empty means `0.1.0`) must equal one of
///   `supported` exactly (Go's `version.Reconcile`).
///
/// VERSION is never negotiated (it always answers); passing it applies the exact-match rule.
pub fn negotiate(command: Command, config_version: &str, supported: &[SpecVersion]) -> Result<SpecVersion, NegotiationError> {
    if command.is_gated() {
        let parsed = Semver::parse(config_version).map_err(NegotiationError::Malformed)?;
        if parsed < command.since().semver() {
            return Err(NegotiationError::ConfigTooOld { command });
        }
        if !supported.iter().any(|v| v.semver() >= parsed) {
            return Err(NegotiationError::PluginTooOld { command });
        }
    }
    let effective = if config_version.is_empty() { SpecVersion::V0_1_0.as_str() } else { config_version };
    supported
        .iter()
        .copied()
        .find(|v| v.as_str() == effective)
        .ok_or_else(|| NegotiationError::Incompatible { config: effective.to_owned(), supported: supported.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_are_the_verbs() {
        for v in SpecVersion::ALL {
            assert_eq!(v.has_check(), Command::Check.exists_in(v));
            assert_eq!(v.has_gc_and_status(), Command::Gc.exists_in(v) && Command::Status.exists_in(v));
        }
        assert!(!Command::Version.exists_in(SpecVersion::V0_1_0));
    }

    #[test]
    fn parse_is_case_sensitive() {
        assert_eq!("GC".parse::<Command>(), Ok(Command::Gc));
        assert_eq!("add".parse::<Command>(), Err(UnknownCommand("add".into())));
        for c in Command::ALL {
            assert_eq!(c.as_str().parse::<Command>(), Ok(c));
        }
    }

    #[test]
    fn negotiation_matches_go() {
        let all = &SpecVersion::ALL[..];
        assert_eq!(negotiate(Command::Del, "", all), Ok(SpecVersion::V0_1_0));
        assert_eq!(negotiate(Command::Check, "0.4.0", all), Ok(SpecVersion::V0_4_0));
        let e = negotiate(Command::Check, "0.4", all).unwrap_err();
        assert_eq!(e.code(), ErrorCode::IncompatibleCniVersion);
        assert_eq!(e.details().unwrap(), r#"config is "0.4", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#);
        let e = negotiate(Command::Status, "x.y", all).unwrap_err();
        assert_eq!(e.code(), ErrorCode::DecodingFailure);
        let e = negotiate(Command::Gc, "1.1.0", &[SpecVersion::V1_0_0]).unwrap_err();
        assert_eq!(e.to_string(), "plugin version does not allow GC");
        let e = negotiate(Command::Gc, "1.0.0", all).unwrap_err();
        assert_eq!(CniError::from(e).msg, "config version does not allow GC");
    }

    #[test]
    fn runtime_gate() {
        assert!(Command::Add.allowed_by("garbage").unwrap());
        assert!(Command::Check.allowed_by("0.4").unwrap());
        assert!(!Command::Check.allowed_by("").unwrap());
        assert!(Command::Check.allowed_by("a").is_err());
    }
}
