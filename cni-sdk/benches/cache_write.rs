//! What crash-consistent cache writes cost: ADD then DEL of one attachment through the runtime
//! (one in-process plugin, so the time is the runtime's own work plus the cache file), with
//! `Durability::PowerLoss` (fsync of the record and its directory) and `Durability::Process`
//! (the default: rename only), on the file system of the directory given (default: a temporary
//! directory under `/var/tmp`).
//!
//! ```text
//! cargo bench -p cni-sdk --bench cache_write -- [DIR] [ITERATIONS]
//! ```
//!
//! Prints the median, p90 and p99 of ADD and DEL for each mode, and the difference of the ADD
//! medians (the price of the two `fsync` calls per write).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cni_sdk::kit::Durability;
use cni_sdk::runtime::{CniRuntime, NetworkList, RuntimeConf};
use cni_sdk::testing::InProcessExec;
use cni_sdk::{CniResult, Command, IpConfig};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let base = args.first().map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let iterations: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(500);
    let exec = InProcessExec::new().with_fn("addr", |cmd, _| {
        Ok((cmd == Command::Add).then(|| {
            let mut r = CniResult::default();
            r.ips.push(IpConfig::new("10.224.200.2/16".parse().expect("an address")));
            r
        }))
    });
    let list = NetworkList::from_bytes(
        br#"{"cniVersion":"1.1.0","name":"benchnet","plugins":[{"type":"addr","padding":"a configuration of a realistic size, a few hundred bytes, like a bridge plugin with host-local IPAM and a couple of routes"}]}"#,
    )
    .expect("a valid list");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    println!("cache writes on {} ({iterations} ADD+DEL per mode)\n", base.display());
    println!("| mode | ADD median | ADD p90 | ADD p99 | DEL median |");
    println!("|---|---|---|---|---|");
    let mut medians = Vec::new();
    for (label, durability) in
        [("PowerLoss (fsync)", Durability::PowerLoss), ("Process (rename only)", Durability::Process)]
    {
        let dir =
            tempfile::Builder::new().prefix("cni-cache-bench").tempdir_in(&base).expect("a directory to write in");
        let cni = CniRuntime::builder()
            .cache_dir(dir.path())
            .cache_durability(durability)
            .exec(exec.clone())
            .build()
            .expect("runtime");
        let (mut adds, mut dels) = (Vec::with_capacity(iterations), Vec::with_capacity(iterations));
        rt.block_on(async {
            for i in 0..iterations {
                let conf = RuntimeConf::new(&format!("bench-{}", i % 16), "/var/run/netns/bench", "eth0");
                let t = Instant::now();
                cni.add(&list, &conf).await.expect("ADD");
                adds.push(t.elapsed());
                let t = Instant::now();
                cni.del(&list, &conf).await.expect("DEL");
                dels.push(t.elapsed());
            }
        });
        let median = percentile(&mut adds, 0.5);
        medians.push(median);
        println!(
            "| {label} | {:?} | {:?} | {:?} | {:?} |",
            median,
            percentile(&mut adds, 0.9),
            percentile(&mut adds, 0.99),
            percentile(&mut dels, 0.5)
        );
    }
    println!("\nfsync cost per ADD (median difference): {:?}", medians[0].saturating_sub(medians[1]));
}
