//! Firewall scaling: bridge+host-local ADD with `ipMasq` while the host already holds the
//! masquerading of N other pods in Go's format, for Go (iptables), ours with iptables and ours
//! with nftables (netlink), same run.
//!
//! Each measurement gets a fresh throwaway "host" namespace (`cnibench-fw-host`): the plugin runs
//! inside it (the harness enters it between fork and exec), creates its bridge there and
//! masquerades there, and the N other pods' state is loaded into it first with
//! `iptables-restore` / `nft -f` in the layout of the backend under test:
//!
//! * iptables: per pod a chain `CNI-<hash>` in `nat` with Go's two rules, and the
//!   `POSTROUTING -s <ip>/32 -j CNI-<hash>` jump, all commented `name: "<net>" id: "<id>"`;
//! * nftables: Go's `inet cni_plugins_masquerade` table with one `masq_checks` rule per pod.
//!
//! A round is: create a container namespace, time the ADD, DEL (not timed, so the host keeps
//! exactly N other pods), remove the namespace.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cni_sdk::firewall::names;

use crate::{ip_netns, ms};
use serde_json::json;

const HOST_NS: &str = "cnibench-fw-host";
const CTR_NS: &str = "cnibench-fw-ctr";
const BRIDGE: &str = "cnifw0";
/// The pods under test get 10.225.0.0/17 (host-local), the preloaded other pods 10.225.128.0/17.
const OTHER_SUBNET: &str = "10.225.128.0/17";
const OTHER_NET: &str = "othernet";

/// The implementations compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Go,
    OursIptables,
    OursNftables,
}

impl Side {
    fn nftables(self) -> bool {
        self == Side::OursNftables
    }
}

/// The address of the `i`-th other pod, in 10.225.128.0/17.
fn other_ip(i: usize) -> String {
    format!("10.225.{}.{}", 128 + i / 250, 2 + i % 250)
}

/// `iptables-restore --noflush` input for `n` other pods, as Go's bridge leaves them.
fn go_iptables_state(n: usize) -> String {
    let mut s = String::from("*nat\n");
    let chains: Vec<String> = (0..n).map(|i| names::chain_name(OTHER_NET, &format!("pod{i}"))).collect();
    for c in &chains {
        let _ = writeln!(s, ":{c} - [0:0]");
    }
    for (i, c) in chains.iter().enumerate() {
        let comment = names::format_comment(OTHER_NET, &format!("pod{i}")).replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(s, "-A {c} -d {OTHER_SUBNET} -m comment --comment \"{comment}\" -j ACCEPT");
        let _ = writeln!(s, "-A {c} ! -d 224.0.0.0/4 -m comment --comment \"{comment}\" -j MASQUERADE");
        let _ = writeln!(s, "-A POSTROUTING -s {}/32 -m comment --comment \"{comment}\" -j {c}", other_ip(i));
    }
    s.push_str("COMMIT\n");
    s
}

/// `nft -f` input for `n` other pods in Go's nftables ipMasq layout (v1.6.1).
fn go_nft_state(n: usize) -> String {
    let mut s = String::from(
        "add table inet cni_plugins_masquerade { comment \"Masquerading for plugins from github.com/containernetworking/plugins\"; }\n\
         add chain inet cni_plugins_masquerade masq_checks { comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\"; }\n\
         add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority srcnat; }\n\
         add rule inet cni_plugins_masquerade postrouting ip daddr 224.0.0.0/4 return\n\
         add rule inet cni_plugins_masquerade postrouting ip6 daddr ff00::/8 return\n\
         add rule inet cni_plugins_masquerade postrouting goto masq_checks\n",
    );
    for i in 0..n {
        let comment = names::nft_ipmasq_comment(OTHER_NET, "eth0", &format!("pod{i}"));
        let _ = writeln!(
            s,
            "add rule inet cni_plugins_masquerade masq_checks ip saddr {} ip daddr != {OTHER_SUBNET} masquerade comment \"{comment}\"",
            other_ip(i)
        );
    }
    s
}

/// Runs `program` inside the network namespace `ns` (entered between fork and exec).
pub(crate) fn command_in(ns: &File, program: &Path) -> Command {
    let fd: RawFd = ns.as_raw_fd();
    let mut cmd = Command::new(program);
    // SAFETY: setns is async-signal-safe; `fd` stays open in the parent until the child execs.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn feed(ns: &File, program: &str, args: &[&str], input: &str) {
    let mut child = command_in(ns, Path::new(program))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().expect("piped").write_all(input.as_bytes()).expect("write state");
    assert!(child.wait().expect("wait").success(), "{program} {args:?} failed to load the other pods");
}

/// One timed plugin run inside the host namespace: wall time, and the CPU time (user + system)
/// of the plugin and the children it waited for (host-local), from `wait4`.
fn run_plugin(ns: &File, plugin: &Path, cni_path: &Path, command: &str, id: &str, conf: &str) -> (Duration, Duration) {
    let start = Instant::now();
    let mut child = command_in(ns, plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", format!("/var/run/netns/{CTR_NS}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", plugin.display()));
    child.stdin.take().expect("piped").write_all(conf.as_bytes()).expect("write config");
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().expect("piped"), &mut stdout).expect("read stdout");
    let reaped = crate::reap(child);
    let took = start.elapsed();
    assert_eq!(reaped.code, 0, "{} {command} failed: {}", plugin.display(), String::from_utf8_lossy(&stdout));
    (took, reaped.cpu)
}

/// The median ADD (wall time, CPU time) of `rounds` with `others` other pods preloaded.
fn measure(
    side: Side,
    others: usize,
    rounds: usize,
    go_dir: &Path,
    ours_dir: &Path,
    data: &Path,
) -> (Duration, Duration) {
    ip_netns(&["del", HOST_NS]);
    ip_netns(&["add", HOST_NS]);
    let host = File::open(format!("/var/run/netns/{HOST_NS}")).expect("open the host namespace");
    if side.nftables() {
        feed(&host, "nft", &["-f", "-"], &go_nft_state(others));
    } else {
        feed(&host, "iptables-restore", &["-w", "5", "--noflush"], &go_iptables_state(others));
    }
    let dir = if side == Side::Go { go_dir } else { ours_dir };
    let mut conf = json!({
        "cniVersion": "1.0.0", "name": "fwbench", "type": "bridge", "bridge": BRIDGE, "isGateway": true,
        "ipMasq": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.225.0.0/16", "rangeStart": "10.225.0.10",
                 "rangeEnd": "10.225.127.250"}]], "dataDir": data.join(format!("fw-{others}"))}
    });
    if side.nftables() {
        conf["ipMasqBackend"] = json!("nftables");
    }
    let conf = conf.to_string();
    let (mut wall, mut cpu) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for r in 0..rounds {
        ip_netns(&["add", CTR_NS]);
        let id = format!("fwbench{r}");
        let (w, c) = run_plugin(&host, &dir.join("bridge"), dir, "ADD", &id, &conf);
        wall.push(w);
        cpu.push(c);
        run_plugin(&host, &dir.join("bridge"), dir, "DEL", &id, &conf);
        ip_netns(&["del", CTR_NS]);
    }
    drop(host);
    ip_netns(&["del", HOST_NS]);
    wall.sort();
    cpu.sort();
    (wall[wall.len() / 2], cpu[cpu.len() / 2])
}

/// The markdown tables: ADD median per number of other pods, Go vs ours (iptables, nftables),
/// wall clock and CPU time.
pub(crate) fn scaling_table(go_dir: &Path, ours_dir: &Path, rounds: usize) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let counts = [0usize, 1000, 3000];
    let sides = [Side::Go, Side::OursIptables, Side::OursNftables];
    let mut med = [[(Duration::ZERO, Duration::ZERO); 3]; 3];
    for (ci, n) in counts.iter().enumerate() {
        for (si, side) in sides.iter().enumerate() {
            med[ci][si] = measure(*side, *n, rounds, go_dir, ours_dir, data.path());
        }
    }
    let mut out = String::new();
    for (title, pick) in [("wall clock", 0usize), ("CPU time (user+system, plugin and host-local)", 1)] {
        let get = |ci: usize, si: usize| if pick == 0 { med[ci][si].0 } else { med[ci][si].1 };
        let _ = write!(
            out,
            "\n| bridge+host-local ADD with ipMasq, median of {rounds}, {title} | Go (iptables) | ours (iptables) | ours (nftables, netlink) | Go / ours (iptables) |\n|---:|---:|---:|---:|---:|\n"
        );
        for (ci, n) in counts.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {n} other pods | {} | {} | {} | {:.2}× |",
                ms(get(ci, 0)),
                ms(get(ci, 1)),
                ms(get(ci, 2)),
                get(ci, 0).as_secs_f64() / get(ci, 1).as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "\n{title}: nftables at 1 000 other pods / at 0: {:.2}× (target ≤ 2×); Go / ours (iptables) at 1 000: {:.2}× (target ≥ 2×)",
            get(1, 2).as_secs_f64() / get(0, 2).as_secs_f64(),
            get(1, 0).as_secs_f64() / get(1, 1).as_secs_f64()
        );
    }
    out
}
