//! The original values of a tuned link, saved before ADD changes them and restored by DEL:
//! `<dataDir>/<containerID>_<ifname>.json` in Go's format, so Go's tuning and this one each
//! restore the other's files.
//!
//! Go writes the file in place (a crash can leave it empty or cut short) and overwrites it on a
//! second ADD with values that are already tuned. Here the file is replaced atomically under a
//! lock of the directory, a damaged file is logged and ignored, a second ADD keeps the values a
//! first one saved, and the file names its network (`"network"`, a key Go ignores) so that GC
//! releases only the files of its own network.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use cni_sdk::kit::{self, Durability, StateRead};
use cni_sdk::types::Attachment;
use cni_sdk::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::config::go_io_text;

/// What a backup file holds (Go `configToRestore`): the values of the attributes ADD changes,
/// as they were before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The MAC address (`mac`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Promiscuous mode (`promisc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    /// The MTU (`mtu`; Go omits 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// All-multicast mode (`allmulti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    /// The transmit queue length (`txQLen`).
    #[serde(rename = "txQLen", default, skip_serializing_if = "Option::is_none")]
    pub tx_qlen: Option<i64>,
    /// The network whose ADD wrote the file (ours only; Go's files have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl Saved {
    /// The file's bytes: Go's `json.MarshalIndent(v, "", " ")` layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        self.serialize(&mut ser).expect("a backup serialises");
        out
    }

    /// Parses a file (written by Go's tuning or by this one).
    ///
    /// # Errors
    /// When it is not a JSON object with fields of the right types.
    pub fn from_bytes(bytes: &[u8]) -> serde_json::Result<Self> {
        let saved: Self = serde_json::from_slice(bytes)?;
        // Go omits empty and zero values; treat them as absent if a writer did not.
        Ok(Self { mac: saved.mac.filter(|m| !m.is_empty()), mtu: saved.mtu.filter(|m| *m != 0), ..saved })
    }
}

/// The backup file of an attachment.
pub fn path(data_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    data_dir.join(format!("{container_id}_{ifname}.json"))
}

/// Reads the backup at `path`; a damaged one is logged and reported as such.
pub(crate) fn read(path: &Path) -> io::Result<StateRead<Saved>> {
    kit::read_tolerant(path, Saved::from_bytes)
}

/// What ADD found before it wrote a backup, to put back if ADD fails.
#[derive(Debug)]
pub(crate) struct Previous {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Option<Vec<u8>>,
}

impl Previous {
    /// Puts the file back as it was before ADD (or removes it).
    pub(crate) fn put_back(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match &self.bytes {
            Some(bytes) => {
                let _lock = kit::DirLock::exclusive(dir)?;
                kit::write_atomic(&self.path, bytes, 0o600, Durability::Process)?;
            }
            None => match fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }
}

/// Writes `saved` for an attachment, creating `data_dir` (mode 0700) when needed; the previous
/// file, if any, is returned so that a failed ADD can put it back.
///
/// # Errors
/// Go's `failed to create backup directory: ...` and `failed to save file <ifname>.json: ...`.
pub(crate) fn write(data_dir: &Path, file: &Path, ifname: &str, saved: &Saved) -> Result<Previous> {
    if !data_dir.is_dir() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(|e| {
            Error::internal(format!(
                "failed to create backup directory: mkdir {}: {}",
                data_dir.display(),
                go_io_text(&e)
            ))
        })?;
    }
    let save_error = |e: io::Error| Error::internal(format!("failed to save file {ifname}.json: {e}"));
    let _lock = kit::DirLock::exclusive(data_dir).map_err(save_error)?;
    let bytes = match fs::read(file) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(save_error(e)),
    };
    kit::write_atomic(file, &saved.to_bytes(), 0o600, Durability::Process).map_err(save_error)?;
    Ok(Previous { path: file.to_owned(), bytes })
}

/// Removes a backup; a file that is already gone is fine. Failures are logged (DEL must not fail
/// on them).
pub(crate) fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove the tuning backup"),
    }
}

/// GC: removes the backups of `network` in `data_dir` whose attachment is not in `valid`, and
/// the temporaries of interrupted writes. Files of other networks, Go's files (which name no
/// network) and damaged files (whose network cannot be known) are left alone. Returns the
/// removed backups.
///
/// # Errors
/// When the directory cannot be locked, listed or cleaned.
pub fn collect(data_dir: &Path, network: &str, valid: &[Attachment]) -> Result<Vec<PathBuf>> {
    if !data_dir.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = kit::DirLock::exclusive(data_dir)?;
    kit::remove_temp_files(data_dir)?;
    let keep: HashSet<String> = valid.iter().map(|a| format!("{}_{}.json", a.container_id, a.ifname)).collect();
    let mut removed = Vec::new();
    let entries = fs::read_dir(data_dir)
        .map_err(|e| Error::from(e).wrap(format!("cannot list the tuning backups in {}", data_dir.display())))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if kit::is_temp_file_name(entry.file_name().as_os_str())
            || !name.ends_with(".json")
            || keep.contains(name)
            || !entry.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        let path = entry.path();
        match read(&path)? {
            StateRead::Valid(Saved { network: Some(n), .. }) if n == network => {
                fs::remove_file(&path)
                    .or_else(|e| if e.kind() == io::ErrorKind::NotFound { Ok(()) } else { Err(e) })?;
                tracing::info!(path = %path.display(), "GC: released the saved values of a gone attachment");
                removed.push(path);
            }
            StateRead::Valid(_) | StateRead::Missing | StateRead::Damaged(_) => {}
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layout_and_go_files() {
        let s = Saved {
            mac: Some("86:f7:3b:71:7b:05".into()),
            promisc: Some(false),
            mtu: Some(1500),
            allmulti: Some(false),
            tx_qlen: None,
            network: None,
        };
        // Byte for byte what Go's tuning wrote in a root run (see the README).
        let go = "{\n \"mac\": \"86:f7:3b:71:7b:05\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"allmulti\": false\n}";
        assert_eq!(String::from_utf8(s.to_bytes()).unwrap(), go);
        assert_eq!(Saved::from_bytes(go.as_bytes()).unwrap(), s);
        let ours = Saved { tx_qlen: Some(1000), network: Some("n1".into()), ..Saved::default() };
        assert_eq!(String::from_utf8(ours.to_bytes()).unwrap(), "{\n \"txQLen\": 1000,\n \"network\": \"n1\"\n}");
        // Zero and empty values mean "not saved", as in Go's decoder.
        let z = Saved::from_bytes(br#"{"mac": "", "mtu": 0, "promisc": true}"#).unwrap();
        assert_eq!(z, Saved { promisc: Some(true), ..Saved::default() });
        assert!(Saved::from_bytes(br#"{"mtu": "x"}"#).is_err());
    }

    #[test]
    fn write_keeps_the_previous_file_for_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        let file = path(&data, "c1", "eth0");
        let first = Saved { mtu: Some(1500), ..Saved::default() };
        let prev = write(&data, &file, "eth0", &first).unwrap();
        assert!(prev.bytes.is_none());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let second = Saved { mtu: Some(9000), ..Saved::default() };
        let prev = write(&data, &file, "eth0", &second).unwrap();
        assert_eq!(prev.bytes.as_deref(), Some(&first.to_bytes()[..]));
        prev.put_back().unwrap();
        assert_eq!(read(&file).unwrap(), StateRead::Valid(first));
        Previous { path: file.clone(), bytes: None }.put_back().unwrap();
        assert!(!file.exists());
        Previous { path: file.clone(), bytes: None }.put_back().unwrap();
    }

    #[test]
    fn gc_releases_only_its_networks_gone_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ours = |n: &str| Saved { mtu: Some(1500), network: Some(n.into()), ..Saved::default() };
        for (cid, ifname, saved) in [
            ("live", "eth0", ours("net1")),
            ("gone", "eth0", ours("net1")),
            ("a_b", "net1", ours("net1")),
            ("other", "eth0", ours("net2")),
            ("go", "eth0", Saved { mtu: Some(1500), ..Saved::default() }),
        ] {
            write(d, &path(d, cid, ifname), ifname, &saved).unwrap();
        }
        fs::write(d.join("broken_eth0.json"), b"{\"mtu\": 15").unwrap();
        fs::write(d.join(".cni-tmp-1-0-dead_eth0.json"), b"{").unwrap();
        fs::write(d.join("notes.txt"), b"x").unwrap();
        let valid = [Attachment::new("live", "eth0"), Attachment::new("a", "b_net1")];
        let removed = collect(d, "net1", &valid).unwrap();
        assert_eq!(removed, [path(d, "gone", "eth0")]);
        let mut left: Vec<String> =
            fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        // `a_b_net1.json` is also the file of attachment (`a`, `b_net1`), which is valid: kept.
        assert_eq!(
            left,
            ["a_b_net1.json", "broken_eth0.json", "go_eth0.json", "live_eth0.json", "notes.txt", "other_eth0.json"]
        );
        // An empty valid list releases every backup of the network.
        let removed = collect(d, "net1", &[]).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(collect(&d.join("missing"), "net1", &[]).unwrap().is_empty());
    }
}
