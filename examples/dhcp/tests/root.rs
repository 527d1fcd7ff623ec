//! The binary against a real DHCP server (Debian's dnsmasq) in throwaway namespaces: the
//! server's namespace and the container's are joined by a veth pair, the daemon and the shim
//! run in a third ("host") namespace, sockets and state live in a temporary directory.
//!
//! Needs root and `dnsmasq` (`apt-get install -y dnsmasq-base`). Subnets: 10.219.11-19.0/24.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cni_test_support::{Call, Netns, wait_until};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dhcp");

/// A process killed (SIGTERM, then SIGKILL) on drop.
struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn spawn(mut cmd: Command, log: &Path) -> Self {
        let out = fs::File::create(log).unwrap();
        cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
        Self { child: Some(cmd.spawn().expect("spawn")) }
    }

    /// SIGTERM and wait; returns the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on a child this test spawned and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return child.wait().ok().and_then(|s| s.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The server side: namespace `srv` with `dh0` = `<subnet>.1/24` and dnsmasq on it; the
/// container `ctr` with the other end as `eth0`.
struct Lab {
    tmp: tempfile::TempDir,
    subnet: String,
    host: Netns,
    srv: Netns,
    ctr: Netns,
    dnsmasq: Option<Proc>,
}

impl Lab {
    fn new(tag: &str, subnet: &str, with_server: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (host, srv, ctr) =
            (Netns::new(&format!("{tag}h")), Netns::new(&format!("{tag}s")), Netns::new(&format!("{tag}c")));
        srv.sh(&["ip", "link", "add", "dh0", "type", "veth", "peer", "name", "eth0", "netns", &ctr.name]);
        srv.sh(&["ip", "addr", "add", &format!("{subnet}.1/24"), "dev", "dh0"]);
        srv.sh(&["ip", "link", "set", "dh0", "up"]);
        let mut lab = Self { tmp, subnet: subnet.to_owned(), host, srv, ctr, dnsmasq: None };
        if with_server {
            lab.start_dnsmasq();
        }
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn start_dnsmasq(&mut self) {
        let s = &self.subnet;
        let mut cmd = self.srv.cmd(&["dnsmasq"]);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--interface=dh0",
            "--bind-interfaces",
            "--no-ping",
            "--dhcp-authoritative",
            "--log-dhcp",
            "--user=root",
            "--group=root",
        ]);
        cmd.arg(format!("--dhcp-range={s}.50,{s}.99,255.255.255.0,2m"));
        cmd.arg(format!("--dhcp-option=option:router,{s}.1"));
        cmd.arg(format!("--dhcp-option=option:classless-static-route,{s}.0/24,0.0.0.0,10.219.99.0/24,{s}.1"));
        cmd.arg("--dhcp-option=option:T1,8");
        cmd.arg("--dhcp-option=option:T2,100");
        cmd.arg(format!("--dhcp-leasefile={}", self.path("dnsmasq.leases").display()));
        cmd.arg(format!("--log-facility={}", self.path("dnsmasq.log").display()));
        cmd.arg(format!("--pid-file={}", self.path("dnsmasq.pid").display()));
        self.dnsmasq = Some(Proc::spawn(cmd, &self.path("dnsmasq.out")));
        wait_until("dnsmasq to start", Duration::from_secs(10), || self.log().contains("DHCP, IP range"));
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("dnsmasq.log")).unwrap_or_default()
    }

    fn leases(&self) -> String {
        fs::read_to_string(self.path("dnsmasq.leases")).unwrap_or_default()
    }

    fn count(&self, what: &str) -> usize {
        self.log().lines().filter(|l| l.contains(what)).count()
    }

    fn socket(&self) -> PathBuf {
        self.path("dhcp.sock")
    }

    fn state(&self) -> PathBuf {
        self.path("leases")
    }

    fn lease_files(&self) -> Vec<String> {
        fs::read_dir(self.state())
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| !n.starts_with('.')).collect())
            .unwrap_or_default()
    }

    /// `dhcp daemon` in the host namespace.
    fn daemon(&self, extra: &[&str]) -> Proc {
        let mut cmd = self.host.cmd(&[BIN, "daemon"]);
        cmd.arg("-socketpath")
            .arg(self.socket())
            .arg(format!("-statedir={}", self.state().display()))
            .arg("--pidfile")
            .arg(self.path("dhcp.pid"))
            .args(["-timeout", "2s", "-resendtimeout=20s"])
            .args(extra);
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let p = Proc::spawn(cmd, &self.path(&format!("daemon-{}.log", RUNS.fetch_add(1, Ordering::SeqCst))));
        let sock = self.socket();
        wait_until("the daemon's socket", Duration::from_secs(10), || UnixStream::connect(&sock).is_ok());
        p
    }

    fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "dhcpnet",
            "type": "macvlan",
            "ipam": {"type": "dhcp", "daemonSocketPath": self.socket(), "request": [{"option": "121"}]}
        })
    }

    fn call(&self, cmd: &str, version: &str, cid: &str) -> Call {
        Call::new(BIN, cmd, &self.conf(version), cid).in_ns(&self.host).netns(&self.ctr)
    }

    /// What the main plugin would do with the result: put the address on eth0.
    fn configure(&self, address: &str) {
        self.ctr.sh(&["ip", "addr", "add", address, "dev", "eth0"]);
    }
}

#[test]
#[ignore = "needs root"]
fn lease_renewal_and_release_with_dnsmasq() {
    let lab = Lab::new("dhA", "10.219.11", true);
    let mut daemon = lab.daemon(&[]);
    let r = lab.call("ADD", "1.0.0", "ctr-a").ok();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_owned();
    assert!(addr.starts_with("10.219.11.") && addr.ends_with("/24"), "{r}");
    assert_eq!(r["ips"][0]["gateway"], "10.219.11.1", "{r}");
    assert!(r.get("interfaces").is_none() && r["ips"][0].get("interface").is_none(), "{r}");
    let routes: Vec<String> =
        r["routes"].as_array().unwrap().iter().map(|r| r["dst"].as_str().unwrap().to_owned()).collect();
    assert_eq!(routes, vec!["10.219.11.0/24", "10.219.99.0/24"], "option 121 only, no default route: {r}");
    let ip = addr.split('/').next().unwrap().to_owned();
    assert!(lab.leases().contains(&ip), "dnsmasq leased {ip}: {}", lab.leases());
    assert!(
        lab.leases().contains("ctr-a/dhcpnet/eth0") || lab.leases().contains("00:63:74"),
        "client id: {}",
        lab.leases()
    );
    let link = lab.ctr.link("eth0").unwrap();
    assert!(link["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "the daemon set eth0 up: {link}");
    assert_eq!(lab.lease_files().len(), 1);
    lab.configure(&addr);

    // CHECK asks nobody; the lease is held.
    let acks = lab.count("DHCPACK");
    let mut check = lab.call("CHECK", "1.0.0", "ctr-a");
    let mut conf = lab.conf("1.0.0");
    conf["prevResult"] = r.clone();
    check.stdin = conf.to_string().into_bytes();
    check.ok();
    assert_eq!(lab.count("DHCPDISCOVER"), 1, "CHECK did not allocate");

    // T1 = 8 s: the daemon renews with the server.
    wait_until("a renewal", Duration::from_secs(30), || lab.count("DHCPACK") > acks);
    assert!(lab.log().contains(&format!("DHCPREQUEST(dh0) {ip}")), "{}", lab.log());

    lab.call("DEL", "1.0.0", "ctr-a").ok();
    wait_until("the DHCPRELEASE", Duration::from_secs(10), || lab.count("DHCPRELEASE") == 1);
    assert!(lab.log().contains(&format!("DHCPRELEASE(dh0) {ip}")), "{}", lab.log());
    wait_until("dnsmasq to forget the lease", Duration::from_secs(10), || !lab.leases().contains(&ip));
    assert!(lab.lease_files().is_empty(), "no lease left in the daemon");
    let e = lab.call("CHECK", "1.0.0", "ctr-a").err();
    assert!(e["msg"].as_str().unwrap().contains("no DHCP lease is held"), "{e}");
    lab.call("DEL", "1.0.0", "ctr-a").ok();

    assert_eq!(daemon.terminate(), Some(0), "SIGTERM: clean exit");
    assert!(!lab.socket().exists(), "socket removed on SIGTERM");
    assert!(!lab.path("dhcp.pid").exists(), "pidfile removed on SIGTERM");
}

#[test]
#[ignore = "needs root"]
fn daemon_restart_between_add_and_del() {
    let lab = Lab::new("dhB", "10.219.12", true);
    let mut daemon = lab.daemon(&[]);
    let pid = fs::read_to_string(lab.path("dhcp.pid")).unwrap();
    assert!(pid.parse::<u32>().is_ok() && !pid.ends_with('\n'), "decimal PID, no newline: {pid:?}");
    let r = lab.call("ADD", "0.4.0", "ctr-b").ok();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_owned();
    let ip = addr.split('/').next().unwrap().to_owned();
    lab.configure(&addr);
    assert_eq!(daemon.terminate(), Some(0));
    assert_eq!(lab.lease_files().len(), 1, "the lease survives the daemon");

    let acks = lab.count("DHCPACK");
    let _daemon = lab.daemon(&[]);
    wait_until("a renewal by the restarted daemon", Duration::from_secs(30), || lab.count("DHCPACK") > acks);
    // ADD after the restart returns the same lease without a new DISCOVER.
    let again = lab.call("ADD", "0.4.0", "ctr-b").ok();
    assert_eq!(again["ips"][0]["address"], addr.as_str());
    assert_eq!(lab.count("DHCPDISCOVER"), 1);
    lab.call("DEL", "0.4.0", "ctr-b").ok();
    wait_until("the DHCPRELEASE", Duration::from_secs(10), || lab.log().contains(&format!("DHCPRELEASE(dh0) {ip}")));
    assert!(lab.lease_files().is_empty());
}

#[test]
#[ignore = "needs root"]
fn a_server_that_never_answers() {
    let lab = Lab::new("dhC", "10.219.13", false);
    let _daemon = lab.daemon(&["-timeout=1s", "-resendtimeout=5s"]);
    let start = Instant::now();
    let e = lab.call("ADD", "1.0.0", "ctr-c").err();
    assert_eq!(e["code"], 999, "{e}");
    assert_eq!(e["msg"], "error calling DHCP.Allocate: no more tries", "{e}");
    assert!(e["details"].as_str().unwrap().contains("no DHCPOFFER received within 1s"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(15), "bounded: {:?}", start.elapsed());
    assert!(lab.lease_files().is_empty(), "nothing kept");
    let link = lab.ctr.link("eth0").unwrap();
    assert!(!link["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "eth0 is down again: {link}");
    lab.call("DEL", "1.0.0", "ctr-c").ok();
}

#[test]
#[ignore = "needs root"]
fn status_with_and_without_the_daemon() {
    let lab = Lab::new("dhD", "10.219.16", false);
    let status = || Call::new(BIN, "STATUS", &lab.conf("1.1.0"), "").in_ns(&lab.host).run();
    let e = status().err();
    assert_eq!(e["code"], 50, "{e}");
    assert!(e["msg"].as_str().unwrap().starts_with("error dialing DHCP daemon: dial unix "), "{e}");
    let mut daemon = lab.daemon(&[]);
    status().ok();
    daemon.terminate();
    assert_eq!(status().err()["code"], 50);
    // A live daemon's socket is not taken over by a second one.
    let _first = lab.daemon(&[]);
    let out = lab
        .host
        .cmd(&[BIN, "daemon", "-socketpath"])
        .arg(lab.socket())
        .arg(format!("-statedir={}", lab.state().display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("address already in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lab.host.cmd(&[BIN, "daemon", "-nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "Go's flag.ExitOnError");
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined: -nope"));
}

#[test]
#[ignore = "needs root"]
fn gc_releases_the_lease_of_the_lost_container_only() {
    let mut lab = Lab::new("dhE", "10.219.14", false);
    // A second container on the same server, through dh1.
    let ctr2 = Netns::new("dhEc2");
    lab.srv.sh(&["ip", "link", "add", "dh1", "type", "veth", "peer", "name", "eth0", "netns", &ctr2.name]);
    lab.srv.sh(&["ip", "link", "add", "br0", "type", "bridge"]);
    for l in ["dh0", "dh1"] {
        lab.srv.sh(&["ip", "link", "set", l, "master", "br0"]);
        lab.srv.sh(&["ip", "link", "set", l, "up"]);
    }
    lab.srv.sh(&["ip", "addr", "flush", "dev", "dh0"]);
    lab.srv.sh(&["ip", "addr", "add", "10.219.14.1/24", "dev", "br0"]);
    lab.srv.sh(&["ip", "link", "set", "br0", "up"]);
    // dnsmasq on the bridge.
    let s = lab.subnet.clone();
    let mut cmd = lab.srv.cmd(&["dnsmasq"]);
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--interface=br0",
        "--bind-interfaces",
        "--no-ping",
        "--log-dhcp",
        "--user=root",
        "--group=root",
    ]);
    cmd.arg(format!("--dhcp-range={s}.50,{s}.99,255.255.255.0,2m"));
    cmd.arg(format!("--dhcp-leasefile={}", lab.path("dnsmasq.leases").display()));
    cmd.arg(format!("--log-facility={}", lab.path("dnsmasq.log").display()));
    lab.dnsmasq = Some(Proc::spawn(cmd, &lab.path("dnsmasq.out")));
    wait_until("dnsmasq to start", Duration::from_secs(10), || lab.log().contains("DHCP, IP range"));

    let _daemon = lab.daemon(&[]);
    let a = lab.call("ADD", "1.1.0", "ctr-keep").ok();
    let b = Call::new(BIN, "ADD", &lab.conf("1.1.0"), "ctr-lost").in_ns(&lab.host).netns(&ctr2).ok();
    let ip = |r: &Value| r["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_owned();
    let (ip_a, ip_b) = (ip(&a), ip(&b));
    assert_ne!(ip_a, ip_b);
    assert_eq!(lab.lease_files().len(), 2);

    let mut gc_conf = lab.conf("1.1.0");
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-keep", "ifname": "eth0"}]);
    Call::new(BIN, "GC", &gc_conf, "").in_ns(&lab.host).ok();
    wait_until("the DHCPRELEASE of the lost container", Duration::from_secs(10), || lab.count("DHCPRELEASE") == 1);
    assert!(lab.log().contains(&format!("DHCPRELEASE(br0) {ip_b}")), "{}", lab.log());
    assert!(!lab.log().contains(&format!("DHCPRELEASE(br0) {ip_a}")));
    assert_eq!(lab.lease_files().len(), 1, "the valid attachment keeps its lease");
    lab.call("CHECK", "1.1.0", "ctr-keep").ok();
    lab.call("DEL", "1.1.0", "ctr-keep").ok();
    assert!(lab.lease_files().is_empty());
}
