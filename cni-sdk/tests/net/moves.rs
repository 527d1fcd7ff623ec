//! Moving links between namespaces, and creating them directly in another namespace (Go's
//! temporary-name-then-rename, and the link-in-container variant).

use cni_sdk::net::{LinkRef, MacvlanMode, NetErrorKind, TunMode};

use super::{Env, err_kind, net, suite, user_addrs, user_routes};

async fn move_link_to_other_namespace(env: Env) {
    let (m0, m1) = env.a.veth("m0", "m1").execute().await.unwrap();
    env.a.add_address(m1.index, net("10.220.5.2/24")).await.unwrap();
    env.a.set_up(m1.index).await.unwrap();
    let moved = env.a.move_link(m1.index, &env.b).await.unwrap();
    assert_eq!(moved.name, "m1");
    assert!(!moved.up, "a moved link is down");
    assert!(env.a.find_link("m1").await.unwrap().is_none());
    assert_eq!(env.b.link("m1").await.unwrap().index, moved.index);
    assert!(user_addrs(env.b.link_addresses(moved.index).await.unwrap()).is_empty());
    assert!(user_routes(env.a.routes().await.unwrap()).is_empty());
    let p = env.a.link_by_index(m0.index).await.unwrap().peer.unwrap();
    assert_eq!((p.index, p.same_netns), (moved.index, false));
    // A name clash in the target is refused.
    env.a.veth("m1", "m2").execute().await.unwrap();
    let m1_again = env.a.link("m1").await.unwrap();
    assert_eq!(err_kind(env.a.move_link(m1_again.index, &env.b).await), NetErrorKind::Exists);
    // Bridges cannot change namespace, nor can loopback.
    let br = env.a.bridge("br9").execute().await.unwrap();
    assert_eq!(err_kind(env.a.move_link(br.index, &env.b).await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(env.a.move_link(1, &env.b).await), NetErrorKind::InvalidArgument);
}

async fn move_by_name_and_renamed(env: Env) {
    env.a.veth("hd0", "hd1").execute().await.unwrap();
    env.a.set_alias(env.a.link("hd0").await.unwrap().index, "hd0").await.unwrap();
    // host-device: in under CNI_IFNAME ...
    let idx = env.a.link("hd0").await.unwrap().index;
    let inside = env.a.move_link_renamed(idx, &env.b, "net1").await.unwrap();
    assert_eq!(inside.name, "net1");
    assert_eq!(inside.alias.as_deref(), Some("hd0"), "the alias travels with the link");
    assert!(env.a.find_link("hd0").await.unwrap().is_none());
    // ... and back under its original name.
    let back = env.b.move_link_renamed(inside.index, &env.a, "hd0").await.unwrap();
    assert_eq!(back.name, "hd0");
    assert!(env.b.find_link("net1").await.unwrap().is_none());
    // By name.
    let moved = env.a.move_link_by_name("hd1", &env.b).await.unwrap();
    assert_eq!(env.b.link("hd1").await.unwrap().index, moved.index);
    assert_eq!(err_kind(env.a.move_link_by_name("hd1", &env.b).await), NetErrorKind::NotFound);
    // The new name must be free (and valid) in the target.
    env.b.veth("taken0", "taken1").execute().await.unwrap();
    let hd0 = env.a.link("hd0").await.unwrap();
    assert_eq!(err_kind(env.a.move_link_renamed(hd0.index, &env.b, "taken0").await), NetErrorKind::Exists);
    assert_eq!(err_kind(env.a.move_link_renamed(hd0.index, &env.b, "no/slash").await), NetErrorKind::InvalidArgument);
    assert_eq!(env.a.link("hd0").await.unwrap().index, hd0.index, "still here");
}

async fn macvlan_created_in_the_container(env: Env) {
    // The parent lives in `a` (the host); the macvlan is made directly in `b`.
    let (master, _) = env.a.veth("master0", "master1").execute().await.unwrap();
    // The host has an "eth0": only the target namespace's names matter.
    env.a.veth("eth0", "eth0p").execute().await.unwrap();
    let m = env.a.macvlan("eth0", master.index).mode(MacvlanMode::Bridge).netns(&env.b).execute().await.unwrap();
    assert_eq!(m.name, "eth0");
    assert_eq!(env.b.link("eth0").await.unwrap().index, m.index);
    assert_eq!(m.parent, Some(LinkRef { index: master.index, same_netns: false }));
    // Taken in the target.
    let again = env.a.macvlan("eth0", master.index).mode(MacvlanMode::Bridge).netns(&env.b).execute().await;
    assert_eq!(err_kind(again), NetErrorKind::Exists);
    // Deleting the parent deletes the child in the other namespace.
    env.a.delete_link(master.index).await.unwrap();
    assert!(env.b.find_link("eth0").await.unwrap().is_none());
}

async fn temp_name_then_rename(env: Env) {
    let (master, _) = env.a.veth("master0", "master1").execute().await.unwrap();
    let m = env
        .a
        .macvlan("eth0", master.index)
        .mode(MacvlanMode::Bridge)
        .netns(&env.b)
        .via_temp_name()
        .execute()
        .await
        .unwrap();
    assert_eq!(m.name, "eth0");
    let names: Vec<String> = env.b.links().await.unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["lo", "eth0"], "no temporary name left behind");
    // The rename fails in the target: the temporary link is removed again.
    let taken = env.a.macvtap("eth0", master.index).netns(&env.b).via_temp_name().execute().await;
    assert_eq!(err_kind(taken), NetErrorKind::Exists);
    assert_eq!(env.b.links().await.unwrap().len(), 2);
    assert_eq!(env.a.links().await.unwrap().len(), 3, "nothing created on the host side either");
    // Same for a tap (Go's tap plugin creates it inside under a temporary name).
    let t = env.a.tuntap("tap0", TunMode::Tap).netns(&env.b).via_temp_name().mtu(1400).execute().await.unwrap();
    assert_eq!((t.name.as_str(), t.mtu), ("tap0", 1400));
    assert_eq!(env.b.link("tap0").await.unwrap().index, t.index);
    assert!(env.a.find_link("tap0").await.unwrap().is_none());
}

async fn link_in_container(env: Env) {
    // linkInContainer: the parent is already in the container namespace.
    let (master, _) = env.b.veth("ens5", "ens5p").execute().await.unwrap();
    let m = env.b.macvlan("net1", master.index).mode(MacvlanMode::Private).via_temp_name().execute().await.unwrap();
    assert_eq!(m.name, "net1");
    assert_eq!(m.parent, Some(LinkRef { index: master.index, same_netns: true }));
    assert!(env.a.find_link("net1").await.unwrap().is_none());
}

async fn moving_a_parent_keeps_its_children(env: Env) {
    let (p, _) = env.a.veth("mp0", "mp1").execute().await.unwrap();
    let m = env.a.macvlan("mvc0", p.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    assert_eq!(m.parent, Some(LinkRef { index: p.index, same_netns: true }));
    let moved = env.a.move_link(p.index, &env.b).await.unwrap();
    let m = env.a.link("mvc0").await.unwrap();
    assert_eq!(m.parent, Some(LinkRef { index: moved.index, same_netns: false }));
    // And a child can move away from its parent.
    let m_in_b = env.a.move_link(m.index, &env.b).await.unwrap();
    assert_eq!(m_in_b.parent, Some(LinkRef { index: moved.index, same_netns: true }));
    env.b.delete_link(moved.index).await.unwrap();
    assert!(env.b.find_link("mvc0").await.unwrap().is_none());
}

suite!(
    move_link_to_other_namespace,
    move_by_name_and_renamed,
    macvlan_created_in_the_container,
    temp_name_then_rename,
    link_in_container,
    moving_a_parent_keeps_its_children,
);
