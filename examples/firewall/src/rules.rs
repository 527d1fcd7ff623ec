//! Go's iptables rules (`iptables.go`, `ingresspolicy.go`), as model rules and as Go's argument
//! lists (what its error messages print).

use cni_sdk::firewall::names::{
    FIREWALL_ADMIN_COMMENT, FIREWALL_FORWARD_CHAIN, FIREWALL_FORWARD_COMMENT, FIREWALL_ISOLATION_STAGE_1,
    FIREWALL_ISOLATION_STAGE_2, firewall_isolation_comment,
};
use cni_sdk::firewall::{BackendKind, Batch, Chain, ConnState, IpFamily, Match, Rule, TableId, Verdict};
use ipnet::IpNet;

/// The `filter` table of `family`.
pub(crate) fn filter(family: IpFamily) -> TableId {
    TableId::iptables(family, "filter")
}

/// A rule and Go's argument list for it.
#[derive(Debug, Clone)]
pub(crate) struct GoRule {
    pub(crate) rule: Rule,
    pub(crate) go_args: Vec<String>,
}

impl GoRule {
    /// Go's `%v` of the argument list.
    pub(crate) fn go_text(&self) -> String {
        format!("[{}]", self.go_args.join(" "))
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// `<ip>/32` or `<ip>/128` (Go `ipString`).
pub(crate) fn host_net(addr: &IpNet) -> IpNet {
    IpNet::from(addr.addr())
}

/// `FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD` (Go `generateFilterRule`).
pub(crate) fn forward_jump() -> GoRule {
    GoRule {
        rule: Rule::new(Verdict::Jump(FIREWALL_FORWARD_CHAIN.into())).with_comment(FIREWALL_FORWARD_COMMENT),
        go_args: s(&["-m", "comment", "--comment", FIREWALL_FORWARD_COMMENT, "-j", FIREWALL_FORWARD_CHAIN]),
    }
}

/// `CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j <admin>` (Go
/// `generateAdminRule`).
pub(crate) fn admin_jump(admin: &str) -> GoRule {
    GoRule {
        rule: Rule::new(Verdict::Jump(admin.into())).with_comment(FIREWALL_ADMIN_COMMENT),
        go_args: s(&["-m", "comment", "--comment", FIREWALL_ADMIN_COMMENT, "-j", admin]),
    }
}

/// The two rules of one container address (Go `getPrivChainRules`): replies to it, and
/// everything from it.
pub(crate) fn address_rules(addr: &IpNet) -> [GoRule; 2] {
    let host = host_net(addr);
    let h = host.to_string();
    [
        GoRule {
            rule: Rule::new(Verdict::Accept)
                .when(Match::Destination(host))
                .when(Match::ConnState(vec![ConnState::Related, ConnState::Established])),
            go_args: s(&["-d", &h, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"]),
        },
        GoRule { rule: Rule::new(Verdict::Accept).when(Match::Source(host)), go_args: s(&["-s", &h, "-j", "ACCEPT"]) },
    ]
}

/// ADD's rules for the addresses of one family: the chains, the two jumps (at the top, when
/// missing) and the address rules (appended when missing).
pub(crate) fn add_addresses(batch: &mut Batch, family: IpFamily, admin: &str, addrs: &[IpNet]) {
    let t = filter(family);
    batch
        .ensure_chain(&t, Chain::regular(FIREWALL_FORWARD_CHAIN))
        .ensure_chain(&t, Chain::regular(admin))
        .insert_if_absent(&t.chain("FORWARD"), forward_jump().rule)
        .insert_if_absent(&t.chain(FIREWALL_FORWARD_CHAIN), admin_jump(admin).rule);
    for a in addrs {
        for r in address_rules(a) {
            batch.append_if_absent(&t.chain(FIREWALL_FORWARD_CHAIN), r.rule);
        }
    }
}

/// Deletes the address rules of `addrs` (of one family); missing ones are fine.
pub(crate) fn delete_addresses(batch: &mut Batch, family: IpFamily, addrs: &[IpNet]) {
    let t = filter(family);
    for a in addrs {
        for r in address_rules(a) {
            batch.delete_rule(&t.chain(FIREWALL_FORWARD_CHAIN), r.rule);
        }
    }
}

/// `ingressPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressPolicy {
    /// `open` (or unset): no isolation.
    Open,
    /// `same-bridge`: only the container's bridge may connect to it.
    SameBridge,
    /// `isolated`: nothing may connect to it, not even its bridge.
    Isolated,
}

impl IngressPolicy {
    /// Parses the key (Go's message for an unknown value).
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s.unwrap_or_default() {
            "" | "open" => Ok(Self::Open),
            "same-bridge" => Ok(Self::SameBridge),
            "isolated" => Ok(Self::Isolated),
            other => Err(format!("unknown ingress policy: {other:?}")),
        }
    }

    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::SameBridge => "same-bridge",
            Self::Isolated => "isolated",
        }
    }
}

/// The comments Go has given the isolation rules both policies share: v1.1.1's
/// `(ingressPolicy: same-bridge)` and v1.7+'s `(ingressPolicy: same-bridge|isolated)`.
fn shared_comments() -> [String; 2] {
    [firewall_isolation_comment("same-bridge"), firewall_isolation_comment("same-bridge|isolated")]
}

/// True when `listed` is `want` apart from a comment that either Go version gives it.
fn equivalent(want: &Rule) -> impl Fn(&Rule) -> bool + Send + Sync + 'static {
    let want = want.normalized(BackendKind::Iptables);
    let comments = shared_comments();
    move |listed: &Rule| {
        listed.verdict == want.verdict
            && listed.conditions == want.conditions
            && listed.comment.as_ref().is_some_and(|c| comments.contains(c))
    }
}

/// Go `setupIsolationChains` for one family: `FORWARD` → `CNI-ISOLATION-STAGE-1` (before the
/// `CNI-FORWARD` jump), traffic leaving `bridge` for elsewhere to STAGE-2, which drops what goes
/// out to `bridge`; with `isolated`, traffic within the bridge is dropped too.
///
/// Rules both policies share are written with v1.1.1's comment for `same-bridge` (the interop
/// peer) and v1.7+'s for `isolated`, and either form counts as present.
pub(crate) fn add_isolation(batch: &mut Batch, family: IpFamily, bridge: &str, policy: IngressPolicy) {
    let t = filter(family);
    let own = firewall_isolation_comment(policy.as_str());
    let shared = match policy {
        IngressPolicy::Isolated => firewall_isolation_comment("same-bridge|isolated"),
        _ => firewall_isolation_comment("same-bridge"),
    };
    batch
        .ensure_chain(&t, Chain::regular(FIREWALL_ISOLATION_STAGE_1))
        .ensure_chain(&t, Chain::regular(FIREWALL_ISOLATION_STAGE_2));
    let to_stage1 = Rule::new(Verdict::Jump(FIREWALL_ISOLATION_STAGE_1.into())).with_comment(&shared);
    batch.insert_unless(&t.chain("FORWARD"), to_stage1.clone(), equivalent(&to_stage1));
    let leaving = Rule::new(Verdict::Jump(FIREWALL_ISOLATION_STAGE_2.into()))
        .when(Match::InInterface(bridge.into()))
        .when(!Match::OutInterface(bridge.into()))
        .with_comment(&own);
    batch.insert_if_absent(&t.chain(FIREWALL_ISOLATION_STAGE_1), leaving);
    if policy == IngressPolicy::Isolated {
        let within = Rule::new(Verdict::Drop)
            .when(Match::InInterface(bridge.into()))
            .when(Match::OutInterface(bridge.into()))
            .with_comment(&own);
        batch.insert_if_absent(&t.chain(FIREWALL_ISOLATION_STAGE_1), within);
    }
    let ret = Rule::new(Verdict::Return).with_comment(&shared);
    batch.append_unless(&t.chain(FIREWALL_ISOLATION_STAGE_1), ret.clone(), equivalent(&ret));
    let drop_in = Rule::new(Verdict::Drop).when(Match::OutInterface(bridge.into())).with_comment(&shared);
    batch.insert_unless(&t.chain(FIREWALL_ISOLATION_STAGE_2), drop_in.clone(), equivalent(&drop_in));
    batch.append_unless(&t.chain(FIREWALL_ISOLATION_STAGE_2), ret.clone(), equivalent(&ret));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_like_go() {
        assert_eq!(IngressPolicy::parse(None), Ok(IngressPolicy::Open));
        assert_eq!(IngressPolicy::parse(Some("")), Ok(IngressPolicy::Open));
        assert_eq!(IngressPolicy::parse(Some("open")), Ok(IngressPolicy::Open));
        assert_eq!(IngressPolicy::parse(Some("same-bridge")), Ok(IngressPolicy::SameBridge));
        assert_eq!(IngressPolicy::parse(Some("isolated")), Ok(IngressPolicy::Isolated));
        assert_eq!(IngressPolicy::parse(Some("Open")), Err("unknown ingress policy: \"Open\"".to_owned()));
    }

    #[test]
    fn go_texts_of_the_rules() {
        assert_eq!(forward_jump().go_text(), "[-m comment --comment CNI firewall plugin rules -j CNI-FORWARD]");
        assert_eq!(admin_jump("X").go_text(), "[-m comment --comment CNI firewall plugin admin overrides -j X]");
        let [a, b] = address_rules(&"10.222.0.5/24".parse().unwrap());
        assert_eq!(a.go_text(), "[-d 10.222.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT]");
        assert_eq!(b.go_text(), "[-s 10.222.0.5/32 -j ACCEPT]");
        let [_, b] = address_rules(&"fd00:222::5/64".parse().unwrap());
        assert_eq!(b.go_text(), "[-s fd00:222::5/128 -j ACCEPT]");
    }

    #[test]
    fn shared_isolation_rules_match_either_go_comment() {
        let want = Rule::new(Verdict::Return).with_comment(firewall_isolation_comment("same-bridge|isolated"));
        let eq = equivalent(&want);
        assert!(eq(&Rule::new(Verdict::Return).with_comment(firewall_isolation_comment("same-bridge"))));
        assert!(eq(&want));
        assert!(!eq(&Rule::new(Verdict::Return).with_comment("something else")));
        assert!(!eq(&Rule::new(Verdict::Return)));
        assert!(!eq(&Rule::new(Verdict::Drop).with_comment(firewall_isolation_comment("same-bridge"))));
    }
}
