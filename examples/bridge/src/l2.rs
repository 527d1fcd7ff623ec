//! Bridge-port settings the SDK's netlink layer does not model (VLAN filtering, port VLANs,
//! port isolation), applied with iproute2's `ip` and `bridge` as child processes in the
//! plugin's own (host) namespace.

use std::process::Command;
#[cfg(test)]
use std::sync::Mutex;

/// The bridge-port operations beyond [`cni_sdk::net::Net`].
pub(crate) trait L2Tools: Send + Sync {
    /// Turns on VLAN filtering of the bridge.
    fn set_vlan_filtering(&self, bridge: &str) -> Result<(), String>;
    /// Adds `vid` to the port (`pvid`/`untagged` for an access port).
    fn vlan_add(&self, dev: &str, vid: u16, pvid: bool, untagged: bool) -> Result<(), String>;
    /// Removes `vid` from the port.
    fn vlan_del(&self, dev: &str, vid: u16) -> Result<(), String>;
    /// Turns on port isolation.
    fn set_isolated(&self, dev: &str) -> Result<(), String>;
}

/// The real implementation: `ip link set ... type bridge vlan_filtering 1`, `bridge vlan ...`,
/// `bridge link set ... isolated on`.
#[derive(Debug, Default)]
pub(crate) struct Iproute2;

fn run(bin: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(bin).args(args).output().map_err(|e| format!("failed to run {bin}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{bin} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl L2Tools for Iproute2 {
    fn set_vlan_filtering(&self, bridge: &str) -> Result<(), String> {
        run("ip", &["link", "set", "dev", bridge, "type", "bridge", "vlan_filtering", "1"])
    }

    fn vlan_add(&self, dev: &str, vid: u16, pvid: bool, untagged: bool) -> Result<(), String> {
        let vid = vid.to_string();
        let mut args = vec!["vlan", "add", "dev", dev, "vid", &vid];
        if pvid {
            args.push("pvid");
        }
        if untagged {
            args.push("untagged");
        }
        args.push("master");
        run("bridge", &args)
    }

    fn vlan_del(&self, dev: &str, vid: u16) -> Result<(), String> {
        run("bridge", &["vlan", "del", "dev", dev, "vid", &vid.to_string(), "master"])
    }

    fn set_isolated(&self, dev: &str) -> Result<(), String> {
        run("bridge", &["link", "set", "dev", dev, "isolated", "on"])
    }
}

/// Records the operations (tests).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct RecordingL2 {
    log: Mutex<Vec<String>>,
    /// Operations starting with this text fail (as iproute2 would report it).
    fail: Mutex<Option<String>>,
}

#[cfg(test)]
impl RecordingL2 {
    /// What was done, in order.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Makes the operations whose log line starts with `prefix` fail.
    pub(crate) fn fail_on(&self, prefix: &str) {
        *self.fail.lock().unwrap() = Some(prefix.to_owned());
    }

    fn push(&self, s: String) -> Result<(), String> {
        if self.fail.lock().unwrap().as_deref().is_some_and(|p| s.starts_with(p)) {
            return Err("RTNETLINK answers: Operation not supported".to_owned());
        }
        self.log.lock().unwrap().push(s);
        Ok(())
    }
}

#[cfg(test)]
impl L2Tools for RecordingL2 {
    fn set_vlan_filtering(&self, bridge: &str) -> Result<(), String> {
        self.push(format!("vlan_filtering {bridge}"))
    }
    fn vlan_add(&self, dev: &str, vid: u16, pvid: bool, untagged: bool) -> Result<(), String> {
        self.push(format!("vlan add {dev} {vid} pvid={pvid} untagged={untagged}"))
    }
    fn vlan_del(&self, dev: &str, vid: u16) -> Result<(), String> {
        self.push(format!("vlan del {dev} {vid}"))
    }
    fn set_isolated(&self, dev: &str) -> Result<(), String> {
        self.push(format!("isolated {dev}"))
    }
}
