//! The on-disk lease store, byte-compatible with Go's `backend/disk`:
//!
//! ```text
//! <dataDir>/<network>/             0755
//!   lock                           empty, 0750, flock(LOCK_EX) for the whole operation
//!   <ip>                           0600, "<containerID>\r\n<ifname>" (no newline)
//!   last_reserved_ip.<set index>   0600, the address, no newline
//! ```
//!
//! Only the network directory is ever read or written: lease files are named by addresses
//! (never by container IDs, which are file content), and the network name was validated.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::config::canonical;

/// Prefix of the round-robin cursor files.
pub(crate) const LAST_IP_PREFIX: &str = "last_reserved_ip.";
/// Separator between container ID and interface name in a lease file.
pub(crate) const LINE_BREAK: &str = "\r\n";

/// One lease file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) ip: IpAddr,
    pub(crate) container_id: String,
    /// `None` for legacy files holding only the container ID.
    pub(crate) ifname: Option<String>,
    path: PathBuf,
}

/// An opened, locked network directory. The lock is released on drop.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
}

fn with_path(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

impl Store {
    /// Creates `<data_dir>/<network>` if needed and takes its lock.
    pub(crate) fn open(data_dir: &Path, network: &str) -> io::Result<Self> {
        let dir = data_dir.join(network);
        DirBuilder::new().recursive(true).mode(0o755).create(&dir).map_err(|e| with_path(e, "mkdir", &dir))?;
        let lock_path = dir.join("lock");
        // O_RDONLY|O_CREAT, mode 0750, like Go's go-filemutex (so a read-only lock file works).
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_CREAT)
            .mode(0o750)
            .open(&lock_path)
            .map_err(|e| with_path(e, "open", &lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| with_path(io::Error::from(errno), "flock", &lock_path))?;
        Ok(Self { dir, _lock: lock })
    }

    /// The network directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reserves `ip` for (id, ifname); `false` when it is already taken. Records the address as
    /// the last one reserved in range set `range_id`.
    pub(crate) fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, range_id: usize) -> io::Result<bool> {
        let ip = canonical(ip);
        let path = self.dir.join(ip.to_string());
        let mut f = match OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(with_path(e, "open", &path)),
        };
        let content = format!("{}{LINE_BREAK}{ifname}", id.trim());
        if let Err(e) = f.write_all(content.as_bytes()) {
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(with_path(e, "write", &path));
        }
        drop(f);
        let last = self.dir.join(format!("{LAST_IP_PREFIX}{range_id}"));
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&last)
            .and_then(|mut f| f.write_all(ip.to_string().as_bytes()))
            .map_err(|e| with_path(e, "open", &last))?;
        Ok(true)
    }

    /// The last address reserved in range set `range_id`, if recorded and readable.
    pub(crate) fn last_reserved_ip(&self, range_id: usize) -> Option<IpAddr> {
        let text = fs::read_to_string(self.dir.join(format!("{LAST_IP_PREFIX}{range_id}"))).ok()?;
        text.parse::<IpAddr>().ok().map(canonical)
    }

    /// Every regular file of the directory with its trimmed content (symlinks are skipped).
    fn files(&self) -> io::Result<Vec<(PathBuf, String)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| with_path(e, "open", &self.dir))? {
            let Ok(entry) = entry else { continue };
            let Ok(ft) = entry.file_type() else { continue };
            if !ft.is_file() {
                continue;
            }
            let path = entry.path();
            if let Ok(data) = fs::read(&path) {
                out.push((path, String::from_utf8_lossy(&data).trim().to_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// All lease files (those named by an address).
    pub(crate) fn leases(&self) -> io::Result<Vec<Lease>> {
        let mut out = Vec::new();
        for (path, content) in self.files()? {
            let Some(ip) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<IpAddr>().ok()) else {
                continue;
            };
            let (container_id, ifname) = match content.split_once(LINE_BREAK) {
                Some((id, ifname)) => (id.to_owned(), Some(ifname.to_owned())),
                None => (content, None),
            };
            out.push(Lease { ip, container_id, ifname, path });
        }
        Ok(out)
    }

    /// Addresses held by (id, ifname), or by `id` in legacy files (Go's `GetByID`).
    pub(crate) fn get_by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        let (m, legacy) = (format!("{}{LINE_BREAK}{ifname}", id.trim()), id.trim());
        let Ok(files) = self.files() else { return Vec::new() };
        files
            .into_iter()
            .filter(|(_, c)| *c == m || c == legacy)
            .filter_map(|(p, _)| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()))
            .collect()
    }

    /// True when any file holds (id, ifname), or else `id` alone (Go's `FindByID`).
    pub(crate) fn find_by_id(&self, id: &str, ifname: &str) -> io::Result<bool> {
        let files = self.files()?;
        let m = format!("{}{LINE_BREAK}{ifname}", id.trim());
        Ok(files.iter().any(|(_, c)| *c == m) || files.iter().any(|(_, c)| c == id.trim()))
    }

    /// Deletes the files holding (id, ifname); when there are none, those holding `id` alone
    /// (Go's `ReleaseByID`).
    pub(crate) fn release_by_id(&self, id: &str, ifname: &str) -> io::Result<()> {
        let m = format!("{}{LINE_BREAK}{ifname}", id.trim());
        let files = self.files()?;
        let mut found = false;
        for (path, _) in files.iter().filter(|(_, c)| *c == m) {
            if fs::remove_file(path).is_ok() {
                found = true;
            }
        }
        if !found {
            for (path, _) in files.iter().filter(|(_, c)| c == id.trim()) {
                let _ = fs::remove_file(path);
            }
        }
        Ok(())
    }

    /// Deletes one lease.
    pub(crate) fn remove(&self, lease: &Lease) -> io::Result<()> {
        match fs::remove_file(&lease.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(e, "remove", &lease.path)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn layout_is_gos() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), "net1").unwrap();
        assert!(s.reserve("ctr-1 ", "eth0", "10.202.0.2".parse().unwrap(), 0).unwrap());
        assert!(!s.reserve("ctr-2", "eth0", "10.202.0.2".parse().unwrap(), 0).unwrap());
        assert!(s.reserve("ctr-2", "eth0", "fd00:202::2".parse().unwrap(), 1).unwrap());
        let dir = tmp.path().join("net1");
        assert_eq!(fs::read(dir.join("10.202.0.2")).unwrap(), b"ctr-1\r\neth0");
        assert_eq!(fs::read(dir.join("fd00:202::2")).unwrap(), b"ctr-2\r\neth0");
        assert_eq!(fs::read(dir.join("last_reserved_ip.0")).unwrap(), b"10.202.0.2");
        assert_eq!(fs::read(dir.join("last_reserved_ip.1")).unwrap(), b"fd00:202::2");
        assert_eq!(fs::read(dir.join("lock")).unwrap(), b"");
        // Modes are subject to the umask, which only ever removes bits.
        assert_eq!(mode(&dir.join("10.202.0.2")), 0o600);
        assert_eq!(mode(&dir.join("last_reserved_ip.0")), 0o600);
        assert_eq!(mode(&dir.join("lock")) & !0o750, 0);
        assert_eq!(mode(&dir) & !0o755, 0);
        assert_eq!(s.last_reserved_ip(1), Some("fd00:202::2".parse().unwrap()));
        assert_eq!(s.last_reserved_ip(7), None);
        assert_eq!(s.get_by_id("ctr-1", "eth0"), vec!["10.202.0.2".parse::<IpAddr>().unwrap()]);
        assert!(s.find_by_id("ctr-2", "eth0").unwrap());
        assert!(!s.find_by_id("ctr-2", "eth1").unwrap());
        s.release_by_id("ctr-2", "eth0").unwrap();
        s.release_by_id("ctr-2", "eth0").unwrap();
        assert!(!dir.join("fd00:202::2").exists());
        assert_eq!(s.leases().unwrap().len(), 1);
    }

    #[test]
    fn legacy_files_match_by_id() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), "net1").unwrap();
        fs::write(tmp.path().join("net1/10.202.0.9"), "old-ctr\n").unwrap();
        assert!(s.find_by_id("old-ctr", "eth0").unwrap());
        assert_eq!(s.get_by_id("old-ctr", "eth0").len(), 1);
        let leases = s.leases().unwrap();
        assert_eq!((leases[0].container_id.as_str(), leases[0].ifname.as_deref()), ("old-ctr", None));
        s.release_by_id("old-ctr", "eth0").unwrap();
        assert!(s.leases().unwrap().is_empty());
    }

    #[test]
    fn read_only_lock_file_is_enough() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("net1")).unwrap();
        let lock = tmp.path().join("net1/lock");
        fs::write(&lock, "").unwrap();
        fs::set_permissions(&lock, fs::Permissions::from_mode(0o400)).unwrap();
        let s = Store::open(tmp.path(), "net1").unwrap();
        assert_eq!(mode(&lock), 0o400, "an existing lock file is left as it is");
        drop(s);
    }

    #[test]
    fn lock_is_exclusive_across_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), "net1").unwrap();
        let f = File::open(s.dir().join("lock")).unwrap();
        let busy = Flock::lock(f, FlockArg::LockExclusiveNonblock);
        assert!(busy.is_err(), "another open file description cannot take the lock while the store is open");
        drop(s);
        let f = File::open(tmp.path().join("net1/lock")).unwrap();
        assert!(Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
