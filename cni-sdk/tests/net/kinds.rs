//! Link kinds: macvlan, macvtap, ifb and tun/tap on both backends; dummy, ipvlan, vlan and vrf
//! on the fake only (this kernel lacks them), plus one root test per missing kind proving the
//! kernel backend reports it as not supported.

use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::net::{
    IpvlanFlag, IpvlanMode, KindInfo, LinkKind, LinkRef, MacvlanMode, Net, NetErrorKind, OperState, TABLE_MAIN,
    TunInfo, TunMode, VlanProtocol,
};
use cni_types::MacAddr;

use super::{Env, carrier_veth, err_kind, net, settled, suite, user_addrs, user_routes};

/// A veth end to hang children on (down, MTU `mtu`).
async fn parent(n: &Net, name: &str, peer: &str, mtu: u32) -> cni_sdk::net::Link {
    n.veth(name, peer).mtu(mtu).execute().await.unwrap().0
}

async fn macvlan_defaults(env: Env) {
    let p = parent(&env.a, "mvp0", "mvp1", 1500).await;
    let m = env.a.macvlan("mv0", p.index).execute().await.unwrap();
    assert_eq!(m.name, "mv0");
    assert_eq!(m.kind, LinkKind::Macvlan);
    assert_eq!(m.info, KindInfo::Macvlan { mode: MacvlanMode::Vepa }, "the kernel's default mode");
    assert_eq!(m.macvlan_mode(), Some(MacvlanMode::Vepa));
    assert_eq!(m.mtu, 1500);
    assert_eq!(m.parent, Some(LinkRef { index: p.index, same_netns: true }));
    assert_eq!(m.peer, None);
    assert!(m.mac.is_locally_administered() && !m.mac.is_multicast());
    assert_ne!(m.mac, p.mac);
    assert_eq!(m.txqlen, 1000);
    assert!(!m.up);
    assert_eq!(env.a.link("mv0").await.unwrap(), m);
}

async fn macvlan_options_and_errors(env: Env) {
    let p = parent(&env.a, "mvp0", "mvp1", 1450).await;
    let mac = MacAddr::new([0x02, 0x23, 0, 0, 0, 1]);
    let m = env.a.macvlan("mv1", p.index).mode(MacvlanMode::Bridge).mtu(1400).mac(mac).execute().await.unwrap();
    assert_eq!((m.macvlan_mode(), m.mtu, m.mac), (Some(MacvlanMode::Bridge), 1400, mac));
    let before = env.a.links().await.unwrap().len();
    let e = |r| err_kind(r);
    assert_eq!(e(env.a.macvlan("mv2", p.index).mtu(1451).execute().await), NetErrorKind::InvalidArgument, "mtu");
    assert_eq!(e(env.a.macvlan("mv2", 4242).execute().await), NetErrorKind::NotFound, "no parent");
    assert_eq!(e(env.a.macvlan("mv2", 1).execute().await), NetErrorKind::InvalidArgument, "loopback parent");
    assert_eq!(e(env.a.macvlan("mvp1", p.index).execute().await), NetErrorKind::Exists, "name taken");
    let mcast = MacAddr::new([0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(e(env.a.macvlan("mv2", p.index).mac(mcast).execute().await), NetErrorKind::InvalidArgument, "mac");
    assert_eq!(e(env.a.macvlan("", p.index).execute().await), NetErrorKind::InvalidArgument, "name");
    assert_eq!(env.a.links().await.unwrap().len(), before, "nothing half-created");
}

async fn macvlan_modes(env: Env) {
    let p = parent(&env.a, "mvp0", "mvp1", 1500).await;
    for (i, mode) in
        [MacvlanMode::Private, MacvlanMode::Vepa, MacvlanMode::Bridge, MacvlanMode::Source].into_iter().enumerate()
    {
        let m = env.a.macvlan(&format!("mvm{i}"), p.index).mode(mode).execute().await.unwrap();
        assert_eq!(m.info, KindInfo::Macvlan { mode });
    }
}

async fn macvlan_passthru_is_alone(env: Env) {
    let p = parent(&env.a, "mvp0", "mvp1", 1500).await;
    let pt = env.a.macvlan("pt0", p.index).mode(MacvlanMode::Passthru).mac(MacAddr::new([2, 9, 9, 9, 9, 9])).execute();
    let pt = pt.await.unwrap();
    assert_eq!(pt.macvlan_mode(), Some(MacvlanMode::Passthru));
    assert_eq!(pt.mac, p.mac, "passthru takes the parent's address, even when one is given");
    assert_eq!(err_kind(env.a.macvlan("mv1", p.index).execute().await), NetErrorKind::InvalidArgument);
    env.a.delete_link(pt.index).await.unwrap();
    env.a.macvlan("mv1", p.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    let again = env.a.macvlan("pt1", p.index).mode(MacvlanMode::Passthru).execute().await;
    assert_eq!(err_kind(again), NetErrorKind::InvalidArgument, "passthru must be the only one");
}

async fn macvlan_on_macvlan_uses_the_real_parent(env: Env) {
    let p = parent(&env.a, "mvp0", "mvp1", 1500).await;
    let m1 = env.a.macvlan("mv1", p.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    let m2 = env.a.macvlan("mv2", m1.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    assert_eq!(m2.parent.map(|r| r.index), Some(p.index));
    // Deleting the parent takes both.
    env.a.delete_link(p.index).await.unwrap();
    assert!(env.a.find_link("mv1").await.unwrap().is_none());
    assert!(env.a.find_link("mv2").await.unwrap().is_none());
    assert!(env.a.find_link("mvp1").await.unwrap().is_none(), "and the veth peer");
}

async fn one_receive_handler_per_device(env: Env) {
    let br = env.a.bridge("rxbr").execute().await.unwrap();
    let port = parent(&env.a, "rxp0", "rxp1", 1500).await;
    env.a.set_master(port.index, br.index).await.unwrap();
    assert_eq!(err_kind(env.a.macvlan("mv0", port.index).execute().await), NetErrorKind::Busy, "bridge port");
    let lower = parent(&env.a, "rxq0", "rxq1", 1500).await;
    env.a.macvtap("mt0", lower.index).execute().await.unwrap();
    assert_eq!(err_kind(env.a.set_master(lower.index, br.index).await), NetErrorKind::Busy, "macvlan parent");
    // A bridge itself can carry macvlans.
    let on_br = env.a.macvlan("mvbr", br.index).execute().await.unwrap();
    assert_eq!(on_br.parent.map(|r| r.index), Some(br.index));
}

async fn children_follow_parent_mtu(env: Env) {
    let p = parent(&env.a, "mvp0", "mvp1", 1500).await;
    let m1 = env.a.macvlan("mv1", p.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    let m2 = env.a.macvlan("mv2", p.index).mode(MacvlanMode::Bridge).mtu(1400).execute().await.unwrap();
    assert_eq!(err_kind(env.a.set_mtu(m1.index, 1501).await), NetErrorKind::InvalidArgument);
    env.a.set_mtu(m1.index, 1450).await.unwrap();
    env.a.set_mtu(p.index, 1300).await.unwrap();
    let mtu = |l: cni_sdk::net::Link| l.mtu;
    assert_eq!(mtu(env.a.link_by_index(m1.index).await.unwrap()), 1300);
    assert_eq!(mtu(env.a.link_by_index(m2.index).await.unwrap()), 1300);
    env.a.set_mtu(p.index, 1500).await.unwrap();
    assert_eq!(mtu(env.a.link_by_index(m1.index).await.unwrap()), 1300, "raising the parent leaves children");
}

async fn macvlan_oper_state_follows_parent(env: Env) {
    let p = carrier_veth(&env.a, "mvp0", "mvp1").await;
    let m = env.a.macvlan("mv0", p.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    assert_eq!(m.oper_state, OperState::Down);
    env.a.set_up(m.index).await.unwrap();
    let l = settled(&env.a, m.index, |l| l.oper_state == OperState::Up).await;
    assert_eq!(l.oper_state, OperState::Up);
    env.a.set_down(p.index).await.unwrap();
    let l = settled(&env.a, m.index, |l| l.oper_state == OperState::LowerLayerDown).await;
    assert_eq!(l.oper_state, OperState::LowerLayerDown);
}

async fn macvtap_link(env: Env) {
    let p = parent(&env.a, "mtp0", "mtp1", 1500).await;
    let t = env.a.macvtap("mt0", p.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    assert_eq!(t.kind, LinkKind::Macvtap);
    assert_eq!(t.info, KindInfo::Macvtap { mode: MacvlanMode::Bridge });
    assert_eq!(t.macvlan_mode(), Some(MacvlanMode::Bridge));
    assert_eq!(t.txqlen, 500);
    assert_eq!(t.parent, Some(LinkRef { index: p.index, same_netns: true }));
    // macvlans and macvtaps share their parent.
    env.a.macvlan("mv0", p.index).mode(MacvlanMode::Bridge).execute().await.unwrap();
    env.a.delete_link(p.index).await.unwrap();
    assert!(env.a.find_link("mt0").await.unwrap().is_none());
    assert!(env.a.find_link("mv0").await.unwrap().is_none());
}

async fn ifb_link(env: Env) {
    let mac = MacAddr::new([0x02, 0x24, 0, 0, 0, 1]);
    let i = env.a.ifb("ifb9").mac(mac).mtu(9000).execute().await.unwrap();
    assert_eq!((i.kind.clone(), i.info, i.mtu, i.mac, i.txqlen), (LinkKind::Ifb, KindInfo::Plain, 9000, mac, 32));
    let d = env.a.ifb("ifb8").execute().await.unwrap();
    assert_eq!(d.mtu, 1500);
    env.a.set_up(i.index).await.unwrap();
    let l = settled(&env.a, i.index, |l| l.oper_state == OperState::Unknown).await;
    assert_eq!(l.oper_state, OperState::Unknown);
    assert_eq!(err_kind(env.a.ifb("ifb9").execute().await), NetErrorKind::Exists);
    env.a.delete_link(d.index).await.unwrap();
    assert!(env.a.find_link("ifb8").await.unwrap().is_none());
}

async fn tap_device(env: Env) {
    let mac = MacAddr::new([0x02, 0x25, 0, 0, 0, 1]);
    let t = env
        .a
        .tap("tap0")
        .owner(1234)
        .group(2345)
        .multi_queue(true)
        .vnet_hdr(true)
        .mtu(1400)
        .mac(mac)
        .execute()
        .await
        .unwrap();
    assert_eq!(t.kind, LinkKind::Tun);
    let want = TunInfo {
        mode: TunMode::Tap,
        owner: Some(1234),
        group: Some(2345),
        pi: false,
        vnet_hdr: true,
        multi_queue: true,
        persist: true,
    };
    assert_eq!(t.info, KindInfo::Tun(want));
    assert_eq!(t.tun(), Some(&want));
    assert_eq!((t.mtu, t.mac, t.txqlen), (1400, mac, 1000));
    env.a.set_up(t.index).await.unwrap();
    let l = settled(&env.a, t.index, |l| l.up && l.oper_state == OperState::Down).await;
    assert_eq!(l.oper_state, OperState::Down, "nobody attached: no carrier");
    // Names are not reused, whatever holds them.
    assert_eq!(err_kind(env.a.tap("tap0").execute().await), NetErrorKind::Exists);
    env.a.veth("tv0", "tv1").execute().await.unwrap();
    assert_eq!(err_kind(env.a.tap("tv0").execute().await), NetErrorKind::Exists);
    // A failed MTU leaves nothing behind.
    assert_eq!(err_kind(env.a.tap("tap1").mtu(10).execute().await), NetErrorKind::InvalidArgument);
    assert!(env.a.find_link("tap1").await.unwrap().is_none());
    env.a.delete_link(t.index).await.unwrap();
    assert!(env.a.find_link("tap0").await.unwrap().is_none());
}

async fn tun_device(env: Env) {
    let t = env.a.tuntap("tun0", TunMode::Tun).packet_info(true).execute().await.unwrap();
    let info = *t.tun().unwrap();
    assert_eq!(info.mode, TunMode::Tun);
    assert_eq!((info.owner, info.group), (None, None));
    assert!(info.pi && info.persist && !info.vnet_hdr && !info.multi_queue);
    assert!(t.mac.is_zero(), "a layer-3 device has no hardware address");
    assert_eq!(t.mtu, 1500);
    // A tun device cannot carry a macvlan (not Ethernet).
    assert_eq!(err_kind(env.a.macvlan("mv0", t.index).execute().await), NetErrorKind::InvalidArgument);
}

suite!(
    macvlan_defaults,
    macvlan_options_and_errors,
    macvlan_modes,
    macvlan_passthru_is_alone,
    macvlan_on_macvlan_uses_the_real_parent,
    one_receive_handler_per_device,
    children_follow_parent_mtu,
    macvlan_oper_state_follows_parent,
    macvtap_link,
    ifb_link,
    tap_device,
    tun_device,
);

// ---------------------------------------------------------------------------------------------
// Kinds this kernel lacks: the fake's model, and proof that the kernel backend says so.

fn fake_ns() -> (FakeNetwork, Net) {
    let world = FakeNetwork::new();
    let a = world.add_namespace("a");
    (world, a)
}

#[tokio::test]
async fn fake_only_dummy_link() {
    let (w, a) = fake_ns();
    let d = a.dummy("dum0").mtu(9000).execute().await.unwrap();
    assert_eq!((d.kind.clone(), d.mtu, d.txqlen), (LinkKind::Dummy, 9000, 1000));
    assert_eq!(err_kind(a.dummy("dum0").execute().await), NetErrorKind::Exists);
    a.set_up(d.index).await.unwrap();
    assert_eq!(a.link_by_index(d.index).await.unwrap().oper_state, OperState::Unknown);
    // Created straight in another namespace under a temporary name (dummy since v1.9 does it
    // from inside; both work).
    let ctr = w.add_namespace("ctr");
    let in_ctr = a.dummy("dum0").netns(&ctr).via_temp_name().execute().await.unwrap();
    assert_eq!(ctr.link("dum0").await.unwrap().index, in_ctr.index);
}

#[tokio::test]
async fn fake_only_ipvlan_modes_and_flags() {
    let (_w, a) = fake_ns();
    let p = parent(&a, "ipp0", "ipp1", 1500).await;
    let i1 = a.ipvlan("ipv1", p.index).mode(IpvlanMode::L2).flag(IpvlanFlag::Private).execute().await.unwrap();
    assert_eq!(i1.kind, LinkKind::Ipvlan);
    assert_eq!(i1.info, KindInfo::Ipvlan { mode: IpvlanMode::L2, flag: IpvlanFlag::Private });
    assert_eq!(i1.mac, p.mac, "an ipvlan shares its parent's address");
    assert_eq!((i1.mtu, i1.parent.map(|r| r.index)), (1500, Some(p.index)));
    // Mode and flag belong to the parent: a new ipvlan sets them for all (default l3, bridge).
    let i2 = a.ipvlan("ipv2", p.index).execute().await.unwrap();
    let l3 = KindInfo::Ipvlan { mode: IpvlanMode::L3, flag: IpvlanFlag::Bridge };
    assert_eq!(i2.info, l3);
    assert_eq!(a.link_by_index(i1.index).await.unwrap().info, l3);
    let i3 = a.ipvlan("ipv3", i2.index).mode(IpvlanMode::L3s).flag(IpvlanFlag::Vepa).execute().await.unwrap();
    assert_eq!(i3.parent.map(|r| r.index), Some(p.index), "an ipvlan parent resolves to its own parent");
    assert_eq!(a.link("ipv1").await.unwrap().info, KindInfo::Ipvlan { mode: IpvlanMode::L3s, flag: IpvlanFlag::Vepa });
    assert_eq!(err_kind(a.set_mac(i1.index, MacAddr::new([2, 1, 1, 1, 1, 1])).await), NetErrorKind::NotSupported);
    assert_eq!(err_kind(a.ipvlan("ipv4", p.index).mtu(1501).execute().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(a.ipvlan("ipv4", 1).execute().await), NetErrorKind::InvalidArgument, "loopback");
    assert_eq!(err_kind(a.ipvlan("ipv4", 4242).execute().await), NetErrorKind::NotFound);
    // Parent MTU changes carry over (both ways for ipvlans).
    a.set_mtu(p.index, 1400).await.unwrap();
    a.set_mtu(p.index, 1450).await.unwrap();
    assert_eq!(a.link_by_index(i1.index).await.unwrap().mtu, 1450);
    a.delete_link(p.index).await.unwrap();
    assert_eq!(a.links().await.unwrap().len(), 1, "children and peer went with the parent");
}

#[tokio::test]
async fn fake_only_ipvlan_and_macvlan_exclude_each_other() {
    let (_w, a) = fake_ns();
    let p = parent(&a, "xp0", "xp1", 1500).await;
    a.macvlan("mv0", p.index).execute().await.unwrap();
    assert_eq!(err_kind(a.ipvlan("ipv0", p.index).execute().await), NetErrorKind::Busy);
    let q = parent(&a, "xq0", "xq1", 1500).await;
    a.ipvlan("ipv0", q.index).execute().await.unwrap();
    assert_eq!(err_kind(a.macvlan("mv1", q.index).execute().await), NetErrorKind::Busy);
    let br = a.bridge("xbr").execute().await.unwrap();
    assert_eq!(err_kind(a.set_master(q.index, br.index).await), NetErrorKind::Busy);
    let r = parent(&a, "xr0", "xr1", 1500).await;
    a.set_master(r.index, br.index).await.unwrap();
    assert_eq!(err_kind(a.ipvlan("ipv1", r.index).execute().await), NetErrorKind::Busy);
    // VLANs do not take the receive handler.
    a.vlan("xq0.5", q.index, 5).execute().await.unwrap();
}

#[tokio::test]
async fn fake_only_vlan_ids_and_protocols() {
    let (_w, a) = fake_ns();
    let p = parent(&a, "vp0", "vp1", 1500).await;
    let v0 = a.vlan("vp0.0", p.index, 0).execute().await.unwrap();
    assert_eq!(v0.kind, LinkKind::Vlan);
    assert_eq!(v0.info, KindInfo::Vlan { id: 0, protocol: VlanProtocol::Dot1Q });
    assert_eq!(v0.vlan_id(), Some(0));
    assert_eq!((v0.mac, v0.mtu), (p.mac, 1500), "a VLAN inherits its parent's address and MTU");
    let v = a.vlan("vp0.4094", p.index, 4094).execute().await.unwrap();
    assert_eq!(v.vlan_id(), Some(4094));
    let e = a.vlan("vp0.4095", p.index, 4095).execute().await.unwrap_err();
    assert_eq!((e.kind(), e.errno()), (NetErrorKind::InvalidArgument, Some(libc::ERANGE)));
    assert_eq!(err_kind(a.vlan("dup", p.index, 4094).execute().await), NetErrorKind::Exists);
    let qinq = a.vlan("qinq", p.index, 4094).protocol(VlanProtocol::Dot1Ad).execute().await.unwrap();
    assert_eq!(qinq.info, KindInfo::Vlan { id: 4094, protocol: VlanProtocol::Dot1Ad });
    let mac = MacAddr::new([0x02, 0x26, 0, 0, 0, 1]);
    let own = a.vlan("vp0.7", p.index, 7).mac(mac).mtu(1400).execute().await.unwrap();
    assert_eq!((own.mac, own.mtu), (mac, 1400));
    assert_eq!(err_kind(a.vlan("vp0.8", p.index, 8).mtu(1600).execute().await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(a.set_mtu(own.index, 1600).await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(a.vlan("lo.5", 1, 5).execute().await), NetErrorKind::NotSupported, "loopback");
    assert_eq!(err_kind(a.vlan("x.5", 4242, 5).execute().await), NetErrorKind::NotFound);
    // Stacked VLANs (QinQ) keep their own parent.
    let inner = a.vlan("qinq.5", qinq.index, 5).execute().await.unwrap();
    assert_eq!(inner.parent.map(|r| r.index), Some(qinq.index));
    a.delete_link(p.index).await.unwrap();
    assert_eq!(a.links().await.unwrap().len(), 1, "VLANs (stacked too) went with the parent");
}

#[tokio::test]
async fn fake_only_vrf_table_and_enslaving() {
    let (_w, a) = fake_ns();
    assert_eq!(err_kind(a.vrf("vrf0", 0).execute().await), NetErrorKind::InvalidArgument);
    let vrf = a.vrf("vrf0", 100).execute().await.unwrap();
    assert_eq!((vrf.kind.clone(), vrf.info, vrf.mtu), (LinkKind::Vrf, KindInfo::Vrf { table: 100 }, 65575));
    a.set_up(vrf.index).await.unwrap();
    assert_eq!(a.link_by_index(vrf.index).await.unwrap().oper_state, OperState::Up);
    let port = carrier_veth(&a, "vr0", "vr1").await;
    a.add_address(port.index, net("10.220.30.2/24")).await.unwrap();
    a.add_address(port.index, net("fd00:220:30::2/64")).await.unwrap();
    // Enslaving cycles the link: connected routes move to the VRF's table, IPv6 addresses go.
    a.set_master(port.index, vrf.index).await.unwrap();
    assert!(user_routes(a.routes().await.unwrap()).is_empty());
    let t100 = a.routes_in_table(100).await.unwrap();
    assert_eq!(t100.iter().map(|r| r.dst).collect::<Vec<_>>(), vec![net("10.220.30.0/24")]);
    assert_eq!(user_addrs(a.link_addresses(port.index).await.unwrap()).len(), 1);
    // A route in the VRF's table through a gateway only it reaches.
    a.route(net("0.0.0.0/0")).gateway(super::ip("10.220.30.1")).table(100).add().await.unwrap();
    a.set_no_master(port.index).await.unwrap();
    let main: Vec<_> = a.routes().await.unwrap().into_iter().map(|r| (r.dst, r.table)).collect();
    assert_eq!(main, vec![(net("10.220.30.0/24"), TABLE_MAIN)]);
    assert!(a.routes_in_table(100).await.unwrap().is_empty());
}

async fn kernel_env() -> Env {
    super::real_env().await
}

#[tokio::test]
#[ignore = "needs root"]
async fn kernel_lacks_dummy() {
    let env = kernel_env().await;
    let e = env.a.dummy("dum0").execute().await.unwrap_err();
    assert_eq!(e.kind(), NetErrorKind::NotSupported, "this kernel has no dummy driver: {e}");
}

#[tokio::test]
#[ignore = "needs root"]
async fn kernel_lacks_ipvlan() {
    let env = kernel_env().await;
    let p = parent(&env.a, "ipp0", "ipp1", 1500).await;
    let e = env.a.ipvlan("ipv0", p.index).mode(IpvlanMode::L2).execute().await.unwrap_err();
    assert_eq!(e.kind(), NetErrorKind::NotSupported, "this kernel has no ipvlan driver: {e}");
}

#[tokio::test]
#[ignore = "needs root"]
async fn kernel_lacks_vlan() {
    let env = kernel_env().await;
    let p = parent(&env.a, "vp0", "vp1", 1500).await;
    let e = env.a.vlan("vp0.5", p.index, 5).execute().await.unwrap_err();
    assert_eq!(e.kind(), NetErrorKind::NotSupported, "this kernel has no 8021q driver: {e}");
}

#[tokio::test]
#[ignore = "needs root"]
async fn kernel_lacks_vrf() {
    let env = kernel_env().await;
    let e = env.a.vrf("vrf0", 100).execute().await.unwrap_err();
    assert_eq!(e.kind(), NetErrorKind::NotSupported, "this kernel has no vrf driver: {e}");
}
