//! The backend-neutral model: tables, chains, rules, their normal form and their validation.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use cni_types::MacAddr;
use ipnet::IpNet;

use super::error::FirewallError;

/// Which tool's semantics a backend follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// `iptables` / `ip6tables` (legacy or nf_tables flavour): fixed tables per family,
    /// built-in chains, rules identified by their specification.
    Iptables,
    /// `nft`: tables created on demand (families ip, ip6, inet, bridge), base chains with hook
    /// and priority, rules identified by handle.
    Nftables,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
        })
    }
}

/// The address family of an IP address or of an iptables table (`iptables` vs `ip6tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4 (`iptables`, nft family `ip`).
    V4,
    /// IPv6 (`ip6tables`, nft family `ip6`).
    V6,
}

impl IpFamily {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() { Self::V4 } else { Self::V6 }
    }

    /// The table family of this IP family (`ip` or `ip6`).
    pub fn table_family(self) -> TableFamily {
        match self {
            Self::V4 => TableFamily::Ip,
            Self::V6 => TableFamily::Ip6,
        }
    }
}

/// The family of a table. iptables uses [`TableFamily::Ip`] (`iptables`) and
/// [`TableFamily::Ip6`] (`ip6tables`) only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableFamily {
    /// IPv4.
    Ip,
    /// IPv6.
    Ip6,
    /// IPv4 and IPv6 (nftables only).
    Inet,
    /// Bridged frames (nftables only).
    Bridge,
}

impl TableFamily {
    /// The nft name of the family.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Inet => "inet",
            Self::Bridge => "bridge",
        }
    }

    /// The IP family of an `ip`/`ip6` table; `None` for `inet` and `bridge`.
    pub fn ip_family(self) -> Option<IpFamily> {
        match self {
            Self::Ip => Some(IpFamily::V4),
            Self::Ip6 => Some(IpFamily::V6),
            Self::Inet | Self::Bridge => None,
        }
    }
}

impl fmt::Display for TableFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TableFamily {
    type Err = FirewallError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ip" => Ok(Self::Ip),
            "ip6" => Ok(Self::Ip6),
            "inet" => Ok(Self::Inet),
            "bridge" => Ok(Self::Bridge),
            other => Err(FirewallError::invalid(format!("unknown table family {other:?}"))),
        }
    }
}

/// Names a table: its family and name (`ip nat`, `inet cni_plugins_masquerade`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// The family.
    pub family: TableFamily,
    /// The name (`nat`, `filter`, `mangle`, `raw`, `security` for iptables).
    pub name: String,
}

impl TableId {
    /// The table `name` of `family`.
    pub fn new(family: TableFamily, name: impl Into<String>) -> Self {
        Self { family, name: name.into() }
    }

    /// The iptables table `name` of `family` (`TableId::iptables(IpFamily::V4, "nat")`).
    pub fn iptables(family: IpFamily, name: impl Into<String>) -> Self {
        Self::new(family.table_family(), name)
    }

    /// The chain `name` of this table.
    pub fn chain(&self, name: impl Into<String>) -> ChainId {
        ChainId { table: self.clone(), name: name.into() }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

/// Names a chain: its table and name (`ip nat POSTROUTING`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId {
    /// The table holding the chain.
    pub table: TableId,
    /// The chain's name.
    pub name: String,
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.table, self.name)
    }
}

/// A table and its comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    /// The family.
    pub family: TableFamily,
    /// The name.
    pub name: String,
    /// The comment (nftables only; iptables tables have none).
    pub comment: Option<String>,
}

impl Table {
    /// A table without comment.
    pub fn new(family: TableFamily, name: impl Into<String>) -> Self {
        Self { family, name: name.into(), comment: None }
    }

    /// Sets the comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The table's identifier.
    pub fn id(&self) -> TableId {
        TableId::new(self.family, self.name.clone())
    }
}

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `route`.
    Route,
}

impl ChainType {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Nat => "nat",
            Self::Route => "route",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "filter" => Self::Filter,
            "nat" => Self::Nat,
            "route" => Self::Route,
            _ => return None,
        })
    }
}

/// The netfilter hook of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`.
    Input,
    /// `forward`.
    Forward,
    /// `output`.
    Output,
    /// `postrouting`.
    Postrouting,
}

impl Hook {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prerouting => "prerouting",
            Self::Input => "input",
            Self::Forward => "forward",
            Self::Output => "output",
            Self::Postrouting => "postrouting",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "prerouting" => Self::Prerouting,
            "input" => Self::Input,
            "forward" => Self::Forward,
            "output" => Self::Output,
            "postrouting" => Self::Postrouting,
            _ => return None,
        })
    }
}

/// The default verdict of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// `accept` (the default).
    #[default]
    Accept,
    /// `drop`.
    Drop,
}

impl Policy {
    /// The nft keyword (iptables prints it in upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Drop => "drop",
        }
    }
}

/// nft's `raw` priority (-300).
pub const PRIORITY_RAW: i32 = -300;
/// nft's `mangle` priority (-150).
pub const PRIORITY_MANGLE: i32 = -150;
/// nft's `dstnat` priority in the ip, ip6 and inet families (-100).
pub const PRIORITY_DSTNAT: i32 = -100;
/// nft's `filter` priority in the ip, ip6 and inet families (0).
pub const PRIORITY_FILTER: i32 = 0;
/// nft's `security` priority (50).
pub const PRIORITY_SECURITY: i32 = 50;
/// nft's `srcnat` priority in the ip, ip6 and inet families (100).
pub const PRIORITY_SRCNAT: i32 = 100;
/// nft's `dstnat` priority in the bridge family (-300), used by Go's macspoofchk chain.
pub const PRIORITY_BRIDGE_DSTNAT: i32 = -300;

/// What makes a chain a base chain: where it hooks into the packet path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The chain type.
    pub chain_type: ChainType,
    /// The hook.
    pub hook: Hook,
    /// The priority (lower runs first), e.g. [`PRIORITY_SRCNAT`].
    pub priority: i32,
    /// The default verdict.
    pub policy: Policy,
}

impl BaseChain {
    /// A base chain with policy accept.
    pub fn new(chain_type: ChainType, hook: Hook, priority: i32) -> Self {
        Self { chain_type, hook, priority, policy: Policy::Accept }
    }

    /// Sets the policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// True when both hook at the same place (type, hook and priority), whatever the policy.
    pub fn same_hook(&self, other: &BaseChain) -> bool {
        self.chain_type == other.chain_type && self.hook == other.hook && self.priority == other.priority
    }
}

/// A regular chain (only reached by jumps) or a base chain (hooked into the packet path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainKind {
    /// A regular chain.
    Regular,
    /// A base chain (in iptables: a built-in chain like `POSTROUTING`).
    Base(BaseChain),
}

/// A chain and its definition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chain {
    /// The name.
    pub name: String,
    /// Regular or base.
    pub kind: ChainKind,
    /// The comment (nftables only).
    pub comment: Option<String>,
}

impl Chain {
    /// A regular chain.
    pub fn regular(name: impl Into<String>) -> Self {
        Self { name: name.into(), kind: ChainKind::Regular, comment: None }
    }

    /// A base chain.
    pub fn base(name: impl Into<String>, base: BaseChain) -> Self {
        Self { name: name.into(), kind: ChainKind::Base(base), comment: None }
    }

    /// Sets the comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The base-chain definition, if this is a base chain.
    pub fn base_chain(&self) -> Option<&BaseChain> {
        match &self.kind {
            ChainKind::Base(b) => Some(b),
            ChainKind::Regular => None,
        }
    }
}

/// A layer-4 protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP.
    Icmp,
    /// ICMPv6.
    IcmpV6,
}

impl Protocol {
    /// The name as iptables prints it (`ipv6-icmp` for ICMPv6).
    pub fn iptables_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Icmp => "icmp",
            Self::IcmpV6 => "ipv6-icmp",
        }
    }

    /// The nft name.
    pub fn nft_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Icmp => "icmp",
            Self::IcmpV6 => "icmpv6",
        }
    }

    /// Parses the names iptables and nft use (`tcp`, `ipv6-icmp`, `icmpv6`, ...) and the numbers.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Self::Tcp,
            "udp" | "17" => Self::Udp,
            "sctp" | "132" => Self::Sctp,
            "icmp" | "1" => Self::Icmp,
            "ipv6-icmp" | "icmpv6" | "icmp6" | "58" => Self::IcmpV6,
            _ => return None,
        })
    }

    /// True for the protocols that have ports (TCP, UDP, SCTP).
    pub fn has_ports(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp | Self::Sctp)
    }
}

/// An inclusive range of ports (a single port has `first == last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// The ports `first..=last`.
    pub fn new(first: u16, last: u16) -> Self {
        Self { first, last }
    }

    /// One port.
    pub fn single(port: u16) -> Self {
        Self { first: port, last: port }
    }

    /// True for a single port.
    pub fn is_single(&self) -> bool {
        self.first == self.last
    }

    pub(crate) fn sep(&self, sep: char) -> String {
        if self.is_single() { self.first.to_string() } else { format!("{}{sep}{}", self.first, self.last) }
    }

    /// Parses `80`, `80:90` or `80-90`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (a, b) = match s.split_once([':', '-']) {
            Some((a, b)) => (a, b),
            None => (s, s),
        };
        Some(Self { first: a.parse().ok()?, last: b.parse().ok()? })
    }
}

impl From<u16> for PortRange {
    fn from(port: u16) -> Self {
        Self::single(port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sep('-'))
    }
}

/// The ports of a port match.
///
/// iptables renders [`Ports::Single`] with the protocol's module (`-m tcp --dport 80`) and
/// [`Ports::List`] with `multiport` (`-m multiport --dports 80,443`, also for one port, as Go's
/// portmap does). nft renders a list as an anonymous set (`tcp dport { 80, 443 }`); nft stores a
/// one-element set as a single value, so in nftables' normal form a one-element list is
/// [`Ports::Single`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ports {
    /// One port or one range.
    Single(PortRange),
    /// Several ports or ranges (iptables `multiport`: at most 15, a range counting as two).
    List(Vec<PortRange>),
}

impl From<u16> for Ports {
    fn from(port: u16) -> Self {
        Self::Single(PortRange::single(port))
    }
}

impl From<PortRange> for Ports {
    fn from(range: PortRange) -> Self {
        Self::Single(range)
    }
}

impl Ports {
    /// The ranges, whatever the form.
    pub fn ranges(&self) -> &[PortRange] {
        match self {
            Self::Single(r) => std::slice::from_ref(r),
            Self::List(v) => v,
        }
    }
}

/// A connection-tracking state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnState {
    /// `INVALID` / `invalid`.
    Invalid,
    /// `NEW` / `new`.
    New,
    /// `RELATED` / `related`.
    Related,
    /// `ESTABLISHED` / `established`.
    Established,
    /// `UNTRACKED` / `untracked`.
    Untracked,
}

impl ConnState {
    /// The nft name (iptables prints it in upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::New => "new",
            Self::Related => "related",
            Self::Established => "established",
            Self::Untracked => "untracked",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "invalid" => Self::Invalid,
            "new" => Self::New,
            "related" => Self::Related,
            "established" => Self::Established,
            "untracked" => Self::Untracked,
            _ => return None,
        })
    }
}

/// An address type (iptables `-m addrtype`, nft `fib ... type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// An address of this host (`LOCAL` / `local`).
    Local,
    /// A unicast address.
    Unicast,
    /// A broadcast address.
    Broadcast,
    /// A multicast address.
    Multicast,
}

impl AddrType {
    /// The nft name (iptables prints it in upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Unicast => "unicast",
            Self::Broadcast => "broadcast",
            Self::Multicast => "multicast",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "local" => Self::Local,
            "unicast" => Self::Unicast,
            "broadcast" => Self::Broadcast,
            "multicast" => Self::Multicast,
            _ => return None,
        })
    }
}

/// Text passed to one backend verbatim: the escape hatch for conditions and targets the model
/// does not cover (e.g. portmap's user-written `conditionsV4`).
///
/// A raw part only renders on its own backend (an [`Raw::Iptables`] part given to nftables is an
/// [`InvalidArgument`](super::FirewallErrorKind::InvalidArgument) error). When rules are listed,
/// the tools print raw parts in their own normal form, which is parsed into typed conditions
/// where the model has them, so a rule with raw parts may list differently from how it was
/// written; delete such rules by handle or comment rather than by specification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Raw {
    /// iptables arguments, e.g. `["-m", "mark", "--mark", "0x1"]` or `["-j", "LOG"]`.
    Iptables(Vec<String>),
    /// nft rule syntax, e.g. `iifname "eth0"` or `counter`.
    Nft(String),
    /// An nft expression listed in JSON that the model does not cover (compact JSON): as `nft -j`
    /// prints it ([`NftablesBackend`](super::NftablesBackend)), or from
    /// [`NftNetlinkBackend`](super::NftNetlinkBackend) as `{"<expression>": {"<attribute
    /// number>": "<hex>", ...}}` (`counter` as nft prints it). Returned by listings only; it
    /// cannot be written back.
    NftJson(String),
}

/// A test on a packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// Source address in the network (`-s` / `ip saddr`).
    Source(IpNet),
    /// Destination address in the network (`-d` / `ip daddr`).
    Destination(IpNet),
    /// Input interface (`-i` / `iifname`).
    InInterface(String),
    /// Output interface (`-o` / `oifname`).
    OutInterface(String),
    /// Layer-4 protocol (`-p` / `meta l4proto`).
    Protocol(Protocol),
    /// Source port; needs a [`Match::Protocol`] of TCP, UDP or SCTP in the rule.
    SourcePort(Ports),
    /// Destination port; needs a [`Match::Protocol`] of TCP, UDP or SCTP in the rule.
    DestinationPort(Ports),
    /// Packet mark: `mark & mask == value` (`-m mark --mark value/mask` / `meta mark`).
    Mark {
        /// The value compared.
        value: u32,
        /// The mask applied first (`0xffffffff` for the whole mark).
        mask: u32,
    },
    /// Connection-tracking state in the set (`-m conntrack --ctstate` / `ct state`).
    ConnState(Vec<ConnState>),
    /// Source address type (`-m addrtype --src-type` / `fib saddr type`).
    SourceAddrType(AddrType),
    /// Destination address type (`-m addrtype --dst-type LOCAL` / `fib daddr type local`).
    DestinationAddrType(AddrType),
    /// Source MAC address (`-m mac --mac-source` / `ether saddr`).
    EtherSource(MacAddr),
    /// A backend-specific condition, rendered verbatim.
    Raw(Raw),
}

/// `!test`: the test negated (`! -d 224.0.0.0/4`, `ip daddr != 224.0.0.0/4`).
impl std::ops::Not for Match {
    type Output = Condition;

    fn not(self) -> Condition {
        Condition { negated: true, test: self }
    }
}

/// Flips a condition's negation.
impl std::ops::Not for Condition {
    type Output = Condition;

    fn not(self) -> Condition {
        Condition { negated: !self.negated, test: self.test }
    }
}

impl Match {
    /// A mark match on the whole mark.
    pub fn mark(value: u32) -> Self {
        Self::Mark { value, mask: u32::MAX }
    }

    /// The position of this kind of test in a rule's normal form.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Self::Source(_) => 0,
            Self::Destination(_) => 1,
            Self::InInterface(_) => 2,
            Self::OutInterface(_) => 3,
            Self::Protocol(_) => 4,
            Self::SourcePort(_) => 5,
            Self::DestinationPort(_) => 6,
            _ => 7,
        }
    }
}

/// One condition of a rule: a [`Match`], possibly negated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Condition {
    /// True for "does not match".
    pub negated: bool,
    /// The test.
    pub test: Match,
}

impl From<Match> for Condition {
    fn from(test: Match) -> Self {
        Self { negated: false, test }
    }
}

/// What a rule does with a matching packet: the iptables target or the nft verdict/statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Accept the packet.
    Accept,
    /// Drop the packet.
    Drop,
    /// Return to the calling chain.
    Return,
    /// Jump to a chain of the same table (and come back).
    Jump(String),
    /// Go to a chain of the same table (without coming back).
    Goto(String),
    /// Masquerade (source NAT to the outgoing interface's address).
    Masquerade,
    /// Destination NAT to `addr` and optionally `port`; a port needs a TCP/UDP/SCTP
    /// [`Match::Protocol`].
    Dnat {
        /// The new destination address.
        addr: IpAddr,
        /// The new destination port (or range).
        port: Option<PortRange>,
    },
    /// Source NAT to `addr` and optionally `port`.
    Snat {
        /// The new source address.
        addr: IpAddr,
        /// The new source port (or range).
        port: Option<PortRange>,
    },
    /// Sets the mark: `mark = (mark & !mask) ^ value` (iptables `-j MARK --set-xmark value/mask`,
    /// nft `meta mark set ...`); a non-terminal statement.
    SetMark {
        /// The bits XORed in after masking.
        value: u32,
        /// The bits cleared first.
        mask: u32,
    },
    /// No verdict: the packet continues with the next rule (iptables: no `-j`; nft: `continue`).
    Continue,
    /// A backend-specific target, rendered verbatim (e.g. `Raw::Iptables(["-j", "LOG"])`).
    Raw(Raw),
}

impl Verdict {
    /// The chain a `Jump` or `Goto` targets.
    pub fn target_chain(&self) -> Option<&str> {
        match self {
            Self::Jump(c) | Self::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// A rule: conditions (all must match), a verdict and an optional comment.
///
/// ```
/// use cni_sdk::firewall::{Match, Rule, Verdict};
/// let rule = Rule::new(Verdict::Masquerade)
///     .when(!Match::Destination("224.0.0.0/4".parse().unwrap()))
///     .with_comment("name: \"net\" id: \"ctr\"");
/// assert_eq!(rule.conditions.len(), 1);
/// ```
///
/// # Normal form
///
/// Backends store and list rules in a normal form ([`Rule::normalized`]); a rule added in normal
/// form lists back equal to itself. The normal form orders the typed conditions as iptables
/// prints them (source, destination, input and output interface, protocol, source port,
/// destination port, then everything else in the order given), truncates networks to their
/// prefix (`10.1.0.5/24` → `10.1.0.0/24`), sorts connection states, and drops what the backend
/// drops: iptables omits a non-negated `0.0.0.0/0` / `::/0` source or destination, nftables stores
/// a one-element port list as a single port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The conditions, all of which must hold.
    pub conditions: Vec<Condition>,
    /// What happens to a matching packet.
    pub verdict: Verdict,
    /// The comment (iptables: at most 255 bytes, no line breaks; nftables: at most 128 bytes, no
    /// `"`).
    pub comment: Option<String>,
}

impl Rule {
    /// A rule matching every packet with `verdict`.
    pub fn new(verdict: Verdict) -> Self {
        Self { conditions: Vec::new(), verdict, comment: None }
    }

    /// Adds a condition: a [`Match`], or a negated one (`!Match::Source(net)`).
    pub fn when(mut self, condition: impl Into<Condition>) -> Self {
        self.conditions.push(condition.into());
        self
    }

    /// Sets the comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// True when the comment equals `comment`.
    pub fn has_comment(&self, comment: &str) -> bool {
        self.comment.as_deref() == Some(comment)
    }

    /// The rule in the normal form `kind` stores (see the type's documentation).
    pub fn normalized(&self, kind: BackendKind) -> Rule {
        let mut conditions: Vec<Condition> = Vec::with_capacity(self.conditions.len());
        for c in &self.conditions {
            let test = match &c.test {
                Match::Source(n) => Match::Source(n.trunc()),
                Match::Destination(n) => Match::Destination(n.trunc()),
                Match::ConnState(states) => {
                    let mut s = states.clone();
                    s.sort();
                    s.dedup();
                    Match::ConnState(s)
                }
                Match::SourcePort(Ports::List(v)) if kind == BackendKind::Nftables && v.len() == 1 => {
                    Match::SourcePort(Ports::Single(v[0]))
                }
                Match::DestinationPort(Ports::List(v)) if kind == BackendKind::Nftables && v.len() == 1 => {
                    Match::DestinationPort(Ports::Single(v[0]))
                }
                other => other.clone(),
            };
            if kind == BackendKind::Iptables
                && !c.negated
                && matches!(&test, Match::Source(n) | Match::Destination(n) if n.prefix_len() == 0)
            {
                continue;
            }
            conditions.push(Condition { negated: c.negated, test });
        }
        conditions.sort_by_key(|c| c.test.rank());
        Rule { conditions, verdict: self.verdict.clone(), comment: self.comment.clone() }
    }

    /// The protocol this rule matches (a non-negated [`Match::Protocol`]).
    pub(crate) fn protocol(&self) -> Option<Protocol> {
        self.conditions.iter().find_map(|c| match c.test {
            Match::Protocol(p) if !c.negated => Some(p),
            _ => None,
        })
    }
}

impl fmt::Display for Rule {
    /// A neutral, readable form for messages: `!dst 224.0.0.0/4 masquerade comment "x"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for c in &self.conditions {
            let not = if c.negated { "!" } else { "" };
            let s = match &c.test {
                Match::Source(n) => format!("{not}src {n}"),
                Match::Destination(n) => format!("{not}dst {n}"),
                Match::InInterface(i) => format!("{not}iif {i}"),
                Match::OutInterface(i) => format!("{not}oif {i}"),
                Match::Protocol(p) => format!("{not}proto {}", p.nft_name()),
                Match::SourcePort(p) => format!("{not}sport {}", fmt_ports(p)),
                Match::DestinationPort(p) => format!("{not}dport {}", fmt_ports(p)),
                Match::Mark { value, mask } => format!("{not}mark {value:#x}/{mask:#x}"),
                Match::ConnState(s) => {
                    format!("{not}ct state {}", s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
                }
                Match::SourceAddrType(t) => format!("{not}src-type {}", t.as_str()),
                Match::DestinationAddrType(t) => format!("{not}dst-type {}", t.as_str()),
                Match::EtherSource(m) => format!("{not}ether saddr {m}"),
                Match::Raw(r) => format!("{not}{}", fmt_raw(r)),
            };
            parts.push(s);
        }
        parts.push(match &self.verdict {
            Verdict::Accept => "accept".into(),
            Verdict::Drop => "drop".into(),
            Verdict::Return => "return".into(),
            Verdict::Jump(c) => format!("jump {c}"),
            Verdict::Goto(c) => format!("goto {c}"),
            Verdict::Masquerade => "masquerade".into(),
            Verdict::Dnat { addr, port } => format!("dnat to {}", fmt_nat(*addr, *port)),
            Verdict::Snat { addr, port } => format!("snat to {}", fmt_nat(*addr, *port)),
            Verdict::SetMark { value, mask } => format!("set mark {value:#x}/{mask:#x}"),
            Verdict::Continue => "continue".into(),
            Verdict::Raw(r) => fmt_raw(r),
        });
        if let Some(c) = &self.comment {
            parts.push(format!("comment {c:?}"));
        }
        f.write_str(&parts.join(" "))
    }
}

fn fmt_ports(p: &Ports) -> String {
    match p {
        Ports::Single(r) => r.to_string(),
        Ports::List(v) => format!("{{{}}}", v.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",")),
    }
}

fn fmt_raw(r: &Raw) -> String {
    match r {
        Raw::Iptables(args) => format!("[{}]", args.join(" ")),
        Raw::Nft(s) => format!("[{s}]"),
        Raw::NftJson(s) => format!("[json {s}]"),
    }
}

pub(crate) fn fmt_nat(addr: IpAddr, port: Option<PortRange>) -> String {
    match (addr, port) {
        (a, None) => a.to_string(),
        (IpAddr::V4(a), Some(p)) => format!("{a}:{}", p.sep('-')),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{}", p.sep('-')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn normal_form_orders_truncates_and_drops_what_the_backend_drops() {
        let rule = Rule::new(Verdict::Accept)
            .when(Match::ConnState(vec![ConnState::Established, ConnState::Related, ConnState::Related]))
            .when(Match::DestinationPort(Ports::List(vec![PortRange::single(80)])))
            .when(Match::Protocol(Protocol::Tcp))
            .when(Match::Source(net("0.0.0.0/0")))
            .when(Match::Destination(net("10.1.0.5/24")));
        let ipt = rule.normalized(BackendKind::Iptables);
        assert_eq!(
            ipt.conditions,
            vec![
                Condition::from(Match::Destination(net("10.1.0.0/24"))),
                Match::Protocol(Protocol::Tcp).into(),
                Match::DestinationPort(Ports::List(vec![PortRange::single(80)])).into(),
                Match::ConnState(vec![ConnState::Related, ConnState::Established]).into(),
            ]
        );
        let nft = rule.normalized(BackendKind::Nftables);
        assert_eq!(nft.conditions[0], Match::Source(net("0.0.0.0/0")).into());
        assert_eq!(nft.conditions[3], Match::DestinationPort(Ports::Single(PortRange::single(80))).into());
        // Idempotent.
        assert_eq!(ipt.normalized(BackendKind::Iptables), ipt);
        assert_eq!(nft.normalized(BackendKind::Nftables), nft);
        // A negated /0 stays.
        let neg = Rule::new(Verdict::Drop).when(!Match::Source(net("0.0.0.0/0")));
        assert_eq!(neg.normalized(BackendKind::Iptables), neg);
    }

    #[test]
    fn port_ranges_parse_both_separators() {
        assert_eq!(PortRange::parse("80"), Some(PortRange::single(80)));
        assert_eq!(PortRange::parse("80:90"), Some(PortRange::new(80, 90)));
        assert_eq!(PortRange::parse("80-90"), Some(PortRange::new(80, 90)));
        assert_eq!(PortRange::parse("x"), None);
        assert_eq!(PortRange::parse("70000"), None);
    }
}
