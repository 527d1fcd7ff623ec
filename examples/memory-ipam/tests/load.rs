//! The daemon under load: concurrent shim processes (ADD, DEL, CHECK), some killed mid-request,
//! while the daemon is SIGKILLed or SIGTERMed and restarted at random moments; then a soak phase
//! without restarts that measures the daemon's RSS; then every container is ADDed again, GC and
//! DEL release everything. Checked throughout: no answered ADD is ever lost or handed out twice,
//! no released lease comes back; at the end the leases on disk are exactly the live ones, then
//! none.
//!
//! CI size by default (1 000 requests, 8 concurrent shims, 64 containers). The larger run:
//!
//! ```text
//! MEMORY_IPAM_LOAD_REQUESTS=10000 cargo test --release -p memory-ipam --test load -- --nocapture
//! ```
//!
//! (`MEMORY_IPAM_LOAD_WORKERS`, `MEMORY_IPAM_LOAD_SEED` and `MEMORY_IPAM_LOAD_DURABILITY`
//! = `process` | `power-loss` also apply; the summary is printed on stderr.)

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cni_test_support::{SeededRng, env_or};
use serde_json::{Value, json};

const SUBNET: &str = "10.224.64.0/20";

/// What the test knows about a container's lease.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Absent,
    Present(String),
    /// A request whose answer was lost: the daemon may or may not hold a lease.
    Unknown,
}

struct DaemonCtl {
    socket: PathBuf,
    state: PathBuf,
    child: Mutex<Option<Child>>,
}

impl DaemonCtl {
    fn start(&self) -> u32 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memory-ipamd"))
            .arg(&self.socket)
            .args(["--state-dir", self.state.to_str().unwrap()])
            .args(["--durability", &std::env::var("MEMORY_IPAM_LOAD_DURABILITY").unwrap_or_else(|_| "process".into())])
            .env("CNI_LOG_LEVEL", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening on"), "daemon did not start: {line:?}");
        let pid = child.id();
        *self.child.lock().unwrap() = Some(child);
        pid
    }

    /// Stops the daemon with `signal` and waits for it.
    fn stop(&self, signal: nix::sys::signal::Signal) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, signal);
            let _ = child.wait();
        }
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.lock().unwrap().as_ref().map(Child::id).expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for DaemonCtl {
    fn drop(&mut self) {
        self.stop(nix::sys::signal::Signal::SIGKILL);
    }
}

/// How a shim run ended.
enum Answer {
    Ok(Value),
    Failed(Value),
    /// Killed by the test before it answered.
    Cut,
}

struct Rig {
    daemon: DaemonCtl,
    netns: PathBuf,
}

impl Rig {
    fn conf(version: &str) -> Value {
        json!({"cniVersion": version, "name": "loadnet", "type": "memory-ipam",
               "ipam": {"type": "memory-ipam", "subnet": SUBNET}})
    }

    /// Runs the shim; with `cut`, kills it after that many microseconds (a runtime giving up).
    fn shim(&self, cmd: &str, id: &str, stdin: &Value, cut: Option<u64>) -> Answer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memory-ipam"))
            .env_clear()
            .env("CNI_DAEMON_SOCKET", &self.daemon.socket)
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/opt/cni/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.to_string().as_bytes());
        if let Some(us) = cut {
            std::thread::sleep(Duration::from_micros(us));
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        match out.status.code() {
            None => Answer::Cut,
            Some(0) => Answer::Ok(doc),
            Some(_) => Answer::Failed(doc),
        }
    }
}

struct Stats {
    requests: AtomicUsize,
    cut: AtomicUsize,
    unreachable: AtomicUsize,
    restarts_kill: AtomicUsize,
    restarts_term: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

/// One request for container `c` (owned by the calling worker), the model updated and checked.
fn step(rig: &Rig, model: &Mutex<Vec<State>>, stats: &Stats, c: usize, rng: &mut SeededRng, chaos: bool) {
    let id = format!("ctr{c}");
    let op = match rng.below(100) {
        0..45 => "ADD",
        45..80 => "DEL",
        _ => "CHECK",
    };
    let cut = (chaos && rng.below(10) == 0).then(|| rng.below(3000));
    let before = model.lock().unwrap()[c].clone();
    if op == "DEL" && before != State::Absent {
        // From now on the address may be free at the daemon: nobody else's ADD getting it is fine.
        model.lock().unwrap()[c] = State::Unknown;
    }
    let answer = rig.shim(op, &id, &Rig::conf("1.0.0"), cut);
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let violation = |msg: String| stats.violations.lock().unwrap().push(msg);
    let mut m = model.lock().unwrap();
    match (op, answer) {
        ("ADD", Answer::Ok(doc)) => {
            let a = doc["ips"][0]["address"].as_str().unwrap_or_default().to_owned();
            if let State::Present(b) = &before
                && *b != a
            {
                violation(format!("{id}: ADD of a held lease returned {a}, not {b}"));
            }
            if let Some(other) = m.iter().position(|s| *s == State::Present(a.clone()))
                && other != c
            {
                violation(format!("{id}: ADD handed out {a}, which ctr{other} holds"));
            }
            m[c] = State::Present(a);
        }
        ("DEL", Answer::Ok(_)) => m[c] = State::Absent,
        ("CHECK", Answer::Ok(_)) => {
            if before == State::Absent {
                violation(format!("{id}: CHECK found a lease that was released"));
            }
        }
        ("CHECK", Answer::Failed(doc)) if doc["msg"] == format!("no lease for {id} eth0") => {
            if let State::Present(a) = &before {
                violation(format!("{id}: the lease of {a} was lost"));
            }
            m[c] = State::Absent;
        }
        (_, Answer::Failed(doc)) if doc["code"] == 11 => {
            stats.unreachable.fetch_add(1, Ordering::Relaxed);
            if op == "ADD" && before == State::Absent {
                m[c] = State::Unknown;
            }
        }
        (_, Answer::Cut) => {
            stats.cut.fetch_add(1, Ordering::Relaxed);
            if op == "ADD" && before == State::Absent {
                m[c] = State::Unknown;
            }
        }
        (_, Answer::Failed(doc)) => violation(format!("{id}: {op} failed unexpectedly: {doc}")),
        (_, Answer::Ok(doc)) => violation(format!("{id}: {op} answered {doc}")),
    }
}

/// `n` requests from `workers` threads, each owning the containers `c ≡ w (mod workers)`.
fn run_phase(rig: &Rig, model: &Mutex<Vec<State>>, stats: &Stats, n: usize, workers: usize, seed: u64, chaos: bool) {
    let issued = AtomicUsize::new(0);
    let containers = model.lock().unwrap().len();
    std::thread::scope(|s| {
        for w in 0..workers {
            let issued = &issued;
            s.spawn(move || {
                let mut rng = SeededRng::new(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mine: Vec<usize> = (w..containers).step_by(workers).collect();
                while issued.fetch_add(1, Ordering::Relaxed) < n {
                    let c = mine[rng.below(mine.len() as u64) as usize];
                    step(rig, model, stats, c, &mut rng, chaos);
                }
            });
        }
    });
}

#[test]
fn ten_thousand_requests_with_disconnects_and_restarts() {
    let requests = env_or("MEMORY_IPAM_LOAD_REQUESTS", 1000) as usize;
    let workers = env_or("MEMORY_IPAM_LOAD_WORKERS", 8) as usize;
    let seed = env_or("MEMORY_IPAM_LOAD_SEED", u64::from(std::process::id()) * 7919 + 17);
    let containers = 64;
    let dir = tempfile::tempdir().unwrap();
    let netns = dir.path().join("netns");
    std::fs::write(&netns, b"").unwrap();
    let rig = Rig {
        daemon: DaemonCtl {
            socket: dir.path().join("m.sock"),
            state: dir.path().join("state"),
            child: Mutex::new(None),
        },
        netns,
    };
    let stats = Stats {
        requests: AtomicUsize::new(0),
        cut: AtomicUsize::new(0),
        unreachable: AtomicUsize::new(0),
        restarts_kill: AtomicUsize::new(0),
        restarts_term: AtomicUsize::new(0),
        violations: Mutex::new(Vec::new()),
    };
    let model = Mutex::new(vec![State::Absent; containers]);
    rig.daemon.start();
    let started = Instant::now();

    // 1. Chaos: restarts at random moments while the workers run.
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = SeededRng::new(seed ^ 0xdead_beef);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
                if done.load(Ordering::Relaxed) {
                    break;
                }
                if rng.below(3) == 0 {
                    rig.daemon.stop(nix::sys::signal::Signal::SIGTERM);
                    stats.restarts_term.fetch_add(1, Ordering::Relaxed);
                } else {
                    rig.daemon.stop(nix::sys::signal::Signal::SIGKILL);
                    stats.restarts_kill.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(rng.below(30)));
                rig.daemon.start();
            }
        });
        run_phase(&rig, &model, &stats, requests, workers, seed, true);
        done.store(true, Ordering::Relaxed);
    });
    let chaos_time = started.elapsed();

    // 2. Soak on one daemon: RSS after a warm-up and at the end.
    rig.daemon.stop(nix::sys::signal::Signal::SIGTERM);
    rig.daemon.start();
    let soak = requests / 2;
    run_phase(&rig, &model, &stats, soak / 10, workers, seed ^ 1, false);
    let rss_warm = rig.daemon.rss_kib();
    run_phase(&rig, &model, &stats, soak - soak / 10, workers, seed ^ 2, false);
    let rss_end = rig.daemon.rss_kib();

    let total = stats.requests.load(Ordering::Relaxed);
    eprintln!(
        "memory-ipam load: seed {seed}; durability {}; {total} shim requests ({requests} under chaos in {chaos_time:.1?}, {soak} soak), \
         {workers} concurrent, {containers} containers; {} shims killed mid-request, {} answered 'daemon unreachable' (code 11); \
         daemon restarts: {} SIGKILL, {} SIGTERM; daemon RSS {rss_warm} KiB after warm-up, {rss_end} KiB after the soak; \
         total {:.1?}",
        std::env::var("MEMORY_IPAM_LOAD_DURABILITY").unwrap_or_else(|_| "process".into()),
        stats.cut.load(Ordering::Relaxed),
        stats.unreachable.load(Ordering::Relaxed),
        stats.restarts_kill.load(Ordering::Relaxed),
        stats.restarts_term.load(Ordering::Relaxed),
        started.elapsed()
    );
    let violations = stats.violations.lock().unwrap();
    assert!(
        violations.is_empty(),
        "{} violations, first: {:#?}",
        violations.len(),
        &violations[..violations.len().min(10)]
    );
    assert!(
        stats.restarts_kill.load(Ordering::Relaxed) + stats.restarts_term.load(Ordering::Relaxed) >= 1,
        "the daemon was restarted mid-stream"
    );
    // 3. Every container once more: idempotent ADD, all addresses distinct and on disk.
    let mut held = BTreeMap::new();
    for c in 0..containers {
        let id = format!("ctr{c}");
        match rig.shim("ADD", &id, &Rig::conf("1.0.0"), None) {
            Answer::Ok(doc) => {
                let a = doc["ips"][0]["address"].as_str().unwrap().to_owned();
                if let State::Present(b) = &model.lock().unwrap()[c] {
                    assert_eq!(&a, b, "{id}: its lease changed");
                }
                held.insert(id, a);
            }
            _ => panic!("{id}: final ADD failed"),
        }
    }
    let distinct: BTreeSet<&String> = held.values().collect();
    assert_eq!(distinct.len(), containers, "no address held twice: {held:?}");
    let on_disk: BTreeMap<String, String> = std::fs::read_dir(rig.daemon.state.join("loadnet"))
        .unwrap()
        .map(|e| {
            let rec: Value = serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            (rec["containerId"].as_str().unwrap().to_owned(), rec["address"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(on_disk, held, "the records on disk are exactly the leases");

    // GC keeps the even containers, DEL releases the rest; nothing is left anywhere.
    let valid: Vec<Value> =
        (0..containers).step_by(2).map(|c| json!({"containerID": format!("ctr{c}"), "ifname": "eth0"})).collect();
    let mut gc = Rig::conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!(valid);
    assert!(matches!(rig.shim("GC", "", &gc, None), Answer::Ok(_)), "GC");
    assert_eq!(std::fs::read_dir(rig.daemon.state.join("loadnet")).unwrap().count(), containers / 2);
    for c in 0..containers {
        let id = format!("ctr{c}");
        assert!(matches!(rig.shim("DEL", &id, &Rig::conf("1.0.0"), None), Answer::Ok(_)), "{id}: DEL");
        match rig.shim("CHECK", &id, &Rig::conf("1.0.0"), None) {
            Answer::Failed(doc) => assert_eq!(doc["msg"], format!("no lease for {id} eth0")),
            _ => panic!("{id}: a lease is left"),
        }
    }
    assert_eq!(std::fs::read_dir(rig.daemon.state.join("loadnet")).unwrap().count(), 0, "no record left");

    // Bounded memory: the soak (no restarts) does not grow the daemon by more than a few pages
    // per thousand requests.
    let allowed = 2048 + (soak as u64);
    assert!(rss_end <= rss_warm + allowed, "RSS grew from {rss_warm} KiB to {rss_end} KiB over {soak} requests");
}
