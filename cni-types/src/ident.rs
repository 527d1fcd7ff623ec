//! Identifier validation with the exact rules and messages of Go's `pkg/utils`.
//!
//! ```
//! use cni_types::ident;
//! assert!(ident::validate_container_id("A.b_c-d").is_ok());
//! assert_eq!(ident::validate_interface_name("eth0:1").unwrap_err().code.as_u32(), 4);
//! assert_eq!(ident::validate_network_name("my net").unwrap_err().code.as_u32(), 7);
//! ```

use crate::{CniError, ErrorCode};

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, ASCII only.
fn matches_id_regex(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Validates a container ID: empty → code 3 `missing containerID`; otherwise the ID regex or
/// code 4 `invalid characters in containerID` with the ID as details.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(ErrorCode::UnknownContainer, "missing containerID"));
    }
    if !matches_id_regex(id) {
        return Err(
            CniError::new(ErrorCode::InvalidEnvironmentVariables, "invalid characters in containerID").with_details(id)
        );
    }
    Ok(())
}

/// Validates a network name: empty → code 7 `missing network name`; otherwise the ID regex or
/// code 7 `invalid characters found in network name` with the name as details.
pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::new(ErrorCode::InvalidNetworkConfig, "missing network name"));
    }
    if !matches_id_regex(name) {
        return Err(CniError::new(ErrorCode::InvalidNetworkConfig, "invalid characters found in network name")
            .with_details(name));
    }
    Ok(())
}

/// Validates an interface name (code 4): non-empty, at most 15 **bytes**, not `.` or `..`, and no
/// `/`, `:` or Unicode whitespace.
pub fn validate_interface_name(name: &str) -> Result<(), CniError> {
    let e = |msg: &str| CniError::new(ErrorCode::InvalidEnvironmentVariables, msg);
    if name.is_empty() {
        return Err(e("interface name is empty"));
    }
    if name.len() > 15 {
        return Err(e("interface name is too long").with_details("interface name should be less than 16 characters"));
    }
    if name == "." || name == ".." {
        return Err(e("interface name is . or .."));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(e("interface name contains / or : or whitespace characters"));
    }
    Ok(())
}

/// Validates a plugin `type` the way the runtime looks it up: non-empty and without a path
/// separator (`no plugin name provided`, `invalid plugin name: <t>`).
pub fn validate_plugin_type(plugin_type: &str) -> Result<(), CniError> {
    if plugin_type.is_empty() {
        return Err(CniError::new(ErrorCode::InvalidNetworkConfig, "no plugin name provided"));
    }
    if plugin_type.contains('/') || plugin_type.contains('\\') {
        return Err(CniError::new(ErrorCode::InvalidNetworkConfig, format!("invalid plugin name: {plugin_type}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        assert!(validate_container_id("A.b_c-d").is_ok());
        for bad in ["_abc", "a b", "αβγ", "abc/def", ".x"] {
            let e = validate_container_id(bad).unwrap_err();
            assert_eq!(
                (e.code.as_u32(), e.msg.as_str(), e.details.as_deref()),
                (4, "invalid characters in containerID", Some(bad))
            );
        }
        assert_eq!(validate_container_id("").unwrap_err().code.as_u32(), 3);
    }

    #[test]
    fn interface_names() {
        assert!(validate_interface_name("é1234567").is_ok());
        assert!(validate_interface_name("123456789012345").is_ok());
        assert_eq!(validate_interface_name("1234567890123456").unwrap_err().msg, "interface name is too long");
        assert_eq!(validate_interface_name("..").unwrap_err().msg, "interface name is . or ..");
        for bad in ["eth0:1", "a/b", "a b", "a\u{2003}b"] {
            assert_eq!(
                validate_interface_name(bad).unwrap_err().msg,
                "interface name contains / or : or whitespace characters"
            );
        }
        assert_eq!(validate_interface_name("").unwrap_err().msg, "interface name is empty");
    }

    #[test]
    fn network_names() {
        assert_eq!(validate_network_name("").unwrap_err().msg, "missing network name");
        assert_eq!(validate_network_name("a:b").unwrap_err().details.as_deref(), Some("a:b"));
        assert!(validate_network_name("mynet").is_ok());
    }
}
