//! The per-version wire forms of a result.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{CniResult, Dns, Interface, IpConfig, ResultError, Route};
use crate::{HardwareAddr, ResultFamily, SpecVersion};

pub(crate) fn none_or_zero(v: &Option<u32>) -> bool {
    matches!(v, None | Some(0))
}

pub(crate) fn none_or_empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An empty `mac` string (written by some plugins) reads as no address.
pub(crate) fn lenient_hwaddr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HardwareAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A route as 0.1.0 – 0.4.0 define it: `dst` and `gw` only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route0x {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// `ip4` / `ip6` of a 0.1.0/0.2.0 result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig020 {
    /// Address with prefix.
    pub ip: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Routes of this family.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub routes: Vec<Route0x>,
}

/// A 0.1.0 / 0.2.0 result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Result020 {
    /// `cniVersion`.
    #[serde(rename = "cniVersion")]
    pub cni_version: SpecVersion,
    /// The IPv4 configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip4: Option<IpConfig020>,
    /// The IPv6 configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<IpConfig020>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Dns::is_empty", deserialize_with = "null_as_default")]
    pub dns: Dns,
}

/// An interface of a 0.3.x / 0.4.0 result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface040 {
    /// Name.
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_hwaddr")]
    pub mac: Option<HardwareAddr>,
    /// Namespace path.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub sandbox: Option<String>,
}

/// An address of a 0.3.x / 0.4.0 result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig040 {
    /// `"4"` or `"6"`.
    #[serde(default)]
    pub version: String,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Address with prefix.
    pub address: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A 0.3.0 / 0.3.1 / 0.4.0 result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Result040 {
    /// `cniVersion`.
    #[serde(rename = "cniVersion")]
    pub cni_version: SpecVersion,
    /// Interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub interfaces: Vec<Interface040>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub ips: Vec<IpConfig040>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub routes: Vec<Route0x>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Dns::is_empty", deserialize_with = "null_as_default")]
    pub dns: Dns,
}

/// A 1.0.0 / 1.1.0 result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Result100 {
    /// `cniVersion`.
    #[serde(rename = "cniVersion")]
    pub cni_version: SpecVersion,
    /// Interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub interfaces: Vec<Interface>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub routes: Vec<Route>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Dns::is_empty", deserialize_with = "null_as_default")]
    pub dns: Dns,
}

/// A result in the wire form of its version.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireResult {
    /// 0.1.0 / 0.2.0.
    V02(Result020),
    /// 0.3.0 / 0.3.1 / 0.4.0.
    V04(Result040),
    /// 1.0.0 / 1.1.0.
    V1(Result100),
}

impl WireResult {
    /// Reads a result document; `default_version` applies when `cniVersion` is missing or empty.
    pub fn from_value(mut value: Value, default_version: &str) -> Result<Self, ResultError> {
        if value.is_null() {
            value = Value::Object(Default::default());
        }
        let Some(obj) = value.as_object_mut() else {
            // Not `from_value::<Result100>(value)`: serde accepts a struct as an array of its
            // fields, so `["1.1.0"]` would "parse".
            let what = match &value {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                _ => "an array",
            };
            let err = <serde_json::Error as serde::de::Error>::custom(format!(
                "invalid type: {what}, expected a result object"
            ));
            return Err(ResultError::Parse { version: default_version.to_owned(), source: err });
        };
        let version = match obj.get("cniVersion") {
            None => default_version.to_owned(),
            Some(Value::String(s)) if s.is_empty() => default_version.to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) => default_version.to_owned(),
            Some(_) => return Err(ResultError::VersionNotString),
        };
        let spec = SpecVersion::from_document(&version)?;
        obj.insert("cniVersion".into(), Value::String(spec.as_str().into()));
        let parse_err = |source| ResultError::Parse { version: version.clone(), source };
        Ok(match spec.family() {
            ResultFamily::V02 => Self::V02(serde_json::from_value(value).map_err(parse_err)?),
            ResultFamily::V04 => Self::V04(serde_json::from_value(value).map_err(parse_err)?),
            ResultFamily::V1 => Self::V1(serde_json::from_value(value).map_err(parse_err)?),
        })
    }

    /// The document's version.
    pub fn version(&self) -> SpecVersion {
        match self {
            Self::V02(r) => r.cni_version,
            Self::V04(r) => r.cni_version,
            Self::V1(r) => r.cni_version,
        }
    }

    /// Up-converts to the canonical model (lossless).
    pub fn into_canonical(self) -> CniResult {
        match self {
            Self::V02(r) => r.into_canonical(),
            Self::V04(r) => r.into_canonical(),
            Self::V1(r) => CniResult { interfaces: r.interfaces, ips: r.ips, routes: r.routes, dns: r.dns },
        }
    }

    /// The JSON document.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Self::V02(r) => serde_json::to_value(r),
            Self::V04(r) => serde_json::to_value(r),
            Self::V1(r) => serde_json::to_value(r),
        };
        v.expect("results always serialise")
    }

    /// The JSON document indented with four spaces, like Go's `PrintResult`.
    pub fn to_json_pretty(&self) -> String {
        crate::json::to_string_indent4(&self.to_value())
    }
}

impl Result020 {
    fn into_canonical(self) -> CniResult {
        let mut out = CniResult { dns: self.dns, ..CniResult::default() };
        let mut routes = Vec::new();
        for ip in [self.ip4, self.ip6].into_iter().flatten() {
            out.ips.push(IpConfig { address: ip.ip, gateway: ip.gateway, interface: None });
            routes.extend(ip.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
        }
        out.routes = routes;
        out
    }

    pub(crate) fn from_canonical(r: &CniResult, version: SpecVersion) -> Result<Self, ResultError> {
        let first = |v4: bool| r.ips.iter().find(|ip| ip.address.addr().is_ipv4() == v4);
        let make = |ip: &IpConfig, v4: bool| IpConfig020 {
            ip: ip.address,
            gateway: ip.gateway,
            routes: r
                .routes
                .iter()
                .filter(|rt| rt.dst.addr().is_ipv4() == v4)
                .map(|rt| Route0x { dst: rt.dst, gw: rt.gw })
                .collect(),
        };
        let ip4 = first(true).map(|ip| make(ip, true));
        let ip6 = first(false).map(|ip| make(ip, false));
        if ip4.is_none() && ip6.is_none() {
            return Err(ResultError::NoValidIp);
        }
        Ok(Self { cni_version: version, ip4, ip6, dns: r.dns.clone() })
    }
}

impl Result040 {
    fn into_canonical(self) -> CniResult {
        CniResult {
            interfaces: self
                .interfaces
                .into_iter()
                .map(|i| Interface { name: i.name, mac: i.mac, sandbox: i.sandbox, ..Interface::default() })
                .collect(),
            ips: self
                .ips
                .into_iter()
                .map(|ip| IpConfig { address: ip.address, gateway: ip.gateway, interface: ip.interface })
                .collect(),
            routes: self.routes.into_iter().map(|r| Route::new(r.dst, r.gw)).collect(),
            dns: self.dns,
        }
    }

    pub(crate) fn from_canonical(r: &CniResult, version: SpecVersion) -> Self {
        Self {
            cni_version: version,
            interfaces: r
                .interfaces
                .iter()
                .map(|i| Interface040 { name: i.name.clone(), mac: i.mac, sandbox: i.sandbox.clone() })
                .collect(),
            ips: r
                .ips
                .iter()
                .map(|ip| IpConfig040 {
                    version: if ip.address.addr().is_ipv4() { "4" } else { "6" }.to_owned(),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: r.routes.iter().map(|rt| Route0x { dst: rt.dst, gw: rt.gw }).collect(),
            dns: r.dns.clone(),
        }
    }
}

impl Result100 {
    pub(crate) fn from_canonical(r: &CniResult, version: SpecVersion) -> Self {
        Self {
            cni_version: version,
            interfaces: r.interfaces.clone(),
            ips: r.ips.clone(),
            routes: r.routes.clone(),
            dns: r.dns.clone(),
        }
    }
}
