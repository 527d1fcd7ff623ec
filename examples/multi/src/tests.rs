//! multi with in-process delegates (no root, no binaries).

use std::sync::{Arc, Mutex};

use cni_sdk::testing::InProcessExec;
use cni_sdk::net::fake::FakeNetwork;
use cni_sdk::testing::PluginTest;
use cni_sdk::{CniResult, Command, Context, Error, Interface, IpConfig, Plugin, PluginOptions, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Multi;

#[derive(Debug, Default, Deserialize)]
struct IfaceConf {
    addr: String,
    #[serde(default)]
    fail: bool,
}

/// A delegate that "creates" `CNI_IFNAME` with the configured address and logs its calls.
#[derive(Clone, Default)]
struct Iface {
    log: Arc<Mutex<Vec<String>>>,
}

impl Plugin for Iface {
    type Config = IfaceConf;
    async fn add(&self, cx: &Context<IfaceConf>) -> Result<CniResult> {
        self.log.lock().unwrap().push(format!("ADD {} {}", cx.config().plugin_type, cx.ifname()));
        if cx.plugin_config().fail {
            return Err(Error::internal("delegate failed on purpose"));
        }
        let mut r = CniResult::default();
        r.interfaces
            .push(Interface { sandbox: cx.netns().map(|p| p.display().to_string()), ..Interface::new(cx.ifname()) });
        r.ips.push(IpConfig { interface: Some(0), ..IpConfig::new(cx.plugin_config().addr.parse().unwrap()) });
        Ok(r)
    }
    async fn del(&self, cx: &Context<IfaceConf>) -> Result<()> {
        self.log.lock().unwrap().push(format!("DEL {} {}", cx.config().plugin_type, cx.ifname()));
        Ok(())
    }
    async fn check(&self, _: &Context<IfaceConf>) -> Result<()> {
        Ok(())
    }
}

fn exec(iface: &Iface) -> InProcessExec {
    InProcessExec::new().with_plugin("iface-a", iface.clone(), PluginOptions::new("a")).with_plugin(
        "iface-b",
        iface.clone(),
        PluginOptions::new("b"),
    )
}

fn delegates(fail_second: bool) -> Value {
    json!({"delegates": [
        {"type": "iface-a", "addr": "10.243.0.2/24"},
        {"type": "iface-b", "addr": "10.244.0.2/24", "fail": fail_second}
    ]})
}

#[tokio::test]
async fn results_are_merged_with_interface_indexes_shifted() {
    let iface = Iface::default();
    let r = PluginTest::new(&Multi).config_keys(delegates(false)).exec(exec(&iface)).run().await.expect_result();
    let names: Vec<&str> = r.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "net1"]);
    assert_eq!(r.ips.iter().map(|ip| ip.interface).collect::<Vec<_>>(), [Some(0), Some(1)]);
    assert_eq!(*iface.log.lock().unwrap(), ["ADD iface-a eth0", "ADD iface-b net1"]);

    PluginTest::new(&Multi)
        .command(Command::Del)
        .config_keys(delegates(false))
        .exec(exec(&iface))
        .run()
        .await
        .expect_success();
    assert_eq!(iface.log.lock().unwrap()[2..], ["DEL iface-b net1", "DEL iface-a eth0"], "reverse order");
}

#[tokio::test]
async fn any_failure_deletes_every_delegate() {
    let iface = Iface::default();
    let e = PluginTest::new(&Multi).config_keys(delegates(true)).exec(exec(&iface)).run().await.expect_error(999);
    assert_eq!(e.msg, "delegate 1 (\"iface-b\") failed");
    assert_eq!(
        *iface.log.lock().unwrap(),
        ["ADD iface-a eth0", "ADD iface-b net1", "DEL iface-b net1", "DEL iface-a eth0"]
    );
}

#[tokio::test]
async fn every_version_and_check_against_the_container() {
    cni_sdk::testing::for_each_version(|v| async move {
        let iface = Iface::default();
        let out = PluginTest::new(&Multi).version(v).config_keys(delegates(false)).exec(exec(&iface)).run().await;
        let r = out.expect_result();
        // 0.1.0/0.2.0 keep one address per family: the first delegate's.
        assert_eq!(r.ips[0].address.to_string(), "10.243.0.2/24");
    })
    .await;
    let world = FakeNetwork::new();
    let ctr = world.add_namespace("pod");
    let host = world.host();
    host.veth("h0", "eth0").peer_netns(&ctr).execute().await.unwrap();
    let check = |w: &FakeNetwork| {
        PluginTest::new(&Multi)
            .command(Command::Check)
            .config_keys(delegates(false))
            .netns("/var/run/netns/pod")
            .network(w)
            .exec(exec(&Iface::default()))
            .run()
    };
    let e = check(&world).await.expect_error(999);
    assert!(e.msg.contains("iface-b"), "net1 is missing: {e:?}");
    host.veth("h1", "net1").peer_netns(&ctr).execute().await.unwrap();
    check(&world).await.expect_success();
}

#[tokio::test]
async fn configuration_errors() {
    let e = PluginTest::new(&Multi).config_keys(json!({"delegates": []})).run().await.expect_error(7);
    assert!(e.msg.contains("at least one"));
    let e = PluginTest::new(&Multi).config_keys(json!({"delegates": [{"addr": "x"}]})).run().await.expect_error(7);
    assert_eq!(e.msg, "delegate 0 has no \"type\"");
    PluginTest::new(&Multi).run().await.expect_error(7);
}
