//! The plugin kit: the building blocks Go's reference plugins share (`plugins/pkg/ip`,
//! `pkg/ipam`, `pkg/utils`), for plugins written on the SDK.
//!
//! Everything works on [`Net`](crate::net::Net) handles, so it runs against the kernel in a
//! plugin binary and against a `FakeNetwork` (`net::fake`, feature `test-util`) in tests, and it
//! reproduces Go's behaviour and error texts where a drop-in replacement needs them.
//!
//! | Go (`containernetworking/plugins`) | here |
//! |---|---|
//! | `ipam.ConfigureIface` | [`configure_iface`] |
//! | `ip.ValidateExpectedInterfaceIPs`, `ip.ValidateExpectedRoute` | [`validate_expected_ips`], [`validate_expected_routes`] |
//! | CHECK's interface lookups | [`validate_expected_interface`] |
//! | `ip.SetupVeth`, `ip.RandomVethName` | [`setup_veth`], [`random_link_name`](crate::net::random_link_name) |
//! | `ip.DelLinkByName`, `ip.DelLinkByNameAddr` | [`delete_link_by_name`], [`del_link_by_name_addr`] |
//! | `ip.EnableForward`, `ip.EnableIP4Forward`, `ip.EnableIP6Forward` | [`enable_forward`], [`enable_ip4_forward`], [`enable_ip6_forward`] |
//! | `calcGatewayIP`, `ip.NextIP` | [`gateway_of`], [`next_ip`] |
//! | routes added the way Go's netlink adds them | [`add_route_like_go`] |
//! | deferred cleanup on a failed ADD | [`Undo`], [`with_undo`] |
//! | state files that survive a killed writer (Go writes them in place) | [`write_atomic`], [`read_tolerant`], [`DirLock`] |
//! | Go's error texts (`ns.GetNS`, `%v` of routes and networks) | [`go`] |
//! | `encoding/json`'s case-insensitive keys | [`go_keys`] |
//! | `ipam.ExecAdd`, `ExecDel`, `ExecCheck`, `ExecStatus` | [`ipam_add`], [`ipam_del`], [`ipam_check`], [`ipam_status`] |
//! | macvlan/ipvlan/vlan: default master, master lookup, temp-name create + rename | [`default_route_interface`], [`lookup_link`], [`create_in_container`] |
//! | `netlink.RouteGet` + `LinkByIndex` (portmap's `getRoutableHostIF`) | [`link_routing_to`] |
//! | (no Go equivalent) state for DEL without `prevResult` and for GC | [`AttachmentRecords`] |
//!
//! A main plugin's ADD, written with the kit (it runs on the fake here):
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cni_sdk::kit::{self, with_undo};
//! use cni_sdk::net::fake::FakeNetwork;
//! use cni_sdk::{CniResult, Interface, IpConfig, Route};
//!
//! let world = FakeNetwork::new();
//! let (host, ctr) = (world.host(), world.add_namespace("pod"));
//! let mut ipam = CniResult::default();
//! ipam.ips.push(IpConfig { gateway: Some("10.230.0.1".parse()?), ..IpConfig::new("10.230.0.5/24".parse()?) });
//! ipam.routes.push(Route::new("0.0.0.0/0".parse()?, None));
//!
//! let result = with_undo(async |undo| {
//!     let (host_end, ctr_end) = kit::setup_veth(&host, &ctr, "eth0", None, None).await?;
//!     undo.push("delete the veth pair", kit::delete_link_by_name(&ctr, "eth0"));
//!     let mut result = ipam.clone();
//!     result.interfaces = vec![Interface::from(&host_end), Interface::from(&ctr_end)];
//!     result.ips[0].interface = Some(1);
//!     kit::configure_iface(&ctr, "eth0", &result).await?;
//!     Ok(result)
//! })
//! .await?;
//! kit::validate_expected_ips(&ctr, "eth0", &result.ips).await?;
//! kit::validate_expected_routes(&ctr, &result.routes).await?;
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod addr;
mod check;
pub mod go;
mod gojson;
mod iface;
mod ipam;
mod link;
mod lower;
mod records;
mod route_lookup;
mod state_file;
mod sysctl;
mod undo;
mod veth;

pub use addr::{gateway_of, host_prefix, is_global_unicast, next_ip};
pub use check::{validate_expected_interface, validate_expected_ips, validate_expected_routes};
pub use gojson::{GoJson, go_key_eq, go_keys};
pub use iface::{add_route_like_go, configure_iface};
pub use ipam::{has_ipam, ipam_add, ipam_check, ipam_del, ipam_status, ipam_type};
pub use link::{del_link_by_name_addr, delete_link_by_name};
pub use lower::{create_in_container, default_route_interface, lookup_link};
pub use records::{AttachmentRecords, Record};
pub use route_lookup::link_routing_to;
pub use state_file::{
    DirLock, Durability, StateRead, TEMP_FILE_PREFIX, is_temp_file_name, read_tolerant, remove_temp_files, write_atomic,
};
pub use sysctl::{enable_forward, enable_ip4_forward, enable_ip6_forward};
pub use undo::{Undo, with_undo};
pub use veth::setup_veth;
