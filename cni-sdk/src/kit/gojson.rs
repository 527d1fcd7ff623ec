//! Go `encoding/json` key matching for a plugin's own configuration keys.
//!
//! Go decodes a configuration into a struct: a key matches a field exactly or, failing that,
//! case-insensitively (`"MASTER"`, `"Mode"` and `"MTU"` all reach macvlan's fields), a later
//! key overrides an earlier one, and `null` leaves a field as it was. serde matches exactly and
//! rejects `null` for a plain field; [`go_keys`] bridges the two so a drop-in accepts what Go
//! accepts.

use std::ops::{Deref, DerefMut};

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use cni_types::config::go_key_eq;

/// A plugin's own keys decoded with Go's rules ([`go_keys`]): use `GoJson<MyKeys>` as
/// [`Plugin::Config`](crate::Plugin::Config), where `MyKeys` derives `Deserialize` (usually
/// with `#[serde(rename_all = "camelCase", default)]`). Derefs to the keys.
///
/// ```
/// use cni_sdk::kit::GoJson;
/// use serde::Deserialize;
///
/// #[derive(Debug, Default, Deserialize)]
/// #[serde(rename_all = "camelCase", default)]
/// struct Keys {
///     master: String,
///     vlan_id: i64,
/// }
///
/// let c: GoJson<Keys> = serde_json::from_str(r#"{"Master": "eth1", "VLANID": 42}"#).unwrap();
/// assert_eq!((c.master.as_str(), c.vlan_id), ("eth1", 42));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct GoJson<T>(pub T);

impl<T> Deref for GoJson<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for GoJson<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for GoJson<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::deserialize(d)?;
        go_keys(map).map(GoJson).map_err(de::Error::custom)
    }
}

/// Decodes `T` (a struct deriving `Deserialize`, usually with `#[serde(default)]`) from an
/// object with Go's matching rules: each key is given to the field whose serde name it equals,
/// else to one it equals ignoring letter case (ASCII, plus the Kelvin sign for `k` and the long
/// s for `s`, as Go folds them); keys are taken in document order so a later spelling wins;
/// `null` values are skipped (the field keeps its default); unknown keys are ignored.
///
/// `T`'s field names are read from its `Deserialize` impl, so they are written once, in the
/// struct. Type errors are serde's (`invalid type: string "x", expected i64`).
///
/// [`GoJson`] wraps this for a plugin's `Config`; by hand, from a `Deserialize` impl (the
/// dispatcher hands the plugin's keys over as a map):
///
/// ```
/// use serde::{Deserialize, Deserializer};
///
/// #[derive(Debug, Default, Deserialize)]
/// #[serde(rename_all = "camelCase", default)]
/// struct Keys {
///     master: String,
///     mtu: i64,
///     link_in_container: bool,
/// }
///
/// #[derive(Debug)]
/// struct Conf(Keys);
///
/// impl<'de> Deserialize<'de> for Conf {
///     fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
///         let map = serde_json::Map::deserialize(d)?;
///         cni_sdk::kit::go_keys(map).map(Conf).map_err(serde::de::Error::custom)
///     }
/// }
///
/// let c: Conf = serde_json::from_str(r#"{"MASTER": "eth1", "Mtu": 1400, "mtu": 1300, "LINKINCONTAINER": null}"#).unwrap();
/// assert_eq!((c.0.master.as_str(), c.0.mtu, c.0.link_in_container), ("eth1", 1300, false));
/// ```
pub fn go_keys<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, serde_json::Error> {
    let fields = struct_fields::<T>();
    let mut out = Map::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let field = fields
            .iter()
            .find(|f| **f == key)
            .or_else(|| fields.iter().find(|f| go_key_eq(f, &key)))
            .copied()
            .unwrap_or(key.as_str());
        if fields.contains(&field) {
            out.insert(field.to_owned(), value);
        }
    }
    T::deserialize(Value::Object(out))
}

/// The serde field names of the struct `T` (empty when `T` is not a plain struct), read by
/// running its `Deserialize` impl on a deserializer that only records them.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_msg: M) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", default)]
    struct Keys {
        master: String,
        vlan_id: i64,
        mac: Option<String>,
    }

    fn keys(v: Value) -> Result<Keys, serde_json::Error> {
        go_keys(v.as_object().unwrap().clone())
    }

    #[test]
    fn exact_then_case_insensitive_matches() {
        let k = keys(json!({"MASTER": "eth1", "VLANID": 7, "Mac": "x"})).unwrap();
        assert_eq!(k, Keys { master: "eth1".into(), vlan_id: 7, mac: Some("x".into()) });
        // A later spelling overrides an earlier one, whichever is exact.
        assert_eq!(keys(json!({"vlanId": 1, "VlanID": 2})).unwrap().vlan_id, 2);
        assert_eq!(keys(json!({"VlanID": 2, "vlanId": 1})).unwrap().vlan_id, 1);
        // Go's special folds.
        assert_eq!(keys(json!({"ma\u{017F}ter": "e"})).unwrap().master, "e");
    }

    #[test]
    fn null_keeps_the_default_and_unknown_keys_are_ignored() {
        let k = keys(json!({"master": null, "mac": null, "other": 1, "type": "macvlan"})).unwrap();
        assert_eq!(k, Keys::default());
    }

    #[test]
    fn type_errors_are_reported() {
        let e = keys(json!({"vlanId": "7"})).unwrap_err();
        assert!(e.to_string().contains("invalid type: string \"7\""), "{e}");
    }

    #[test]
    fn field_names_come_from_the_struct() {
        assert_eq!(struct_fields::<Keys>(), ["master", "vlanId", "mac"]);
        assert!(struct_fields::<Value>().is_empty());
    }
}
