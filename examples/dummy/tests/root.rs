//! Root tests of the binary in throwaway namespaces. This kernel has no dummy module
//! (`CONFIG_DUMMY`), so they show the error object a kernel without it gets, and that such a
//! failed ADD leaves nothing behind (no link, no lease); the link's behaviour itself is tested
//! on the fake (`src/tests.rs`). If the kernel does have the module, the full cycle runs instead.

use cni_test_support::{Call, Netns, go, leases};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dummy");

fn conf(version: &str, data: &std::path::Path) -> Value {
    json!({
        "cniVersion": version, "name": "dummyroot", "type": "dummy",
        "ipam": {"type": "host-local", "subnet": "10.217.10.0/24", "dataDir": data}
    })
}

fn kernel_has_dummy(host: &Netns) -> bool {
    let probe = host.try_sh(&["ip", "link", "add", "p2probe0", "type", "dummy"]);
    if probe.status.success() {
        host.sh(&["ip", "link", "del", "p2probe0"]);
    }
    probe.status.success()
}

#[test]
#[ignore = "needs root"]
fn kernel_without_dummy_gets_gos_error_object_and_nothing_is_left() {
    let host = Netns::new("p2dmh");
    let ctr = Netns::new("p2dmc");
    let data = tempfile::tempdir().unwrap();
    let _ = go::plugin("host-local");
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let c = conf(version, data.path());
        let call = Call::new(BIN, "ADD", &c, "dummy-root").in_ns(&host).netns(&ctr);
        if kernel_has_dummy(&host) {
            let r = call.ok();
            assert_eq!(r["interfaces"][0]["name"], "eth0");
            let link = ctr.link("eth0").expect("eth0");
            assert_eq!(link["linkinfo"]["info_kind"], "dummy");
            assert_eq!(ctr.addrs("eth0").len(), 1);
            let mut with_prev = c.clone();
            with_prev["prevResult"] = r.clone();
            Call::new(BIN, "CHECK", &with_prev, "dummy-root").in_ns(&host).netns(&ctr).ok();
            call.verb("DEL").ok();
        } else {
            let run = call.run();
            assert!(!run.success(), "{version}: {}", run.stdout);
            let err = run.err();
            assert_eq!(err["code"], 999, "{version}: {err}");
            assert_eq!(err["msg"], "failed to create dummy: operation not supported", "{version}");
            assert_eq!(err["cniVersion"], version);
        }
        assert!(ctr.link_names().is_empty(), "{version}: {:?}", ctr.link_names());
        assert!(host.link_names().is_empty(), "{version}: {:?}", host.link_names());
        assert!(leases(data.path(), "dummyroot").is_empty(), "{version}");
        // DEL of what never came up succeeds, with the namespace and without it (Go's host-local
        // is 1.0.0 at most, hence no 1.1.0 here).
        call.verb("DEL").ok();
        call.verb("DEL").netns_path("/var/run/netns/p2-gone").ok();
    }
}

#[test]
#[ignore = "needs root"]
fn requests_that_fail_before_the_kernel_is_asked() {
    let host = Netns::new("p2dmh");
    let ctr = Netns::new("p2dmc");
    let no_ipam = json!({"cniVersion": "1.0.0", "name": "dummyroot", "type": "dummy"});
    let e = Call::new(BIN, "ADD", &no_ipam, "dummy-root").in_ns(&host).netns(&ctr).err();
    assert_eq!(
        (e["code"].clone(), e["msg"].clone()),
        (json!(999), json!("dummy interface requires an IPAM configuration"))
    );
    let data = tempfile::tempdir().unwrap();
    let c = conf("1.0.0", data.path());
    let e = Call::new(BIN, "ADD", &c, "dummy-root").in_ns(&host).netns_path("/var/run/netns/p2-gone").err();
    assert_eq!(
        e["msg"],
        r#"failed to open netns "/var/run/netns/p2-gone": failed to Statfs "/var/run/netns/p2-gone": no such file or directory"#
    );
    assert!(ctr.link_names().is_empty());
}
