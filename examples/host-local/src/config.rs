//! The host-local configuration: ranges, range sets and requested addresses, validated with the
//! rules and messages of Go's `allocator.LoadIPAMConfig`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use cni_sdk::types::{IpRange, IpRequest};
use cni_sdk::{Context, Error, Route};
use ipnet::IpNet;
use serde::Deserialize;

/// Go's default `dataDir`.
pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The `ipam` section as written (Go's `IPAMConfig` with its embedded legacy `Range`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    subnet: Option<IpNet>,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
    routes: Option<Vec<Route>>,
    data_dir: Option<String>,
    resolv_conf: Option<String>,
    ranges: Option<Vec<Vec<IpRange>>>,
}

/// A validated range: every bound filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) subnet: IpNet,
    pub(crate) start: IpAddr,
    pub(crate) end: IpAddr,
    pub(crate) gateway: IpAddr,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A validated, non-empty range set of one address family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangeSet(pub(crate) Vec<Range>);

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The whole host-local configuration, ready to allocate from.
#[derive(Clone, Debug)]
pub(crate) struct IpamConf {
    /// The network name: the store directory below `data_dir`.
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) resolv_conf: Option<String>,
    pub(crate) routes: Vec<Route>,
    pub(crate) ranges: Vec<RangeSet>,
    /// Requested addresses: `CNI_ARGS` `IP`, then `args.cni.ips`, then `runtimeConfig.ips`.
    pub(crate) requested: Vec<IpAddr>,
}

/// IPv4-mapped IPv6 addresses become IPv4 (Go's `canonicalizeIP`).
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        // Truncation is intended: IPv4 arithmetic wraps within 32 bits like Go's NextIP.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// The next address (wrapping within the family).
pub(crate) fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Go's `Range.Contains` while a range is being built: subnet membership plus the bounds that
/// are already known.
fn contains_partial(subnet: &IpNet, start: Option<IpAddr>, end: Option<IpAddr>, addr: IpAddr) -> bool {
    let addr = canonical(addr);
    if !same_family(addr, subnet.addr()) || !subnet.contains(&addr) {
        return false;
    }
    if start.is_some_and(|s| to_u128(addr) < to_u128(s)) {
        return false;
    }
    if end.is_some_and(|e| to_u128(addr) > to_u128(e)) {
        return false;
    }
    true
}

impl Range {
    /// Go's `Range.Canonicalize`: defaults and sanity checks.
    pub(crate) fn canonicalize(raw: &IpRange) -> Result<Self, String> {
        let subnet = raw.subnet;
        let bits = if subnet.addr().is_ipv4() { 32 } else { 128 };
        if subnet.prefix_len() > bits - 2 {
            return Err(format!("Network {subnet} too small to allocate from"));
        }
        let network = subnet.network();
        if subnet.addr() != network {
            return Err(format!(
                "Network has host bits set. For a subnet mask of length {} the network address is {network}",
                subnet.prefix_len()
            ));
        }
        let subnet = subnet.trunc();
        let gateway = raw.gateway.map(canonical).unwrap_or_else(|| next_ip(network));
        let start = match raw.range_start.map(canonical) {
            Some(s) => {
                if !contains_partial(&subnet, Some(s), raw.range_end.map(canonical), s) {
                    return Err(format!("RangeStart {s} not in network {}", raw.subnet));
                }
                s
            }
            None => next_ip(network),
        };
        let end = match raw.range_end.map(canonical) {
            Some(e) => {
                if !contains_partial(&subnet, Some(start), Some(e), e) {
                    return Err(format!("RangeEnd {e} not in network {}", raw.subnet));
                }
                e
            }
            None => {
                let broadcast = subnet.broadcast();
                if broadcast.is_ipv4() { from_u128(to_u128(broadcast) - 1, broadcast) } else { broadcast }
            }
        };
        Ok(Self { subnet, start, end, gateway })
    }

    /// Go's `Range.Contains`.
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        contains_partial(&self.subnet, Some(self.start), Some(self.end), addr)
    }

    /// Go's `Range.Overlaps`.
    fn overlaps(&self, other: &Range) -> bool {
        if !same_family(self.start, other.start) {
            return false;
        }
        self.contains(other.start) || self.contains(other.end) || other.contains(self.start) || other.contains(self.end)
    }
}

impl RangeSet {
    /// Go's `RangeSet.Canonicalize`.
    pub(crate) fn canonicalize(raw: &[IpRange]) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("empty range set".into());
        }
        let mut ranges = Vec::with_capacity(raw.len());
        for r in raw {
            let r = Range::canonicalize(r)?;
            if let Some(first) = ranges.first().map(|f: &Range| f.start)
                && !same_family(first, r.start)
            {
                return Err("mixed address families".into());
            }
            ranges.push(r);
        }
        for (i, r1) in ranges.iter().enumerate() {
            for r2 in &ranges[i + 1..] {
                if r1.overlaps(r2) {
                    return Err(format!("subnets {r1} and {r2} overlap"));
                }
            }
        }
        Ok(Self(ranges))
    }

    /// The range holding `addr`, or Go's error.
    pub(crate) fn range_for(&self, addr: IpAddr) -> Result<&Range, String> {
        let addr = canonical(addr);
        self.0.iter().find(|r| r.contains(addr)).ok_or_else(|| format!("{addr} not in range set {self}"))
    }

    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        self.range_for(addr).is_ok()
    }

    pub(crate) fn is_ipv4(&self) -> bool {
        self.0[0].start.is_ipv4()
    }

    fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }
}

/// A plain error (code 999, like every error Go's host-local returns).
pub(crate) fn plain(msg: impl Into<String>) -> Error {
    Error::internal(msg)
}

/// Checks that a network name can only name one directory below `dataDir`.
pub(crate) fn validate_network_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid_config("invalid characters found in network name").with_details(name));
    }
    Ok(())
}

/// `CNI_ARGS` `IP`: one address, `ip` or `ip/prefix` (the prefix is ignored); an empty value
/// means none. Errors are worded like Go's `LoadArgs`.
fn env_requested_ip<C>(cx: &Context<C>) -> Result<Option<IpAddr>, Error> {
    let args = cx.args();
    if args.is_empty() {
        return Ok(None);
    }
    args.check_known(&["IP"]).map_err(|e| plain(e.to_string()))?;
    match args.get("IP") {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<IpRequest>().map(|r| Some(r.addr)).map_err(|_| {
            plain(format!("ARGS: error parsing value of pair {:?}: invalid IP address {v}", format!("IP={v}")))
        }),
    }
}

/// The JSON kind Go's `encoding/json` names in a type error.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Go's decoding of the `ipam` section, for its error messages: a value error stops at once, the
/// first type error is reported at the end (as `encoding/json` does).
#[derive(Default)]
struct GoDecode {
    type_error: Option<String>,
}

impl GoDecode {
    fn type_error(&mut self, v: &serde_json::Value, field: &str, gotype: &str) {
        if self.type_error.is_none() {
            self.type_error = Some(type_message(v, field, gotype));
        }
    }

    /// A `types.IPNet` (Go's `net.ParseCIDR`; a non-string fails inside its `UnmarshalJSON`).
    fn cidr(v: &serde_json::Value, field: &str) -> Result<(), String> {
        match v {
            serde_json::Value::Null => Ok(()),
            serde_json::Value::String(s) => {
                s.parse::<IpNet>().map(|_| ()).map_err(|_| format!("invalid CIDR address: {s}"))
            }
            other => Err(type_message(other, field, "string")),
        }
    }

    /// A `net.IP` (Go's `net.ParseIP`).
    fn ip(&mut self, v: &serde_json::Value, field: &str) -> Result<(), String> {
        match v {
            serde_json::Value::Null => Ok(()),
            serde_json::Value::String(s) => {
                s.parse::<IpAddr>().map(|_| ()).map_err(|_| format!("invalid IP address: {s}"))
            }
            other => {
                self.type_error(other, field, "net.IP");
                Ok(())
            }
        }
    }

    /// One object of `ranges`.
    fn range(&mut self, v: &serde_json::Value) -> Result<(), String> {
        let Some(obj) = v.as_object() else { return Ok(()) };
        for (k, v) in obj {
            match k.as_str() {
                "subnet" => Self::cidr(v, "Range.ipam.ranges.subnet")?,
                "rangeStart" | "rangeEnd" | "gateway" => self.ip(v, &format!("Range.ipam.ranges.{k}"))?,
                _ => {}
            }
        }
        Ok(())
    }

    /// One object of `routes` (decoded by `types.Route`'s own `UnmarshalJSON`: every failure
    /// inside stops at once and names the `routes` field).
    fn route(v: &serde_json::Value) -> Result<(), String> {
        let Some(obj) = v.as_object() else { return Ok(()) };
        for (k, v) in obj {
            match (k.as_str(), v) {
                ("dst", _) => Self::cidr(v, "IPAMConfig.ipam.routes")?,
                ("gw", serde_json::Value::String(s)) if s.parse::<IpAddr>().is_err() => {
                    return Err(format!("invalid IP address: {s}"));
                }
                ("gw", serde_json::Value::String(_) | serde_json::Value::Null) => {}
                ("gw", other) => return Err(type_message(other, "IPAMConfig.ipam.routes", "net.IP")),
                _ => {}
            }
        }
        Ok(())
    }
}

/// `encoding/json`'s type error: `json: cannot unmarshal <kind> into Go struct field <field> of
/// type <type>`.
fn type_message(v: &serde_json::Value, field: &str, gotype: &str) -> String {
    format!("json: cannot unmarshal {} into Go struct field {field} of type {gotype}", json_kind(v))
}

/// The values of the `ipam` section that Go's `encoding/json` rejects, worded as Go words them
/// (`invalid CIDR address: <value>`, `invalid IP address: <value>`, `json: cannot unmarshal
/// <kind> into Go struct field IPAMConfig.ipam.<key> of type <type>`), in document order.
fn go_decode_errors(ipam: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    use serde_json::Value;
    let mut d = GoDecode::default();
    for (key, v) in ipam {
        let field = format!("IPAMConfig.ipam.{key}");
        match (key.as_str(), v) {
            (_, Value::Null) => {}
            ("subnet", _) => GoDecode::cidr(v, &field)?,
            ("rangeStart" | "rangeEnd" | "gateway", _) => d.ip(v, &field)?,
            ("dataDir" | "resolvConf", Value::String(_)) => {}
            ("dataDir" | "resolvConf", _) => d.type_error(v, &field, "string"),
            ("ranges", Value::Array(sets)) => {
                for set in sets {
                    match set {
                        Value::Array(ranges) => ranges.iter().try_for_each(|r| d.range(r))?,
                        Value::Null => {}
                        other => d.type_error(other, &field, "allocator.RangeSet"),
                    }
                }
            }
            ("ranges", _) => d.type_error(v, &field, "[]allocator.RangeSet"),
            ("routes", Value::Array(routes)) => routes.iter().try_for_each(GoDecode::route)?,
            ("routes", _) => d.type_error(v, &field, "[]*types.Route"),
            _ => {}
        }
    }
    d.type_error.map_or(Ok(()), Err)
}

/// Go's `LoadIPAMConfig`: the network's `ipam` section, the `ipRanges` and `ips` capabilities,
/// `args.cni.ips` and `CNI_ARGS`.
pub(crate) fn load<C>(cx: &Context<C>) -> Result<IpamConf, Error> {
    let config = cx.config();
    let ipam = config.ipam.as_ref().ok_or_else(|| plain("IPAM config missing 'ipam' key"))?;
    go_decode_errors(&ipam.extra).map_err(plain)?;
    let raw: RawIpam =
        serde_json::from_value(serde_json::Value::Object(ipam.extra.clone())).map_err(|e| plain(e.to_string()))?;
    validate_network_name(&config.name)?;

    let mut requested = Vec::new();
    if let Some(ip) = env_requested_ip(cx)? {
        requested.push(canonical(ip));
    }
    if let Some(ips) = config.args.as_ref().and_then(|a| a.cni.as_ref()).and_then(|c| c.ips.as_ref()) {
        requested.extend(ips.iter().map(|r| canonical(r.addr)));
    }
    if let Some(ips) = config.runtime_config.as_ref().and_then(|r| r.ips.as_ref()) {
        requested.extend(ips.iter().map(|r| canonical(r.addr)));
    }

    // Go keeps requested addresses in a map: the same address from two sources counts once.
    let mut seen = std::collections::HashSet::new();
    requested.retain(|ip| seen.insert(*ip));

    let mut raw_sets: Vec<Vec<IpRange>> = Vec::new();
    if let Some(sets) = config.runtime_config.as_ref().and_then(|r| r.ip_ranges.as_ref()) {
        raw_sets.extend(sets.iter().cloned());
    }
    if let Some(subnet) = raw.subnet {
        raw_sets.push(vec![IpRange {
            subnet,
            range_start: raw.range_start,
            range_end: raw.range_end,
            gateway: raw.gateway,
        }]);
    }
    raw_sets.extend(raw.ranges.unwrap_or_default());
    if raw_sets.is_empty() {
        return Err(plain("no IP ranges specified"));
    }

    let mut ranges = Vec::with_capacity(raw_sets.len());
    for (i, set) in raw_sets.iter().enumerate() {
        ranges.push(RangeSet::canonicalize(set).map_err(|e| plain(format!("invalid range set {i}: {e}")))?);
    }
    let v4 = ranges.iter().filter(|s| s.is_ipv4()).count();
    let v6 = ranges.len() - v4;
    if (v4 > 1 || v6 > 1) && !cx.version().has_chaining() {
        return Err(plain(format!(
            "CNI version {} does not support more than 1 address per family",
            cx.version().as_str()
        )));
    }
    for (i, a) in ranges.iter().enumerate() {
        for (j, b) in ranges.iter().enumerate().skip(i + 1) {
            if a.overlaps(b) {
                return Err(plain(format!("range set {i} overlaps with {j}")));
            }
        }
    }

    let data_dir = match raw.data_dir.as_deref() {
        None | Some("") => PathBuf::from(DEFAULT_DATA_DIR),
        Some(d) => PathBuf::from(d),
    };
    Ok(IpamConf {
        name: config.name.clone(),
        data_dir,
        resolv_conf: raw.resolv_conf.filter(|s| !s.is_empty()),
        routes: raw.routes.unwrap_or_default(),
        ranges,
        requested,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> IpRange {
        IpRange {
            subnet: subnet.parse().unwrap(),
            range_start: start.map(|s| s.parse().unwrap()),
            range_end: end.map(|s| s.parse().unwrap()),
            gateway: gw.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn defaults_v4_and_v6() {
        let r = Range::canonicalize(&range("10.201.0.0/24", None, None, None)).unwrap();
        assert_eq!(r.to_string(), "10.201.0.1-10.201.0.254");
        assert_eq!(r.gateway.to_string(), "10.201.0.1");
        let r = Range::canonicalize(&range("fd00:201::/120", None, None, None)).unwrap();
        assert_eq!(r.to_string(), "fd00:201::1-fd00:201::ff");
        assert_eq!(r.gateway.to_string(), "fd00:201::1");
    }

    #[test]
    fn range_errors_are_gos() {
        let e = |r| Range::canonicalize(&r).unwrap_err();
        assert_eq!(e(range("10.201.0.0/31", None, None, None)), "Network 10.201.0.0/31 too small to allocate from");
        assert_eq!(e(range("fd00:201::/127", None, None, None)), "Network fd00:201::/127 too small to allocate from");
        assert_eq!(
            e(range("10.201.0.5/24", None, None, None)),
            "Network has host bits set. For a subnet mask of length 24 the network address is 10.201.0.0"
        );
        assert_eq!(
            e(range("10.201.0.0/24", Some("10.201.1.1"), None, None)),
            "RangeStart 10.201.1.1 not in network 10.201.0.0/24"
        );
        assert_eq!(
            e(range("10.201.0.0/24", None, Some("10.201.1.1"), None)),
            "RangeEnd 10.201.1.1 not in network 10.201.0.0/24"
        );
        // End before start.
        assert_eq!(
            e(range("10.201.0.0/24", Some("10.201.0.50"), Some("10.201.0.40"), None)),
            "RangeStart 10.201.0.50 not in network 10.201.0.0/24"
        );
        // /30 is the smallest allocatable IPv4 network.
        let r = Range::canonicalize(&range("10.201.0.0/30", None, None, None)).unwrap();
        assert_eq!(r.to_string(), "10.201.0.1-10.201.0.2");
    }

    #[test]
    fn range_sets() {
        let e = |v: Vec<IpRange>| RangeSet::canonicalize(&v).unwrap_err();
        assert_eq!(e(vec![]), "empty range set");
        assert_eq!(
            e(vec![range("10.201.0.0/24", None, None, None), range("fd00:201::/64", None, None, None)]),
            "mixed address families"
        );
        assert_eq!(
            e(vec![range("10.201.0.0/24", None, None, None), range("10.201.0.0/25", None, None, None)]),
            "subnets 10.201.0.1-10.201.0.254 and 10.201.0.1-10.201.0.126 overlap"
        );
        // Disjoint parts of one subnet are fine.
        let s = RangeSet::canonicalize(&[
            range("10.201.0.0/24", Some("10.201.0.10"), Some("10.201.0.19"), None),
            range("10.201.0.0/24", Some("10.201.0.20"), Some("10.201.0.29"), None),
        ])
        .unwrap();
        assert_eq!(s.to_string(), "10.201.0.10-10.201.0.19,10.201.0.20-10.201.0.29");
        assert!(s.contains("10.201.0.25".parse().unwrap()));
        assert!(s.contains("::ffff:10.201.0.25".parse().unwrap()), "IPv4-mapped addresses are canonicalised");
        assert!(!s.contains("10.201.0.30".parse().unwrap()));
        assert_eq!(
            s.range_for("10.201.0.9".parse().unwrap()).unwrap_err(),
            "10.201.0.9 not in range set 10.201.0.10-10.201.0.19,10.201.0.20-10.201.0.29"
        );
    }

    #[test]
    fn network_names() {
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(validate_network_name(bad).is_err(), "{bad:?}");
        }
        validate_network_name("net-1.a_b").unwrap();
    }

    #[test]
    fn decode_errors_carry_the_value_as_gos() {
        let e = |v: serde_json::Value| go_decode_errors(v.as_object().unwrap()).unwrap_err();
        assert_eq!(e(serde_json::json!({"subnet": "10.239.1.0/33"})), "invalid CIDR address: 10.239.1.0/33");
        assert_eq!(
            e(serde_json::json!({"ranges": [[{"subnet": "10.239.1.0/24", "rangeEnd": "10.239.1.300"}]]})),
            "invalid IP address: 10.239.1.300"
        );
        assert_eq!(e(serde_json::json!({"routes": [{"dst": "default"}]})), "invalid CIDR address: default");
        // A value error stops decoding; the first type error is reported when none comes.
        assert_eq!(e(serde_json::json!({"dataDir": 5, "gateway": "gw"})), "invalid IP address: gw");
        assert_eq!(
            e(serde_json::json!({"dataDir": 5, "ranges": {}})),
            "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.dataDir of type string"
        );
        go_decode_errors(serde_json::json!({"subnet": "10.239.1.0/24", "dataDir": null}).as_object().unwrap()).unwrap();
    }
}
