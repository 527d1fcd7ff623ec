//! The on-disk lease store, byte-compatible with Go's `backend/disk`:
//!
//! ```text
//! <dataDir>/<network>/             0755
//!   lock                           empty, 0750, flock(LOCK_EX) for the whole operation
//!   <ip>                           0600, "<containerID>\r\n<ifname>" (no newline)
//!   last_reserved_ip.<set index>   0600, the address, no newline
//!   .cni-rs.index                  ours: the lease index (see `index.rs`); Go ignores it
//! ```
//!
//! Only the network directory is ever read or written: lease files are named by addresses
//! (never by container IDs, which are file content), and the network name was validated.
//!
//! Every write is atomic, so a process killed at any instant leaves no empty or partial file:
//! a lease is written completely to an unnamed (`O_TMPFILE`) or temporary file and then
//! hard-linked to its address's name — the link fails if the address is taken, which keeps
//! Go's exclusive-create semantics — and the cursor and the index are replaced by rename.
//! Temporary files (`.cni-rs.tmp.*`) exist only while a lock holder is between two steps; one
//! found under the lock was left by a crash and is removed.

use std::cell::{Cell, RefCell};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use cni_sdk::tracing::{debug, warn};
use cni_sdk::types::ident;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, Flock, FlockArg};

use super::config::canonical;
use super::fault;
use super::index::{self, Entry, Index, addr_key, key_addr, owner_hash};

/// Prefix of the round-robin cursor files.
pub(crate) const LAST_IP_PREFIX: &str = "last_reserved_ip.";
/// Separator between container ID and interface name in a lease file.
pub(crate) const LINE_BREAK: &str = "\r\n";
/// Prefix of our temporary files (never an address, so never a lease to Go or to us).
pub(crate) const TEMP_PREFIX: &str = ".cni-rs.tmp.";

/// One lease file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) ip: IpAddr,
    pub(crate) container_id: String,
    /// `None` for legacy files holding only the container ID.
    pub(crate) ifname: Option<String>,
    owner: u64,
    garbage: bool,
}

/// An opened, locked network directory. The lock is released on drop (after everything else).
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    dir_file: File,
    /// `None` until first needed when the file on disk cannot be trusted (then rebuilt).
    index: RefCell<Option<Index>>,
    warned_garbage: Cell<bool>,
    _lock: Flock<File>,
}

fn with_path(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// Writes `data` to `<dir>/<name>` atomically: a fresh temporary file, then `rename`. The
/// crash points are `<what>:temp-written` and `<what>:renamed`.
pub(crate) fn replace_file(dir: &Path, name: &str, data: &[u8], what: &str) -> io::Result<()> {
    let temp = dir.join(format!("{TEMP_PREFIX}{}", name.trim_start_matches('.')));
    remove_if_present(&temp)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| with_path(e, "open", &temp))?;
    if let Err(e) = f.write_all(data) {
        drop(f);
        let _ = fs::remove_file(&temp);
        return Err(with_path(e, "write", &temp));
    }
    drop(f);
    fault::point(&format!("{what}:temp-written"));
    let path = dir.join(name);
    fs::rename(&temp, &path).map_err(|e| with_path(e, "rename", &path))?;
    fault::point(&format!("{what}:renamed"));
    Ok(())
}

/// Removes a leftover temporary file. Never write through one: a lease temporary left by a
/// crash between link and unlink shares its inode with a lease.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(e, "remove", path)),
        _ => Ok(()),
    }
}

/// True when a lease file's trimmed content names a valid owner: a container ID and an
/// interface name, or a container ID alone (legacy).
fn well_formed(content: &str) -> bool {
    let (id, ifname) = match content.split_once(LINE_BREAK) {
        Some((id, ifname)) => (id, Some(ifname)),
        None => (content, None),
    };
    ident::validate_container_id(id).is_ok() && ifname.is_none_or(|i| ident::validate_interface_name(i).is_ok())
}

/// Reads a (small) lease file: `open`, `read`, `close` — where `fs::read` also asks for the size
/// and reads a second time to see the end (this runs once per lease when the index is rebuilt).
fn read_lease(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1024];
    let n = f.read(&mut buf)?;
    buf.truncate(n);
    if n == 1024 {
        // A regular file returns less than asked only at its end; this one is longer.
        f.read_to_end(&mut buf)?;
    }
    Ok(buf)
}

fn trimmed(data: &[u8]) -> String {
    String::from_utf8_lossy(data).trim().to_owned()
}

/// The lease file name of an address: Go's `net.IP.String()`.
fn lease_name(ip: IpAddr) -> String {
    canonical(ip).to_string()
}

/// What a scan found at one address.
#[derive(Debug)]
struct Scanned {
    entry: Entry,
    /// `None` when the name is taken by something that is not a readable file.
    lease: Option<Lease>,
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
        let dir_file = File::open(&dir).map_err(|e| with_path(e, "open", &dir))?;
        let index = Index::load(&dir, &dir_file)
            .map_err(|reason| debug!("the lease index of {} is rebuilt: {reason}", dir.display()))
            .ok();
        Ok(Self { dir, dir_file, index: RefCell::new(index), warned_garbage: Cell::new(false), _lock: lock })
    }

    /// The network directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(lease_name(ip))
    }

    /// Reads every entry of the directory named by an address, removing our temporaries (under
    /// the lock they can only be leftovers of a crash). Files not named by an address in Go's
    /// form (`lock`, cursors, the index, anything else) are not leases.
    fn scan(&self) -> io::Result<Vec<Scanned>> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| with_path(e, "open", &self.dir))? {
            let Ok(entry) = entry else { continue };
            let Ok(name) = entry.file_name().into_string() else { continue };
            let path = entry.path();
            if name.starts_with(TEMP_PREFIX) {
                match fs::remove_file(&path) {
                    Ok(()) => warn!("removed {}: a temporary file left by an interrupted operation", path.display()),
                    Err(e) => warn!("cannot remove {} (left by an interrupted operation): {e}", path.display()),
                }
                continue;
            }
            let Some(ip) = name.parse::<IpAddr>().ok().filter(|ip| lease_name(*ip) == name) else { continue };
            let addr = addr_key(canonical(ip));
            let content = match entry.file_type() {
                Ok(t) if t.is_file() => read_lease(&path).map(|d| trimmed(&d)).map_err(|e| e.to_string()),
                Ok(_) => Err("not a regular file".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            match content {
                Ok(content) => {
                    let garbage = !well_formed(&content);
                    if garbage {
                        let what = if content.is_empty() { "empty".to_owned() } else { format!("{content:?}") };
                        bad.push(format!("{name} ({what})"));
                    }
                    let owner = owner_hash(&content);
                    let (container_id, ifname) = match content.split_once(LINE_BREAK) {
                        Some((id, ifname)) => (id.to_owned(), Some(ifname.to_owned())),
                        None => (content, None),
                    };
                    out.push(Scanned {
                        entry: Entry { addr, owner, garbage },
                        lease: Some(Lease { ip, container_id, ifname, owner, garbage }),
                    });
                }
                Err(e) => {
                    bad.push(format!("{name} ({e})"));
                    out.push(Scanned { entry: Entry { addr, owner: 0, garbage: true }, lease: None });
                }
            }
        }
        if !bad.is_empty() {
            bad.sort();
            let total = bad.len();
            let more = if total > 8 { format!(" and {} more", total - 8) } else { String::new() };
            bad.truncate(8);
            warn!(
                "{}: {total} lease file(s) with no valid owner, left by interrupted operations: {}{more}; their addresses stay taken until GC releases them",
                self.dir.display(),
                bad.join(", ")
            );
            self.warned_garbage.set(true);
        }
        Ok(out)
    }

    /// Rebuilds the index from a scan. Its generations start at a random point: a copy of an
    /// earlier index, whatever its generation, is not mistaken for this one.
    fn rebuild(&self, scanned: &[Scanned]) -> Index {
        let entries: Vec<Entry> = scanned.iter().map(|s| s.entry).collect();
        let index = Index::build(&self.dir, &self.dir_file, index::fresh_generation(), &entries);
        fault::point("index:rebuilt");
        index
    }

    /// Runs a query on the index; an index found damaged is rebuilt and the query retried.
    fn query<T>(&self, mut f: impl FnMut(&mut Index) -> io::Result<T>) -> io::Result<T> {
        let mut slot = self.index.borrow_mut();
        let mut retried = false;
        loop {
            if slot.is_none() {
                *slot = Some(self.rebuild(&self.scan()?));
            }
            let index = slot.as_mut().expect("present");
            match f(index) {
                Ok(v) => return Ok(v),
                Err(e) if !retried => {
                    warn!("the lease index of {} is damaged ({e}): rebuilding it", self.dir.display());
                    *slot = None;
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Applies a change to the index; when that fails the index is dropped (its file stays
    /// marked dirty) and the next query rebuilds it from the lease files.
    fn update(&self, f: impl FnOnce(&mut Index, &Path, &File) -> io::Result<bool>) {
        let mut slot = self.index.borrow_mut();
        let Some(index) = slot.as_mut() else { return };
        let outcome = f(index, &self.dir, &self.dir_file);
        if !matches!(outcome, Ok(true)) {
            match outcome {
                Err(e) => warn!("cannot update the lease index of {} ({e}): it is rebuilt", self.dir.display()),
                _ => warn!("the lease index of {} was out of date: it is rebuilt", self.dir.display()),
            }
            *slot = None;
        }
    }

    /// Drops an index that gave a wrong answer; the next query rebuilds it.
    fn invalidate(&self, why: &str) {
        if self.index.borrow_mut().take().is_some() {
            warn!("{why}: rebuilding it");
        }
    }

    /// Marks the index as being changed (building it first if needed), before a lease file
    /// is created or removed.
    fn begin(&self) -> io::Result<()> {
        self.query(Index::begin)
    }

    fn commit(&self) {
        self.update(|ix, dir, dir_file| ix.commit(dir, dir_file).map(|()| true));
    }

    /// Logs the garbage leases the store holds (once per operation; ADD calls it).
    pub(crate) fn warn_garbage(&self) -> io::Result<()> {
        let (count, samples) = self.query(|ix| Ok(ix.garbage()))?;
        // A scan (rebuilding the index just now) has already told.
        if self.warned_garbage.replace(true) {
            return Ok(());
        }
        if count > 0 {
            let list: Vec<String> = samples.iter().map(ToString::to_string).collect();
            warn!(
                "{} holds {count} lease file(s) with no valid owner (e.g. {}), left by interrupted ADDs: their addresses stay taken until GC releases them",
                self.dir.display(),
                list.join(", ")
            );
        }
        Ok(())
    }

    /// Creates the lease file `path` holding `content`, complete or not at all; `false` when
    /// the name is taken.
    fn create_lease(&self, path: &Path, content: &str) -> io::Result<bool> {
        if !fault::no_tmpfile()
            && let Some(linked) = self.link_tmpfile(path, content)?
        {
            return Ok(linked);
        }
        self.link_named(path, content)
    }

    /// Writes `content` to an unnamed file (`O_TMPFILE`) and links it to `path`: a crash at
    /// any point leaves nothing behind. `None` when the file system or kernel cannot do it.
    fn link_tmpfile(&self, path: &Path, content: &str) -> io::Result<Option<bool>> {
        let mut f = match OpenOptions::new().write(true).custom_flags(nix::libc::O_TMPFILE).mode(0o600).open(&self.dir)
        {
            Ok(f) => f,
            Err(e)
                if matches!(e.raw_os_error(), Some(nix::libc::EOPNOTSUPP | nix::libc::EISDIR | nix::libc::EINVAL)) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(with_path(e, "open", &self.dir)),
        };
        fault::point("reserve:temp-created");
        f.write_all(content.as_bytes()).map_err(|e| with_path(e, "write", path))?;
        fault::point("reserve:content-written");
        let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
        match nix::unistd::linkat(AT_FDCWD, proc_path.as_str(), AT_FDCWD, path, AtFlags::AT_SYMLINK_FOLLOW) {
            Ok(()) => {
                fault::point("reserve:linked");
                Ok(Some(true))
            }
            Err(Errno::EEXIST) => Ok(Some(false)),
            // No /proc: the caller uses a named temporary.
            Err(Errno::ENOENT) if !Path::new("/proc/self/fd").is_dir() => Ok(None),
            Err(e) => Err(with_path(e.into(), "link", path)),
        }
    }

    /// Writes `content` to `.cni-rs.tmp.lease`, hard-links it to `path` and removes the
    /// temporary: a crash leaves at most the temporary, which readers ignore and the next
    /// scan removes.
    fn link_named(&self, path: &Path, content: &str) -> io::Result<bool> {
        let temp = self.dir.join(format!("{TEMP_PREFIX}lease"));
        remove_if_present(&temp)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| with_path(e, "open", &temp))?;
        fault::point("reserve:temp-created");
        if let Err(e) = f.write_all(content.as_bytes()) {
            drop(f);
            let _ = fs::remove_file(&temp);
            return Err(with_path(e, "write", &temp));
        }
        drop(f);
        fault::point("reserve:content-written");
        let linked = match fs::hard_link(&temp, path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(with_path(e, "link", path));
            }
        };
        if linked {
            fault::point("reserve:linked");
        }
        fs::remove_file(&temp).map_err(|e| with_path(e, "remove", &temp))?;
        fault::point("reserve:temp-removed");
        Ok(linked)
    }

    /// Reserves `ip` for (id, ifname); `false` when it is already taken. Records the address as
    /// the last one reserved in range set `range_id`.
    pub(crate) fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, range_id: usize) -> io::Result<bool> {
        let ip = canonical(ip);
        let path = self.path(ip);
        let content = format!("{}{LINE_BREAK}{ifname}", id.trim());
        self.begin()?;
        let created = self.create_lease(&path, &content);
        if !matches!(created, Ok(true)) {
            if matches!(created, Ok(false)) {
                self.report_taken(ip, &path)?;
            }
            self.commit();
            return created;
        }
        let last = format!("{LAST_IP_PREFIX}{range_id}");
        let cursor = replace_file(&self.dir, &last, ip.to_string().as_bytes(), "cursor");
        let entry = Entry { addr: addr_key(ip), owner: owner_hash(content.trim()), garbage: false };
        self.update(|ix, dir, _| ix.add(dir, entry).map(|()| true));
        fault::point("index:updated");
        self.commit();
        cursor.map(|()| true)
    }

    /// An address we wanted is taken: log when its file is garbage, and drop the index when it
    /// did not know the file.
    fn report_taken(&self, ip: IpAddr, path: &Path) -> io::Result<()> {
        if let Ok(data) = fs::read(path) {
            let content = trimmed(&data);
            if !well_formed(&content) {
                warn!("{} is taken by a lease file with no valid owner ({content:?}); GC releases it", path.display());
            }
        }
        let known = self.query(|ix| ix.is_taken(addr_key(ip)))?;
        if !known {
            self.invalidate(&format!("the lease index of {} did not know {}", self.dir.display(), path.display()));
        }
        Ok(())
    }

    /// The first address in `from..=to` (one family) without a lease file.
    pub(crate) fn first_free(&self, from: IpAddr, to: IpAddr) -> io::Result<Option<IpAddr>> {
        let (from, to) = (addr_key(canonical(from)), addr_key(canonical(to)));
        Ok(self.query(|ix| ix.first_free(from, to))?.map(key_addr))
    }

    /// The last address reserved in range set `range_id`, if recorded and readable.
    pub(crate) fn last_reserved_ip(&self, range_id: usize) -> Option<IpAddr> {
        let text = fs::read_to_string(self.dir.join(format!("{LAST_IP_PREFIX}{range_id}"))).ok()?;
        text.trim().parse::<IpAddr>().ok().map(canonical)
    }

    /// Every lease file (those named by an address). A full scan: also rebuilds the index and
    /// removes temporaries left by crashes (GC uses it).
    pub(crate) fn leases(&self) -> io::Result<Vec<Lease>> {
        let scanned = self.scan()?;
        let index = self.rebuild(&scanned);
        *self.index.borrow_mut() = Some(index);
        let mut out: Vec<Lease> = scanned.into_iter().filter_map(|s| s.lease).collect();
        out.sort_by_key(|l| (addr_key(l.ip), l.container_id.clone()));
        Ok(out)
    }

    /// The addresses whose lease file holds exactly `owner` (after trimming), checked against
    /// the files: an index that names a file holding something else is rebuilt.
    fn owned(&self, owner: &str) -> io::Result<Vec<IpAddr>> {
        let hash = owner_hash(owner);
        let mut retried = false;
        loop {
            let candidates = self.query(|ix| ix.owned(hash))?;
            let mut out = Vec::new();
            let mut consistent = true;
            for e in candidates {
                let ip = key_addr(e.addr);
                match read_lease(&self.path(ip)) {
                    Ok(data) => {
                        let content = trimmed(&data);
                        if content == owner {
                            out.push(ip);
                        } else if owner_hash(&content) != hash {
                            consistent = false;
                        }
                    }
                    Err(_) => consistent = false,
                }
            }
            if consistent || retried {
                out.sort_by_key(|ip| addr_key(*ip));
                return Ok(out);
            }
            self.invalidate(&format!("the lease index of {} named a file it does not describe", self.dir.display()));
            retried = true;
        }
    }

    /// Addresses held by (id, ifname), or by `id` in legacy files (Go's `GetByID`), in the
    /// order of Go's directory walk (by file name), which decides the address a duplicate
    /// allocation error names.
    pub(crate) fn get_by_id(&self, id: &str, ifname: &str) -> io::Result<Vec<IpAddr>> {
        let mut out = self.owned(&format!("{}{LINE_BREAK}{ifname}", id.trim()))?;
        out.extend(self.owned(id.trim())?);
        out.sort_by_key(|ip| lease_name(*ip));
        Ok(out)
    }

    /// True when any file holds (id, ifname), or else `id` alone (Go's `FindByID`).
    pub(crate) fn find_by_id(&self, id: &str, ifname: &str) -> io::Result<bool> {
        Ok(!self.owned(&format!("{}{LINE_BREAK}{ifname}", id.trim()))?.is_empty() || !self.owned(id.trim())?.is_empty())
    }

    /// Deletes the files holding (id, ifname); when there are none, those holding `id` alone
    /// (Go's `ReleaseByID`). Like Go, a file that cannot be removed is skipped.
    pub(crate) fn release_by_id(&self, id: &str, ifname: &str) -> io::Result<()> {
        let exact = format!("{}{LINE_BREAK}{ifname}", id.trim());
        let mut found = false;
        for ip in self.owned(&exact)? {
            found |= self.unlink(ip, owner_hash(&exact), false)?;
        }
        if !found {
            for ip in self.owned(id.trim())? {
                self.unlink(ip, owner_hash(id.trim()), false)?;
            }
        }
        Ok(())
    }

    /// Deletes one lease (GC); one already gone or that cannot be removed is skipped.
    pub(crate) fn remove(&self, lease: &Lease) -> io::Result<()> {
        if lease.garbage {
            warn!("releasing {}: it held no valid owner", self.path(lease.ip).display());
        }
        self.unlink(lease.ip, lease.owner, lease.garbage).map(drop)
    }

    /// Removes a lease file and its index entry; `false` when the file could not be removed.
    fn unlink(&self, ip: IpAddr, owner: u64, garbage: bool) -> io::Result<bool> {
        let path = self.path(ip);
        self.begin()?;
        let removed = match fs::remove_file(&path) {
            Ok(()) => {
                fault::point("release:unlinked");
                let entry = Entry { addr: addr_key(ip), owner, garbage };
                self.update(|ix, dir, _| ix.remove(dir, entry));
                fault::point("index:updated");
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.invalidate(&format!(
                    "the lease index of {} listed the missing {}",
                    self.dir.display(),
                    path.display()
                ));
                Ok(false)
            }
            Err(e) => {
                debug!("cannot remove {}: {e}", path.display());
                Ok(false)
            }
        };
        self.commit();
        removed
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::super::index::INDEX_NAME;
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn layout_is_gos() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), "net1").unwrap();
        assert!(s.reserve("ctr-1 ", "eth0", ip("10.202.0.2"), 0).unwrap());
        assert!(!s.reserve("ctr-2", "eth0", ip("10.202.0.2"), 0).unwrap());
        assert!(s.reserve("ctr-2", "eth0", ip("fd00:202::2"), 1).unwrap());
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
        assert_eq!(s.last_reserved_ip(1), Some(ip("fd00:202::2")));
        assert_eq!(s.last_reserved_ip(7), None);
        assert_eq!(s.get_by_id("ctr-1", "eth0").unwrap(), vec![ip("10.202.0.2")]);
        assert!(s.find_by_id("ctr-2", "eth0").unwrap());
        assert!(!s.find_by_id("ctr-2", "eth1").unwrap());
        s.release_by_id("ctr-2", "eth0").unwrap();
        s.release_by_id("ctr-2", "eth0").unwrap();
        assert!(!dir.join("fd00:202::2").exists());
        assert_eq!(s.leases().unwrap().len(), 1);
        let mut names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [INDEX_NAME, "10.202.0.2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
    }

    #[test]
    fn both_reservation_paths_write_the_same_files() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), "n").unwrap();
        let dir = tmp.path().join("n");
        let (p, q) = (dir.join("10.202.1.2"), dir.join("10.202.1.3"));
        assert_eq!(s.link_tmpfile(&p, "a\r\neth0").unwrap(), Some(true), "this file system has O_TMPFILE");
        assert_eq!(s.link_tmpfile(&p, "b\r\neth0").unwrap(), Some(false));
        assert!(!s.link_named(&p, "b\r\neth0").unwrap());
        // A temporary left by a crash between link and unlink shares its inode with a lease: the
        // named path must never write through it.
        let temp = dir.join(format!("{TEMP_PREFIX}lease"));
        fs::write(&temp, "x\r\neth0").unwrap();
        fs::hard_link(&temp, dir.join("10.202.1.9")).unwrap();
        assert!(s.link_named(&q, "c\r\neth0").unwrap());
        assert_eq!(fs::read(dir.join("10.202.1.9")).unwrap(), b"x\r\neth0");
        assert_eq!(fs::read(&p).unwrap(), b"a\r\neth0");
        assert_eq!(fs::read(&q).unwrap(), b"c\r\neth0");
        assert_eq!((mode(&p), mode(&q)), (0o600, 0o600));
        assert!(!temp.exists());
        let mut names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["10.202.1.2", "10.202.1.3", "10.202.1.9", "lock"], "no temporary is left");
    }

    #[test]
    fn legacy_files_match_by_id() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("net1")).unwrap();
        fs::write(tmp.path().join("net1/10.202.0.9"), "old-ctr\n").unwrap();
        let s = Store::open(tmp.path(), "net1").unwrap();
        assert!(s.find_by_id("old-ctr", "eth0").unwrap());
        assert_eq!(s.get_by_id("old-ctr", "eth0").unwrap().len(), 1);
        let leases = s.leases().unwrap();
        assert_eq!((leases[0].container_id.as_str(), leases[0].ifname.as_deref()), ("old-ctr", None));
        s.release_by_id("old-ctr", "eth0").unwrap();
        assert!(s.leases().unwrap().is_empty());
    }

    #[test]
    fn garbage_and_temporaries_are_tolerated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net1");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("10.202.0.5"), "").unwrap();
        fs::write(dir.join("10.202.0.6"), "ctr-1\r\neth0").unwrap();
        fs::write(dir.join("10.202.0.7"), [0xff, 0xfe, b'\r', b'\n']).unwrap();
        fs::create_dir(dir.join("10.202.0.8")).unwrap();
        fs::write(dir.join(format!("{TEMP_PREFIX}lease")), "ctr-1\r\neth0").unwrap();
        fs::write(dir.join("not-an-address"), "ctr-1\r\neth0").unwrap();
        let s = Store::open(tmp.path(), "net1").unwrap();
        assert!(s.find_by_id("ctr-1", "eth0").unwrap());
        assert!(!dir.join(format!("{TEMP_PREFIX}lease")).exists(), "a crash's temporary is removed");
        assert!(!s.find_by_id("ctr-2", "eth0").unwrap());
        let garbage: Vec<String> = s.leases().unwrap().iter().filter(|l| l.garbage).map(|l| l.ip.to_string()).collect();
        assert_eq!(garbage, ["10.202.0.5", "10.202.0.7"]);
        // Garbage is taken: the walk skips it (and the directory).
        assert_eq!(s.first_free(ip("10.202.0.5"), ip("10.202.0.20")).unwrap(), Some(ip("10.202.0.9")));
        assert!(!s.reserve("ctr-3", "eth0", ip("10.202.0.5"), 0).unwrap());
        s.warn_garbage().unwrap();
        for l in s.leases().unwrap() {
            if l.garbage {
                s.remove(&l).unwrap();
            }
        }
        assert_eq!(s.first_free(ip("10.202.0.5"), ip("10.202.0.20")).unwrap(), Some(ip("10.202.0.5")));
        s.release_by_id("ctr-1", "eth0").unwrap();
        assert!(dir.join("not-an-address").exists(), "only files named by an address are leases");
        assert!(dir.join("10.202.0.8").is_dir());
    }

    /// Go (or anyone) changing the directory behind our back is noticed by the next open.
    #[test]
    fn foreign_changes_are_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("n");
        let s = Store::open(tmp.path(), "n").unwrap();
        assert!(s.reserve("a", "eth0", ip("10.202.2.2"), 0).unwrap());
        drop(s);
        // What Go's Reserve and ReleaseByID do.
        fs::write(dir.join("10.202.2.3"), "b\r\neth0").unwrap();
        fs::remove_file(dir.join("10.202.2.2")).unwrap();
        let s = Store::open(tmp.path(), "n").unwrap();
        assert!(s.find_by_id("b", "eth0").unwrap());
        assert!(!s.find_by_id("a", "eth0").unwrap());
        assert_eq!(s.first_free(ip("10.202.2.2"), ip("10.202.2.9")).unwrap(), Some(ip("10.202.2.2")));
        assert!(s.index.borrow().is_some());
        drop(s);
        // A valid index is used as it is.
        let s = Store::open(tmp.path(), "n").unwrap();
        assert!(s.index.borrow().is_some(), "trusted without a rebuild");
        assert_eq!(s.get_by_id("b", "eth0").unwrap(), [ip("10.202.2.3")]);
    }

    /// An index that lies despite a matching stamp (a damaged file) is caught by checking its
    /// answers against the lease files.
    #[test]
    fn wrong_answers_are_caught() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("n");
        let s = Store::open(tmp.path(), "n").unwrap();
        assert!(s.reserve("a", "eth0", ip("10.202.3.2"), 0).unwrap());
        drop(s);
        // Rewrite the lease in place (no directory change): the index now names a foreign file.
        fs::write(dir.join("10.202.3.2"), "b\r\neth0").unwrap();
        let s = Store::open(tmp.path(), "n").unwrap();
        assert!(s.index.borrow().is_some());
        assert!(!s.find_by_id("a", "eth0").unwrap());
        assert!(s.find_by_id("b", "eth0").unwrap());
        s.release_by_id("b", "eth0").unwrap();
        assert!(!dir.join("10.202.3.2").exists());
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
