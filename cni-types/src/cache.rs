//! The runtime's result cache record (libcni's `cniCacheV1`), byte-compatible with Go.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The `kind` of a cache record.
pub const CACHE_KIND_V1: &str = "cniCacheV1";

/// One cache file, `<cacheDir>/results/<network>-<containerID>-<ifname>`, as Go libcni writes it.
///
/// [`CacheRecord::to_go_json`] produces the same bytes as Go's `json.Marshal` of libcni's
/// `cachedInfo` (field order, base64 `config`, sorted keys in the map-typed members, Go's HTML
/// escaping), so either runtime can read what the other wrote.
///
/// ```
/// use cni_types::CacheRecord;
/// let rec = CacheRecord::new("c1", "eth0", "dbnet", br#"{"name":"dbnet"}"#.to_vec());
/// let json = rec.to_go_json();
/// assert!(json.starts_with(r#"{"kind":"cniCacheV1","containerId":"c1","config":"eyJuYW1lIjoiZGJuZXQifQ==","#));
/// assert_eq!(CacheRecord::from_slice(json.as_bytes()).unwrap(), rec);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Always [`CACHE_KIND_V1`].
    pub kind: String,
    /// Container ID.
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The configuration list's bytes.
    #[serde(serialize_with = "ser_bytes", deserialize_with = "de_bytes")]
    pub config: Vec<u8>,
    /// Interface name.
    #[serde(rename = "ifName")]
    pub if_name: String,
    /// Network name.
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// Namespace path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// `CNI_ARGS` pairs.
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub cni_args: Vec<[String; 2]>,
    /// Capability arguments.
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty",
        deserialize_with = "null_default"
    )]
    pub capability_args: Map<String, Value>,
    /// The final ADD result as returned by the last plugin.
    #[serde(rename = "result", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn ser_bytes<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
}

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(Vec::new()),
        Some(s) => base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom),
    }
}

/// Why a cache file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Not JSON.
    #[error("failed to parse cache file: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON document that is not a `cniCacheV1` record (libcni then treats it as a bare result).
    #[error("cache file is not a {CACHE_KIND_V1} record")]
    NotV1,
}

impl CacheRecord {
    /// A record without netns, args or result.
    pub fn new(container_id: &str, if_name: &str, network_name: &str, config: Vec<u8>) -> Self {
        Self {
            kind: CACHE_KIND_V1.to_owned(),
            container_id: container_id.to_owned(),
            config,
            if_name: if_name.to_owned(),
            network_name: network_name.to_owned(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: None,
        }
    }

    /// Reads a record; [`CacheError::NotV1`] for a JSON document of another kind.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CacheError> {
        let v: Value = serde_json::from_slice(bytes)?;
        if v.get("kind").and_then(Value::as_str) != Some(CACHE_KIND_V1) {
            return Err(CacheError::NotV1);
        }
        Ok(serde_json::from_value(v)?)
    }

    /// The bytes Go's `json.Marshal` writes for this record.
    pub fn to_go_json(&self) -> String {
        let mut rec = self.clone();
        let mut caps = Value::Object(std::mem::take(&mut rec.capability_args));
        crate::json::sort_keys(&mut caps);
        if let Value::Object(m) = caps {
            rec.capability_args = m;
        }
        if let Some(r) = rec.result.as_mut() {
            crate::json::sort_keys(r);
        }
        crate::json::to_go_json(&rec).expect("cache records always serialise")
    }
}
