//! Loading network configurations from a directory with libcni's rules.

use std::path::{Path, PathBuf};

use cni_types::NetworkConfigList;
use serde_json::{Map, Value};

use super::{Error, Result};
use crate::ErrorKind;

/// A network configuration list together with the bytes it was read from (the bytes go into
/// the result cache, as libcni does).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkList {
    /// The parsed list (plugins from the per-network directory appended).
    pub list: NetworkConfigList,
    /// The bytes of the file (a legacy `.conf` file: the bytes of the up-converted list).
    pub bytes: Vec<u8>,
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
}

impl NetworkList {
    /// Parses a `.conflist` document.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let list = NetworkConfigList::from_slice(bytes).map_err(|e| Error::invalid_config(e.to_string()))?;
        Ok(Self { list, bytes: bytes.to_vec(), source: None })
    }

    /// Wraps a legacy single-plugin `.conf` document as a list of one.
    pub fn from_single_conf(bytes: &[u8]) -> Result<Self> {
        let list = NetworkConfigList::from_single_conf(bytes).map_err(|e| Error::invalid_config(e.to_string()))?;
        let bytes = serde_json::to_vec(&list).expect("lists serialise");
        Ok(Self { list, bytes, source: None })
    }

    /// The network name.
    pub fn name(&self) -> &str {
        &self.list.name
    }

    /// The version used for every request (see [`NetworkConfigList::selected_version`]).
    pub fn version(&self) -> String {
        self.list.selected_version().unwrap_or_else(|_| self.list.cni_version.clone())
    }
}

fn sorted_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::new(ErrorKind::Io, format!("reading {}", dir.display())).with_source(e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|x| x.to_str()).is_some_and(|x| exts.contains(&x)))
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("error reading {}", path.display())).with_source(e))
}

/// Lists every network in `dir`: `.conflist` files first (sorted), then legacy `.conf`/`.json`
/// files whose name is not taken yet. A file that does not parse is an error naming it.
pub fn load_all(dir: &Path) -> Result<Vec<NetworkList>> {
    let mut out: Vec<NetworkList> = Vec::new();
    for path in sorted_files(dir, &["conflist"])? {
        let net = load_conflist_file(dir, &path)?;
        if !out.iter().any(|n| n.name() == net.name()) {
            out.push(net);
        }
    }
    for path in sorted_files(dir, &["conf", "json"])? {
        let mut net = NetworkList::from_single_conf(&read(&path)?)
            .map_err(|e| Error::invalid_config(format!("{}: {}", path.display(), e.msg())))?;
        net.source = Some(path);
        if !out.iter().any(|n| n.name() == net.name()) {
            out.push(net);
        }
    }
    Ok(out)
}

fn load_conflist_file(dir: &Path, path: &Path) -> Result<NetworkList> {
    let bytes = read(path)?;
    let mut net = NetworkList::from_bytes(&bytes)
        .map_err(|e| Error::invalid_config(format!("{}: {}", path.display(), e.msg())))?;
    net.source = Some(path.to_owned());
    if !net.list.load_only_inlined_plugins {
        let sub = dir.join(&net.list.name);
        for conf in sorted_files(&sub, &["conf"])? {
            let plugin: Map<String, Value> = serde_json::from_slice(&read(&conf)?)
                .map_err(|e| Error::invalid_config(format!("{}: {e}", conf.display())))?;
            net.list.plugins.push(plugin);
        }
    }
    if net.list.plugins.is_empty() {
        return Err(Error::invalid_config(format!("{}: no plugin configs found", path.display())));
    }
    Ok(net)
}

/// Loads the network `name` from `dir` like libcni's `LoadConfList`: the first `.conflist` (in
/// sorted order) with that name, its per-network plugin directory appended unless
/// `loadOnlyInlinedPlugins`; else the first legacy `.conf`/`.json` with that name, up-converted.
/// Any `.conflist` that does not parse aborts the lookup (as in libcni).
pub fn load_network(dir: &Path, name: &str) -> Result<NetworkList> {
    let conflists = sorted_files(dir, &["conflist"])?;
    for path in &conflists {
        let net = load_conflist_file(dir, path)?;
        if net.name() == name {
            return Ok(net);
        }
    }
    let confs = sorted_files(dir, &["conf", "json"])?;
    for path in &confs {
        let Ok(mut net) = NetworkList::from_single_conf(&read(path)?) else { continue };
        if net.name() == name {
            net.source = Some(path.clone());
            return Ok(net);
        }
    }
    if conflists.is_empty() && confs.is_empty() {
        return Err(Error::invalid_config(format!("no net configurations found in {}", dir.display())));
    }
    Err(Error::invalid_config(format!("no net configuration with name {name:?} in {}", dir.display())))
}

/// Loads the networks of `dir` the way containerd's go-cni does (`WithAllConf`, or
/// `WithDefaultConf` with `max = Some(1)`): every `.conf`, `.conflist` and `.json` file in one
/// sorted list, each file one network (a name may repeat), at most `max` of them. A legacy file
/// without `type` or a list without plugins is an error naming the file; so is an empty
/// directory.
pub fn load_conf_dir(dir: &Path, max: Option<usize>) -> Result<Vec<NetworkList>> {
    let files = sorted_files(dir, &["conf", "conflist", "json"])?;
    if files.is_empty() {
        return Err(Error::invalid_config(format!("no network config found in {}", dir.display())));
    }
    let mut out = Vec::new();
    for path in files {
        if max.is_some_and(|m| out.len() >= m) {
            break;
        }
        let bytes = read(&path)?;
        let mut net = if path.extension().is_some_and(|x| x == "conflist") {
            NetworkList::from_bytes(&bytes).map_err(|e| {
                Error::invalid_config(format!("failed to load CNI config list file {}: {}", path.display(), e.msg()))
            })?
        } else {
            let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid_config(format!("failed to load CNI config file {}: {e}", path.display()))
            })?;
            if doc.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(Error::invalid_config(format!("network type not found in {}", path.display())));
            }
            NetworkList::from_single_conf(&bytes).map_err(|e| {
                Error::invalid_config(format!("failed to load CNI config file {}: {}", path.display(), e.msg()))
            })?
        };
        if net.list.plugins.is_empty() {
            return Err(Error::invalid_config(format!(
                "CNI config list in config file {} has no networks",
                path.display()
            )));
        }
        net.source = Some(path);
        out.push(net);
    }
    Ok(out)
}
