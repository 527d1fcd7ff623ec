//! Unit tests on fake namespaces. This machine's kernel has no VRF module, so everything that
//! needs a VRF device runs on the fake only (`fake_only_*`); the root tests compare Go's and our
//! error objects on the kernel instead.

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{KindInfo, Net, NetError, NetErrorKind, RouteProtocol, Rule};
use cni_sdk::testing::{PluginTest, for_versions};
use cni_sdk::{CniResult, Command, ErrorCode, Interface, IpConfig, PluginEntry, SpecVersion};
use ipnet::IpNet;
use serde_json::{Value, json};

use super::Vrf;

const NS: &str = "/var/run/netns/ctr";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A container whose `eth0` (a veth) has 10.226.90.5/24 and fd00:226:90::5/64 with default
/// routes through .1 and ::1, and a route to 10.99.0.0/16.
struct Env {
    world: FakeNetwork,
    ctr: Net,
}

impl Env {
    async fn new() -> Self {
        let world = FakeNetwork::new();
        let ctr = world.add_namespace("ctr");
        let env = Self { world, ctr };
        env.interface("eth0", "veth0", 90).await;
        env
    }

    async fn interface(&self, ifname: &str, peer: &str, n: u8) {
        let (_, l) = self.world.host().veth(peer, ifname).peer_netns(&self.ctr).execute().await.unwrap();
        self.ctr.set_up(l.index).await.unwrap();
        self.ctr.add_address(l.index, net(&format!("10.226.{n}.5/24"))).await.unwrap();
        self.ctr.add_address(l.index, net(&format!("fd00:226:{n}::5/64"))).await.unwrap();
        if ifname == "eth0" {
            for (dst, gw) in [("0.0.0.0/0", format!("10.226.{n}.1")), ("::/0", format!("fd00:226:{n}::1"))] {
                self.ctr.route(net(dst)).gateway(gw.parse().unwrap()).dev(l.index).add().await.unwrap();
            }
        }
        let gw = format!("10.226.{n}.1").parse().unwrap();
        self.ctr.route(net(&format!("10.99.{n}.0/24"))).gateway(gw).dev(l.index).add().await.unwrap();
    }

    fn test(&self, cmd: Command, keys: Value) -> PluginTest<'_, Vrf> {
        self.bare(cmd, keys).prev_result(&prev())
    }

    fn bare(&self, cmd: Command, keys: Value) -> PluginTest<'_, Vrf> {
        PluginTest::new(&Vrf)
            .options(Vrf::options())
            .command(cmd)
            .config_keys(json!({"cniVersion": "1.0.0", "name": "vrfnet", "type": "vrf", "vrfname": "blue"}))
            .config_keys(keys)
            .netns(NS)
            .network(&self.world)
    }

    /// `(name, table)` of the VRFs.
    async fn vrfs(&self) -> Vec<(String, u32)> {
        self.ctr
            .links()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|l| match l.info {
                KindInfo::Vrf { table } => Some((l.name, table)),
                _ => None,
            })
            .collect()
    }

    async fn master_of(&self, ifname: &str) -> Option<String> {
        let l = self.ctr.link(ifname).await.unwrap();
        match l.master {
            Some(m) => Some(self.ctr.link_by_index(m).await.unwrap().name),
            None => None,
        }
    }

    /// The routes of `table` as `dst via gw`.
    async fn table(&self, table: u32) -> Vec<String> {
        let mut v: Vec<String> = self
            .ctr
            .routes_in_table(table)
            .await
            .unwrap()
            .iter()
            .map(|r| match r.gateway {
                Some(g) => format!("{} via {g}", r.dst),
                None => r.dst.to_string(),
            })
            .collect();
        v.sort();
        v
    }

    async fn addrs(&self, ifname: &str) -> Vec<String> {
        let l = self.ctr.link(ifname).await.unwrap();
        let mut v: Vec<String> =
            self.ctr.link_addresses(l.index).await.unwrap().iter().map(|a| a.addr.to_string()).collect();
        v.sort();
        v
    }
}

fn prev() -> CniResult {
    let mut r = CniResult::default();
    r.interfaces.push(Interface::new("veth0"));
    r.interfaces.push(Interface { sandbox: Some(NS.into()), ..Interface::new("eth0") });
    r.ips.push(IpConfig { interface: Some(1), ..IpConfig::new(net("10.226.90.5/24")) });
    r
}

const TABLE1: [&str; 5] = [
    "0.0.0.0/0 via 10.226.90.1",
    "10.226.90.0/24",
    "10.99.90.0/24 via 10.226.90.1",
    "::/0 via fd00:226:90::1",
    "fd00:226:90::/64",
];

#[tokio::test]
async fn fake_only_add_check_del_in_every_version() {
    for_versions(Vrf::options().supported_versions(), |v| async move {
        let env = Env::new().await;
        let main_before = env.table(254).await;
        let run = |cmd| env.test(cmd, json!({})).version(v).run();
        let r = run(Command::Add).await.expect_result();
        assert_eq!(r.interfaces, prev().interfaces, "{v}: prevResult passes through");
        // A new VRF, up, on table 1, with the kernel's l3mdev rules.
        assert_eq!(env.vrfs().await, [("blue".to_owned(), 1)]);
        assert!(env.ctr.link("blue").await.unwrap().up);
        let rules = env.ctr.rules().await.unwrap();
        assert_eq!(rules.iter().filter(|r: &&Rule| r.l3mdev && r.priority == 1000).count(), 2);
        // eth0 in it; the IPv6 address the kernel dropped is back; every route is in table 1
        // (the default route is not lost, Go bug B20).
        assert_eq!(env.master_of("eth0").await.as_deref(), Some("blue"));
        assert_eq!(env.addrs("eth0").await, ["10.226.90.5/24", "fd00:226:90::5/64"]);
        assert_eq!(env.table(1).await, TABLE1, "{v}");
        assert!(env.table(254).await.iter().all(|r| !main_before.contains(r)), "{:?}", env.table(254).await);
        if v.has_check() {
            run(Command::Check).await.expect_success();
        }
        run(Command::Del).await.expect_success();
        assert!(env.vrfs().await.is_empty(), "{v}");
        assert_eq!(env.master_of("eth0").await, None);
        run(Command::Del).await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn versions_before_0_3_1_are_refused() {
    let env = Env::new().await;
    for v in [SpecVersion::V0_1_0, SpecVersion::V0_2_0, SpecVersion::V0_3_0] {
        let e =
            env.bare(Command::Add, json!({})).version(v).run().await.expect_error(ErrorCode::IncompatibleCniVersion);
        assert_eq!(e.msg, "incompatible CNI versions");
    }
}

#[tokio::test]
async fn fake_only_kept_addresses_are_not_added_twice() {
    let env = Env::new().await;
    env.ctr.set_sysctl("net.ipv6.conf.all.keep_addr_on_down", "1").await.unwrap();
    env.world.clear_ops();
    env.test(Command::Add, json!({})).run().await.expect_result();
    assert_eq!(env.addrs("eth0").await, ["10.226.90.5/24", "fd00:226:90::5/64"]);
    assert!(env.world.ops_of(OpKind::AddAddress).is_empty(), "{:?}", env.world.ops_of(OpKind::AddAddress));
}

#[tokio::test]
async fn fake_only_an_existing_vrf_is_reused_and_its_table_checked() {
    let env = Env::new().await;
    let blue = env.ctr.vrf("blue", 10).execute().await.unwrap();
    env.test(Command::Add, json!({})).run().await.expect_result();
    assert_eq!(env.vrfs().await, [("blue".to_owned(), 10)]);
    assert_eq!(env.table(10).await, TABLE1);
    // DEL takes eth0 out and deletes the VRF, which is empty now (Go does the same).
    env.test(Command::Del, json!({})).run().await.expect_success();
    assert!(env.ctr.find_link_by_index(blue.index).await.unwrap().is_none());

    let env = Env::new().await;
    env.ctr.vrf("blue", 10).execute().await.unwrap();
    env.test(Command::Add, json!({"table": 10})).run().await.expect_result();
    let env = Env::new().await;
    env.ctr.vrf("blue", 10).execute().await.unwrap();
    let e = env.test(Command::Add, json!({"table": 11})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "cmdAdd failed: VRF blue already exist with different routing table 10");
    assert_eq!(env.master_of("eth0").await, None);
}

#[tokio::test]
async fn fake_only_tables_are_picked_like_gos() {
    let env = Env::new().await;
    env.ctr.vrf("red", 1).execute().await.unwrap();
    env.ctr.vrf("green", 2).execute().await.unwrap();
    env.ctr.vrf("black", 4).execute().await.unwrap();
    env.test(Command::Add, json!({})).run().await.expect_result();
    assert!(env.vrfs().await.contains(&("blue".to_owned(), 3)));
    // An explicit table is used as given, even one another VRF has (the kernel allows it).
    let env = Env::new().await;
    env.ctr.vrf("red", 7).execute().await.unwrap();
    env.test(Command::Add, json!({"table": 7})).run().await.expect_result();
    assert!(env.vrfs().await.contains(&("blue".to_owned(), 7)));
}

#[tokio::test]
async fn fake_only_two_interfaces_share_the_vrf() {
    let env = Env::new().await;
    env.interface("net1", "veth1", 91).await;
    env.test(Command::Add, json!({})).run().await.expect_result();
    env.test(Command::Add, json!({})).ifname("net1").run().await.expect_result();
    assert_eq!(env.vrfs().await.len(), 1);
    assert!(env.table(1).await.contains(&"10.99.91.0/24 via 10.226.91.1".to_owned()));
    env.test(Command::Del, json!({})).run().await.expect_success();
    assert_eq!(env.vrfs().await.len(), 1, "net1 is still in it");
    env.test(Command::Check, json!({})).ifname("net1").run().await.expect_success();
    env.test(Command::Del, json!({})).ifname("net1").run().await.expect_success();
    assert!(env.vrfs().await.is_empty());
}

#[tokio::test]
async fn configuration_and_interface_errors_are_gos() {
    let env = Env::new().await;
    for cmd in [Command::Add, Command::Check, Command::Del] {
        let e = env.test(cmd, json!({"vrfname": ""})).run().await.expect_error(ErrorCode::Internal);
        assert_eq!(e.msg, "configuration is expected to have a valid vrf name", "{cmd:?}");
    }
    for cmd in [Command::Add, Command::Check] {
        let e = env.bare(cmd, json!({})).run().await.expect_error(ErrorCode::Internal);
        assert_eq!(e.msg, "missing prevResult from earlier plugin", "{cmd:?}");
    }
    let e =
        env.test(Command::Add, json!({})).netns("/var/run/netns/gone").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "cmdAdd failed: failed to Statfs \"/var/run/netns/gone\": no such file or directory");
    // A link of another kind with the VRF's name.
    env.ctr.bridge("blue").execute().await.unwrap();
    let e = env.test(Command::Add, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "cmdAdd failed: Netlink blue is not a VRF");
    let e = env.test(Command::Check, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "Netlink blue is not a VRF");
}

#[tokio::test]
async fn fake_only_interface_errors_leave_no_vrf() {
    let env = Env::new().await;
    let e = env.test(Command::Add, json!({})).ifname("eth9").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "cmdAdd failed: could not get link by name eth9");
    assert!(env.vrfs().await.is_empty(), "the VRF created for it is gone again");
    let br = env.ctr.bridge("br0").execute().await.unwrap();
    let eth0 = env.ctr.link("eth0").await.unwrap();
    env.ctr.set_master(eth0.index, br.index).await.unwrap();
    let e = env.test(Command::Add, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "cmdAdd failed: interface eth0 has already a master set: br0");
    assert!(env.vrfs().await.is_empty());
}

#[tokio::test]
async fn fake_only_a_failure_after_enslaving_puts_everything_back() {
    for (kind, skip) in [(OpKind::ReplaceRoute, 2), (OpKind::AddAddress, 0), (OpKind::SetUp, 0)] {
        let env = Env::new().await;
        let (main_before, addrs_before) = (env.table(254).await, env.addrs("eth0").await);
        let seen = std::sync::atomic::AtomicUsize::new(0);
        env.world.fail_when(move |op| {
            (op.netns == "ctr" && op.kind == kind && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == skip)
                .then(|| NetError::from_errno(1, "injected"))
        });
        let e = env.test(Command::Add, json!({})).run().await.expect_error(ErrorCode::Internal);
        env.world.clear_failures();
        assert!(e.msg.starts_with("cmdAdd failed: ") && e.msg.ends_with("operation not permitted"), "{}", e.msg);
        assert!(env.vrfs().await.is_empty(), "{kind:?}");
        assert_eq!(env.master_of("eth0").await, None, "{kind:?}");
        assert_eq!(env.addrs("eth0").await, addrs_before, "{kind:?}");
        assert_eq!(env.table(254).await, main_before, "{kind:?}");
        assert!(env.table(1).await.is_empty(), "{kind:?}");
    }
}

#[tokio::test]
async fn fake_only_the_kernels_refusal_is_reported_like_gos() {
    // What this machine's kernel (no VRF module) answers; the root tests compare with Go.
    let env = Env::new().await;
    env.world.fail_next_in("ctr", OpKind::CreateVrf, NetErrorKind::NotSupported);
    let e = env.test(Command::Add, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert!(e.msg.starts_with("cmdAdd failed: could not add VRF blue: "), "{}", e.msg);
    assert!(env.vrfs().await.is_empty());
}

#[tokio::test]
async fn del_is_tolerant() {
    let env = Env::new().await;
    // No VRF, no namespace, no CNI_NETNS: success.
    env.test(Command::Del, json!({})).run().await.expect_success();
    env.test(Command::Del, json!({})).netns("/var/run/netns/gone").run().await.expect_success();
    env.test(Command::Del, json!({})).unset("CNI_NETNS").run().await.expect_success();
}

#[tokio::test]
async fn fake_only_del_without_the_interface_still_deletes_the_vrf() {
    let env = Env::new().await;
    env.test(Command::Add, json!({})).run().await.expect_result();
    let eth0 = env.ctr.link("eth0").await.unwrap();
    env.ctr.delete_link(eth0.index).await.unwrap();
    // Go: `resetMaster: could not get link by name eth0` (bug B21).
    env.test(Command::Del, json!({})).run().await.expect_success();
    assert!(env.vrfs().await.is_empty());
    // An interface in another master is left there.
    let env = Env::new().await;
    env.ctr.vrf("blue", 5).execute().await.unwrap();
    let br = env.ctr.bridge("br0").execute().await.unwrap();
    let eth0 = env.ctr.link("eth0").await.unwrap();
    env.ctr.set_master(eth0.index, br.index).await.unwrap();
    env.test(Command::Del, json!({})).run().await.expect_success();
    assert_eq!(env.master_of("eth0").await.as_deref(), Some("br0"));
    assert!(env.vrfs().await.is_empty(), "blue had nothing enslaved");
}

#[tokio::test]
async fn fake_only_check_reports_what_is_wrong() {
    let env = Env::new().await;
    let e = env.test(Command::Check, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "Link not found", "Go 1.1.1 discards this (bug B19)");
    env.ctr.vrf("blue", 3).execute().await.unwrap();
    let e = env.test(Command::Check, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "failed to find eth0 associated to vrf blue");
}

#[tokio::test]
async fn fake_only_copied_routes_keep_their_attributes() {
    let env = Env::new().await;
    env.test(Command::Add, json!({})).run().await.expect_result();
    let routes = env.ctr.routes_in_table(1).await.unwrap();
    let default = routes.iter().find(|r| r.dst == net("0.0.0.0/0")).unwrap();
    assert_eq!(default.protocol, RouteProtocol::Static);
    let connected = routes.iter().find(|r| r.dst == net("10.226.90.0/24")).unwrap();
    assert_eq!(connected.protocol, RouteProtocol::Kernel, "the kernel's own, in the VRF's table");
}

#[tokio::test]
async fn fake_only_an_ipv6_route_refused_while_addresses_settle_is_tried_again() {
    let env = Env::new().await;
    let refusals = std::sync::atomic::AtomicUsize::new(0);
    env.world.fail_when(move |op| {
        (op.kind == OpKind::ReplaceRoute
            && op.detail.starts_with("::/0")
            && refusals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2)
            .then(|| NetError::from_errno(113, "injected"))
    });
    env.test(Command::Add, json!({})).run().await.expect_result();
    assert_eq!(env.table(1).await, TABLE1);
    let tries = env.world.ops_of(OpKind::ReplaceRoute).into_iter().filter(|op| op.detail.starts_with("::/0")).count();
    assert_eq!(tries, 3);
    // An IPv4 route is not retried.
    let env = Env::new().await;
    env.world.fail_when(|op| {
        (op.kind == OpKind::ReplaceRoute && op.detail.starts_with("0.0.0.0/0"))
            .then(|| NetError::from_errno(101, "injected"))
    });
    let e = env.test(Command::Add, json!({})).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "cmdAdd failed: could not add route '0.0.0.0/0 via 10.226.90.1 table 1': network is unreachable");
    assert!(env.vrfs().await.is_empty());
}
