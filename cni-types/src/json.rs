//! JSON printing helpers shared by the result and cache modules.

use serde::Serialize;

/// Serialises with four-space indentation (Go's `json.MarshalIndent(v, "", "    ")`).
pub(crate) fn to_string_indent4<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser).expect("JSON values always serialise");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Serialises like Go's `json.Marshal`: compact, with `<`, `>`, `&`, U+2028 and U+2029 escaped.
/// Fields keep their declared order; call [`sort_keys`] on values that Go holds in maps.
pub(crate) fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let s = serde_json::to_string(value)?;
    // These characters can only occur inside strings, so a textual replacement is exact.
    Ok(s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

/// Sorts object keys at every level, as Go does when it marshals a map.
pub(crate) fn sort_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}
