//! Per-namespace sysctls (`/proc/sys/net/...`).

use super::{Net, NetError, NetErrorKind, NetResult};

/// Turns `net.ipv4.ip_forward` or `net/ipv4/ip_forward` into `net/ipv4/ip_forward`.
///
/// A key containing `/` is taken as is (so interface names with dots work); otherwise dots
/// separate components. Only per-namespace `net/...` keys are accepted.
pub(crate) fn normalize_sysctl_key(key: &str) -> NetResult<String> {
    let slashed = if key.contains('/') { key.to_owned() } else { key.replace('.', "/") };
    let ok = slashed.starts_with("net/")
        && slashed.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if !ok {
        return Err(NetError::new(
            NetErrorKind::InvalidArgument,
            format!("invalid network sysctl key {key:?} (expected net.* or net/...)"),
        ));
    }
    Ok(slashed)
}

impl Net {
    /// Reads a per-namespace sysctl, e.g. `net.ipv4.ip_forward` or
    /// `net/ipv6/conf/eth0/accept_ra` (use the slash form when an interface name contains dots).
    /// The value is returned without its trailing newline.
    pub async fn sysctl(&self, key: &str) -> NetResult<String> {
        let key = normalize_sysctl_key(key)?;
        self.backend.sysctl_get(&key).await
    }

    /// Writes a per-namespace sysctl.
    pub async fn set_sysctl(&self, key: &str, value: &str) -> NetResult<()> {
        let key = normalize_sysctl_key(key)?;
        self.backend.sysctl_set(&key, value).await
    }
}
