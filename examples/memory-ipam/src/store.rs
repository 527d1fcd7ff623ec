//! The optional on-disk copy of the leases, so a restarted (or killed) daemon hands out no
//! address twice and forgets none.
//!
//! Layout: `<dir>/<network>/<address>`, one JSON document per lease
//! (`{"containerId", "ifname", "address"}`), written with `kit::write_atomic` (a temporary file
//! renamed into place). The memory is authoritative while the daemon runs; every change reaches
//! the disk before the request is answered, so an answered ADD is on disk and an answered DEL is
//! gone from it. A daemon killed at any point leaves whole records and at most a temporary file,
//! which the next daemon removes when it opens the directory. The directory is locked (`flock`)
//! for the daemon's life: a second daemon on the same directory fails at start.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cni_sdk::kit::{self, Durability, StateRead};
use cni_sdk::tracing;
use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// One lease on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    container_id: String,
    ifname: String,
    address: IpNet,
}

/// The leases of every network: network → (container ID, ifname) → address.
pub(crate) type AllLeases = BTreeMap<String, BTreeMap<(String, String), IpNet>>;

/// The state directory, locked.
pub(crate) struct Store {
    dir: PathBuf,
    durability: Durability,
    _lock: Flock<File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).field("durability", &self.durability).finish_non_exhaustive()
    }
}

fn with_path(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Store {
    /// Opens (creating it, mode 0700) and locks `dir`, removes what killed writers left, and
    /// loads the leases. Damaged records (only a power loss without `Durability::PowerLoss`
    /// can make one) are logged and removed: they name no owner, so their address is free.
    pub(crate) fn open(dir: &Path, durability: Durability) -> io::Result<(Self, AllLeases)> {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| with_path("create", dir, e))?;
        let handle = File::open(dir).map_err(|e| with_path("open", dir, e))?;
        let lock = match Flock::lock(handle, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("the state directory {} is in use by another daemon", dir.display()),
                ));
            }
            Err((_, errno)) => return Err(with_path("lock", dir, io::Error::from(errno))),
        };
        let store = Self { dir: dir.to_owned(), durability, _lock: lock };
        let leases = store.load()?;
        Ok((store, leases))
    }

    fn load(&self) -> io::Result<AllLeases> {
        let mut all = AllLeases::new();
        for net in fs::read_dir(&self.dir).map_err(|e| with_path("list", &self.dir, e))? {
            let net = net?;
            let Some(network) = net.file_name().to_str().map(str::to_owned) else { continue };
            if !net.file_type()?.is_dir() || cni_sdk::types::ident::validate_network_name(&network).is_err() {
                tracing::warn!(path = %net.path().display(), "ignoring what is not a network's directory");
                continue;
            }
            let dir = net.path();
            for path in kit::remove_temp_files(&dir)? {
                tracing::info!(path = %path.display(), "removed the temporary file of a killed daemon");
            }
            let leases = all.entry(network.clone()).or_default();
            // In address order, so which of two records of one attachment wins is not up to the
            // directory order.
            let mut files: Vec<(IpAddr, PathBuf)> = Vec::new();
            for entry in fs::read_dir(&dir).map_err(|e| with_path("list", &dir, e))? {
                let path = entry?.path();
                match path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<IpAddr>().ok()) {
                    Some(addr) => files.push((addr, path)),
                    None => {
                        tracing::warn!(path = %path.display(), "ignoring a file that is not named after an address")
                    }
                }
            }
            files.sort();
            for (addr, path) in files {
                let record = match kit::read_tolerant(&path, |b: &[u8]| serde_json::from_slice::<Record>(b))? {
                    StateRead::Valid(r) if r.address.addr() == addr => r,
                    StateRead::Valid(r) => {
                        tracing::warn!(path = %path.display(), address = %r.address, "removing a lease record whose name is not its address");
                        remove(&path)?;
                        continue;
                    }
                    StateRead::Damaged(_) => {
                        tracing::warn!(path = %path.display(), "removing a damaged lease record; its address is free");
                        remove(&path)?;
                        continue;
                    }
                    StateRead::Missing => continue,
                };
                let key = (record.container_id, record.ifname);
                if let Some(held) = leases.get(&key) {
                    tracing::warn!(path = %path.display(), held = %held, "removing a second lease of one attachment");
                    remove(&path)?;
                    continue;
                }
                leases.insert(key, record.address);
            }
        }
        let n: usize = all.values().map(BTreeMap::len).sum();
        tracing::info!(dir = %self.dir.display(), leases = n, "leases loaded");
        Ok(all)
    }

    fn path(&self, network: &str, address: &IpNet) -> PathBuf {
        self.dir.join(network).join(address.addr().to_string())
    }

    /// Records a lease; on error nothing is recorded.
    pub(crate) fn save(&self, network: &str, container_id: &str, ifname: &str, address: IpNet) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        let path = self.path(network, &address);
        let dir = path.parent().expect("a lease path has a directory");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| with_path("create", dir, e))?;
        let record = Record { container_id: container_id.to_owned(), ifname: ifname.to_owned(), address };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        kit::write_atomic(&path, &bytes, 0o600, self.durability)
    }

    /// Forgets a lease (absent is fine).
    pub(crate) fn forget(&self, network: &str, address: &IpNet) -> io::Result<()> {
        let path = self.path(network, address);
        remove(&path)?;
        if self.durability == Durability::PowerLoss
            && let Some(dir) = path.parent()
        {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| with_path("sync", dir, e))?;
        }
        Ok(())
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path("remove", path, e)),
        _ => Ok(()),
    }
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
    fn leases_survive_a_reopen_and_debris_is_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let a: IpNet = "10.224.5.2/24".parse().unwrap();
        {
            let (store, leases) = Store::open(&dir, Durability::Process).unwrap();
            assert!(leases.is_empty());
            store.save("net1", "c1", "eth0", a).unwrap();
            store.save("net1", "c2", "eth0", "10.224.5.3/24".parse().unwrap()).unwrap();
            store.forget("net1", &"10.224.5.3/24".parse().unwrap()).unwrap();
            // A second daemon on the same directory fails at once.
            let e = Store::open(&dir, Durability::Process).unwrap_err();
            assert!(e.to_string().contains("in use by another daemon"), "{e}");
        }
        // What a killed writer and a power loss can leave.
        let net1 = dir.join("net1");
        fs::write(net1.join(".cni-tmp-999-0-10.224.5.9"), b"{\"containerId\":\"c9\"").unwrap();
        fs::write(net1.join("10.224.5.7"), b"").unwrap();
        fs::write(net1.join("10.224.5.8"), br#"{"containerId":"c8","ifname":"eth0","address":"10.224.5.99/24"}"#)
            .unwrap();
        fs::write(net1.join("10.224.5.6"), br#"{"containerId":"c1","ifname":"eth0","address":"10.224.5.6/24"}"#)
            .unwrap();
        let (_store, leases) = Store::open(&dir, Durability::PowerLoss).unwrap();
        let net = &leases["net1"];
        assert_eq!(net.len(), 1, "{net:?}");
        assert_eq!(net[&("c1".to_owned(), "eth0".to_owned())], a, "the lower address of a doubled lease wins");
        assert_eq!(names(&net1), vec!["10.224.5.2"]);
    }
}
