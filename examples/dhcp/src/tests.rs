//! In-process tests: the daemon's plugin on a fake network with an in-process DHCP server, and
//! the shim talking to a daemon over a real unix socket (no root).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use cni_sdk::daemon::Daemon;
use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::testing::{PluginTest, for_each_version};
use cni_sdk::{CniResult, Command, IpConfig, PluginEntry as _, Services, SpecVersion};
use dhcproto::v4::{DhcpOption, MessageType};
use serde_json::{Value, json};
use tokio::task::LocalSet;

use crate::Dhcp;
use crate::fake::{FakeServer, SERVER_IP};
use crate::flags::DaemonFlags;
use crate::port::Ports;
use crate::server::DhcpDaemon;
use crate::store::Store;

pub(crate) struct Rig {
    pub(crate) world: FakeNetwork,
    pub(crate) server: Rc<FakeServer>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) daemon: DhcpDaemon,
}

impl Rig {
    pub(crate) fn flags(dir: &Path) -> DaemonFlags {
        DaemonFlags {
            state_dir: dir.join("leases").display().to_string(),
            timeout: Duration::from_secs(1),
            resend_max: Duration::from_secs(4),
            resend_timeout: Duration::from_secs(10),
            ..DaemonFlags::default()
        }
    }

    pub(crate) fn new() -> Self {
        let world = FakeNetwork::new();
        let server = FakeServer::new();
        let dir = tempfile::tempdir().unwrap();
        let daemon = DhcpDaemon::with_ports(
            Self::flags(dir.path()),
            Services::unavailable().with_net(world.clone()),
            Ports::Fake(server.clone()),
        );
        Self { world, server, dir, daemon }
    }

    /// A daemon restarted on the same state directory and network.
    pub(crate) fn restarted(&self) -> DhcpDaemon {
        DhcpDaemon::with_ports(
            Self::flags(self.dir.path()),
            Services::unavailable().with_net(self.world.clone()),
            Ports::Fake(self.server.clone()),
        )
    }

    /// A container namespace `name` with `eth0` (down), the other end in the host.
    pub(crate) async fn container(&self, name: &str) {
        let ctr = self.world.add_namespace(name);
        self.world.host().veth(&format!("vh-{name}"), "eth0").peer_netns(&ctr).execute().await.unwrap();
    }

    pub(crate) async fn link_up(&self, ns: &str) -> bool {
        self.world.namespace(ns).unwrap().link("eth0").await.unwrap().up
    }

    pub(crate) fn store(&self) -> Store {
        Store::new(self.dir.path().join("leases"))
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("dhcp.sock")
    }

    pub(crate) fn conf(&self, version: &str, ipam: Value) -> Value {
        let mut ipam = ipam;
        ipam["type"] = json!("dhcp");
        ipam["daemonSocketPath"] = json!(self.socket());
        json!({"cniVersion": version, "name": "dnet", "type": "macvlan", "ipam": ipam})
    }

    /// The daemon's plugin, called directly.
    pub(crate) fn direct(&self, cmd: Command, id: &str, ns: &str, conf: &Value) -> PluginTest<'_, DhcpDaemon> {
        PluginTest::new(&self.daemon)
            .options(Dhcp::options())
            .network(&self.world)
            .command(cmd)
            .container_id(id)
            .netns(&format!("/var/run/netns/{ns}"))
            .config(conf.clone())
    }
}

fn addr(r: &CniResult) -> String {
    r.ips[0].address.to_string()
}

#[tokio::test]
async fn add_check_del_through_the_shim_and_the_daemon() {
    let rig = Rig::new();
    rig.container("ctr1").await;
    let socket = rig.socket();
    let services = Services::unavailable().with_net(rig.world.clone());
    let daemon = Daemon::builder(rig.daemon.clone())
        .options(Dhcp::options())
        .socket(&socket)
        .services(services)
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = daemon.serve(async move {
        let _ = stopped.await;
    });
    let shim = |cmd: Command, conf: &Value| {
        PluginTest::new(&Dhcp)
            .options(Dhcp::options())
            .command(cmd)
            .container_id("c1")
            .netns("/var/run/netns/ctr1")
            .config(conf.clone())
    };
    let test = async {
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let conf = rig.conf("1.0.0", json!({}));
        let out = shim(Command::Add, &conf).run().await;
        let r = out.expect_result();
        assert_eq!(addr(&r), "10.219.0.10/24");
        assert_eq!(r.ips[0].gateway, Some(SERVER_IP.into()));
        assert_eq!(r.ips[0].interface, None);
        assert!(r.interfaces.is_empty());
        assert_eq!(r.routes.len(), 1, "the default route via the router");
        assert!(rig.link_up("ctr1").await, "the daemon set eth0 up");
        let seen = rig.server.seen();
        assert_eq!(rig.server.kinds(), vec![MessageType::Discover, MessageType::Request]);
        assert_eq!(seen[0].client_id, b"\0c1/dnet/eth0".to_vec(), "Go's client identifier");
        assert_eq!(seen[0].params, vec![3, 1]);
        assert_eq!((seen[1].requested, seen[1].server_id), (Some(Ipv4Addr::new(10, 219, 0, 10)), Some(SERVER_IP)));
        assert_eq!(rig.store().load_all().unwrap().len(), 1, "the lease is on disk");

        // A second ADD returns the lease it holds without asking the server.
        let again = shim(Command::Add, &conf).run().await.expect_result();
        assert_eq!(addr(&again), "10.219.0.10/24");
        assert_eq!(rig.server.kinds().len(), 2);

        // CHECK does not allocate; it compares with prevResult.
        shim(Command::Check, &conf).prev_result(&r).run().await.expect_success();
        let mut other = CniResult::default();
        other.ips.push(IpConfig::new("10.219.0.99/24".parse().unwrap()));
        let e = shim(Command::Check, &conf).prev_result(&other).run().await.expect_error(999);
        assert_eq!(
            e.msg,
            "error calling DHCP.Allocate: the DHCP lease 10.219.0.10/24 for \"c1/dnet/eth0\" is not in prevResult"
        );
        assert_eq!(rig.server.kinds().len(), 2, "CHECK sent nothing");

        // STATUS: the daemon answers.
        shim(Command::Status, &rig.conf("1.1.0", json!({}))).run().await.expect_success();

        // DEL releases, forgets, and is idempotent.
        shim(Command::Del, &conf).run().await.expect_success();
        let release = rig.server.seen().last().cloned().unwrap();
        assert_eq!(release.kind, MessageType::Release);
        assert_eq!((release.ciaddr, release.server_id), (Ipv4Addr::new(10, 219, 0, 10), Some(SERVER_IP)));
        assert!(rig.server.bound().is_empty(), "the server freed the address");
        assert!(rig.store().load_all().unwrap().is_empty());
        assert!(rig.daemon.lease_keys().is_empty());
        shim(Command::Del, &conf).run().await.expect_success();
        let e = shim(Command::Check, &conf).run().await.expect_error(999);
        assert_eq!(e.msg, "error calling DHCP.Allocate: no DHCP lease is held for \"c1/dnet/eth0\"");
        let _ = stop.send(());
    };
    let local = LocalSet::new();
    let (served, ()) = local.run_until(async { tokio::join!(serve, test) }).await;
    served.unwrap();
}

#[tokio::test]
async fn shim_without_a_daemon_uses_gos_texts() {
    let rig = Rig::new();
    let conf = rig.conf("1.1.0", json!({}));
    let run = |cmd: Command, netns: &str| {
        PluginTest::new(&Dhcp).options(Dhcp::options()).command(cmd).netns(netns).config(conf.clone()).run()
    };
    let e = run(Command::Add, "/var/run/netns/ctr1").await.expect_error(999);
    assert_eq!(
        e.msg,
        format!("error dialing DHCP daemon: dial unix {}: connect: no such file or directory", rig.socket().display())
    );
    let e = run(Command::Status, "").await.expect_error(50);
    assert!(e.msg.starts_with("error dialing DHCP daemon"), "{}", e.msg);
    run(Command::Del, "/var/run/netns/gone-already").await.expect_success();
    run(Command::Del, "").await.expect_success();
    let e = run(Command::Del, "/").await.expect_error(999);
    assert!(e.msg.starts_with("error dialing DHCP daemon"), "a live namespace: DEL must reach the daemon");

    let no_ipam = json!({"cniVersion": "1.0.0", "name": "dnet", "type": "macvlan"});
    let e = PluginTest::new(&Dhcp).config(no_ipam).run().await.expect_error(7);
    assert_eq!(e.msg, "IPAM config missing 'ipam' key", "Go's shim crashes here");
    let bad = json!({"cniVersion": "1.0.0", "name": "dnet", "type": "macvlan", "ipam": {"type": "dhcp", "daemonSocketPath": 7}});
    let e = PluginTest::new(&Dhcp).config(bad).run().await.expect_error(999);
    assert!(e.msg.starts_with("error obtaining socketPath: error parsing socket path conf: "), "{}", e.msg);
}

#[tokio::test]
async fn every_version_and_the_options_sent() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            rig.server.add_option(DhcpOption::ClasslessStaticRoute(vec![
                ("10.219.99.0/24".parse().unwrap(), Ipv4Addr::new(10, 219, 0, 3)),
                ("10.219.98.0/24".parse().unwrap(), Ipv4Addr::UNSPECIFIED),
            ]));
            let mut n = 0;
            for v in SpecVersion::ALL {
                n += 1;
                let ns = format!("v{n}");
                rig.container(&ns).await;
                let conf = rig.conf(
                    v.as_str(),
                    json!({
                        "provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"}, {"option": "60", "value": "cni-rs"}],
                        "request": [{"option": "121"}],
                        "priority": 7
                    }),
                );
                let out = rig
                    .direct(Command::Add, &format!("c{n}"), &ns, &conf)
                    .cni_args("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0")
                    .run()
                    .await;
                let r = out.expect_result();
                assert!(r.ips[0].address.to_string().starts_with("10.219.0."), "{v}");
                let routes: Vec<String> = r.routes.iter().map(|r| format!("{} {:?}", r.dst, r.gw)).collect();
                assert_eq!(
                    routes,
                    vec!["10.219.99.0/24 Some(10.219.0.3)", "10.219.98.0/24 Some(0.0.0.0)"],
                    "option 121 replaces the default route ({v})"
                );
                if v == SpecVersion::V1_1_0 {
                    assert!(r.routes.iter().all(|r| r.priority == Some(7)), "priority on every route");
                    assert_eq!(r.routes[1].scope, Some(253), "router 0.0.0.0: scope link");
                }
            }
            let discover = &rig.server.seen()[0];
            assert_eq!(discover.params, vec![121, 3, 1]);
            assert!(discover.options.contains(&12) && discover.options.contains(&60), "{:?}", discover.options);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_is_no_more_tries_and_leaves_nothing() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            rig.container("ctr1").await;
            rig.server.set_silent(true);
            let conf = rig.conf("1.0.0", json!({}));
            let e = rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_error(999);
            assert_eq!(e.msg, "no more tries");
            assert!(e.details.unwrap().contains("no DHCPOFFER received within 1s"));
            assert!(rig.server.kinds().iter().all(|k| *k == MessageType::Discover) && rig.server.kinds().len() >= 3);
            assert!(!rig.link_up("ctr1").await, "the link it set up is down again");
            assert!(rig.store().load_all().unwrap().is_empty());
            assert!(rig.daemon.lease_keys().is_empty());

            rig.server.set_silent(false);
            rig.server.set_nak(true);
            let e = rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_error(999);
            assert_eq!(e.msg, "no more tries");
            assert!(e.details.unwrap().contains("DHCP server NACK'd own offer"));
            assert!(rig.store().load_all().unwrap().is_empty());
            rig.server.set_nak(false);

            let e = rig.direct(Command::Add, "c1", "gone", &conf).run().await.expect_error(999);
            assert_eq!(e.msg, "failed to Statfs \"/var/run/netns/gone\": no such file or directory");
            let e = rig.direct(Command::Add, "c1", "ctr1", &conf).ifname("eth9").run().await.expect_error(999);
            assert_eq!(e.msg, "error looking up \"eth9\": Link not found");
            let bad = rig.conf("1.0.0", json!({"request": [{"option": "nope"}]}));
            let e = rig.direct(Command::Add, "c1", "ctr1", &bad).run().await.expect_error(999);
            assert!(e.msg.starts_with("Can not parse option \"nope\""), "{}", e.msg);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn renewal_at_t1_and_expiry_sets_the_link_down() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            rig.container("ctr1").await;
            rig.server.set_times(60, 10, 20);
            let conf = rig.conf("1.0.0", json!({}));
            rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_result();
            let granted = rig.store().load_all().unwrap()[0].lease.granted_at;
            tokio::time::sleep(Duration::from_secs(11)).await;
            let renew = rig.server.seen().last().cloned().unwrap();
            assert_eq!(renew.kind, MessageType::Request);
            assert_eq!(
                (renew.ciaddr, renew.src, renew.dst),
                (Ipv4Addr::new(10, 219, 0, 10), Ipv4Addr::new(10, 219, 0, 10), SERVER_IP)
            );
            assert_eq!((renew.requested, renew.server_id), (None, None), "RFC 2131 renewal: ciaddr only");
            let renewed = rig.store().load_all().unwrap()[0].lease.granted_at;
            assert!(renewed >= granted + 10, "the renewed lease is on disk");

            // The server goes away: renewing until T2, rebinding (broadcast) until expiry, then down.
            rig.server.set_silent(true);
            tokio::time::sleep(Duration::from_secs(15)).await;
            assert!(
                rig.server.seen().iter().any(|s| s.kind == MessageType::Request && s.dst == Ipv4Addr::BROADCAST),
                "rebinding"
            );
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert!(!rig.link_up("ctr1").await, "expired: the interface is down");
            assert!(rig.daemon.lease_keys().is_empty());
            assert!(rig.store().load_all().unwrap().is_empty());
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_daemon_renews_and_releases() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            rig.container("ctr1").await;
            rig.server.set_times(60, 10, 20);
            let conf = rig.conf("1.0.0", json!({}));
            rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_result();
            rig.daemon.stop();
            let restarted = rig.restarted();
            assert_eq!(restarted.restore().await.unwrap(), 1);
            assert_eq!(restarted.lease_keys(), vec!["c1/dnet/eth0".to_owned()]);
            let before = rig.server.seen().len();
            tokio::time::sleep(Duration::from_secs(11)).await;
            let renewals: Vec<_> = rig.server.seen()[before..].iter().map(|s| (s.kind, s.ciaddr)).collect();
            assert_eq!(
                renewals,
                vec![(MessageType::Request, Ipv4Addr::new(10, 219, 0, 10))],
                "the restarted daemon renewed"
            );
            let del = PluginTest::new(&restarted)
                .network(&rig.world)
                .command(Command::Del)
                .container_id("c1")
                .unset("CNI_NETNS")
                .config(conf.clone());
            del.run().await.expect_success();
            assert_eq!(rig.server.seen().last().unwrap().kind, MessageType::Release, "released without CNI_NETNS");
            assert!(rig.store().load_all().unwrap().is_empty());

            // A lease whose namespace vanished while the daemon was down is dropped at start.
            rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_result();
            restarted.stop();
            rig.world.remove_namespace("ctr1");
            let third = rig.restarted();
            assert_eq!(third.restore().await.unwrap(), 0);
            assert!(rig.store().load_all().unwrap().is_empty());
        })
        .await;
}

#[tokio::test]
async fn gc_releases_only_invalid_attachments_of_this_network() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            for ns in ["a", "b", "c"] {
                rig.container(ns).await;
            }
            let conf = rig.conf("1.1.0", json!({}));
            let mut other = conf.clone();
            other["name"] = json!("othernet");
            rig.direct(Command::Add, "ca", "a", &conf).run().await.expect_result();
            rig.direct(Command::Add, "cb", "b", &conf).run().await.expect_result();
            rig.direct(Command::Add, "cc", "c", &other).run().await.expect_result();
            let mut gc = conf.clone();
            gc["cni.dev/valid-attachments"] = json!([{"containerID": "ca", "ifname": "eth0"}]);
            rig.direct(Command::Gc, "", "a", &gc)
                .unset("CNI_CONTAINERID")
                .unset("CNI_NETNS")
                .unset("CNI_IFNAME")
                .run()
                .await
                .expect_success();
            assert_eq!(rig.daemon.lease_keys(), vec!["ca/dnet/eth0".to_owned(), "cc/othernet/eth0".to_owned()]);
            let releases: Vec<_> = rig.server.seen().into_iter().filter(|s| s.kind == MessageType::Release).collect();
            assert_eq!(releases.len(), 1);
            assert_eq!(releases[0].client_id, b"\0cb/dnet/eth0".to_vec());
            // An empty list releases everything of the network.
            gc["cni.dev/valid-attachments"] = json!([]);
            rig.direct(Command::Gc, "", "a", &gc)
                .unset("CNI_CONTAINERID")
                .unset("CNI_NETNS")
                .unset("CNI_IFNAME")
                .run()
                .await
                .expect_success();
            assert_eq!(rig.daemon.lease_keys(), vec!["cc/othernet/eth0".to_owned()]);
            assert_eq!(rig.store().load_all().unwrap().len(), 1);
        })
        .await;
}

#[tokio::test]
async fn versions_are_all_seven() {
    for_each_version(|v| async move {
        let out = PluginTest::new(&Dhcp).options(Dhcp::options()).command(Command::Version).version(v).run().await;
        assert!(out.is_success(), "{v}");
        assert_eq!(out.document().unwrap()["supportedVersions"].as_array().unwrap().len(), 7);
    })
    .await;
}
