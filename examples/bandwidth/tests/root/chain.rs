//! The chain every Kubernetes node runs, through Go's libcni (the library containerd and CRI-O
//! embed): bridge → portmap → tuning → bandwidth → firewall, with the `portMappings` and
//! `bandwidth` capabilities, ADD / CHECK / DEL, with each of the five plugins ours or Go's
//! (Debian 1.1.1) — all 32 mixes, so ours run after Go's bridge and Go's after ours. Ours are the
//! multi-call binary `cni-plugins` behind symlinks (built on demand). IPAM is Go's host-local.
//! Everything, libcni included, runs in throwaway namespaces. Needs root and the libcni front end
//! (`bash ../shared/interop/build.sh target/interop/libcni-cnitool`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cni_sdk::netns::NetNs;
use cni_test_support::{Netns, go, wait_until};
use serde_json::{Value, json};

use crate::common::OURS;

/// The plugins of the chain, in order.
const CHAIN: [&str; 5] = ["bridge", "portmap", "tuning", "bandwidth", "firewall"];

/// The multi-call binary next to ours, built if it is missing or stale.
fn multicall() -> PathBuf {
    let bin = Path::new(OURS).parent().unwrap().join("cni-plugins");
    let st = Command::new(env!("CARGO"))
        .args(["build", "-p", "cni-plugins", "--bin", "cni-plugins"])
        .current_dir(cni_test_support::workspace_root())
        .status()
        .expect("run cargo");
    assert!(st.success() && bin.is_file(), "could not build cni-plugins into {}", bin.display());
    bin
}

/// Serves `reply` on TCP `port` inside `ns` (to every connection, for 30 s).
fn serve(ns: &Netns, port: u16, reply: &'static str) {
    let listener = NetNs::open(ns.path())
        .unwrap()
        .run(move || {
            let l = TcpListener::bind(SocketAddr::from(([0u8; 4], port))).expect("bind in the container");
            l.set_nonblocking(true).unwrap();
            l
        })
        .unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let _ = s.write_all(reply.as_bytes());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => return,
            }
        }
    });
}

/// Connects from inside `ns` to `addr` and reads the reply (an error text when it fails).
fn fetch(ns: &Netns, addr: &str) -> String {
    let addr: SocketAddr = addr.parse().unwrap();
    NetNs::open(ns.path())
        .unwrap()
        .run(move || -> String {
            let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                Ok(s) => s,
                Err(e) => return format!("connect failed: {e}"),
            };
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut out = String::new();
            match s.read_to_string(&mut out) {
                Ok(_) => out,
                Err(e) => format!("read failed: {e}"),
            }
        })
        .unwrap()
}

/// One mix: bit `i` of `mask` set means Go's `CHAIN[i]`.
fn describe(mask: u8) -> String {
    CHAIN
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}-{p}", if mask & (1 << i) != 0 { "go" } else { "ours" }))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Run<'a> {
    host: &'a Netns,
    ctr: &'a Netns,
    confdir: PathBuf,
    cache: PathBuf,
    bin: PathBuf,
    caps: Value,
}

impl Run<'_> {
    fn libcni(&self, verb: &str) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.host.name])
            .arg(go::libcni_cnitool())
            .args([verb, "m3chain", &self.ctr.path()])
            .env("CNI_CONTAINERID", format!("m3chain-{}", self.ctr.name))
            .env("NETCONFPATH", &self.confdir)
            .env("CNI_CACHE_DIR", &self.cache)
            .env("CNI_PATH", &self.bin)
            .env("CAP_ARGS", self.caps.to_string())
            .output()
            .expect("run libcni-cnitool")
    }
}

/// The host's qdiscs as `(dev, kind)`, without the defaults.
fn shaping(host: &Netns) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&host.sh(&["tc", "-j", "qdisc", "show"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|q| q["kind"] == "tbf" || q["kind"] == "ingress")
        .map(|q| (q["dev"].as_str().unwrap().to_owned(), q["kind"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn bridge_portmap_tuning_bandwidth_firewall_through_libcni_in_every_mix() {
    let ours = multicall();
    for mask in 0u8..32 {
        let what = describe(mask);
        let go_plugin = |i: usize| mask & (1 << i) != 0;
        let n = 130 + mask;
        let host = Netns::new("m3chain");
        let ctr = Netns::new("m3chainc");
        let dir = tempfile::tempdir().unwrap();
        let (confdir, cache, bin) = (dir.path().join("conf"), dir.path().join("cache"), dir.path().join("bin"));
        for d in [&confdir, &cache, &bin] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::symlink(go::plugin("host-local"), bin.join("host-local")).unwrap();
        for (i, name) in CHAIN.iter().enumerate() {
            let target = if go_plugin(i) { go::plugin(name) } else { ours.clone() };
            std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
        }
        let data = |p: &str| dir.path().join(p);
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": "m3chain",
            "plugins": [
                {
                    "type": "bridge", "bridge": "m3ch-br0", "isGateway": true,
                    "ipam": {"type": "host-local", "dataDir": data("ipam"), "ranges": [[{"subnet": format!("10.226.{n}.0/24")}]]}
                },
                {"type": "portmap", "capabilities": {"portMappings": true}, "dataDir": data("portmap")},
                {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}, "dataDir": data("tuning")},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}, "dataDir": data("bandwidth")},
                {"type": "firewall", "dataDir": data("firewall")}
            ]
        });
        std::fs::write(confdir.join("10-m3chain.conflist"), conflist.to_string()).unwrap();
        let caps = json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 800_000, "egressRate": 4_000_000, "egressBurst": 400_000},
        });
        let run = Run { host: &host, ctr: &ctr, confdir, cache, bin, caps };

        let out = run.libcni("add");
        assert!(out.status.success(), "{what}: add: {}", String::from_utf8_lossy(&out.stderr));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ip = format!("10.226.{n}.2");
        assert_eq!(result["ips"][0]["address"], format!("{ip}/24"), "{what}");
        // bandwidth appended its ifb; it shapes both ways.
        let cid = format!("m3chain-{}", ctr.name);
        let ifb = bandwidth::ifb_name("m3chain", &cid);
        let names: Vec<&str> =
            result["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(names.last(), Some(&ifb.as_str()), "{what}: {names:?}");
        let veth = names[1].to_owned();
        let mut q = shaping(&host);
        q.sort();
        let mut want = vec![
            (ifb.clone(), "tbf".to_owned()),
            (veth.clone(), "ingress".to_owned()),
            (veth.clone(), "tbf".to_owned()),
        ];
        want.sort();
        assert_eq!(q, want, "{what}");
        // tuning, firewall, portmap.
        assert_eq!(ctr.sysctl("net.ipv4.conf.eth0.arp_ignore"), "1", "{what}");
        let forward = host.sh(&["iptables", "-w", "-S", "CNI-FORWARD"]);
        assert!(forward.contains(&format!("-d {ip}/32")), "{what}: {forward}");
        serve(&ctr, 80, "chained");
        let gw = format!("10.226.{n}.1:8080");
        wait_until("the forwarded port", Duration::from_secs(5), || fetch(&host, &gw) == "chained");

        // Go's portmap 1.1.1 fails CHECK on every IPv4-only container (bug B1).
        if !go_plugin(1) {
            let out = run.libcni("check");
            assert!(out.status.success(), "{what}: check: {}", String::from_utf8_lossy(&out.stderr));
        }

        let out = run.libcni("del");
        assert!(out.status.success(), "{what}: del: {}", String::from_utf8_lossy(&out.stderr));
        assert!(host.link(&ifb).is_none(), "{what}: the ifb is left");
        assert!(host.link(&veth).is_none(), "{what}: the veth is left");
        assert!(shaping(&host).is_empty(), "{what}: {:?}", shaping(&host));
        assert!(host.cni_nat_rules().iter().all(|l| !l.contains("CNI-DN-")), "{what}: {:?}", host.cni_nat_rules());
        let forward = host.sh(&["iptables", "-w", "-S", "CNI-FORWARD"]);
        assert!(!forward.contains(&ip), "{what}: {forward}");
        assert!(ctr.link("eth0").is_none(), "{what}");
        assert!(fetch(&host, &gw).starts_with("connect failed"), "{what}");
        let out = run.libcni("del");
        assert!(out.status.success(), "{what}: second del: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The multi-call binary answers as bandwidth, sbr and vrf, with each one's versions.
#[test]
#[ignore = "needs root"]
fn the_multicall_binary_is_bandwidth_sbr_and_vrf() {
    let ours = multicall();
    let dir = tempfile::tempdir().unwrap();
    for (name, versions) in [
        ("bandwidth", json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])),
        ("sbr", json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])),
        ("vrf", json!(["0.3.1", "0.4.0", "1.0.0", "1.1.0"])),
    ] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(&ours, &link).unwrap();
        let r = cni_test_support::exec(&link, &[("CNI_COMMAND", "VERSION")], br#"{"cniVersion": "1.0.0"}"#);
        assert_eq!(r.ok()["supportedVersions"], versions, "{name}");
    }
    // A request through each: the plugin's own error.
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c"),
        ("CNI_NETNS", "/nonexistent"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ];
    let conf = |t: &str| {
        format!(r#"{{"cniVersion": "1.0.0", "name": "n", "type": "{t}", "vrfname": "blue", "egressRate": 8}}"#)
    };
    for (name, msg) in [
        ("bandwidth", "if rate is set, burst must also be set"),
        ("sbr", "This plugin must be called as chained plugin"),
        ("vrf", "missing prevResult from earlier plugin"),
    ] {
        let r = cni_test_support::exec(dir.path().join(name), &env, conf(name).as_bytes());
        assert_eq!(r.err_msg(), msg, "{name}");
    }
}
