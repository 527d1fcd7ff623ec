//! The `ipam` keys of the dhcp plugin (Go's `IPAMConfig`), the DHCP options they select, and
//! the client identifier.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Go's default socket.
pub const DEFAULT_SOCKET_PATH: &str = "/run/cni/dhcp.sock";

/// Option names Go knows (`options.go`); anything else must be a number 0–255.
const OPTION_NAMES: [(&str, u8); 6] = [
    ("dhcp-client-identifier", 61),
    ("subnet-mask", 1),
    ("routers", 3),
    ("host-name", 12),
    ("user-class", 77),
    ("vendor-class-identifier", 60),
];

/// Requested by default unless an entry of `request` says `skipDefault`: routers, subnet mask.
const DEFAULT_REQUESTED: [u8; 2] = [3, 1];

#[derive(Debug, Default, Deserialize)]
struct RawNet {
    #[serde(default)]
    name: String,
    #[serde(default)]
    ipam: Option<RawIpam>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(default)]
    daemon_socket_path: Option<String>,
    #[serde(default)]
    provide: Option<Vec<ProvideOption>>,
    #[serde(default)]
    request: Option<Vec<RequestOption>>,
    #[serde(default)]
    priority: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct ProvideOption {
    #[serde(default)]
    option: String,
    #[serde(default)]
    value: String,
    #[serde(rename = "fromArg", default)]
    from_arg: String,
}

#[derive(Debug, Default, Deserialize)]
struct RequestOption {
    #[serde(rename = "skipDefault", default)]
    skip_default: bool,
    #[serde(default)]
    option: String,
}

/// What the client sends besides the message itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientOptions {
    /// The Parameter Request List (option 55), in order; empty means no option 55.
    pub params: Vec<u8>,
    /// Options sent as given (`provide`), raw bytes.
    pub provide: Vec<(u8, Vec<u8>)>,
}

/// The dhcp plugin's configuration, as the daemon uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpConf {
    /// The network name (part of the client identifier).
    pub name: String,
    /// Options to send.
    pub options: ClientOptions,
    /// Metric set on every returned route (`priority`, 0 = none).
    pub priority: Option<u32>,
}

/// `ipam.daemonSocketPath` (Go's `getSocketPath`); `Ok(None)` when unset or empty.
///
/// Errors: the configuration has no `ipam` object (Go's shim crashes there), or it does not
/// decode.
pub fn socket_path(raw: &[u8]) -> Result<Option<String>, String> {
    let net: RawNet = serde_json::from_slice(raw).map_err(|e| format!("error parsing socket path conf: {e}"))?;
    let ipam = net.ipam.ok_or_else(|| "IPAM config missing 'ipam' key".to_owned())?;
    Ok(ipam.daemon_socket_path.filter(|s| !s.is_empty()))
}

/// The network name of a configuration (all DEL needs; Go's `Release` reads nothing else).
pub fn network_name(raw: &[u8]) -> Result<String, String> {
    let net: RawNet = serde_json::from_slice(raw).map_err(|e| format!("error parsing netconf: {e}"))?;
    Ok(net.name)
}

/// Go's `Allocate` preamble: parse the configuration and prepare the options, with Go's texts.
pub fn load(raw: &[u8], cni_args: &str) -> Result<DhcpConf, String> {
    let net: RawNet = serde_json::from_slice(raw).map_err(|e| format!("error parsing netconf: {e}"))?;
    let ipam = net.ipam.unwrap_or_default();
    let options = prepare_options(cni_args, &ipam.provide.unwrap_or_default(), &ipam.request.unwrap_or_default())?;
    let priority = match ipam.priority.unwrap_or(0) {
        0 => None,
        p => Some(u32::try_from(p).map_err(|_| format!("error parsing netconf: invalid priority {p}"))?),
    };
    Ok(DhcpConf { name: net.name, options, priority })
}

/// `CNI_ARGS` as Go's dhcp reads it: split on `;`, then on the first `=`; pairs without `=`
/// are skipped, unknown keys ignored.
fn parse_cni_args(raw: &str) -> HashMap<&str, &str> {
    raw.split(';').filter_map(|pair| pair.split_once('=')).collect()
}

/// Go's `strconv.ParseUint(s, 10, 8)` error text.
fn parse_u8(s: &str) -> Result<u8, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse().map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// An option by name (`routers`) or number (`121`), with Go's error text.
pub fn parse_option_name(option: &str) -> Result<u8, String> {
    if let Some((_, code)) = OPTION_NAMES.iter().find(|(name, _)| *name == option) {
        return Ok(*code);
    }
    parse_u8(option).map_err(|e| format!("Can not parse option {option:?}: Can not parse option: {e}"))
}

/// Go's `prepareOptions`: `provide` values (a `fromArg` found in `CNI_ARGS` overrides `value`),
/// and the requested codes plus the defaults unless any entry has `skipDefault`.
fn prepare_options(
    cni_args: &str,
    provide: &[ProvideOption],
    request: &[RequestOption],
) -> Result<ClientOptions, String> {
    let args = parse_cni_args(cni_args);
    let mut out = ClientOptions::default();
    let mut set = |code: u8, value: &str| {
        let bytes = value.as_bytes().to_vec();
        match out.provide.iter_mut().find(|(c, _)| *c == code) {
            Some(slot) => slot.1 = bytes,
            None => out.provide.push((code, bytes)),
        }
    };
    for opt in provide {
        let code = parse_option_name(&opt.option)?;
        if !opt.value.is_empty() {
            if opt.value.len() > 255 {
                return Err(format!("value too long for option {:?}: {:?}", opt.option, opt.value));
            }
            set(code, &opt.value);
        }
        if let Some(value) = args.get(opt.from_arg.as_str()) {
            if value.len() > 255 {
                // Go prints the configured value here, not the one from CNI_ARGS.
                return Err(format!(
                    "value too long for option {:?} from CNI_ARGS {:?}: {:?}",
                    opt.option, opt.from_arg, opt.value
                ));
            }
            set(code, value);
        }
    }
    let mut skip_default = false;
    for opt in request {
        skip_default |= opt.skip_default;
        if opt.option.is_empty() {
            continue;
        }
        let code = parse_option_name(&opt.option)?;
        if !out.params.contains(&code) {
            out.params.push(code);
        }
    }
    if !skip_default {
        for code in DEFAULT_REQUESTED {
            if !out.params.contains(&code) {
                out.params.push(code);
            }
        }
    }
    Ok(out)
}

/// Go's `generateClientID`: `<containerID>/<netName>/<ifName>`, cut to 254 bytes. It is the key
/// of a lease, and (after a type byte 0) the DHCP client identifier.
pub fn client_id(container_id: &str, network: &str, ifname: &str) -> String {
    let mut id = format!("{container_id}/{network}/{ifname}");
    if id.len() > 254 {
        let mut cut = 254;
        while !id.is_char_boundary(cut) {
            cut -= 1;
        }
        id.truncate(cut);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provide(option: &str, value: &str, from_arg: &str) -> ProvideOption {
        ProvideOption { option: option.into(), value: value.into(), from_arg: from_arg.into() }
    }

    fn request(option: &str, skip_default: bool) -> RequestOption {
        RequestOption { option: option.into(), skip_default }
    }

    #[test]
    fn option_names_and_numbers() {
        assert_eq!(parse_option_name("host-name"), Ok(12));
        assert_eq!(parse_option_name("121"), Ok(121));
        assert_eq!(parse_option_name("0"), Ok(0));
        assert_eq!(
            parse_option_name("foo").unwrap_err(),
            "Can not parse option \"foo\": Can not parse option: strconv.ParseUint: parsing \"foo\": invalid syntax"
        );
        assert_eq!(
            parse_option_name("256").unwrap_err(),
            "Can not parse option \"256\": Can not parse option: strconv.ParseUint: parsing \"256\": value out of range"
        );
        assert!(parse_option_name("+1").is_err(), "no sign, like strconv.ParseUint");
    }

    #[test]
    fn provide_values_and_from_arg() {
        let opts = prepare_options(
            "K8S_POD_NAME=web-0;IgnoreUnknown=1;A=b=c",
            &[provide("host-name", "fallback", "K8S_POD_NAME"), provide("60", "vendor", ""), provide("77", "", "A")],
            &[],
        )
        .unwrap();
        assert_eq!(
            opts.provide,
            vec![(12, b"web-0".to_vec()), (60, b"vendor".to_vec()), (77, b"b=c".to_vec())],
            "fromArg wins over value; CNI_ARGS split on the first '='"
        );
        assert_eq!(opts.params, vec![3, 1], "defaults: routers, subnet mask");
        let opts = prepare_options("", &[provide("host-name", "fallback", "K8S_POD_NAME")], &[]).unwrap();
        assert_eq!(opts.provide, vec![(12, b"fallback".to_vec())]);
        let long = "x".repeat(256);
        assert_eq!(
            prepare_options("", &[provide("host-name", &long, "")], &[]).unwrap_err(),
            format!("value too long for option \"host-name\": \"{long}\"")
        );
        assert_eq!(
            prepare_options(&format!("P={long}"), &[provide("host-name", "v", "P")], &[]).unwrap_err(),
            "value too long for option \"host-name\" from CNI_ARGS \"P\": \"v\""
        );
    }

    #[test]
    fn requested_options_and_skip_default() {
        let o = prepare_options("", &[], &[request("121", false), request("routers", false)]).unwrap();
        assert_eq!(o.params, vec![121, 3, 1]);
        let o = prepare_options("", &[], &[request("121", false), request("", true)]).unwrap();
        assert_eq!(o.params, vec![121]);
        let o = prepare_options("", &[], &[request("", true)]).unwrap();
        assert!(o.params.is_empty(), "nothing requested: no option 55");
        assert!(prepare_options("", &[], &[request("nope", false)]).unwrap_err().starts_with("Can not parse option"));
    }

    #[test]
    fn client_ids_are_cut_to_254_bytes() {
        assert_eq!(client_id("c1", "net", "eth0"), "c1/net/eth0");
        let long = client_id(&"a".repeat(300), "net", "eth0");
        assert_eq!(long.len(), 254);
    }

    #[test]
    fn configuration_errors() {
        assert!(load(b"{", "").unwrap_err().starts_with("error parsing netconf: "));
        let c = load(br#"{"name": "n", "ipam": {"type": "dhcp", "priority": 7}}"#, "").unwrap();
        assert_eq!((c.name.as_str(), c.priority), ("n", Some(7)));
        assert_eq!(socket_path(br#"{"name": "n"}"#).unwrap_err(), "IPAM config missing 'ipam' key");
        assert_eq!(socket_path(br#"{"ipam": {"daemonSocketPath": "/x.sock"}}"#).unwrap().as_deref(), Some("/x.sock"));
        assert_eq!(socket_path(br#"{"ipam": {"daemonSocketPath": ""}}"#).unwrap(), None);
        assert!(
            socket_path(br#"{"ipam": {"daemonSocketPath": 1}}"#)
                .unwrap_err()
                .starts_with("error parsing socket path conf: ")
        );
    }
}
