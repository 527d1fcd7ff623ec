//! The parts of Go's `encoding/json` that decide whether Go's tuning accepts a configuration
//! and how it reports a bad one, so this plugin accepts the same documents and prints the same
//! errors:
//!
//! * object keys match a struct field exactly or, failing that, case-insensitively (`"MTU"`
//!   sets `mtu`); a key that appears twice is decoded twice (the last scalar wins, maps and
//!   structs are decoded into the existing value, so their entries merge);
//! * `null` leaves a scalar or a struct alone and resets a pointer or a map;
//! * a value of the wrong type is `json: cannot unmarshal <what> into Go struct field
//!   <Struct>.<path> of type <type>`, where `<what>` is the JSON kind (`number 1.5` for a
//!   number an integer field cannot hold); the first such error in document order is reported.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object in document order, duplicates included, values still raw.
#[derive(Debug)]
pub(crate) struct Members<'a>(pub(crate) Vec<(String, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The members of the object `raw` (an error for anything but an object).
    pub(crate) fn of(raw: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Go's key matching ([`cni_sdk::kit::go_key_eq`]), key first.
pub(crate) fn fold_eq(key: &str, field: &str) -> bool {
    cni_sdk::kit::go_key_eq(field, key)
}

/// The JSON kind of a raw value, as Go names it in a type error.
pub(crate) fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "bool",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// Go's `*json.UnmarshalTypeError` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeError {
    /// `string`, `number`, `number 1.5`, ...
    pub(crate) value: String,
    /// `TuningConf.mtu`, `IPAMArgs.args.cni.mtu`, `.runtimeConfig.mac`, ...
    pub(crate) field: String,
    /// The Go type: `int`, `bool`, `map[string]string`, ...
    pub(crate) ty: String,
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "json: cannot unmarshal {} into Go struct field {} of type {}", self.value, self.field, self.ty)
    }
}

impl std::error::Error for TypeError {}

fn mismatch(raw: &RawValue, field: &str, ty: &str) -> TypeError {
    TypeError { value: kind(raw).to_owned(), field: field.to_owned(), ty: ty.to_owned() }
}

/// Whether `raw` is `null`.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// A Go `string` field: `None` for `null` (the field keeps its value).
pub(crate) fn string(raw: &RawValue, field: &str) -> Result<Option<String>, TypeError> {
    match kind(raw) {
        "null" => Ok(None),
        "string" => serde_json::from_str(raw.get()).map(Some).map_err(|_| mismatch(raw, field, "string")),
        _ => Err(mismatch(raw, field, "string")),
    }
}

/// A Go `bool` field: `None` for `null`.
pub(crate) fn boolean(raw: &RawValue, field: &str) -> Result<Option<bool>, TypeError> {
    match raw.get() {
        "null" => Ok(None),
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(mismatch(raw, field, "bool")),
    }
}

/// A Go `int` field (64 bits): the literal must be an integer in range (`1e3` and `1.0` are
/// not, as for Go's `strconv.ParseInt`); `None` for `null`.
pub(crate) fn int(raw: &RawValue, field: &str) -> Result<Option<i64>, TypeError> {
    match kind(raw) {
        "null" => Ok(None),
        "number" => raw.get().parse::<i64>().map(Some).map_err(|_| TypeError {
            value: format!("number {}", raw.get()),
            field: field.to_owned(),
            ty: "int".to_owned(),
        }),
        _ => Err(mismatch(raw, field, "int")),
    }
}

/// A Go `map[string]string` field decoded into `map` (kept in document order): `null` resets
/// it to `None`, an object adds its members (replacing equal keys; `null` values become `""`).
pub(crate) fn string_map(
    raw: &RawValue,
    field: &str,
    map: &mut Option<Vec<(String, String)>>,
) -> Result<(), TypeError> {
    match kind(raw) {
        "null" => {
            *map = None;
            Ok(())
        }
        "object" => {
            let members = Members::of(raw.get()).map_err(|_| mismatch(raw, field, "map[string]string"))?;
            let map = map.get_or_insert_with(Vec::new);
            for (k, v) in members.0 {
                let v = string(v, field)?.unwrap_or_default();
                insert(map, k, v);
            }
            Ok(())
        }
        _ => Err(mismatch(raw, field, "map[string]string")),
    }
}

/// Sets `key` in an ordered map: replaces the value in place, or appends.
pub(crate) fn insert(map: &mut Vec<(String, String)>, key: String, value: String) {
    match map.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => map.push((key, value)),
    }
}

/// The members of an object field (`None` for `null`); anything else is a type error naming
/// `ty`.
pub(crate) fn object<'a>(raw: &'a RawValue, field: &str, ty: &str) -> Result<Option<Members<'a>>, TypeError> {
    match kind(raw) {
        "null" => Ok(None),
        "object" => Members::of(raw.get()).map(Some).map_err(|_| mismatch(raw, field, ty)),
        _ => Err(mismatch(raw, field, ty)),
    }
}

/// The members of the whole configuration document.
pub(crate) fn document(raw: &[u8]) -> Result<Members<'_>, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8 in the configuration: {e}"))?;
    Members::of(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn members_keep_order_and_duplicates() {
        let m = Members::of(r#"{"b": 1, "a": {"x": [1]}, "b": "two"}"#).unwrap();
        let keys: Vec<_> = m.0.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        assert_eq!(keys, [("b", "1"), ("a", r#"{"x": [1]}"#), ("b", r#""two""#)]);
        assert!(Members::of("[1]").is_err());
    }

    #[test]
    fn keys_fold_like_go() {
        assert!(fold_eq("MTU", "mtu"));
        assert!(fold_eq("TxQlen", "txQLen"));
        assert!(fold_eq("\u{212A}ey", "key"));
        assert!(fold_eq("\u{017F}ysctl", "sysctl"));
        assert!(!fold_eq("mtu2", "mtu"));
    }

    #[test]
    fn scalars_and_their_type_errors() {
        assert_eq!(int(&raw("1500"), "T.mtu").unwrap(), Some(1500));
        assert_eq!(int(&raw("-1"), "T.mtu").unwrap(), Some(-1));
        assert_eq!(int(&raw("null"), "T.mtu").unwrap(), None);
        for (lit, what) in [("1.5", "number 1.5"), ("1e3", "number 1e3"), ("\"x\"", "string"), ("true", "bool")] {
            let e = int(&raw(lit), "TuningConf.mtu").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("json: cannot unmarshal {what} into Go struct field TuningConf.mtu of type int")
            );
        }
        let big = int(&raw("99999999999999999999"), "T.mtu").unwrap_err();
        assert_eq!(big.value, "number 99999999999999999999");
        assert_eq!(boolean(&raw("1"), "T.promisc").unwrap_err().value, "number");
        assert_eq!(string(&raw("\"a\\u0062\""), "T.mac").unwrap(), Some("ab".to_owned()));
        assert_eq!(string(&raw("{}"), "T.mac").unwrap_err().value, "object");
    }

    #[test]
    fn maps_merge_and_reset() {
        let mut m = None;
        string_map(&raw(r#"{"a": "1", "b": null}"#), "T.sysctl", &mut m).unwrap();
        string_map(&raw(r#"{"a": "2", "c": "3"}"#), "T.sysctl", &mut m).unwrap();
        assert_eq!(
            m.clone().unwrap(),
            [("a".into(), "2".into()), ("b".into(), String::new()), ("c".into(), "3".into())]
        );
        let e = string_map(&raw(r#"{"a": 1}"#), "TuningConf.sysctl", &mut m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "json: cannot unmarshal number into Go struct field TuningConf.sysctl of type string"
        );
        let e = string_map(&raw("[]"), "TuningConf.sysctl", &mut m).unwrap_err();
        assert_eq!(e.ty, "map[string]string");
        string_map(&raw("null"), "T.sysctl", &mut m).unwrap();
        assert_eq!(m, None);
    }
}
