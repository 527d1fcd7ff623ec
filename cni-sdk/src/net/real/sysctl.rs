//! Sysctls: files under `/proc/sys`, read and written on a thread inside the namespace.

use super::io_err;
use crate::net::NetResult;
use crate::netns::NetNs;

pub(super) async fn get(ns: &NetNs, key: &str) -> NetResult<String> {
    let path = format!("/proc/sys/{key}");
    let value = ns
        .run_blocking(move || std::fs::read_to_string(path))
        .await?
        .map_err(|e| io_err(e, format_args!("read sysctl {key}")))?;
    Ok(value.trim_end_matches('\n').to_owned())
}

pub(super) async fn set(ns: &NetNs, key: &str, value: &str) -> NetResult<()> {
    let path = format!("/proc/sys/{key}");
    let value = value.to_owned();
    ns.run_blocking(move || {
        use std::io::Write;
        // No O_CREAT: an unknown key must fail with ENOENT.
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(value.as_bytes())
    })
    .await?
    .map_err(|e| io_err(e, format_args!("write sysctl {key}")))
}
