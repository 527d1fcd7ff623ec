//! `CNI_ARGS`: `K=V;K2=V2` pairs, parsed with the rules of Go's `types.LoadArgs`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::MacAddr;

/// The key/value pairs of `CNI_ARGS`, in order.
///
/// ```
/// use cni_types::CniArgs;
/// let args = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.200.0.9").unwrap();
/// assert_eq!(args.k8s_pod_name(), Some("web-0"));
/// assert_eq!(args.ip().unwrap().unwrap().to_string(), "10.200.0.9/32");
/// assert!(args.ignore_unknown().unwrap());
/// // Keys nobody declared are an error unless IgnoreUnknown is set, as in Go:
/// assert!(args.check_known(&["IP"]).is_ok());
/// assert!(CniArgs::parse("FOO=bar").unwrap().check_known(&["IP"]).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

/// Why `CNI_ARGS` could not be used; the messages are Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// A pair without exactly one `=`.
    #[error("ARGS: invalid pair {0:?}")]
    InvalidPair(String),
    /// Keys no consumer declared while `IgnoreUnknown` is not true.
    #[error("ARGS: unknown args {}", format_list(.0))]
    Unknown(Vec<String>),
    /// A value of a known key does not parse.
    #[error("ARGS: error parsing value of {key:?}: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
}

fn format_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `UnmarshallableBool`: `1`/`true` and `0`/`false`, any case.
fn parse_go_bool(key: &str, v: &str) -> Result<bool, ArgsError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(ArgsError::InvalidValue {
            key: key.to_owned(),
            reason: format!("boolean unmarshal error: invalid input {v}"),
        }),
    }
}

impl CniArgs {
    /// Parses `K=V;K2=V2`. The empty string has no pairs; every pair must split on `=` into
    /// exactly two parts (so `K=V=W` and a trailing `;` are errors, as in Go).
    pub fn parse(s: &str) -> Result<Self, ArgsError> {
        if s.is_empty() {
            return Ok(Self::default());
        }
        let mut pairs = Vec::new();
        for pair in s.split(';') {
            let mut kv = pair.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) => pairs.push((k.to_owned(), v.to_owned())),
                _ => return Err(ArgsError::InvalidPair(pair.to_owned())),
            }
        }
        Ok(Self { pairs })
    }

    /// Builds from pairs (runtime side).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { pairs: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Formats back to `K=V;K2=V2`.
    pub fn to_env_string(&self) -> String {
        self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The value of `key` (case-sensitive, like Go's field names); the last one wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `IgnoreUnknown` (absent = false).
    pub fn ignore_unknown(&self) -> Result<bool, ArgsError> {
        self.get("IgnoreUnknown").map_or(Ok(false), |v| parse_go_bool("IgnoreUnknown", v))
    }

    /// Fails like Go's `LoadArgs` when keys other than `known` (and `IgnoreUnknown`) are present
    /// and `IgnoreUnknown` is not true.
    pub fn check_known(&self, known: &[&str]) -> Result<(), ArgsError> {
        let ignore = self.ignore_unknown()?;
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if unknown.is_empty() || ignore { Ok(()) } else { Err(ArgsError::Unknown(unknown)) }
    }

    /// `IP`: a requested address, `ip` or `ip/prefix` (a bare address gets a host prefix).
    pub fn ip(&self) -> Option<Result<IpNet, ArgsError>> {
        self.get("IP").map(|v| parse_ip_or_net(v).ok_or_else(|| invalid("IP", v, "not an IP address")))
    }

    /// `MAC`: a requested hardware address.
    pub fn mac(&self) -> Option<Result<MacAddr, ArgsError>> {
        self.get("MAC").map(|v| v.parse().map_err(|e: crate::mac::MacParseError| invalid("MAC", v, &e.to_string())))
    }

    /// `K8S_POD_NAMESPACE`.
    pub fn k8s_pod_namespace(&self) -> Option<&str> {
        self.get("K8S_POD_NAMESPACE")
    }

    /// `K8S_POD_NAME`.
    pub fn k8s_pod_name(&self) -> Option<&str> {
        self.get("K8S_POD_NAME")
    }

    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub fn k8s_pod_infra_container_id(&self) -> Option<&str> {
        self.get("K8S_POD_INFRA_CONTAINER_ID")
    }

    /// `K8S_POD_UID` (sent by containerd).
    pub fn k8s_pod_uid(&self) -> Option<&str> {
        self.get("K8S_POD_UID")
    }
}

fn invalid(key: &str, value: &str, why: &str) -> ArgsError {
    ArgsError::InvalidValue { key: key.to_owned(), reason: format!("{value:?}: {why}") }
}

/// Parses `ip` or `ip/prefix`; a bare address gets a full-length prefix.
pub(crate) fn parse_ip_or_net(s: &str) -> Option<IpNet> {
    if s.contains('/') { s.parse().ok() } else { s.parse::<IpAddr>().ok().map(IpNet::from) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_errors() {
        assert_eq!(CniArgs::parse("A=1;").unwrap_err().to_string(), "ARGS: invalid pair \"\"");
        assert_eq!(CniArgs::parse("A=1=2").unwrap_err().to_string(), "ARGS: invalid pair \"A=1=2\"");
        assert_eq!(CniArgs::parse("A").unwrap_err(), ArgsError::InvalidPair("A".into()));
        let e = CniArgs::parse("A=1;B=2").unwrap().check_known(&[]).unwrap_err();
        assert_eq!(e.to_string(), "ARGS: unknown args [\"A=1\" \"B=2\"]");
        assert!(CniArgs::parse("IgnoreUnknown=TRUE;A=1").unwrap().check_known(&[]).is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=yes").unwrap().ignore_unknown().is_err());
        assert!(CniArgs::parse("IgnoreUnknown=0;A=1").unwrap().check_known(&[]).is_err());
    }

    #[test]
    fn typed_accessors() {
        let a = CniArgs::parse("IP=10.200.1.2/24;MAC=C2:11:22:33:44:55").unwrap();
        assert_eq!(a.ip().unwrap().unwrap().to_string(), "10.200.1.2/24");
        assert_eq!(a.mac().unwrap().unwrap().to_string(), "c2:11:22:33:44:55");
        assert!(CniArgs::parse("IP=nope").unwrap().ip().unwrap().is_err());
        assert_eq!(a.to_env_string(), "IP=10.200.1.2/24;MAC=C2:11:22:33:44:55");
        assert_eq!(CniArgs::parse("").unwrap().pairs().len(), 0);
    }
}
