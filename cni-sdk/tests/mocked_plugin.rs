//! A veth + bridge plugin tested end to end on fake namespaces with a fake IPAM delegate: no
//! root, no binaries, no real namespaces.

use cni_sdk::testing::InProcessExec;
use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::net::{LinkKind, Net};
use cni_sdk::testing::PluginTest;
use cni_sdk::{CniResult, Command, Context, Error, Interface, IpConfig, Plugin, Result, SpecVersion};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
struct Conf {
    #[serde(default)]
    bridge: Option<String>,
}

struct VethBridge;

fn host_ifname(container_id: &str) -> String {
    format!("veth{}", &container_id[..container_id.len().min(8)])
}

impl VethBridge {
    async fn plumb(cx: &Context<Conf>, host: &Net, ctr: &Net, ipam: CniResult) -> Result<CniResult> {
        let bridge = host.bridge(cx.plugin_config().bridge.as_deref().unwrap_or("cni0")).execute().await?;
        host.set_up(bridge.index).await?;
        let (hv, cv) = host.veth(&host_ifname(cx.container_id()), cx.ifname()).peer_netns(ctr).execute().await?;
        host.set_master(hv.index, bridge.index).await?;
        host.set_up(hv.index).await?;
        ctr.set_up(cv.index).await?;
        let mut result = CniResult { dns: ipam.dns, routes: ipam.routes, ..CniResult::default() };
        result.interfaces.push(Interface { mac: Some(bridge.mac.into()), ..Interface::new(bridge.name) });
        result.interfaces.push(Interface { mac: Some(hv.mac.into()), ..Interface::new(hv.name) });
        let sandbox = cx.netns().map(|p| p.display().to_string());
        result.interfaces.push(Interface { mac: Some(cv.mac.into()), sandbox, ..Interface::new(cx.ifname()) });
        for ip in ipam.ips {
            ctr.add_address(cv.index, ip.address).await?;
            if let Some(gw) = ip.gateway {
                let default = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
                ctr.route(default.parse().expect("valid")).gateway(gw).dev(cv.index).add().await?;
            }
            result.ips.push(IpConfig { interface: Some(2), ..ip });
        }
        Ok(result)
    }
}

impl Plugin for VethBridge {
    type Config = Conf;

    async fn add(&self, cx: &Context<Conf>) -> Result<CniResult> {
        let (host, ctr) = (cx.host_net().await?, cx.container_net().await?);
        if ctr.find_link(cx.ifname()).await?.is_some() {
            return Err(Error::invalid_config(format!("interface {:?} already exists in the container", cx.ifname())));
        }
        cx.ipam()?.add_with_rollback(|ipam| async move { Self::plumb(cx, &host, &ctr, ipam).await }).await
    }

    async fn del(&self, cx: &Context<Conf>) -> Result<()> {
        cx.ipam()?.del().await?;
        if let Some(ctr) = cx.container_net_if_exists().await?
            && let Some(link) = ctr.find_link(cx.ifname()).await?
        {
            ctr.delete_link(link.index).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<Conf>) -> Result<()> {
        let link = cx.container_net().await?.link(cx.ifname()).await?;
        if !link.up {
            return Err(Error::internal(format!("{} is down", link.name)));
        }
        cx.ipam()?.check().await
    }
}

fn fake_ipam() -> InProcessExec {
    let mut r = CniResult::default();
    let gw = Some("10.250.0.1".parse().unwrap());
    r.ips.push(IpConfig { gateway: gw, ..IpConfig::new("10.250.0.2/24".parse().unwrap()) });
    InProcessExec::new().with_ipam_result("fake-ipam", r)
}

fn conf(version: SpecVersion) -> serde_json::Value {
    json!({"cniVersion": version.as_str(), "name": "fakenet", "type": "veth-bridge", "bridge": "br-test", "ipam": {"type": "fake-ipam"}})
}

#[tokio::test]
async fn add_check_del_on_fake_namespaces() {
    let world = FakeNetwork::new();
    world.add_namespace("ctr1");
    let ipam = fake_ipam();
    let run = |cmd: Command| {
        PluginTest::new(&VethBridge)
            .command(cmd)
            .config(conf(SpecVersion::V1_0_0))
            .container_id("0123456789abcdef")
            .netns("/var/run/netns/ctr1")
            .network(&world)
            .exec(ipam.clone())
            .run()
    };

    let result = run(Command::Add).await.expect_result();
    assert_eq!(
        result.interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["br-test", "veth01234567", "eth0"]
    );

    let ctr = world.snapshot("ctr1").unwrap();
    let eth0 = ctr.links.iter().find(|l| l.name == "eth0").expect("eth0 in the container");
    assert!(eth0.up);
    assert_eq!(eth0.kind, LinkKind::Veth);
    assert!(ctr.addresses.iter().any(|a| a.index == eth0.index && a.addr.to_string() == "10.250.0.2/24"));
    assert!(ctr.routes.iter().any(|r| r.dst.prefix_len() == 0 && r.gateway == Some("10.250.0.1".parse().unwrap())));

    let host = world.snapshot("host").unwrap();
    let bridge = host.links.iter().find(|l| l.name == "br-test").unwrap();
    let port = host.links.iter().find(|l| l.name == "veth01234567").unwrap();
    assert_eq!(port.master, Some(bridge.index));

    run(Command::Check).await.expect_success();
    // A second ADD for the same interface fails (spec 1.0: the interface exists).
    run(Command::Add).await.expect_error(7);

    run(Command::Del).await.expect_success();
    let ctr = world.snapshot("ctr1").unwrap();
    assert!(ctr.links.iter().all(|l| l.name != "eth0"), "container side removed");
    assert!(world.snapshot("host").unwrap().links.iter().all(|l| l.name != "veth01234567"), "peer removed with it");
    assert_eq!(
        ipam.calls().iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
        ["ADD", "CHECK", "DEL"],
        "the second ADD failed before IPAM"
    );

    // DEL is idempotent, also when the namespace is gone.
    run(Command::Del).await.expect_success();
    world.remove_namespace("ctr1");
    run(Command::Del).await.expect_success();
    // ADD into a missing namespace is an error, not a panic.
    run(Command::Add).await.expect_error(8);
}

#[tokio::test]
async fn netlink_failure_after_ipam_rolls_back() {
    let world = FakeNetwork::new();
    world.add_namespace("ctr2");
    world.fail_next(cni_sdk::net::fake::OpKind::AddAddress, cni_sdk::net::NetErrorKind::PermissionDenied);
    let ipam = fake_ipam();
    let out = PluginTest::new(&VethBridge)
        .config(conf(SpecVersion::V0_4_0))
        .netns("/var/run/netns/ctr2")
        .network(&world)
        .exec(ipam.clone())
        .run()
        .await;
    let e = out.expect_error(999);
    assert!(e.msg.to_lowercase().contains("permission"), "{e:?}");
    assert_eq!(ipam.calls().iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["ADD", "DEL"], "IPAM released");
}

#[tokio::test]
async fn every_version_prints_its_own_result_shape() {
    cni_sdk::testing::for_each_version(|v| async move {
        let world = FakeNetwork::new();
        world.add_namespace("ctr3");
        let out = PluginTest::new(&VethBridge)
            .config(conf(v))
            .netns("/var/run/netns/ctr3")
            .network(&world)
            .exec(fake_ipam())
            .run()
            .await;
        let r = out.expect_result();
        assert_eq!(r.ips[0].address.to_string(), "10.250.0.2/24");
        assert_eq!(r.interfaces.len(), if v.has_chaining() { 3 } else { 0 });
    })
    .await;
}
