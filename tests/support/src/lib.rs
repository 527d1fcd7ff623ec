//! What the workspace's tests share, so no package copies it: throwaway network namespaces read
//! back with `ip -j` ([`Netns`]), plugin binaries run the way a runtime runs them ([`Call`],
//! [`Run`]), Debian's Go plugins and the Go libcni front end ([`go`]), host-local stores
//! ([`leases`]), and killing a plugin with its children part-way ([`Spawned::kill_group`]).
//!
//! Tests that need root are marked `#[ignore = "needs root"]` and run with
//! `cargo test -- --include-ignored` as root; everything they create lives in namespaces this
//! crate makes and removes on drop.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod go;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix>-<tag>-<pid>-<n>`.
pub fn unique_name(prefix: &str, tag: &str) -> String {
    format!("{prefix}-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// A named network namespace (`ip netns add`), deleted on drop, which also deletes every link,
/// address, route, sysctl and firewall rule in it.
#[derive(Debug)]
pub struct Netns {
    /// The name under `/var/run/netns`.
    pub name: String,
}

impl Netns {
    /// Creates `cnitest-<tag>-<pid>-<n>` with `lo` up.
    ///
    /// # Panics
    /// When the namespace cannot be created (not root).
    pub fn new(tag: &str) -> Self {
        let ns = Self::bare(tag);
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Creates `cnitest-<tag>-<pid>-<n>` as the kernel makes it: `lo` down.
    ///
    /// # Panics
    /// When the namespace cannot be created (not root).
    pub fn bare(tag: &str) -> Self {
        let name = unique_name("cnitest", tag);
        let st = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(st.success(), "ip netns add {name} failed (root needed)");
        Self { name }
    }

    /// The path runtimes pass as `CNI_NETNS`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace and returns its stdout.
    ///
    /// # Panics
    /// When the command fails.
    pub fn sh(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("ip netns exec");
        assert!(out.status.success(), "{args:?} in {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command inside the namespace, whatever its outcome.
    pub fn try_sh(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("ip netns exec")
    }

    /// A command that runs inside the namespace.
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

    /// All links (`ip -j -d link show`).
    pub fn links(&self) -> Vec<Value> {
        self.ip_j(&["link", "show"]).as_array().cloned().unwrap_or_default()
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<Value> {
        self.links().into_iter().find(|l| l["ifname"] == name)
    }

    /// The names of the links other than `lo`.
    pub fn link_names(&self) -> Vec<String> {
        self.links().iter().map(|l| l["ifname"].as_str().unwrap_or_default().to_owned()).filter(|n| n != "lo").collect()
    }

    /// `local/prefixlen` of every global-scope address of `dev`.
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_j(&["addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for l in v.as_array().into_iter().flatten() {
            for a in l["addr_info"].as_array().into_iter().flatten() {
                if a["scope"] == "global" {
                    out.push(format!("{}/{}", a["local"].as_str().unwrap_or_default(), a["prefixlen"]));
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

    /// The nat rules (both families) that mention CNI chains.
    pub fn cni_nat_rules(&self) -> Vec<String> {
        let mut all = self.nat(false);
        all.push_str(&self.nat(true));
        all.lines().filter(|l| l.contains("CNI-")).map(str::to_owned).collect()
    }

    /// Deletes the namespace now (what dropping it does), e.g. to test a DEL after the
    /// container is gone; returns the path it had.
    pub fn remove(self) -> String {
        self.path()
    }

    /// A sysctl's value (`sysctl -n`).
    pub fn sysctl(&self, key: &str) -> String {
        self.sh(&["sysctl", "-n", key]).trim().to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// What a plugin run printed.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    fn of(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout as exactly one JSON document.
    ///
    /// # Panics
    /// When it is not.
    pub fn doc(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e}): {:?}\nstderr: {}", self.stdout, self.stderr)
        })
    }

    /// Asserts success; returns the document (`Null` when stdout is empty).
    ///
    /// # Panics
    /// On failure.
    pub fn ok(&self) -> Value {
        assert!(self.success(), "failed ({:?}): {}\nstderr: {}", self.code, self.stdout, self.stderr);
        if self.stdout.trim().is_empty() { Value::Null } else { self.doc() }
    }

    /// Asserts failure; returns the error object.
    ///
    /// # Panics
    /// On success or when stdout is not an error object.
    pub fn err(&self) -> Value {
        assert!(!self.success(), "unexpected success: {}", self.stdout);
        self.doc()
    }

    /// Asserts failure; returns the error's `msg`.
    pub fn err_msg(&self) -> String {
        self.err()["msg"].as_str().unwrap_or_default().to_owned()
    }
}

/// One plugin invocation the way a runtime makes it: a cleared environment with the `CNI_*`
/// variables (plus `PATH`, for plugins that run iptables), the configuration on stdin, run in
/// the caller's namespace or inside `host`.
#[derive(Debug, Clone)]
pub struct Call {
    /// The plugin binary.
    pub bin: PathBuf,
    /// The namespace the plugin runs in (`None`: the test's own).
    pub host: Option<String>,
    /// `CNI_COMMAND`.
    pub cmd: String,
    /// stdin.
    pub stdin: Vec<u8>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_CONTAINERID`.
    pub cid: String,
    /// `CNI_PATH`.
    pub cni_path: String,
    /// `CNI_ARGS`.
    pub args: Option<String>,
    /// Other variables.
    pub env: Vec<(String, String)>,
}

/// The environment variable that redirects plugin binaries to a directory of links to the
/// multi-call binary (`cni-plugins install DIR`), so the same black-box tests run against it.
pub const PLUGIN_DIR_ENV: &str = "CNI_TEST_PLUGIN_DIR";

/// The binary to run for `bin`: `$CNI_TEST_PLUGIN_DIR/<file name of bin>` when that variable is
/// set and the file exists there, else `bin` itself. Go's reference plugins (under
/// [`go::PLUGIN_DIR`]), which the tests compare ours with, are never redirected.
pub fn plugin_bin(bin: impl AsRef<Path>) -> PathBuf {
    let bin = bin.as_ref();
    if bin.starts_with(go::PLUGIN_DIR) {
        return bin.to_owned();
    }
    if let (Some(dir), Some(name)) = (std::env::var_os(PLUGIN_DIR_ENV), bin.file_name()) {
        let redirected = Path::new(&dir).join(name);
        if redirected.exists() {
            return redirected;
        }
    }
    bin.to_owned()
}

impl Call {
    /// `cmd` of `bin` with `conf` for container `cid`, interface `eth0`, `CNI_PATH` = Go's
    /// plugins. `bin` is redirected by [`PLUGIN_DIR_ENV`] (see [`plugin_bin`]).
    pub fn new(bin: impl AsRef<Path>, cmd: &str, conf: &Value, cid: &str) -> Self {
        Self {
            bin: plugin_bin(bin),
            host: None,
            cmd: cmd.to_owned(),
            stdin: conf.to_string().into_bytes(),
            netns: None,
            ifname: "eth0".to_owned(),
            cid: cid.to_owned(),
            cni_path: go::PLUGIN_DIR.to_owned(),
            args: None,
            env: Vec::new(),
        }
    }

    /// Runs the plugin inside `host` (its "host" namespace).
    #[must_use]
    pub fn in_ns(mut self, host: &Netns) -> Self {
        self.host = Some(host.name.clone());
        self
    }

    /// `CNI_NETNS` = the path of `ctr`.
    #[must_use]
    pub fn netns(mut self, ctr: &Netns) -> Self {
        self.netns = Some(ctr.path());
        self
    }

    /// `CNI_NETNS` = `path`.
    #[must_use]
    pub fn netns_path(mut self, path: &str) -> Self {
        self.netns = Some(path.to_owned());
        self
    }

    /// `CNI_IFNAME`.
    #[must_use]
    pub fn ifname(mut self, ifname: &str) -> Self {
        self.ifname = ifname.to_owned();
        self
    }

    /// `CNI_PATH`.
    #[must_use]
    pub fn cni_path(mut self, path: &str) -> Self {
        self.cni_path = path.to_owned();
        self
    }

    /// `CNI_ARGS`.
    #[must_use]
    pub fn args(mut self, args: &str) -> Self {
        self.args = Some(args.to_owned());
        self
    }

    /// Another environment variable.
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The same call for another verb.
    #[must_use]
    pub fn verb(&self, cmd: &str) -> Self {
        Self { cmd: cmd.to_owned(), ..self.clone() }
    }

    /// The process to spawn.
    pub fn command(&self) -> Command {
        let mut c = match &self.host {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
            .env("CNI_COMMAND", &self.cmd)
            .env("CNI_CONTAINERID", &self.cid)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_PATH", &self.cni_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ns) = &self.netns {
            c.env("CNI_NETNS", ns);
        }
        if let Some(a) = &self.args {
            c.env("CNI_ARGS", a);
        }
        c
    }

    /// Runs the plugin to completion.
    pub fn run(&self) -> Run {
        let child = self.command().spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        Run::of(feed(child, &self.stdin).wait_with_output().expect("wait for the plugin"))
    }

    /// Runs and expects success; returns the document (`Null` when stdout is empty).
    pub fn ok(&self) -> Value {
        let r = self.run();
        assert!(r.success(), "{} {} failed: {}\nstderr: {}", self.bin.display(), self.cmd, r.stdout, r.stderr);
        r.ok()
    }

    /// Runs and expects failure; returns the error object.
    pub fn err(&self) -> Value {
        let r = self.run();
        assert!(!r.success(), "{} {} unexpectedly succeeded: {}", self.bin.display(), self.cmd, r.stdout);
        r.err()
    }

    /// Starts the plugin in a process group of its own (so it can be killed with the plugins it
    /// delegates to) and writes its stdin.
    pub fn spawn_in_own_group(&self) -> Spawned {
        let mut cmd = self.command();
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        Spawned { child: feed(child, &self.stdin) }
    }
}

/// Runs `bin` with exactly the environment `env` (nothing inherited) and `stdin`: for tests of
/// the protocol edges (missing or malformed variables) that [`Call`] would fill in.
pub fn exec(bin: impl AsRef<Path>, env: &[(&str, &str)], stdin: &[u8]) -> Run {
    let bin = &plugin_bin(bin);
    let child = Command::new(bin)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    Run::of(feed(child, stdin).wait_with_output().expect("wait for the plugin"))
}

/// Writes stdin (a plugin that exits before reading it is fine: a broken pipe is ignored).
fn feed(mut child: Child, stdin: &[u8]) -> Child {
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin);
    }
    child
}

/// A plugin process started by [`Call::spawn_in_own_group`].
#[derive(Debug)]
pub struct Spawned {
    /// The process (leader of its own group).
    pub child: Child,
}

impl Spawned {
    /// SIGKILLs the whole process group (the plugin and every delegate it started), then reaps
    /// the plugin, as kubelet's timeouts and OOM kills do.
    pub fn kill_group(mut self) {
        let pgid = i32::try_from(self.child.id()).expect("pid fits in i32");
        // SAFETY: kill(2) on the process group of a child this process spawned as its leader.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Waits for the plugin to finish on its own.
    pub fn wait(self) -> Run {
        Run::of(self.child.wait_with_output().expect("wait for the plugin"))
    }
}

/// Waits until `cond` holds, polling every 10 ms; panics with `what` after `timeout`.
///
/// For waiting on *outside* events (a file a delegate writes, a socket appearing); never a
/// substitute for synchronisation inside the code under test.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lease files of network `net` in a host-local data directory (not `lock`, the cursors or
/// hidden files).
pub fn leases(data_dir: &Path, net: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(data_dir.join(net))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip") && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// An executable shell script `dir/name` with `body`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    p
}

/// A small reproducible random source for load and chaos tests (xorshift64*): the same seed
/// gives the same sequence, so a failing run replays from its printed seed.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// The source for `seed` (a non-zero seed; zero yields only zeros).
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The number in the environment variable `key`, else `default` (sizes of optional larger runs).
pub fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
