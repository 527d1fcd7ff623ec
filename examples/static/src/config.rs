//! The static configuration: Go's `LoadIPAMConfig` (`plugins/ipam/static/main.go`), with its
//! sources of addresses, their order and its error texts.

use std::net::IpAddr;

use cni_sdk::{Context, Dns, Error, Route};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

/// The whole network configuration as static reads it (an IPAM plugin gets the calling plugin's
/// configuration, not just the `ipam` section).
#[derive(Debug, Default, Deserialize)]
struct RawNet {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    ipam: Option<RawIpam>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RawIps>,
    #[serde(default)]
    args: Option<RawArgs>,
}

#[derive(Debug, Default, Deserialize)]
struct RawIpam {
    #[serde(default)]
    routes: Option<Vec<Value>>,
    #[serde(default)]
    addresses: Option<Vec<RawAddress>>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAddress {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawIps {
    #[serde(default)]
    ips: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawArgs {
    #[serde(default)]
    cni: Option<RawIps>,
}

/// One address to hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    /// The address with its prefix, host bits kept (`10.10.0.5/24`).
    pub(crate) net: IpNet,
    /// The gateway, if one was configured.
    pub(crate) gateway: Option<IpAddr>,
}

/// The validated configuration.
#[derive(Debug, Default)]
pub(crate) struct StaticConf {
    pub(crate) addresses: Vec<Address>,
    pub(crate) routes: Vec<Route>,
    pub(crate) dns: Dns,
}

/// An address while the sources are merged: config addresses are only parsed at the end, as in
/// Go (which is why `GATEWAY` never applies to them).
struct Pending {
    text: String,
    net: Option<IpNet>,
    gateway: Option<IpAddr>,
}

/// A plain error: code 999 with Go's text.
pub(crate) fn plain(msg: impl Into<String>) -> Error {
    Error::internal(msg)
}

/// Go's `net.ParseIP` error as `encoding/json` reports it for a `net.IP` field.
fn parse_ip_field(s: &str) -> Result<Option<IpAddr>, Error> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(|ip: IpAddr| Some(ip.to_canonical())).map_err(|_| plain(format!("invalid IP address: {s}")))
}

/// `net.ParseCIDR` keeping the host bits; IPv4-mapped IPv6 addresses become IPv4 (Go's
/// `canonicalizeIP`).
fn parse_cidr(s: &str) -> Option<IpNet> {
    let net: IpNet = s.parse().ok()?;
    match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).ok(),
            _ => Some(net),
        },
        IpNet::V4(_) => Some(net),
    }
}

/// A route of `ipam.routes`: Go's `types.Route` texts for a bad `dst` or `gw`.
fn parse_route(v: Value) -> Result<Route, Error> {
    if let Some(dst) = v.get("dst").and_then(Value::as_str)
        && parse_cidr(dst).is_none()
    {
        return Err(plain(format!("invalid CIDR address: {dst}")));
    }
    if let Some(gw) = v.get("gw").and_then(Value::as_str) {
        parse_ip_field(gw)?;
    }
    serde_json::from_value(v).map_err(|e| plain(format!("invalid route in 'routes': {e}")))
}

fn replace_with(list: &[String]) -> Result<Vec<Pending>, Error> {
    list.iter()
        .map(|s| {
            parse_cidr(s)
                .map(|net| Pending { text: s.clone(), net: Some(net), gateway: None })
                .ok_or_else(|| plain(format!("an entry in the 'ips' field is NOT in CIDR notation, got: '{s}'")))
        })
        .collect()
}

/// Go's `LoadIPAMConfig`: config addresses, then `CNI_ARGS` `IP` (with `GATEWAY`), replaced by
/// `args.cni.ips` when non-empty, replaced again by `runtimeConfig.ips` when non-empty.
pub(crate) fn load<C>(cx: &Context<C>) -> Result<StaticConf, Error> {
    let net: RawNet = serde_json::from_slice(cx.raw_config()).map_err(|e| plain(e.to_string()))?;
    let ipam = net.ipam.ok_or_else(|| plain("IPAM config missing 'ipam' key"))?;

    let mut pending: Vec<Pending> = Vec::new();
    for a in ipam.addresses.unwrap_or_default() {
        let gateway = match a.gateway.as_deref() {
            Some(g) => parse_ip_field(g)?,
            None => None,
        };
        pending.push(Pending { text: a.address.unwrap_or_default(), net: None, gateway });
    }

    let args = cx.args();
    if !args.is_empty() {
        args.check_known(&["IP", "GATEWAY"]).map_err(|e| plain(e.to_string()))?;
        if let Some(ips) = args.get("IP").filter(|v| !v.is_empty()) {
            for item in ips.split(',') {
                let text = item.trim();
                let net = parse_cidr(text).ok_or_else(|| {
                    plain(format!("the 'ip' field is expected to be in CIDR notation, got: '{text}'"))
                })?;
                pending.push(Pending { text: text.to_owned(), net: Some(net), gateway: None });
            }
        }
        if let Some(gws) = args.get("GATEWAY").filter(|v| !v.is_empty()) {
            for item in gws.split(',') {
                let gw: IpAddr = item
                    .trim()
                    .parse::<IpAddr>()
                    .map(|ip| ip.to_canonical())
                    .map_err(|_| plain(format!("invalid gateway address: {item}")))?;
                for p in &mut pending {
                    if p.net.is_some_and(|n| n.contains(&gw)) {
                        p.gateway = Some(gw);
                    }
                }
            }
        }
    }

    if let Some(ips) = net.args.and_then(|a| a.cni).and_then(|c| c.ips).filter(|l| !l.is_empty()) {
        pending = replace_with(&ips)?;
    }
    if let Some(ips) = net.runtime_config.and_then(|r| r.ips).filter(|l| !l.is_empty()) {
        pending = replace_with(&ips)?;
    }

    let mut addresses = Vec::with_capacity(pending.len());
    for p in pending {
        let net = match p.net {
            Some(n) => n,
            None => parse_cidr(&p.text).ok_or_else(|| {
                plain(format!("the 'address' field is expected to be in CIDR notation, got: '{}'", p.text))
            })?,
        };
        addresses.push(Address { net, gateway: p.gateway });
    }

    let v4 = addresses.iter().filter(|a| a.net.addr().is_ipv4()).count();
    let v6 = addresses.len() - v4;
    if (v4 > 1 || v6 > 1) && !cx.version().has_chaining() {
        return Err(plain(format!("CNI version {} does not support more than 1 address per family", net.cni_version)));
    }

    let routes = ipam.routes.unwrap_or_default().into_iter().map(parse_route).collect::<Result<Vec<_>, _>>()?;
    Ok(StaticConf { addresses, routes, dns: ipam.dns.unwrap_or_default() })
}
