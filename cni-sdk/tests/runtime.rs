//! The runtime library against in-process plugins (no root, no binaries).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cni_sdk::runtime::{CniRuntime, NetworkList, NetworkStatus, RuntimeConf, load_all, load_network};
use cni_sdk::testing::InProcessExec;
use cni_sdk::{Attachment, CniResult, Command, Error, ErrorCode, ErrorKind, Interface, IpConfig};
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<(String, Command, Value)>>>;

/// Three fake plugins: "ipam-ish" returns an address; "iface" adds an interface to prevResult;
/// "broken" fails DEL when told to.
fn plugins(log: Log) -> InProcessExec {
    let rec = |name: &'static str, log: Log| {
        move |cmd: Command, stdin: &[u8]| -> cni_sdk::Result<Option<CniResult>> {
            let conf: Value = serde_json::from_slice(stdin).unwrap();
            log.lock().unwrap().push((name.to_owned(), cmd, conf.clone()));
            if conf.get("failDel") == Some(&json!(true)) && cmd == Command::Del {
                return Err(Error::new(ErrorCode::Plugin(130), "cannot delete"));
            }
            match (name, cmd) {
                ("addr", Command::Add) => {
                    let mut r = CniResult::default();
                    r.ips.push(IpConfig::new("10.240.0.9/24".parse().unwrap()));
                    Ok(Some(r))
                }
                ("iface", Command::Add) => {
                    let prev = conf.get("prevResult").cloned().expect("chained after addr");
                    let mut r = CniResult::from_value(prev, conf["cniVersion"].as_str().unwrap()).unwrap();
                    r.interfaces.push(Interface::new("eth9"));
                    Ok(Some(r))
                }
                _ => Ok(None),
            }
        }
    };
    InProcessExec::new().with_fn("addr", rec("addr", log.clone())).with_fn("iface", rec("iface", log.clone()))
}

fn runtime(cache: &Path, log: Log) -> CniRuntime {
    CniRuntime::builder().cache_dir(cache).exec(plugins(log)).build().unwrap()
}

fn list(version: &str) -> NetworkList {
    NetworkList::from_bytes(
        json!({
            "cniVersion": version, "name": "rtnet",
            "plugins": [
                {"type": "addr", "capabilities": {"portMappings": true, "ips": false}},
                {"type": "iface", "keep": {"me": 1}}
            ]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn rt() -> RuntimeConf {
    RuntimeConf::new("ctr-7", "/var/run/netns/ctr-7", "eth0")
        .arg("K8S_POD_NAME", "web")
        .capability("portMappings", json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]))
        .capability("ips", json!(["10.240.0.50"]))
}

#[tokio::test]
async fn add_chains_results_injects_and_caches() {
    let cache = tempfile::tempdir().unwrap();
    let log: Log = Default::default();
    let cni = runtime(cache.path(), log.clone());
    let out = cni.add(&list("1.0.0"), &rt()).await.unwrap();
    assert_eq!(out.result.ips[0].address.to_string(), "10.240.0.9/24");
    assert_eq!(out.result.interfaces[0].name, "eth9");

    let calls = log.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    let (first, second) = (&calls[0].2, &calls[1].2);
    assert_eq!((first["name"].as_str(), first["cniVersion"].as_str()), (Some("rtnet"), Some("1.0.0")));
    assert_eq!(
        first["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );
    assert!(first.get("prevResult").is_none());
    assert_eq!(second["prevResult"]["ips"][0]["address"], "10.240.0.9/24");
    assert_eq!(second["keep"], json!({"me": 1}), "unknown keys pass through");
    assert!(second.get("runtimeConfig").is_none(), "no capabilities declared");

    let file = cache.path().join("results/rtnet-ctr-7-eth0");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(cache.path().join("results")).unwrap().permissions().mode() & 0o777, 0o700);
    let rec: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(rec["kind"], "cniCacheV1");
    assert_eq!(rec["cniArgs"], json!([["K8S_POD_NAME", "web"]]));
    assert_eq!(rec["result"]["interfaces"][0]["name"], "eth9");
}

#[tokio::test]
async fn del_runs_in_reverse_with_cached_result_and_removes_cache() {
    let cache = tempfile::tempdir().unwrap();
    let log: Log = Default::default();
    let cni = runtime(cache.path(), log.clone());
    let net = list("0.4.0");
    cni.add(&net, &rt()).await.unwrap();
    log.lock().unwrap().clear();
    cni.del(&net, &rt()).await.unwrap();
    let calls = log.lock().unwrap().clone();
    let order: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(order, ["iface", "addr"]);
    assert!(calls.iter().all(|c| c.1 == Command::Del && c.2["prevResult"]["interfaces"][0]["name"] == "eth9"));
    assert!(!cache.path().join("results/rtnet-ctr-7-eth0").exists());
    // A second DEL (no cache) still runs the plugins, without prevResult.
    log.lock().unwrap().clear();
    cni.del(&net, &rt()).await.unwrap();
    assert!(log.lock().unwrap().iter().all(|c| c.2.get("prevResult").is_none()));
}

#[tokio::test]
async fn del_tolerates_a_corrupt_cache() {
    let cache = tempfile::tempdir().unwrap();
    let log: Log = Default::default();
    let cni = runtime(cache.path(), log.clone());
    std::fs::create_dir_all(cache.path().join("results")).unwrap();
    std::fs::write(cache.path().join("results/rtnet-ctr-7-eth0"), b"").unwrap();
    cni.del(&list("1.0.0"), &rt()).await.unwrap();
    assert_eq!(log.lock().unwrap().len(), 2);
    assert!(!cache.path().join("results/rtnet-ctr-7-eth0").exists());
}

#[tokio::test]
async fn failing_del_keeps_the_cache_and_names_the_plugin() {
    let cache = tempfile::tempdir().unwrap();
    let log: Log = Default::default();
    let cni = runtime(cache.path(), log.clone());
    let net = NetworkList::from_bytes(
        br#"{"cniVersion":"1.0.0","name":"rtnet","plugins":[{"type":"addr"},{"type":"iface","failDel":true}]}"#,
    )
    .unwrap();
    cni.add(&net, &rt()).await.unwrap();
    let e = cni.del(&net, &rt()).await.unwrap_err();
    assert_eq!((e.code(), e.kind()), (ErrorCode::Plugin(130), ErrorKind::Plugin));
    assert_eq!((e.network(), e.plugin_type(), e.verb()), (Some("rtnet"), Some("iface"), Some(Command::Del)));
    assert_eq!((e.msg(), e.details()), ("cannot delete", None), "the plugin's own msg, untouched");
    assert_eq!(e.plugin_error().map(|p| p.code), Some(ErrorCode::Plugin(130)));
    assert_eq!(e.attachment(), Some(&Attachment::new("ctr-7", "eth0")));
    assert_eq!(e.to_string(), "plugin type=\"iface\" failed (delete): cannot delete");
    assert!(cache.path().join("results/rtnet-ctr-7-eth0").exists(), "kept for a retry");
}

#[tokio::test]
async fn check_gates_and_cached_prev_result() {
    let cache = tempfile::tempdir().unwrap();
    let log: Log = Default::default();
    let cni = runtime(cache.path(), log.clone());
    let e = cni.check(&list("0.3.1"), &rt()).await.unwrap_err();
    assert_eq!(e.msg(), "configuration version \"0.3.1\" does not support the CHECK command");
    let net = list("1.0.0");
    cni.add(&net, &rt()).await.unwrap();
    log.lock().unwrap().clear();
    cni.check(&net, &rt()).await.unwrap();
    let calls = log.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["addr", "iface"]);
    assert!(calls.iter().all(|c| c.2["prevResult"]["ips"][0]["address"] == "10.240.0.9/24"));
    let mut disabled = net.clone();
    disabled.list.disable_check = true;
    log.lock().unwrap().clear();
    cni.check(&disabled, &rt()).await.unwrap();
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn gc_deletes_stale_attachments_then_sends_gc() {
    let cache = tempfile::tempdir().unwrap();
    let log: Log = Default::default();
    let cni = runtime(cache.path(), log.clone());
    let net = list("1.1.0");
    for id in ["keep-1", "stale-1", "stale-2"] {
        cni.add(&net, &RuntimeConf::new(id, "/x", "eth0")).await.unwrap();
    }
    log.lock().unwrap().clear();
    let valid = [Attachment::new("keep-1", "eth0")];
    cni.gc(&net, Some(&valid)).await.unwrap();
    let calls = log.lock().unwrap().clone();
    let dels: Vec<&Value> = calls.iter().filter(|c| c.1 == Command::Del).map(|c| &c.2).collect();
    assert_eq!(dels.len(), 4, "two stale attachments x two plugins");
    let gcs: Vec<&Value> = calls.iter().filter(|c| c.1 == Command::Gc).map(|c| &c.2).collect();
    assert_eq!(gcs.len(), 2);
    assert_eq!(gcs[0]["cni.dev/valid-attachments"], json!([{"containerID": "keep-1", "ifname": "eth0"}]));
    assert_eq!(gcs[0]["cni.dev/attachments"], gcs[0]["cni.dev/valid-attachments"]);
    let left: Vec<String> =
        cni.cached_attachments("rtnet").unwrap().into_iter().map(|(rt, _)| rt.container_id).collect();
    assert_eq!(left, ["keep-1"]);

    let mut disabled = net.clone();
    disabled.list.disable_gc = true;
    log.lock().unwrap().clear();
    cni.gc(&disabled, None).await.unwrap();
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn status_and_version_probing() {
    let cache = tempfile::tempdir().unwrap();
    let log: Log = Default::default();
    let cni = runtime(cache.path(), log.clone());
    let skipped = cni.status(&list("1.0.0")).await.unwrap();
    assert_eq!(skipped, NetworkStatus::Skipped { version: "1.0.0".into() });
    assert!(log.lock().unwrap().is_empty(), "STATUS is not sent to pre-1.1 lists");
    assert_eq!(cni.status(&list("1.1.0")).await.unwrap(), NetworkStatus::Ready);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn identifiers_are_validated_before_add() {
    let cache = tempfile::tempdir().unwrap();
    let cni = runtime(cache.path(), Default::default());
    let e = cni.add(&list("1.0.0"), &RuntimeConf::new("bad id", "/x", "eth0")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidEnvironmentVariables);
    let e = cni.add(&list("1.0.0"), &RuntimeConf::new("ok", "/x", "eth0:1")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidEnvironmentVariables);
}

#[test]
fn loading_follows_libcni() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = load_network(d, "x").unwrap_err();
    assert_eq!(e.msg(), format!("no net configurations found in {}", d.display()));
    std::fs::write(d.join("20-b.conflist"), r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"x"}]}"#).unwrap();
    std::fs::write(d.join("10-a.conflist"), r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"first"}]}"#)
        .unwrap();
    std::fs::write(d.join("15-a.conflist"), r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"second"}]}"#)
        .unwrap();
    std::fs::write(d.join("30-legacy.conf"), r#"{"cniVersion":"0.2.0","name":"legacy","type":"bridge"}"#).unwrap();
    std::fs::create_dir(d.join("a")).unwrap();
    std::fs::write(d.join("a/10-extra.conf"), r#"{"type":"extra"}"#).unwrap();
    let a = load_network(d, "a").unwrap();
    let types: Vec<&str> = (0..a.list.plugins.len()).map(|i| a.list.plugin_type(i).unwrap()).collect();
    assert_eq!(types, ["first", "extra"], "first conflist by sorted name, plugin dir appended");
    let legacy = load_network(d, "legacy").unwrap();
    assert_eq!((legacy.version(), legacy.list.plugin_type(0)), ("0.2.0".to_owned(), Some("bridge")));
    let e = load_network(d, "zzz").unwrap_err();
    assert_eq!(e.msg(), format!("no net configuration with name \"zzz\" in {}", d.display()));
    let names: Vec<String> = load_all(d).unwrap().iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(names, ["a", "b", "legacy"]);
    // loadOnlyInlinedPlugins ignores the directory.
    std::fs::write(
        d.join("05-c.conflist"),
        r#"{"cniVersion":"1.0.0","name":"c","loadOnlyInlinedPlugins":"true","plugins":[{"type":"x"}]}"#,
    )
    .unwrap();
    std::fs::create_dir(d.join("c")).unwrap();
    std::fs::write(d.join("c/10-extra.conf"), r#"{"type":"extra"}"#).unwrap();
    assert_eq!(load_network(d, "c").unwrap().list.plugins.len(), 1);
    // A broken conflist aborts the lookup and is named.
    std::fs::write(d.join("01-broken.conflist"), "{").unwrap();
    let e = load_network(d, "a").unwrap_err();
    assert!(e.msg().contains("01-broken.conflist"), "{}", e.msg());
}

#[test]
fn builder_defers_errors_to_build() {
    let e = CniRuntime::builder().build().unwrap_err();
    assert!(e.msg().contains("no plugin directories"));
    let e = CniRuntime::builder().plugin_dir("/x").timeout(std::time::Duration::ZERO).build().unwrap_err();
    assert!(e.msg().contains("timeout"));
}
