//! Typed, versioned structures of the [CNI specification], 0.1.0 to 1.1.0.
//!
//! Everything a plugin or a runtime exchanges, with no I/O and no async runtime: versions and
//! their rules ([`SpecVersion`], [`Semver`], the verbs and their version floors: [`Command`],
//! [`negotiate`]), the network configuration a plugin receives
//! ([`NetworkConfig`], generic over the plugin's own keys), configuration lists
//! ([`NetworkConfigList`]), results in one canonical model with the wire form of every version
//! ([`CniResult`], [`WireResult`]), the error object ([`CniError`], [`ErrorCode`]), the VERSION
//! reply ([`VersionInfo`]), GC attachments, the runtime's result cache record
//! ([`CacheRecord`]), `CNI_ARGS` ([`CniArgs`]) and identifier validation ([`ident`]).
//!
//! Parse a configuration and print a result in the configuration's version:
//!
//! ```
//! use cni_types::{CniResult, Interface, IpConfig, NetworkConfig, Route};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct MyKeys { bridge: String }
//!
//! let stdin = br#"{"cniVersion": "0.3.1", "name": "mynet", "type": "my-bridge", "bridge": "cni0"}"#;
//! let conf: NetworkConfig<MyKeys> = serde_json::from_slice(stdin)?;
//! assert_eq!(conf.plugin.bridge, "cni0");
//!
//! let mut result = CniResult::default();
//! result.interfaces.push(Interface::new("eth0"));
//! result.ips.push(IpConfig { address: "10.22.0.5/16".parse()?, gateway: Some("10.22.0.1".parse()?), interface: Some(0) });
//! result.routes.push(Route::new("0.0.0.0/0".parse()?, None));
//!
//! let printed = result.to_value(conf.spec_version()?)?;
//! assert_eq!(printed["cniVersion"], "0.3.1");
//! assert_eq!(printed["ips"][0]["version"], "4"); // 0.3.x wire form
//! // ...and the same result in the 0.2.0 form:
//! let legacy = result.to_value("0.2.0".parse()?)?;
//! assert_eq!(legacy["ip4"]["ip"], "10.22.0.5/16");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Minimum supported Rust version: 1.88. No cargo features, no `unsafe`.
//!
//! [CNI specification]: https://github.com/containernetworking/cni/blob/main/SPEC.md
#![warn(missing_docs)]

pub mod args;
pub mod cache;
pub mod command;
pub mod config;
pub mod conflist;
pub mod error;
pub mod ident;
mod json;
pub mod mac;
pub mod result;
pub mod version;
pub mod version_info;

pub use args::{ArgsError, CniArgs};
pub use cache::{CACHE_KIND_V1, CacheError, CacheRecord};
pub use command::{Command, NegotiationError, UnknownCommand, negotiate};
pub use config::{
    Bandwidth, CniConventionArgs, ConfigArgs, IpRange, IpRequest, IpamConfig, Label, NetworkConfig, PortMapping,
    RuntimeConfig, RuntimeDns,
};
pub use conflist::{ConfigError, NetworkConfigList};
pub use error::{CniError, ErrorCode, UnknownErrorCode};
pub use mac::{HardwareAddr, MacAddr};
pub use result::{CniResult, Dns, Interface, IpConfig, ResultError, Route, WireResult};
pub use version::{ResultFamily, Semver, SpecVersion, VersionError};
pub use version_info::{Attachment, VersionInfo, VersionInfoError};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
