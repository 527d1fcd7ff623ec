//! Attachment records (see [`AttachmentRecords`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use cni_types::Attachment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One attachment's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<T> {
    /// The network name.
    pub network: String,
    /// The container ID.
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
    /// What the plugin stored.
    pub data: T,
}

impl<T> Record<T> {
    /// True when this record belongs to `attachment`.
    pub fn is(&self, attachment: &Attachment) -> bool {
        self.container_id == attachment.container_id && self.ifname == attachment.ifname
    }
}

#[derive(Serialize, Deserialize)]
struct OnDisk<T> {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
    data: T,
}

/// A directory of attachment records: what a plugin's ADD did, kept on disk per network and attachment, so that
/// a DEL without `prevResult` and GC (spec 1.1) can undo it.
///
/// Go's chained plugins keep no state, so several of their host-side objects cannot be traced
/// back to an attachment: the firewall plugin's `-d <ip>/32 ... -j ACCEPT` rules carry no
/// comment at all, and portmap's nftables rules carry only the container ID (not the network).
/// A plugin that must clean up exactly the objects of one attachment — and never another
/// network's — writes a small record at ADD and removes it at DEL; GC compares the records of
/// its network with the runtime's list of valid attachments.
///
/// Layout: `<dir>/<network>/<container ID>/<ifname>`, one JSON document per attachment,
/// written atomically (a temporary file renamed into place).
///
/// ```
/// use cni_sdk::kit::AttachmentRecords;
/// let dir = tempfile::tempdir().unwrap();
/// let records = AttachmentRecords::new(dir.path());
/// records.save("net1", "ctr1", "eth0", &vec!["10.1.0.5"]).unwrap();
/// records.save("net1", "ctr2", "eth0", &vec!["10.1.0.6"]).unwrap();
/// records.save("net2", "ctr1", "eth1", &vec!["10.2.0.5"]).unwrap();
/// let valid = [cni_sdk::Attachment::new("ctr1", "eth0")];
/// let stale = records.stale::<Vec<String>>("net1", &valid).unwrap();
/// assert_eq!(stale.len(), 1);
/// assert_eq!((stale[0].container_id.as_str(), stale[0].data[0].as_str()), ("ctr2", "10.1.0.6"));
/// records.remove("net1", "ctr2", "eth0").unwrap();
/// assert_eq!(records.list::<Vec<String>>("net1").unwrap().len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct AttachmentRecords {
    dir: PathBuf,
}

/// Checks that `s` can be one path component.
fn component<'a>(what: &str, s: &'a str) -> Result<&'a str> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err(Error::from_kind(
            crate::ErrorKind::InvalidArgument,
            format!("cannot keep a record for {what} {s:?}: not usable as a file name"),
        ));
    }
    Ok(s)
}

fn io_error(op: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::internal(format!("failed to {op} {}: {e}", path.display()))
}

impl AttachmentRecords {
    /// Records kept under `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, network: &str, container_id: &str, ifname: &str) -> Result<PathBuf> {
        Ok(self
            .dir
            .join(component("network", network)?)
            .join(component("container ID", container_id)?)
            .join(component("interface", ifname)?))
    }

    /// Stores `data` for the attachment, replacing an earlier record.
    pub fn save<T: Serialize>(&self, network: &str, container_id: &str, ifname: &str, data: &T) -> Result<()> {
        let path = self.path(network, container_id, ifname)?;
        let parent = path.parent().expect("a record path has a parent");
        std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, &e))?;
        let doc = OnDisk { container_id: container_id.to_owned(), ifname: ifname.to_owned(), data };
        let bytes = serde_json::to_vec(&doc).map_err(|e| Error::internal(format!("failed to encode a record: {e}")))?;
        let tmp = parent.join(format!(".{ifname}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error("write", &path, &e)
        })
    }

    /// The attachment's record, if there is one.
    pub fn load<T: DeserializeOwned>(&self, network: &str, container_id: &str, ifname: &str) -> Result<Option<T>> {
        let path = self.path(network, container_id, ifname)?;
        match std::fs::read(&path) {
            Ok(bytes) => Self::decode::<T>(&path, &bytes).map(|d| Some(d.data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, &e)),
        }
    }

    fn decode<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<OnDisk<T>> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::internal(format!("failed to decode the record {}: {e}", path.display())))
    }

    /// Removes the attachment's record and the temporary files of its interrupted saves (a
    /// plugin killed between writing and renaming leaves one, which would otherwise outlive the
    /// attachment); a missing record is not an error.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> Result<()> {
        let path = self.path(network, container_id, ifname)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path, &e)),
        }
        if let Some(parent) = path.parent() {
            let prefix = format!(".{ifname}.tmp-");
            for tmp in read_dir(parent).unwrap_or_default() {
                let ours = tmp
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(&prefix))
                    .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
                if ours {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            // The container's directory goes with its last record (fails harmlessly otherwise).
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }

    /// Every record of `network` (none when it has no directory). Files that are not records
    /// (temporary files) are skipped; a record that does not decode is an error.
    pub fn list<T: DeserializeOwned>(&self, network: &str) -> Result<Vec<Record<T>>> {
        let net_dir = self.dir.join(component("network", network)?);
        let mut out = Vec::new();
        for ctr in read_dir(&net_dir)? {
            for file in read_dir(&ctr)? {
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if name.starts_with('.') || !file.is_file() {
                    continue;
                }
                let bytes = match std::fs::read(&file) {
                    Ok(b) => b,
                    // Removed by a concurrent DEL.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error("read", &file, &e)),
                };
                let d = Self::decode::<T>(&file, &bytes)?;
                out.push(Record {
                    network: network.to_owned(),
                    container_id: d.container_id,
                    ifname: d.ifname,
                    data: d.data,
                });
            }
        }
        out.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
        Ok(out)
    }

    /// The networks that have a directory of records.
    pub fn networks(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = read_dir(&self.dir)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every record of every network.
    pub fn list_all<T: DeserializeOwned>(&self) -> Result<Vec<Record<T>>> {
        let mut out = Vec::new();
        for net in self.networks()? {
            out.extend(self.list(&net)?);
        }
        Ok(out)
    }

    /// The records of `network` whose attachment is not in `valid` (GC's garbage; an empty
    /// `valid` makes every record of the network stale).
    pub fn stale<T: DeserializeOwned>(&self, network: &str, valid: &[Attachment]) -> Result<Vec<Record<T>>> {
        Ok(self.list::<T>(network)?.into_iter().filter(|r| !valid.iter().any(|a| r.is(a))).collect())
    }
}

/// The entries of `dir`, sorted; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("read the directory", dir, &e)),
    };
    let mut out = Vec::new();
    for e in entries {
        out.push(e.map_err(|e| io_error("read the directory", dir, &e))?.path());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_replace_remove() {
        let dir = tempfile::tempdir().unwrap();
        let r = AttachmentRecords::new(dir.path().join("sub"));
        assert_eq!(r.load::<u32>("n", "c", "eth0").unwrap(), None);
        assert!(r.list::<u32>("n").unwrap().is_empty());
        assert!(r.networks().unwrap().is_empty());
        r.save("n", "c", "eth0", &1u32).unwrap();
        r.save("n", "c", "eth0", &2u32).unwrap();
        r.save("n", "c", "net1", &3u32).unwrap();
        assert_eq!(r.load::<u32>("n", "c", "eth0").unwrap(), Some(2));
        let all = r.list::<u32>("n").unwrap();
        assert_eq!(all.iter().map(|x| (x.ifname.as_str(), x.data)).collect::<Vec<_>>(), [("eth0", 2), ("net1", 3)]);
        r.remove("n", "c", "eth0").unwrap();
        r.remove("n", "c", "eth0").unwrap();
        assert!(dir.path().join("sub/n/c").is_dir(), "kept while it holds net1");
        r.remove("n", "c", "net1").unwrap();
        assert!(!dir.path().join("sub/n/c").exists());
        assert_eq!(r.networks().unwrap(), ["n"]);
    }

    #[test]
    fn remove_takes_the_temporaries_of_interrupted_saves_of_that_attachment_only() {
        let dir = tempfile::tempdir().unwrap();
        let r = AttachmentRecords::new(dir.path());
        let c = dir.path().join("n/c");
        // A save killed before its rename: only the temporary exists.
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join(".eth0.tmp-4242"), b"{}").unwrap();
        r.remove("n", "c", "eth0").unwrap();
        assert!(!c.exists(), "the temporary and then the empty directory are gone");

        // Another attachment's record and temporaries stay.
        r.save("n", "c", "eth0", &1u8).unwrap();
        r.save("n", "c", "eth0x", &2u8).unwrap();
        for t in [".eth0.tmp-1", ".eth0.tmp-2", ".eth0x.tmp-3", ".eth0.tmp-4.tmp-5"] {
            std::fs::write(c.join(t), b"partial").unwrap();
        }
        r.remove("n", "c", "eth0").unwrap();
        let mut left: Vec<_> = std::fs::read_dir(&c).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, [".eth0.tmp-4.tmp-5", ".eth0x.tmp-3", "eth0x"]);
        assert_eq!(r.load::<u8>("n", "c", "eth0x").unwrap(), Some(2));
    }

    #[test]
    fn bad_names_and_bad_records_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = AttachmentRecords::new(dir.path());
        for (n, c, i) in [("", "c", "i"), ("n", "..", "i"), ("n", "c", "a/b"), (".", "c", "i")] {
            let e = r.save(n, c, i, &0u8).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{n:?} {c:?} {i:?}");
        }
        std::fs::create_dir_all(dir.path().join("n/c")).unwrap();
        std::fs::write(dir.path().join("n/c/eth0"), b"not json").unwrap();
        std::fs::write(dir.path().join("n/c/.eth1.tmp-1"), b"partial").unwrap();
        let e = r.list::<u8>("n").unwrap_err();
        assert!(e.message().contains("failed to decode the record"), "{e}");
        assert!(e.message().contains("n/c/eth0"), "{e}");
    }

    #[test]
    fn stale_is_per_network_and_attachment() {
        let dir = tempfile::tempdir().unwrap();
        let r = AttachmentRecords::new(dir.path());
        r.save("a", "c1", "eth0", &()).unwrap();
        r.save("a", "c1", "eth1", &()).unwrap();
        r.save("a", "c2", "eth0", &()).unwrap();
        r.save("b", "c2", "eth0", &()).unwrap();
        let keep = [Attachment::new("c1", "eth0"), Attachment::new("c2", "eth0")];
        let stale: Vec<_> =
            r.stale::<()>("a", &keep).unwrap().into_iter().map(|x| (x.container_id, x.ifname)).collect();
        assert_eq!(stale, [("c1".to_owned(), "eth1".to_owned())]);
        // An empty valid list: everything of the network, nothing of another.
        assert_eq!(r.stale::<()>("a", &[]).unwrap().len(), 3);
        assert_eq!(r.stale::<()>("b", &keep).unwrap().len(), 0);
        assert_eq!(r.list_all::<()>().unwrap().len(), 4);
    }
}
