//! Policy routing rules (`ip rule`). The semantics are documented on [`Rule`], the example
//! on [`Net::rule`].

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Net, NetError, NetErrorKind, NetResult, TABLE_LOCAL, TABLE_MAIN, validate_ifname};

/// The `default` routing table (`RT_TABLE_DEFAULT`).
pub const TABLE_DEFAULT: u32 = 253;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The family of a prefix.
    pub fn of_net(net: &IpNet) -> Self {
        Self::of(net.addr())
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "inet",
            Self::V6 => "inet6",
        })
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RuleAction {
    /// Look the destination up in the rule's table (`lookup <table>`).
    #[default]
    ToTable,
    /// Continue with the rule of this priority (`goto <prio>`); it must be larger than the
    /// rule's own.
    Goto(u32),
    /// Do nothing and continue (`nop`).
    Nop,
    /// Drop silently (`blackhole`).
    Blackhole,
    /// Reject with "network unreachable" (`unreachable`).
    Unreachable,
    /// Reject with "administratively prohibited" (`prohibit`).
    Prohibit,
}

/// A policy routing rule, as `ip rule` lists it.
///
/// Semantics of both backends (the kernel's):
///
/// * A new namespace has the default rules: IPv4 `0: lookup local`, `32766: lookup main`,
///   `32767: lookup default`; IPv6 `0` and `32766` only.
/// * Rules are listed by priority; among equal priorities, oldest first.
/// * Without a priority, a new rule gets the priority of the family's *second* rule minus one
///   (0 if there is no second rule or its priority is 0).
/// * Adding a rule identical to an existing one (priority included) gives
///   [`NetErrorKind::Exists`]. Addresses are compared only when the new rule has them, so a rule
///   without `from` clashes with an otherwise identical rule that has one.
/// * Deleting removes the first rule (in listing order) that matches every field given;
///   none gives [`NetErrorKind::NotFound`].
/// * Creating the first VRF device of a namespace adds the `1000: from all lookup
///   [l3mdev-table]` rule for both families.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Rule {
    /// Address family.
    pub family: IpFamily,
    /// Priority (`pref`); lower is tried first.
    pub priority: u32,
    /// Source prefix (`from`); `None` is `from all`. Host bits are kept as given.
    pub src: Option<IpNet>,
    /// Destination prefix (`to`).
    pub dst: Option<IpNet>,
    /// Table looked up ([`RuleAction::ToTable`]); 0 for other actions and l3mdev rules.
    pub table: u32,
    /// Action.
    pub action: RuleAction,
    /// Incoming interface name (`iif`); the link need not exist.
    pub iif: Option<String>,
    /// Outgoing interface name (`oif`).
    pub oif: Option<String>,
    /// Firewall mark matched (`fwmark`).
    pub fwmark: Option<u32>,
    /// Mask applied to the mark before matching; the kernel reports `0xffffffff` for a mark
    /// given without a mask.
    pub fwmask: Option<u32>,
    /// The selector is inverted (`not`).
    pub invert: bool,
    /// The table is the one of the VRF the packet came through (`lookup [l3mdev-table]`).
    pub l3mdev: bool,
}

impl Rule {
    /// A rule of `family` with priority 0, looking up the main table, matching everything.
    pub fn new(family: IpFamily) -> Self {
        Self {
            family,
            priority: 0,
            src: None,
            dst: None,
            table: TABLE_MAIN,
            action: RuleAction::ToTable,
            iif: None,
            oif: None,
            fwmark: None,
            fwmask: None,
            invert: false,
            l3mdev: false,
        }
    }

    /// The default rules of a new namespace for `family`.
    pub fn defaults(family: IpFamily) -> Vec<Rule> {
        let at = |priority, table| Rule { priority, table, ..Rule::new(family) };
        let mut out = vec![at(0, TABLE_LOCAL), at(32766, TABLE_MAIN)];
        if family == IpFamily::V4 {
            out.push(at(32767, TABLE_DEFAULT));
        }
        out
    }
}

impl fmt::Display for Rule {
    /// Like a line of `ip rule`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:\t", self.priority)?;
        if self.invert {
            f.write_str("not ")?;
        }
        match self.src {
            Some(s) => write!(f, "from {s}")?,
            None => f.write_str("from all")?,
        }
        if let Some(d) = self.dst {
            write!(f, " to {d}")?;
        }
        if self.fwmark.is_some() || self.fwmask.is_some() {
            write!(f, " fwmark {:#x}", self.fwmark.unwrap_or(0))?;
            if let Some(mask) = self.fwmask.filter(|m| *m != u32::MAX) {
                write!(f, "/{mask:#x}")?;
            }
        }
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, " oif {o}")?;
        }
        match self.action {
            RuleAction::ToTable if self.l3mdev => f.write_str(" lookup [l3mdev-table]"),
            RuleAction::ToTable => match self.table {
                TABLE_LOCAL => f.write_str(" lookup local"),
                TABLE_MAIN => f.write_str(" lookup main"),
                TABLE_DEFAULT => f.write_str(" lookup default"),
                t => write!(f, " lookup {t}"),
            },
            RuleAction::Goto(p) => write!(f, " goto {p}"),
            RuleAction::Nop => f.write_str(" nop"),
            RuleAction::Blackhole => f.write_str(" blackhole"),
            RuleAction::Unreachable => f.write_str(" unreachable"),
            RuleAction::Prohibit => f.write_str(" prohibit"),
        }
    }
}

/// A rule request as the backends receive it: `None` fields are "not given" (for an add, the
/// kernel's defaults; for a delete, wildcards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    pub(crate) family: IpFamily,
    pub(crate) priority: Option<u32>,
    pub(crate) src: Option<IpNet>,
    pub(crate) dst: Option<IpNet>,
    pub(crate) table: Option<u32>,
    pub(crate) action: Option<RuleAction>,
    pub(crate) iif: Option<String>,
    pub(crate) oif: Option<String>,
    pub(crate) fwmark: Option<u32>,
    pub(crate) fwmask: Option<u32>,
    pub(crate) invert: bool,
    pub(crate) l3mdev: bool,
}

impl RuleSpec {
    /// What the kernel would take differently per family: table 0 means "allocate an empty
    /// table" for IPv4 but is refused for IPv6. Refused for both here.
    pub(crate) fn check_add(&self) -> NetResult<()> {
        if self.action.unwrap_or_default() == RuleAction::ToTable && self.table.unwrap_or(0) == 0 && !self.l3mdev {
            return Err(NetError::new(NetErrorKind::InvalidArgument, format!("add {self}: table 0 is not a table")));
        }
        Ok(())
    }

    /// The spec that names exactly `rule`.
    pub(crate) fn exact(rule: &Rule) -> Self {
        Self {
            family: rule.family,
            priority: Some(rule.priority),
            src: rule.src,
            dst: rule.dst,
            table: Some(rule.table),
            action: Some(rule.action),
            iif: rule.iif.clone(),
            oif: rule.oif.clone(),
            fwmark: rule.fwmark,
            fwmask: rule.fwmask,
            invert: rule.invert,
            l3mdev: rule.l3mdev,
        }
    }
}

impl fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule", self.family)?;
        if let Some(p) = self.priority {
            write!(f, " pref {p}")?;
        }
        if let Some(s) = self.src {
            write!(f, " from {s}")?;
        }
        if let Some(d) = self.dst {
            write!(f, " to {d}")?;
        }
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, " oif {o}")?;
        }
        if let Some(m) = self.fwmark {
            write!(f, " fwmark {m:#x}")?;
        }
        if let Some(m) = self.fwmask {
            write!(f, " fwmask {m:#x}")?;
        }
        if let Some(a) = self.action
            && a != RuleAction::ToTable
        {
            write!(f, " {a:?}")?;
        }
        if self.l3mdev {
            f.write_str(" l3mdev")?;
        }
        if let Some(t) = self.table {
            write!(f, " table {t}")?;
        }
        Ok(())
    }
}

impl Net {
    /// The rules of both families (`ip rule; ip -6 rule`): IPv4 first, each by priority.
    pub async fn rules(&self) -> NetResult<Vec<Rule>> {
        let mut out = self.backend.rules(IpFamily::V4).await?;
        out.extend(self.backend.rules(IpFamily::V6).await?);
        Ok(out)
    }

    /// The rules of one family, by priority.
    pub async fn family_rules(&self, family: IpFamily) -> NetResult<Vec<Rule>> {
        self.backend.rules(family).await
    }

    /// Starts building a rule; finish with [`RuleRequest::add`] or [`RuleRequest::delete`]. See
    /// [`Rule`] for the kernel's rules.
    ///
    /// ```no_run
    /// # async fn demo(ctr: &cni_sdk::net::Net) -> Result<(), cni_sdk::net::NetError> {
    /// // `ip rule add from 10.5.0.5/32 lookup 100`, with the priority the kernel picks
    /// // (one below the second rule's: 32765 in a fresh namespace), as Go's sbr plugin does.
    /// ctr.rule().from("10.5.0.5/32".parse().unwrap()).table(100).add().await?;
    /// for rule in ctr.rules().await? {
    ///     println!("{}: {:?} lookup {}", rule.priority, rule.src, rule.table);
    /// }
    /// // `ip rule del from 10.5.0.5/32 lookup 100`: the first rule matching what is given.
    /// ctr.rule().from("10.5.0.5/32".parse().unwrap()).table(100).delete().await?;
    /// # Ok(()) }
    /// ```
    pub fn rule(&self) -> RuleRequest<'_> {
        RuleRequest {
            net: self,
            family: None,
            priority: None,
            src: None,
            dst: None,
            table: None,
            action: None,
            iif: None,
            oif: None,
            fwmark: None,
            fwmask: None,
            invert: false,
        }
    }

    /// Adds a fully specified rule (priority included).
    pub async fn add_rule(&self, rule: &Rule) -> NetResult<()> {
        let spec = RuleSpec::exact(rule);
        spec.check_add()?;
        self.backend.add_rule(&spec).await
    }

    /// Deletes exactly `rule` (e.g. one from [`Net::rules`]).
    pub async fn delete_rule(&self, rule: &Rule) -> NetResult<()> {
        self.backend.delete_rule(&RuleSpec::exact(rule)).await
    }
}

/// Builder for adding or deleting a rule; see [`Net::rule`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.add().await` or `.delete().await`"]
pub struct RuleRequest<'a> {
    net: &'a Net,
    family: Option<IpFamily>,
    priority: Option<u32>,
    src: Option<IpNet>,
    dst: Option<IpNet>,
    table: Option<u32>,
    action: Option<RuleAction>,
    iif: Option<String>,
    oif: Option<String>,
    fwmark: Option<u32>,
    fwmask: Option<u32>,
    invert: bool,
}

impl<'a> RuleRequest<'a> {
    /// The family; needed only when neither `from` nor `to` is given.
    pub fn family(mut self, family: IpFamily) -> Self {
        self.family = Some(family);
        self
    }

    /// Priority. Without it an added rule gets the kernel's automatic priority (see
    /// [`Rule`]), and a delete matches any priority.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Source prefix (`from`; use a /32 or /128 for one address).
    pub fn from(mut self, src: IpNet) -> Self {
        self.src = Some(src);
        self
    }

    /// Destination prefix (`to`).
    pub fn to(mut self, dst: IpNet) -> Self {
        self.dst = Some(dst);
        self
    }

    /// Table to look up (`lookup`; default [`TABLE_MAIN`] when adding).
    pub fn table(mut self, table: u32) -> Self {
        self.table = Some(table);
        self
    }

    /// Action (default [`RuleAction::ToTable`] when adding).
    pub fn action(mut self, action: RuleAction) -> Self {
        self.action = Some(action);
        self
    }

    /// Incoming interface name (`iif`).
    pub fn iif(mut self, name: &str) -> Self {
        self.iif = Some(name.to_owned());
        self
    }

    /// Outgoing interface name (`oif`).
    pub fn oif(mut self, name: &str) -> Self {
        self.oif = Some(name.to_owned());
        self
    }

    /// Firewall mark (`fwmark`), compared in full unless a mask is given.
    pub fn fwmark(mut self, mark: u32) -> Self {
        self.fwmark = Some(mark);
        self
    }

    /// Mask for the firewall mark (`fwmark <mark>/<mask>`).
    pub fn fwmask(mut self, mask: u32) -> Self {
        self.fwmask = Some(mask);
        self
    }

    /// Inverts the selector (`not`).
    pub fn invert(mut self) -> Self {
        self.invert = true;
        self
    }

    fn spec(self, adding: bool) -> NetResult<(&'a Net, RuleSpec)> {
        let invalid = |m: String| Err(NetError::new(NetErrorKind::InvalidArgument, m));
        let families: Vec<IpFamily> = [self.src, self.dst].iter().flatten().map(IpFamily::of_net).collect();
        let family = match (self.family, families.as_slice()) {
            (None, []) => return invalid("rule: no address family (give from, to or family)".into()),
            (Some(f), []) => f,
            (f, [first, rest @ ..]) => {
                if rest.iter().chain(f.iter()).any(|x| x != first) {
                    return invalid("rule: from, to and family disagree on the address family".into());
                }
                *first
            }
        };
        for name in [&self.iif, &self.oif].into_iter().flatten() {
            validate_ifname(name)?;
        }
        let (mut table, mut action) = (self.table, self.action);
        if adding {
            action.get_or_insert(RuleAction::ToTable);
            if action == Some(RuleAction::ToTable) {
                table.get_or_insert(TABLE_MAIN);
            }
        }
        let spec = RuleSpec {
            family,
            priority: self.priority,
            src: self.src,
            dst: self.dst,
            table,
            action,
            iif: self.iif,
            oif: self.oif,
            fwmark: self.fwmark,
            fwmask: self.fwmask,
            invert: self.invert,
            l3mdev: false,
        };
        Ok((self.net, spec))
    }

    /// The rule this request adds, with the priority left at 0 when not given.
    pub fn build(self) -> NetResult<Rule> {
        let (_, s) = self.spec(true)?;
        let mut rule = Rule::new(s.family);
        rule.priority = s.priority.unwrap_or(0);
        rule.src = s.src;
        rule.dst = s.dst;
        rule.table = s.table.unwrap_or(0);
        rule.action = s.action.unwrap_or_default();
        rule.iif = s.iif;
        rule.oif = s.oif;
        rule.fwmark = s.fwmark.filter(|m| *m != 0);
        rule.fwmask = s.fwmask.or(rule.fwmark.map(|_| u32::MAX));
        rule.invert = s.invert;
        Ok(rule)
    }

    /// Adds the rule. Errors: an identical rule exists ([`NetErrorKind::Exists`]); table 0 with
    /// [`RuleAction::ToTable`], or a `goto` that does not go forward
    /// ([`NetErrorKind::InvalidArgument`]).
    pub async fn add(self) -> NetResult<()> {
        let (net, spec) = self.spec(true)?;
        spec.check_add()?;
        net.backend.add_rule(&spec).await
    }

    /// Deletes the first rule matching every field given ([`NetErrorKind::NotFound`] if none).
    pub async fn delete(self) -> NetResult<()> {
        let (net, spec) = self.spec(false)?;
        net.backend.delete_rule(&spec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_like_ip_rule() {
        let defaults: Vec<String> = Rule::defaults(IpFamily::V4).iter().map(Rule::to_string).collect();
        assert_eq!(
            defaults,
            ["0:\tfrom all lookup local", "32766:\tfrom all lookup main", "32767:\tfrom all lookup default"]
        );
        assert_eq!(Rule::defaults(IpFamily::V6).len(), 2);
        let mut r = Rule::new(IpFamily::V4);
        r.priority = 32765;
        r.src = Some("10.5.0.5/32".parse().unwrap());
        r.table = 100;
        r.fwmark = Some(0x10);
        r.fwmask = Some(0xff);
        r.iif = Some("eth0".into());
        r.invert = true;
        assert_eq!(r.to_string(), "32765:\tnot from 10.5.0.5/32 fwmark 0x10/0xff iif eth0 lookup 100");
        r.l3mdev = true;
        assert!(r.to_string().ends_with("lookup [l3mdev-table]"));
        r.fwmark = None;
        assert!(r.to_string().contains(" fwmark 0x0/0xff "), "{r}");
        r.action = RuleAction::Goto(40000);
        assert!(r.to_string().ends_with("goto 40000"));
    }
}
