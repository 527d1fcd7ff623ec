//! Configuration lists (`.conflist`) and the legacy single-plugin `.conf` format.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{Semver, SpecVersion};

/// A network configuration list, as a runtime reads it from a `.conflist` file.
///
/// Plugin entries are kept as raw JSON objects: a runtime passes them on unchanged (adding
/// `name`, `cniVersion`, `prevResult`, `runtimeConfig`).
///
/// ```
/// use cni_types::NetworkConfigList;
/// let list = NetworkConfigList::from_slice(br#"{
///   "cniVersion": "1.0.0", "cniVersions": ["0.4.0", "1.1.0", "9.9.9"], "name": "dbnet",
///   "disableCheck": "true",
///   "plugins": [{"type": "bridge", "bridge": "cni0"}, {"type": "tuning"}]
/// }"#).unwrap();
/// assert_eq!(list.selected_version().unwrap(), "1.1.0"); // 9.9.9 is newer than we know
/// assert!(list.disable_check);
/// assert_eq!(list.plugin_type(1), Some("tuning"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfigList {
    /// `cniVersion`.
    #[serde(default)]
    pub cni_version: String,
    /// `cniVersions` (1.1.0): the runtime picks the highest version it supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_versions: Option<Vec<String>>,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Never call CHECK.
    #[serde(default, deserialize_with = "lenient_bool", skip_serializing_if = "is_false")]
    pub disable_check: bool,
    /// Never call GC.
    #[serde(rename = "disableGC", default, deserialize_with = "lenient_bool", skip_serializing_if = "is_false")]
    pub disable_gc: bool,
    /// Do not append plugin configurations from `<confdir>/<name>/`.
    #[serde(default, deserialize_with = "lenient_bool", skip_serializing_if = "is_false")]
    pub load_only_inlined_plugins: bool,
    /// The plugin configurations, in chain order.
    #[serde(default, deserialize_with = "plugins_or_empty", skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Map<String, Value>>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// libcni accepts a JSON bool or the strings `"true"`/`"false"` (any case).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(serde::de::Error::custom(format!("expected a boolean or \"true\"/\"false\", got {other}"))),
    }
}

fn plugins_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Map<String, Value>>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// Why a configuration (list) was rejected; messages follow libcni.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not JSON, or a key has the wrong type.
    #[error("error parsing configuration list: {0}")]
    Json(#[from] serde_json::Error),
    /// No `name`.
    #[error("error parsing configuration list: no name")]
    NoName,
    /// `plugins` is present but empty.
    #[error("error parsing configuration list: no plugins in list")]
    NoPlugins,
    /// A plugin entry without `type`.
    #[error("error parsing configuration list: missing 'type' in plugin {0}")]
    MissingType(usize),
    /// A single-plugin configuration without `type`.
    #[error("error parsing configuration: missing 'type'")]
    ConfMissingType,
    /// A bad entry in `cniVersion`/`cniVersions`.
    #[error("error parsing configuration list: invalid cniVersions entry {0:?}")]
    BadVersion(String),
}

impl NetworkConfigList {
    /// Parses and validates a `.conflist` document like libcni's `ConfListFromBytes`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: Map<String, Value> = serde_json::from_slice(bytes)?;
        let has_plugins_key = raw.get("plugins").is_some_and(|v| !v.is_null());
        if let Some(Value::Array(vs)) = raw.get("cniVersions")
            && let Some(bad) = vs.iter().find(|v| !v.is_string())
        {
            return Err(ConfigError::BadVersion(bad.to_string()));
        }
        let list: Self = serde_json::from_value(Value::Object(raw))?;
        if list.name.is_empty() {
            return Err(ConfigError::NoName);
        }
        if has_plugins_key && list.plugins.is_empty() {
            return Err(ConfigError::NoPlugins);
        }
        for (i, p) in list.plugins.iter().enumerate() {
            if p.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(ConfigError::MissingType(i));
            }
        }
        list.selected_version()?;
        Ok(list)
    }

    /// Wraps a legacy single-plugin configuration (`.conf`) as a list of one, like libcni's
    /// `ConfListFromConf`.
    pub fn from_single_conf(bytes: &[u8]) -> Result<Self, ConfigError> {
        let conf: Map<String, Value> = serde_json::from_slice(bytes)?;
        if conf.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ConfigError::ConfMissingType);
        }
        let text = |k: &str| conf.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let list = Self { cni_version: text("cniVersion"), name: text("name"), plugins: vec![conf], ..Self::default() };
        if list.name.is_empty() {
            return Err(ConfigError::NoName);
        }
        Ok(list)
    }

    /// The version the runtime uses for this list: without `cniVersions`, `cniVersion` as
    /// written; with it, the highest of `cniVersion` ∪ `cniVersions` that is not newer than
    /// 1.1.0 (newer entries are dropped, as libcni does).
    pub fn selected_version(&self) -> Result<String, ConfigError> {
        let Some(versions) = &self.cni_versions else {
            return Ok(self.cni_version.clone());
        };
        let mut best: Option<(Semver, &str)> = None;
        let latest = SpecVersion::LATEST.semver();
        for v in versions
            .iter()
            .map(String::as_str)
            .chain((!self.cni_version.is_empty()).then_some(self.cni_version.as_str()))
        {
            let parsed = Semver::parse(v).map_err(|_| ConfigError::BadVersion(v.to_owned()))?;
            if parsed > latest {
                continue;
            }
            if best.is_none_or(|(b, _)| parsed > b) {
                best = Some((parsed, v));
            }
        }
        Ok(best.map(|(_, v)| v.to_owned()).unwrap_or_default())
    }

    /// The `type` of plugin `i`.
    pub fn plugin_type(&self, i: usize) -> Option<&str> {
        self.plugins.get(i)?.get("type")?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libcni_errors() {
        let e = |s: &str| NetworkConfigList::from_slice(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            e(r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#),
            "error parsing configuration list: no name"
        );
        assert_eq!(e(r#"{"name":"n","plugins":[]}"#), "error parsing configuration list: no plugins in list");
        assert_eq!(
            e(r#"{"name":"n","plugins":[{"a":1}]}"#),
            "error parsing configuration list: missing 'type' in plugin 0"
        );
        assert!(e(r#"{"name":"n","disableCheck":"yes"}"#).contains("expected a boolean"));
        assert!(e(r#"{"name":"n","cniVersions":[1]}"#).contains("invalid cniVersions entry"));
        assert!(NetworkConfigList::from_slice(br#"{"name":"n"}"#).unwrap().plugins.is_empty());
    }

    #[test]
    fn version_selection() {
        let l = |s: &str| NetworkConfigList::from_slice(s.as_bytes()).unwrap().selected_version().unwrap();
        assert_eq!(l(r#"{"name":"n","cniVersion":"1.0"}"#), "1.0");
        assert_eq!(l(r#"{"name":"n","cniVersion":"0.4.0","cniVersions":["1.0.0","0.3.1"]}"#), "1.0.0");
        assert_eq!(l(r#"{"name":"n","cniVersion":"2.0.0","cniVersions":["1.1.0"]}"#), "1.1.0");
    }

    #[test]
    fn single_conf_up_conversion() {
        let l = NetworkConfigList::from_single_conf(br#"{"cniVersion":"0.2.0","name":"mynet","type":"bridge","x":1}"#)
            .unwrap();
        assert_eq!((l.name.as_str(), l.cni_version.as_str(), l.plugins.len()), ("mynet", "0.2.0", 1));
        assert_eq!(l.plugins[0]["x"], 1);
        assert!(NetworkConfigList::from_single_conf(br#"{"name":"n"}"#).is_err());
    }
}
