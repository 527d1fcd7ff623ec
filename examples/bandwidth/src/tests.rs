//! Unit tests on fake namespaces: every key and source, every error path with Go's text, every
//! spec version, the kernel objects (qdiscs, filter, ifb) with Go's numbers, rollback, DEL's
//! idempotence, CHECK's drift detection and GC. No root, no binaries.

use cni_sdk::net::fake::{FakeNetwork, OpKind};
use cni_sdk::net::{ETH_P_ALL, Link, LinkKind, MirredKind, Net, Psched, Tbf, TcAction, TcHandle};
use cni_sdk::testing::{PluginTest, for_versions};
use cni_sdk::{Attachment, CniResult, Command, ErrorCode, Interface, IpConfig, PluginEntry, SpecVersion};
use serde_json::{Value, json};

use super::{Bandwidth, LATENCY_MS, TBF_HANDLE, ifb_name};

const NS: &str = "/var/run/netns/ctr";
const CID: &str = "ctr-bw";
const NET: &str = "bwnet";
/// Go's name for `NET` + `CID` (verified against Go 1.1.1 in go-plugins-notes §1.5).
const IFB: &str = "bwp371e0cbb36b3";

/// 1 Mbit/s with a 10 kB burst: `tc` shows `rate 1Mbit burst 10000b lat 25ms`.
fn go_tbf(rate: u64, burst: u64) -> Tbf {
    Tbf::for_bandwidth(rate, burst, LATENCY_MS, &Psched::KERNEL).unwrap()
}

/// A host namespace with the host end `veth0` (MTU 1450) of the container's `eth0`.
struct Env {
    world: FakeNetwork,
    host: Net,
    ctr: Net,
    data: tempfile::TempDir,
    plugin: Bandwidth,
}

impl Env {
    async fn new() -> Self {
        let world = FakeNetwork::new();
        let ctr = world.add_namespace("ctr");
        let host = world.host();
        let (hv, cv) = host.veth("veth0", "eth0").peer_netns(&ctr).mtu(1450).execute().await.unwrap();
        host.set_up(hv.index).await.unwrap();
        ctr.set_up(cv.index).await.unwrap();
        Self { world, host, ctr, data: tempfile::tempdir().unwrap(), plugin: Bandwidth::with_psched(Psched::KERNEL) }
    }

    fn test(&self, cmd: Command, keys: Value) -> PluginTest<'_, Bandwidth> {
        self.test_with(cmd, keys, Some(&prev()))
    }

    fn test_with(&self, cmd: Command, keys: Value, prev: Option<&CniResult>) -> PluginTest<'_, Bandwidth> {
        let mut t = PluginTest::new(&self.plugin)
            .options(Bandwidth::options())
            .command(cmd)
            .config_keys(json!({"cniVersion": "1.0.0", "name": NET, "type": "bandwidth", "dataDir": self.data.path()}))
            .config_keys(keys)
            .container_id(CID)
            .netns(NS)
            .network(&self.world);
        if let Some(p) = prev {
            t = t.prev_result(p);
        }
        t
    }

    async fn veth(&self) -> Link {
        self.host.link("veth0").await.unwrap()
    }

    async fn ifb(&self) -> Option<Link> {
        self.host.find_link(IFB).await.unwrap()
    }

    /// `(kind, handle, parent)` of every qdisc of `link` in the host namespace.
    async fn qdiscs(&self, link: &str) -> Vec<(String, String, String)> {
        let l = self.host.link(link).await.unwrap();
        self.host
            .link_qdiscs(l.index)
            .await
            .unwrap()
            .into_iter()
            .map(|q| (q.kind.to_string(), q.handle.to_string(), q.parent.to_string()))
            .collect()
    }

    async fn root_tbf(&self, link: &str) -> Option<Tbf> {
        let l = self.host.link(link).await.unwrap();
        self.host.link_qdiscs(l.index).await.unwrap().into_iter().find(|q| q.is_root()).and_then(|q| q.tbf().copied())
    }

    fn records(&self) -> Vec<String> {
        let dir = self.data.path().join(NET);
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Nothing of the plugin is left on the host.
    async fn nothing_left(&self) {
        assert!(self.ifb().await.is_none(), "the ifb is left");
        assert_eq!(self.qdiscs("veth0").await, [("noqueue".to_owned(), "none".to_owned(), "root".to_owned())]);
        assert!(self.records().is_empty(), "{:?}", self.records());
    }
}

/// What bridge returns: the bridge, the host veth, the container interface, an address.
fn prev() -> CniResult {
    let mut r = CniResult::default();
    r.interfaces.push(Interface::new("cni0"));
    r.interfaces.push(Interface::new("veth0"));
    r.interfaces.push(Interface { sandbox: Some(NS.into()), ..Interface::new("eth0") });
    r.ips.push(IpConfig { interface: Some(2), ..IpConfig::new("10.226.0.5/24".parse().unwrap()) });
    r
}

fn both() -> Value {
    json!({"ingressRate": 1_000_000, "ingressBurst": 80_000, "egressRate": 2_000_000, "egressBurst": 160_000})
}

#[test]
fn ifb_names_are_gos() {
    assert_eq!(ifb_name(NET, CID), IFB);
    assert_eq!(ifb_name("a", "b").len(), 15);
    assert_ne!(ifb_name("net1", "c"), ifb_name("net2", "c"));
}

#[tokio::test]
async fn every_version_add_check_del_with_gos_objects() {
    for_versions(Bandwidth::options().supported_versions(), |v| async move {
        let env = Env::new().await;
        let run = |cmd| env.test(cmd, both()).version(v).run();
        let r = run(Command::Add).await.expect_result();
        // prevResult, plus the ifb.
        let ifb = env.ifb().await.expect("ifb");
        let names: Vec<&str> = r.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["cni0", "veth0", "eth0", IFB], "{v}");
        assert_eq!(r.interfaces[3].mac, Some(ifb.mac.into()), "{v}");
        assert_eq!(r.interfaces[3].sandbox, None);
        assert_eq!(r.ips, prev().ips);
        // Into the container: a tbf 1: at the root of the host veth.
        assert_eq!(env.root_tbf("veth0").await, Some(go_tbf(1_000_000, 80_000)));
        assert_eq!(go_tbf(1_000_000, 80_000), Tbf { rate: 125_000, buffer: 1_250_000, limit: 13_125 });
        // From the container: ingress qdisc + u32 redirect to the ifb, tbf on the ifb.
        assert_eq!(
            env.qdiscs("veth0").await,
            [
                ("tbf".to_owned(), "1:".to_owned(), "root".to_owned()),
                ("ingress".to_owned(), "ffff:".to_owned(), "ffff:fff1".to_owned())
            ]
        );
        let veth = env.veth().await;
        let filters = env.host.filters(veth.index, TcHandle::INGRESS_QDISC).await.unwrap();
        assert_eq!(filters.len(), 1);
        assert_eq!((filters[0].priority, filters[0].protocol), (1, ETH_P_ALL));
        let u = filters[0].u32().unwrap();
        assert_eq!(u.keys.len(), 1);
        assert_eq!((u.keys[0].mask, u.keys[0].value), (0, 0));
        assert_eq!(u.classid, Some(TcHandle::new(1, 1)));
        assert_eq!(u.actions, [TcAction::Mirred { kind: MirredKind::EgressRedirect, target: ifb.index }]);
        assert_eq!(env.root_tbf(IFB).await, Some(go_tbf(2_000_000, 160_000)));
        assert_eq!(env.qdiscs(IFB).await.len(), 1);
        // The ifb: up, the veth's MTU, queue length 0 as Go's.
        assert_eq!((ifb.kind, ifb.up, ifb.mtu, ifb.txqlen), (LinkKind::Ifb, true, 1450, 0));
        assert_eq!(env.records(), [CID]);

        let check = run(Command::Check).await;
        if v.has_check() {
            check.expect_success();
        } else {
            check.expect_error(ErrorCode::IncompatibleCniVersion);
        }
        run(Command::Del).await.expect_success();
        env.nothing_left().await;
        run(Command::Del).await.expect_success();
    })
    .await;
}

#[tokio::test]
async fn versions_before_0_3_0_are_refused() {
    let env = Env::new().await;
    for v in ["0.1.0", "0.2.0"] {
        let e = env
            .test_with(Command::Add, both(), None)
            .config_keys(json!({"cniVersion": v}))
            .run()
            .await
            .expect_error(ErrorCode::IncompatibleCniVersion);
        assert_eq!(e.msg, "incompatible CNI versions", "{v}");
    }
    assert!(env.ifb().await.is_none());
}

#[tokio::test]
async fn status_succeeds_and_changes_nothing() {
    let env = Env::new().await;
    env.test_with(Command::Status, json!({"cniVersion": "1.1.0"}), None).run().await.expect_success();
}

#[tokio::test]
async fn capability_is_used_without_top_level_keys() {
    let env = Env::new().await;
    let caps = json!({"runtimeConfig": {"bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 800_000}}});
    let r = env.test(Command::Add, caps.clone()).run().await.expect_result();
    assert_eq!(r.interfaces.len(), 3, "no egress shaping: no ifb");
    assert_eq!(env.root_tbf("veth0").await, Some(go_tbf(8_000_000, 800_000)));
    assert!(env.ifb().await.is_none());
    assert!(env.records().is_empty());
    env.test(Command::Check, caps.clone()).run().await.expect_success();
    env.test(Command::Del, caps).run().await.expect_success();
    env.nothing_left().await;
}

#[tokio::test]
async fn any_top_level_key_hides_the_capability() {
    // Go: one top-level key (even 0 or null, in any case) selects the top-level set.
    for top in [json!({"ingressRate": 0}), json!({"EgressBurst": null}), json!({"egressrate": 0, "egressburst": 0})] {
        let env = Env::new().await;
        let mut keys = json!({"runtimeConfig": {"bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 800_000}}});
        keys.as_object_mut().unwrap().extend(top.as_object().unwrap().clone());
        let r = env.test(Command::Add, keys).run().await.expect_result();
        assert_eq!(r, prev(), "{top}");
        assert_eq!(env.qdiscs("veth0").await.len(), 1, "{top}: nothing shaped");
    }
}

#[tokio::test]
async fn egress_only_and_ingress_only() {
    let env = Env::new().await;
    let egress = json!({"egressRate": 1_000_000, "egressBurst": 80_000});
    env.test(Command::Add, egress.clone()).run().await.expect_result();
    assert_eq!(
        env.qdiscs("veth0").await,
        [
            ("noqueue".to_owned(), "none".to_owned(), "root".to_owned()),
            ("ingress".to_owned(), "ffff:".to_owned(), "ffff:fff1".to_owned())
        ]
    );
    assert_eq!(env.root_tbf(IFB).await, Some(go_tbf(1_000_000, 80_000)));
    env.test(Command::Check, egress.clone()).run().await.expect_success();
    env.test(Command::Del, egress).run().await.expect_success();
    env.nothing_left().await;

    // A direction with a rate and burst of 0 is not shaped.
    let ingress = json!({"ingressRate": 1_000_000, "ingressBurst": 80_000, "egressRate": 0, "egressBurst": 0});
    let r = env.test(Command::Add, ingress.clone()).run().await.expect_result();
    assert_eq!(r, prev());
    assert!(env.ifb().await.is_none());
    env.test(Command::Del, ingress).run().await.expect_success();
    env.nothing_left().await;
}

#[tokio::test]
async fn without_limits_the_prev_result_passes_through() {
    let env = Env::new().await;
    for keys in [json!({}), json!({"ingressRate": 0, "ingressBurst": 0}), json!({"runtimeConfig": {"bandwidth": {}}})] {
        let r = env.test(Command::Add, keys.clone()).run().await.expect_result();
        assert_eq!(r, prev(), "{keys}");
        // Go panics here without a prevResult (bug B18): a clear error instead.
        let e = env.test_with(Command::Add, keys.clone(), None).run().await.expect_error(ErrorCode::Internal);
        assert_eq!(e.msg, "must be called as chained plugin");
        env.test(Command::Check, keys.clone()).run().await.expect_success();
        env.test(Command::Del, keys).run().await.expect_success();
    }
    assert_eq!(env.qdiscs("veth0").await.len(), 1);
    assert!(env.world.ops_of(OpKind::AddQdisc).is_empty());
}

#[tokio::test]
async fn limits_need_a_prev_result() {
    let env = Env::new().await;
    let e = env.test_with(Command::Add, both(), None).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "must be called as chained plugin");
    let e = env.test_with(Command::Check, both(), None).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "must be called as a chained plugin");
    // DEL needs none.
    env.test_with(Command::Del, both(), None).run().await.expect_success();
}

#[tokio::test]
async fn validation_errors_are_gos_in_every_verb() {
    let env = Env::new().await;
    let cases = [
        (json!({"ingressRate": 1000}), "if rate is set, burst must also be set"),
        (json!({"egressBurst": 1000}), "if burst is set, rate must also be set"),
        (json!({"egressRate": 1, "egressBurst": 34_359_738_360u64}), "burst cannot be more than 4GB"),
        (json!({"runtimeConfig": {"bandwidth": {"ingressBurst": 80}}}), "if burst is set, rate must also be set"),
        (
            json!({"ingressRate": -1, "ingressBurst": 80}),
            "failed to parse network configuration: json: cannot unmarshal number -1 into Go struct field PluginConf.ingressRate of type uint64",
        ),
        (
            json!({"egressRate": "1m", "egressBurst": 80}),
            "failed to parse network configuration: json: cannot unmarshal string into Go struct field PluginConf.egressRate of type uint64",
        ),
    ];
    for (keys, msg) in cases {
        for cmd in [Command::Add, Command::Check, Command::Del] {
            let e = env.test(cmd, keys.clone()).run().await.expect_error(ErrorCode::Internal);
            assert_eq!(e.msg, msg, "{cmd:?} {keys}");
        }
    }
    assert_eq!(env.qdiscs("veth0").await.len(), 1);
}

#[tokio::test]
async fn numbers_the_kernel_refuses_change_nothing() {
    let env = Env::new().await;
    // Under a byte per second: the kernel answers Go with EINVAL.
    let e = env
        .test(Command::Add, json!({"ingressRate": 7, "ingressBurst": 80_000}))
        .run()
        .await
        .expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "create qdisc: invalid argument");
    // Egress is checked before the ingress filter is installed.
    let e = env
        .test(Command::Add, json!({"ingressRate": 8000, "ingressBurst": 8000, "egressRate": 8000, "egressBurst": 7}))
        .run()
        .await
        .expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "create ifb qdisc: create qdisc: invalid argument");
    assert_eq!(e.details, None, "Go's error object has no details");
    env.nothing_left().await;
}

#[tokio::test]
async fn host_interface_errors_are_gos() {
    // Not a veth.
    let env = Env::new().await;
    env.ctr.bridge("br0").execute().await.unwrap();
    let e = env.test(Command::Add, both()).ifname("br0").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "container interface br0 has no veth peer: interface \"br0\" was not a veth interface");
    // Missing.
    let e = env.test(Command::Add, both()).ifname("eth9").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "container interface eth9 has no veth peer: could not look up \"eth9\": Link not found");
    // A veth whose peer is in the container too.
    let (_, peer) = env.ctr.veth("in0", "in1").execute().await.unwrap();
    let e = env.test(Command::Add, both()).ifname("in0").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, format!("veth peer with index {} is not in host ns", peer.index));
    // A prevResult that does not list the host veth as a host interface.
    let mut p = prev();
    p.interfaces[1].sandbox = Some(NS.into());
    let e = env.test_with(Command::Add, both(), Some(&p)).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "no veth peer of container interface found in host ns");
    let e = env.test_with(Command::Check, both(), Some(&p)).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "no veth peer of container interface found in host ns");
    let e =
        env.test_with(Command::Add, both(), Some(&CniResult::default())).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "no interfaces provided");
    // No namespace.
    let e = env.test(Command::Add, both()).netns("/var/run/netns/gone").run().await.expect_error(ErrorCode::Internal);
    assert_eq!(
        e.msg,
        "failed to open netns \"/var/run/netns/gone\": failed to Statfs \"/var/run/netns/gone\": no such file or directory"
    );
    env.nothing_left().await;
}

#[tokio::test]
async fn a_failure_at_any_step_leaves_nothing() {
    let steps = [
        (OpKind::AddQdisc, 0, "create qdisc: "),
        (OpKind::CreateIfb, 0, "adding link: "),
        (OpKind::SetTxQLen, 0, "adding link: "),
        (OpKind::SetUp, 0, "adding link: "),
        (OpKind::AddQdisc, 1, "create ingress qdisc: "),
        (OpKind::AddFilter, 0, "add filter: "),
        (OpKind::AddQdisc, 2, "create ifb qdisc: create qdisc: "),
    ];
    for (kind, skip, prefix) in steps {
        let env = Env::new().await;
        let seen = std::sync::atomic::AtomicUsize::new(0);
        env.world.fail_when(move |op| {
            (op.netns == "host" && op.kind == kind && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == skip)
                .then(|| cni_sdk::net::NetError::from_errno(libc::EPERM, "injected"))
        });
        let e = env.test(Command::Add, both()).run().await.expect_error(ErrorCode::Internal);
        assert_eq!(e.msg, format!("{prefix}operation not permitted"), "{kind:?}");
        env.world.clear_failures();
        env.nothing_left().await;
    }
}

#[tokio::test]
async fn a_second_add_fails_like_gos_and_keeps_the_first() {
    let env = Env::new().await;
    env.test(Command::Add, both()).run().await.expect_result();
    let e = env.test(Command::Add, both()).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "create qdisc: file exists");
    let egress = json!({"egressRate": 2_000_000, "egressBurst": 160_000});
    let e = env.test(Command::Add, egress).run().await.expect_error(ErrorCode::Internal);
    assert_eq!(e.msg, "adding link: file exists");
    // The first ADD's objects and record are intact.
    env.test(Command::Check, both()).run().await.expect_success();
    assert_eq!(env.records(), [CID]);
    env.test(Command::Del, both()).run().await.expect_success();
    env.nothing_left().await;
}

#[tokio::test]
async fn check_notices_drift() {
    let env = Env::new().await;
    env.test(Command::Add, both()).run().await.expect_result();
    let env = &env;
    let check = |keys: Value| async move { env.test(Command::Check, keys).run().await };
    // Different configuration than what is installed.
    for (keys, msg) in [
        (json!({"ingressRate": 2_000_000, "ingressBurst": 80_000}), "Rate doesn't match"),
        (json!({"ingressRate": 1_000_000, "ingressBurst": 800_000}), "Limit doesn't match"),
        (json!({"egressRate": 2_000_000, "egressBurst": 240_000}), "Limit doesn't match"),
    ] {
        assert_eq!(check(keys.clone()).await.expect_error(ErrorCode::Internal).msg, msg, "{keys}");
    }
    // A buffer that differs alone.
    let veth = env.veth().await;
    let mut t = go_tbf(1_000_000, 80_000);
    t.buffer += 64;
    env.host.qdisc(veth.index).root().handle(TBF_HANDLE).tbf(t).replace().await.unwrap();
    assert_eq!(check(both()).await.expect_error(ErrorCode::Internal).msg, "Buffer doesn't match");
    // The tbf gone (Go does not notice once another qdisc comes first).
    env.host.qdisc(veth.index).root().handle(TBF_HANDLE).delete().await.unwrap();
    assert_eq!(check(both()).await.expect_error(ErrorCode::Internal).msg, "Failed to find qdisc");
    env.host.qdisc(veth.index).root().handle(TBF_HANDLE).tbf(go_tbf(1_000_000, 80_000)).add().await.unwrap();
    check(both()).await.expect_success();
    // The redirect gone.
    env.host.filter(veth.index, TcHandle::INGRESS_QDISC).delete().await.unwrap();
    assert_eq!(
        check(both()).await.expect_error(ErrorCode::Internal).msg,
        format!("Failed to find filter redirecting to {IFB}")
    );
    // The ifb gone.
    env.host.delete_link_by_name(IFB).await.unwrap();
    assert_eq!(check(both()).await.expect_error(ErrorCode::Internal).msg, "get ifb device: Link not found");
}

#[tokio::test]
async fn del_is_idempotent_without_netns_or_links() {
    let env = Env::new().await;
    env.test(Command::Add, both()).run().await.expect_result();
    // No CNI_NETNS: the ifb and the record go; the veth keeps its shaping until it is deleted.
    env.test_with(Command::Del, both(), None).unset("CNI_NETNS").run().await.expect_success();
    assert!(env.ifb().await.is_none());
    assert!(env.records().is_empty());
    env.test(Command::Del, both()).unset("CNI_NETNS").run().await.expect_success();
    // A namespace that is gone, and the veth with it.
    let env = Env::new().await;
    env.test(Command::Add, both()).run().await.expect_result();
    assert!(env.world.remove_namespace("ctr"));
    env.test(Command::Del, both()).run().await.expect_success();
    assert!(env.ifb().await.is_none());
    assert!(env.records().is_empty());
    env.test(Command::Del, both()).run().await.expect_success();
}

#[tokio::test]
async fn del_leaves_foreign_shaping_alone() {
    let env = Env::new().await;
    env.test(Command::Add, json!({"egressRate": 1_000_000, "egressBurst": 80_000})).run().await.expect_result();
    // Someone else's filter next to ours, and their own root qdisc.
    let veth = env.veth().await;
    let other = env.host.ifb("other0").execute().await.unwrap();
    env.host
        .filter(veth.index, TcHandle::INGRESS_QDISC)
        .priority(7)
        .u32_match_all()
        .redirect_to(other.index)
        .add()
        .await
        .unwrap();
    env.host.qdisc(veth.index).root().handle(TcHandle::new(9, 0)).tbf(go_tbf(8000, 8000)).add().await.unwrap();
    env.test(Command::Del, json!({"ingressRate": 8000, "ingressBurst": 8000})).run().await.expect_success();
    assert!(env.ifb().await.is_none());
    let q = env.qdiscs("veth0").await;
    assert_eq!(q[0], ("tbf".to_owned(), "9:".to_owned(), "root".to_owned()), "not ours (handle 9:): kept");
    assert_eq!(q[1].0, "ingress", "a foreign filter is on it: kept");
}

/// Adds an attachment of `cid` on network `net` with its own veth pair; returns its ifb name.
async fn attach(env: &Env, net: &str, cid: &str, n: u32) -> String {
    let ns = format!("pod{n}");
    let pod = env.world.add_namespace(&ns);
    let (hv, cv) = env.host.veth(&format!("vethp{n}"), "eth0").peer_netns(&pod).execute().await.unwrap();
    env.host.set_up(hv.index).await.unwrap();
    pod.set_up(cv.index).await.unwrap();
    let mut p = CniResult::default();
    p.interfaces.push(Interface::new(hv.name.clone()));
    p.interfaces.push(Interface { sandbox: Some(format!("/var/run/netns/{ns}")), ..Interface::new("eth0") });
    PluginTest::new(&env.plugin)
        .config_keys(json!({"cniVersion": "1.0.0", "name": net, "type": "bandwidth", "dataDir": env.data.path()}))
        .config_keys(json!({"egressRate": 1_000_000, "egressBurst": 80_000}))
        .prev_result(&p)
        .container_id(cid)
        .netns(&format!("/var/run/netns/{ns}"))
        .network(&env.world)
        .run()
        .await
        .expect_result();
    ifb_name(net, cid)
}

fn gc<'a>(env: &'a Env, net: &str, valid: &[Attachment]) -> PluginTest<'a, Bandwidth> {
    let valid: Vec<Value> = valid.iter().map(|a| json!({"containerID": a.container_id, "ifname": a.ifname})).collect();
    PluginTest::new(&env.plugin)
        .command(Command::Gc)
        .config_keys(json!({
            "cniVersion": "1.1.0", "name": net, "type": "bandwidth", "dataDir": env.data.path(),
            "cni.dev/valid-attachments": valid,
        }))
        .network(&env.world)
}

#[tokio::test]
async fn gc_removes_only_stale_ifbs_of_its_network() {
    let env = Env::new().await;
    let keep = attach(&env, "net1", "c1", 1).await;
    let stale = attach(&env, "net1", "c2", 2).await;
    let other = attach(&env, "net2", "c3", 3).await;
    gc(&env, "net1", &[Attachment::new("c1", "eth0")]).run().await.expect_success();
    let names: Vec<String> = env.host.links().await.unwrap().into_iter().map(|l| l.name).collect();
    assert!(names.contains(&keep) && names.contains(&other), "{names:?}");
    assert!(!names.contains(&stale), "{names:?}");
    // Idempotent; an empty list releases everything of the network, never net2's.
    gc(&env, "net1", &[Attachment::new("c1", "eth0")]).run().await.expect_success();
    gc(&env, "net1", &[]).run().await.expect_success();
    assert!(env.host.find_link(&keep).await.unwrap().is_none());
    assert!(env.host.find_link(&other).await.unwrap().is_some());
    assert!(env.data.path().join("net2/c3/eth0").is_file());
    assert!(!env.data.path().join("net1/c1/eth0").exists());
}

#[tokio::test]
async fn gc_keeps_a_container_attached_through_another_interface() {
    let env = Env::new().await;
    let ifb = attach(&env, "net1", "c1", 1).await;
    // The record of c1/eth0 is stale, but c1 is still attached through net1/eth1, and the
    // ifb is per container and network.
    gc(&env, "net1", &[Attachment::new("c1", "eth1")]).run().await.expect_success();
    assert!(env.host.find_link(&ifb).await.unwrap().is_some());
    assert!(!env.data.path().join("net1/c1/eth0").exists());
}

#[tokio::test]
async fn gc_ignores_records_naming_other_devices() {
    let env = Env::new().await;
    let victim = env.host.ifb("bwpvictim").execute().await.unwrap();
    let dir = env.data.path().join("net1/c9");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("eth0"), r#"{"containerID":"c9","ifname":"eth0","data":{"ifb":"bwpvictim"}}"#).unwrap();
    gc(&env, "net1", &[]).run().await.expect_success();
    assert!(env.host.find_link_by_index(victim.index).await.unwrap().is_some());
    assert!(!dir.join("eth0").exists());
    // And a non-ifb link with the name of a stale ifb is not deleted either.
    let name = ifb_name("net1", "c8");
    env.host.bridge(&name).execute().await.unwrap();
    let dir = env.data.path().join("net1/c8");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("eth0"), format!(r#"{{"containerID":"c8","ifname":"eth0","data":{{"ifb":"{name}"}}}}"#))
        .unwrap();
    gc(&env, "net1", &[]).run().await.expect_success();
    assert!(env.host.find_link(&name).await.unwrap().is_some());
}

#[tokio::test]
async fn results_are_printed_in_the_config_version() {
    for_versions(Bandwidth::options().supported_versions(), |v| async move {
        let env = Env::new().await;
        for keys in [json!({}), both()] {
            let out = env.test(Command::Add, keys).version(v).run().await;
            let doc = out.document().unwrap();
            assert_eq!(doc["cniVersion"], v.as_str());
            assert_eq!(doc["ips"][0]["address"], "10.226.0.5/24");
            if v == SpecVersion::V0_3_0 || v == SpecVersion::V0_3_1 {
                assert_eq!(doc["ips"][0]["version"], "4");
            }
        }
    })
    .await;
}
