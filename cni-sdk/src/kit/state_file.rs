//! Crash-consistent state files: what a plugin writes to disk so that a later DEL or GC (or
//! another implementation sharing the directory) can find it, even after the writer was killed
//! at any point.
//!
//! * [`write_atomic`] writes a temporary file in the same directory and renames it over the
//!   target, so a reader sees either the old contents or the new ones, never a truncated mix;
//!   with [`Durability::PowerLoss`] it also fsyncs the file and the directory.
//! * [`read_tolerant`] treats an empty, truncated or garbled file (left by a writer that did not
//!   write atomically, or by an older crash) as [`StateRead::Damaged`], with one log line,
//!   instead of an error that would block DEL.
//! * A writer killed between creating its temporary file and the rename leaves the temporary
//!   behind. Its name is recognisable ([`is_temp_file_name`]), readers that list the directory
//!   skip it, and a collector removes it with [`remove_temp_files`] while holding the
//!   directory's [`DirLock`] (writers that share the directory with a collector hold the same
//!   lock around [`write_atomic`], so no live temporary is ever removed).
//!
//! Errors name the operation and the path the way Go's `os.PathError` prints them
//! (`open /run/x/y.json: permission denied`) and keep their [`std::io::ErrorKind`].
//!
//! ```
//! use cni_sdk::kit::{Durability, StateRead, read_tolerant, write_atomic};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("ctr1_eth0.json");
//! write_atomic(&path, br#"{"mtu": 1500}"#, 0o600, Durability::Process)?;
//! let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b);
//! let StateRead::Valid(v) = read_tolerant(&path, parse)? else { panic!("written above") };
//! assert_eq!(v["mtu"], 1500);
//!
//! // A file an interrupted writer left empty is reported, not an error.
//! std::fs::write(&path, b"")?;
//! assert!(matches!(read_tolerant(&path, parse)?, StateRead::Damaged(_)));
//! assert!(matches!(read_tolerant(&dir.path().join("gone.json"), parse)?, StateRead::Missing));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::fcntl::{Flock, FlockArg};

/// The prefix of the temporary files [`write_atomic`] creates (hidden, so tools that list a
/// directory's files by their usual names do not see them).
pub const TEMP_FILE_PREFIX: &str = ".cni-tmp-";

/// How far [`write_atomic`] goes for the new contents to survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Temporary file and rename: a killed writer leaves the old contents or the new ones,
    /// never a mix. After a power loss the file may hold the old contents (or none). Enough for
    /// state that lives no longer than the system's uptime, such as anything under `/run` or
    /// about network namespaces.
    #[default]
    Process,
    /// Also fsync the file before the rename and its directory after it: once the call returns,
    /// the new contents survive a power loss. Costs one or two disk flushes per write.
    PowerLoss,
}

/// A failed file operation, printed as Go's `os.PathError`: `<op> <path>: <errno text>`.
#[derive(Debug)]
struct PathError {
    op: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), go_io_text(&self.source))
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// How Go prints a system error: the C text with a lower-case first letter, without Rust's
/// ` (os error N)` suffix.
fn go_io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => {
            let text = io::Error::from_raw_os_error(errno).to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
        }
        None => e.to_string(),
    }
}

/// Wraps `e` with the operation and path; the [`io::ErrorKind`] (and the OS error, as the
/// source) are kept.
fn path_error(op: &'static str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), PathError { op, path: path.to_owned(), source: e })
}

/// The temporary file for `target`: `.cni-tmp-<pid>-<n>-<name>` in the same directory (so the
/// rename never crosses file systems), cut to the 255-byte limit of a file name.
fn temp_path(target: &Path) -> io::Result<PathBuf> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = target.file_name().ok_or_else(|| {
        path_error("write", target, io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))
    })?;
    let mut tmp = format!("{TEMP_FILE_PREFIX}{}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed), {
        name.to_string_lossy()
    });
    if tmp.len() > 255 {
        let mut cut = 255;
        while !tmp.is_char_boundary(cut) {
            cut -= 1;
        }
        tmp.truncate(cut);
    }
    Ok(target.with_file_name(tmp))
}

/// Whether `name` is one of the temporary files [`write_atomic`] creates; readers that list a
/// directory skip these.
///
/// ```
/// use std::ffi::OsStr;
/// assert!(cni_sdk::kit::is_temp_file_name(OsStr::new(".cni-tmp-4242-0-ctr_eth0.json")));
/// assert!(!cni_sdk::kit::is_temp_file_name(OsStr::new("ctr_eth0.json")));
/// ```
pub fn is_temp_file_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP_FILE_PREFIX.as_bytes())
}

/// Replaces the contents of `path` atomically: writes `contents` to a temporary file in the same
/// directory with permissions `mode` (exactly, whatever the umask), then renames it over `path`.
/// The directory must exist. On error the temporary is removed and `path` is untouched; a writer
/// killed part-way leaves at most a temporary file (see [`remove_temp_files`]).
///
/// # Errors
/// The failed step, as `<op> <path>: <reason>` with the I/O error's kind.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, durability: Durability) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| path_error("open", &tmp, e))?;
        file.set_permissions(Permissions::from_mode(mode)).map_err(|e| path_error("chmod", &tmp, e))?;
        file.write_all(contents).map_err(|e| path_error("write", &tmp, e))?;
        if durability == Durability::PowerLoss {
            file.sync_all().map_err(|e| path_error("sync", &tmp, e))?;
        }
        drop(file);
        fs::rename(&tmp, path).map_err(|e| path_error("rename", path, e))?;
        if durability == Durability::PowerLoss {
            let dir = dir_of(path);
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| path_error("sync", dir, e))?;
        }
        Ok(())
    })();
    if written.is_err() {
        // Best effort: after a successful rename the temporary no longer exists.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// The directory `path` is in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// What [`read_tolerant`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRead<T> {
    /// There is no such file.
    Missing,
    /// The file is empty or does not parse; the text says why. A writer that was interrupted
    /// (or did not write atomically) left it; treat it as holding nothing.
    Damaged(String),
    /// The parsed contents.
    Valid(T),
}

impl<T> StateRead<T> {
    /// The parsed contents, if the file was valid.
    pub fn valid(self) -> Option<T> {
        match self {
            Self::Valid(v) => Some(v),
            Self::Missing | Self::Damaged(_) => None,
        }
    }
}

/// Reads and parses `path`, tolerating what a crash can leave: a missing file is
/// [`StateRead::Missing`], and an empty file (only whitespace) or one `parse` rejects is
/// [`StateRead::Damaged`], logged once at `warn` with the path and the reason.
///
/// # Errors
/// Only when the file exists but cannot be read (permissions, a directory, I/O errors).
pub fn read_tolerant<T, E: fmt::Display>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> io::Result<StateRead<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StateRead::Missing),
        Err(e) => return Err(path_error("read", path, e)),
    };
    let reason = if bytes.iter().all(u8::is_ascii_whitespace) {
        "the file is empty".to_owned()
    } else {
        match parse(&bytes) {
            Ok(v) => return Ok(StateRead::Valid(v)),
            Err(e) => e.to_string(),
        }
    };
    tracing::warn!(path = %path.display(), %reason, "ignoring a damaged state file (left by an interrupted write)");
    Ok(StateRead::Damaged(reason))
}

/// Removes the temporaries [`write_atomic`] left in `dir` (writers killed before their rename)
/// and returns their paths. Call it while holding the directory's [`DirLock`], which writers
/// sharing the directory hold around [`write_atomic`]: then no temporary belongs to a live
/// writer. A missing directory has none.
///
/// # Errors
/// When the directory cannot be listed or a temporary cannot be removed.
pub fn remove_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(path_error("open", dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| path_error("readdir", dir, e))?;
        if !is_temp_file_name(&entry.file_name()) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the temporary file of an interrupted write");
                removed.push(path);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(path_error("remove", &path, e)),
        }
    }
    Ok(removed)
}

/// An exclusive advisory lock (`flock`) on a directory, held until dropped. Processes sharing
/// a state directory take it around their writes and collections (see [`remove_temp_files`]).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let lock = cni_sdk::kit::DirLock::exclusive(dir.path())?;
/// // ... write_atomic(...) or collect ...
/// drop(lock);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct DirLock {
    _lock: Flock<File>,
}

impl fmt::Debug for DirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirLock").finish_non_exhaustive()
    }
}

impl DirLock {
    /// Waits for and takes the exclusive lock of `dir` (which must exist).
    ///
    /// # Errors
    /// When the directory cannot be opened or locked.
    pub fn exclusive(dir: &Path) -> io::Result<Self> {
        let mut file = File::open(dir).map_err(|e| path_error("open", dir, e))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(Self { _lock: lock }),
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(path_error("flock", dir, io::Error::from(errno))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    fn json(b: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(b)
    }

    #[test]
    fn writes_replace_whole_files_with_the_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        for durability in [Durability::Process, Durability::PowerLoss] {
            write_atomic(&path, b"{\"v\": 1}", 0o600, durability).unwrap();
            write_atomic(&path, b"{\"v\": 2}", 0o640, durability).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"{\"v\": 2}");
            assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        }
        // Nothing else is left in the directory.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old", 0o600, Durability::Process).unwrap();
        // The target is a directory: the rename fails after the temporary was written.
        let blocked = dir.path().join("sub");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        let err = write_atomic(&blocked, b"new", 0o600, Durability::Process).unwrap_err();
        assert!(err.to_string().starts_with(&format!("rename {}: ", blocked.display())), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(remove_temp_files(dir.path()).unwrap().is_empty());
        // A missing directory is the open of the temporary failing, named as such.
        let err = write_atomic(&dir.path().join("no/such.json"), b"x", 0o600, Durability::Process).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with("open ") && err.to_string().ends_with(": no such file or directory"));
    }

    #[test]
    fn damaged_files_are_reported_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        for (bytes, why) in
            [(&b""[..], "empty"), (b" \n", "empty"), (b"{\"mtu\": 15", "EOF"), (b"\0\0\0", "expected value")]
        {
            fs::write(&path, bytes).unwrap();
            match read_tolerant(&path, json).unwrap() {
                StateRead::Damaged(reason) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        fs::write(&path, b"{\"mtu\": 1500}").unwrap();
        assert_eq!(read_tolerant(&path, json).unwrap().valid().unwrap()["mtu"], 1500);
        assert_eq!(read_tolerant(&dir.path().join("none"), json).unwrap(), StateRead::Missing);
        // Unreadable is an error (a directory here), with the path in it.
        let err = read_tolerant(dir.path(), json).unwrap_err();
        assert!(err.to_string().starts_with(&format!("read {}: is a directory", dir.path().display())), "{err}");
    }

    #[test]
    fn temporaries_of_killed_writers_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("c_eth0.json");
        let tmp = temp_path(&target).unwrap();
        assert!(is_temp_file_name(tmp.file_name().unwrap()));
        assert_eq!(tmp.parent(), target.parent());
        fs::write(&tmp, b"{\"mtu\": 9").unwrap();
        fs::write(&target, b"{}").unwrap();
        let _lock = DirLock::exclusive(dir.path()).unwrap();
        assert_eq!(remove_temp_files(dir.path()).unwrap(), [tmp]);
        assert!(target.exists());
        assert!(remove_temp_files(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn temporary_names_fit_the_name_limit() {
        let long = "x".repeat(250);
        let tmp = temp_path(Path::new("/run/state").join(&long).as_path()).unwrap();
        assert!(tmp.file_name().unwrap().len() <= 255);
        assert!(is_temp_file_name(tmp.file_name().unwrap()));
        assert!(temp_path(Path::new("/")).is_err());
    }

    #[test]
    fn the_directory_lock_excludes_other_holders() {
        let dir = tempfile::tempdir().unwrap();
        let try_lock =
            || Flock::lock(File::open(dir.path()).unwrap(), FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e);
        let first = DirLock::exclusive(dir.path()).unwrap();
        assert_eq!(try_lock().unwrap_err(), nix::errno::Errno::EWOULDBLOCK);
        drop(first);
        drop(try_lock().unwrap());
        assert!(DirLock::exclusive(&dir.path().join("missing")).is_err());
    }
}
