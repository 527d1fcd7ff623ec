//! The daemon's leases on disk (`--state-dir`): kept across SIGKILL and restarts, one daemon per
//! directory, debris of a killed daemon removed, and (as root, on a private tmpfs) a full or
//! read-only disk failing one request cleanly with the next one after the fault succeeding.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `memory-ipamd SOCKET --state-dir DIR` and waits for its readiness line.
    fn start(socket: &Path, state: &Path) -> Self {
        Self::try_start(socket, state).unwrap_or_else(|e| panic!("daemon did not start: {e}"))
    }

    fn try_start(socket: &Path, state: &Path) -> Result<Self, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memory-ipamd"))
            .arg(socket)
            .args(["--state-dir", state.to_str().unwrap(), "--durability", "power-loss"])
            .env("CNI_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.trim() == format!("listening on {}", socket.display()) {
            return Ok(Self { child });
        }
        let out = child.wait_with_output().unwrap();
        Err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)))
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(socket: &Path, netns: &Path, cmd: &str, id: &str) -> (i32, Value) {
    let conf = json!({"cniVersion": "1.0.0", "name": "statenet", "type": "memory-ipam",
                      "ipam": {"type": "memory-ipam", "subnet": "10.224.60.0/24"}});
    let env = [
        ("CNI_DAEMON_SOCKET", socket.to_str().unwrap()),
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns.to_str().unwrap()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];
    let out = cni_sdk::testing::run_binary(env!("CARGO_BIN_EXE_memory-ipam"), env, conf.to_string().as_bytes());
    (out.exit_code, out.document().unwrap_or(Value::Null))
}

fn addr(doc: &Value) -> String {
    doc["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no address in {doc}")).to_owned()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(d) => d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

struct Paths {
    _tmp: tempfile::TempDir,
    socket: PathBuf,
    state: PathBuf,
    netns: PathBuf,
}

fn paths() -> Paths {
    let tmp = tempfile::tempdir().unwrap();
    let (socket, state, netns) = (tmp.path().join("d.sock"), tmp.path().join("state"), tmp.path().join("netns"));
    // A path that exists stands for a live container namespace (the shim then needs the daemon
    // for DEL).
    std::fs::write(&netns, b"").unwrap();
    Paths { _tmp: tmp, socket, state, netns }
}

#[test]
fn leases_survive_sigkill_and_the_directory_has_one_daemon() {
    let p = paths();
    let d = Daemon::start(&p.socket, &p.state);
    let (code, a) = call(&p.socket, &p.netns, "ADD", "c1");
    assert_eq!(code, 0, "{a}");
    let (_, b) = call(&p.socket, &p.netns, "ADD", "c2");
    assert_ne!(addr(&a), addr(&b));
    assert_eq!(files(&p.state.join("statenet")).len(), 2);

    // A second daemon on the same directory (another socket) refuses to start.
    let e = Daemon::try_start(&p.state.with_file_name("other.sock"), &p.state).err().expect("refused");
    assert!(e.contains("in use by another daemon"), "{e}");

    d.kill();
    // A temporary a killed write would leave.
    std::fs::write(p.state.join("statenet/.cni-tmp-1-0-10.224.60.77"), b"{\"contai").unwrap();
    let d = Daemon::start(&p.socket, &p.state);
    assert_eq!(call(&p.socket, &p.netns, "CHECK", "c1").0, 0, "the lease survived SIGKILL");
    assert_eq!(addr(&call(&p.socket, &p.netns, "ADD", "c1").1), addr(&a), "same address again");
    let (_, c) = call(&p.socket, &p.netns, "ADD", "c3");
    assert!(addr(&c) != addr(&a) && addr(&c) != addr(&b), "no address handed out twice");
    assert_eq!(files(&p.state.join("statenet")).len(), 3, "the temporary is gone");
    for id in ["c1", "c2", "c3"] {
        assert_eq!(call(&p.socket, &p.netns, "DEL", id).0, 0);
    }
    d.kill();
    let _d = Daemon::start(&p.socket, &p.state);
    let (code, doc) = call(&p.socket, &p.netns, "CHECK", "c1");
    assert_eq!((code, doc["msg"].as_str()), (1, Some("no lease for c1 eth0")), "a released lease stays released");
    assert!(files(&p.state.join("statenet")).is_empty());
}

/// Runs `f` on a thread with a private mount namespace in which `dir` is a tmpfs mounted with
/// `options`; processes started by `f` share that namespace. The mount disappears with them.
fn on_private_tmpfs<T: Send>(dir: &Path, options: &str, f: impl FnOnce(&dyn Fn(&str)) -> T + Send) -> T {
    use nix::mount::{MsFlags, mount};
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_FS).unwrap();
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).unwrap();
            mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::empty(), Some(options)).unwrap();
            let remount = |opts: &str| {
                let mut flags = MsFlags::MS_REMOUNT;
                if opts.split(',').any(|o| o == "ro") {
                    flags |= MsFlags::MS_RDONLY;
                }
                mount(None::<&str>, dir, None::<&str>, flags, Some(opts)).unwrap();
            };
            f(&remount)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

#[test]
#[ignore = "needs root"]
fn a_full_disk_fails_add_cleanly_and_the_next_add_gets_the_same_address() {
    let p = paths();
    std::fs::create_dir(&p.state).unwrap();
    on_private_tmpfs(&p.state, "size=16k,mode=0700", |_| {
        let _d = Daemon::start(&p.socket, &p.state);
        let (code, first) = call(&p.socket, &p.netns, "ADD", "c1");
        assert_eq!(code, 0, "{first}");
        let filler = p.state.join("filler");
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&filler).unwrap();
            while f.write_all(&[0u8; 4096]).is_ok() {}
        }
        let (code, e) = call(&p.socket, &p.netns, "ADD", "c2");
        assert_eq!((code, e["code"].as_u64()), (1, Some(5)), "{e}");
        assert_eq!(e["msg"], "failed to record the lease of 10.224.60.2 for c2 eth0");
        assert!(e["details"].as_str().unwrap().contains("no space left on device"), "{e}");
        assert_eq!(files(&p.state.join("statenet")), vec!["10.224.60.1"], "nothing half-written");
        assert_eq!(call(&p.socket, &p.netns, "CHECK", "c2").0, 1, "no lease in memory either");
        std::fs::remove_file(&filler).unwrap();
        let (code, again) = call(&p.socket, &p.netns, "ADD", "c2");
        assert_eq!((code, addr(&again).as_str()), (0, "10.224.60.2/24"));
        for id in ["c1", "c2"] {
            assert_eq!(call(&p.socket, &p.netns, "DEL", id).0, 0);
        }
    });
}

#[test]
#[ignore = "needs root"]
fn a_read_only_store_fails_add_and_del_cleanly_until_it_is_writable() {
    let p = paths();
    std::fs::create_dir(&p.state).unwrap();
    on_private_tmpfs(&p.state, "size=1m,mode=0700", |remount| {
        let _d = Daemon::start(&p.socket, &p.state);
        assert_eq!(call(&p.socket, &p.netns, "ADD", "c1").0, 0);
        remount("ro");
        let (code, e) = call(&p.socket, &p.netns, "ADD", "c2");
        assert_eq!((code, e["code"].as_u64()), (1, Some(5)), "{e}");
        assert!(e["details"].as_str().unwrap().contains("read-only file system"), "{e}");
        let (code, e) = call(&p.socket, &p.netns, "DEL", "c1");
        assert_eq!((code, e["msg"].as_str()), (1, Some("failed to record the release of 10.224.60.1 for c1 eth0")));
        assert_eq!(call(&p.socket, &p.netns, "CHECK", "c1").0, 0, "the lease is kept until its release is recorded");
        remount("rw");
        assert_eq!(call(&p.socket, &p.netns, "DEL", "c1").0, 0, "the retried DEL works");
        assert_eq!(call(&p.socket, &p.netns, "ADD", "c2").0, 0);
        assert_eq!(call(&p.socket, &p.netns, "DEL", "c2").0, 0);
        assert!(files(&p.state.join("statenet")).is_empty());
    });
}
