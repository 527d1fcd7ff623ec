//! Rules as nf_tables expressions: the model's conditions and verdicts in the bytecode `nft`
//! 1.0.6 generates for them (so `nft list` prints them as the `nft` backend writes them, and
//! Go's knftables finds them), and the decoding of listed expressions back into the model.
//!
//! The expressions are kept in a small intermediate form ([`Expr`]); `nft_netlink` turns it into
//! netlink attributes and back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_types::MacAddr;
use ipnet::IpNet;

use super::error::{FirewallError, FirewallResult};
use super::model::{
    AddrType, Condition, ConnState, Match, PortRange, Ports, Protocol, Raw, Rule, TableFamily, Verdict,
};

// Payload bases (NFT_PAYLOAD_*_HEADER).
pub(crate) const BASE_LINK: u32 = 0;
pub(crate) const BASE_NETWORK: u32 = 1;
pub(crate) const BASE_TRANSPORT: u32 = 2;

// Meta keys (NFT_META_*).
pub(crate) const META_PROTOCOL: u32 = 1;
pub(crate) const META_MARK: u32 = 3;
pub(crate) const META_IIFNAME: u32 = 6;
pub(crate) const META_OIFNAME: u32 = 7;
pub(crate) const META_IIFTYPE: u32 = 8;
pub(crate) const META_NFPROTO: u32 = 15;
pub(crate) const META_L4PROTO: u32 = 16;

/// NFT_CT_STATE.
pub(crate) const CT_STATE: u32 = 0;
/// NFT_FIB_RESULT_ADDRTYPE.
pub(crate) const FIB_RESULT_ADDRTYPE: u32 = 3;
/// NFTA_FIB_F_SADDR / NFTA_FIB_F_DADDR.
pub(crate) const FIB_F_SADDR: u32 = 1;
pub(crate) const FIB_F_DADDR: u32 = 2;
/// NF_NAT_RANGE_PROTO_SPECIFIED.
pub(crate) const NAT_PROTO_SPECIFIED: u32 = 2;

// Verdict codes.
pub(crate) const NF_DROP: i32 = 0;
pub(crate) const NF_ACCEPT: i32 = 1;
pub(crate) const NFT_CONTINUE: i32 = -1;
pub(crate) const NFT_JUMP: i32 = -3;
pub(crate) const NFT_GOTO: i32 = -4;
pub(crate) const NFT_RETURN: i32 = -5;

// NFPROTO_* of `meta nfproto` and nat families.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// nft's data type of port sets (`inet_service`) and of conntrack-state sets (`ct_state`).
pub(crate) const TYPE_INET_SERVICE: u32 = 13;
pub(crate) const TYPE_CT_STATE: u32 = 26;

/// Comparison operators (NFT_CMP_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::Eq => 0,
            Self::Neq => 1,
            Self::Lt => 2,
            Self::Lte => 3,
            Self::Gt => 4,
            Self::Gte => 5,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::Eq,
            1 => Self::Neq,
            2 => Self::Lt,
            3 => Self::Lte,
            4 => Self::Gt,
            5 => Self::Gte,
            _ => return None,
        })
    }
}

/// An anonymous constant set a rule looks values up in (`{ 80, 443 }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnonSet {
    /// nft's data type of the keys.
    pub(crate) key_type: u32,
    /// The length of a key.
    pub(crate) key_len: u32,
    /// Interval set: `elements` are (key, interval end) in nft's interval encoding.
    pub(crate) interval: bool,
    /// The elements: key bytes and whether the element ends an interval.
    pub(crate) elements: Vec<(Vec<u8>, bool)>,
}

/// One nf_tables expression. Loads and stores use register 1 (the verdict register for
/// verdicts), as nft does; NAT reads its operands from registers 1 to 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `payload load <len>b @ <base> + <offset> => reg 1`.
    Payload { base: u32, offset: u32, len: u32 },
    /// `meta load <key> => reg 1`.
    Meta { key: u32 },
    /// `meta set <key> with reg 1`.
    MetaSet { key: u32 },
    /// `ct load <key> => reg 1`.
    Ct { key: u32 },
    /// `fib <flags> <result> => reg 1`.
    Fib { flags: u32, result: u32 },
    /// `cmp <op> reg 1 <data>`.
    Cmp { op: CmpOp, data: Vec<u8> },
    /// `bitwise reg 1 = (reg 1 & mask) ^ xor`.
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `range <eq|neq> reg 1 <from> <to>`.
    Range { negated: bool, from: Vec<u8>, to: Vec<u8> },
    /// `lookup reg 1 set <set>`; `inverted` for `!=`. Written with the anonymous set it creates;
    /// listed with the kernel's set name (and the set's elements when they were read).
    Lookup { set: LookupSet, inverted: bool },
    /// `immediate reg <reg> <data>`.
    Immediate { reg: u32, data: Vec<u8> },
    /// `immediate reg 0 <verdict> [-> chain]`.
    Verdict { code: i32, chain: Option<String> },
    /// `nat <snat|dnat> <family> addr_min reg 1 [proto_min reg 2 [proto_max reg 3]] [flags]`.
    Nat { dnat: bool, family: u8, addr_reg: bool, proto_min_reg: bool, proto_max_reg: bool, flags: u32 },
    /// `masq` (without options).
    Masq,
    /// `counter`.
    Counter { packets: u64, bytes: u64 },
    /// Any other expression, kept as its name and attributes.
    Other { name: String, attrs: Vec<(u16, Vec<u8>)> },
}

/// The set of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupSet {
    /// A set to create with the rule.
    New(AnonSet),
    /// A listed set: its name, and its content when known.
    Listed { name: String, set: Option<AnonSet> },
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// The IP family a condition on an address implies, as a `meta nfproto` or ether type value.
fn ip_version(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { NFPROTO_IPV4 } else { NFPROTO_IPV6 }
}

struct Encoder {
    family: TableFamily,
    out: Vec<Expr>,
    /// The network protocol a dependency already established.
    l3: Option<u8>,
    /// The transport protocol a dependency already established.
    l4: Option<u8>,
}

impl Encoder {
    /// The dependency of a network-header match, as nft adds it: `meta nfproto` in inet tables,
    /// `meta protocol` (ether type) in bridge tables.
    fn l3_dependency(&mut self, version: u8) {
        if self.l3 == Some(version) {
            return;
        }
        match self.family {
            TableFamily::Inet => {
                self.out.push(Expr::Meta { key: META_NFPROTO });
                self.out.push(Expr::Cmp { op: CmpOp::Eq, data: vec![version] });
            }
            TableFamily::Bridge => {
                let ethertype: u16 = if version == NFPROTO_IPV4 { 0x0800 } else { 0x86dd };
                self.out.push(Expr::Meta { key: META_PROTOCOL });
                self.out.push(Expr::Cmp { op: CmpOp::Eq, data: ethertype.to_be_bytes().to_vec() });
            }
            TableFamily::Ip | TableFamily::Ip6 => {}
        }
        self.l3 = Some(version);
    }

    fn address(&mut self, negated: bool, source: bool, net: &IpNet) {
        let addr = net.addr();
        self.l3_dependency(ip_version(addr));
        let (offset, full) = match (addr, source) {
            (IpAddr::V4(_), true) => (12, 4),
            (IpAddr::V4(_), false) => (16, 4),
            (IpAddr::V6(_), true) => (8, 16),
            (IpAddr::V6(_), false) => (24, 16),
        };
        let bytes = ip_bytes(net.network());
        let prefix = u32::from(net.prefix_len());
        let op = if negated { CmpOp::Neq } else { CmpOp::Eq };
        if prefix > 0 && prefix % 8 == 0 {
            // A byte-aligned prefix loads only its bytes.
            let len = prefix / 8;
            self.out.push(Expr::Payload { base: BASE_NETWORK, offset, len });
            self.out.push(Expr::Cmp { op, data: bytes[..len as usize].to_vec() });
        } else {
            self.out.push(Expr::Payload { base: BASE_NETWORK, offset, len: full });
            self.out.push(Expr::Bitwise { mask: ip_bytes(net.netmask()), xor: vec![0; full as usize] });
            self.out.push(Expr::Cmp { op, data: bytes });
        }
    }

    fn ports(&mut self, negated: bool, source: bool, ports: &Ports, proto: Protocol) {
        // `tcp dport ...` depends on `meta l4proto tcp`, once per rule.
        let number = proto_number(proto);
        if self.l4 != Some(number) {
            self.out.push(Expr::Meta { key: META_L4PROTO });
            self.out.push(Expr::Cmp { op: CmpOp::Eq, data: vec![number] });
            self.l4 = Some(number);
        }
        self.out.push(Expr::Payload { base: BASE_TRANSPORT, offset: if source { 0 } else { 2 }, len: 2 });
        match ports {
            Ports::Single(r) if r.is_single() => {
                let op = if negated { CmpOp::Neq } else { CmpOp::Eq };
                self.out.push(Expr::Cmp { op, data: r.first.to_be_bytes().to_vec() });
            }
            Ports::Single(r) if !negated => {
                self.out.push(Expr::Cmp { op: CmpOp::Gte, data: r.first.to_be_bytes().to_vec() });
                self.out.push(Expr::Cmp { op: CmpOp::Lte, data: r.last.to_be_bytes().to_vec() });
            }
            Ports::Single(r) => self.out.push(Expr::Range {
                negated: true,
                from: r.first.to_be_bytes().to_vec(),
                to: r.last.to_be_bytes().to_vec(),
            }),
            Ports::List(list) => {
                let set = port_set(list);
                self.out.push(Expr::Lookup { set: LookupSet::New(set), inverted: negated });
            }
        }
    }
}

/// The set nft builds for a list of ports: plain when every entry is one port, else an interval
/// set (ranges merged, each as a start element and an end element one past it).
pub(crate) fn port_set(list: &[PortRange]) -> AnonSet {
    let key = |p: u16| p.to_be_bytes().to_vec();
    if list.iter().all(PortRange::is_single) {
        let mut ports: Vec<u16> = list.iter().map(|r| r.first).collect();
        ports.sort_unstable();
        ports.dedup();
        return AnonSet {
            key_type: TYPE_INET_SERVICE,
            key_len: 2,
            interval: false,
            elements: ports.into_iter().map(|p| (key(p), false)).collect(),
        };
    }
    let mut ranges: Vec<(u32, u32)> = list.iter().map(|r| (u32::from(r.first), u32::from(r.last))).collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut elements = Vec::new();
    if merged.first().is_some_and(|(a, _)| *a > 0) {
        elements.push((key(0), true));
    }
    for (a, b) in merged {
        elements.push((key(a as u16), false));
        if b < u32::from(u16::MAX) {
            elements.push((key((b + 1) as u16), true));
        }
    }
    AnonSet { key_type: TYPE_INET_SERVICE, key_len: 2, interval: true, elements }
}

/// The set of `ct state != { a, b }`.
fn ct_state_set(states: &[ConnState]) -> AnonSet {
    let mut bits: Vec<u32> = states.iter().map(|s| ct_state_bit(*s)).collect();
    bits.sort_unstable();
    bits.dedup();
    AnonSet {
        key_type: TYPE_CT_STATE,
        key_len: 4,
        interval: false,
        elements: bits.into_iter().map(|b| (b.to_ne_bytes().to_vec(), false)).collect(),
    }
}

fn ip_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(crate) fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
        Protocol::Icmp => 1,
        Protocol::IcmpV6 => 58,
    }
}

fn proto_of_number(n: u8) -> Option<Protocol> {
    Some(match n {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        132 => Protocol::Sctp,
        1 => Protocol::Icmp,
        58 => Protocol::IcmpV6,
        _ => return None,
    })
}

/// The conntrack state bits (`NF_CT_STATE_*`).
fn ct_state_bit(s: ConnState) -> u32 {
    match s {
        ConnState::Invalid => 1,
        ConnState::Established => 2,
        ConnState::Related => 4,
        ConnState::New => 8,
        ConnState::Untracked => 64,
    }
}

fn ct_states_of_mask(mask: u32) -> Option<Vec<ConnState>> {
    let all = [ConnState::Invalid, ConnState::New, ConnState::Related, ConnState::Established, ConnState::Untracked];
    let states: Vec<ConnState> = all.into_iter().filter(|s| mask & ct_state_bit(*s) != 0).collect();
    let covered: u32 = states.iter().map(|s| ct_state_bit(*s)).sum();
    (covered == mask && !states.is_empty()).then_some(states)
}

/// The `RTN_*` route type of an address type.
fn addr_type_number(t: AddrType) -> u32 {
    match t {
        AddrType::Unicast => 1,
        AddrType::Local => 2,
        AddrType::Broadcast => 3,
        AddrType::Multicast => 5,
    }
}

fn addr_type_of_number(n: u32) -> Option<AddrType> {
    Some(match n {
        1 => AddrType::Unicast,
        2 => AddrType::Local,
        3 => AddrType::Broadcast,
        5 => AddrType::Multicast,
        _ => return None,
    })
}

/// An interface name as `meta iifname` compares it: the name padded with NULs to IFNAMSIZ.
fn ifname_bytes(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(16, 0);
    v
}

/// The expressions of a rule (in normal form) for a table of `family`, the way nft encodes it.
/// Raw nft text cannot be encoded here (it needs nft's parser).
pub(crate) fn encode_rule(family: TableFamily, rule: &Rule) -> FirewallResult<Vec<Expr>> {
    let mut e = Encoder { family, out: Vec::new(), l3: None, l4: None };
    let conds = &rule.conditions;
    for (i, c) in conds.iter().enumerate() {
        let neg = c.negated;
        let op = if neg { CmpOp::Neq } else { CmpOp::Eq };
        match &c.test {
            Match::Source(n) => e.address(neg, true, n),
            Match::Destination(n) => e.address(neg, false, n),
            Match::InInterface(name) | Match::OutInterface(name) => {
                let key = if matches!(c.test, Match::InInterface(_)) { META_IIFNAME } else { META_OIFNAME };
                e.out.push(Expr::Meta { key });
                e.out.push(Expr::Cmp { op, data: ifname_bytes(name) });
            }
            Match::Protocol(p) => {
                // `tcp dport ...` right after carries the protocol (nft drops a separate one).
                let next_is_port = conds
                    .get(i + 1)
                    .is_some_and(|n| matches!(n.test, Match::SourcePort(_) | Match::DestinationPort(_)));
                if next_is_port && !neg {
                    continue;
                }
                e.out.push(Expr::Meta { key: META_L4PROTO });
                e.out.push(Expr::Cmp { op, data: vec![proto_number(*p)] });
            }
            Match::SourcePort(p) | Match::DestinationPort(p) => {
                let proto = rule.protocol().unwrap_or(Protocol::Tcp);
                e.ports(neg, matches!(c.test, Match::SourcePort(_)), p, proto);
            }
            Match::Mark { value, mask } => {
                e.out.push(Expr::Meta { key: META_MARK });
                if *mask != u32::MAX {
                    e.out.push(Expr::Bitwise { mask: mask.to_ne_bytes().to_vec(), xor: vec![0; 4] });
                }
                e.out.push(Expr::Cmp { op, data: value.to_ne_bytes().to_vec() });
            }
            Match::ConnState(states) => {
                e.out.push(Expr::Ct { key: CT_STATE });
                if !neg {
                    let mask: u32 = states.iter().map(|s| ct_state_bit(*s)).fold(0, |a, b| a | b);
                    e.out.push(Expr::Bitwise { mask: mask.to_ne_bytes().to_vec(), xor: vec![0; 4] });
                    e.out.push(Expr::Cmp { op: CmpOp::Neq, data: vec![0; 4] });
                } else if states.len() == 1 {
                    e.out.push(Expr::Cmp { op: CmpOp::Neq, data: ct_state_bit(states[0]).to_ne_bytes().to_vec() });
                } else {
                    e.out.push(Expr::Lookup { set: LookupSet::New(ct_state_set(states)), inverted: true });
                }
            }
            Match::SourceAddrType(t) | Match::DestinationAddrType(t) => {
                let flags = if matches!(c.test, Match::SourceAddrType(_)) { FIB_F_SADDR } else { FIB_F_DADDR };
                e.out.push(Expr::Fib { flags, result: FIB_RESULT_ADDRTYPE });
                e.out.push(Expr::Cmp { op, data: addr_type_number(*t).to_ne_bytes().to_vec() });
            }
            Match::EtherSource(mac) => {
                if family != TableFamily::Bridge {
                    // Only on Ethernet devices (ARPHRD_ETHER).
                    e.out.push(Expr::Meta { key: META_IIFTYPE });
                    e.out.push(Expr::Cmp { op: CmpOp::Eq, data: 1u16.to_ne_bytes().to_vec() });
                }
                e.out.push(Expr::Payload { base: BASE_LINK, offset: 6, len: 6 });
                e.out.push(Expr::Cmp { op, data: <[u8; 6]>::from(*mac).to_vec() });
            }
            Match::Raw(raw) => {
                return Err(FirewallError::invalid(format!(
                    "the nftables netlink backend cannot encode {raw:?} (rule: {rule})"
                )));
            }
        }
    }
    match &rule.verdict {
        Verdict::Accept => e.out.push(Expr::Verdict { code: NF_ACCEPT, chain: None }),
        Verdict::Drop => e.out.push(Expr::Verdict { code: NF_DROP, chain: None }),
        Verdict::Return => e.out.push(Expr::Verdict { code: NFT_RETURN, chain: None }),
        Verdict::Continue => e.out.push(Expr::Verdict { code: NFT_CONTINUE, chain: None }),
        Verdict::Jump(c) => e.out.push(Expr::Verdict { code: NFT_JUMP, chain: Some(c.clone()) }),
        Verdict::Goto(c) => e.out.push(Expr::Verdict { code: NFT_GOTO, chain: Some(c.clone()) }),
        Verdict::Masquerade => e.out.push(Expr::Masq),
        Verdict::Dnat { addr, port } | Verdict::Snat { addr, port } => {
            e.out.push(Expr::Immediate { reg: 1, data: ip_bytes(*addr) });
            let (mut min, mut max) = (false, false);
            if let Some(p) = port {
                e.out.push(Expr::Immediate { reg: 2, data: p.first.to_be_bytes().to_vec() });
                min = true;
                if !p.is_single() {
                    e.out.push(Expr::Immediate { reg: 3, data: p.last.to_be_bytes().to_vec() });
                    max = true;
                }
            }
            e.out.push(Expr::Nat {
                dnat: matches!(rule.verdict, Verdict::Dnat { .. }),
                family: ip_version(*addr),
                addr_reg: true,
                proto_min_reg: min,
                proto_max_reg: max,
                flags: if min { NAT_PROTO_SPECIFIED } else { 0 },
            });
        }
        Verdict::SetMark { value, mask } => {
            if *mask == u32::MAX {
                e.out.push(Expr::Immediate { reg: 1, data: value.to_ne_bytes().to_vec() });
            } else {
                // mark = (mark & ~mask) ^ value
                e.out.push(Expr::Meta { key: META_MARK });
                e.out.push(Expr::Bitwise { mask: (!mask).to_ne_bytes().to_vec(), xor: value.to_ne_bytes().to_vec() });
            }
            e.out.push(Expr::MetaSet { key: META_MARK });
        }
        Verdict::Raw(raw) => {
            return Err(FirewallError::invalid(format!(
                "the nftables netlink backend cannot encode {raw:?} (rule: {rule})"
            )));
        }
    }
    Ok(e.out)
}

/// True when the rule has raw nft text, which only `nft` itself can compile.
pub(crate) fn has_raw_nft(rule: &Rule) -> bool {
    rule.conditions.iter().any(|c| matches!(c.test, Match::Raw(_))) || matches!(rule.verdict, Verdict::Raw(_))
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn u32_ne(data: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

fn u16_be(data: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(..2)?.try_into().ok()?))
}

/// The prefix length of a contiguous netmask, `None` for any other mask.
fn prefix_of_mask(mask: &[u8]) -> Option<u8> {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let full = ones / 8;
    let contiguous = mask.iter().enumerate().all(|(i, b)| {
        let i = i as u32;
        if i < full {
            *b == 0xff
        } else if i == full {
            *b == 0xffu8.checked_shl(8 - (ones % 8)).unwrap_or(0)
        } else {
            *b == 0
        }
    });
    contiguous.then_some(ones as u8)
}

fn ip_of(bytes: &[u8], v6: bool) -> Option<IpAddr> {
    if v6 {
        let mut b = [0u8; 16];
        b.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        let mut b = [0u8; 4];
        b.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    }
}

/// An expression as listings show what the model does not cover: compact JSON, `counter` as
/// nft prints it, anything else as `{"<name>": {"<attribute number>": "<hex>", ...}}`.
pub(crate) fn raw_json(e: &Expr) -> Raw {
    let v = match e {
        Expr::Counter { packets, bytes } => serde_json::json!({"counter": {"packets": packets, "bytes": bytes}}),
        Expr::Other { name, attrs } => {
            let mut m = serde_json::Map::new();
            for (k, v) in attrs {
                m.insert(k.to_string(), serde_json::Value::String(v.iter().map(|b| format!("{b:02x}")).collect()));
            }
            serde_json::json!({ name.clone(): m })
        }
        other => serde_json::json!({"netlink": format!("{other:?}")}),
    };
    Raw::NftJson(v.to_string())
}

struct Decoder<'a> {
    family: TableFamily,
    exprs: &'a [Expr],
    i: usize,
    rule: Rule,
    /// The network protocol a dependency established (NFPROTO_*).
    l3: Option<u8>,
}

impl Decoder<'_> {
    fn at(&self, k: usize) -> Option<&Expr> {
        self.exprs.get(self.i + k)
    }

    fn push(&mut self, negated: bool, test: Match) {
        self.rule.conditions.push(Condition { negated, test });
    }

    /// The IP version of network-header matches: the table's, or a dependency's.
    fn l3(&self) -> Option<u8> {
        match self.family {
            TableFamily::Ip => Some(NFPROTO_IPV4),
            TableFamily::Ip6 => Some(NFPROTO_IPV6),
            TableFamily::Inet | TableFamily::Bridge => self.l3,
        }
    }

    /// Tries the patterns at the current position; consumes what matched.
    fn step(&mut self) -> bool {
        let Some(first) = self.at(0).cloned() else { return false };
        match first {
            Expr::Meta { key } => self.meta(key),
            Expr::Payload { base, offset, len } => self.payload(base, offset, len),
            Expr::Ct { key: CT_STATE } => self.ct_state(),
            Expr::Fib { flags, result: FIB_RESULT_ADDRTYPE } => {
                let Some(Expr::Cmp { op, data }) = self.at(1).cloned() else { return false };
                let Some(t) = u32_ne(&data).and_then(addr_type_of_number) else { return false };
                let negated = match op {
                    CmpOp::Eq => false,
                    CmpOp::Neq => true,
                    _ => return false,
                };
                let test = match flags {
                    FIB_F_SADDR => Match::SourceAddrType(t),
                    FIB_F_DADDR => Match::DestinationAddrType(t),
                    _ => return false,
                };
                self.push(negated, test);
                self.i += 2;
                true
            }
            _ => false,
        }
    }

    fn meta(&mut self, key: u32) -> bool {
        if key == META_MARK
            && let (Some(Expr::Bitwise { mask, xor }), Some(Expr::Cmp { op, data })) =
                (self.at(1).cloned(), self.at(2).cloned())
        {
            // `meta mark & mask == value`.
            let negated = match op {
                CmpOp::Eq => false,
                CmpOp::Neq => true,
                _ => return false,
            };
            let (Some(mask), Some(value)) = (u32_ne(&mask), u32_ne(&data)) else { return false };
            if xor.iter().any(|b| *b != 0) || data.len() != 4 {
                return false;
            }
            self.push(negated, Match::Mark { value, mask });
            self.i += 3;
            return true;
        }
        let Some(Expr::Cmp { op, data }) = self.at(1).cloned() else {
            // `meta mark set ...` with a computed value is a verdict, handled at the end.
            return false;
        };
        let negated = match op {
            CmpOp::Eq => false,
            CmpOp::Neq => true,
            _ => return false,
        };
        match key {
            META_NFPROTO if !negated && data.len() == 1 => {
                // A dependency of the network-header match that follows.
                if !matches!(self.at(2), Some(Expr::Payload { base: BASE_NETWORK, .. })) {
                    return false;
                }
                self.l3 = Some(data[0]);
                self.i += 2;
                true
            }
            META_PROTOCOL if !negated && data.len() == 2 => {
                let version = match u16::from_be_bytes([data[0], data[1]]) {
                    0x0800 => NFPROTO_IPV4,
                    0x86dd => NFPROTO_IPV6,
                    _ => return false,
                };
                if !matches!(self.at(2), Some(Expr::Payload { base: BASE_NETWORK, .. })) {
                    return false;
                }
                self.l3 = Some(version);
                self.i += 2;
                true
            }
            META_IIFTYPE if !negated && data == 1u16.to_ne_bytes() => {
                // The dependency of `ether saddr` outside bridge tables.
                if !matches!(self.at(2), Some(Expr::Payload { base: BASE_LINK, offset: 6, len: 6 })) {
                    return false;
                }
                self.i += 2;
                true
            }
            META_L4PROTO if data.len() == 1 => {
                let Some(p) = proto_of_number(data[0]) else { return false };
                self.push(negated, Match::Protocol(p));
                self.i += 2;
                true
            }
            META_IIFNAME | META_OIFNAME if data.len() == 16 => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(16);
                if end == 0 || data[end..].iter().any(|b| *b != 0) {
                    return false;
                }
                let Ok(name) = std::str::from_utf8(&data[..end]) else { return false };
                let test = if key == META_IIFNAME {
                    Match::InInterface(name.to_owned())
                } else {
                    Match::OutInterface(name.to_owned())
                };
                self.push(negated, test);
                self.i += 2;
                true
            }
            META_MARK => {
                let Some(value) = (data.len() == 4).then(|| u32_ne(&data)).flatten() else { return false };
                self.push(negated, Match::Mark { value, mask: u32::MAX });
                self.i += 2;
                true
            }
            _ => false,
        }
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32) -> bool {
        match base {
            BASE_NETWORK => self.address(offset, len),
            BASE_TRANSPORT if len == 2 && (offset == 0 || offset == 2) => self.port(offset == 0),
            BASE_LINK if offset == 6 && len == 6 => {
                let Some(Expr::Cmp { op, data }) = self.at(1).cloned() else { return false };
                let negated = match op {
                    CmpOp::Eq => false,
                    CmpOp::Neq => true,
                    _ => return false,
                };
                let Ok(octets) = <[u8; 6]>::try_from(data.as_slice()) else { return false };
                self.push(negated, Match::EtherSource(MacAddr::from(octets)));
                self.i += 2;
                true
            }
            _ => false,
        }
    }

    fn address(&mut self, offset: u32, len: u32) -> bool {
        let Some(version) = self.l3() else { return false };
        let v6 = version == NFPROTO_IPV6;
        let (src, dst, full) = if v6 { (8, 24, 16) } else { (12, 16, 4) };
        let source = match offset {
            o if o == src => true,
            o if o == dst => false,
            _ => return false,
        };
        if len == 0 || len > full {
            return false;
        }
        let (prefix, cmp_at) = match self.at(1) {
            Some(Expr::Bitwise { mask, xor }) if len == full && xor.iter().all(|b| *b == 0) => {
                let Some(p) = prefix_of_mask(mask) else { return false };
                (p, 2)
            }
            _ => ((len * 8) as u8, 1),
        };
        let Some(Expr::Cmp { op, data }) = self.at(cmp_at).cloned() else { return false };
        let negated = match op {
            CmpOp::Eq => false,
            CmpOp::Neq => true,
            _ => return false,
        };
        if data.len() != if cmp_at == 2 { full as usize } else { len as usize } {
            return false;
        }
        let Some(addr) = ip_of(&data, v6) else { return false };
        let Ok(net) = IpNet::new(addr, prefix) else { return false };
        self.push(negated, if source { Match::Source(net) } else { Match::Destination(net) });
        self.i += cmp_at + 1;
        true
    }

    fn port(&mut self, source: bool) -> bool {
        // The protocol comes from the `meta l4proto` dependency just before.
        let Some(proto) = self.rule.protocol() else { return false };
        if !proto.has_ports() {
            return false;
        }
        let wrap = |p: Ports| if source { Match::SourcePort(p) } else { Match::DestinationPort(p) };
        match self.at(1).cloned() {
            Some(Expr::Cmp { op: CmpOp::Gte, data: lo }) => {
                let Some(Expr::Cmp { op: CmpOp::Lte, data: hi }) = self.at(2).cloned() else { return false };
                let (Some(a), Some(b)) = (u16_be(&lo), u16_be(&hi)) else { return false };
                self.push(false, wrap(Ports::Single(PortRange::new(a, b))));
                self.i += 3;
            }
            Some(Expr::Cmp { op, data }) => {
                let negated = match op {
                    CmpOp::Eq => false,
                    CmpOp::Neq => true,
                    _ => return false,
                };
                let Some(p) = (data.len() == 2).then(|| u16_be(&data)).flatten() else { return false };
                self.push(negated, wrap(Ports::Single(PortRange::single(p))));
                self.i += 2;
            }
            Some(Expr::Range { negated, from, to }) => {
                let (Some(a), Some(b)) = (u16_be(&from), u16_be(&to)) else { return false };
                self.push(negated, wrap(Ports::Single(PortRange::new(a, b))));
                self.i += 2;
            }
            Some(Expr::Lookup { set: LookupSet::Listed { set: Some(set), .. }, inverted }) if set.key_len == 2 => {
                let Some(ranges) = set_ranges(&set) else { return false };
                self.push(inverted, wrap(Ports::List(ranges)));
                self.i += 2;
            }
            _ => return false,
        }
        true
    }

    fn ct_state(&mut self) -> bool {
        match (self.at(1).cloned(), self.at(2).cloned()) {
            (Some(Expr::Bitwise { mask, xor }), Some(Expr::Cmp { op: CmpOp::Neq, data }))
                if xor.iter().all(|b| *b == 0) && data.iter().all(|b| *b == 0) =>
            {
                let Some(states) = u32_ne(&mask).and_then(ct_states_of_mask) else { return false };
                self.push(false, Match::ConnState(states));
                self.i += 3;
                true
            }
            (Some(Expr::Cmp { op, data }), _) => {
                let negated = match op {
                    CmpOp::Eq => false,
                    CmpOp::Neq => true,
                    _ => return false,
                };
                let Some(states) = u32_ne(&data).and_then(ct_states_of_mask).filter(|s| s.len() == 1) else {
                    return false;
                };
                self.push(negated, Match::ConnState(states));
                self.i += 2;
                true
            }
            (Some(Expr::Lookup { set: LookupSet::Listed { set: Some(set), .. }, inverted }), _)
                if set.key_len == 4 && !set.interval =>
            {
                let bits: Option<Vec<u32>> = set.elements.iter().map(|(k, _)| u32_ne(k)).collect();
                let Some(states) = bits.and_then(|b| ct_states_of_mask(b.iter().fold(0, |a, x| a | x))) else {
                    return false;
                };
                self.push(inverted, Match::ConnState(states));
                self.i += 2;
                true
            }
            _ => false,
        }
    }

    /// The verdict from the expressions left, if they are exactly one the model knows.
    fn verdict(&self) -> Option<Verdict> {
        let rest = &self.exprs[self.i..];
        Some(match rest {
            [] => Verdict::Continue,
            [Expr::Verdict { code, chain }] => match (*code, chain) {
                (NF_ACCEPT, None) => Verdict::Accept,
                (NF_DROP, None) => Verdict::Drop,
                (NFT_RETURN, None) => Verdict::Return,
                (NFT_CONTINUE, None) => Verdict::Continue,
                (NFT_JUMP, Some(c)) => Verdict::Jump(c.clone()),
                (NFT_GOTO, Some(c)) => Verdict::Goto(c.clone()),
                _ => return None,
            },
            [Expr::Masq] => Verdict::Masquerade,
            [Expr::Immediate { reg: 1, data }, Expr::MetaSet { key: META_MARK }] if data.len() == 4 => {
                Verdict::SetMark { value: u32_ne(data)?, mask: u32::MAX }
            }
            [Expr::Meta { key: META_MARK }, Expr::Bitwise { mask, xor }, Expr::MetaSet { key: META_MARK }] => {
                Verdict::SetMark { value: u32_ne(xor)?, mask: !u32_ne(mask)? }
            }
            [Expr::Immediate { reg: 1, data: addr }, more @ ..] => {
                let (port, nat) = match more {
                    [nat @ Expr::Nat { .. }] => (None, nat),
                    [Expr::Immediate { reg: 2, data: p }, nat @ Expr::Nat { .. }] => {
                        let p = u16_be(p)?;
                        (Some(PortRange::single(p)), nat)
                    }
                    [
                        Expr::Immediate { reg: 2, data: a },
                        Expr::Immediate { reg: 3, data: b },
                        nat @ Expr::Nat { .. },
                    ] => (Some(PortRange::new(u16_be(a)?, u16_be(b)?)), nat),
                    _ => return None,
                };
                let Expr::Nat { dnat, family, addr_reg: true, proto_min_reg, proto_max_reg, .. } = nat else {
                    return None;
                };
                if *proto_min_reg != port.is_some() || *proto_max_reg != port.is_some_and(|p| !p.is_single()) {
                    return None;
                }
                let addr = match (*family, addr.len()) {
                    (NFPROTO_IPV4, 4) => ip_of(addr, false)?,
                    (NFPROTO_IPV6, 16) => ip_of(addr, true)?,
                    _ => return None,
                };
                if *dnat { Verdict::Dnat { addr, port } } else { Verdict::Snat { addr, port } }
            }
            _ => return None,
        })
    }
}

/// The port ranges of a port set (plain or in interval encoding).
fn set_ranges(set: &AnonSet) -> Option<Vec<PortRange>> {
    if !set.interval {
        return set.elements.iter().map(|(k, _)| u16_be(k).map(PortRange::single)).collect();
    }
    let mut items: Vec<(u16, bool)> =
        set.elements.iter().map(|(k, end)| u16_be(k).map(|p| (p, *end))).collect::<Option<_>>()?;
    items.sort_by_key(|(p, end)| (*p, !*end));
    let mut out = Vec::new();
    let mut open: Option<u16> = None;
    for (p, end) in items {
        match (open, end) {
            (Some(a), true) => {
                out.push(PortRange::new(a, p.checked_sub(1)?));
                open = None;
            }
            (None, false) => open = Some(p),
            (None, true) => {}
            (Some(_), false) => return None,
        }
    }
    if let Some(a) = open {
        out.push(PortRange::new(a, u16::MAX));
    }
    Some(out)
}

/// The rule the expressions of a listed rule describe (comment not included). What the model
/// does not cover becomes raw parts ([`raw_json`]), so decoding never fails.
pub(crate) fn decode_rule(family: TableFamily, exprs: &[Expr]) -> Rule {
    let mut d = Decoder { family, exprs, i: 0, rule: Rule::new(Verdict::Continue), l3: None };
    loop {
        if let Some(v) = d.verdict() {
            d.rule.verdict = v;
            break;
        }
        if d.i >= exprs.len() {
            break;
        }
        if !d.step() {
            // Unknown: the last expression is the verdict (a statement), others conditions.
            let e = &exprs[d.i];
            d.i += 1;
            if d.i == exprs.len() {
                d.rule.verdict = Verdict::Raw(raw_json(e));
                break;
            }
            d.rule.conditions.push(Match::Raw(raw_json(e)).into());
        }
    }
    d.rule
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::model::BackendKind;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn cmp(op: CmpOp, data: &[u8]) -> Expr {
        Expr::Cmp { op, data: data.to_vec() }
    }

    #[test]
    fn addresses_encode_as_nft_does() {
        // `ip daddr 10.210.1.0/24` in an inet table: nfproto dependency, 3-byte load.
        let r = Rule::new(Verdict::Accept).when(Match::Destination(net("10.210.1.0/24")));
        assert_eq!(
            encode_rule(TableFamily::Inet, &r).unwrap(),
            [
                Expr::Meta { key: META_NFPROTO },
                cmp(CmpOp::Eq, &[2]),
                Expr::Payload { base: BASE_NETWORK, offset: 16, len: 3 },
                cmp(CmpOp::Eq, &[10, 210, 1]),
                Expr::Verdict { code: NF_ACCEPT, chain: None },
            ]
        );
        // `ip daddr != 224.0.0.0/4 masquerade` in an ip table: full load and mask.
        let r = Rule::new(Verdict::Masquerade).when(!Match::Destination(net("224.0.0.0/4")));
        assert_eq!(
            encode_rule(TableFamily::Ip, &r).unwrap(),
            [
                Expr::Payload { base: BASE_NETWORK, offset: 16, len: 4 },
                Expr::Bitwise { mask: vec![0xf0, 0, 0, 0], xor: vec![0; 4] },
                cmp(CmpOp::Neq, &[224, 0, 0, 0]),
                Expr::Masq,
            ]
        );
        // `ip saddr 0.0.0.0/0`: masked with zero.
        let r = Rule::new(Verdict::Return).when(Match::Source(net("0.0.0.0/0")));
        let e = encode_rule(TableFamily::Ip, &r).unwrap();
        assert_eq!(e[1], Expr::Bitwise { mask: vec![0; 4], xor: vec![0; 4] });
        // Bridge tables depend on the ether type.
        let r = Rule::new(Verdict::Accept).when(Match::Source(net("10.1.2.3/32")));
        assert_eq!(
            encode_rule(TableFamily::Bridge, &r).unwrap()[..3],
            [
                Expr::Meta { key: META_PROTOCOL },
                cmp(CmpOp::Eq, &[8, 0]),
                Expr::Payload { base: BASE_NETWORK, offset: 12, len: 4 }
            ]
        );
    }

    #[test]
    fn ports_sets_and_ranges_encode_as_nft_does() {
        let r = Rule::new(Verdict::Accept)
            .when(Match::Protocol(Protocol::Udp))
            .when(Match::SourcePort(PortRange::new(1000, 2000).into()))
            .when(!Match::DestinationPort(53.into()));
        assert_eq!(
            encode_rule(TableFamily::Ip, &r).unwrap(),
            [
                Expr::Meta { key: META_L4PROTO },
                cmp(CmpOp::Eq, &[17]),
                Expr::Payload { base: BASE_TRANSPORT, offset: 0, len: 2 },
                cmp(CmpOp::Gte, &1000u16.to_be_bytes()),
                cmp(CmpOp::Lte, &2000u16.to_be_bytes()),
                Expr::Payload { base: BASE_TRANSPORT, offset: 2, len: 2 },
                cmp(CmpOp::Neq, &53u16.to_be_bytes()),
                Expr::Verdict { code: NF_ACCEPT, chain: None },
            ]
        );
        // `{ 8080, 9000-9010 }`: an interval set, as nft lists its elements.
        let set = port_set(&[PortRange::single(8080), PortRange::new(9000, 9010)]);
        let be = |p: u16| p.to_be_bytes().to_vec();
        assert_eq!(
            set.elements,
            [(be(0), true), (be(8080), false), (be(8081), true), (be(9000), false), (be(9011), true)]
        );
        assert_eq!(set_ranges(&set).unwrap(), [PortRange::single(8080), PortRange::new(9000, 9010)]);
        let open_end = port_set(&[PortRange::new(0, 10), PortRange::new(60000, 65535)]);
        assert_eq!(set_ranges(&open_end).unwrap(), [PortRange::new(0, 10), PortRange::new(60000, 65535)]);
        let plain = port_set(&[PortRange::single(443), PortRange::single(80)]);
        assert!(!plain.interval);
        assert_eq!(set_ranges(&plain).unwrap(), [PortRange::single(80), PortRange::single(443)]);
    }

    /// Every typed rule decodes back to itself once its sets are listed.
    #[test]
    fn typed_rules_round_trip() {
        let ip4 = |s: &str| -> IpAddr { s.parse().unwrap() };
        let rules = vec![
            Rule::new(Verdict::Accept).when(Match::Destination(net("10.210.1.0/24"))),
            Rule::new(Verdict::Masquerade).when(!Match::Destination(net("224.0.0.0/4"))),
            Rule::new(Verdict::Jump("c2".into())).when(Match::Source(net("10.210.1.5/32"))),
            Rule::new(Verdict::Goto("c2".into()))
                .when(Match::Source(net("10.210.2.0/23")))
                .when(Match::Destination(net("10.210.3.5/32"))),
            Rule::new(Verdict::Dnat { addr: ip4("10.210.4.5"), port: Some(PortRange::single(80)) })
                .when(Match::Destination(net("10.210.1.5/32")))
                .when(Match::Protocol(Protocol::Tcp))
                .when(Match::DestinationPort(8080.into())),
            Rule::new(Verdict::Dnat { addr: ip4("10.210.4.5"), port: Some(PortRange::new(80, 90)) })
                .when(Match::Protocol(Protocol::Tcp))
                .when(Match::DestinationPort(Ports::List(vec![PortRange::single(8080), PortRange::new(9000, 9010)]))),
            Rule::new(Verdict::Snat { addr: ip4("10.210.5.5"), port: None }),
            Rule::new(Verdict::Return).when(!Match::Protocol(Protocol::Tcp)),
            Rule::new(Verdict::Return).when(Match::InInterface("br0".into())).when(!Match::OutInterface("br0".into())),
            Rule::new(Verdict::Masquerade).when(Match::Mark { value: 0x2000, mask: 0x2000 }),
            Rule::new(Verdict::Return).when(!Match::mark(0)),
            Rule::new(Verdict::SetMark { value: 0x2000, mask: 0x2000 }),
            Rule::new(Verdict::SetMark { value: 5, mask: u32::MAX }),
            Rule::new(Verdict::Accept).when(Match::ConnState(vec![ConnState::Related, ConnState::Established])),
            Rule::new(Verdict::Return).when(!Match::ConnState(vec![ConnState::New])),
            Rule::new(Verdict::Return).when(!Match::ConnState(vec![ConnState::Invalid, ConnState::New])),
            Rule::new(Verdict::Return).when(!Match::DestinationAddrType(AddrType::Local)),
            Rule::new(Verdict::Return).when(Match::SourceAddrType(AddrType::Local)),
            Rule::new(Verdict::Return).when(Match::EtherSource("02:00:00:00:02:10".parse().unwrap())),
            Rule::new(Verdict::Continue).when(Match::Source(net("10.210.7.0/24"))),
            Rule::new(Verdict::Return).when(Match::Source(net("0.0.0.0/0"))),
            Rule::new(Verdict::Return).when(Match::Source(net("fd00::/64"))).when(!Match::Destination(net("ff00::/8"))),
        ];
        for family in [TableFamily::Ip, TableFamily::Inet, TableFamily::Bridge] {
            for rule in &rules {
                let v6 = rule.conditions.iter().any(|c| matches!(&c.test, Match::Source(n) if n.addr().is_ipv6()));
                if family == TableFamily::Ip && v6 {
                    continue;
                }
                let rule = rule.normalized(BackendKind::Nftables);
                let listed: Vec<Expr> = encode_rule(family, &rule)
                    .unwrap()
                    .into_iter()
                    .map(|e| match e {
                        Expr::Lookup { set: LookupSet::New(s), inverted } => {
                            Expr::Lookup { set: LookupSet::Listed { name: "__set0".into(), set: Some(s) }, inverted }
                        }
                        e => e,
                    })
                    .collect();
                assert_eq!(decode_rule(family, &listed), rule, "{family} {rule}: {listed:?}");
            }
        }
    }

    #[test]
    fn unknown_expressions_stay_raw() {
        let exprs = [
            Expr::Counter { packets: 0, bytes: 0 },
            Expr::Other { name: "limit".into(), attrs: vec![(1, vec![0, 0, 0, 5])] },
            Expr::Other { name: "log".into(), attrs: vec![] },
        ];
        let r = decode_rule(TableFamily::Ip, &exprs);
        assert_eq!(r.conditions[0].test, Match::Raw(Raw::NftJson(r#"{"counter":{"packets":0,"bytes":0}}"#.into())));
        assert_eq!(r.conditions[1].test, Match::Raw(Raw::NftJson(r#"{"limit":{"1":"00000005"}}"#.into())));
        assert_eq!(r.verdict, Verdict::Raw(Raw::NftJson(r#"{"log":{}}"#.into())));
        // An address match in an inet table without its dependency cannot be placed.
        let bare = [Expr::Payload { base: BASE_NETWORK, offset: 12, len: 4 }, cmp(CmpOp::Eq, &[1, 2, 3, 4])];
        assert!(decode_rule(TableFamily::Inet, &bare).conditions.iter().all(|c| matches!(c.test, Match::Raw(_))));
        assert!(encode_rule(TableFamily::Ip, &Rule::new(Verdict::Raw(Raw::Nft("log".into())))).is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_of_mask(&[0xff, 0xff, 0xfe, 0]), Some(23));
        assert_eq!(prefix_of_mask(&[0xf0, 0, 0, 0]), Some(4));
        assert_eq!(prefix_of_mask(&[0, 0, 0, 0]), Some(0));
        assert_eq!(prefix_of_mask(&[0xff, 0, 0xff, 0]), None);
        assert_eq!(ct_states_of_mask(6), Some(vec![ConnState::Related, ConnState::Established]));
        assert_eq!(ct_states_of_mask(0), None);
        assert_eq!(ct_states_of_mask(0x80), None);
    }
}
