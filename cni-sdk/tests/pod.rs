//! The pod layer (`runtime::PodNetworks`) and the runtime's typed errors, deadlines and
//! cancellation, against in-process plugins: no root, no binaries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_sdk::runtime::{CancelToken, CniRuntime, NetworkList, NetworkStatus, PodNetworks, PodOptions};
use cni_sdk::testing::{InProcessCall, InProcessExec};
use cni_sdk::types::{Bandwidth, PortMapping};
use cni_sdk::{Attachment, CniResult, Command, Error, ErrorCode, ErrorKind, Interface, IpConfig};
use serde_json::{Value, json};

/// A fake main plugin: on ADD, one interface named `CNI_IFNAME` in `CNI_NETNS` with the
/// configuration's `ip` (and gateway `gw`); fails the verb named by `failOn` with `failCode`.
fn addr_plugin(call: &InProcessCall) -> cni_sdk::Result<Option<CniResult>> {
    let conf = call.config();
    let verb = call.command().map(Command::as_str).unwrap_or_default();
    if conf["failOn"].as_str() == Some(verb) {
        let code = conf["failCode"].as_u64().unwrap_or(999) as u32;
        return Err(Error::new(code, format!("{verb} refused")).with_details(format!("by {}", conf["name"])));
    }
    if call.command() != Some(Command::Add) {
        return Ok(None);
    }
    let mut r = CniResult::default();
    r.interfaces.push(Interface { sandbox: Some(call.netns().to_owned()), ..Interface::new(call.ifname()) });
    let mut ip = IpConfig::new(conf["ip"].as_str().unwrap().parse().unwrap());
    ip.interface = Some(0);
    ip.gateway = conf["gw"].as_str().map(|g| g.parse().unwrap());
    r.ips.push(ip);
    Ok(Some(r))
}

/// A chained plugin that passes `prevResult` through.
fn pass_plugin(call: &InProcessCall) -> cni_sdk::Result<Option<CniResult>> {
    match call.command() {
        Some(Command::Add) => {
            let conf = call.config();
            Ok(Some(CniResult::from_value(conf["prevResult"].clone(), conf["cniVersion"].as_str().unwrap()).unwrap()))
        }
        _ => Ok(None),
    }
}

fn plugins() -> InProcessExec {
    InProcessExec::new().with_call("addr", addr_plugin).with_call("pass", pass_plugin).with_call("loopback", |call| {
        let mut r = CniResult::default();
        if call.command() == Some(Command::Add) {
            r.interfaces.push(Interface { sandbox: Some(call.netns().to_owned()), ..Interface::new("lo") });
            let mut ip = IpConfig::new("127.0.0.1/8".parse().unwrap());
            ip.interface = Some(0);
            r.ips.push(ip);
            return Ok(Some(r));
        }
        Ok(None)
    })
}

fn list(doc: Value) -> NetworkList {
    NetworkList::from_bytes(doc.to_string().as_bytes()).unwrap()
}

/// Network `name` with the fake main plugin at `ip`, then `pass` declaring `portMappings`.
fn net(name: &str, ip: &str, extra: Value) -> NetworkList {
    let mut main = json!({"type": "addr", "ip": ip, "gw": "10.218.0.1"});
    if let (Some(m), Some(e)) = (main.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    list(
        json!({"cniVersion": "1.0.0", "name": name, "plugins": [main, {"type": "pass", "capabilities": {"portMappings": true}}]}),
    )
}

fn runtime(exec: InProcessExec, cache: &std::path::Path) -> CniRuntime {
    CniRuntime::builder().exec(exec).cache_dir(cache).build().unwrap()
}

fn two_networks(exec: InProcessExec, cache: &std::path::Path) -> PodNetworks {
    PodNetworks::builder(runtime(exec, cache))
        .loopback()
        .network(net("front", "10.218.1.2/24", json!({})))
        .network(net("back", "10.218.2.2/24", json!({})))
        .build()
        .unwrap()
}

fn opts() -> PodOptions {
    PodOptions::new("pod-1", "/var/run/netns/pod-1")
}

/// `(plugin, verb, ifname)` of every recorded call.
fn trace(exec: &InProcessExec) -> Vec<(String, String, String)> {
    exec.requests()
        .iter()
        .map(|c| (c.plugin_type().to_owned(), c.env("CNI_COMMAND").unwrap().to_owned(), c.ifname().to_owned()))
        .collect()
}

#[tokio::test]
async fn setup_names_interfaces_and_keys_the_result_by_them() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins();
    let pod = two_networks(exec.clone(), cache.path());
    let names: Vec<(&str, &str)> = pod.networks().iter().map(|n| (n.name(), n.ifname())).collect();
    assert_eq!(names, [("cni-loopback", "lo"), ("front", "eth0"), ("back", "eth1")]);

    let r = pod.setup(&opts()).await.unwrap();
    let keys: Vec<&str> = r.interfaces.keys().map(String::as_str).collect();
    assert_eq!(keys, ["eth0", "eth1", "lo"]);
    let eth1 = &r.interfaces["eth1"];
    assert_eq!((eth1.network.as_str(), eth1.sandbox.as_deref()), ("back", Some("/var/run/netns/pod-1")));
    assert_eq!(eth1.ips.len(), 1);
    assert_eq!(eth1.ips[0].address.to_string(), "10.218.2.2/24");
    assert_eq!(eth1.ips[0].gateway.unwrap().to_string(), "10.218.0.1");
    assert_eq!(r.interfaces["lo"].ips[0].address.to_string(), "127.0.0.1/8");
    // The raw per-network results are kept, in the pod's order.
    let raw: Vec<(&str, &str)> = r.networks.iter().map(|n| (n.network.as_str(), n.ifname.as_str())).collect();
    assert_eq!(raw, [("cni-loopback", "lo"), ("front", "eth0"), ("back", "eth1")]);
    assert_eq!(r.networks[1].raw["ips"][0]["address"], "10.218.1.2/24");
    assert_eq!(r.networks[1].result.interfaces[0].name, "eth0");
    // One cache entry per attachment.
    for f in ["cni-loopback-pod-1-lo", "front-pod-1-eth0", "back-pod-1-eth1"] {
        assert!(cache.path().join("results").join(f).is_file(), "{f}");
    }

    // Another prefix, and a name of our own choosing.
    let pod = PodNetworks::builder(runtime(exec, cache.path()))
        .interface_prefix("net")
        .network(net("a", "10.218.3.2/24", json!({})))
        .network_with_ifname(net("b", "10.218.4.2/24", json!({})), "data0")
        .network(net("c", "10.218.5.2/24", json!({})))
        .build()
        .unwrap();
    let names: Vec<&str> = pod.networks().iter().map(|n| n.ifname()).collect();
    assert_eq!(names, ["net0", "data0", "net1"]);
}

#[tokio::test]
async fn builder_rejects_what_cannot_work() {
    let cache = tempfile::tempdir().unwrap();
    let cni = runtime(plugins(), cache.path());
    let e = PodNetworks::builder(cni.clone()).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let e = PodNetworks::builder(cni.clone())
        .network_with_ifname(net("a", "10.218.1.2/24", json!({})), "eth0")
        .network(net("b", "10.218.2.2/24", json!({})))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.msg().contains("\"eth0\" is used by two networks"), "{e}");
    let e = PodNetworks::builder(cni.clone())
        .network_with_ifname(net("a", "10.218.1.2/24", json!({})), "way-too-long-name")
        .build()
        .unwrap_err();
    assert_eq!((e.kind(), e.network()), (ErrorKind::InvalidConfig, Some("a")));
    let pod = PodNetworks::builder(cni).network(net("a", "10.218.1.2/24", json!({}))).build().unwrap();
    let e = pod.setup(&opts().networks(["zzz"])).await.unwrap_err();
    assert_eq!((e.kind(), e.network()), (ErrorKind::InvalidArgument, Some("zzz")));
    let e = pod.setup(&opts().arg("K", "a;b")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = pod.setup(&PodOptions::new("bad id!", "/x")).await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::InvalidEnvironment, ErrorCode::InvalidEnvironmentVariables));
}

#[tokio::test]
async fn setup_runs_networks_concurrently_or_serially() {
    // Every ADD of `gate` waits until two ADDs are in flight at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let exec = plugins().with_async("gate", move |call| {
        let barrier = barrier.clone();
        async move {
            if call.command() == Some(Command::Add) {
                barrier.wait().await;
            }
            pass_plugin(&call)
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let gated = |name: &str, ip: &str| {
        list(json!({"cniVersion": "1.0.0", "name": name, "plugins": [{"type": "addr", "ip": ip}, {"type": "gate"}]}))
    };
    let pod = PodNetworks::builder(runtime(exec.clone(), cache.path()))
        .network(gated("n1", "10.218.1.2/24"))
        .network(gated("n2", "10.218.2.2/24"))
        .build()
        .unwrap();
    // Concurrently, both reach the gate together.
    pod.setup(&opts().timeout(Duration::from_secs(5))).await.unwrap();
    pod.remove(&opts()).await.unwrap();

    // Serially, the first waits at the gate for a second that never comes: the call's deadline
    // stops it, its in-process handler is aborted, and nothing is left attached.
    exec.clear_requests();
    let started = Instant::now();
    let e = pod.setup(&opts().serial(true).timeout(Duration::from_millis(300))).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((e.kind(), e.network(), e.plugin_type()), (ErrorKind::Timeout, Some("n1"), Some("gate")));
    assert!(e.plugin_error().is_none(), "the runtime gave up; the plugin printed nothing");
    let gate_add = exec.requests().into_iter().find(|c| c.plugin_type() == "gate").unwrap();
    assert!(gate_add.is_cancelled(), "the handler was told");
    // n2 was never started; n1 was rolled back (DEL in reverse plugin order).
    let t = trace(&exec);
    assert!(!t.iter().any(|c| c.2 == "eth1"), "{t:?}");
    let dels: Vec<&str> = t.iter().filter(|c| c.1 == "DEL").map(|c| c.0.as_str()).collect();
    assert_eq!(dels, ["gate", "addr"]);
    assert!(e.rollback_failures().is_empty());
}

#[tokio::test]
async fn failed_setup_rolls_back_everything_it_started() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins();
    let pod = PodNetworks::builder(runtime(exec.clone(), cache.path()))
        .loopback()
        .network(net("front", "10.218.1.2/24", json!({})))
        .network(net("back", "10.218.2.2/24", json!({"failOn": "ADD", "failCode": 11})))
        .build()
        .unwrap();
    let e = pod.setup(&opts()).await.unwrap_err();
    // The plugin's own error, kept apart from the runtime's wording.
    assert_eq!((e.kind(), e.code()), (ErrorKind::TryAgainLater, ErrorCode::TryAgainLater));
    assert_eq!((e.network(), e.plugin_type(), e.verb()), (Some("back"), Some("addr"), Some(Command::Add)));
    assert_eq!((e.msg(), e.details()), ("ADD refused", Some("by \"back\"")));
    assert_eq!(e.attachment(), Some(&Attachment::new("pod-1", "eth1")));
    assert_eq!(e.to_string(), "plugin type=\"addr\" failed (add): ADD refused; by \"back\"");
    assert_eq!(e.failures().count(), 1);
    // Every network was started concurrently, so every one gets its DEL, the failed one too.
    let t = trace(&exec);
    for ifname in ["lo", "eth0", "eth1"] {
        assert!(t.iter().any(|c| c.1 == "DEL" && c.2 == ifname), "DEL {ifname}: {t:?}");
    }
    let left = std::fs::read_dir(cache.path().join("results")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no cache entry left");

    // A rollback that fails too is reported, not hidden.
    let pod = PodNetworks::builder(runtime(plugins(), cache.path()))
        .network(net("front", "10.218.1.2/24", json!({"failOn": "DEL", "failCode": 120})))
        .network(net("back", "10.218.2.2/24", json!({"failOn": "ADD"})))
        .build()
        .unwrap();
    let e = pod.setup(&opts().serial(true)).await.unwrap_err();
    assert_eq!((e.network(), e.code()), (Some("back"), ErrorCode::Internal));
    let rb: Vec<(Option<&str>, Option<Command>, ErrorCode)> =
        e.rollback_failures().iter().map(|r| (r.network(), r.verb(), r.code())).collect();
    assert_eq!(rb, [(Some("front"), Some(Command::Del), ErrorCode::Plugin(120))]);
    assert!(e.to_string().contains("; rollback: plugin type=\"addr\" failed (delete): DEL refused"), "{e}");
}

#[tokio::test]
async fn remove_continues_past_failures_and_reports_all() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins();
    let pod = PodNetworks::builder(runtime(exec.clone(), cache.path()))
        .network(net("a", "10.218.1.2/24", json!({"failOn": "DEL", "failCode": 120})))
        .network(net("b", "10.218.2.2/24", json!({})))
        .network(net("c", "10.218.3.2/24", json!({"failOn": "DEL", "failCode": 121})))
        .build()
        .unwrap();
    for serial in [false, true] {
        pod.setup(&opts()).await.unwrap();
        exec.clear_requests();
        let e = pod.remove(&opts().serial(serial)).await.unwrap_err();
        let all: Vec<(Option<&str>, ErrorCode)> = e.failures().map(|f| (f.network(), f.code())).collect();
        let expected = if serial {
            // Serially in reverse order.
            [(Some("c"), ErrorCode::Plugin(121)), (Some("a"), ErrorCode::Plugin(120))]
        } else {
            [(Some("a"), ErrorCode::Plugin(120)), (Some("c"), ErrorCode::Plugin(121))]
        };
        assert_eq!(all, expected, "serial={serial}");
        // b was removed anyway, and its cache entry with it; a and c keep theirs for a retry.
        assert!(trace(&exec).iter().any(|c| c.1 == "DEL" && c.2 == "eth1"));
        assert!(!cache.path().join("results/b-pod-1-eth1").exists());
        assert!(cache.path().join("results/a-pod-1-eth0").exists());
        let j = e.to_json_all();
        assert_eq!(j["errors"].as_array().unwrap().len(), 2);
        assert_eq!(j["errors"][0]["verb"], "DEL");
    }
}

#[tokio::test]
async fn typed_capabilities_reach_only_plugins_that_declare_them() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins();
    let pod = PodNetworks::builder(runtime(exec.clone(), cache.path()))
        .network(list(json!({"cniVersion": "1.0.0", "name": "caps", "plugins": [
            {"type": "addr", "ip": "10.218.1.2/24", "capabilities": {"bandwidth": true, "mac": false}},
            {"type": "pass", "capabilities": {"portMappings": true, "ips": true}}
        ]})))
        .build()
        .unwrap();
    let o = opts()
        .kubernetes_pod("default", "web", "uid-1")
        .port_mapping(PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None })
        .bandwidth(Bandwidth { ingress_rate: Some(1000), ..Bandwidth::default() })
        .mac("c2:11:22:33:44:55".parse().unwrap())
        .cgroup_path("/kubepods/pod-1")
        .capability("custom", json!({"x": 1}));
    pod.setup(&o).await.unwrap();
    let calls = exec.requests();
    let addr = calls.iter().find(|c| c.plugin_type() == "addr").unwrap().config();
    let pass = calls.iter().find(|c| c.plugin_type() == "pass").unwrap().config();
    assert_eq!(addr["runtimeConfig"], json!({"bandwidth": {"ingressRate": 1000}}), "mac is declared false");
    assert_eq!(
        pass["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}),
        "ips declared but not given"
    );
    // K8S_* args in CNI_ARGS, on every plugin.
    let args = calls[0].args().unwrap();
    assert_eq!(args.k8s_pod_name(), Some("web"));
    assert_eq!(args.k8s_pod_infra_container_id(), Some("pod-1"));
    assert_eq!(args.get("IgnoreUnknown"), Some("1"));
    // The cache keeps them for DEL and GC.
    let rec: Value =
        serde_json::from_slice(&std::fs::read(cache.path().join("results/caps-pod-1-eth0")).unwrap()).unwrap();
    assert_eq!(rec["capabilityArgs"]["cgroupPath"], "/kubepods/pod-1");
    assert_eq!(rec["capabilityArgs"]["custom"], json!({"x": 1}));
}

#[tokio::test]
async fn check_and_selected_networks() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins();
    let pod = PodNetworks::builder(runtime(exec.clone(), cache.path()))
        .network(net("a", "10.218.1.2/24", json!({"failOn": "CHECK", "failCode": 130})))
        .network(net("b", "10.218.2.2/24", json!({"failOn": "CHECK", "failCode": 131})))
        .build()
        .unwrap();
    let r = pod.setup(&opts().networks(["b"])).await.unwrap();
    assert_eq!(r.networks.len(), 1);
    assert_eq!(r.networks[0].ifname, "eth1", "a selected network keeps its interface name");
    pod.setup(&opts().networks(["a"])).await.unwrap();
    let e = pod.check(&opts()).await.unwrap_err();
    assert_eq!(e.failures().count(), 2, "concurrent CHECK reports every failure");
    let e = pod.check(&opts().serial(true)).await.unwrap_err();
    assert_eq!((e.failures().count(), e.network()), (1, Some("a")), "serial CHECK stops at the first");
    assert_eq!(e.verb(), Some(Command::Check));
}

#[tokio::test]
async fn cancellation_stops_plugins_and_still_rolls_back() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins().with_async("slow", |call| async move {
        if call.command() == Some(Command::Add) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        pass_plugin(&call)
    });
    let slow = list(
        json!({"cniVersion": "1.0.0", "name": "slow", "plugins": [{"type": "addr", "ip": "10.218.1.2/24"}, {"type": "slow"}]}),
    );
    let pod = PodNetworks::builder(runtime(exec.clone(), cache.path())).network(slow).build().unwrap();
    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            token.cancel();
        })
    };
    let started = Instant::now();
    let e = pod.setup(&opts().cancel(token)).await.unwrap_err();
    canceller.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!((e.kind(), e.plugin_type()), (ErrorKind::Cancelled, Some("slow")));
    let slow_add = exec.requests().into_iter().find(|c| c.plugin_type() == "slow").unwrap();
    assert!(slow_add.is_cancelled(), "the in-process handler was cancelled");
    assert!(trace(&exec).iter().any(|c| c.0 == "addr" && c.1 == "DEL"), "rolled back despite the cancellation");
}

#[tokio::test]
async fn runtime_timeout_is_not_a_plugins_try_again_later() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins().with_call("sleepy", |call| {
        // A blocking handler cannot be stopped, but it can see that it was given up on.
        while !call.is_cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Too late: the runtime no longer listens.
        std::thread::sleep(Duration::from_millis(100));
        Ok(None)
    });
    let cni =
        CniRuntime::builder().exec(exec).cache_dir(cache.path()).timeout(Duration::from_millis(100)).build().unwrap();
    let sleepy = list(json!({"cniVersion": "1.0.0", "name": "z", "plugins": [{"type": "sleepy"}]}));
    let e = cni.add(&sleepy, &cni_sdk::runtime::RuntimeConf::new("c", "/x", "eth0")).await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::Timeout, ErrorCode::TryAgainLater));
    assert!(e.plugin_error().is_none());
    let busy = net("busy", "10.218.1.2/24", json!({"failOn": "ADD", "failCode": 11}));
    let e = cni.add(&busy, &cni_sdk::runtime::RuntimeConf::new("c", "/x", "eth0")).await.unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::TryAgainLater, ErrorCode::TryAgainLater));
    assert!(e.plugin_error().is_some());
    // A deadline that already passed runs nothing.
    let e = cni
        .with_deadline(Instant::now())
        .add(&busy, &cni_sdk::runtime::RuntimeConf::new("c", "/x", "eth0"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn status_tells_skipped_from_ready_and_keeps_the_plugin() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins();
    let cni = runtime(exec.clone(), cache.path());
    let old = net("old", "10.218.1.2/24", json!({}));
    assert_eq!(cni.status(&old).await.unwrap(), NetworkStatus::Skipped { version: "1.0.0".into() });
    assert_eq!(cni.status(&old).await.unwrap().to_string(), "skipped (version 1.0.0 < 1.1.0)");
    assert!(exec.requests().is_empty());
    let new = list(json!({"cniVersion": "1.1.0", "name": "new", "plugins": [{"type": "addr", "ip": "10.218.1.2/24"}]}));
    assert_eq!(cni.status(&new).await.unwrap(), NetworkStatus::Ready);
    let down = list(
        json!({"cniVersion": "1.1.0", "name": "down", "plugins": [{"type": "addr", "ip": "10.218.1.2/24", "failOn": "STATUS", "failCode": 50}]}),
    );
    let e = cni.status(&down).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.code(), e.plugin_type(), e.verb()),
        (ErrorKind::NotAvailable, ErrorCode::PluginNotAvailable, Some("addr"), Some(Command::Status))
    );
    assert_eq!(e.to_string(), "STATUS refused; by \"down\"", "libcni returns STATUS errors unwrapped");

    let pod = PodNetworks::builder(cni).network(old).network(new).build().unwrap();
    let s = pod.status().await.unwrap();
    assert_eq!(
        s,
        [
            ("old".to_owned(), NetworkStatus::Skipped { version: "1.0.0".into() }),
            ("new".to_owned(), NetworkStatus::Ready)
        ]
    );
}

#[tokio::test]
async fn gc_keeps_every_failure_with_its_code_and_plugin() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins();
    let cni = runtime(exec.clone(), cache.path());
    let gcnet = list(json!({"cniVersion": "1.1.0", "name": "gcnet", "plugins": [
        {"type": "addr", "ip": "10.218.1.2/24", "failOn": "GC", "failCode": 140},
        {"type": "pass", "failOn": "DEL"}
    ]}));
    for id in ["keep", "stale"] {
        cni.add(&gcnet, &cni_sdk::runtime::RuntimeConf::new(id, "/x", "eth0")).await.unwrap();
    }
    let gcnet_del_fails = list(json!({"cniVersion": "1.1.0", "name": "gcnet", "plugins": [
        {"type": "addr", "ip": "10.218.1.2/24", "failOn": "GC", "failCode": 140},
        {"type": "addr", "ip": "10.218.1.2/24", "failOn": "DEL", "failCode": 141}
    ]}));
    let e = cni.gc(&gcnet_del_fails, Some(&[Attachment::new("keep", "eth0")])).await.unwrap_err();
    let all: Vec<(Option<Command>, ErrorCode)> = e.failures().map(|f| (f.verb(), f.code())).collect();
    // The stale attachment's DEL (the second plugin, first in reverse order), then GC of the
    // first plugin; the kept attachment is not deleted.
    assert_eq!(all, [(Some(Command::Del), ErrorCode::Plugin(141)), (Some(Command::Gc), ErrorCode::Plugin(140))]);
    assert!(cache.path().join("results/gcnet-keep-eth0").exists());
    let first = e.failures().next().unwrap();
    assert_eq!(first.attachment(), Some(&Attachment::new("stale", "eth0")));
    assert!(
        first.to_string().starts_with(
            "failed to delete stale attachment stale eth0: plugin type=\"addr\" failed (delete): DEL refused"
        ),
        "{first}"
    );
    assert_eq!(e.failures().nth(1).unwrap().to_string(), "failed to GC plugin addr: GC refused; by \"gcnet\"");
    // `None` needs no annotation.
    let _ = cni.gc(&gcnet, None).await;
}

#[tokio::test]
async fn crashing_plugins_and_missing_ones() {
    let cache = tempfile::tempdir().unwrap();
    let exec = plugins()
        .with_raw("crash", |_| cni_sdk::exec::RawOutput {
            code: None,
            stdout: Vec::new(),
            stderr: b"panic: boom\n".to_vec(),
        })
        .with_raw("garbage", |_| cni_sdk::exec::RawOutput {
            code: Some(1),
            stdout: b"oops".to_vec(),
            stderr: Vec::new(),
        });
    let cni = runtime(exec, cache.path());
    let rt = cni_sdk::runtime::RuntimeConf::new("c", "/x", "eth0");
    let one = |t: &str| list(json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": t}]}));
    let e = cni.add(&one("crash"), &rt).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.msg(), e.stderr()),
        (ErrorKind::Internal, "netplugin failed: \"panic: boom\"", Some("panic: boom"))
    );
    let e = cni.add(&one("garbage"), &rt).await.unwrap_err();
    assert!(e.msg().starts_with("netplugin failed but error parsing its diagnostic message \"oops\""), "{e}");
    let e = cni.add(&one("nowhere"), &rt).await.unwrap_err();
    assert_eq!((e.kind(), e.plugin_type()), (ErrorKind::PluginNotFound, Some("nowhere")));
    assert_eq!(
        e.to_string(),
        "plugin type=\"nowhere\" failed (add): failed to find plugin \"nowhere\" in path [in-process]"
    );
    // The runtime's errors convert into the plugin-side error keeping kind and code.
    let sdk: Error = e.into();
    assert_eq!((sdk.kind(), sdk.code()), (ErrorKind::PluginNotFound, ErrorCode::InvalidNetworkConfig));
}

#[tokio::test]
async fn cache_problems_have_their_own_kind() {
    let cache = tempfile::tempdir().unwrap();
    let cni = runtime(plugins(), cache.path());
    let n = net("c", "10.218.1.2/24", json!({}));
    let rt = cni_sdk::runtime::RuntimeConf::new("c1", "/x", "eth0");
    std::fs::create_dir_all(cache.path().join("results")).unwrap();
    std::fs::write(cache.path().join("results/c-c1-eth0"), b"{not json").unwrap();
    let e = cni.check(&n, &rt).await.unwrap_err();
    assert_eq!((e.kind(), e.network(), e.verb()), (ErrorKind::Cache, Some("c"), Some(Command::Check)));
    // A cache that cannot be written: the results directory is a file.
    let blocked = tempfile::tempdir().unwrap();
    std::fs::write(blocked.path().join("results"), b"").unwrap();
    let cni = runtime(plugins(), blocked.path());
    let e = cni.add(&n, &rt).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cache);
    assert!(e.to_string().starts_with("failed to set network \"c\" cached result: "), "{e}");
}
