//! Traffic control through netlink: qdiscs (root and ingress/clsact) and `u32` filters with
//! `mirred` actions, what Go's bandwidth plugin builds with `tc`. The semantics are documented
//! on [`Qdisc`], the example on [`Net::qdisc`].

use std::fmt;
use std::str::FromStr;

use super::{Net, NetError, NetErrorKind, NetResult};

/// `ETH_P_ALL`: every protocol (what `tc filter ... protocol all` means).
pub const ETH_P_ALL: u16 = 0x0003;
/// `ETH_P_IP`: IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`: IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;

/// A traffic control handle or class id, `major:minor` (the kernel's 32-bit `TC_H_*` value).
///
/// Displayed and parsed as `tc` prints class ids: `1:`, `1:1`, `ffff:fff1`, `root`, `none`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TcHandle(u32);

impl TcHandle {
    /// No handle (`TC_H_UNSPEC`); the handle of a link's default qdisc (`0:`).
    pub const UNSPEC: TcHandle = TcHandle(0);
    /// The root of a link's egress qdisc tree (`TC_H_ROOT`).
    pub const ROOT: TcHandle = TcHandle(0xffff_ffff);
    /// The parent of the ingress and clsact qdiscs (`TC_H_INGRESS`, `ffff:fff1`).
    pub const INGRESS: TcHandle = TcHandle(0xffff_fff1);
    /// The handle of the ingress or clsact qdisc (`ffff:`), the parent of ingress filters.
    pub const INGRESS_QDISC: TcHandle = TcHandle(0xffff_0000);
    /// The ingress hook of a clsact qdisc (`ffff:fff2`, `tc filter ... ingress`).
    pub const CLSACT_INGRESS: TcHandle = TcHandle(0xffff_fff2);
    /// The egress hook of a clsact qdisc (`ffff:fff3`, `tc filter ... egress`).
    pub const CLSACT_EGRESS: TcHandle = TcHandle(0xffff_fff3);

    /// The handle `major:minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        TcHandle(((major as u32) << 16) | minor as u32)
    }

    /// The handle for the kernel's 32-bit value.
    pub const fn from_raw(raw: u32) -> Self {
        TcHandle(raw)
    }

    /// The kernel's 32-bit value.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The major part (the qdisc).
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The minor part (the class).
    pub const fn minor(self) -> u16 {
        self.0 as u16
    }
}

impl fmt::Debug for TcHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcHandle({self})")
    }
}

impl fmt::Display for TcHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ROOT => f.write_str("root"),
            Self::UNSPEC => f.write_str("none"),
            h if h.major() == 0 => write!(f, ":{:x}", h.minor()),
            h if h.minor() == 0 => write!(f, "{:x}:", h.major()),
            h => write!(f, "{:x}:{:x}", h.major(), h.minor()),
        }
    }
}

impl FromStr for TcHandle {
    type Err = NetError;

    /// Parses `root`, `none`, `maj:`, `maj:min` and `:min` (hexadecimal, as `tc` takes them).
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::new(NetErrorKind::InvalidArgument, format!("invalid tc handle {s:?}"));
        match s {
            "root" => return Ok(Self::ROOT),
            "none" => return Ok(Self::UNSPEC),
            _ => {}
        }
        let (maj, min) = s.split_once(':').ok_or_else(bad)?;
        let part = |p: &str| -> Result<u16, NetError> {
            if p.is_empty() { Ok(0) } else { u16::from_str_radix(p, 16).map_err(|_| bad()) }
        };
        if maj.is_empty() && min.is_empty() {
            return Err(bad());
        }
        Ok(Self::new(part(maj)?, part(min)?))
    }
}

/// The packet scheduler clock of the kernel, from `/proc/net/psched`: what converts times to the
/// "ticks" a TBF buffer is given in.
///
/// Go's netlink library (and `tc`) read the file once; [`Psched::KERNEL`] holds what every Linux
/// since 2.6.31 reports (a tick is 1/15.625 µs, i.e. 64 ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Psched {
    /// First field: ticks-to-microseconds numerator (`t2us`).
    pub t2us: u32,
    /// Second field: microseconds-to-ticks (`us2t`).
    pub us2t: u32,
    /// Third field: the clock resolution in Hz.
    pub clock_res: u32,
    /// Fourth field (the timer frequency, used by `tc` for some qdiscs; 0 when absent).
    pub hz: u32,
}

impl Psched {
    /// `000003e8 00000040 000f4240 3b9aca00`: what current kernels report.
    pub const KERNEL: Psched = Psched { t2us: 1000, us2t: 64, clock_res: 1_000_000, hz: 1_000_000_000 };

    /// Reads `/proc/net/psched`.
    pub fn read() -> NetResult<Psched> {
        let text = std::fs::read_to_string("/proc/net/psched").map_err(|e| match e.raw_os_error() {
            Some(errno) => NetError::from_errno(errno, "read /proc/net/psched"),
            None => NetError::new(NetErrorKind::Other, format!("read /proc/net/psched: {e}")).with_source(e),
        })?;
        Psched::parse(&text)
    }

    /// Parses the content of `/proc/net/psched` (three or four hexadecimal numbers).
    pub fn parse(text: &str) -> NetResult<Psched> {
        let bad = || NetError::new(NetErrorKind::InvalidArgument, format!("invalid /proc/net/psched content {text:?}"));
        let fields: Vec<u32> =
            text.split_whitespace().map(|f| u32::from_str_radix(f, 16)).collect::<Result<_, _>>().map_err(|_| bad())?;
        match fields.as_slice() {
            [t2us, us2t, clock_res] | [t2us, us2t, clock_res, _] if *us2t != 0 && *clock_res != 0 => {
                Ok(Psched { t2us: *t2us, us2t: *us2t, clock_res: *clock_res, hz: fields.get(3).copied().unwrap_or(0) })
            }
            _ => Err(bad()),
        }
    }

    /// Ticks per microsecond, as Go's netlink library computes it (`TickInUsec`): with a 1 GHz
    /// clock resolution the first field is replaced by the second (the kernel's compatibility
    /// rule), then `t2us / us2t * clock_res / 10⁶`.
    pub fn tick_in_usec(&self) -> f64 {
        let t2us = if self.clock_res == 1_000_000_000 { self.us2t } else { self.t2us };
        let clock_factor = f64::from(self.clock_res) / TIME_UNITS_PER_SEC;
        f64::from(t2us) / f64::from(self.us2t) * clock_factor
    }

    /// Microseconds to ticks, truncated like Go's `uint32(float64(t) * TickInUsec())`;
    /// `None` when the result does not fit in 32 bits.
    pub fn time_to_ticks(&self, usec: u32) -> Option<u32> {
        f64_to_u32(f64::from(usec) * self.tick_in_usec())
    }

    /// Ticks to microseconds, truncated like Go's `uint32(float64(tick) / TickInUsec())`.
    pub fn ticks_to_time(&self, ticks: u32) -> u32 {
        f64_to_u32(f64::from(ticks) / self.tick_in_usec()).unwrap_or(u32::MAX)
    }
}

const TIME_UNITS_PER_SEC: f64 = 1_000_000.0;

/// Go's `uint32(f)` for a value in range (truncation toward zero); `None` out of range.
fn f64_to_u32(f: f64) -> Option<u32> {
    if f.is_finite() && (0.0..4_294_967_296.0).contains(&f) { Some(f as u32) } else { None }
}

/// Parameters of a token bucket filter (`tbf`) qdisc, in the kernel's units.
///
/// The peak rate (a second bucket) is not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tbf {
    /// Rate in bytes per second.
    pub rate: u64,
    /// Bucket size as the time it takes to send it at `rate`, in scheduler ticks (see
    /// [`Psched`]). The kernel refuses a bucket of less than one byte.
    pub buffer: u32,
    /// Queue limit in bytes (0: no inner queue).
    pub limit: u32,
}

impl Tbf {
    /// The parameters Go's bandwidth plugin computes (`createTBF` in
    /// `plugins/meta/bandwidth`) for `rate_bits` bits/s and a burst of `burst_bits` bits, with a
    /// latency of `latency_ms` milliseconds (the plugin uses 25):
    ///
    /// * `rate = rate_bits / 8`, `burst = burst_bits / 8` (bytes);
    /// * `buffer = time_to_ticks(burst × 10⁶ / rate)` (µs, truncated, then ticks, truncated);
    /// * `limit = rate × latency_µs / 10⁶ + burst` (truncated): the burst is added where `tc`
    ///   would add the bucket size.
    ///
    /// The arithmetic is done in `f64` with Go's truncations, so the result is bit-for-bit what
    /// Go installs (`tc` shows `rate 1Mbit burst 10000b lat 25ms` for 1 000 000 / 80 000).
    /// Rates or bursts under 8 bits, and values that do not fit the kernel's 32-bit fields (where
    /// Go silently wraps), are errors of kind [`NetErrorKind::InvalidArgument`].
    pub fn for_bandwidth(rate_bits: u64, burst_bits: u64, latency_ms: u32, psched: &Psched) -> NetResult<Tbf> {
        let invalid = |what: String| NetError::new(NetErrorKind::InvalidArgument, what);
        let rate = rate_bits / 8;
        let burst = burst_bits / 8;
        if rate == 0 {
            return Err(invalid(format!("invalid tbf rate {rate_bits} bits/s: less than one byte per second")));
        }
        if burst == 0 {
            return Err(invalid(format!("invalid tbf burst {burst_bits} bits: less than one byte")));
        }
        let burst = u32::try_from(burst)
            .map_err(|_| invalid(format!("invalid tbf burst {burst_bits} bits: more than 4 GiB")))?;
        let usec = f64_to_u32(f64::from(burst) * TIME_UNITS_PER_SEC / rate as f64)
            .ok_or_else(|| invalid(format!("tbf burst {burst} bytes at {rate} bytes/s takes longer than 2^32 µs")))?;
        let buffer = psched
            .time_to_ticks(usec)
            .ok_or_else(|| invalid(format!("tbf burst {burst} bytes at {rate} bytes/s exceeds 2^32 ticks")))?;
        let latency_usec = TIME_UNITS_PER_SEC * (f64::from(latency_ms) / 1000.0);
        let queued = f64_to_u32(rate as f64 * latency_usec / TIME_UNITS_PER_SEC)
            .ok_or_else(|| invalid(format!("tbf limit for {rate} bytes/s over {latency_ms} ms exceeds 4 GiB")))?;
        let limit = queued
            .checked_add(burst)
            .ok_or_else(|| invalid(format!("tbf limit {queued} + burst {burst} bytes exceeds 4 GiB")))?;
        Ok(Tbf { rate, buffer, limit })
    }

    /// The bucket size in bytes, as Go's netlink library derives it from the buffer
    /// (`rate × ticks_to_time(buffer) / 10⁶`, truncated).
    pub fn burst(&self, psched: &Psched) -> u32 {
        f64_to_u32(self.rate as f64 * f64::from(psched.ticks_to_time(self.buffer)) / TIME_UNITS_PER_SEC)
            .unwrap_or(u32::MAX)
    }

    /// The latency in microseconds, as Go's netlink library derives it (`10⁶ × limit / rate −
    /// ticks_to_time(buffer)`).
    pub fn latency_usec(&self, psched: &Psched) -> f64 {
        TIME_UNITS_PER_SEC * (f64::from(self.limit) / self.rate as f64) - f64::from(psched.ticks_to_time(self.buffer))
    }
}

/// The kind of a qdisc and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QdiscKind {
    /// A token bucket filter.
    Tbf(Tbf),
    /// The `ingress` qdisc.
    Ingress,
    /// The `clsact` qdisc (ingress and egress filter hooks).
    Clsact,
    /// Any other kind (`noqueue`, `pfifo_fast`, `fq_codel`, ...), listed but not created here.
    Other(String),
}

impl QdiscKind {
    /// The kernel's name for the kind (`TCA_KIND`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Tbf(_) => "tbf",
            Self::Ingress => "ingress",
            Self::Clsact => "clsact",
            Self::Other(s) => s,
        }
    }

    /// The ingress-side kinds (`ingress`, `clsact`).
    pub fn is_ingress(&self) -> bool {
        matches!(self, Self::Ingress | Self::Clsact)
    }
}

impl fmt::Display for QdiscKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queueing discipline attached to a link, as `tc qdisc show` lists it.
///
/// Semantics shared by both backends (the kernel's):
///
/// * A link that was never up has the built-in `noop` root qdisc, which listings omit. The first
///   time it goes up it gets its default qdisc (handle `0:`): `noqueue` for virtual devices
///   without a queue (loopback, veth, bridge, macvlan, ...), `pfifo_fast` for queued ones (ifb,
///   tap, physical NICs; the kernel's built-in default, `net.core.default_qdisc` can change it).
///   The default qdisc stays when the link goes down again.
/// * Adding a root qdisc replaces the default one. Adding when a non-default root exists fails
///   with [`NetErrorKind::Exists`](super::NetErrorKind::Exists); replacing with the same handle and
///   kind changes its parameters, with a different handle swaps it, with the same handle but
///   another kind is [`NetErrorKind::InvalidArgument`](super::NetErrorKind::InvalidArgument).
///   Deleting it brings the default back (or `noop` on a link that is down); the default itself
///   cannot be deleted ([`NetErrorKind::NotFound`](super::NetErrorKind::NotFound)).
/// * A link has at most one ingress-side qdisc, `ingress` or `clsact` (handle `ffff:`, parent
///   `ffff:fff1`); filters on it need it to exist. Deleting a qdisc deletes its filters.
/// * Deleting a link deletes its qdiscs and filters; moving it to another namespace resets them.
///   A `mirred` action whose target link is deleted or moved away then reports target `0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Qdisc {
    /// The link's interface index.
    pub index: u32,
    /// The qdisc's handle ([`TcHandle::UNSPEC`] for a link's default qdisc).
    pub handle: TcHandle,
    /// [`TcHandle::ROOT`], [`TcHandle::INGRESS`], or the class it hangs under.
    pub parent: TcHandle,
    /// Kind and parameters.
    pub kind: QdiscKind,
}

impl Qdisc {
    /// True for the root of the egress tree.
    pub fn is_root(&self) -> bool {
        self.parent == TcHandle::ROOT
    }

    /// True for the kernel's default qdisc (handle `0:`), which cannot be deleted.
    pub fn is_default(&self) -> bool {
        self.handle == TcHandle::UNSPEC
    }

    /// The TBF parameters, for a `tbf` qdisc.
    pub fn tbf(&self) -> Option<&Tbf> {
        match &self.kind {
            QdiscKind::Tbf(t) => Some(t),
            _ => None,
        }
    }
}

/// Where a qdisc request attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QdiscParent {
    Root,
    Ingress,
}

impl QdiscParent {
    pub(crate) fn handle(self) -> TcHandle {
        match self {
            Self::Root => TcHandle::ROOT,
            Self::Ingress => TcHandle::INGRESS,
        }
    }
}

/// What a qdisc request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QdiscOp {
    /// `NLM_F_CREATE | NLM_F_EXCL` (`tc qdisc add`).
    Add,
    /// `NLM_F_CREATE | NLM_F_REPLACE` (`tc qdisc replace`).
    Replace,
    /// `RTM_DELQDISC` (`tc qdisc del`).
    Delete,
}

/// A qdisc request as the backends receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QdiscSpec {
    pub(crate) op: QdiscOp,
    pub(crate) index: u32,
    pub(crate) parent: QdiscParent,
    /// `None`: let the kernel pick (add) or match any (delete).
    pub(crate) handle: Option<TcHandle>,
    /// Required for add and replace; for delete, the existing qdisc must be of this kind.
    pub(crate) kind: Option<QdiscKind>,
}

impl fmt::Display for QdiscSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            QdiscOp::Add => "add",
            QdiscOp::Replace => "replace",
            QdiscOp::Delete => "delete",
        };
        write!(f, "{op} qdisc on #{} parent {}", self.index, self.parent.handle())?;
        if let Some(h) = self.handle {
            write!(f, " handle {h}")?;
        }
        if let Some(k) = &self.kind {
            write!(f, " {k}")?;
        }
        Ok(())
    }
}

/// The direction and effect of a `mirred` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirredKind {
    /// Steal the packet and send it out of the target link (`egress redirect`).
    EgressRedirect,
    /// Send a copy out of the target link (`egress mirror`).
    EgressMirror,
    /// Steal the packet and make the target link receive it (`ingress redirect`).
    IngressRedirect,
    /// Make the target link receive a copy (`ingress mirror`).
    IngressMirror,
}

impl MirredKind {
    /// True for the redirecting kinds (the packet does not continue; `stolen`).
    pub fn is_redirect(self) -> bool {
        matches!(self, Self::EgressRedirect | Self::IngressRedirect)
    }
}

/// An action attached to a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TcAction {
    /// `mirred`: redirect or mirror to another link of the namespace.
    Mirred {
        /// What to do.
        kind: MirredKind,
        /// The target link's index; `0` once the target has been deleted or moved away.
        target: u32,
    },
    /// Any other action kind (listed only).
    Other(String),
}

/// One 32-bit match of a `u32` filter: `(packet[offset..offset+4] & mask) == value`, with the
/// offset relative to the network header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U32Key {
    /// Bits compared.
    pub mask: u32,
    /// Expected value (of the masked bits).
    pub value: u32,
    /// Byte offset.
    pub offset: i32,
}

impl U32Key {
    /// The key that matches every packet (mask 0, `match u32 0 0`).
    pub const MATCH_ALL: U32Key = U32Key { mask: 0, value: 0, offset: 0 };
}

/// A `u32` classifier rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct U32Filter {
    /// The keys, all of which must match.
    pub keys: Vec<U32Key>,
    /// The class a matching packet is assigned to (`flowid` / `classid`).
    pub classid: Option<TcHandle>,
    /// The actions run on a match, in order.
    pub actions: Vec<TcAction>,
}

/// The classifier of a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterKind {
    /// A `u32` rule.
    U32(U32Filter),
    /// Any other classifier (listed only).
    Other(String),
}

/// A filter (one classifier rule) attached to a qdisc, as `tc filter show` lists it.
///
/// For `u32`, only match rules are listed: the per-priority classifier instance and its hash
/// tables, which `tc` prints as extra lines, are not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Filter {
    /// The link's interface index.
    pub index: u32,
    /// The parent the listing was made for.
    pub parent: TcHandle,
    /// Priority (`pref`); lower runs first.
    pub priority: u16,
    /// Ethertype matched ([`ETH_P_ALL`] for every protocol), in host byte order.
    pub protocol: u16,
    /// The rule's handle (for `u32`, `800::800` is `0x8000_0800`).
    pub handle: u32,
    /// Classifier and its parameters.
    pub kind: FilterKind,
}

impl Filter {
    /// The `u32` parameters, for a `u32` filter.
    pub fn u32(&self) -> Option<&U32Filter> {
        match &self.kind {
            FilterKind::U32(u) => Some(u),
            FilterKind::Other(_) => None,
        }
    }
}

/// A filter to add, as the backends receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterSpec {
    pub(crate) index: u32,
    pub(crate) parent: TcHandle,
    /// `None`: the kernel picks one (49152 for the first, see [`FilterRequest::priority`]).
    pub(crate) priority: Option<u16>,
    pub(crate) protocol: u16,
    pub(crate) u32: U32Filter,
}

impl fmt::Display for FilterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filter on #{} parent {} protocol {:#06x}", self.index, self.parent, self.protocol)?;
        if let Some(p) = self.priority {
            write!(f, " pref {p}")?;
        }
        write!(f, " u32")?;
        for a in &self.u32.actions {
            if let TcAction::Mirred { kind, target } = a {
                write!(f, " mirred {kind:?} #{target}")?;
            }
        }
        Ok(())
    }
}

/// Filters to delete: those of one priority (and protocol), or all of a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FilterDelete {
    pub(crate) index: u32,
    pub(crate) parent: TcHandle,
    pub(crate) priority: Option<u16>,
    pub(crate) protocol: Option<u16>,
}

impl fmt::Display for FilterDelete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filters on #{} parent {}", self.index, self.parent)?;
        if let Some(p) = self.priority {
            write!(f, " pref {p}")?;
        }
        if let Some(p) = self.protocol {
            write!(f, " protocol {p:#06x}")?;
        }
        Ok(())
    }
}

impl Net {
    /// The qdiscs of every link of the namespace (`tc qdisc show`), by link index; the root
    /// before the ingress-side one. Links still on the built-in `noop` qdisc have none.
    pub async fn qdiscs(&self) -> NetResult<Vec<Qdisc>> {
        self.backend.qdiscs(None).await
    }

    /// The qdiscs of one link (`tc qdisc show dev <link>`).
    pub async fn link_qdiscs(&self, index: u32) -> NetResult<Vec<Qdisc>> {
        self.backend.qdiscs(Some(index)).await
    }

    /// Starts a qdisc request on link `index`: choose the attachment point
    /// ([`QdiscRequest::root`], the default, or [`QdiscRequest::ingress`] /
    /// [`QdiscRequest::clsact`]) and kind, then [`add`](QdiscRequest::add),
    /// [`replace`](QdiscRequest::replace) or [`delete`](QdiscRequest::delete). See [`Qdisc`] for
    /// the kernel's rules.
    ///
    /// ```no_run
    /// # async fn demo(host: &cni_sdk::net::Net, veth: u32, ifb: u32) -> Result<(), cni_sdk::net::NetError> {
    /// use cni_sdk::net::{Psched, Tbf, TcHandle};
    /// // `tc qdisc add dev <veth> root handle 1: tbf rate 1mbit burst 10000b latency 25ms`,
    /// // with the numbers Go's bandwidth plugin computes.
    /// let tbf = Tbf::for_bandwidth(1_000_000, 80_000, 25, &Psched::read()?)?;
    /// host.qdisc(veth).root().handle(TcHandle::new(1, 0)).tbf(tbf).add().await?;
    /// // Redirect everything the veth receives to an ifb device.
    /// host.qdisc(veth).ingress().add().await?;
    /// host.filter(veth, TcHandle::INGRESS_QDISC)
    ///     .priority(1)
    ///     .u32_match_all()
    ///     .classid(TcHandle::new(1, 1))
    ///     .redirect_to(ifb)
    ///     .add()
    ///     .await?;
    /// for q in host.link_qdiscs(veth).await? {
    ///     println!("{} {} parent {}", q.kind, q.handle, q.parent);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn qdisc(&self, index: u32) -> QdiscRequest<'_> {
        QdiscRequest {
            net: self,
            spec: QdiscSpec { op: QdiscOp::Add, index, parent: QdiscParent::Root, handle: None, kind: None },
        }
    }

    /// The filters attached at `parent` of link `index` (`tc filter show dev <link> parent
    /// <parent>`), by priority. A parent that does not exist has no filters.
    pub async fn filters(&self, index: u32, parent: TcHandle) -> NetResult<Vec<Filter>> {
        self.backend.filters(index, parent).await
    }

    /// Starts a filter request on link `index` at `parent` ([`TcHandle::INGRESS_QDISC`] for an
    /// `ingress` qdisc, [`TcHandle::CLSACT_INGRESS`] / [`TcHandle::CLSACT_EGRESS`] for clsact).
    pub fn filter(&self, index: u32, parent: TcHandle) -> FilterRequest<'_> {
        FilterRequest {
            net: self,
            index,
            parent,
            priority: None,
            protocol: None,
            keys: Vec::new(),
            classid: None,
            actions: Vec::new(),
        }
    }
}

/// Builder for adding, replacing or deleting a qdisc; see [`Net::qdisc`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.add()`, `.replace()` or `.delete()` is awaited"]
pub struct QdiscRequest<'a> {
    net: &'a Net,
    spec: QdiscSpec,
}

impl QdiscRequest<'_> {
    /// Attach at the root of the egress tree (the default).
    pub fn root(mut self) -> Self {
        self.spec.parent = QdiscParent::Root;
        self
    }

    /// The `ingress` qdisc (parent `ffff:fff1`, handle `ffff:`).
    pub fn ingress(mut self) -> Self {
        self.spec.parent = QdiscParent::Ingress;
        self.spec.kind = Some(QdiscKind::Ingress);
        self
    }

    /// The `clsact` qdisc (parent `ffff:fff1`, handle `ffff:`).
    pub fn clsact(mut self) -> Self {
        self.spec.parent = QdiscParent::Ingress;
        self.spec.kind = Some(QdiscKind::Clsact);
        self
    }

    /// The qdisc's handle; its minor part must be 0 (`1:`). Without it the kernel picks one
    /// when adding, and a delete matches whatever qdisc is attached.
    pub fn handle(mut self, handle: TcHandle) -> Self {
        self.spec.handle = Some(handle);
        self
    }

    /// A token bucket filter with these parameters.
    pub fn tbf(mut self, tbf: Tbf) -> Self {
        self.spec.kind = Some(QdiscKind::Tbf(tbf));
        self
    }

    fn check(&self) -> NetResult<()> {
        let invalid = |m: String| Err(NetError::new(NetErrorKind::InvalidArgument, m));
        match (&self.spec.kind, self.spec.op) {
            (None, QdiscOp::Add | QdiscOp::Replace) => {
                return invalid(format!("{}: no qdisc kind given", self.spec));
            }
            (Some(QdiscKind::Other(k)), QdiscOp::Add | QdiscOp::Replace) => {
                return invalid(format!("{}: creating {k:?} qdiscs is not supported", self.spec));
            }
            _ => {}
        }
        if let Some(h) = self.spec.handle
            && (h.minor() != 0 || h == TcHandle::UNSPEC)
        {
            return invalid(format!("{}: invalid qdisc handle {h} (expected major:)", self.spec));
        }
        Ok(())
    }

    async fn run(mut self, op: QdiscOp) -> NetResult<()> {
        self.spec.op = op;
        self.check()?;
        self.net.backend.change_qdisc(&self.spec).await
    }

    /// Adds the qdisc (`tc qdisc add`). An existing non-default qdisc at the same place gives
    /// [`NetErrorKind::Exists`].
    pub async fn add(self) -> NetResult<()> {
        self.run(QdiscOp::Add).await
    }

    /// Adds the qdisc or replaces the one at the same place (`tc qdisc replace`).
    pub async fn replace(self) -> NetResult<()> {
        self.run(QdiscOp::Replace).await
    }

    /// Deletes the qdisc at the chosen place (checking handle and kind when given) together with
    /// its filters. Nothing to delete (including a default root qdisc) gives
    /// [`NetErrorKind::NotFound`]; another kind or handle [`NetErrorKind::InvalidArgument`].
    pub async fn delete(self) -> NetResult<()> {
        self.run(QdiscOp::Delete).await
    }
}

/// Builder for adding or deleting `u32` filters; see [`Net::filter`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.add()` or `.delete()` is awaited"]
pub struct FilterRequest<'a> {
    net: &'a Net,
    index: u32,
    parent: TcHandle,
    priority: Option<u16>,
    protocol: Option<u16>,
    keys: Vec<U32Key>,
    classid: Option<TcHandle>,
    actions: Vec<TcAction>,
}

impl FilterRequest<'_> {
    /// Priority (`pref`). Without it, adding lets the kernel pick one: 49152 for the first,
    /// then one below the lowest priority from 32768 up (49151, ...); deleting without it
    /// deletes every filter of the parent.
    pub fn priority(mut self, priority: u16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Ethertype to match, in host byte order (default [`ETH_P_ALL`]). Filters sharing a
    /// priority must share the protocol.
    pub fn protocol(mut self, protocol: u16) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Match every packet (`u32 match u32 0 0`).
    pub fn u32_match_all(self) -> Self {
        self.u32_key(U32Key::MATCH_ALL)
    }

    /// Adds a match key.
    pub fn u32_key(mut self, key: U32Key) -> Self {
        self.keys.push(key);
        self
    }

    /// Class of matching packets (`flowid`).
    pub fn classid(mut self, classid: TcHandle) -> Self {
        self.classid = Some(classid);
        self
    }

    /// Adds an action.
    pub fn action(mut self, action: TcAction) -> Self {
        self.actions.push(action);
        self
    }

    /// Adds `action mirred egress redirect dev <target>`: matching packets leave through link
    /// `target` instead.
    pub fn redirect_to(self, target: u32) -> Self {
        self.action(TcAction::Mirred { kind: MirredKind::EgressRedirect, target })
    }

    /// Adds the filter. Errors: the parent qdisc does not exist
    /// ([`NetErrorKind::InvalidArgument`]) or takes no filters; another protocol at the same
    /// priority ([`NetErrorKind::InvalidArgument`]); a `mirred` target that does not exist
    /// ([`NetErrorKind::NotFound`]). Adding the same rule twice adds a second rule.
    pub async fn add(self) -> NetResult<()> {
        let spec = FilterSpec {
            index: self.index,
            parent: self.parent,
            priority: self.priority,
            protocol: self.protocol.unwrap_or(ETH_P_ALL),
            u32: U32Filter { keys: self.keys, classid: self.classid, actions: self.actions },
        };
        let invalid = |m: String| Err(NetError::new(NetErrorKind::InvalidArgument, m));
        if spec.u32.keys.is_empty() {
            return invalid(format!("add {spec}: a u32 filter needs a match key (u32_match_all)"));
        }
        if spec.u32.keys.len() > 128 {
            return invalid(format!("add {spec}: at most 128 u32 keys"));
        }
        if spec.protocol == 0 || spec.priority == Some(0) {
            return invalid(format!("add {spec}: protocol and priority must not be 0"));
        }
        if spec.u32.actions.iter().any(|a| matches!(a, TcAction::Other(_))) {
            return invalid(format!("add {spec}: only mirred actions can be added"));
        }
        self.net.backend.add_filter(&spec).await
    }

    /// Deletes the filters of the chosen priority (checking the protocol when given), or every
    /// filter of the parent without a priority. A priority with no filters gives
    /// [`NetErrorKind::NotFound`]; a parent qdisc that does not exist
    /// [`NetErrorKind::InvalidArgument`].
    pub async fn delete(self) -> NetResult<()> {
        let del =
            FilterDelete { index: self.index, parent: self.parent, priority: self.priority, protocol: self.protocol };
        self.net.backend.delete_filter(&del).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_print_and_parse_like_tc() {
        assert_eq!(TcHandle::new(1, 0).to_string(), "1:");
        assert_eq!(TcHandle::new(1, 1).to_string(), "1:1");
        assert_eq!(TcHandle::INGRESS.to_string(), "ffff:fff1");
        assert_eq!(TcHandle::INGRESS_QDISC.to_string(), "ffff:");
        assert_eq!(TcHandle::ROOT.to_string(), "root");
        assert_eq!(TcHandle::UNSPEC.to_string(), "none");
        assert_eq!(TcHandle::new(0, 5).to_string(), ":5");
        for s in ["1:", "1:1", "ffff:fff1", "ffff:", "root", "none", ":5", "8001:"] {
            assert_eq!(s.parse::<TcHandle>().unwrap().to_string(), s);
        }
        assert_eq!("ffff:".parse::<TcHandle>().unwrap(), TcHandle::INGRESS_QDISC);
        assert_eq!(TcHandle::from_raw(0x8000_0800).major(), 0x8000);
        for bad in ["", ":", "1", "x:", "1:2:3", "10000:"] {
            assert_eq!(bad.parse::<TcHandle>().unwrap_err().kind(), NetErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn psched_is_parsed_like_go() {
        let p = Psched::parse("000003e8 00000040 000f4240 3b9aca00\n").unwrap();
        assert_eq!(p, Psched::KERNEL);
        assert_eq!(p.tick_in_usec(), 15.625);
        assert_eq!(p.time_to_ticks(80_000), Some(1_250_000));
        assert_eq!(p.ticks_to_time(1_250_000), 80_000);
        // A 1 GHz clock resolution: the first field is replaced by the second.
        let ns = Psched::parse("000003e8 00000040 3b9aca00").unwrap();
        assert_eq!(ns.hz, 0);
        assert_eq!(ns.tick_in_usec(), 1000.0);
        for bad in ["", "1 2", "x y z", "1 0 3", "1 2 0"] {
            assert_eq!(Psched::parse(bad).unwrap_err().kind(), NetErrorKind::InvalidArgument, "{bad:?}");
        }
        // This machine's clock: 64 ns ticks on every kernel with a 1 MHz psched resolution.
        assert_eq!(Psched::read().unwrap().tick_in_usec(), 15.625);
    }

    #[test]
    fn tbf_math_is_go_bandwidths() {
        let p = Psched::KERNEL;
        // The numbers of the notes: `tc` shows rate 1Mbit burst 10000b lat 25ms.
        let t = Tbf::for_bandwidth(1_000_000, 80_000, 25, &p).unwrap();
        assert_eq!(t, Tbf { rate: 125_000, buffer: 1_250_000, limit: 13_125 });
        assert_eq!(t.burst(&p), 10_000);
        assert_eq!(t.latency_usec(&p), 25_000.0);
        // Truncations: 123 bits/s is 15 bytes/s; 456 bits is 57 bytes -> 3.8 s -> 3800000 µs.
        let t = Tbf::for_bandwidth(123, 456, 25, &p).unwrap();
        assert_eq!(t.rate, 15);
        assert_eq!(t.buffer, 59_375_000);
        assert_eq!(t.limit, 57);
        // 10 Gbit/s with a 1 Gbit burst.
        let t = Tbf::for_bandwidth(10_000_000_000, 1_000_000_000, 25, &p).unwrap();
        assert_eq!(t, Tbf { rate: 1_250_000_000, buffer: 1_562_500, limit: 156_250_000 });
        // Errors instead of Go's wrap-arounds.
        let kind = |r: NetResult<Tbf>| r.unwrap_err().kind();
        assert_eq!(kind(Tbf::for_bandwidth(7, 80_000, 25, &p)), NetErrorKind::InvalidArgument);
        assert_eq!(kind(Tbf::for_bandwidth(8_000, 7, 25, &p)), NetErrorKind::InvalidArgument);
        assert_eq!(kind(Tbf::for_bandwidth(8, 8 * (1 << 32), 25, &p)), NetErrorKind::InvalidArgument);
        assert_eq!(kind(Tbf::for_bandwidth(8, 8 * 10_000, 25, &p)), NetErrorKind::InvalidArgument);
        assert_eq!(kind(Tbf::for_bandwidth(u64::MAX, 8 * 1000, 25, &p)), NetErrorKind::InvalidArgument);
    }
}
