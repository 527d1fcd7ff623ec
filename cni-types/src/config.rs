//! The network configuration a plugin receives on stdin.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{Attachment, CniResult, Dns, MacAddr, ResultError, SpecVersion, VersionError};

/// A plugin's network configuration, with the plugin's own keys typed as `T`.
///
/// The well-known keys are fields. The plugin's own keys are deserialised into `T` (flattened:
/// declare a struct with the keys you read, `#[serde(rename_all = "camelCase")]` as usual), and
/// every key that neither this struct nor `T` knows is kept in [`NetworkConfig::extra`], so a
/// configuration survives a round trip unchanged. `T = ()` means "no own keys".
///
/// `T` must not declare the well-known keys (`name`, `type`, `ipam`, …) and should not use
/// `#[serde(deny_unknown_fields)]` or a flattened map of its own.
///
/// ```
/// use cni_types::NetworkConfig;
/// #[derive(serde::Deserialize, serde::Serialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Bridge { bridge: Option<String>, is_gateway: Option<bool> }
///
/// let conf: NetworkConfig<Bridge> = serde_json::from_str(r#"{
///     "cniVersion": "1.0.0", "name": "mynet", "type": "bridge",
///     "bridge": "cni0", "isGateway": true, "somethingElse": [1, 2],
///     "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}
/// }"#).unwrap();
/// assert_eq!(conf.plugin.bridge.as_deref(), Some("cni0"));
/// assert_eq!(conf.ipam.as_ref().unwrap().plugin_type, "host-local");
/// assert_eq!(conf.extra["somethingElse"], serde_json::json!([1, 2]));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned"))]
pub struct NetworkConfig<T = ()> {
    /// `cniVersion` as written (may be any string; see [`NetworkConfig::spec_version`]).
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Plugin type (the binary name).
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Capabilities the plugin declares (libcni leaves them in; plugins must tolerate them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<BTreeMap<String, bool>>,
    /// IPAM section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamConfig>,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Runtime-provided `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<ConfigArgs>,
    /// Capability values injected by the runtime.
    #[serde(rename = "runtimeConfig", default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    /// The previous plugin's result, raw until parsed with [`NetworkConfig::parse_prev_result`].
    #[serde(rename = "prevResult", default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// GC: attachments that are still valid.
    #[serde(rename = "cni.dev/valid-attachments", default, skip_serializing_if = "Option::is_none")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// GC: the same list under the key of the 1.1.0 tag text (libcni sends both).
    #[serde(rename = "cni.dev/attachments", default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    /// The plugin's own keys.
    #[serde(flatten)]
    pub plugin: T,
    /// Every other key, kept as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<T> NetworkConfig<T> {
    /// The configuration's version as a published spec version (`""` is 0.1.0; anything else
    /// must match one of the seven exactly).
    pub fn spec_version(&self) -> Result<SpecVersion, VersionError> {
        SpecVersion::from_document(&self.cni_version)
    }

    /// Parses `prevResult` (Go's rules: missing `cniVersion` means the configuration's version,
    /// and the version must be of the configuration's result family).
    pub fn parse_prev_result(&self) -> Result<Option<CniResult>, ResultError> {
        let Some(prev) = &self.prev_result else {
            return Ok(None);
        };
        let version = self.spec_version()?;
        CniResult::parse_prev_result(prev, version).map(Some)
    }

    /// The GC attachment list: `cni.dev/valid-attachments`, else the legacy `cni.dev/attachments`.
    pub fn gc_attachments(&self) -> Option<&[Attachment]> {
        self.valid_attachments.as_deref().or(self.attachments.as_deref())
    }

    /// Whether the plugin declared `capability` as enabled.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.as_ref().and_then(|c| c.get(capability)).copied().unwrap_or(false)
    }
}

/// The `ipam` section: the IPAM plugin's `type` and its own keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// IPAM plugin type (binary name).
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Every other key of the section.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `args` section of a configuration (set by runtimes, see CONVENTIONS.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigArgs {
    /// `args.cni`: the keys CONVENTIONS.md defines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniConventionArgs>,
    /// Other namespaces of arguments.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `args.cni`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CniConventionArgs {
    /// Requested addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<IpRequest>>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `{"key", "value"}` label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A requested address, `ip` or `ip/prefix` (`runtimeConfig.ips`, `args.cni.ips`, `CNI_ARGS` `IP`).
///
/// ```
/// use cni_types::IpRequest;
/// let r: IpRequest = "10.200.0.9/24".parse().unwrap();
/// assert_eq!(r.prefix, Some(24));
/// assert_eq!(r.to_string(), "10.200.0.9/24");
/// assert_eq!("fd00:200::9".parse::<IpRequest>().unwrap().prefix, None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRequest {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length, if one was given.
    pub prefix: Option<u8>,
}

impl IpRequest {
    /// As a network; without a prefix, a host prefix (/32, /128).
    pub fn to_net(&self) -> IpNet {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        IpNet::new(self.addr, self.prefix.unwrap_or(max)).expect("prefix validated on parse")
    }
}

/// The error for a malformed [`IpRequest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP address {0:?}")]
pub struct IpRequestError(String);

impl FromStr for IpRequest {
    type Err = IpRequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('/') {
            let net: IpNet = s.parse().map_err(|_| IpRequestError(s.to_owned()))?;
            Ok(Self { addr: net.addr(), prefix: Some(net.prefix_len()) })
        } else {
            let addr = s.parse().map_err(|_| IpRequestError(s.to_owned()))?;
            Ok(Self { addr, prefix: None })
        }
    }
}

impl fmt::Display for IpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{}", self.addr, p),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl Serialize for IpRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `runtimeConfig`: capability values the runtime injected (CONVENTIONS.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// `portMappings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// `ipRanges`: range sets, prepended to a host-local configuration's ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_ranges: Option<Vec<Vec<IpRange>>>,
    /// `bandwidth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// `dns` (note the key names differ from a result's `dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<RuntimeDns>,
    /// `ips`: requested addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<IpRequest>>,
    /// `mac`: requested MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// `infinibandGUID`.
    #[serde(rename = "infinibandGUID", default, skip_serializing_if = "Option::is_none")]
    pub infiniband_guid: Option<String>,
    /// `deviceID` (a PCI address, for example).
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `aliases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// `cgroupPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_path: Option<String>,
    /// Every other capability, kept as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One port mapping (`portMappings` capability).
///
/// Keys match as Go's `encoding/json` matches them: exactly or, failing that, case-insensitively,
/// so the `{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}` that
/// containerd's go-cni sends (its struct has no JSON tags) reads like the conventional keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "GoObject")]
pub struct PortMapping {
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Host address to bind, if any.
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// One address range (`ipRanges` capability, host-local `ranges`).
///
/// Keys match case-insensitively as in Go (go-cni sends `Subnet`, `RangeStart`, ...), and an
/// empty string for an address leaves it unset, as Go's `net.IP` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "GoObject")]
pub struct IpRange {
    /// The subnet.
    pub subnet: IpNet,
    /// First address to hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    /// Last address to hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// The `bandwidth` capability, in bits per second and bits. Keys match case-insensitively as
/// in Go (go-cni sends `IngressRate`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "GoObject")]
pub struct Bandwidth {
    /// Ingress rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_rate: Option<u64>,
    /// Ingress burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_burst: Option<u64>,
    /// Egress rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_rate: Option<u64>,
    /// Egress burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_burst: Option<u64>,
}

/// The `dns` capability. Keys match case-insensitively as in Go (go-cni sends `Servers`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GoObject")]
pub struct RuntimeDns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    /// Options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A JSON object as Go's `encoding/json` would decode it into a struct: the input of the
/// capability structs' `try_from`.
#[derive(Deserialize)]
#[serde(transparent)]
struct GoObject(Map<String, Value>);

impl GoObject {
    /// Renames keys that match one of `fields` only case-insensitively to that field (Go looks
    /// for an exact field first, then a folded one, and a later key overwrites an earlier one),
    /// drops `null` values (Go leaves the field as it was) and, for the fields in
    /// `empty_is_unset`, empty strings (Go's `net.IP` reads `""` as no address).
    fn fold(self, fields: &[&str], empty_is_unset: &[&str]) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in self.0 {
            let field = fields
                .iter()
                .find(|f| **f == key)
                .or_else(|| fields.iter().find(|f| go_key_eq(f, &key)))
                .map_or(key, |f| (*f).to_owned());
            if value.is_null() {
                continue;
            }
            if empty_is_unset.contains(&field.as_str()) && value.as_str() == Some("") {
                out.remove(&field);
                continue;
            }
            out.insert(field, value);
        }
        out
    }
}

/// Whether a JSON object key selects a struct field of the given (ASCII) name the way Go's
/// `encoding/json` matches it after no exact match: `bytes.EqualFold`, i.e. ASCII letters in
/// either case plus the two non-ASCII letters that fold onto ASCII ones (`K` KELVIN SIGN = `k`,
/// `ſ` LATIN SMALL LETTER LONG S = `s`).
///
/// ```
/// use cni_types::config::go_key_eq;
/// assert!(go_key_eq("hostPort", "HostPort"));
/// assert!(go_key_eq("key", "\u{212A}EY"));
/// assert!(!go_key_eq("mtu", "mtus"));
/// ```
pub fn go_key_eq(field: &str, key: &str) -> bool {
    let norm = |c: char| match c {
        '\u{212A}' => 'k',
        '\u{017F}' => 's',
        c => c.to_ascii_lowercase(),
    };
    field.chars().map(norm).eq(key.chars().map(norm))
}

macro_rules! go_keys {
    ($ty:ident, $exact:ident { $($field:ident : $fty:ty = $key:literal $(, $attr:meta)?;)* }, empty_is_unset: [$($empty:literal),*]) => {
        #[derive(Deserialize)]
        struct $exact {
            $( $(#[$attr])? #[serde(rename = $key)] $field: $fty, )*
        }
        impl TryFrom<GoObject> for $ty {
            type Error = serde_json::Error;
            fn try_from(obj: GoObject) -> Result<Self, Self::Error> {
                let map = obj.fold(&[$($key),*], &[$($empty),*]);
                let e: $exact = serde_json::from_value(Value::Object(map))?;
                Ok(Self { $($field: e.$field),* })
            }
        }
    };
}

go_keys!(PortMapping, PortMappingExact {
    host_port: u16 = "hostPort";
    container_port: u16 = "containerPort";
    protocol: String = "protocol", serde(default);
    host_ip: Option<String> = "hostIP", serde(default);
}, empty_is_unset: []);

go_keys!(IpRange, IpRangeExact {
    subnet: IpNet = "subnet";
    range_start: Option<IpAddr> = "rangeStart", serde(default);
    range_end: Option<IpAddr> = "rangeEnd", serde(default);
    gateway: Option<IpAddr> = "gateway", serde(default);
}, empty_is_unset: ["rangeStart", "rangeEnd", "gateway"]);

go_keys!(Bandwidth, BandwidthExact {
    ingress_rate: Option<u64> = "ingressRate", serde(default);
    ingress_burst: Option<u64> = "ingressBurst", serde(default);
    egress_rate: Option<u64> = "egressRate", serde(default);
    egress_burst: Option<u64> = "egressBurst", serde(default);
}, empty_is_unset: []);

go_keys!(RuntimeDns, RuntimeDnsExact {
    servers: Vec<String> = "servers", serde(default);
    searches: Vec<String> = "searches", serde(default);
    options: Vec<String> = "options", serde(default);
}, empty_is_unset: []);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capabilities_from_go_cni_match_keys_as_go_does() {
        // What containerd's go-cni sends: Go field names, empty strings for unset fields.
        let rc: RuntimeConfig = serde_json::from_value(json!({
            "portMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}],
            "ipRanges": [[{"Subnet": "10.250.0.0/24", "RangeStart": "", "RangeEnd": "10.250.0.9", "Gateway": ""}]],
            "bandwidth": {"IngressRate": 1000, "IngressBurst": 0, "EgressRate": 2000, "EgressBurst": 0},
            "dns": {"Servers": ["10.250.0.1"], "Searches": [], "Options": null}
        }))
        .unwrap();
        let pm = &rc.port_mappings.as_ref().unwrap()[0];
        assert_eq!((pm.host_port, pm.container_port, pm.protocol.as_str()), (8080, 80, "tcp"));
        assert_eq!(pm.host_ip.as_deref(), Some(""));
        let r = &rc.ip_ranges.as_ref().unwrap()[0][0];
        assert_eq!(r.subnet.to_string(), "10.250.0.0/24");
        assert_eq!((r.range_start, r.gateway), (None, None));
        assert_eq!(r.range_end, Some("10.250.0.9".parse().unwrap()));
        let bw = rc.bandwidth.as_ref().unwrap();
        assert_eq!((bw.ingress_rate, bw.egress_rate, bw.egress_burst), (Some(1000), Some(2000), Some(0)));
        assert_eq!(rc.dns.as_ref().unwrap().servers, vec!["10.250.0.1"]);
        // As in Go, a later key overwrites an earlier one, whichever spelling; conventional keys
        // round-trip.
        let pm: PortMapping =
            serde_json::from_value(json!({"hostPort": 1, "HOSTPORT": 2, "containerPort": 3})).unwrap();
        assert_eq!(pm.host_port, 2);
        let pm: PortMapping =
            serde_json::from_value(json!({"HOSTPORT": 2, "hostPort": 1, "containerPort": 3})).unwrap();
        assert_eq!(pm.host_port, 1);
        let back: PortMapping = serde_json::from_value(serde_json::to_value(&pm).unwrap()).unwrap();
        assert_eq!(back, pm);
        // Type errors stay errors.
        assert!(serde_json::from_value::<PortMapping>(json!({"HostPort": "x", "ContainerPort": 1})).is_err());
        assert!(serde_json::from_value::<IpRange>(json!({"Subnet": ""})).is_err());
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Own {
        bridge: Option<String>,
        #[serde(default)]
        is_gateway: bool,
    }

    #[test]
    fn unknown_keys_survive_with_typed_part() {
        let input = json!({
            "cniVersion": "1.1.0", "name": "n", "type": "bridge", "bridge": "br0", "isGateway": true,
            "zzz": {"deep": [1, 2.5, null]}, "runtimeConfig": {"mac": "C2:11:22:33:44:55", "custom": 1},
            "args": {"cni": {"ips": ["10.200.0.2/24"], "other": true}, "k8s": {}},
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.200.0.0/24"}]]}
        });
        let conf: NetworkConfig<Own> = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(conf.plugin, Own { bridge: Some("br0".into()), is_gateway: true });
        assert!(!conf.extra.contains_key("bridge"), "typed keys are not duplicated");
        assert_eq!(conf.runtime_config.as_ref().unwrap().mac.unwrap().to_string(), "c2:11:22:33:44:55");
        let mut back = serde_json::to_value(&conf).unwrap();
        // MACs are normalised to lower case; everything else is unchanged.
        back["runtimeConfig"]["mac"] = json!("C2:11:22:33:44:55");
        assert_eq!(back, input);
    }

    #[test]
    fn unit_config_keeps_everything() {
        let input = json!({"cniVersion": "0.4.0", "name": "n", "type": "x", "a": 1, "b": [true]});
        let conf: NetworkConfig = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(serde_json::to_value(&conf).unwrap(), input);
    }

    #[test]
    fn prev_result_families() {
        let mut conf: NetworkConfig = serde_json::from_value(json!({
            "cniVersion": "1.1.0", "name": "n", "type": "x",
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.200.0.2/24"}]}
        }))
        .unwrap();
        assert_eq!(conf.parse_prev_result().unwrap().unwrap().ips.len(), 1);
        conf.prev_result = Some(json!({"ips": [{"address": "10.200.0.2/24"}]}));
        assert!(conf.parse_prev_result().unwrap().is_some(), "missing version = config version");
        conf.prev_result = Some(json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.200.0.2/24"}]}));
        assert_eq!(
            conf.parse_prev_result().unwrap_err().to_string(),
            "could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is \"0.4.0\""
        );
    }

    #[test]
    fn gc_attachments_fallback() {
        let conf: NetworkConfig = serde_json::from_value(json!({
            "cniVersion": "1.1.0", "name": "n", "type": "x",
            "cni.dev/attachments": [{"containerID": "c1", "ifname": "eth0"}]
        }))
        .unwrap();
        assert_eq!(conf.gc_attachments().unwrap()[0].container_id, "c1");
    }
}
