//! Policy rules: `RTM_NEWRULE` / `RTM_DELRULE` / `RTM_GETRULE`.

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::IpVersion;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::rule::{RuleAction as NlAction, RuleAttribute, RuleFlags, RuleMessage};

use super::{RealBackend, nl_err};
use crate::net::rule::RuleSpec;
use crate::net::{IpFamily, NetResult, Rule, RuleAction};

/// `RT_TABLE_COMPAT`: what the one-byte table field holds for tables above 255.
const RT_TABLE_COMPAT: u8 = 252;

fn nl_action(action: RuleAction) -> NlAction {
    match action {
        RuleAction::ToTable => NlAction::ToTable,
        RuleAction::Goto(_) => NlAction::Goto,
        RuleAction::Nop => NlAction::Nop,
        RuleAction::Blackhole => NlAction::Blackhole,
        RuleAction::Unreachable => NlAction::Unreachable,
        RuleAction::Prohibit => NlAction::Prohibit,
    }
}

fn rule_message(spec: &RuleSpec) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = match spec.family {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    };
    if let Some(action) = spec.action {
        msg.header.action = nl_action(action);
        if let RuleAction::Goto(target) = action {
            msg.attributes.push(RuleAttribute::Goto(target));
        }
    }
    if spec.invert {
        msg.header.flags = RuleFlags::Invert;
    }
    if let Some(table) = spec.table.filter(|t| *t != 0) {
        msg.header.table = u8::try_from(table).unwrap_or(RT_TABLE_COMPAT);
        msg.attributes.push(RuleAttribute::Table(table));
    }
    if let Some(p) = spec.priority {
        msg.attributes.push(RuleAttribute::Priority(p));
    }
    if let Some(src) = spec.src {
        msg.header.src_len = src.prefix_len();
        msg.attributes.push(RuleAttribute::Source(src.addr()));
    }
    if let Some(dst) = spec.dst {
        msg.header.dst_len = dst.prefix_len();
        msg.attributes.push(RuleAttribute::Destination(dst.addr()));
    }
    if let Some(i) = &spec.iif {
        msg.attributes.push(RuleAttribute::Iifname(i.clone()));
    }
    if let Some(o) = &spec.oif {
        msg.attributes.push(RuleAttribute::Oifname(o.clone()));
    }
    if let Some(m) = spec.fwmark {
        msg.attributes.push(RuleAttribute::FwMark(m));
    }
    if let Some(m) = spec.fwmask {
        msg.attributes.push(RuleAttribute::FwMask(m));
    }
    if spec.l3mdev {
        msg.attributes.push(RuleAttribute::L3MDev(true));
    }
    msg
}

fn parse_rule(msg: RuleMessage) -> Option<Rule> {
    let family = match msg.header.family {
        AddressFamily::Inet => IpFamily::V4,
        AddressFamily::Inet6 => IpFamily::V6,
        _ => return None,
    };
    let mut rule = Rule::new(family);
    rule.table = u32::from(msg.header.table);
    rule.invert = msg.header.flags.contains(RuleFlags::Invert);
    let mut goto = 0;
    for attr in msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => rule.priority = p,
            RuleAttribute::Table(t) => rule.table = t,
            RuleAttribute::Source(a) => rule.src = IpNet::new(a, msg.header.src_len).ok(),
            RuleAttribute::Destination(a) => rule.dst = IpNet::new(a, msg.header.dst_len).ok(),
            RuleAttribute::Iifname(n) => rule.iif = Some(n),
            RuleAttribute::Oifname(n) => rule.oif = Some(n),
            RuleAttribute::FwMark(m) => rule.fwmark = Some(m),
            RuleAttribute::FwMask(m) => rule.fwmask = Some(m),
            RuleAttribute::Goto(g) => goto = g,
            RuleAttribute::L3MDev(on) => rule.l3mdev = on,
            _ => {}
        }
    }
    rule.action = match msg.header.action {
        NlAction::ToTable => RuleAction::ToTable,
        NlAction::Goto => RuleAction::Goto(goto),
        NlAction::Nop => RuleAction::Nop,
        NlAction::Blackhole => RuleAction::Blackhole,
        NlAction::Unreachable => RuleAction::Unreachable,
        NlAction::Prohibit => RuleAction::Prohibit,
        _ => return None,
    };
    Some(rule)
}

impl RealBackend {
    pub(super) async fn list_rules(&self, family: IpFamily) -> NetResult<Vec<Rule>> {
        let version = match family {
            IpFamily::V4 => IpVersion::V4,
            IpFamily::V6 => IpVersion::V6,
        };
        let msgs: Vec<RuleMessage> = self
            .handle
            .rule()
            .get(version)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_err(e, format_args!("list {family} rules")))?;
        Ok(msgs.into_iter().filter_map(parse_rule).collect())
    }

    pub(super) async fn rule_add(&self, spec: &RuleSpec) -> NetResult<()> {
        let mut req = self.handle.rule().add();
        *req.message_mut() = rule_message(spec);
        req.execute().await.map_err(|e| nl_err(e, format_args!("add {spec}")))
    }

    pub(super) async fn rule_delete(&self, spec: &RuleSpec) -> NetResult<()> {
        self.handle.rule().del(rule_message(spec)).execute().await.map_err(|e| nl_err(e, format_args!("delete {spec}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_survive_the_message_round_trip() {
        let mut r = Rule::new(IpFamily::V6);
        r.priority = 100;
        r.src = Some("fd00:221::5/128".parse().unwrap());
        r.dst = Some("fd00:221:1::/48".parse().unwrap());
        r.table = 1000;
        r.iif = Some("eth0".into());
        r.oif = Some("eth1".into());
        r.fwmark = Some(7);
        r.fwmask = Some(0xff);
        r.invert = true;
        let msg = rule_message(&RuleSpec::exact(&r));
        assert_eq!(msg.header.table, RT_TABLE_COMPAT);
        assert_eq!(parse_rule(msg), Some(r.clone()));
        r.action = RuleAction::Goto(200);
        r.table = 0;
        assert_eq!(parse_rule(rule_message(&RuleSpec::exact(&r))), Some(r));
    }
}
