//! Benchmarks our plugins and runtime against Debian's Go ones, side by side in one run, and
//! prints a markdown table. Needs root (network namespaces) and release builds:
//!
//! ```text
//! cargo build --release --workspace
//! bash ../shared/interop/build.sh target/interop/libcni-cnitool
//! sudo target/release/cni-bench [--rounds N] > table.md
//! target/release/cni-bench --only host-local-scale [--scale-rounds N]   # no root needed
//! ```
//!
//! `--only firewall` runs only the firewall scaling table (`firewall.rs`, root
//! needed); `--fw-rounds N` sets its rounds (default 10). `--only pods` runs only the parallel
//! pods table (`pods.rs`; `--pod-rounds N`, default 5). `--only core` runs everything but the
//! host-local and firewall scaling tables (the rows of the performance targets). `--variant LABEL=DIR` (repeatable) adds
//! rows for another build of our plugins (e.g. statically linked) to the VERSION and ADD tables.
//!
//! Times are wall-clock per exec (fork+exec+run+exit) measured from this process; peak RSS comes
//! from `wait4`'s resource usage of the plugin process.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod firewall;
mod floor;
mod pods;

const GO_DIR: &str = "/usr/lib/cni";

/// A finished exec: wall time, CPU time (user + system), peak RSS (KiB), exit code, stdout.
struct Exec {
    took: Duration,
    cpu: Duration,
    max_rss_kib: i64,
    code: i32,
    stdout: Vec<u8>,
}

/// Spawns `bin` with a cleared environment, writes `stdin`, and reaps it with [`reap`].
fn exec(bin: &Path, env: &[(&str, String)], stdin: &[u8]) -> Exec {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let _ = child.stdin.take().expect("piped").write_all(stdin);
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().expect("piped"), &mut stdout).expect("read stdout");
    let Reaped { code, cpu, max_rss_kib } = reap(child);
    Exec { took: start.elapsed(), cpu, max_rss_kib, code, stdout }
}

/// How a child ended, from `wait4`: exit code (-1 when killed), CPU time (user + system) and
/// peak RSS (KiB), both including the children it waited for (host-local, plugins).
pub(crate) struct Reaped {
    pub(crate) code: i32,
    pub(crate) cpu: Duration,
    pub(crate) max_rss_kib: i64,
}

/// Waits for `child` with `wait4` (std's `wait` does not report the resource usage).
#[allow(clippy::zombie_processes)]
pub(crate) fn reap(child: std::process::Child) -> Reaped {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers; `child` is not waited on again.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec.unsigned_abs(), t.tv_usec.unsigned_abs() as u32 * 1000);
    Reaped { code, cpu: tv(usage.ru_utime) + tv(usage.ru_stime), max_rss_kib: usage.ru_maxrss }
}

pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(ours: f64, go: f64) -> String {
    if go == 0.0 { "–".into() } else { format!("{:.2}×", ours / go) }
}

struct Side {
    name: &'static str,
    dir: PathBuf,
    bridge: String,
    subnet: String,
}

fn netns_add(name: &str) {
    assert!(Command::new("ip").args(["netns", "add", name]).status().expect("ip").success(), "ip netns add {name}");
}

fn netns_del(name: &str) {
    ip_netns(&["del", name]);
}

/// `ip netns ARGS`, its failure ignored (cleanup of what may not exist).
pub(crate) fn ip_netns(args: &[&str]) {
    let _ = Command::new("ip").arg("netns").args(args).stderr(Stdio::null()).status();
}

fn env_for(cmd: &str, id: &str, netns: &str, path: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", cmd.to_owned()),
        ("CNI_CONTAINERID", id.to_owned()),
        ("CNI_NETNS", netns.to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", path.display().to_string()),
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut rounds = 50usize;
    let mut scale_rounds = 20usize;
    let mut fw_rounds = 10usize;
    let mut pod_rounds = 5usize;
    let mut only = None;
    let mut variants: Vec<(String, PathBuf)> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).expect("--rounds N"),
            "--scale-rounds" => scale_rounds = args.next().and_then(|n| n.parse().ok()).expect("--scale-rounds N"),
            "--fw-rounds" => fw_rounds = args.next().and_then(|n| n.parse().ok()).expect("--fw-rounds N"),
            "--pod-rounds" => pod_rounds = args.next().and_then(|n| n.parse().ok()).expect("--pod-rounds N"),
            "--only" => only = Some(args.next().expect("--only SECTION")),
            "--variant" => {
                let v = args.next().expect("--variant LABEL=DIR");
                let (label, dir) = v.split_once('=').expect("--variant LABEL=DIR");
                variants.push((label.to_owned(), PathBuf::from(dir)));
            }
            _ => {}
        }
    }
    let ours_dir = std::env::current_exe().expect("exe").parent().expect("dir").to_owned();
    let root = ours_dir.join("../..");
    let libcni =
        std::env::var_os("LIBCNI_CNITOOL").map_or_else(|| root.join("target/interop/libcni-cnitool"), PathBuf::from);
    let ours_tool = ours_dir.join("cnitool");
    if let Some(section) = only.as_deref() {
        match section {
            "host-local-scale" => print!("{}{}", machine(scale_rounds), host_local_scale(&ours_dir, scale_rounds)),
            "firewall" => print!("{}", firewall::scaling_table(Path::new(GO_DIR), &ours_dir, fw_rounds)),
            "pods" => print!("{}{}", machine(pod_rounds), pods_table(&libcni, &ours_tool, &ours_dir, pod_rounds)),
            "core" => {}
            other => {
                panic!("--only {other}: the sections that run alone are core, host-local-scale, firewall and pods")
            }
        }
        if section != "core" {
            return;
        }
    }
    let core_only = only.is_some();
    let sides = [
        Side {
            name: "Rust (cni-rs)",
            dir: ours_dir.clone(),
            bridge: "cnibench-rs".into(),
            subnet: "10.252.0.0/16".into(),
        },
        Side {
            name: "Go (Debian)",
            dir: PathBuf::from(GO_DIR),
            bridge: "cnibench-go".into(),
            subnet: "10.253.0.0/16".into(),
        },
    ];
    let mut out = machine(rounds);

    // 1. Sizes.
    out += "| binary | Rust | Go | Rust/Go (target ≤ 0.5×) |\n|---|---|---|---|\n";
    let mut total = [0u64; 2];
    for bin in ["bridge", "host-local", "loopback", "ptp"] {
        let sizes: Vec<u64> = sides.iter().map(|s| file_size(&s.dir.join(bin))).collect();
        total[0] += sizes[0];
        total[1] += sizes[1];
        out += &format!(
            "| `{bin}` size | {} KiB | {} KiB | {} |\n",
            sizes[0] / 1024,
            sizes[1] / 1024,
            ratio(sizes[0] as f64, sizes[1] as f64)
        );
    }
    out += &format!(
        "| four plugins, total | {} KiB | {} KiB | {} |\n",
        total[0] / 1024,
        total[1] / 1024,
        ratio(total[0] as f64, total[1] as f64)
    );
    let multi = file_size(&ours_dir.join("cni-plugins"));
    if multi > 0 {
        let (go_count, go_suite) = std::fs::read_dir(GO_DIR)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok().filter(std::fs::Metadata::is_file))
                    .fold((0u64, 0u64), |(n, b), m| (n + 1, b + m.len()))
            })
            .unwrap_or_default();
        out += &format!(
            "| multi-call `cni-plugins` (the whole suite) vs Go's {go_count} binaries | {} KiB | {} KiB | {} |\n",
            multi / 1024,
            go_suite / 1024,
            ratio(multi as f64, go_suite as f64)
        );
    }

    let mut targets = String::new();
    // 2. VERSION latency, against the floor: a static Rust program printing the same reply.
    // Ours, Go's, the floor and the variants are exec'd in turn, so load changes hit all alike.
    let floor_dir = tempfile::tempdir().expect("tempdir");
    let floor = floor::build(floor_dir.path());
    let mut bins: Vec<PathBuf> = sides.iter().map(|s| s.dir.join("bridge")).collect();
    bins.extend(floor.iter().cloned());
    bins.extend(variants.iter().map(|(_, d)| d.join("bridge")));
    let version = version_stats(&bins, rounds * 4);
    out += &format!(
        "| VERSION exec (median / p95 wall; median CPU) | {} | {} | {} |\n",
        version[0],
        version[1],
        ratio(version[0].wall.as_secs_f64(), version[1].wall.as_secs_f64())
    );
    match &floor {
        Ok(_) => {
            let f = &version[2];
            out += &format!(
                "| floor: static Rust program printing the VERSION reply (built by the bench) | {f} | – | ours / floor {} |\n",
                ratio(version[0].wall.as_secs_f64(), f.wall.as_secs_f64())
            );
            targets += &format!(
                "* VERSION: ours / floor {} (target ≤ 1.3×), Go / ours {} (target ≥ 2.5×); CPU: ours / floor {}, Go / ours {}.\n",
                ratio(version[0].wall.as_secs_f64(), f.wall.as_secs_f64()),
                ratio(version[1].wall.as_secs_f64(), version[0].wall.as_secs_f64()),
                ratio(version[0].cpu.as_secs_f64(), f.cpu.as_secs_f64()),
                ratio(version[1].cpu.as_secs_f64(), version[0].cpu.as_secs_f64())
            );
        }
        Err(why) => out += &format!("| floor: static Rust program — not built: {why} | – | – | – |\n"),
    }
    let mut t: Vec<Duration> = (0..rounds * 4).map(|_| exec(Path::new("/bin/true"), &[], b"").took).collect();
    out += &format!(
        "| `/bin/true` (dynamic), fork+exec+wait from this harness (median) | {} | – | – |\n",
        ms(percentile(&mut t, 0.5))
    );

    // 3. bridge + host-local ADD / DEL in a namespace, peak RSS of ADD.
    let data = tempfile::tempdir().expect("tempdir");
    let mut add_targets: Vec<(PathBuf, String, String)> =
        sides.iter().map(|s| (s.dir.clone(), s.bridge.clone(), s.subnet.clone())).collect();
    for (i, (_, dir)) in variants.iter().enumerate() {
        add_targets.push((dir.clone(), format!("cnibench-v{i}"), format!("10.{}.0.0/16", 240 + i)));
    }
    let adds = add_stats(&add_targets, data.path(), rounds);
    out += &format!(
        "| bridge+host-local ADD (median / p95 wall; median CPU incl. host-local) | {} | {} | {} |\n",
        adds[0].add,
        adds[1].add,
        ratio(adds[0].add.wall.as_secs_f64(), adds[1].add.wall.as_secs_f64())
    );
    out += &format!(
        "| bridge+host-local DEL (median / p95 wall; median CPU) | {} | {} | {} |\n",
        adds[0].del,
        adds[1].del,
        ratio(adds[0].del.wall.as_secs_f64(), adds[1].del.wall.as_secs_f64())
    );
    out += &format!(
        "| peak RSS of the bridge ADD (plugin or host-local, the larger) | {} KiB | {} KiB | {} |\n",
        adds[0].rss_kib,
        adds[1].rss_kib,
        ratio(adds[0].rss_kib as f64, adds[1].rss_kib as f64)
    );
    targets += &format!(
        "* ADD: Go / ours {} wall, {} CPU (target ≥ 2×, stretch 3×); peak RSS ours / Go {} (target ≤ 0.5×).\n",
        ratio(adds[1].add.wall.as_secs_f64(), adds[0].add.wall.as_secs_f64()),
        ratio(adds[1].add.cpu.as_secs_f64(), adds[0].add.cpu.as_secs_f64()),
        ratio(adds[0].rss_kib as f64, adds[1].rss_kib as f64)
    );

    // 4. host-local: 64 concurrent ADDs from separate processes.
    let mut tput = [0f64; 2];
    for (i, s) in sides.iter().enumerate() {
        let conf = json!({"cniVersion": "1.0.0", "name": format!("tput{i}"), "type": "host-local",
            "ipam": {"type": "host-local", "subnet": "10.254.0.0/16", "dataDir": data.path()}})
        .to_string();
        let mut best = f64::MAX;
        for round in 0..3 {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for c in 0..64 {
                    let conf = &conf;
                    scope.spawn(move || {
                        let e = exec(
                            &s.dir.join("host-local"),
                            &env_for("ADD", &format!("t{round}-{c}"), "/nonexistent", &s.dir),
                            conf.as_bytes(),
                        );
                        assert_eq!(e.code, 0, "{} host-local ADD failed", s.name);
                    });
                }
            });
            best = best.min(start.elapsed().as_secs_f64());
            std::thread::scope(|scope| {
                for c in 0..64 {
                    let conf = &conf;
                    scope.spawn(move || {
                        exec(
                            &s.dir.join("host-local"),
                            &env_for("DEL", &format!("t{round}-{c}"), "/nonexistent", &s.dir),
                            conf.as_bytes(),
                        );
                    });
                }
            });
        }
        tput[i] = 64.0 / best;
    }
    out += &format!(
        "| host-local, 64 concurrent ADDs (best of 3) | {:.0} ADD/s | {:.0} ADD/s | {} |\n",
        tput[0],
        tput[1],
        ratio(tput[0], tput[1])
    );

    // 5. Runtimes: cnitool add+del of a bridge+loopback conflist on Go's plugins.
    if libcni.is_file() && ours_tool.is_file() {
        let confdir = tempfile::tempdir().expect("tempdir");
        let cache = tempfile::tempdir().expect("tempdir");
        let bridge_list = json!({"cniVersion": "1.0.0", "name": "rtbench", "plugins": [
            {"type": "bridge", "bridge": "cnibench-rt", "ipam": {"type": "host-local", "subnet": "10.251.0.0/16", "dataDir": data.path()}},
            {"type": "loopback"}
        ]});
        let light_list = json!({"cniVersion": "1.0.0", "name": "rtlight", "plugins": [{"type": "loopback"}, {"type": "passthrough"}]});
        std::fs::write(confdir.path().join("10-rt.conflist"), bridge_list.to_string()).expect("write conflist");
        std::fs::write(confdir.path().join("20-light.conflist"), light_list.to_string()).expect("write conflist");
        let cases = [
            ("bridge+loopback, Go plugins", "rtbench", PathBuf::from(GO_DIR)),
            ("bridge+loopback, our plugins", "rtbench", ours_dir.clone()),
            ("loopback+passthrough (runtime-bound), our plugins", "rtlight", ours_dir.clone()),
        ];
        for (label, network, plugin_dir) in cases {
            if network == "rtlight" && !plugin_dir.join("passthrough").is_file() {
                continue;
            }
            let mut med = [Duration::ZERO; 2];
            let mut rows = Vec::new();
            for (i, tool) in [&ours_tool, &libcni].iter().enumerate() {
                let mut t = Vec::new();
                for r in 0..rounds {
                    let ns = format!("cnibench-rt-{r}");
                    netns_add(&ns);
                    let path = format!("/var/run/netns/{ns}");
                    let env = [
                        ("NETCONFPATH", confdir.path().display().to_string()),
                        ("CNI_PATH", plugin_dir.display().to_string()),
                        ("CNI_CACHE_DIR", cache.path().display().to_string()),
                    ];
                    let start = Instant::now();
                    for verb in ["add", "del"] {
                        let st = Command::new(tool)
                            .args([verb, network, &path])
                            .env_clear()
                            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                            .stdout(Stdio::null())
                            .status()
                            .expect("cnitool");
                        assert!(st.success(), "{} {verb} {network} failed", tool.display());
                    }
                    t.push(start.elapsed());
                    netns_del(&ns);
                }
                med[i] = percentile(&mut t, 0.5);
                rows.push(format!("{} / {}", ms(med[i]), ms(percentile(&mut t, 0.95))));
            }
            let _ = Command::new("ip").args(["link", "del", "cnibench-rt"]).status();
            out += &format!(
                "| runtime: `cnitool add`+`del` vs libcni-cnitool, {label} | {} | {} | {} |\n",
                rows[0],
                rows[1],
                ratio(med[0].as_secs_f64(), med[1].as_secs_f64())
            );
        }
    }
    out += "\n";
    out += &targets;
    if !variants.is_empty() {
        let first_variant = version.len() - variants.len();
        out += &variants_table(&sides[0], &variants, &version[first_variant..], &version[0], &adds);
    }
    out += &pods_table(&libcni, &ours_tool, &ours_dir, pod_rounds);
    if !core_only {
        out += &host_local_scale(&ours_dir, scale_rounds);
        out += &firewall::scaling_table(Path::new(GO_DIR), &ours_dir, fw_rounds);
    }
    print!("{out}");
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Medians of a series of execs.
struct Stats {
    wall: Duration,
    p95: Duration,
    cpu: Duration,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}; {}", ms(self.wall), ms(self.p95), ms(self.cpu))
    }
}

fn stats(mut wall: Vec<Duration>, mut cpu: Vec<Duration>) -> Stats {
    Stats { wall: percentile(&mut wall, 0.5), p95: percentile(&mut wall, 0.95), cpu: percentile(&mut cpu, 0.5) }
}

/// `n` VERSION execs of each of `bins`, in turn.
fn version_stats(bins: &[PathBuf], n: usize) -> Vec<Stats> {
    let mut samples: Vec<[Vec<Duration>; 2]> = bins.iter().map(|_| Default::default()).collect();
    for _ in 0..n {
        for (bin, s) in bins.iter().zip(&mut samples) {
            let e = exec(bin, &[("CNI_COMMAND", "VERSION".into())], br#"{"cniVersion":"1.0.0"}"#);
            assert_eq!(e.code, 0, "{} VERSION failed", bin.display());
            s[0].push(e.took);
            s[1].push(e.cpu);
        }
    }
    samples.into_iter().map(|[wall, cpu]| stats(wall, cpu)).collect()
}

/// bridge+host-local ADD and DEL of the plugins in `dir`, one fresh namespace per round.
struct AddStats {
    add: Stats,
    del: Stats,
    rss_kib: i64,
}

/// bridge+host-local ADD and DEL for each `(plugin dir, bridge, subnet)`, in turn round by
/// round, one fresh container namespace per ADD.
fn add_stats(targets: &[(PathBuf, String, String)], data: &Path, rounds: usize) -> Vec<AddStats> {
    let confs: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(tag, (_, bridge, subnet))| {
            json!({
                "cniVersion": "1.0.0", "name": format!("bench{tag}"), "type": "bridge", "bridge": bridge,
                "isGateway": true, "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data}
            })
            .to_string()
        })
        .collect();
    let mut samples: Vec<[Vec<Duration>; 4]> = targets.iter().map(|_| Default::default()).collect();
    let mut rss = vec![0; targets.len()];
    for r in 0..rounds {
        for (tag, (dir, _, _)) in targets.iter().enumerate() {
            let ns = format!("cnibench-{tag}-{r}");
            netns_add(&ns);
            let path = format!("/var/run/netns/{ns}");
            let id = format!("bench{r}");
            let add = exec(&dir.join("bridge"), &env_for("ADD", &id, &path, dir), confs[tag].as_bytes());
            assert_eq!(add.code, 0, "{} ADD failed: {}", dir.display(), String::from_utf8_lossy(&add.stdout));
            rss[tag] = rss[tag].max(add.max_rss_kib);
            let del = exec(&dir.join("bridge"), &env_for("DEL", &id, &path, dir), confs[tag].as_bytes());
            assert_eq!(del.code, 0, "{} DEL failed", dir.display());
            netns_del(&ns);
            for (v, d) in samples[tag].iter_mut().zip([add.took, add.cpu, del.took, del.cpu]) {
                v.push(d);
            }
        }
    }
    for (_, bridge, _) in targets {
        let _ = Command::new("ip").args(["link", "del", bridge]).status();
    }
    samples
        .into_iter()
        .zip(rss)
        .map(|([aw, ac, dw, dc], rss_kib)| AddStats { add: stats(aw, ac), del: stats(dw, dc), rss_kib })
        .collect()
}

/// Other builds of our plugins (`--variant LABEL=DIR`, e.g. statically linked) next to the
/// default build, measured in the same interleaved runs: bridge size, VERSION, ADD, peak RSS.
fn variants_table(
    ours: &Side,
    variants: &[(String, PathBuf)],
    version: &[Stats],
    ours_version: &Stats,
    adds: &[AddStats],
) -> String {
    let mut out = String::from(
        "\n| build of our `bridge` | size | VERSION (median / p95 wall; CPU) | ADD (median / p95 wall; CPU) | peak RSS of ADD |\n|---|---:|---:|---:|---:|\n",
    );
    let rows = std::iter::once(("default build", &ours.dir, ours_version, &adds[0]))
        .chain(variants.iter().zip(version).zip(&adds[2..]).map(|(((l, d), v), a)| (l.as_str(), d, v, a)));
    for (label, dir, v, a) in rows {
        out += &format!(
            "| {label} | {} KiB | {v} | {} | {} KiB |\n",
            file_size(&dir.join("bridge")) / 1024,
            a.add,
            a.rss_kib
        );
    }
    out
}

/// The parallel pods table: the Go stack, ours, and Go libcni with our plugins.
fn pods_table(libcni: &Path, ours_tool: &Path, ours_dir: &Path, rounds: usize) -> String {
    if !libcni.is_file() || !ours_tool.is_file() {
        return format!("\nParallel pods: skipped ({} or {} missing).\n", libcni.display(), ours_tool.display());
    }
    let cases = [
        pods::Case { label: "Go: libcni + Go plugins", tool: libcni.to_owned(), plugins: PathBuf::from(GO_DIR) },
        pods::Case { label: "ours: cnitool + our plugins", tool: ours_tool.to_owned(), plugins: ours_dir.to_owned() },
        pods::Case { label: "libcni + our plugins", tool: libcni.to_owned(), plugins: ours_dir.to_owned() },
    ];
    pods::parallel_table(&cases, rounds)
}

/// The machine line heading every report.
fn machine(rounds: usize) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("Machine: {cpu}, {cores} cores, Linux {}; {rounds} rounds per measurement.\n\n", kernel.trim())
}

/// Fills `<data>/scale` with `n` leases in Go's format (`10.233.0.2` upwards, owners
/// `bench-<i>\r\neth0`) and the cursor Go leaves after allocating them in order.
fn prefill(data: &Path, n: u32) {
    let dir = data.join("scale");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let first = u32::from(std::net::Ipv4Addr::new(10, 233, 0, 2));
    for i in 0..n {
        let ip = std::net::Ipv4Addr::from(first + i);
        std::fs::write(dir.join(ip.to_string()), format!("bench-{i}\r\neth0")).expect("write lease");
    }
    if n > 0 {
        let last = std::net::Ipv4Addr::from(first + n - 1);
        std::fs::write(dir.join("last_reserved_ip.0"), last.to_string()).expect("write cursor");
    }
}

/// host-local ADD and DEL (separate execs of the plugin alone) against a store already
/// holding 0, 1k, 10k and 50k leases written in Go's format: Go and ours on their own
/// stores, interleaved round by round. Each cell is the median wall-clock time / the median
/// CPU time (user + system) of the plugin process, which a busy machine inflates less. The
/// first round is shown apart: its ADD warms the caches, and ours builds its index from the
/// lease files there (as after any change made by Go's plugin).
fn host_local_scale(ours_dir: &Path, rounds: usize) -> String {
    let mut out = String::from(
        "\n| host-local, existing leases (median wall / CPU) | Go ADD | ours ADD | ours/Go | Go DEL | ours DEL | ours/Go | first ADD on the store, Go / ours (ours builds its index) |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let bins = [PathBuf::from(GO_DIR).join("host-local"), ours_dir.join("host-local")];
    let both = |wall: Duration, cpu: Duration| format!("{} / {}", ms(wall), ms(cpu));
    let mut ours_add = Vec::new();
    for n in [0u32, 1_000, 10_000, 50_000] {
        let stores = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
        let confs: Vec<String> = stores
            .iter()
            .map(|d| {
                json!({"cniVersion": "1.0.0", "name": "scale", "type": "host-local",
                    "ipam": {"type": "host-local", "subnet": "10.233.0.0/16", "dataDir": d.path()}})
                .to_string()
            })
            .collect();
        for d in &stores {
            prefill(d.path(), n);
        }
        // [side][wall, cpu]
        let mut adds: [[Vec<Duration>; 2]; 2] = Default::default();
        let mut dels: [[Vec<Duration>; 2]; 2] = Default::default();
        let mut first = [(Duration::ZERO, Duration::ZERO); 2];
        for r in 0..=rounds {
            for (i, bin) in bins.iter().enumerate() {
                let id = format!("probe-{r}");
                let add = exec(bin, &env_for("ADD", &id, "/nonexistent", &cni_path_of(bin)), confs[i].as_bytes());
                assert_eq!(add.code, 0, "{} ADD: {}", bin.display(), String::from_utf8_lossy(&add.stdout));
                let del = exec(bin, &env_for("DEL", &id, "/nonexistent", &cni_path_of(bin)), confs[i].as_bytes());
                assert_eq!(del.code, 0, "{} DEL: {}", bin.display(), String::from_utf8_lossy(&del.stdout));
                if r == 0 {
                    first[i] = (add.took, add.cpu);
                    continue;
                }
                adds[i][0].push(add.took);
                adds[i][1].push(add.cpu);
                dels[i][0].push(del.took);
                dels[i][1].push(del.cpu);
            }
        }
        let med = |v: &mut [Vec<Duration>; 2]| (percentile(&mut v[0], 0.5), percentile(&mut v[1], 0.5));
        let [(ga, gac), (oa, oac)] = [med(&mut adds[0]), med(&mut adds[1])];
        let [(gd, gdc), (od, odc)] = [med(&mut dels[0]), med(&mut dels[1])];
        ours_add.push((oa, oac));
        out += &format!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} — {} |\n",
            both(ga, gac),
            both(oa, oac),
            ratio(oa.as_secs_f64(), ga.as_secs_f64()),
            both(gd, gdc),
            both(od, odc),
            ratio(od.as_secs_f64(), gd.as_secs_f64()),
            both(first[0].0, first[0].1),
            both(first[1].0, first[1].1)
        );
    }
    out += &format!(
        "\nours ADD median at 10k leases / at 0: {} wall, {} CPU (target ≤ 2×); {rounds} rounds after one warm-up round.\n",
        ratio(ours_add[2].0.as_secs_f64(), ours_add[0].0.as_secs_f64()),
        ratio(ours_add[2].1.as_secs_f64(), ours_add[0].1.as_secs_f64())
    );
    out
}

/// The `CNI_PATH` to give a plugin: its own directory.
fn cni_path_of(bin: &Path) -> PathBuf {
    bin.parent().map_or_else(|| PathBuf::from(GO_DIR), Path::to_path_buf)
}
