//! Links in general: lookups, attributes, renames, aliases, operational state, deletion.

use cni_sdk::net::{KindInfo, LinkKind, NetErrorKind, OperState};
use cni_types::MacAddr;

use super::{Env, carrier_veth, err_kind, settled, suite};

async fn fresh_namespace_has_only_lo(env: Env) {
    let links = env.a.links().await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    let lo = &links[0];
    assert_eq!(lo.index, 1);
    assert_eq!(lo.name, "lo");
    assert_eq!(lo.kind, LinkKind::Loopback);
    assert_eq!(lo.info, KindInfo::Plain);
    assert_eq!(lo.mtu, 65536);
    assert_eq!(lo.txqlen, 1000);
    assert!(!lo.up);
    assert_eq!(lo.oper_state, OperState::Down);
    assert!(lo.mac.is_zero());
    assert_eq!(lo.alias, None);
    assert!(env.a.addresses().await.unwrap().is_empty());
    assert!(env.a.routes().await.unwrap().is_empty());
}

async fn veth_pair_in_one_namespace(env: Env) {
    let mac0 = MacAddr::new([0x02, 0x20, 0, 0, 0, 1]);
    let mac1 = MacAddr::new([0x02, 0x20, 0, 0, 0, 2]);
    let (v0, v1) = env.a.veth("v0", "v1").mtu(1400).mac(mac0).peer_mac(mac1).execute().await.unwrap();
    // The kernel registers the peer first.
    assert_eq!((v1.index, v0.index), (2, 3));
    assert_eq!(v0.kind, LinkKind::Veth);
    assert_eq!(v1.kind, LinkKind::Veth);
    assert_eq!((v0.mtu, v1.mtu), (1400, 1400));
    assert_eq!((v0.mac, v1.mac), (mac0, mac1));
    assert!(!v0.up && !v1.up);
    assert_eq!((v0.txqlen, v0.allmulti, v0.parent), (1000, false, None));
    let p0 = v0.peer.unwrap();
    assert_eq!((p0.index, p0.same_netns), (v1.index, true));
    let p1 = v1.peer.unwrap();
    assert_eq!((p1.index, p1.same_netns), (v0.index, true));
    assert_eq!(env.a.links().await.unwrap().len(), 3);
    assert_eq!(env.a.link_by_index(v0.index).await.unwrap(), v0);
}

async fn veth_defaults(env: Env) {
    let (v0, v1) = env.a.veth("d0", "d1").execute().await.unwrap();
    assert_eq!((v0.mtu, v1.mtu), (1500, 1500));
    assert!(v0.mac.is_locally_administered() && !v0.mac.is_multicast());
    assert!(v1.mac.is_locally_administered() && !v1.mac.is_multicast());
    assert_ne!(v0.mac, v1.mac);
}

async fn veth_peer_in_other_namespace(env: Env) {
    let (h, c) = env.a.veth("host0", "eth0").peer_netns(&env.b).execute().await.unwrap();
    assert_eq!(h.name, "host0");
    assert_eq!(c.name, "eth0");
    assert!(env.a.find_link("eth0").await.unwrap().is_none());
    assert!(env.b.find_link("host0").await.unwrap().is_none());
    assert_eq!(env.b.link("eth0").await.unwrap().index, c.index);
    assert_eq!(c.index, 2, "first link in a fresh namespace gets index 2");
    let hp = h.peer.unwrap();
    assert_eq!((hp.index, hp.same_netns), (c.index, false));
    let cp = c.peer.unwrap();
    assert_eq!((cp.index, cp.same_netns), (h.index, false));
}

async fn veth_name_conflicts_and_bad_names(env: Env) {
    env.a.veth("x0", "x1").execute().await.unwrap();
    assert_eq!(err_kind(env.a.veth("x0", "y1").execute().await), NetErrorKind::Exists);
    assert_eq!(err_kind(env.a.veth("y0", "x1").execute().await), NetErrorKind::Exists);
    // The peer name is taken in the peer's namespace.
    env.b.veth("z0", "z1").execute().await.unwrap();
    assert_eq!(err_kind(env.a.veth("y0", "z1").peer_netns(&env.b).execute().await), NetErrorKind::Exists);
    // Nothing half-created.
    assert!(env.a.find_link("y0").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.veth("waytoolonginterfacename", "q").execute().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.veth("", "q").execute().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.veth("ok0", "ok0").execute().await), NetErrorKind::Exists);
}

async fn deleting_a_veth_end_deletes_its_peer(env: Env) {
    let (h, _) = env.a.veth("h1", "c1").peer_netns(&env.b).execute().await.unwrap();
    env.a.delete_link(h.index).await.unwrap();
    assert!(env.a.find_link("h1").await.unwrap().is_none());
    assert!(env.b.find_link("c1").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.delete_link(h.index).await), NetErrorKind::NotFound);
    // And from the other side, in one namespace.
    let (l0, l1) = env.a.veth("l0", "l1").execute().await.unwrap();
    env.a.delete_link(l1.index).await.unwrap();
    assert!(env.a.find_link_by_index(l0.index).await.unwrap().is_none());
}

async fn delete_by_name_is_idempotent(env: Env) {
    env.a.veth("dn0", "dn1").execute().await.unwrap();
    assert!(env.a.delete_link_by_name("dn0").await.unwrap());
    assert!(!env.a.delete_link_by_name("dn0").await.unwrap());
    assert!(!env.a.delete_link_by_name("dn1").await.unwrap(), "went with its peer");
    assert!(!env.a.delete_link_by_name("never0").await.unwrap());
}

async fn link_lookup_errors(env: Env) {
    assert!(env.a.find_link("nope0").await.unwrap().is_none());
    assert_eq!(err_kind(env.a.link("nope0").await), NetErrorKind::NotFound);
    assert!(env.a.link("nope0").await.unwrap_err().is_not_found());
    assert!(env.a.find_link_by_index(4242).await.unwrap().is_none());
    assert!(env.a.find_link_by_index(0).await.unwrap().is_none());
    assert_eq!(err_kind(env.a.link_by_index(4242).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.set_up(4242).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.delete_link(4242).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.add_address(4242, super::net("10.220.1.1/24")).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.rename_link(4242, "x").await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.set_alias(4242, "x").await), NetErrorKind::NotFound);
}

async fn loopback_cannot_be_deleted(env: Env) {
    assert_eq!(err_kind(env.a.delete_link(1).await), NetErrorKind::NotSupported);
    assert!(env.a.find_link("lo").await.unwrap().is_some());
}

async fn ensure_bridge(env: Env) {
    let mac = MacAddr::new([0x02, 0x21, 0, 0, 0, 9]);
    let br = env.a.bridge("br0").mtu(1400).mac(mac).execute().await.unwrap();
    assert_eq!(br.kind, LinkKind::Bridge);
    assert!(!br.up, "a new bridge is down");
    assert_eq!(br.mtu, 1400);
    assert_eq!(br.mac, mac);
    // Reused when it exists.
    let again = env.a.bridge("br0").execute().await.unwrap();
    assert_eq!(again.index, br.index);
    assert_eq!(env.a.links().await.unwrap().len(), 2);
    // A non-bridge of that name is rejected.
    env.a.veth("notbr", "notbr1").execute().await.unwrap();
    let err = env.a.bridge("notbr").execute().await.unwrap_err();
    assert_eq!(err.kind(), NetErrorKind::NotABridge);
    assert!(err.to_string().contains("not a bridge"), "{err}");
}

async fn set_link_attributes(env: Env) {
    let (v0, _) = env.a.veth("s0", "s1").execute().await.unwrap();
    let i = v0.index;
    env.a.set_mtu(i, 1450).await.unwrap();
    let mac = MacAddr::new([0x02, 0x22, 0, 0, 0, 7]);
    env.a.set_mac(i, mac).await.unwrap();
    env.a.set_promisc(i, true).await.unwrap();
    env.a.set_allmulti(i, true).await.unwrap();
    env.a.set_txqlen(i, 4321).await.unwrap();
    env.a.set_up(i).await.unwrap();
    let l = env.a.link_by_index(i).await.unwrap();
    assert_eq!(l.mtu, 1450);
    assert_eq!(l.mac, mac);
    assert!(l.promisc);
    assert!(l.allmulti);
    assert_eq!(l.txqlen, 4321);
    assert!(l.up);
    env.a.set_promisc(i, false).await.unwrap();
    env.a.set_allmulti(i, false).await.unwrap();
    env.a.set_down(i).await.unwrap();
    let l = env.a.link_by_index(i).await.unwrap();
    assert!(!l.promisc);
    assert!(!l.allmulti);
    assert!(!l.up);
    assert_eq!(err_kind(env.a.set_mtu(i, 10).await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.set_mtu(4242, 1400).await), NetErrorKind::NotFound);
    let multicast = MacAddr::new([0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(err_kind(env.a.set_mac(i, multicast).await), NetErrorKind::InvalidArgument);
    assert_eq!(env.a.link_by_index(i).await.unwrap().mac, mac);
}

async fn master_and_hairpin(env: Env) {
    let br = env.a.bridge("br1").execute().await.unwrap();
    let (p, _) = env.a.veth("p0", "p1").execute().await.unwrap();
    assert_eq!(p.master, None);
    assert_eq!(p.hairpin, None);
    env.a.set_master(p.index, br.index).await.unwrap();
    let l = env.a.link_by_index(p.index).await.unwrap();
    assert_eq!(l.master, Some(br.index));
    assert_eq!(l.hairpin, Some(false));
    env.a.set_hairpin(p.index, true).await.unwrap();
    assert_eq!(env.a.link_by_index(p.index).await.unwrap().hairpin, Some(true));
    // Only bridges take ports here; hairpin is a bridge-port flag.
    let (q, _) = env.a.veth("q0", "q1").execute().await.unwrap();
    assert_eq!(err_kind(env.a.set_hairpin(q.index, true).await), NetErrorKind::NotSupported);
    assert_eq!(err_kind(env.a.set_master(q.index, p.index).await), NetErrorKind::NotSupported);
    env.a.set_no_master(p.index).await.unwrap();
    let l = env.a.link_by_index(p.index).await.unwrap();
    assert_eq!(l.master, None);
    assert_eq!(l.hairpin, None);
    assert_eq!(err_kind(env.a.set_master(p.index, 4242).await), NetErrorKind::InvalidArgument);
}

async fn rename(env: Env) {
    let (r0, _) = env.a.veth("rn0", "rn1").execute().await.unwrap();
    env.a.rename_link(r0.index, "renamed0").await.unwrap();
    let l = env.a.link_by_index(r0.index).await.unwrap();
    assert_eq!(l.name, "renamed0");
    assert!(env.a.find_link("rn0").await.unwrap().is_none());
    // To the current name: nothing happens.
    env.a.rename_link(r0.index, "renamed0").await.unwrap();
    // A taken name, a bad name.
    assert_eq!(err_kind(env.a.rename_link(r0.index, "rn1").await), NetErrorKind::Exists);
    assert_eq!(err_kind(env.a.rename_link(r0.index, "a/b").await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.rename_link(r0.index, "waytoolonginterfacename").await), NetErrorKind::InvalidArgument);
    // An up link can be renamed (Linux 6.2 and later).
    env.a.set_up(r0.index).await.unwrap();
    env.a.rename_link(r0.index, "other0").await.unwrap();
    let l = env.a.link_by_index(r0.index).await.unwrap();
    assert_eq!((l.name.as_str(), l.up), ("other0", true));
}

async fn alias(env: Env) {
    let (a0, _) = env.a.veth("al0", "al1").execute().await.unwrap();
    assert_eq!(a0.alias, None);
    env.a.set_alias(a0.index, "ens1f0 original").await.unwrap();
    assert_eq!(env.a.link_by_index(a0.index).await.unwrap().alias.as_deref(), Some("ens1f0 original"));
    env.a.set_alias(a0.index, "second").await.unwrap();
    assert_eq!(env.a.link("al0").await.unwrap().alias.as_deref(), Some("second"));
    env.a.clear_alias(a0.index).await.unwrap();
    assert_eq!(env.a.link_by_index(a0.index).await.unwrap().alias, None);
    env.a.set_alias(a0.index, "third").await.unwrap();
    env.a.set_alias(a0.index, "").await.unwrap();
    assert_eq!(env.a.link_by_index(a0.index).await.unwrap().alias, None, "an empty alias clears it");
    assert_eq!(err_kind(env.a.set_alias(a0.index, &"x".repeat(256)).await), NetErrorKind::InvalidArgument);
    // The alias survives a rename (host-device keeps the original name there).
    env.a.set_alias(a0.index, "keep").await.unwrap();
    env.a.rename_link(a0.index, "al9").await.unwrap();
    assert_eq!(env.a.link("al9").await.unwrap().alias.as_deref(), Some("keep"));
}

async fn oper_state_follows_carrier(env: Env) {
    let n = &env.a;
    let (v0, v1) = n.veth("os0", "os1").execute().await.unwrap();
    assert_eq!(v0.oper_state, OperState::Down);
    n.set_up(v0.index).await.unwrap();
    let l = settled(n, v0.index, |l| l.oper_state == OperState::LowerLayerDown).await;
    assert_eq!(l.oper_state, OperState::LowerLayerDown, "veth whose peer is down");
    n.set_up(v1.index).await.unwrap();
    let l = settled(n, v0.index, |l| l.oper_state == OperState::Up).await;
    assert_eq!(l.oper_state, OperState::Up);
    n.set_up(1).await.unwrap();
    let lo = settled(n, 1, |l| l.oper_state == OperState::Unknown).await;
    assert_eq!(lo.oper_state, OperState::Unknown, "loopback has no carrier handling");
    assert!(lo.oper_state.is_running());
    // A bridge without ports does not report carrier; with a running port it is up.
    let br = n.bridge("osbr").execute().await.unwrap();
    n.set_up(br.index).await.unwrap();
    let l = settled(n, br.index, |l| l.oper_state == OperState::Unknown).await;
    assert_eq!(l.oper_state, OperState::Unknown);
    let port = carrier_veth(n, "osp0", "osp1").await;
    n.set_master(port.index, br.index).await.unwrap();
    let l = settled(n, br.index, |l| l.oper_state == OperState::Up).await;
    assert_eq!(l.oper_state, OperState::Up, "bridge with a running port");
    n.set_down(port.index).await.unwrap();
    let l = settled(n, br.index, |l| l.oper_state == OperState::Down).await;
    assert_eq!(l.oper_state, OperState::Down, "bridge whose only port is down");
}

suite!(
    fresh_namespace_has_only_lo,
    veth_pair_in_one_namespace,
    veth_defaults,
    veth_peer_in_other_namespace,
    veth_name_conflicts_and_bad_names,
    deleting_a_veth_end_deletes_its_peer,
    delete_by_name_is_idempotent,
    link_lookup_errors,
    loopback_cannot_be_deleted,
    ensure_bridge,
    set_link_attributes,
    master_and_hairpin,
    rename,
    alias,
    oper_state_follows_carrier,
);
