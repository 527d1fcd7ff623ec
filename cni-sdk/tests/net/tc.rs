//! Traffic control: qdiscs (default, tbf, ingress, clsact) and u32 filters with mirred actions,
//! what Go's bandwidth plugin sets up. The kernel half also checks what `tc -j` reports and
//! that Go's bandwidth plugin installs exactly what `Tbf::for_bandwidth` computes.

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{
    ETH_P_ALL, ETH_P_IP, Filter, MirredKind, Net, NetErrorKind, Psched, Qdisc, QdiscKind, Tbf, TcAction, TcHandle,
    U32Key,
};

use super::{Env, err_kind, suite};

const INGRESS: TcHandle = TcHandle::INGRESS_QDISC;

fn h(major: u16) -> TcHandle {
    TcHandle::new(major, 0)
}

/// Go's numbers for 1 Mbit/s with a 10000-byte burst: `rate 1Mbit burst 10000b lat 25ms`.
fn go_tbf() -> Tbf {
    Tbf::for_bandwidth(1_000_000, 80_000, 25, &Psched::KERNEL).unwrap()
}

async fn roots(n: &Net, index: u32) -> Vec<Qdisc> {
    n.link_qdiscs(index).await.unwrap().into_iter().filter(Qdisc::is_root).collect()
}

async fn ingress_side(n: &Net, index: u32) -> Vec<Qdisc> {
    n.link_qdiscs(index).await.unwrap().into_iter().filter(|q| q.parent == TcHandle::INGRESS).collect()
}

async fn veth(n: &Net, name: &str, peer: &str) -> (u32, u32) {
    let (l, p) = n.veth(name, peer).execute().await.unwrap();
    (l.index, p.index)
}

fn u32_of(f: &Filter) -> &cni_sdk::net::U32Filter {
    f.u32().unwrap_or_else(|| panic!("not a u32 filter: {f:?}"))
}

async fn default_qdiscs_follow_link_state(env: Env) {
    let n = &env.a;
    let (v, peer) = veth(n, "tq0", "tq1").await;
    let ifb = n.ifb("tqifb0").execute().await.unwrap().index;
    assert!(n.link_qdiscs(v).await.unwrap().is_empty(), "a link never up has the unlisted noop qdisc");
    n.set_up(v).await.unwrap();
    n.set_up(ifb).await.unwrap();
    let q = n.link_qdiscs(v).await.unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].kind, QdiscKind::Other("noqueue".into()));
    assert!(q[0].is_root() && q[0].is_default());
    assert_eq!((q[0].index, q[0].handle, q[0].parent), (v, TcHandle::UNSPEC, TcHandle::ROOT));
    let q = n.link_qdiscs(ifb).await.unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].kind.as_str(), "pfifo_fast", "ifb has a queue");
    // Down again: the default stays.
    n.set_down(v).await.unwrap();
    assert_eq!(roots(n, v).await.len(), 1);
    let all = n.qdiscs().await.unwrap();
    assert!(all.iter().any(|q| q.index == v) && all.iter().any(|q| q.index == ifb));
    assert!(!all.iter().any(|q| q.index == peer));
    // The default qdisc cannot be deleted; neither can the noop one.
    assert_eq!(err_kind(n.qdisc(v).delete().await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.qdisc(peer).delete().await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.qdisc(4242).handle(h(1)).tbf(go_tbf()).add().await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.qdisc(v).add().await), NetErrorKind::InvalidArgument, "no kind");
    assert_eq!(
        err_kind(n.qdisc(v).handle(TcHandle::new(1, 1)).tbf(go_tbf()).add().await),
        NetErrorKind::InvalidArgument,
        "a qdisc handle has no minor part"
    );
}

async fn tbf_root_add_replace_delete(env: Env) {
    let n = &env.a;
    let (v, _) = veth(n, "tq2", "tq3").await;
    let t1 = go_tbf();
    assert_eq!(t1, Tbf { rate: 125_000, buffer: 1_250_000, limit: 13_125 });
    n.qdisc(v).root().handle(h(1)).tbf(t1).add().await.unwrap();
    let want = |handle, tbf| vec![(handle, TcHandle::ROOT, QdiscKind::Tbf(tbf))];
    let got = |q: Vec<Qdisc>| q.into_iter().map(|q| (q.handle, q.parent, q.kind)).collect::<Vec<_>>();
    assert_eq!(got(n.link_qdiscs(v).await.unwrap()), want(h(1), t1));
    assert_eq!(n.link_qdiscs(v).await.unwrap()[0].tbf(), Some(&t1));
    // Adding over it fails, whatever the handle.
    assert_eq!(err_kind(n.qdisc(v).handle(h(1)).tbf(t1).add().await), NetErrorKind::Exists);
    assert_eq!(err_kind(n.qdisc(v).handle(h(2)).tbf(t1).add().await), NetErrorKind::Exists);
    assert_eq!(err_kind(n.qdisc(v).tbf(t1).add().await), NetErrorKind::Exists);
    // Replace: same handle changes the parameters, another handle swaps the qdisc, no handle
    // changes the attached one.
    let t2 = Tbf::for_bandwidth(2_000_000, 80_000, 25, &Psched::KERNEL).unwrap();
    n.qdisc(v).handle(h(1)).tbf(t2).replace().await.unwrap();
    assert_eq!(got(n.link_qdiscs(v).await.unwrap()), want(h(1), t2));
    let t3 = Tbf::for_bandwidth(3_000_000, 160_000, 25, &Psched::KERNEL).unwrap();
    n.qdisc(v).handle(h(2)).tbf(t3).replace().await.unwrap();
    assert_eq!(got(n.link_qdiscs(v).await.unwrap()), want(h(2), t3));
    n.qdisc(v).tbf(t1).replace().await.unwrap();
    assert_eq!(got(n.link_qdiscs(v).await.unwrap()), want(h(2), t1));
    // Deleting checks the handle and kind when given.
    assert_eq!(err_kind(n.qdisc(v).handle(h(1)).delete().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.qdisc(v).clsact().root().delete().await), NetErrorKind::InvalidArgument);
    n.qdisc(v).handle(h(2)).tbf(t1).delete().await.unwrap();
    assert!(n.link_qdiscs(v).await.unwrap().is_empty(), "the link was never up: back to noop");
    assert_eq!(err_kind(n.qdisc(v).delete().await), NetErrorKind::NotFound);
    // On an up link the default comes back.
    n.set_up(v).await.unwrap();
    n.qdisc(v).handle(h(1)).tbf(t1).add().await.unwrap();
    n.qdisc(v).delete().await.unwrap();
    assert_eq!(roots(n, v).await[0].kind.as_str(), "noqueue");
    // Rates above 32 bits (TCA_TBF_RATE64) and buffers above 2^32 ns.
    let big = Tbf { rate: 5_000_000_000, buffer: 100_000_000, limit: 1_000_000 };
    n.qdisc(v).handle(h(3)).tbf(big).add().await.unwrap();
    assert_eq!(roots(n, v).await[0].tbf(), Some(&big));
    // The bucket must hold a byte.
    for bad in [Tbf { rate: 0, buffer: 1000, limit: 1 }, Tbf { rate: 1, buffer: 1, limit: 0 }] {
        assert_eq!(err_kind(n.qdisc(v).handle(h(3)).tbf(bad).replace().await), NetErrorKind::InvalidArgument);
    }
    // Without a handle the kernel picks one from 8001: up.
    let (w, _) = veth(n, "tq4", "tq5").await;
    n.qdisc(w).tbf(t1).add().await.unwrap();
    let auto = roots(n, w).await[0].handle;
    assert!(auto.major() > 0x8000 && auto.major() < 0xffff && auto.minor() == 0, "{auto}");
    // ingress and clsact only attach at ffff:fff1, tbf never there.
    assert_eq!(err_kind(n.qdisc(w).ingress().root().handle(h(9)).replace().await), NetErrorKind::NotSupported);
    assert_eq!(err_kind(n.qdisc(w).clsact().tbf(t1).add().await), NetErrorKind::InvalidArgument);
}

async fn ingress_and_clsact(env: Env) {
    let n = &env.a;
    let (v, _) = veth(n, "tq6", "tq7").await;
    n.qdisc(v).ingress().add().await.unwrap();
    let q = ingress_side(n, v).await;
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].handle, q[0].parent, &q[0].kind), (INGRESS, TcHandle::INGRESS, &QdiscKind::Ingress));
    assert!(!q[0].is_root());
    assert_eq!(err_kind(n.qdisc(v).ingress().add().await), NetErrorKind::Exists);
    assert_eq!(err_kind(n.qdisc(v).clsact().add().await), NetErrorKind::Exists);
    assert_eq!(err_kind(n.qdisc(v).clsact().replace().await), NetErrorKind::InvalidArgument);
    n.qdisc(v).ingress().replace().await.unwrap();
    assert_eq!(err_kind(n.qdisc(v).clsact().delete().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.qdisc(v).ingress().handle(h(5)).delete().await), NetErrorKind::InvalidArgument);
    n.qdisc(v).ingress().delete().await.unwrap();
    assert!(ingress_side(n, v).await.is_empty());
    assert_eq!(err_kind(n.qdisc(v).ingress().delete().await), NetErrorKind::NotFound);
    n.qdisc(v).clsact().add().await.unwrap();
    assert_eq!(ingress_side(n, v).await[0].kind, QdiscKind::Clsact);
    // A root qdisc and the ingress side are independent.
    n.qdisc(v).handle(h(1)).tbf(go_tbf()).add().await.unwrap();
    let kinds: Vec<String> = n.link_qdiscs(v).await.unwrap().iter().map(|q| q.kind.to_string()).collect();
    assert_eq!(kinds, ["tbf", "clsact"], "root first");
    n.qdisc(v).delete().await.unwrap();
    assert_eq!(ingress_side(n, v).await.len(), 1);
}

async fn u32_redirect_filters(env: Env) {
    let n = &env.a;
    let (v, peer) = veth(n, "tq8", "tq9").await;
    let ifb = n.ifb("tqifb1").execute().await.unwrap().index;
    let bandwidths =
        || n.filter(v, INGRESS).priority(1).protocol(ETH_P_ALL).u32_match_all().classid(TcHandle::new(1, 1));
    assert_eq!(err_kind(bandwidths().redirect_to(ifb).add().await), NetErrorKind::InvalidArgument, "no qdisc");
    assert!(n.filters(v, INGRESS).await.unwrap().is_empty());
    n.qdisc(v).ingress().add().await.unwrap();
    bandwidths().redirect_to(ifb).add().await.unwrap();
    let f = n.filters(v, INGRESS).await.unwrap();
    assert_eq!(f.len(), 1, "only the match rule is listed: {f:?}");
    assert_eq!((f[0].index, f[0].parent, f[0].priority, f[0].protocol), (v, INGRESS, 1, ETH_P_ALL));
    assert_eq!(f[0].handle, 0x8000_0800, "800::800");
    let u = u32_of(&f[0]);
    assert_eq!(u.keys, vec![U32Key::MATCH_ALL]);
    assert_eq!(u.classid, Some(TcHandle::new(1, 1)));
    assert_eq!(u.actions, vec![TcAction::Mirred { kind: MirredKind::EgressRedirect, target: ifb }]);
    // The same rule again is a second rule of the same priority.
    bandwidths().redirect_to(ifb).add().await.unwrap();
    let handles: Vec<u32> = n.filters(v, INGRESS).await.unwrap().iter().map(|f| f.handle).collect();
    assert_eq!(handles, [0x8000_0800, 0x8000_0801]);
    // Errors.
    let ip_rule = n.filter(v, INGRESS).priority(1).protocol(ETH_P_IP).u32_match_all();
    assert_eq!(err_kind(ip_rule.add().await), NetErrorKind::InvalidArgument, "protocol mismatch");
    assert_eq!(err_kind(bandwidths().redirect_to(4242).add().await), NetErrorKind::NotFound, "no target");
    assert_eq!(err_kind(n.filter(v, INGRESS).priority(2).add().await), NetErrorKind::InvalidArgument, "no key");
    // Automatic priorities: 49152, then one below.
    n.filter(v, INGRESS).u32_match_all().redirect_to(ifb).add().await.unwrap();
    n.filter(v, INGRESS).protocol(ETH_P_IP).u32_match_all().redirect_to(ifb).add().await.unwrap();
    let f = n.filters(v, INGRESS).await.unwrap();
    let prios: Vec<(u16, u16)> = f.iter().map(|f| (f.priority, f.protocol)).collect();
    assert_eq!(prios, [(1, ETH_P_ALL), (1, ETH_P_ALL), (49151, ETH_P_IP), (49152, ETH_P_ALL)]);
    assert_eq!((f[2].handle, f[3].handle), (0x8020_0800, 0x8010_0800), "hash tables 802: and 801:");
    // A mirroring action and several keys.
    let key = U32Key { mask: 0xff00_0000, value: 0x0a00_0000, offset: 12 };
    n.filter(v, INGRESS)
        .priority(2)
        .u32_key(key)
        .u32_match_all()
        .action(TcAction::Mirred { kind: MirredKind::IngressMirror, target: peer })
        .add()
        .await
        .unwrap();
    let f = n.filters(v, INGRESS).await.unwrap();
    let two = f.iter().find(|f| f.priority == 2).unwrap();
    assert_eq!(u32_of(two).keys, vec![key, U32Key::MATCH_ALL]);
    assert_eq!(u32_of(two).classid, None);
    assert_eq!(u32_of(two).actions, vec![TcAction::Mirred { kind: MirredKind::IngressMirror, target: peer }]);
    // Deleting: a priority (checking the protocol), or everything.
    assert_eq!(err_kind(n.filter(v, INGRESS).priority(7).delete().await), NetErrorKind::NotFound);
    assert_eq!(
        err_kind(n.filter(v, INGRESS).priority(1).protocol(ETH_P_IP).delete().await),
        NetErrorKind::InvalidArgument
    );
    n.filter(v, INGRESS).priority(49151).delete().await.unwrap();
    n.filter(v, INGRESS).priority(1).protocol(ETH_P_ALL).delete().await.unwrap();
    let prios: Vec<u16> = n.filters(v, INGRESS).await.unwrap().iter().map(|f| f.priority).collect();
    assert_eq!(prios, [2, 49152]);
    n.filter(v, INGRESS).delete().await.unwrap();
    assert!(n.filters(v, INGRESS).await.unwrap().is_empty());
    n.filter(v, INGRESS).delete().await.unwrap();
    // Parents that take no filters.
    assert!(n.filters(v, h(7)).await.unwrap().is_empty(), "no such parent: nothing listed");
    let rule = || n.filter(v, h(7)).u32_match_all();
    assert_eq!(err_kind(rule().add().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.filter(v, h(7)).delete().await), NetErrorKind::InvalidArgument);
    n.set_up(v).await.unwrap();
    let on_root = || n.filter(v, TcHandle::UNSPEC).priority(1).u32_match_all();
    assert_eq!(err_kind(on_root().add().await), NetErrorKind::InvalidArgument, "noqueue is classless");
    n.qdisc(v).handle(h(1)).tbf(go_tbf()).add().await.unwrap();
    let on_tbf = n.filter(v, h(1)).priority(1).u32_match_all();
    assert_eq!(err_kind(on_tbf.add().await), NetErrorKind::NotSupported, "tbf has no filter block");
    // Deleting the qdisc deletes its filters; hash tables start over at 800:.
    bandwidths().redirect_to(ifb).add().await.unwrap();
    n.qdisc(v).ingress().delete().await.unwrap();
    n.qdisc(v).ingress().add().await.unwrap();
    assert!(n.filters(v, INGRESS).await.unwrap().is_empty());
    bandwidths().redirect_to(ifb).add().await.unwrap();
    assert_eq!(n.filters(v, INGRESS).await.unwrap()[0].handle, 0x8000_0800);
}

async fn clsact_hooks(env: Env) {
    let n = &env.a;
    let (v, peer) = veth(n, "tq10", "tq11").await;
    n.qdisc(v).clsact().add().await.unwrap();
    n.filter(v, TcHandle::CLSACT_INGRESS).priority(1).u32_match_all().redirect_to(peer).add().await.unwrap();
    n.filter(v, TcHandle::CLSACT_EGRESS).priority(2).u32_match_all().redirect_to(peer).add().await.unwrap();
    let ingress = n.filters(v, TcHandle::CLSACT_INGRESS).await.unwrap();
    let egress = n.filters(v, TcHandle::CLSACT_EGRESS).await.unwrap();
    assert_eq!(ingress.iter().map(|f| (f.priority, f.parent)).collect::<Vec<_>>(), [(1, TcHandle::CLSACT_INGRESS)]);
    assert_eq!(egress.iter().map(|f| (f.priority, f.handle)).collect::<Vec<_>>(), [(2, 0x8010_0800)]);
    assert!(n.filters(v, INGRESS).await.unwrap().is_empty(), "clsact has no block at ffff:");
    let at = |parent| n.filter(v, parent).priority(3).u32_match_all();
    assert_eq!(err_kind(at(INGRESS).add().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(at(TcHandle::new(0xffff, 5)).add().await), NetErrorKind::NotFound);
    n.filter(v, TcHandle::CLSACT_EGRESS).delete().await.unwrap();
    assert!(n.filters(v, TcHandle::CLSACT_EGRESS).await.unwrap().is_empty());
    assert_eq!(n.filters(v, TcHandle::CLSACT_INGRESS).await.unwrap().len(), 1);
}

async fn tc_follows_links(env: Env) {
    let n = &env.a;
    let (v, _) = veth(n, "tq12", "tq13").await;
    let ifb = n.ifb("tqifb2").execute().await.unwrap().index;
    let ifb2 = n.ifb("tqifb3").execute().await.unwrap().index;
    n.set_up(v).await.unwrap();
    n.qdisc(v).handle(h(1)).tbf(go_tbf()).add().await.unwrap();
    n.qdisc(v).ingress().add().await.unwrap();
    n.filter(v, INGRESS).priority(1).u32_match_all().redirect_to(ifb).add().await.unwrap();
    n.filter(v, INGRESS).priority(2).u32_match_all().redirect_to(ifb2).add().await.unwrap();
    let targets = || async {
        let f = n.filters(v, INGRESS).await.unwrap();
        f.iter()
            .flat_map(|f| u32_of(f).actions.clone())
            .map(|a| match a {
                TcAction::Mirred { target, .. } => target,
                other => panic!("unexpected action {other:?}"),
            })
            .collect::<Vec<u32>>()
    };
    assert_eq!(targets().await, [ifb, ifb2]);
    // A deleted target, and one moved to another namespace, are reported as 0.
    n.delete_link(ifb).await.unwrap();
    let moved = n.move_link(ifb2, &env.b).await.unwrap();
    assert_eq!(targets().await, [0, 0]);
    assert!(env.b.link_qdiscs(moved.index).await.unwrap().is_empty(), "moved: back to noop");
    // Moving the link itself resets its qdiscs; deleting it removes them.
    let moved = n.move_link(v, &env.b).await.unwrap();
    assert!(env.b.link_qdiscs(moved.index).await.unwrap().is_empty());
    assert!(env.b.filters(moved.index, INGRESS).await.unwrap().is_empty());
    env.b.set_up(moved.index).await.unwrap();
    assert_eq!(env.b.link_qdiscs(moved.index).await.unwrap()[0].kind.as_str(), "noqueue");
    env.b.qdisc(moved.index).ingress().add().await.unwrap();
    env.b.delete_link(moved.index).await.unwrap();
    assert!(env.b.link_qdiscs(moved.index).await.unwrap().is_empty());
    assert!(env.b.qdiscs().await.unwrap().iter().all(|q| q.index != moved.index));
}

suite!(
    prefix = "nt2";
    default_qdiscs_follow_link_state,
    tbf_root_add_replace_delete,
    ingress_and_clsact,
    u32_redirect_filters,
    clsact_hooks,
    tc_follows_links,
);

#[tokio::test]
async fn fake_only_tc_operations_are_recorded_and_snapshotted() {
    let world = FakeNetwork::new();
    let host = world.host();
    let (v, _) = host.veth("v0", "v1").execute().await.unwrap();
    let ifb = host.ifb("ifb0").execute().await.unwrap();
    world.fail_next(OpKind::AddQdisc, NetErrorKind::Busy);
    assert_eq!(err_kind(host.qdisc(v.index).ingress().add().await), NetErrorKind::Busy);
    host.qdisc(v.index).ingress().add().await.unwrap();
    host.qdisc(v.index).handle(h(1)).tbf(go_tbf()).add().await.unwrap();
    host.filter(v.index, INGRESS).priority(1).u32_match_all().redirect_to(ifb.index).add().await.unwrap();
    let adds = world.ops_of(OpKind::AddQdisc);
    assert_eq!(adds.len(), 3);
    assert_eq!(adds[0].error, Some(NetErrorKind::Busy));
    assert_eq!(adds[1].detail, format!("add qdisc on #{} parent ffff:fff1 ingress", v.index));
    assert_eq!(adds[2].detail, format!("add qdisc on #{} parent root handle 1: tbf", v.index));
    let filter_ops = world.ops_of(OpKind::AddFilter);
    assert_eq!(
        filter_ops[0].detail,
        format!("filter on #{} parent ffff: protocol 0x0003 pref 1 u32 mirred EgressRedirect #{}", v.index, ifb.index)
    );
    let snap = world.snapshot("host").unwrap();
    assert_eq!(snap.qdiscs.len(), 2);
    assert_eq!(snap.filters.len(), 1);
    assert_eq!(snap.rules.len(), 5, "the default rules of both families");
    // Injected failures change nothing.
    world.fail_next(OpKind::DeleteQdisc, NetErrorKind::Busy);
    assert_eq!(err_kind(host.qdisc(v.index).ingress().delete().await), NetErrorKind::Busy);
    assert_eq!(world.snapshot("host").unwrap(), snap);
    host.link_qdiscs(v.index).await.unwrap();
    host.filters(v.index, INGRESS).await.unwrap();
    assert_eq!(world.ops_of(OpKind::ListQdiscs).len(), 1);
    assert_eq!(world.ops_of(OpKind::ListFilters)[0].detail, format!("#{} parent ffff:", v.index));
}

/// The kernel side as `tc -j` reports it, for the numbers Go's bandwidth plugin uses.
#[tokio::test]
#[ignore = "needs root"]
async fn real_only_tc_json_agrees() {
    let env = super::real_env_with("nt2").await;
    let (ns, _) = env.netns_names().unwrap();
    let n = &env.a;
    let (v, _) = veth(n, "tqj0", "tqj1").await;
    let ifb = n.ifb("tqjifb").execute().await.unwrap().index;
    n.qdisc(v).handle(h(1)).tbf(go_tbf()).add().await.unwrap();
    n.qdisc(v).ingress().add().await.unwrap();
    n.filter(v, INGRESS).priority(1).u32_match_all().classid(TcHandle::new(1, 1)).redirect_to(ifb).add().await.unwrap();
    let tc = |args: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "tc", "-j"])
            .args(args)
            .output()
            .expect("run tc");
        assert!(out.status.success(), "tc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("tc -j prints JSON")
    };
    let qdiscs = tc(&["qdisc", "show", "dev", "tqj0"]);
    let tbf = &qdiscs[0];
    assert_eq!(
        (tbf["kind"].as_str(), tbf["handle"].as_str(), tbf["root"].as_bool()),
        (Some("tbf"), Some("1:"), Some(true))
    );
    assert_eq!(tbf["options"]["rate"], 125_000, "{tbf}");
    assert_eq!(tbf["options"]["burst"], 10_000, "{tbf}");
    assert_eq!(tbf["options"]["lat"], 25_000, "{tbf}");
    let ingress = &qdiscs[1];
    assert_eq!((ingress["kind"].as_str(), ingress["parent"].as_str()), (Some("ingress"), Some("ffff:fff1")));
    let filters = tc(&["filter", "show", "dev", "tqj0", "parent", "ffff:"]);
    let rule = filters
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["options"]["fh"] == "800::800")
        .unwrap_or_else(|| panic!("no 800::800 in {filters}"));
    assert_eq!((rule["protocol"].as_str(), rule["pref"].as_u64()), (Some("all"), Some(1)));
    assert_eq!(rule["options"]["flowid"], "1:1");
    let action = &rule["options"]["actions"][0];
    assert_eq!(action["kind"], "mirred");
    assert_eq!((action["mirred_action"].as_str(), action["direction"].as_str()), (Some("redirect"), Some("egress")));
    assert_eq!(action["to_dev"], "tqjifb");
    assert_eq!(action["control_action"]["type"], "stolen");
}

/// Go's bandwidth plugin (Debian's 1.1.1) installs exactly what `Tbf::for_bandwidth` computes,
/// and its ingress redirect reads back as our filter type.
#[tokio::test]
#[ignore = "needs root"]
async fn real_only_go_bandwidth_plugin_agrees() {
    const PLUGIN: &str = "/usr/lib/cni/bandwidth";
    if !std::path::Path::new(PLUGIN).exists() {
        panic!("{PLUGIN} is missing (Debian package containernetworking-plugins)");
    }
    let env = super::real_env_with("nt2").await;
    let (host_ns, ctr_ns) = env.netns_names().unwrap();
    let (host_veth, _) = env.a.veth("tqg0", "eth0").peer_netns(&env.b).execute().await.unwrap();
    let config = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "nt2-bw",
        "type": "bandwidth",
        "ingressRate": 1_000_000,
        "ingressBurst": 80_000,
        "egressRate": 3_000_000,
        "egressBurst": 240_000,
        "prevResult": {
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "tqg0"}, {"name": "eth0", "sandbox": format!("/run/netns/{ctr_ns}")}],
            "ips": [],
        },
    });
    let run = |command: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", host_ns, PLUGIN])
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", "nt2-bandwidth-interop")
            .env("CNI_NETNS", format!("/run/netns/{ctr_ns}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run Go's bandwidth plugin");
        child.stdin.take().unwrap().write_all(config.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "bandwidth {command}: {}", String::from_utf8_lossy(&out.stdout));
        out.stdout
    };
    let result: serde_json::Value = serde_json::from_slice(&run("ADD")).unwrap();
    let ifb_name = result["interfaces"][2]["name"].as_str().expect("the ifb in the result").to_owned();
    let n = &env.a;
    let ifb = n.link(&ifb_name).await.unwrap().index;
    let p = Psched::read().unwrap();
    let ingress = Tbf::for_bandwidth(1_000_000, 80_000, 25, &p).unwrap();
    let egress = Tbf::for_bandwidth(3_000_000, 240_000, 25, &p).unwrap();
    let q = n.link_qdiscs(host_veth.index).await.unwrap();
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!((q[0].handle, q[0].tbf()), (h(1), Some(&ingress)));
    assert_eq!((q[1].handle, &q[1].kind), (INGRESS, &QdiscKind::Ingress));
    let ifb_root = roots(n, ifb).await;
    assert_eq!((ifb_root[0].handle, ifb_root[0].tbf()), (h(1), Some(&egress)));
    let f = n.filters(host_veth.index, INGRESS).await.unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].priority, f[0].protocol), (1, ETH_P_ALL));
    let u = u32_of(&f[0]);
    assert_eq!((u.keys.as_slice(), u.classid), (&[U32Key::MATCH_ALL][..], Some(TcHandle::new(1, 1))));
    let redirect = TcAction::Mirred { kind: MirredKind::EgressRedirect, target: ifb };
    assert_eq!(u.actions, vec![redirect.clone(), redirect], "Go's netlink library sends the action twice");
    run("DEL");
    assert!(n.find_link(&ifb_name).await.unwrap().is_none());
}
