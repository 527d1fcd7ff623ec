//! The policy rule model: per-family rule lists following `fib_nl_newrule` (automatic
//! priority, `rule_exists`) and `fib_nl_delrule` (`rule_find`).

use crate::net::rule::RuleSpec;
use crate::net::{IpFamily, NetError, NetResult, Rule, RuleAction};

use super::model::NsState;

/// The priority of the l3mdev rule a VRF device adds.
const L3MDEV_PRIORITY: u32 = 1000;

fn errno(errno: i32, what: impl std::fmt::Display, why: &str) -> NetError {
    NetError::from_errno(errno, format_args!("{what}: {why}"))
}

/// `fib4_rule_compare` / `fib6_rule_compare`: addresses are compared only when `spec` has them.
fn addresses_match(rule: &Rule, spec: &RuleSpec) -> bool {
    spec.src.is_none_or(|s| rule.src == Some(s)) && spec.dst.is_none_or(|d| rule.dst == Some(d))
}

/// A rule and who made it.
#[derive(Debug, Clone)]
pub(super) struct FRule {
    pub(super) rule: Rule,
    /// Installed by the kernel (`proto kernel`: the default rules, the l3mdev rule). Rules added
    /// through netlink without a protocol never count as duplicates of these.
    pub(super) kernel: bool,
}

impl NsState {
    /// The rules of one family, in priority order.
    pub(super) fn rules(&self, family: IpFamily) -> Vec<Rule> {
        self.rules.iter().map(|r| &r.rule).filter(|r| r.family == family).cloned().collect()
    }

    /// `fib_default_rule_pref`: the second rule's priority minus one.
    fn default_rule_priority(&self, family: IpFamily) -> u32 {
        match self.rules.iter().map(|r| &r.rule).filter(|r| r.family == family).nth(1) {
            Some(r) if r.priority != 0 => r.priority - 1,
            _ => 0,
        }
    }

    /// Inserts after the last rule whose priority is not larger.
    fn insert_rule(&mut self, rule: Rule, kernel: bool) {
        let pos = self
            .rules
            .iter()
            .rposition(|r| r.rule.family == rule.family && r.rule.priority <= rule.priority)
            .map(|p| p + 1)
            .or_else(|| self.rules.iter().position(|r| r.rule.family == rule.family))
            .unwrap_or(self.rules.len());
        self.rules.insert(pos, FRule { rule, kernel });
    }

    pub(super) fn add_rule(&mut self, spec: &RuleSpec) -> NetResult<()> {
        let what = format!("add {spec}");
        let mut rule = Rule::new(spec.family);
        rule.priority = spec.priority.unwrap_or_else(|| self.default_rule_priority(spec.family));
        rule.src = spec.src;
        rule.dst = spec.dst;
        rule.action = spec.action.unwrap_or_default();
        rule.table = spec.table.unwrap_or(0);
        rule.iif = spec.iif.clone();
        rule.oif = spec.oif.clone();
        rule.fwmark = spec.fwmark.filter(|m| *m != 0);
        // A mark without a mask is compared in full; the kernel reports a mask when either is set.
        rule.fwmask = match (spec.fwmask, rule.fwmark) {
            (Some(0) | None, None) => None,
            (Some(m), _) => Some(m),
            (None, Some(_)) => Some(u32::MAX),
        };
        rule.invert = spec.invert;
        rule.l3mdev = spec.l3mdev;
        if let RuleAction::Goto(target) = rule.action
            && target <= rule.priority
        {
            return Err(errno(libc::EINVAL, &what, "backward goto not supported"));
        }
        if rule.l3mdev && rule.table != 0 {
            return Err(errno(libc::EINVAL, &what, "an l3mdev rule has no table"));
        }
        if rule.action == RuleAction::ToTable && rule.table == 0 && !rule.l3mdev {
            return Err(errno(libc::EINVAL, &what, "invalid table"));
        }
        // rule_exists: every field but the flags (the protocol too), addresses only when given.
        let exists = self.rules.iter().filter(|r| !r.kernel).map(|r| &r.rule).any(|r| {
            r.family == rule.family
                && r.action == rule.action
                && r.table == rule.table
                && r.priority == rule.priority
                && r.iif == rule.iif
                && r.oif == rule.oif
                && r.fwmark == rule.fwmark
                && r.fwmask == rule.fwmask
                && r.l3mdev == rule.l3mdev
                && addresses_match(r, spec)
        });
        if exists {
            return Err(errno(libc::EEXIST, &what, "the rule exists"));
        }
        self.insert_rule(rule, false);
        Ok(())
    }

    /// Removes the first rule matching every field `spec` gives.
    pub(super) fn delete_rule(&mut self, spec: &RuleSpec) -> NetResult<()> {
        let pos = self.rules.iter().map(|r| &r.rule).position(|r| {
            r.family == spec.family
                && spec.action.is_none_or(|a| r.action == a)
                && spec.table.is_none_or(|t| t == 0 || r.table == t)
                && spec.priority.is_none_or(|p| r.priority == p)
                && spec.iif.as_ref().is_none_or(|i| r.iif.as_ref() == Some(i))
                && spec.oif.as_ref().is_none_or(|o| r.oif.as_ref() == Some(o))
                && spec.fwmark.is_none_or(|m| m == 0 || r.fwmark == Some(m))
                && spec.fwmask.is_none_or(|m| m == 0 || r.fwmask == Some(m))
                && (!spec.l3mdev || r.l3mdev)
                && addresses_match(r, spec)
        });
        match pos {
            Some(p) => {
                self.rules.remove(p);
                Ok(())
            }
            None => Err(errno(libc::ENOENT, format_args!("delete {spec}"), "no such rule")),
        }
    }

    /// The first VRF device of a namespace adds `1000: from all lookup [l3mdev-table]` for
    /// both families (once; deleting it does not bring it back).
    pub(super) fn add_vrf_rules(&mut self) {
        if self.vrf_rules_added {
            return;
        }
        self.vrf_rules_added = true;
        for family in [IpFamily::V4, IpFamily::V6] {
            let present = self.rules.iter().any(|r| r.rule.family == family && r.rule.l3mdev);
            if !present {
                let mut rule = Rule::new(family);
                rule.priority = L3MDEV_PRIORITY;
                rule.table = 0;
                rule.l3mdev = true;
                self.insert_rule(rule, true);
            }
        }
    }
}
