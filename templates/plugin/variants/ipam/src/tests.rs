//! ADD / CHECK / DEL / GC against a temporary lease directory: no root needed.

use cni_sdk::testing::{PluginTest, TEST_NETWORK, for_each_version};
use cni_sdk::{Command, ErrorCode, SpecVersion};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::FileIpam;

fn ipam(dir: &TempDir, subnet: &str) -> Value {
    json!({"ipam": {
        "type": "{{plugin_type}}",
        "subnet": subnet,
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": dir.path(),
    }})
}

fn run(dir: &TempDir, cmd: Command, container: &str) -> PluginTest<'static, FileIpam> {
    PluginTest::new(&FileIpam).command(cmd).config_keys(ipam(dir, "10.22.0.0/24")).container_id(container)
}

fn lease_files(dir: &TempDir) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.path().join(TEST_NETWORK)) else { return Vec::new() };
    let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn add_hands_out_distinct_addresses_and_never_the_gateway() {
    let dir = TempDir::new().unwrap();
    let a = run(&dir, Command::Add, "ctr-a").run().await.expect_result();
    let b = run(&dir, Command::Add, "ctr-b").run().await.expect_result();
    assert_eq!(a.ips[0].address.to_string(), "10.22.0.2/24");
    assert_eq!(a.ips[0].gateway, Some("10.22.0.1".parse().unwrap()));
    assert_eq!(b.ips[0].address.to_string(), "10.22.0.3/24");
    assert_eq!(a.routes[0].dst.to_string(), "0.0.0.0/0");
    assert_eq!(lease_files(&dir), ["10.22.0.2", "10.22.0.3"]);
    let owner = std::fs::read_to_string(dir.path().join(TEST_NETWORK).join("10.22.0.2")).unwrap();
    assert_eq!(owner, "ctr-a\neth0\n");
}

#[tokio::test]
async fn a_repeated_add_returns_the_same_lease() {
    let dir = TempDir::new().unwrap();
    let first = run(&dir, Command::Add, "ctr-a").run().await.expect_result();
    let again = run(&dir, Command::Add, "ctr-a").run().await.expect_result();
    assert_eq!(first.ips, again.ips);
    assert_eq!(lease_files(&dir).len(), 1);
    // Another interface of the same container is another attachment.
    let eth1 = run(&dir, Command::Add, "ctr-a").ifname("eth1").run().await.expect_result();
    assert_ne!(first.ips[0].address, eth1.ips[0].address);
}

#[tokio::test]
async fn del_releases_and_is_idempotent() {
    let dir = TempDir::new().unwrap();
    run(&dir, Command::Add, "ctr-a").run().await.expect_result();
    run(&dir, Command::Add, "ctr-b").run().await.expect_result();
    run(&dir, Command::Del, "ctr-a").run().await.expect_success();
    assert_eq!(lease_files(&dir), ["10.22.0.3"]);
    run(&dir, Command::Del, "ctr-a").run().await.expect_success();
    // The freed address is reused.
    let c = run(&dir, Command::Add, "ctr-c").run().await.expect_result();
    assert_eq!(c.ips[0].address.to_string(), "10.22.0.2/24");
    // DEL before any ADD (no lease directory at all) succeeds too.
    let empty = TempDir::new().unwrap();
    run(&empty, Command::Del, "ctr-a").run().await.expect_success();
}

#[tokio::test]
async fn check_needs_the_lease() {
    let dir = TempDir::new().unwrap();
    run(&dir, Command::Add, "ctr-a").run().await.expect_result();
    run(&dir, Command::Check, "ctr-a").run().await.expect_success();
    run(&dir, Command::Check, "ctr-b").run().await.expect_error(ErrorCode::Internal);
}

#[tokio::test]
async fn an_exhausted_subnet_is_try_again_later() {
    let dir = TempDir::new().unwrap();
    // A /30 has two usable addresses, and the first is the gateway.
    let small = |cmd, ctr| run(&dir, cmd, ctr).config_keys(ipam(&dir, "10.22.0.0/30"));
    small(Command::Add, "ctr-a").run().await.expect_result();
    let err = small(Command::Add, "ctr-b").run().await.expect_error(ErrorCode::TryAgainLater);
    assert!(err.msg.contains("no free address"), "{err:?}");
}

#[tokio::test]
async fn bad_configurations_are_code_7() {
    let dir = TempDir::new().unwrap();
    for keys in [
        json!({"ipam": {"type": "x"}}),
        json!({"ipam": {"type": "x", "subnet": "not-a-subnet"}}),
        json!({"ipam": {"type": "x", "subnet": "10.22.0.0/24", "gateway": "10.99.0.1"}}),
        json!({"ipam": {"type": "x", "subnet": "10.22.0.1/32"}}),
    ] {
        let test = PluginTest::new(&FileIpam).config_keys(keys);
        test.run().await.expect_error(ErrorCode::InvalidNetworkConfig);
    }
    assert!(lease_files(&dir).is_empty());
}

#[tokio::test]
async fn gc_keeps_only_valid_attachments() {
    let dir = TempDir::new().unwrap();
    for ctr in ["ctr-a", "ctr-b", "ctr-c"] {
        run(&dir, Command::Add, ctr).run().await.expect_result();
    }
    let valid = json!({"cni.dev/valid-attachments": [{"containerID": "ctr-b", "ifname": "eth0"}]});
    let gc = PluginTest::new(&FileIpam).command(Command::Gc).config_keys(ipam(&dir, "10.22.0.0/24"));
    gc.config_keys(valid).version(SpecVersion::V1_1_0).run().await.expect_success();
    assert_eq!(lease_files(&dir), ["10.22.0.3"]);
}

#[tokio::test]
async fn every_spec_version() {
    for_each_version(|version| async move {
        let dir = TempDir::new().unwrap();
        let result = run(&dir, Command::Add, "ctr-a").version(version).run().await.expect_result();
        assert_eq!(result.ips[0].address.to_string(), "10.22.0.2/24", "{version}");
        run(&dir, Command::Del, "ctr-a").version(version).run().await.expect_success();
        assert!(lease_files(&dir).is_empty());
    })
    .await;
}
