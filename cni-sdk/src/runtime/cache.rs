//! The result cache on disk: libcni's `cniCacheV1` files in `<cacheDir>/results/`, named
//! `<network>-<containerID>-<ifname>`, written crash-consistently and read tolerantly.
//!
//! **Writes** use [`kit::write_atomic`]: a temporary file in the same directory (mode 0600),
//! renamed over the record, flushed to disk first with [`Durability::PowerLoss`]. A killed
//! writer leaves the old record or the new one, never an empty or partial file, plus at most one
//! temporary; a failed write (`ENOSPC`, `EROFS`, ...) removes its temporary before it reports
//! the error.
//!
//! **Reads** never trust a file: an empty, truncated or garbage file (Go's libcni writes in
//! place, so a crash there leaves exactly that — containernetworking/cni#1055) is reported as
//! [`Entry::Unusable`] with the reason, so DEL can log it, drop it and go on.
//!
//! **Sweeping** (GC): temporaries and unusable records older than a grace period are removed,
//! so neither can accumulate; the grace period keeps a write in progress (ours, or a Go
//! runtime's in-place one) from being mistaken for debris. (No directory lock: Go runtimes
//! share the directory and take none.)

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cni_types::{CacheError, CacheRecord};
use serde_json::Value;

use crate::kit::{self, Durability};

/// The subdirectory of the cache directory holding the records.
pub(crate) const RESULTS_DIR: &str = "results";

/// How long a temporary or an unusable record must have been left alone before a sweep removes
/// it.
pub(crate) const SWEEP_GRACE: Duration = Duration::from_secs(60);

/// The file name of a record, or `None` when a part is empty or could leave the directory
/// (`/` or NUL): identifiers are validated elsewhere, this keeps an unvalidated one from ever
/// becoming a path.
pub(crate) fn entry_name(network: &str, container_id: &str, ifname: &str) -> Option<String> {
    let ok = |s: &str| !s.is_empty() && !s.contains(['/', '\0']);
    (ok(network) && ok(container_id) && ok(ifname)).then(|| format!("{network}-{container_id}-{ifname}"))
}

/// Whether `name` is a temporary of [`kit::write_atomic`] (never a record: record names start
/// with the network name, which starts with a letter or digit).
pub(crate) fn is_temporary(name: &str) -> bool {
    kit::is_temp_file_name(name.as_ref())
}

/// Writes `bytes` as the record at `path` (see the module docs); creates the directory (mode
/// 0700) when it is missing.
pub(crate) fn write(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    let dir =
        path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a cache record needs a directory"))?;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    kit::write_atomic(path, bytes, 0o600, durability)
}

/// What a record file holds.
#[derive(Debug)]
pub(crate) enum Entry {
    /// No such file.
    Missing,
    /// A `cniCacheV1` record.
    Record(Box<CacheRecord>),
    /// Another JSON document: a bare result, as libcni's first cache format wrote.
    Legacy(Value),
    /// Nothing usable: the reason (empty, truncated, not JSON, a record with bad fields).
    Unusable(String),
}

/// Classifies the bytes of a record file.
pub(crate) fn parse(bytes: &[u8]) -> Entry {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Entry::Unusable("the file is empty (a write that never finished)".to_owned());
    }
    match CacheRecord::from_slice(bytes) {
        Ok(rec) => Entry::Record(Box::new(rec)),
        Err(CacheError::NotV1) => match serde_json::from_slice::<Value>(bytes) {
            Ok(v @ Value::Object(_)) => Entry::Legacy(v),
            Ok(other) => Entry::Unusable(format!("a JSON {} instead of an object", json_kind(&other))),
            Err(e) => Entry::Unusable(format!("not JSON: {e}")),
        },
        Err(CacheError::Json(e)) if e.is_eof() => {
            Entry::Unusable(format!("the file is truncated after {} bytes (a write that never finished)", bytes.len()))
        }
        Err(CacheError::Json(e)) if e.is_data() => {
            Entry::Unusable(format!("a {} record with bad fields: {e}", cni_types::CACHE_KIND_V1))
        }
        Err(CacheError::Json(e)) => Entry::Unusable(format!("not JSON: {e}")),
        Err(e) => Entry::Unusable(e.to_string()),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads the record at `path`; only an I/O error other than "not found" is an error.
pub(crate) fn read(path: &Path) -> io::Result<Entry> {
    match fs::read(path) {
        Ok(bytes) => Ok(parse(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Entry::Missing),
        Err(e) => Err(e),
    }
}

/// Removes the record at `path`; a missing one is fine.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A record file found by [`list`].
#[derive(Debug)]
pub(crate) struct Listed {
    /// Its path.
    pub(crate) path: PathBuf,
    /// What it holds (never [`Entry::Missing`]).
    pub(crate) entry: Entry,
}

/// Every record file in `dir` (a missing directory has none), temporaries and subdirectories
/// skipped, in name order. A file that cannot be read is listed as unusable.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<Listed>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_temporary(name) || entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let entry = match read(&path) {
            Ok(Entry::Missing) => continue, // removed since the directory was read
            Ok(e) => e,
            Err(e) => Entry::Unusable(format!("cannot be read: {e}")),
        };
        out.push(Listed { path, entry });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn older_than(path: &Path, grace: Duration) -> bool {
    let Ok(modified) = fs::symlink_metadata(path).and_then(|m| m.modified()) else { return false };
    SystemTime::now().duration_since(modified).is_ok_and(|age| age >= grace)
}

/// Removes from `dir` what can only be debris: temporaries of any network, and unusable records
/// whose name starts with `<network>-` and is not in `keep`, each once it is older than `grace`.
/// Returns how many files were removed; every removal (and every failure to remove) is logged.
pub(crate) fn sweep(dir: &Path, network: &str, keep: &[String], grace: Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let prefix = format!("{network}-");
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) || !older_than(&path, grace) {
            continue;
        }
        let why = if is_temporary(name) {
            "a temporary cache file left by an interrupted write".to_owned()
        } else if name.starts_with(&prefix) && !keep.iter().any(|k| k == name) {
            match read(&path) {
                Ok(Entry::Unusable(why)) => format!("an unusable cache record ({why})"),
                _ => continue,
            }
        } else {
            continue;
        };
        match remove(&path) {
            Ok(()) => {
                tracing::warn!(file = %path.display(), "removed {why}");
                removed += 1;
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "could not remove {why}"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn entry_names_never_leave_the_directory() {
        assert_eq!(entry_name("net", "c1", "eth0").as_deref(), Some("net-c1-eth0"));
        for (n, c, i) in [
            ("net", "../x", "eth0"),
            ("net", "c1", "a/b"),
            ("", "c1", "eth0"),
            ("net", "c\0", "eth0"),
            ("net", "", "e"),
        ] {
            assert_eq!(entry_name(n, c, i), None, "{n:?} {c:?} {i:?}");
        }
    }

    #[test]
    fn write_replaces_atomically_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results/net-c1-eth0");
        for durability in [Durability::PowerLoss, Durability::Process] {
            write(&path, b"{\"a\":1}", durability).unwrap();
            write(&path, b"{\"a\":2}", durability).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"{\"a\":2}");
            assert_eq!(names(&dir.path().join("results")), vec!["net-c1-eth0"]);
        }
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir.path().join("results")).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_and_keeps_the_old_record() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the record should be: the rename fails after the data was written.
        let path = dir.path().join("net-c1-eth0");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"x").unwrap();
        let e = write(&path, b"{}", Durability::PowerLoss).unwrap_err();
        assert!(matches!(e.kind(), io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty), "{e}");
        assert_eq!(names(dir.path()), vec!["net-c1-eth0"], "no temporary left");
    }

    #[test]
    fn readers_classify_debris() {
        let rec = CacheRecord::new("c1", "eth0", "net", b"{}".to_vec()).to_go_json();
        assert!(matches!(parse(rec.as_bytes()), Entry::Record(r) if r.container_id == "c1"));
        assert!(matches!(parse(br#"{"cniVersion":"0.3.1","ips":[]}"#), Entry::Legacy(_)));
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty"),
            (b"  \n", "empty"),
            (&rec.as_bytes()[..rec.len() / 2], "truncated"),
            (b"\x00\x00\x00garbage", "not JSON"),
            (b"[1,2]", "array instead of an object"),
            (br#"{"kind":"cniCacheV1","containerId":7}"#, "bad fields"),
        ];
        for (bytes, want) in cases {
            match parse(bytes) {
                Entry::Unusable(why) => assert!(why.contains(want), "{bytes:?}: {why}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn list_skips_temporaries_and_sweep_removes_only_old_debris_of_its_network() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let rec = |id: &str| CacheRecord::new(id, "eth0", "net", b"{}".to_vec()).to_go_json();
        fs::write(d.join("net-good-eth0"), rec("good")).unwrap();
        fs::write(d.join(".cni-tmp-1-0-net-good-eth0"), rec("good")).unwrap();
        fs::write(d.join("net-empty-eth0"), b"").unwrap();
        fs::write(d.join("net-valid-eth0"), b"").unwrap();
        fs::write(d.join("other-empty-eth0"), b"").unwrap();
        let listed: Vec<String> =
            list(d).unwrap().iter().map(|l| l.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(listed, vec!["net-empty-eth0", "net-good-eth0", "net-valid-eth0", "other-empty-eth0"]);

        let keep = vec!["net-valid-eth0".to_owned()];
        assert_eq!(sweep(d, "net", &keep, Duration::from_secs(3600)), 0, "nothing is old enough");
        assert_eq!(sweep(d, "net", &keep, Duration::ZERO), 2);
        assert_eq!(names(d), vec!["net-good-eth0", "net-valid-eth0", "other-empty-eth0"]);
        assert_eq!(sweep(d, "missing", &[], Duration::ZERO), 0);
        assert_eq!(sweep(&d.join("absent"), "net", &[], Duration::ZERO), 0);
    }
}
