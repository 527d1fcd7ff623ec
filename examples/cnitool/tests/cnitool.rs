//! cnitool end to end: the CLI without root, and (as root) `run` and add/check/del against
//! Debian's Go reference plugins, plus cache interop with Go libcni (`libcni-cnitool`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cnitool");
const GO_PLUGINS: &str = "/usr/lib/cni";
const FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// The value before the first test touched anything (tests run in parallel).
static ORIGINAL_FORWARDING: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Temp config/data/cache dirs and a bridge name; removes the bridge and stray namespaces.
struct Env {
    conf: tempfile::TempDir,
    data: tempfile::TempDir,
    cache: tempfile::TempDir,
    bridge: String,
    /// The host's original IPv4 forwarding setting, restored on drop (gateway bridges turn it on).
    forwarding: String,
}

impl Env {
    fn new(tag: &str) -> Self {
        Self {
            conf: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
            bridge: format!("cnitest-{tag}"),
            forwarding: ORIGINAL_FORWARDING
                .get_or_init(|| std::fs::read_to_string(FORWARDING).unwrap_or_default())
                .clone(),
        }
    }

    fn write(&self, file: &str, doc: &Value) {
        std::fs::write(self.conf.path().join(file), doc.to_string()).unwrap();
    }

    fn bridge_list(&self, name: &str, version: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": version, "name": name,
            "plugins": [{
                "type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": true,
                "ipam": {"type": "host-local", "subnet": subnet, "dataDir": self.data.path(), "routes": [{"dst": "0.0.0.0/0"}]}
            }]
        })
    }

    fn cnitool(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NETCONFPATH", self.conf.path())
            .env("CNI_PATH", GO_PLUGINS)
            .env("CNI_CACHE_DIR", self.cache.path());
        c
    }

    fn leases(&self, net: &str) -> Vec<String> {
        std::fs::read_dir(self.data.path().join(net))
            .map(|d| {
                d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<String>>()
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|n: &String| n.starts_with("10."))
            .collect()
    }

    fn cache_entries(&self) -> usize {
        std::fs::read_dir(self.cache.path().join("results")).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).stderr(Stdio::null()).status();
        if !self.forwarding.is_empty() {
            let _ = std::fs::write(FORWARDING, &self.forwarding);
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `run` tests look at every `cnitool-*` namespace, so they take turns.
static RUN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cnitool_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<String>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|n: &String| n.starts_with("cnitool-"))
        .collect()
}

fn nat_rules_mentioning(net: &str) -> usize {
    let out = Command::new("iptables").args(["-w", "-t", "nat", "-S"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(&format!("name: \"{net}\""))).count()
}

/// A named netns, removed on drop.
struct Netns(String);
impl Netns {
    fn new(name: &str) -> Self {
        assert!(Command::new("ip").args(["netns", "add", name]).status().unwrap().success());
        Self(name.to_owned())
    }
    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
}
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn help_and_errors_without_root() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["add", "check", "del", "gc", "status", "version", "validate", "run", "NETCONFPATH", "CNI_PATH"] {
        assert!(help.contains(word), "--help mentions {word}: {help}");
    }
    let env = Env::new("nohelp");
    let out = env.cnitool(&["add", "nope", "/var/run/netns/x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("cnitool: code=7 (invalid network config) msg=\"no net configurations found in"), "{err}");
    assert!(out.stdout.is_empty());
    let out = env.cnitool(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error: {}", text(&out));
}

/// An executable shell script `dir/name`.
fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn errors_name_network_plugin_verb_code_msg_and_details() {
    let env = Env::new("noerr");
    let bin = tempfile::tempdir().unwrap();
    script(
        bin.path(),
        "busy",
        r#"cat >/dev/null; echo 'some noise' >&2; printf '{"code":11,"msg":"pool busy","details":"lock held by 42"}'; exit 1"#,
    );
    script(bin.path(), "ok", r#"cat >/dev/null; [ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0"}'; exit 0"#);
    env.write(
        "10-e.conflist",
        &json!({"cniVersion": "1.0.0", "name": "errnet", "plugins": [{"type": "ok"}, {"type": "busy", "name": "b1"}]}),
    );
    let run = |args: &[&str]| env.cnitool(args).env("CNI_PATH", bin.path()).output().unwrap();
    let out = run(&["add", "errnet", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("cnitool: ")).unwrap();
    assert_eq!(
        line,
        "cnitool: network=\"errnet\" plugin=\"busy\" pluginName=\"b1\" verb=ADD ifname=\"eth0\" \
         code=11 (try again later) msg=\"pool busy\" details=\"lock held by 42\"",
        "{}",
        text(&out)
    );

    let out = run(&["--json", "add", "errnet", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let doc: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(doc["network"], "errnet");
    assert_eq!(doc["plugin"], "busy");
    assert_eq!(doc["pluginName"], "b1");
    assert_eq!(doc["verb"], "ADD");
    assert_eq!(doc["code"], 11);
    assert_eq!(doc["codeName"], "TryAgainLater");
    assert_eq!(doc["msg"], "pool busy");
    assert_eq!(doc["details"], "lock held by 42");
    assert_eq!(doc["stderr"], "some noise");
    assert_eq!(doc["error"], "plugin type=\"busy\" name=\"b1\" failed (add): pool busy; lock held by 42");

    // STATUS of a list older than 1.1.0 says so instead of pretending.
    let out = run(&["status", "errnet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "skipped (version 1.0.0 < 1.1.0)");
}

#[test]
#[ignore = "needs Debian's Go plugins (.ci/run installs them)"]
fn version_and_validate_against_go_plugins() {
    let env = Env::new("v");
    let out = env.cnitool(&["version", "bridge"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["supportedVersions"].as_array().unwrap().contains(&json!("1.0.0")));
    env.write("10-v.conflist", &env.bridge_list("vnet", "1.0.0", "10.222.0.0/24"));
    let out = env.cnitool(&["validate", "vnet"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    env.write("20-w.conflist", &env.bridge_list("wnet", "1.1.0", "10.222.1.0/24"));
    let out = env.cnitool(&["validate", "wnet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "Debian's plugins do not support 1.1.0: {}", text(&out));
}

#[test]
#[ignore = "needs root and Debian's Go plugins (.ci/run installs them)"]
fn run_joins_networks_runs_the_command_and_cleans_up() {
    let _turn = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new("run0");
    env.write("10-run.conflist", &env.bridge_list("runnet", "1.0.0", "10.223.0.0/24"));
    env.write("99-lo.conf", &json!({"cniVersion": "0.2.0", "name": "lo", "type": "loopback"}));
    let out = env.cnitool(&["run", "--", "ip", "-j", "addr"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str| links.as_array().unwrap().iter().find(|l| l["ifname"] == name).cloned().unwrap();
    let eth0 = find("eth0");
    assert!(
        eth0["addr_info"].as_array().unwrap().iter().any(|a| a["local"].as_str().unwrap().starts_with("10.223.0."))
    );
    let lo = find("lo");
    assert!(lo["flags"].as_array().unwrap().contains(&json!("UP")), "loopback is up: {lo}");
    assert!(cnitool_namespaces().is_empty(), "namespace removed");
    assert!(env.leases("runnet").is_empty(), "lease released");
    assert_eq!(env.cache_entries(), 0, "cache cleaned");
    assert_eq!(nat_rules_mentioning("runnet"), 0, "masquerade rules removed");

    // The command's exit code is cnitool's; cleanup happens anyway.
    let out = env.cnitool(&["run", "--net", "runnet", "--", "sh", "-c", "exit 7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(cnitool_namespaces().is_empty() && env.leases("runnet").is_empty());
}

#[test]
#[ignore = "needs root and Debian's Go plugins (.ci/run installs them)"]
fn run_cleans_up_when_killed_or_when_add_fails() {
    let _turn = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new("run1");
    env.write("10-run.conflist", &env.bridge_list("killnet", "1.0.0", "10.223.1.0/24"));
    // The command marks that it runs: the lease exists earlier (during ADD), and a signal that
    // arrives while cnitool is still attaching is not the case this test is about.
    let started = env.data.path().join("command-started");
    let script = format!("touch {}; exec sleep 30", started.display());
    let mut child = env.cnitool(&["run", "--", "sh", "-c", &script]).spawn().unwrap();
    // Wait until the command runs, then SIGTERM cnitool.
    for _ in 0..100 {
        if started.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.leases("killnet").len(), 1, "attached before the signal");
    nix_kill(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "the command died of SIGTERM");
    assert!(cnitool_namespaces().is_empty(), "namespace removed after SIGTERM");
    assert!(env.leases("killnet").is_empty(), "lease released after SIGTERM");
    assert_eq!(nat_rules_mentioning("killnet"), 0);

    // A failing second network: the first is detached again, nothing is left.
    env.write(
        "20-bad.conflist",
        &json!({"cniVersion": "1.0.0", "name": "badnet", "plugins": [{"type": "no-such-plugin"}]}),
    );
    let out = env.cnitool(&["run", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed to find plugin"), "{}", text(&out));
    assert!(cnitool_namespaces().is_empty() && env.leases("killnet").is_empty());
}

fn nix_kill(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().unwrap().success());
}

#[test]
#[ignore = "needs root and Debian's Go plugins (.ci/run installs them)"]
fn drives_go_plugins_on_every_version_they_support() {
    let versions = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];
    for (i, version) in versions.iter().enumerate() {
        let env = Env::new(&format!("gov{i}"));
        let ns = Netns::new(&format!("cnitest-gov{i}"));
        let mut plugins = vec![json!({
            "type": "bridge", "bridge": env.bridge, "isGateway": true,
            "ipam": {"type": "host-local", "subnet": format!("10.224.{i}.0/24"), "dataDir": env.data.path()}
        })];
        if *version >= "0.3.0" {
            plugins.push(json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}}));
        }
        let net = format!("gov{i}");
        env.write(&format!("{i}-gov.conflist"), &json!({"cniVersion": version, "name": net, "plugins": plugins}));
        let out = env.cnitool(&["add", &net, &ns.path()]).output().unwrap();
        assert!(out.status.success(), "{version}: {}", text(&out));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["cniVersion"], *version);
        if *version >= "0.4.0" {
            let out = env.cnitool(&["check", &net, &ns.path()]).output().unwrap();
            assert!(out.status.success(), "{version} check: {}", text(&out));
        }
        let out = env.cnitool(&["del", &net, &ns.path()]).output().unwrap();
        assert!(out.status.success(), "{version} del: {}", text(&out));
        assert!(env.leases(&net).is_empty(), "{version}: lease released");
    }
    // ptp and loopback.
    let env = Env::new("goptp");
    let ns = Netns::new("cnitest-goptp");
    env.write(
        "ptp.conflist",
        &json!({"cniVersion": "1.0.0", "name": "goptp", "plugins": [
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.224.100.0/24", "dataDir": env.data.path()}},
            {"type": "loopback"}
        ]}),
    );
    for verb in ["add", "check", "del"] {
        let out = env.cnitool(&[verb, "goptp", &ns.path()]).output().unwrap();
        assert!(out.status.success(), "ptp {verb}: {}", text(&out));
    }
    assert!(env.leases("goptp").is_empty());
}

fn libcni_cnitool() -> PathBuf {
    let p = std::env::var_os("LIBCNI_CNITOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop/libcni-cnitool"));
    assert!(p.is_file(), "{} missing: .ci/run builds it with ../shared/interop/build.sh", p.display());
    p
}

#[test]
#[ignore = "needs root, Debian's Go plugins and libcni-cnitool (.ci/run provides them)"]
fn cache_interop_with_go_libcni_both_ways() {
    let env = Env::new("cache");
    env.write("10-c.conflist", &env.bridge_list("cachenet", "1.0.0", "10.225.0.0/24"));
    let ns = Netns::new("cnitest-cache");
    let go = |verb: &str| {
        Command::new(libcni_cnitool())
            .args([verb, "cachenet", &ns.path()])
            .env("NETCONFPATH", env.conf.path())
            .env("CNI_PATH", GO_PLUGINS)
            .env("CNI_CACHE_DIR", env.cache.path())
            .output()
            .unwrap()
    };
    // Go libcni adds, our runtime checks and deletes through Go's cache entry.
    let out = go("add");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.cache_entries(), 1);
    let out = env.cnitool(&["check", "cachenet", &ns.path()]).output().unwrap();
    assert!(out.status.success(), "our CHECK uses Go's cache: {}", text(&out));
    let out = env.cnitool(&["del", "cachenet", &ns.path()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.cache_entries(), 0, "same cache path scheme and container ID");
    assert!(env.leases("cachenet").is_empty());

    // Our runtime adds, Go libcni checks and deletes through our cache entry.
    let out = env.cnitool(&["add", "cachenet", &ns.path()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let entry = std::fs::read_dir(env.cache.path().join("results")).unwrap().next().unwrap().unwrap().path();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777, 0o600);
    let out = go("check");
    assert!(out.status.success(), "Go CHECK reads our cache: {}", text(&out));
    let out = go("del");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.cache_entries(), 0);
    assert!(env.leases("cachenet").is_empty());
}

fn our_plugins() -> PathBuf {
    let dir = Path::new(BIN).parent().unwrap().to_owned();
    for p in ["bridge", "host-local", "loopback", "ptp"] {
        assert!(
            dir.join(p).is_file(),
            "{p} missing in {}: build the workspace (cargo test --workspace does)",
            dir.display()
        );
    }
    dir
}

#[test]
#[ignore = "needs root and the workspace's plugins (cargo test --workspace builds them)"]
fn run_with_our_plugins() {
    let _turn = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new("run2");
    env.write("10-run.conflist", &env.bridge_list("ournet", "1.1.0", "10.226.0.0/24"));
    env.write(
        "20-ptp.conflist",
        &json!({"cniVersion": "1.0.0", "name": "ourptp", "plugins": [
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.218.30.0/24", "dataDir": env.data.path()}}
        ]}),
    );
    env.write("99-lo.conf", &json!({"cniVersion": "0.2.0", "name": "lo", "type": "loopback"}));
    let out = env.cnitool(&["run", "--", "ip", "-j", "addr"]).env("CNI_PATH", our_plugins()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    let addr_of = |name: &str| -> Vec<String> {
        let link = links.as_array().unwrap().iter().find(|l| l["ifname"] == name).unwrap_or_else(|| panic!("{name}"));
        link["addr_info"].as_array().unwrap().iter().map(|a| a["local"].as_str().unwrap().to_owned()).collect()
    };
    // Both networks attached at once: eth0 and eth1 in configuration order, lo for loopback.
    assert!(addr_of("eth0").iter().any(|a| a.starts_with("10.226.0.")), "{links}");
    assert!(addr_of("eth1").iter().any(|a| a.starts_with("10.218.30.")), "{links}");
    assert!(addr_of("lo").contains(&"127.0.0.1".to_owned()));
    assert!(cnitool_namespaces().is_empty() && env.leases("ournet").is_empty() && env.cache_entries() == 0);
    assert!(env.leases("ourptp").is_empty());
    assert_eq!(nat_rules_mentioning("ournet"), 0, "our bridge removed its masquerade rules");
}

#[test]
#[ignore = "needs root and the workspace's plugins (cargo test --workspace builds them)"]
fn run_without_configuration_uses_the_builtin_mynet() {
    let _turn = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let had_cni0 = Path::new("/sys/class/net/cni0").exists();
    let store = Path::new("/var/lib/cni/networks/mynet");
    let had_store = store.exists();
    let had_lib = Path::new("/var/lib/cni").exists();
    let env = Env::new("run3");
    let out = env.cnitool(&["run", "--", "ip", "-j", "addr"]).env("CNI_PATH", our_plugins()).output().unwrap();
    let leases: Vec<String> = std::fs::read_dir(store)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if !had_cni0 {
        let _ = Command::new("ip").args(["link", "del", "cni0"]).status();
    }
    if !had_store {
        let _ = std::fs::remove_dir_all(store);
    }
    if !had_lib {
        let _ = std::fs::remove_dir_all("/var/lib/cni");
    }
    assert!(out.status.success(), "{}", text(&out));
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    let find =
        |n: &str| links.as_array().unwrap().iter().find(|l| l["ifname"] == n).cloned().unwrap_or_else(|| panic!("{n}"));
    let eth0 = find("eth0");
    assert!(
        eth0["addr_info"].as_array().unwrap().iter().any(|a| a["local"].as_str().unwrap().starts_with("10.22.")),
        "{eth0}"
    );
    assert!(find("lo")["flags"].as_array().unwrap().contains(&json!("UP")));
    assert!(leases.iter().all(|l| !l.starts_with("10.")), "lease released: {leases:?}");
    assert_eq!(nat_rules_mentioning("mynet"), 0);
    assert!(cnitool_namespaces().is_empty());
}
