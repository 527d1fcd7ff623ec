//! Helpers for the root tests: throwaway network namespaces for both the "host" (where the
//! plugin runs, so bridges, host veths, sysctls and iptables rules never touch the real host) and
//! the container, plugin runs, and kernel state read with `ip -j` and `iptables -S`.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// Debian's Go plugins.
pub const GO_PLUGINS: &str = "/usr/lib/cni";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, deleted on drop (which also deletes everything in it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("cnitest-{tag}-{}-{n}", std::process::id());
        let st = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(st.success(), "ip netns add {name} failed (root needed)");
        let ns = Self { name };
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace and returns its stdout (panics on failure).
    pub fn sh(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("ip netns exec");
        assert!(out.status.success(), "{args:?} in {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command run inside the namespace.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// `ip -j -d <args>` in the namespace.
    pub fn ip_j(&self, args: &[&str]) -> Value {
        let mut a = vec!["ip", "-j", "-d"];
        a.extend(args);
        let out = self.sh(&a);
        if out.trim().is_empty() {
            Value::Array(vec![])
        } else {
            serde_json::from_str(&out).expect("ip -j prints JSON")
        }
    }

    /// All links.
    pub fn links(&self) -> Vec<Value> {
        self.ip_j(&["link", "show"]).as_array().cloned().unwrap_or_default()
    }

    pub fn link(&self, name: &str) -> Option<Value> {
        self.links().into_iter().find(|l| l["ifname"] == name)
    }

    /// Names of links other than lo.
    pub fn link_names(&self) -> Vec<String> {
        self.links().iter().map(|l| l["ifname"].as_str().unwrap().to_owned()).filter(|n| n != "lo").collect()
    }

    /// `local/prefixlen` of every address of `dev` (global scope).
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_j(&["addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for l in v.as_array().unwrap() {
            for a in l["addr_info"].as_array().unwrap() {
                if a["scope"] == "global" {
                    out.push(format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]));
                }
            }
        }
        out
    }

    /// IPv4 routes of the main table.
    pub fn routes4(&self) -> Vec<Value> {
        self.ip_j(&["-4", "route", "show"]).as_array().cloned().unwrap_or_default()
    }

    /// IPv6 routes of the main table.
    pub fn routes6(&self) -> Vec<Value> {
        self.ip_j(&["-6", "route", "show"]).as_array().cloned().unwrap_or_default()
    }

    /// `iptables -t nat -S` (or ip6tables).
    pub fn nat(&self, v6: bool) -> String {
        self.sh(&[if v6 { "ip6tables" } else { "iptables" }, "-w", "-t", "nat", "-S"])
    }

    /// The nat rules that mention CNI chains.
    pub fn cni_nat_rules(&self) -> Vec<String> {
        let mut all = self.nat(false);
        all.push_str(&self.nat(true));
        all.lines().filter(|l| l.contains("CNI-")).map(str::to_owned).collect()
    }

    pub fn sysctl(&self, key: &str) -> String {
        self.sh(&["sysctl", "-n", key]).trim().to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// A plugin invocation.
pub struct Call<'a> {
    pub bin: PathBuf,
    pub host: &'a Netns,
    pub cmd: &'a str,
    pub conf: String,
    pub netns: Option<String>,
    pub ifname: &'a str,
    pub cid: &'a str,
    pub cni_path: String,
    pub args: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn new(bin: impl AsRef<Path>, host: &'a Netns, cmd: &'a str, conf: &Value, ctr: &Netns, cid: &'a str) -> Self {
        Self {
            bin: bin.as_ref().to_owned(),
            host,
            cmd,
            conf: conf.to_string(),
            netns: Some(ctr.path()),
            ifname: "eth0",
            cid,
            cni_path: GO_PLUGINS.to_owned(),
            args: None,
        }
    }

    pub fn command(&self) -> Command {
        let bin = self.bin.display().to_string();
        let mut c = self.host.cmd(&[&bin]);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
            .env("CNI_COMMAND", self.cmd)
            .env("CNI_CONTAINERID", self.cid)
            .env("CNI_IFNAME", self.ifname)
            .env("CNI_PATH", &self.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ns) = &self.netns {
            c.env("CNI_NETNS", ns);
        }
        if let Some(a) = self.args {
            c.env("CNI_ARGS", a);
        }
        c
    }

    pub fn run(&self) -> Output {
        use std::io::Write;
        let mut child = self.command().spawn().expect("spawn plugin");
        // A plugin may exit before reading stdin (an early error): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(self.conf.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// Runs and expects success; returns stdout parsed as JSON (Null when empty).
    pub fn ok(&self) -> Value {
        let out = self.run();
        assert!(
            out.status.success(),
            "{} {} failed: {}\nstderr: {}",
            self.bin.display(),
            self.cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.is_empty() { Value::Null } else { serde_json::from_slice(&out.stdout).expect("JSON on stdout") }
    }

    /// Runs and expects failure; returns the error object.
    pub fn err(&self) -> Value {
        let out = self.run();
        assert!(
            !out.status.success(),
            "{} {} unexpectedly succeeded: {}",
            self.bin.display(),
            self.cmd,
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("error JSON expected: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// The files of a host-local data directory for network `net` (lease files and the rest).
pub fn leases(data_dir: &Path, net: &str) -> Vec<String> {
    std::fs::read_dir(data_dir.join(net))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                .collect()
        })
        .unwrap_or_default()
}

/// Go libcni's cnitool (`LIBCNI_CNITOOL`, else `<workspace>/target/interop/libcni-cnitool`).
pub fn cnitool() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = std::env::var_os("LIBCNI_CNITOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/interop/libcni-cnitool"));
    assert!(
        p.is_file(),
        "{} missing: run bash ../shared/interop/build.sh target/interop/libcni-cnitool (as .ci/run does)",
        p.display()
    );
    p
}

/// Runs Go libcni's cnitool `verb` for network `net` on `ctr`, inside the `host` namespace.
pub fn libcni(
    host: &Netns,
    verb: &str,
    net: &str,
    confdir: &Path,
    cachedir: &Path,
    cni_path: &str,
    ctr: &Netns,
) -> Output {
    let tool = cnitool().display().to_string();
    host.cmd(&[&tool, verb, net, &ctr.path()])
        .env("CNI_CONTAINERID", format!("libcni-{}", ctr.name))
        .env("NETCONFPATH", confdir)
        .env("CNI_CACHE_DIR", cachedir)
        .env("CNI_PATH", cni_path)
        .output()
        .expect("run libcni-cnitool")
}

/// Panics with the tool's output unless it succeeded; returns stdout as JSON (Null if empty).
pub fn expect_ok(what: &str, out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("JSON")
    }
}
