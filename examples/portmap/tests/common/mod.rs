//! What the root tests share: a throwaway "host" namespace with a real bridge and a container
//! made by Go's bridge plugin (Debian 1.1.1) and host-local, portmap configurations, the nat
//! state read back, and a TCP round trip through a forwarded port.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use cni_sdk::netns::NetNs;
use cni_test_support::{Call, Netns, go, wait_until};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_portmap");
pub const NET: &str = "pmroot";
pub const BRIDGE: &str = "pmr-br0";

/// A host namespace with Go's bridge on `BRIDGE` (10.222.`i`.0/24, fd00:222:`i`::/64).
pub struct Host {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    pub i: u8,
}

/// One container on the host's bridge, with the bridge plugin's result.
pub struct Pod {
    pub ns: Netns,
    pub cid: String,
    pub result: Value,
}

impl Host {
    pub fn new(tag: &str, i: u8) -> Self {
        Self { ns: Netns::new(tag), dir: tempfile::tempdir().unwrap(), i }
    }

    pub fn gateway4(&self) -> String {
        format!("10.222.{}.1", self.i)
    }

    pub fn gateway6(&self) -> String {
        format!("fd00:222:{}::1", self.i)
    }

    fn bridge_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "dataDir": self.dir.path().join("ipam"),
                "ranges": [[{"subnet": format!("10.222.{}.0/24", self.i)}], [{"subnet": format!("fd00:222:{}::/64", self.i)}]]
            }
        })
    }

    /// A container attached by Go's bridge plugin.
    pub fn pod(&self, cid: &str) -> Pod {
        let ns = Netns::new("pmc");
        let result = Call::new(go::plugin("bridge"), "ADD", &self.bridge_conf(), cid).in_ns(&self.ns).netns(&ns).ok();
        // Wait until both ends' IPv6 addresses are usable (DAD done).
        wait_until("IPv6 DAD in the container and on the bridge", Duration::from_secs(10), || {
            !ns.sh(&["ip", "-6", "addr", "show", "dev", "eth0", "tentative"]).contains("inet6")
                && !self.ns.sh(&["ip", "-6", "addr", "show", "dev", BRIDGE, "tentative"]).contains("inet6")
        });
        Pod { ns, cid: cid.to_owned(), result }
    }

    /// portmap's configuration for `pod`, with `mappings` and extra keys.
    pub fn conf(&self, pod: &Pod, mappings: Value, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "portmap",
            "dataDir": self.dir.path().join("portmap"),
            "runtimeConfig": {"portMappings": mappings},
            "prevResult": pod.result,
        });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    /// A call of `bin` for `pod` from inside the host namespace.
    pub fn call(&self, bin: impl AsRef<Path>, cmd: &str, pod: &Pod, conf: &Value) -> Call {
        Call::new(bin, cmd, conf, &pod.cid).in_ns(&self.ns).netns(&pod.ns)
    }

    /// `iptables -t nat -S` (or ip6tables) lines, sorted.
    pub fn nat_lines(&self, v6: bool) -> Vec<String> {
        let mut v: Vec<String> = self.ns.nat(v6).lines().map(str::to_owned).collect();
        v.sort();
        v
    }

    /// The nat lines of both families that mention `what`.
    pub fn nat_mentions(&self, what: &str) -> Vec<String> {
        let mut all = self.nat_lines(false);
        all.extend(self.nat_lines(true));
        all.into_iter().filter(|l| l.contains(what)).collect()
    }

    /// `nft -j list ruleset` in the host namespace.
    pub fn nft_ruleset(&self) -> Value {
        serde_json::from_str(&self.ns.sh(&["nft", "-j", "list", "ruleset"])).expect("nft -j prints JSON")
    }

    /// The nft rules (JSON objects) of `family cni_hostport <chain>`.
    pub fn nft_rules(&self, family: &str, chain: &str) -> Vec<Value> {
        self.nft_ruleset()["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("rule"))
            .filter(|r| r["family"] == family && r["table"] == "cni_hostport" && r["chain"] == chain)
            .cloned()
            .collect()
    }

    /// The names of the chains of `family cni_hostport`.
    pub fn nft_chains(&self, family: &str) -> Vec<String> {
        self.nft_ruleset()["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("chain"))
            .filter(|c| c["family"] == family && c["table"] == "cni_hostport")
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Pod {
    /// The container's address of a family (without prefix).
    pub fn addr(&self, v6: bool) -> String {
        self.result["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["address"].as_str().unwrap())
            .find(|a| a.contains(':') == v6)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    }
}

/// Listens on `port` (both families) inside the container namespace `ctr` and answers `reply`
/// to every connection, in the background (for 20 s).
pub fn serve(ctr: &Netns, port: u16, reply: &'static str) -> std::thread::JoinHandle<()> {
    let ns = NetNs::open(ctr.path()).unwrap();
    let listener = ns
        .run(move || {
            let l = TcpListener::bind(SocketAddr::from(([0u16; 8], port))).expect("bind in the container");
            l.set_nonblocking(true).unwrap();
            l
        })
        .unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
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
    })
}

/// Connects from inside `ns` to `addr` and reads the reply (an error text when it fails).
pub fn fetch(ns: &Netns, addr: &str) -> String {
    let netns = NetNs::open(ns.path()).unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    netns
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

/// Debian's Go portmap (1.1.1).
pub fn go_portmap() -> std::path::PathBuf {
    go::plugin("portmap")
}
