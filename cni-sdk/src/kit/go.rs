//! Go's wording, for drop-in replacements of Go plugins whose error texts runtimes and users
//! match on: how Go prints networks and routes with `%v`/`%+v`, and the errors of `ns.GetNS`.
//!
//! The formats are those of Debian's containernetworking-plugins 1.1.1 (CNI library 1.1.x,
//! where a result route has `Dst` and `GW` only).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::{Error, ErrorKind};

/// How Go prints a system error (`syscall.Errno`): the C text with a lower-case first letter,
/// e.g. `network is unreachable`. Errors without an errno print their message.
///
/// ```
/// use cni_sdk::net::NetError;
/// let e = NetError::from_errno(libc::ENETUNREACH, "add route 10.99.0.0/16");
/// assert_eq!(cni_sdk::kit::go::errno_text(&e), "network is unreachable");
/// ```
pub fn errno_text(err: &crate::net::NetError) -> String {
    match err.errno() {
        Some(errno) => {
            let text = std::io::Error::from_raw_os_error(errno).to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => String::new(),
            }
        }
        None => err.message().to_owned(),
    }
}

/// Go's `fmt.Errorf("<msg>: %v", err)` for a network error: `msg: <errno text>`, code 999,
/// the error's kind kept.
///
/// ```
/// use cni_sdk::net::NetError;
/// let e = NetError::from_errno(libc::EEXIST, "create link \"eth0\"");
/// let err = cni_sdk::kit::go::wrap_net("failed to create macvlan", &e);
/// assert_eq!(err.message(), "failed to create macvlan: file exists");
/// assert_eq!(err.kind(), cni_sdk::ErrorKind::Exists);
/// ```
pub fn wrap_net(msg: impl std::fmt::Display, err: &crate::net::NetError) -> Error {
    Error::from_kind(err.kind().into(), format!("{msg}: {}", errno_text(err))).with_code(cni_types::ErrorCode::Internal)
}

/// A `net.IPMask` as Go prints it: lower-case hex of the mask bytes (4 for IPv4, 16 for IPv6).
pub fn mask(net: &IpNet) -> String {
    let mut out = String::new();
    match net {
        IpNet::V4(n) => n.netmask().octets().iter().for_each(|b| {
            let _ = write!(out, "{b:02x}");
        }),
        IpNet::V6(n) => n.netmask().octets().iter().for_each(|b| {
            let _ = write!(out, "{b:02x}");
        }),
    }
    out
}

/// A `net.IPNet` value printed with `%v` inside a struct: `{10.99.0.0 ffff0000}`.
///
/// ```
/// assert_eq!(cni_sdk::kit::go::ipnet_v(&"10.99.0.0/16".parse().unwrap()), "{10.99.0.0 ffff0000}");
/// ```
pub fn ipnet_v(net: &IpNet) -> String {
    format!("{{{} {}}}", net.addr(), mask(net))
}

/// A `net.IPNet` value printed with `%+v` inside a struct: `{IP:10.99.0.0 Mask:ffff0000}`.
pub fn ipnet_plus_v(net: &IpNet) -> String {
    format!("{{IP:{} Mask:{}}}", net.addr(), mask(net))
}

/// An optional `net.IP`: the address, or `<nil>`.
pub fn ip_or_nil(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "<nil>".to_owned(), |ip| ip.to_string())
}

/// A result route as Go's `types.Route.String()` prints it:
/// `{Dst:{IP:10.1.0.0 Mask:ffff0000} GW:<nil>}`.
///
/// ```
/// use cni_sdk::Route;
/// let r = Route::new("0.0.0.0/0".parse().unwrap(), Some("10.1.0.1".parse().unwrap()));
/// assert_eq!(cni_sdk::kit::go::route(&r), "{Dst:{IP:0.0.0.0 Mask:00000000} GW:10.1.0.1}");
/// ```
pub fn route(route: &cni_types::Route) -> String {
    format!("{{Dst:{} GW:{}}}", ipnet_plus_v(&route.dst), ip_or_nil(route.gw))
}

/// The error a Go plugin reports when it cannot open the container's namespace
/// (`ns.GetNS`, wrapped as `failed to open netns "<path>": ...`), code 999. A namespace that
/// does not exist gives Go's exact text; other failures keep their cause.
pub fn netns_open_error(path: Option<&Path>, err: &Error) -> Error {
    let path = path.map(|p| p.display().to_string()).unwrap_or_default();
    if matches!(err.kind(), ErrorKind::NetnsGone | ErrorKind::NotFound) {
        return Error::from_kind(
            ErrorKind::NetnsGone,
            format!("failed to open netns {path:?}: failed to Statfs {path:?}: no such file or directory"),
        )
        .with_code(cni_types::ErrorCode::Internal);
    }
    Error::from_kind(
        err.kind(),
        format!("failed to open netns {path:?}: {}", err.details().unwrap_or_else(|| err.message().to_owned())),
    )
    .with_code(err.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_masks_and_nil_gateways() {
        let n: IpNet = "fd00:1::/64".parse().unwrap();
        assert_eq!(ipnet_v(&n), "{fd00:1:: ffffffffffffffff0000000000000000}");
        let r = cni_types::Route::new(n, None);
        assert_eq!(route(&r), "{Dst:{IP:fd00:1:: Mask:ffffffffffffffff0000000000000000} GW:<nil>}");
    }

    #[test]
    fn gone_namespace_text() {
        let gone = Error::from_kind(ErrorKind::NetnsGone, "failed to open netns");
        let e = netns_open_error(Some(Path::new("/var/run/netns/x")), &gone);
        assert_eq!(
            e.message(),
            r#"failed to open netns "/var/run/netns/x": failed to Statfs "/var/run/netns/x": no such file or directory"#
        );
        assert_eq!((e.code(), e.kind()), (cni_types::ErrorCode::Internal, ErrorKind::NetnsGone));
    }
}
