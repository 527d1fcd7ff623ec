//! A pod on two networks plus loopback, with Go's portmap chained, through real plugins: the
//! runtime's pod API (`cni_sdk::runtime::PodNetworks`) with our plugins and with Debian's Go
//! plugins, and the same configurations driven by containerd's go-cni (`tests/interop`), which
//! must give the same interfaces and addresses.
//!
//! Everything runs inside throwaway namespaces: a "host" namespace where the plugins run (the
//! bridge, the veth peers, the iptables rules and forwarding live there) and a pod namespace.
//! Subnets 10.218.0.0/16 only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cni_sdk::netns::NetNs;
use cni_sdk::runtime::{CniRuntime, NetworkList, PodNetworks, PodOptions, PodResult};
use cni_sdk::types::PortMapping;
use cni_test_support::{Netns, go, leases};
use serde_json::{Value, json};

/// Interface name → its addresses (without prefix length), for the pod's own interfaces.
type Seen = BTreeMap<String, BTreeSet<String>>;

const BRIDGE: &str = "rt218br0";
const GO_DIR: &str = "/usr/lib/cni";

/// The directory of the workspace's plugin binaries (next to this test's `deps/`).
fn our_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_owned();
    for p in ["bridge", "ptp", "host-local", "loopback"] {
        assert!(
            dir.join(p).is_file(),
            "{p} missing in {}: build the workspace (cargo test --workspace does)",
            dir.display()
        );
    }
    dir
}

/// The two networks: `front` = bridge + host-local + portmap (portMappings), `back` = ptp +
/// host-local; host-local keeps its leases in `data`.
fn networks(data: &Path) -> [Value; 2] {
    [
        json!({"cniVersion": "1.0.0", "name": "front", "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "subnet": "10.218.1.0/24", "dataDir": data, "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]}),
        json!({"cniVersion": "1.0.0", "name": "back", "plugins": [
            {"type": "ptp", "ipMasq": false,
             "ipam": {"type": "host-local", "subnet": "10.218.2.0/24", "dataDir": data}}
        ]}),
    ]
}

const EXPECTED: [(&str, &[&str]); 3] =
    [("eth0", &["10.218.1.2"]), ("eth1", &["10.218.2.2"]), ("lo", &["127.0.0.1", "::1"])];

fn expected() -> Seen {
    EXPECTED.iter().map(|(i, a)| ((*i).to_owned(), a.iter().map(|s| (*s).to_owned()).collect())).collect()
}

/// The pod's own interfaces (those with a sandbox) and their addresses, from our result.
fn seen_ours(r: &PodResult) -> Seen {
    r.interfaces
        .iter()
        .filter(|(_, i)| i.sandbox.is_some())
        .map(|(n, i)| (n.clone(), i.ips.iter().map(|ip| ip.address.addr().to_string()).collect()))
        .collect()
}

/// The same from go-cni's result.
fn seen_go(doc: &Value) -> Seen {
    doc["interfaces"]
        .as_object()
        .expect("interfaces")
        .iter()
        .filter(|(_, i)| i["sandbox"].as_str().is_some_and(|s| !s.is_empty()))
        .map(|(n, i)| {
            let ips =
                i["ips"].as_array().into_iter().flatten().map(|ip| ip["ip"].as_str().unwrap().to_owned()).collect();
            (n.clone(), ips)
        })
        .collect()
}

/// What the kernel shows in the pod: global addresses of eth0/eth1, and lo's.
fn seen_kernel(pod: &Netns) -> Seen {
    let mut out = Seen::new();
    for dev in ["eth0", "eth1"] {
        out.insert(dev.to_owned(), pod.addrs(dev).iter().map(|a| a.split('/').next().unwrap().to_owned()).collect());
    }
    let lo = pod.ip_j(&["addr", "show", "dev", "lo"]);
    let lo_addrs = lo[0]["addr_info"].as_array().into_iter().flatten().map(|a| a["local"].as_str().unwrap().to_owned());
    out.insert("lo".to_owned(), lo_addrs.collect());
    out
}

/// One throwaway world: host and pod namespaces, configuration, leases and cache directories,
/// and the `PATH` the plugins get.
struct Scene {
    host: Netns,
    pod: Netns,
    conf: tempfile::TempDir,
    data: tempfile::TempDir,
    cache: tempfile::TempDir,
    path: tempfile::TempDir,
}

/// The tools the plugins run, without `ip6tables`: Go's portmap 1.1.1 checks its IPv4 DNAT
/// rules in the ip6tables nat table too whenever ip6tables exists, so its CHECK fails on every
/// host that has it (fixed upstream later). Without ip6tables it checks IPv4 only.
const TOOLS: [&str; 5] = ["iptables", "iptables-save", "iptables-restore", "ip", "bridge"];

fn tool_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for tool in TOOLS {
        let found =
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists());
        let found = found.unwrap_or_else(|| panic!("{tool} is not installed"));
        std::os::unix::fs::symlink(found, dir.path().join(tool)).unwrap();
    }
    dir
}

impl Scene {
    fn new(tag: &str) -> Self {
        let s = Self {
            host: Netns::new(&format!("rt218h{tag}")),
            pod: Netns::new(&format!("rt218p{tag}")),
            conf: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
            path: tool_dir(),
        };
        let [front, back] = networks(s.data.path());
        std::fs::write(s.conf.path().join("10-front.conflist"), front.to_string()).unwrap();
        std::fs::write(s.conf.path().join("20-back.conflist"), back.to_string()).unwrap();
        s
    }

    fn lists(&self) -> [NetworkList; 2] {
        networks(self.data.path()).map(|v| NetworkList::from_bytes(v.to_string().as_bytes()).unwrap())
    }

    /// The DNAT rules the portmap plugin left in the host namespace.
    fn portmap_rules(&self) -> Vec<String> {
        self.host.cni_nat_rules().into_iter().filter(|r| r.contains("--dport 8080") || r.contains("CNI-DN-")).collect()
    }

    /// Serves one connection on the pod's port 80 and connects to the host's 10.218.1.1:8080:
    /// true when the greeting comes back through portmap's DNAT.
    fn port_8080_reaches_the_pod(&self) -> bool {
        let pod = NetNs::open(self.pod.path()).unwrap();
        let listener = pod.run(|| TcpListener::bind("0.0.0.0:80")).unwrap().unwrap();
        let server = std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"hello from the pod");
            }
        });
        let host = NetNs::open(self.host.path()).unwrap();
        let got = host
            .run(|| -> std::io::Result<String> {
                let addr: SocketAddr = "10.218.1.1:8080".parse().unwrap();
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut buf = String::new();
                s.read_to_string(&mut buf)?;
                Ok(buf)
            })
            .unwrap();
        if got.is_err() {
            // Unblock the server.
            let _ = pod.run(|| TcpStream::connect("127.0.0.1:80"));
        }
        let _ = server.join();
        got.is_ok_and(|g| g == "hello from the pod")
    }

    /// The CNI nat rules of this pod: everything but portmap's shared `CNI-HOSTPORT-*` chains,
    /// which stay (as Go's portmap leaves them) once made.
    fn pod_nat_rules(&self) -> Vec<String> {
        let shared = |r: &str| {
            !r.contains("CNI-DN-")
                && !r.contains("10.218.")
                && r.split_whitespace().filter(|w| w.starts_with("CNI-")).all(|w| w.starts_with("CNI-HOSTPORT-"))
        };
        self.host.cni_nat_rules().into_iter().filter(|r| !shared(r)).collect()
    }

    /// Nothing of the pod is left: no pod interfaces, no nat rules of its own, no leases, no
    /// cache.
    fn assert_clean(&self, what: &str) {
        assert!(self.pod.link_names().is_empty(), "{what}: pod links left: {:?}", self.pod.link_names());
        assert!(self.pod_nat_rules().is_empty(), "{what}: nat rules left: {:?}", self.pod_nat_rules());
        for net in ["front", "back"] {
            assert!(leases(self.data.path(), net).is_empty(), "{what}: {net} leases left");
        }
        let cached = std::fs::read_dir(self.cache.path().join("results")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(cached, 0, "{what}: cache entries left");
    }
}

fn options(s: &Scene) -> PodOptions {
    PodOptions::new(&format!("rt218-{}", s.pod.name), s.pod.path())
        .kubernetes_pod("default", "web", "0b5a3e7e-0000-4000-8000-000000000218")
        .port_mapping(PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None })
}

/// setup / check / remove through the pod API, plugins found in `dirs`, run in the host
/// namespace; returns what the result and the kernel showed after setup.
fn pod_api_flow(s: &Scene, dirs: Vec<PathBuf>, serial: bool) -> (Seen, Seen) {
    let [front, back] = s.lists();
    let path = s.path.path().display().to_string();
    let cni = CniRuntime::builder().plugin_dirs(dirs).cache_dir(s.cache.path()).env("PATH", &path).build().unwrap();
    let pod = PodNetworks::builder(cni).loopback().network(front).network(back).build().unwrap();
    let opts = options(s).serial(serial);
    let host = NetNs::open(s.host.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The plugins run as children of a thread inside the host namespace.
    let in_host = |op: &'static str| {
        let (pod, opts) = (pod.clone(), opts.clone());
        rt.block_on(host.run_async(move || async move {
            match op {
                "setup" => pod.setup(&opts).await.map(Some),
                "check" => pod.check(&opts).await.map(|()| None),
                _ => pod.remove(&opts).await.map(|()| None),
            }
        }))
        .unwrap()
    };
    let result = in_host("setup").unwrap_or_else(|e| panic!("setup: {e}")).unwrap();
    let ours = seen_ours(&result);
    let kernel = seen_kernel(&s.pod);
    assert!(!s.portmap_rules().is_empty(), "portmap chained: {:?}", s.host.cni_nat_rules());
    assert!(s.port_8080_reaches_the_pod(), "host port 8080 reaches the pod's port 80");
    assert_eq!(result.networks.len(), 3);
    assert_eq!(result.interfaces["eth0"].ips[0].gateway.map(|g| g.to_string()).as_deref(), Some("10.218.1.1"));
    in_host("check").unwrap_or_else(|e| panic!("check: {e}"));
    in_host("remove").unwrap_or_else(|e| panic!("remove: {e}"));
    s.assert_clean("pod API");
    (ours, kernel)
}

#[test]
#[ignore = "needs root, Debian's Go plugins and the workspace's plugins"]
fn pod_on_two_networks_and_loopback_with_our_plugins_and_gos() {
    let ours = Scene::new("o");
    let (result, kernel) = pod_api_flow(&ours, vec![our_dir(), PathBuf::from(GO_DIR)], false);
    assert_eq!(result, expected(), "our plugins, our result");
    assert_eq!(kernel, expected(), "our plugins, the kernel");

    let gos = Scene::new("g");
    let (result, kernel) = pod_api_flow(&gos, vec![PathBuf::from(GO_DIR)], true);
    assert_eq!(result, expected(), "Go's plugins, our result");
    assert_eq!(kernel, expected(), "Go's plugins, the kernel");
}

/// Removes what go-cni leaves in libcni's default cache directory if the test fails half-way.
struct GoCache(String);

impl Drop for GoCache {
    fn drop(&mut self) {
        for net in ["front", "back", "cni-loopback"] {
            for ifname in ["eth0", "eth1", "lo"] {
                let _ = std::fs::remove_file(format!("/var/lib/cni/results/{net}-{}-{ifname}", self.0));
            }
        }
    }
}

#[test]
#[ignore = "needs root, Debian's Go plugins and go-cni, and the workspace's plugins"]
fn go_cni_on_the_same_configurations_gives_the_same_interfaces_and_addresses() {
    let dirs = [our_dir(), PathBuf::from(GO_DIR)];
    // Our pod API first.
    let ours = Scene::new("a");
    let (our_result, our_kernel) = pod_api_flow(&ours, dirs.to_vec(), false);

    // go-cni, same configurations, same plugins, fresh namespaces and leases.
    let s = Scene::new("b");
    let cid = format!("rt218-{}", s.pod.name);
    let _cache = GoCache(cid.clone());
    let plugin_dirs = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":");
    let conf = s.conf.path().display().to_string();
    let portmap = r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]"#;
    let flags = [
        "-confdir",
        &conf,
        "-plugin-dirs",
        &plugin_dirs,
        "-id",
        &cid,
        "-lo",
        "-portmap",
        portmap,
        "-label",
        "K8S_POD_NAMESPACE=default",
        "-label",
        "K8S_POD_NAME=web",
        "-label",
        "IgnoreUnknown=1",
    ];
    let run = |verb: &str| {
        let out = go::gocni_cmd(&s.host, &s.pod, verb, &flags).env("PATH", s.path.path()).output().unwrap();
        go::expect_ok(&format!("go-cni {verb}"), &out)
    };
    let doc = run("setup");
    let go_result = seen_go(&doc);
    let go_kernel = seen_kernel(&s.pod);
    assert!(!s.portmap_rules().is_empty(), "portmap chained by go-cni");
    assert!(s.port_8080_reaches_the_pod());
    // go-cni's own loopback network is 0.3.1, which has no CHECK: its Check always fails on
    // it (our pod API skips such networks).
    let out = go::gocni_cmd(&s.host, &s.pod, "check", &flags).env("PATH", s.path.path()).output().unwrap();
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"], "configuration version \"0.3.1\" does not support the CHECK command", "{err}");
    run("remove");
    assert!(s.pod.link_names().is_empty(), "{:?}", s.pod.link_names());
    assert!(s.pod_nat_rules().is_empty(), "{:?}", s.pod_nat_rules());
    for net in ["front", "back"] {
        assert!(leases(s.data.path(), net).is_empty(), "go-cni released {net}");
    }

    assert_eq!(go_result, our_result, "the same interfaces and addresses in both results");
    assert_eq!(go_kernel, our_kernel, "the same interfaces and addresses in the pod");
    assert_eq!(our_result, expected());
}
