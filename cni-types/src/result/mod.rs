//! Results: one canonical in-memory model and the wire forms of every spec version.
//!
//! [`CniResult`] is the 1.1 model. The wire forms are [`Result020`] (0.1.0, 0.2.0: `ip4`/`ip6`),
//! [`Result040`] (0.3.0, 0.3.1, 0.4.0: `ips[].version`) and [`Result100`] (1.0.0, 1.1.0).
//! [`CniResult::parse`] reads any of them (dispatching on `cniVersion`) and
//! [`CniResult::to_value`] prints any of them, with the conversion rules of Go's
//! `pkg/types/internal/convert.go`:
//!
//! * up-conversion is lossless;
//! * to 0.3.x/0.4.0, interface `mtu`/`socketPath`/`pciID` and the route extras
//!   (`mtu`, `advmss`, `priority`, `table`, `scope`) are dropped (Go leaks the route extras into
//!   0.x output; this crate prints what those versions define);
//! * to 0.1.0/0.2.0, only the first address of each family survives, routes only for a family
//!   that has an address, interfaces are dropped, and a result without any address cannot be
//!   converted (`cannot convert: no valid IP addresses`).
//!
//! ```
//! use cni_types::{CniResult, SpecVersion};
//! let r = CniResult::parse(br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.200.0.5/16","gateway":"10.200.0.1"}}"#, "").unwrap();
//! assert_eq!(r.ips[0].address.to_string(), "10.200.0.5/16");
//! let v1 = r.to_value(SpecVersion::V1_1_0).unwrap();
//! assert_eq!(v1["ips"][0]["gateway"], "10.200.0.1");
//! ```

mod wire;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{HardwareAddr, ResultFamily, SpecVersion, VersionError};

pub use wire::{Interface040, IpConfig020, IpConfig040, Result020, Result040, Result100, Route0x, WireResult};

/// The canonical result of an ADD (the 1.1 model, without a version).
///
/// It serialises with the 1.x key names (no `cniVersion`); print a versioned document with
/// [`CniResult::to_value`] / [`CniResult::to_json`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces created or configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings for the container.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// An interface in a result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_hwaddr")]
    pub mac: Option<HardwareAddr>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "wire::none_or_zero")]
    pub mtu: Option<u32>,
    /// Namespace path for a container interface; absent for host interfaces.
    #[serde(default, skip_serializing_if = "wire::none_or_empty")]
    pub sandbox: Option<String>,
    /// Path of a socket for userspace networking (1.1.0).
    #[serde(rename = "socketPath", default, skip_serializing_if = "wire::none_or_empty")]
    pub socket_path: Option<String>,
    /// PCI ID of a device (1.1.0).
    #[serde(rename = "pciID", default, skip_serializing_if = "wire::none_or_empty")]
    pub pci_id: Option<String>,
}

impl Interface {
    /// An interface with just a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }
}

/// An address assigned to an interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length; host bits are kept (`10.1.0.5/16`).
    pub address: IpNet,
    /// Default gateway for this subnet, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// An address without gateway or interface.
    pub fn new(address: IpNet) -> Self {
        Self { address, gateway: None, interface: None }
    }
}

/// Route scope values (`scope` in 1.1 routes).
pub mod scope {
    /// Global scope.
    pub const UNIVERSE: u32 = 0;
    /// Link scope.
    pub const LINK: u32 = 253;
    /// Host scope.
    pub const HOST: u32 = 254;
}

/// A route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; absent means the default gateway of the family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "wire::none_or_zero")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "wire::none_or_zero")]
    pub advmss: Option<u32>,
    /// Priority / metric (1.1.0).
    #[serde(default, skip_serializing_if = "wire::none_or_zero")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (1.1.0), see [`scope`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    /// A route to `dst`, optionally via `gw`.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Self { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }

    fn has_extras(&self) -> bool {
        !wire::none_or_zero(&self.mtu)
            || !wire::none_or_zero(&self.advmss)
            || !wire::none_or_zero(&self.priority)
            || self.table.is_some()
            || self.scope.is_some()
    }
}

/// DNS settings (result `dns`, config `dns`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "wire::null_as_default")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "wire::none_or_empty")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "wire::null_as_default")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "wire::null_as_default")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.as_deref().is_none_or(str::is_empty)
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// Why a result could not be read or converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// The document is not JSON or does not have the shape of its version.
    #[error("failed to parse {version} result: {source}")]
    Parse {
        /// The version the document was read as.
        version: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The document's `cniVersion` is not a version this crate knows.
    #[error("unsupported CNI result version: {0}")]
    Version(#[from] VersionError),
    /// `cniVersion` is present but not a string.
    #[error("result cniVersion is not a string")]
    VersionNotString,
    /// A result without addresses cannot be expressed in 0.1.0/0.2.0.
    #[error("cannot convert: no valid IP addresses")]
    NoValidIp,
    /// A prevResult of another result family than the configuration.
    #[error(
        "could not parse prevResult: result type supports [{}] but unmarshalled CNIVersion is {found:?}",
        .supported.join(" ")
    )]
    FamilyMismatch {
        /// Versions the configuration's family supports.
        supported: Vec<&'static str>,
        /// The prevResult's version.
        found: String,
    },
}

impl CniResult {
    /// Parses a result document of any version.
    ///
    /// `cniVersion` selects the wire form; when it is missing or empty, `default_version` is
    /// used (libcni assumes the configuration's version; `""` means 0.1.0). A `null` document is
    /// an empty result, as in libcni.
    pub fn parse(json: &[u8], default_version: &str) -> Result<Self, ResultError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|source| ResultError::Parse { version: default_version.to_owned(), source })?;
        Self::from_value(value, default_version)
    }

    /// Like [`CniResult::parse`], from a JSON value.
    pub fn from_value(value: Value, default_version: &str) -> Result<Self, ResultError> {
        Ok(WireResult::from_value(value, default_version)?.into_canonical())
    }

    /// Parses a `prevResult` for a configuration of version `config_version` with Go's rules:
    /// a missing `cniVersion` means the configuration's version, and the prevResult must belong
    /// to the same result family as the configuration (0.1/0.2, 0.3/0.4, 1.x).
    pub fn parse_prev_result(value: &Value, config_version: SpecVersion) -> Result<Self, ResultError> {
        let wire = WireResult::from_value(value.clone(), config_version.as_str())?;
        if wire.version().family() != config_version.family() {
            return Err(ResultError::FamilyMismatch {
                supported: config_version.family().versions().iter().map(|v| v.as_str()).collect(),
                found: wire.version().to_string(),
            });
        }
        Ok(wire.into_canonical())
    }

    /// Converts to the wire form of `version`.
    pub fn to_wire(&self, version: SpecVersion) -> Result<WireResult, ResultError> {
        Ok(match version.family() {
            ResultFamily::V02 => WireResult::V02(Result020::from_canonical(self, version)?),
            ResultFamily::V04 => WireResult::V04(Result040::from_canonical(self, version)),
            ResultFamily::V1 => WireResult::V1(Result100::from_canonical(self, version)),
        })
    }

    /// Converts to a JSON document of `version`.
    pub fn to_value(&self, version: SpecVersion) -> Result<Value, ResultError> {
        Ok(self.to_wire(version)?.to_value())
    }

    /// Converts to a JSON string of `version`, indented like Go's `PrintResult`.
    pub fn to_json(&self, version: SpecVersion) -> Result<String, ResultError> {
        Ok(self.to_wire(version)?.to_json_pretty())
    }

    /// Whether converting to `version` loses information.
    pub fn is_lossless_in(&self, version: SpecVersion) -> bool {
        match version.family() {
            ResultFamily::V1 => true,
            ResultFamily::V04 => {
                self.interfaces.iter().all(|i| {
                    wire::none_or_zero(&i.mtu) && wire::none_or_empty(&i.socket_path) && wire::none_or_empty(&i.pci_id)
                }) && self.routes.iter().all(|r| !r.has_extras())
            }
            ResultFamily::V02 => {
                let v4 = self.ips.iter().filter(|ip| ip.address.addr().is_ipv4()).count();
                let v6 = self.ips.len() - v4;
                let has = |dst: &IpNet| if dst.addr().is_ipv4() { v4 > 0 } else { v6 > 0 };
                self.interfaces.is_empty()
                    && !self.ips.is_empty()
                    && v4 <= 1
                    && v6 <= 1
                    && self.ips.iter().all(|ip| ip.interface.is_none())
                    // 0.2.0 has `ip4` before `ip6`: an IPv6 address must not come first.
                    && self.ips.windows(2).all(|w| w[0].address.addr().is_ipv4() || w[1].address.addr().is_ipv6())
                    && self.routes.iter().all(|r| !r.has_extras() && has(&r.dst))
                    // 0.2.0 keeps routes per family: v4 routes come before v6 ones.
                    && self.routes.windows(2).all(|w| w[0].dst.addr().is_ipv4() || w[1].dst.addr().is_ipv6())
            }
        }
    }
}
