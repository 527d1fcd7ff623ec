//! Device lookups in sysfs, from the right namespace's point of view (see `net::lookup`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use super::io_err;
use crate::net::NetResult;
use crate::net::lookup::{BusDevice, DeviceBus};
use crate::netns::NetNs;

/// Runs the sysfs reader `f` so that it sees the network interfaces of `ns`.
///
/// For the caller's own namespace the process's `/sys` already shows them and `f` runs on a
/// blocking-pool thread. For another namespace, `f` runs on a short-lived thread that enters
/// `ns`, unshares its mount namespace (no propagation back) and mounts a fresh sysfs over
/// `/sys`, which then reflects `ns`; the mount namespace disappears with the thread.
pub(super) async fn read<T, F>(ns: &NetNs, f: F) -> NetResult<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let own = ns.is_same(&NetNs::current()?)?;
    let result = if own {
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            crate::net::NetError::new(crate::net::NetErrorKind::Other, format!("sysfs reader failed: {e}"))
        })?
    } else {
        // Unsharing the mount namespace must not touch the namespace's shared worker.
        ns.run_blocking_on_fresh_thread(move || {
            private_sysfs()?;
            f()
        })
        .await?
    };
    result.map_err(|e| io_err(e, "read sysfs"))
}

/// Gives the calling thread its own mount namespace with a sysfs of its network namespace.
fn private_sysfs() -> io::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(io::Error::from)?;
    nix::mount::mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>).map_err(io::Error::from)
}

/// The sorted entry names of `dir`, `None` if it does not exist.
fn list_dir(dir: &Path) -> io::Result<Option<Vec<String>>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(Some(names))
}

/// The names under `<path>/net/`.
pub(super) fn interfaces_at(path: &Path) -> io::Result<Option<Vec<String>>> {
    list_dir(&path.join("net"))
}

/// Reads `/sys/bus/<bus>/devices/<id>`.
pub(super) fn bus_device(bus: DeviceBus, id: &str) -> io::Result<Option<BusDevice>> {
    let link: PathBuf = ["/sys/bus", bus.as_str(), "devices", id].iter().collect();
    let path = match fs::canonicalize(&link) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let driver =
        fs::read_link(path.join("driver")).ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let mut interfaces = interfaces_at(&path)?;
    if interfaces.is_none() && bus == DeviceBus::Pci {
        // virtio-net devices keep theirs one level down: <dev>/virtio<N>/net/.
        for sub in list_dir(&path)?.unwrap_or_default().iter().filter(|n| n.starts_with("virtio")) {
            if let Some(names) = interfaces_at(&path.join(sub))? {
                interfaces = Some(names);
                break;
            }
        }
    }
    Ok(Some(BusDevice::new(bus, id, path, driver, interfaces)))
}
