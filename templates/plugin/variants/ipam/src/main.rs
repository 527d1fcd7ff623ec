//! `{{plugin_type}}`: a CNI IPAM plugin that hands out addresses of one subnet.
//!
//! Each address in use is a file named after it in `<dataDir>/<network name>/`, holding the
//! container ID and interface name it belongs to. Files are created with `O_EXCL`, so
//! concurrent ADDs never get the same address. ADD returns the existing lease when the
//! attachment has one; DEL removes the attachment's leases and succeeds when there are none;
//! CHECK verifies the lease exists; GC removes the leases of attachments the runtime no longer
//! knows.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cni_sdk::types::Route;
use cni_sdk::{CniResult, Context, Error, ErrorCode, IpConfig, Plugin, Result, ResultExt as _, cni_plugin};
use ipnet::IpNet;
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// How many candidate addresses ADD tries before giving up (bounds the scan of huge IPv6
/// subnets).
const MAX_CANDIDATES: usize = 65_536;

/// The keys of the configuration's `ipam` section (next to `type`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpamConfig {
    /// The subnet to allocate from, e.g. `10.22.0.0/24`.
    subnet: IpNet,
    /// The gateway returned with every address, never handed out (default: the subnet's
    /// first address).
    #[serde(default)]
    gateway: Option<IpAddr>,
    /// Routes returned to the interface plugin, as in a CNI result.
    #[serde(default)]
    routes: Vec<Route>,
    /// Where leases are kept.
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/cni/{{plugin_type}}")
}

impl IpamConfig {
    /// Parses and checks the `ipam` section (CNI error code 7 on any problem).
    fn from_context(cx: &Context<()>) -> Result<Self> {
        let section = cx.config().ipam.as_ref().map(|i| i.extra.clone()).unwrap_or_default();
        let conf: Self = serde_json::from_value(section.into())
            .with_code(ErrorCode::InvalidNetworkConfig, "invalid \"ipam\" section")?;
        if conf.subnet.hosts().nth(1).is_none() {
            return Err(Error::invalid_config(format!("subnet {} has room for no address", conf.subnet)));
        }
        if !conf.subnet.contains(&conf.gateway()) {
            return Err(Error::invalid_config(format!("gateway {} is outside {}", conf.gateway(), conf.subnet)));
        }
        if cx.config().name.is_empty() || cx.config().name.contains(['/', '\0']) || cx.config().name.starts_with('.') {
            return Err(Error::invalid_config(format!("network name {:?} cannot name a directory", cx.config().name)));
        }
        Ok(conf)
    }

    fn gateway(&self) -> IpAddr {
        self.gateway.unwrap_or_else(|| self.subnet.hosts().next().unwrap_or(self.subnet.network()))
    }

    /// The lease directory of the network.
    fn dir(&self, cx: &Context<()>) -> PathBuf {
        self.data_dir.join(&cx.config().name)
    }

    /// The result for `addr`.
    fn result(&self, addr: IpAddr) -> CniResult {
        let address = IpNet::new(addr, self.subnet.prefix_len()).expect("the subnet's prefix length is valid");
        let ip = IpConfig { gateway: Some(self.gateway()), ..IpConfig::new(address) };
        CniResult { ips: vec![ip], routes: self.routes.clone(), ..CniResult::default() }
    }
}

/// What a lease file holds.
fn owner(cx: &Context<()>) -> String {
    format!("{}\n{}\n", cx.container_id(), cx.ifname())
}

/// The addresses leased to `owner` in `dir` (none when the directory does not exist).
fn leases_of(dir: &Path, owner: &str) -> Result<Vec<IpAddr>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).context(format!("reading {}", dir.display()))),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_code(ErrorCode::IoFailure, format!("reading {}", dir.display()))?;
        let Some(addr) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) else { continue };
        match fs::read_to_string(entry.path()) {
            Ok(content) if content == owner => found.push(addr),
            Ok(_) => {}
            // Released meanwhile by a concurrent DEL or GC.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from(e).context(format!("reading {}", entry.path().display()))),
        }
    }
    Ok(found)
}

/// Removes a lease file; one that is already gone is fine.
fn release(dir: &Path, addr: IpAddr) -> Result<()> {
    match fs::remove_file(dir.join(addr.to_string())) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(Error::from(e).context(format!("releasing {addr} in {}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// The IPAM plugin. Stateless: the leases are on disk.
#[derive(Debug, Default)]
struct FileIpam;

#[cni_plugin]
impl Plugin for FileIpam {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let conf = IpamConfig::from_context(cx)?;
        let dir = conf.dir(cx);
        fs::create_dir_all(&dir).with_code(ErrorCode::IoFailure, format!("creating {}", dir.display()))?;
        let owner = owner(cx);
        // A repeated ADD of the same attachment gets the same address.
        if let Some(addr) = leases_of(&dir, &owner)?.into_iter().next() {
            return Ok(conf.result(addr));
        }
        let gateway = conf.gateway();
        for addr in conf.subnet.hosts().filter(|a| *a != gateway).take(MAX_CANDIDATES) {
            let path = dir.join(addr.to_string());
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(owner.as_bytes())
                        .and_then(|()| file.sync_all())
                        .with_code(ErrorCode::IoFailure, format!("writing {}", path.display()))?;
                    return Ok(conf.result(addr));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::from(e).context(format!("creating {}", path.display()))),
            }
        }
        Err(Error::try_again_later(format!("no free address in {}", conf.subnet)))
    }

    async fn del(&self, cx: &Context<()>) -> Result<()> {
        let conf = IpamConfig::from_context(cx)?;
        let dir = conf.dir(cx);
        for addr in leases_of(&dir, &owner(cx))? {
            release(&dir, addr)?;
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<()>) -> Result<()> {
        let conf = IpamConfig::from_context(cx)?;
        if leases_of(&conf.dir(cx), &owner(cx))?.is_empty() {
            return Err(Error::internal(format!("no lease for {}/{}", cx.container_id(), cx.ifname())));
        }
        Ok(())
    }

    async fn gc(&self, cx: &Context<()>) -> Result<()> {
        let conf = IpamConfig::from_context(cx)?;
        let dir = conf.dir(cx);
        let valid: Vec<String> =
            cx.gc_attachments().iter().map(|a| format!("{}\n{}\n", a.container_id, a.ifname)).collect();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::from(e).context(format!("reading {}", dir.display()))),
        };
        for entry in entries {
            let entry = entry.with_code(ErrorCode::IoFailure, format!("reading {}", dir.display()))?;
            let Some(addr) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) else { continue };
            match fs::read_to_string(entry.path()) {
                Ok(content) if !valid.contains(&content) => release(&dir, addr)?,
                _ => {}
            }
        }
        Ok(())
    }
}
