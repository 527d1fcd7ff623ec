//! CNI specification versions.
//!
//! Two notions live here, as in Go's `pkg/version`:
//!
//! * [`SpecVersion`] — the closed set of the seven published versions. A plugin negotiates ADD
//!   and DEL by **exact string match** against these (`"1.0"` is not `"1.0.0"`).
//! * [`Semver`] — Go's loose `ParseVersion` (`""` is 0.1.0, `"1"` is 1.0.0, at most three numeric
//!   parts) used for the numeric floors: CHECK needs ≥ 0.4.0, GC and STATUS need ≥ 1.1.0, and a
//!   configuration list picks its highest version.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One of the seven published CNI specification versions.
///
/// Ordered by release. Parsing is exact: only the seven canonical strings are accepted.
///
/// ```
/// use cni_types::{ResultFamily, SpecVersion};
/// let v: SpecVersion = "0.3.1".parse().unwrap();
/// assert_eq!(v.family(), ResultFamily::V04);
/// assert!(v < SpecVersion::V1_0_0);
/// assert!("1.0".parse::<SpecVersion>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[non_exhaustive]
pub enum SpecVersion {
    /// 0.1.0: ADD/DEL, `ip4`/`ip6` results.
    V0_1_0,
    /// 0.2.0: VERSION command, config `args`.
    V0_2_0,
    /// 0.3.0: rich results (`interfaces`, `ips`), configuration lists, `prevResult`.
    V0_3_0,
    /// 0.3.1: spec typo fix only.
    V0_3_1,
    /// 0.4.0: CHECK, `disableCheck`, `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: conflists only, no `version` in `ips[]`, error codes 4–7.
    V1_0_0,
    /// 1.1.0: GC and STATUS, `cniVersions`, interface `mtu`/`socketPath`/`pciID`, route extras.
    V1_1_0,
}

/// The result wire shape a version uses (Go's type packages `020`, `040` and `100`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[non_exhaustive]
pub enum ResultFamily {
    /// 0.1.0 and 0.2.0: `ip4` / `ip6` objects.
    V02,
    /// 0.3.0, 0.3.1 and 0.4.0: `interfaces`, `ips[]` with `version`, `routes`.
    V04,
    /// 1.0.0 and 1.1.0: `ips[]` without `version`, interface and route extras.
    V1,
}

impl ResultFamily {
    /// The versions of this family, oldest first.
    pub fn versions(self) -> &'static [SpecVersion] {
        match self {
            Self::V02 => &SpecVersion::ALL[0..2],
            Self::V04 => &SpecVersion::ALL[2..5],
            Self::V1 => &SpecVersion::ALL[5..7],
        }
    }
}

impl SpecVersion {
    /// All seven versions, oldest first (Go's `version.All`).
    pub const ALL: [SpecVersion; 7] =
        [Self::V0_1_0, Self::V0_2_0, Self::V0_3_0, Self::V0_3_1, Self::V0_4_0, Self::V1_0_0, Self::V1_1_0];

    /// The newest version this crate implements.
    pub const LATEST: SpecVersion = Self::V1_1_0;

    /// The canonical string, e.g. `"0.3.1"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V0_1_0 => "0.1.0",
            Self::V0_2_0 => "0.2.0",
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// The result shape of this version.
    pub const fn family(self) -> ResultFamily {
        match self {
            Self::V0_1_0 | Self::V0_2_0 => ResultFamily::V02,
            Self::V0_3_0 | Self::V0_3_1 | Self::V0_4_0 => ResultFamily::V04,
            Self::V1_0_0 | Self::V1_1_0 => ResultFamily::V1,
        }
    }

    /// The numeric form.
    pub const fn semver(self) -> Semver {
        match self {
            Self::V0_1_0 => Semver::new(0, 1, 0),
            Self::V0_2_0 => Semver::new(0, 2, 0),
            Self::V0_3_0 => Semver::new(0, 3, 0),
            Self::V0_3_1 => Semver::new(0, 3, 1),
            Self::V0_4_0 => Semver::new(0, 4, 0),
            Self::V1_0_0 => Semver::new(1, 0, 0),
            Self::V1_1_0 => Semver::new(1, 1, 0),
        }
    }

    /// Whether the CHECK verb exists in this version (see [`Command::since`](crate::Command::since)).
    pub fn has_check(self) -> bool {
        crate::Command::Check.exists_in(self)
    }

    /// Whether the GC and STATUS verbs exist in this version (see [`Command::since`](crate::Command::since)).
    pub fn has_gc_and_status(self) -> bool {
        crate::Command::Gc.exists_in(self)
    }

    /// Whether results of this version can carry several IPs, interfaces and chaining (≥ 0.3.0).
    pub fn has_chaining(self) -> bool {
        self >= Self::V0_3_0
    }

    /// The versions starting from `self`, oldest first (Go's `VersionsStartingFrom`).
    pub fn and_newer(self) -> &'static [SpecVersion] {
        let at = Self::ALL.iter().position(|v| *v == self).unwrap_or(0);
        &Self::ALL[at..]
    }

    /// Maps a string the way the version *of a document* is read: empty means 0.1.0, otherwise
    /// the string must be one of the seven exactly.
    pub fn from_document(s: &str) -> Result<Self, VersionError> {
        if s.is_empty() { Ok(Self::V0_1_0) } else { s.parse() }
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpecVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| VersionError::Unsupported(s.to_owned()))
    }
}

impl Serialize for SpecVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SpecVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialEq<Semver> for SpecVersion {
    fn eq(&self, other: &Semver) -> bool {
        self.semver() == *other
    }
}

impl PartialOrd<Semver> for SpecVersion {
    fn partial_cmp(&self, other: &Semver) -> Option<Ordering> {
        Some(self.semver().cmp(other))
    }
}

/// A version number parsed with Go's loose rules (`pkg/version` `ParseVersion`).
///
/// ```
/// use cni_types::Semver;
/// assert_eq!(Semver::parse("").unwrap(), Semver::new(0, 1, 0));
/// assert_eq!(Semver::parse("1").unwrap(), Semver::new(1, 0, 0));
/// assert_eq!(Semver::parse("1.0").unwrap(), Semver::parse("1.0.0").unwrap());
/// assert!(Semver::parse("1.0.0-rc1").is_err());
/// assert!(Semver::parse("0.4.0").unwrap() >= Semver::new(0, 4, 0));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Semver {
    /// Major part.
    pub major: u64,
    /// Minor part.
    pub minor: u64,
    /// Micro (patch) part.
    pub micro: u64,
}

impl Semver {
    /// Builds a version from its parts.
    pub const fn new(major: u64, minor: u64, micro: u64) -> Self {
        Self { major, minor, micro }
    }

    /// Parses like Go: `""` → 0.1.0; split on `.`; more than three parts is an error; every part
    /// must be a decimal number; missing parts are 0.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        if s.is_empty() {
            return Ok(Self::new(0, 1, 0));
        }
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() >= 4 {
            return Err(VersionError::Malformed { version: s.to_owned(), reason: format!("{s:?} has too many parts") });
        }
        let mut nums = [0u64; 3];
        for (i, (part, name)) in parts.iter().zip(["major", "minor", "micro"]).enumerate() {
            // Go's Atoi accepts an optional sign; a version number never has one.
            nums[i] =
                part.parse::<u64>().ok().filter(|_| !part.starts_with('+')).ok_or_else(|| VersionError::Malformed {
                    version: s.to_owned(),
                    reason: format!("failed to convert {name} version part {part:?}"),
                })?;
        }
        Ok(Self::new(nums[0], nums[1], nums[2]))
    }

    /// The published version with exactly this number, if any.
    pub fn spec_version(self) -> Option<SpecVersion> {
        SpecVersion::ALL.iter().copied().find(|v| v.semver() == self)
    }
}

impl fmt::Display for Semver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

impl FromStr for Semver {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a version string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// Well-formed or not, the string is not one of the seven published versions.
    #[error("unsupported CNI version {0:?}")]
    Unsupported(String),
    /// The string is not a version number at all.
    #[error("invalid version {version:?}: {reason}")]
    Malformed {
        /// The string as given.
        version: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_only() {
        for v in SpecVersion::ALL {
            assert_eq!(v.as_str().parse::<SpecVersion>().unwrap(), v);
        }
        for s in ["1.0", "1", "0.4", "1.1.0 ", "v1.0.0", "2.0.0", ""] {
            assert!(s.parse::<SpecVersion>().is_err(), "{s}");
        }
        assert_eq!(SpecVersion::from_document("").unwrap(), SpecVersion::V0_1_0);
    }

    #[test]
    fn loose_parse_matches_go() {
        assert_eq!(Semver::parse("0.3").unwrap(), Semver::new(0, 3, 0));
        assert!(Semver::parse("1.2.3.4").is_err());
        assert!(Semver::parse("a.b").is_err());
        assert!(Semver::parse("1..0").is_err());
        assert!(Semver::parse("10.0.0").unwrap() > Semver::new(9, 9, 9));
        assert_eq!(Semver::parse("1.1").unwrap().spec_version(), Some(SpecVersion::V1_1_0));
    }

    #[test]
    fn families_and_floors() {
        assert_eq!(ResultFamily::V04.versions(), &[SpecVersion::V0_3_0, SpecVersion::V0_3_1, SpecVersion::V0_4_0]);
        assert!(!SpecVersion::V0_3_1.has_check());
        assert!(SpecVersion::V0_4_0.has_check());
        assert!(!SpecVersion::V1_0_0.has_gc_and_status());
        assert_eq!(SpecVersion::V1_0_0.and_newer(), &[SpecVersion::V1_0_0, SpecVersion::V1_1_0]);
    }
}
