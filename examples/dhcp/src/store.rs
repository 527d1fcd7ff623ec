//! Leases on disk: one JSON file per lease in the state directory, written atomically (a
//! temporary file, fsync, rename, fsync of the directory: `kit::write_atomic` with
//! `Durability::PowerLoss`), so a restarted daemon keeps renewing and DEL still releases (Go
//! keeps leases in memory only).
//!
//! An ADD records the offered address as a *pending* record before it sends its DHCPREQUEST:
//! a daemon killed between the REQUEST and the final record leaves the pending one, and the next
//! daemon releases that address instead of leaving it bound at the server until it expires.
//!
//! A daemon killed mid-write leaves a temporary file (and a power loss at worst an empty record);
//! [`Store::sweep`], run by the daemon that owns the socket before it restores, removes both with
//! a log line.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cni_sdk::kit::{self, Durability, StateRead};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::ClientOptions;
use crate::lease::Lease;

/// The format version of a record.
const RECORD_VERSION: u32 = 1;

/// Everything needed to maintain and release a lease after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeaseRecord {
    /// Format version.
    pub(crate) version: u32,
    /// `<containerID>/<network>/<ifname>` (cut to 254 bytes): the key.
    pub(crate) client_id: String,
    /// `CNI_CONTAINERID`.
    pub(crate) container_id: String,
    /// The network name.
    pub(crate) network: String,
    /// `CNI_IFNAME`.
    pub(crate) ifname: String,
    /// The namespace path as the daemon opens it (`-hostprefix` included).
    pub(crate) netns: PathBuf,
    /// The namespace's inode when the lease was taken, so a reused path is not mistaken for
    /// the same namespace.
    pub(crate) netns_inode: Option<u64>,
    /// The interface's hardware address.
    pub(crate) mac: [u8; 6],
    /// Options sent with every request.
    pub(crate) options: ClientOptions,
    /// `priority` of the configuration.
    pub(crate) priority: Option<u32>,
    /// The lease.
    pub(crate) lease: Lease,
    /// Only offered: the DHCPREQUEST may have been sent, the ACK was not recorded yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) pending: bool,
}

impl LeaseRecord {
    /// A record of the current format.
    pub(crate) fn version() -> u32 {
        RECORD_VERSION
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created on the first save).
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, client_id: &str) -> PathBuf {
        let digest = Sha256::digest(client_id.as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.json"))
    }

    /// Writes `record` atomically (the directory is created, mode 0700).
    pub(crate) fn save(&self, record: &LeaseRecord) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        kit::write_atomic(&self.path(&record.client_id), &bytes, 0o600, Durability::PowerLoss)
    }

    /// Removes what killed or interrupted writers left: temporaries (this version's and the
    /// `.<name>.tmp-<pid>` ones of earlier versions) and records that are empty or do not parse.
    /// Only the daemon that owns the socket may call it (no other writer is running then).
    pub(crate) fn sweep(&self) -> io::Result<()> {
        for path in kit::remove_temp_files(&self.dir)? {
            tracing::info!(path = %path.display(), "removed the temporary file of an interrupted write");
        }
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let damaged = if name.starts_with('.') && name.contains(".tmp-") {
                true
            } else if name.ends_with(".json") {
                let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b);
                matches!(kit::read_tolerant(&path, parse)?, StateRead::Damaged(_))
            } else {
                false
            };
            if damaged {
                tracing::warn!(path = %path.display(), "removing what an interrupted write left");
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Removes the record of `client_id` (absent is fine).
    pub(crate) fn remove(&self, client_id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(client_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every readable record; unreadable files are reported and skipped.
    pub(crate) fn load_all(&self) -> io::Result<Vec<LeaseRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<LeaseRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) if r.version == RECORD_VERSION => out.push(r),
                Ok(r) => {
                    tracing::warn!(path = %path.display(), version = r.version, "skipping a lease record of another format")
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable lease record"),
            }
        }
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(out)
    }
}
