//! The VERSION reply and its decoding with libcni's rules.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SpecVersion;

/// A plugin's answer to `CNI_COMMAND=VERSION`.
///
/// ```
/// use cni_types::{SpecVersion, VersionInfo};
/// let info = VersionInfo::new("1.0.0", &SpecVersion::ALL);
/// assert_eq!(info.supported_versions.len(), 7);
/// let decoded = VersionInfo::decode(br#"{"cniVersion":"0.2.0"}"#).unwrap();
/// assert_eq!(decoded.supported_versions, ["0.1.0", "0.2.0"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The protocol version of the reply.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The versions the plugin supports.
    #[serde(rename = "supportedVersions", default)]
    pub supported_versions: Vec<String>,
}

/// Why a VERSION reply could not be decoded (libcni's `PluginDecoder`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersionInfoError {
    /// Not JSON.
    #[error("decoding version info: {0}")]
    Json(#[from] serde_json::Error),
    /// No `cniVersion`.
    #[error("decoding version info: missing field cniVersion")]
    MissingVersion,
    /// No `supportedVersions` in a reply that is not 0.2.0.
    #[error("decoding version info: missing field supportedVersions")]
    MissingSupported,
}

impl VersionInfo {
    /// A reply for `cni_version` listing `supported`.
    pub fn new(cni_version: impl Into<String>, supported: &[SpecVersion]) -> Self {
        Self {
            cni_version: cni_version.into(),
            supported_versions: supported.iter().map(|v| v.as_str().to_owned()).collect(),
        }
    }

    /// Decodes a reply: `cniVersion` is required; a missing or empty `supportedVersions` means
    /// `["0.1.0", "0.2.0"]` for a 0.2.0 reply and is an error otherwise.
    pub fn decode(bytes: &[u8]) -> Result<Self, VersionInfoError> {
        let v: Value = serde_json::from_slice(bytes)?;
        let mut info: VersionInfo = match v.get("cniVersion") {
            Some(Value::String(s)) if !s.is_empty() => serde_json::from_value(v)?,
            _ => return Err(VersionInfoError::MissingVersion),
        };
        if info.supported_versions.is_empty() {
            if info.cni_version == "0.2.0" {
                info.supported_versions = vec!["0.1.0".into(), "0.2.0".into()];
            } else {
                return Err(VersionInfoError::MissingSupported);
            }
        }
        Ok(info)
    }

    /// Whether `version` is in the list (exact string match).
    pub fn supports(&self, version: &str) -> bool {
        self.supported_versions.iter().any(|v| v == version)
    }
}

/// A `{containerID, ifname}` attachment (GC's `cni.dev/valid-attachments`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Attachment {
    /// Container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

impl Attachment {
    /// Builds an attachment.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self { container_id: container_id.into(), ifname: ifname.into() }
    }
}
