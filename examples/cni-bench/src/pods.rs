//! Pod churn: N pods set up at the same time, as a node does when a deployment scales up.
//!
//! Each pod is one front-end process (`cnitool add`, ours or Go libcni's) started at the same
//! moment as the others; the batch is timed from the first spawn to the last exit. The network is
//! a Kubernetes-style list (bridge with `isGateway`, `ipMasq` and host-local, then portmap), so
//! the pods contend for what real pods contend for: the bridge, the host-local store and its
//! lock, the iptables lock. Every batch runs in a throwaway host namespace (the front ends enter
//! it between fork and exec), with a fresh store and cache, and the pods are removed again
//! (`del`, timed too) before the namespace goes: nothing touches the real host.
//!
//! The cases run interleaved round by round: Go libcni with Go's plugins (the Go stack), our
//! runtime with our plugins (our stack), and Go libcni with our plugins (containerd or CRI-O
//! with our plugins installed).

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::firewall::command_in;
use crate::{ip_netns, ms, percentile};

const HOST_NS: &str = "cnibench-pods-host";

/// One front end with one plugin directory.
pub(crate) struct Case {
    pub(crate) label: &'static str,
    pub(crate) tool: PathBuf,
    pub(crate) plugins: PathBuf,
}

fn pod_ns(i: usize) -> String {
    format!("cnibench-pod-{i}")
}

/// Runs `verb` for pods `0..n` at once; returns the batch's wall time and the summed CPU time.
fn batch(host: &File, case: &Case, verb: &str, n: usize, confdir: &Path, cache: &Path) -> (Duration, Duration) {
    let start = Instant::now();
    let children: Vec<Child> = (0..n)
        .map(|i| {
            command_in(host, &case.tool)
                .args([verb, "podbench", &format!("/var/run/netns/{}", pod_ns(i))])
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("NETCONFPATH", confdir)
                .env("CNI_PATH", &case.plugins)
                .env("CNI_CACHE_DIR", cache)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", case.tool.display()))
        })
        .collect();
    let mut cpu = Duration::ZERO;
    let mut failed = 0;
    for child in children {
        let reaped = crate::reap(child);
        cpu += reaped.cpu;
        failed += usize::from(reaped.code != 0);
    }
    let took = start.elapsed();
    assert_eq!(failed, 0, "{}: {failed} of {n} `{verb}` failed", case.label);
    (took, cpu)
}

/// One round of one case: (add wall, add CPU, del wall).
fn round(case: &Case, n: usize) -> (Duration, Duration, Duration) {
    let state = tempfile::tempdir().expect("tempdir");
    let confdir = state.path().join("net.d");
    let cache = state.path().join("cache");
    std::fs::create_dir_all(&confdir).expect("mkdir");
    let list = json!({"cniVersion": "1.0.0", "name": "podbench", "plugins": [
        {"type": "bridge", "bridge": "cnipods0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
         "ipam": {"type": "host-local", "subnet": "10.226.0.0/16", "dataDir": state.path().join("ipam"),
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
    ]});
    std::fs::write(confdir.join("10-podbench.conflist"), list.to_string()).expect("write conflist");
    ip_netns(&["del", HOST_NS]);
    ip_netns(&["add", HOST_NS]);
    for i in 0..n {
        ip_netns(&["del", &pod_ns(i)]);
        ip_netns(&["add", &pod_ns(i)]);
    }
    let host = File::open(format!("/var/run/netns/{HOST_NS}")).expect("open the host namespace");
    let (add, add_cpu) = batch(&host, case, "add", n, &confdir, &cache);
    let (del, _) = batch(&host, case, "del", n, &confdir, &cache);
    drop(host);
    for i in 0..n {
        ip_netns(&["del", &pod_ns(i)]);
    }
    ip_netns(&["del", HOST_NS]);
    (add, add_cpu, del)
}

/// The markdown table: for 8 and 32 pods, each case's median batch time (add), pods per
/// second, summed CPU time and the median batch time of the `del`s; `cases[0]` is the Go stack
/// and `cases[1]` ours, whose throughput ratio is the target (≥ 1.5×).
pub(crate) fn parallel_table(cases: &[Case], rounds: usize) -> String {
    let mut out = format!(
        "\n| N pods set up at once (bridge+host-local with ipMasq, portmap; front-end processes), median of {rounds} | add batch | pods/s | CPU, all processes | del batch |\n|---|---:|---:|---:|---:|\n"
    );
    let mut summary = String::new();
    for n in [8usize, 32] {
        let mut samples: Vec<[Vec<Duration>; 3]> = cases.iter().map(|_| Default::default()).collect();
        for _ in 0..rounds {
            for (c, case) in cases.iter().enumerate() {
                let (add, cpu, del) = round(case, n);
                samples[c][0].push(add);
                samples[c][1].push(cpu);
                samples[c][2].push(del);
            }
        }
        let mut tput = Vec::new();
        for (case, s) in cases.iter().zip(&mut samples) {
            let add = percentile(&mut s[0], 0.5);
            tput.push(n as f64 / add.as_secs_f64());
            let _ = writeln!(
                out,
                "| {n} pods: {} | {} | {:.0} | {} | {} |",
                case.label,
                ms(add),
                n as f64 / add.as_secs_f64(),
                ms(percentile(&mut s[1], 0.5)),
                ms(percentile(&mut s[2], 0.5))
            );
        }
        if cases.len() >= 2 {
            let _ = write!(
                summary,
                "{}{n} pods: {} / {} throughput {:.2}×",
                if summary.is_empty() { "" } else { "; " },
                cases[1].label,
                cases[0].label,
                tput[1] / tput[0]
            );
        }
    }
    if !summary.is_empty() {
        let _ = writeln!(out, "\n{summary} (target ≥ 1.5×).");
    }
    out
}
