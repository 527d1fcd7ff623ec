//! Policy routing rules: the defaults of a new namespace, automatic priorities (what Go's sbr
//! plugin relies on), every field, duplicates and deletion.

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{IpFamily, Net, NetErrorKind, Rule, RuleAction, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN};

use super::{Env, err_kind, net, suite};

async fn priorities(n: &Net, family: IpFamily) -> Vec<(u32, u32)> {
    n.family_rules(family).await.unwrap().iter().map(|r| (r.priority, r.table)).collect()
}

async fn default_rules(env: Env) {
    let v4 = env.a.family_rules(IpFamily::V4).await.unwrap();
    assert_eq!(v4, Rule::defaults(IpFamily::V4));
    assert_eq!(
        v4.iter().map(|r| (r.priority, r.table)).collect::<Vec<_>>(),
        [(0, TABLE_LOCAL), (32766, TABLE_MAIN), (32767, TABLE_DEFAULT)]
    );
    assert!(v4.iter().all(|r| r.src.is_none() && r.action == RuleAction::ToTable && !r.l3mdev));
    assert_eq!(env.a.family_rules(IpFamily::V6).await.unwrap(), Rule::defaults(IpFamily::V6));
    let all = env.b.rules().await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[3].family, IpFamily::V6);
}

async fn automatic_priorities(env: Env) {
    let n = &env.a;
    // sbr: `from <ip> lookup <table>` without a priority lands below the second rule.
    n.rule().from(net("10.221.0.5/32")).table(100).add().await.unwrap();
    n.rule().from(net("10.221.0.6/32")).table(101).add().await.unwrap();
    // The same rule again gets a new priority, so it is no duplicate.
    n.rule().from(net("10.221.0.6/32")).table(101).add().await.unwrap();
    assert_eq!(
        err_kind(n.rule().from(net("10.221.0.6/32")).table(101).priority(32764).add().await),
        NetErrorKind::Exists
    );
    let v4 = n.family_rules(IpFamily::V4).await.unwrap();
    let got: Vec<(u32, Option<String>)> = v4.iter().map(|r| (r.priority, r.src.map(|s| s.to_string()))).collect();
    assert_eq!(
        got,
        [
            (0, None),
            (32763, Some("10.221.0.6/32".into())),
            (32764, Some("10.221.0.6/32".into())),
            (32765, Some("10.221.0.5/32".into())),
            (32766, None),
            (32767, None),
        ]
    );
    // Once the second rule has priority 0, new rules get 0 too; equal priorities keep their order.
    n.rule().from(net("10.221.0.7/32")).table(102).priority(0).add().await.unwrap();
    n.rule().from(net("10.221.0.8/32")).table(103).add().await.unwrap();
    let prios = priorities(n, IpFamily::V4).await;
    assert_eq!(&prios[..3], [(0, TABLE_LOCAL), (0, 102), (0, 103)]);
    // Each family has its own list.
    n.rule().from(net("fd00:221::5/128")).table(100).add().await.unwrap();
    assert_eq!(priorities(n, IpFamily::V6).await, [(0, TABLE_LOCAL), (32765, 100), (32766, TABLE_MAIN)]);
    // Equal priorities: the new rule goes after the existing ones.
    n.rule().from(net("fd00:221::6/128")).table(106).priority(32765).add().await.unwrap();
    assert_eq!(&priorities(n, IpFamily::V6).await[1..3], [(32765, 100), (32765, 106)]);
}

async fn rule_fields(env: Env) {
    let n = &env.a;
    let full = || {
        n.rule()
            .priority(100)
            .from(net("10.221.1.0/24"))
            .to(net("10.221.2.0/24"))
            .iif("nosuchlink0")
            .oif("nosuchlink1")
            .fwmark(0x10)
            .fwmask(0xff)
            .table(1000)
            .invert()
    };
    let want = full().build().unwrap();
    full().add().await.unwrap();
    let listed = n.family_rules(IpFamily::V4).await.unwrap();
    assert_eq!(listed[1], want, "{listed:#?}");
    assert_eq!(
        want.to_string(),
        "100:\tnot from 10.221.1.0/24 to 10.221.2.0/24 fwmark 0x10/0xff iif nosuchlink0 oif nosuchlink1 lookup 1000"
    );
    // A mark without a mask is compared in full; host bits of a prefix are kept.
    n.rule().priority(101).family(IpFamily::V4).fwmark(0x20).table(20).add().await.unwrap();
    n.rule().priority(102).from(net("10.221.3.7/24")).table(21).add().await.unwrap();
    let rules = n.family_rules(IpFamily::V4).await.unwrap();
    let find = |p: u32| rules.iter().find(|r| r.priority == p).unwrap_or_else(|| panic!("no rule {p}")).clone();
    assert_eq!((find(101).fwmark, find(101).fwmask), (Some(0x20), Some(u32::MAX)));
    assert_eq!(find(102).src, Some(net("10.221.3.7/24")));
    // Other actions have no table.
    for (prio, action) in [
        (200, RuleAction::Blackhole),
        (201, RuleAction::Unreachable),
        (202, RuleAction::Prohibit),
        (203, RuleAction::Nop),
        (204, RuleAction::Goto(300)),
    ] {
        n.rule().family(IpFamily::V4).priority(prio).action(action).add().await.unwrap();
    }
    let rules = n.family_rules(IpFamily::V4).await.unwrap();
    let actions: Vec<(u32, RuleAction, u32)> =
        rules.iter().filter(|r| (200..300).contains(&r.priority)).map(|r| (r.priority, r.action, r.table)).collect();
    assert_eq!(
        actions,
        [
            (200, RuleAction::Blackhole, 0),
            (201, RuleAction::Unreachable, 0),
            (202, RuleAction::Prohibit, 0),
            (203, RuleAction::Nop, 0),
            (204, RuleAction::Goto(300), 0),
        ]
    );
    // IPv6 with a large table.
    n.rule().priority(7).from(net("fd00:221:1::/48")).to(net("fd00:221:2::1/128")).table(4000).add().await.unwrap();
    let v6 = n.family_rules(IpFamily::V6).await.unwrap();
    assert_eq!((v6[1].priority, v6[1].table, v6[1].dst), (7, 4000, Some(net("fd00:221:2::1/128"))));
    // Errors.
    let v4 = || n.rule().family(IpFamily::V4);
    assert_eq!(err_kind(v4().priority(400).action(RuleAction::Goto(300)).add().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(v4().table(0).add().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.rule().table(5).add().await), NetErrorKind::InvalidArgument, "no family");
    assert_eq!(
        err_kind(n.rule().from(net("10.221.0.1/32")).to(net("fd00:221::1/128")).add().await),
        NetErrorKind::InvalidArgument
    );
    assert_eq!(
        err_kind(n.rule().family(IpFamily::V6).from(net("10.221.0.1/32")).add().await),
        NetErrorKind::InvalidArgument
    );
    assert_eq!(err_kind(v4().iif("much/too/long/name").add().await), NetErrorKind::InvalidArgument);
}

async fn deleting_rules(env: Env) {
    let n = &env.a;
    n.rule().from(net("10.221.0.6/32")).table(101).add().await.unwrap();
    n.rule().from(net("10.221.0.6/32")).table(101).add().await.unwrap();
    assert_eq!(priorities(n, IpFamily::V4).await[1..3], [(32764, 101), (32765, 101)]);
    // The first match in listing order goes.
    n.rule().from(net("10.221.0.6/32")).table(101).delete().await.unwrap();
    assert_eq!(priorities(n, IpFamily::V4).await[1], (32765, 101));
    assert_eq!(err_kind(n.rule().from(net("10.221.0.99/32")).delete().await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.rule().family(IpFamily::V4).table(555).delete().await), NetErrorKind::NotFound);
    assert_eq!(
        err_kind(n.rule().from(net("10.221.0.6/32")).table(101).priority(1).delete().await),
        NetErrorKind::NotFound
    );
    // A listed rule deletes exactly.
    let listed = n.family_rules(IpFamily::V4).await.unwrap()[1].clone();
    n.delete_rule(&listed).await.unwrap();
    assert_eq!(err_kind(n.delete_rule(&listed).await), NetErrorKind::NotFound);
    n.add_rule(&listed).await.unwrap();
    assert_eq!(n.family_rules(IpFamily::V4).await.unwrap()[1], listed);
    // Deleting by table alone, in the other family too.
    n.rule().from(net("fd00:221::9/128")).table(109).add().await.unwrap();
    n.rule().family(IpFamily::V6).table(109).delete().await.unwrap();
    assert_eq!(n.family_rules(IpFamily::V6).await.unwrap(), Rule::defaults(IpFamily::V6));
    // Without a `from`, a rule clashes with an otherwise equal rule that has one (the kernel
    // compares addresses only when the new rule has them); the other way round it does not.
    n.rule().priority(500).from(net("10.221.0.50/32")).table(50).add().await.unwrap();
    assert_eq!(err_kind(n.rule().family(IpFamily::V4).priority(500).table(50).add().await), NetErrorKind::Exists);
    n.rule().priority(501).family(IpFamily::V4).table(51).add().await.unwrap();
    n.rule().priority(501).from(net("10.221.0.51/32")).table(51).add().await.unwrap();
    // Rules added through netlink carry no protocol, so they never duplicate the kernel's own.
    n.rule().family(IpFamily::V4).priority(32766).table(TABLE_MAIN).add().await.unwrap();
    let mains = n.family_rules(IpFamily::V4).await.unwrap().iter().filter(|r| r.priority == 32766).count();
    assert_eq!(mains, 2);
    assert_eq!(
        err_kind(n.rule().family(IpFamily::V4).priority(32766).table(TABLE_MAIN).add().await),
        NetErrorKind::Exists
    );
    // The inverted flag does not make a rule different.
    n.rule().priority(502).from(net("10.221.0.52/32")).table(52).invert().add().await.unwrap();
    assert_eq!(
        err_kind(n.rule().priority(502).from(net("10.221.0.52/32")).table(52).add().await),
        NetErrorKind::Exists
    );
    // The default rules can go too.
    n.rule().family(IpFamily::V4).priority(32767).table(TABLE_DEFAULT).delete().await.unwrap();
    assert!(!priorities(n, IpFamily::V4).await.contains(&(32767, TABLE_DEFAULT)));
}

suite!(prefix = "nt2"; default_rules, automatic_priorities, rule_fields, deleting_rules);

#[tokio::test]
async fn fake_only_rule_operations_are_recorded() {
    let world = FakeNetwork::new();
    let host = world.host();
    world.fail_next(OpKind::AddRule, NetErrorKind::PermissionDenied);
    let add = || host.rule().from(net("10.221.0.5/32")).table(100);
    assert_eq!(err_kind(add().add().await), NetErrorKind::PermissionDenied);
    assert_eq!(host.family_rules(IpFamily::V4).await.unwrap(), Rule::defaults(IpFamily::V4));
    add().add().await.unwrap();
    host.rule().from(net("10.221.0.5/32")).delete().await.unwrap();
    let ops: Vec<String> = world.ops().iter().map(|o| o.to_string()).collect();
    assert_eq!(
        ops,
        [
            "[host] AddRule inet rule from 10.221.0.5/32 table 100 -> permission denied",
            "[host] ListRules inet",
            "[host] AddRule inet rule from 10.221.0.5/32 table 100",
            "[host] DeleteRule inet rule from 10.221.0.5/32",
        ]
    );
}
