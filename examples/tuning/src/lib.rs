//! `tuning`: the reference CNI tuning meta plugin, a drop-in replacement for Go's
//! `plugins/meta/tuning` (same configuration keys and sources, results, error messages, kernel
//! effects and backup files).
//!
//! Chained after an interface plugin, ADD writes the configured `sysctl`s of the container's
//! network namespace (`net.*` only; `IFNAME` in a key names the interface), saves the current
//! values of the link attributes it is about to change to `<dataDir>/<containerID>_<ifname>.json`
//! and then sets the MAC address, promiscuous mode, MTU, all-multicast mode and transmit queue
//! length of `CNI_IFNAME`. The result is the previous plugin's, with the new MAC on the
//! interfaces named `CNI_IFNAME`. DEL puts the saved values back; CHECK compares the
//! configuration with the namespace; GC releases the saved values of attachments that are gone.
//!
//! Where this plugin is deliberately not Go's (a failed ADD undoes what it changed, CHECK's
//! false alarms, crash-safe backups, GC), the README says so.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cni_sdk::net::fake::FakeNetwork;
//! use cni_sdk::testing::PluginTest;
//! use cni_sdk::{CniResult, Command, Interface, IpConfig};
//!
//! let world = FakeNetwork::new();
//! let pod = world.add_namespace("pod");
//! pod.veth("eth0", "peer0").execute().await.unwrap();
//! let mut prev = CniResult::default();
//! prev.interfaces.push(Interface { sandbox: Some("/var/run/netns/pod".into()), ..Interface::new("eth0") });
//! prev.ips.push(IpConfig { interface: Some(0), ..IpConfig::new("10.223.0.2/24".parse().unwrap()) });
//! let data = tempfile::tempdir().unwrap();
//! let conf = serde_json::json!({"mtu": 1400, "mac": "c2:b0:57:49:47:f1", "dataDir": data.path()});
//! let plugin = tuning::Tuning::new();
//! let run = |cmd| {
//!     PluginTest::new(&plugin)
//!         .command(cmd)
//!         .config_keys(conf.clone())
//!         .prev_result(&prev)
//!         .netns("/var/run/netns/pod")
//!         .network(&world)
//!         .run()
//! };
//! let result = run(Command::Add).await.expect_result();
//! assert_eq!(result.interfaces[0].mac.unwrap().to_string(), "c2:b0:57:49:47:f1");
//! assert_eq!(pod.link("eth0").await.unwrap().mtu, 1400);
//! run(Command::Check).await.expect_success();
//! run(Command::Del).await.expect_success();
//! assert_eq!(pod.link("eth0").await.unwrap().mtu, 1500);
//! # });
//! ```

pub mod backup;
mod config;
mod gojson;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use cni_sdk::kit::{self, StateRead, Undo};
use cni_sdk::net::{Link, Net, NetError};
use cni_sdk::types::{CniArgs, MacAddr};
use cni_sdk::{CniResult, Context, Error, ErrorCode, ErrorKind, Plugin, Result, cni_plugin};

pub use backup::Saved;
pub use config::{
    DEFAULT_ALLOWLIST, DEFAULT_DATA_DIR, SysctlFile, TuningConf, check_allowlist, check_duplicate_sysctls, sysctl_file,
};

/// The tuning plugin. Holds the path of the sysctl allowlist ([`DEFAULT_ALLOWLIST`]; tests use
/// another).
#[derive(Debug, Clone)]
pub struct Tuning {
    allowlist: PathBuf,
}

impl Default for Tuning {
    fn default() -> Self {
        Self::new()
    }
}

impl Tuning {
    /// The plugin as Go's: the allowlist at [`DEFAULT_ALLOWLIST`].
    pub fn new() -> Self {
        Self { allowlist: PathBuf::from(DEFAULT_ALLOWLIST) }
    }

    /// The plugin with the sysctl allowlist read from `path` instead.
    pub fn with_allowlist(path: impl Into<PathBuf>) -> Self {
        Self { allowlist: path.into() }
    }
}

/// An error Go returns as a plain `error` (code 999).
fn go_error(kind: ErrorKind, msg: String) -> Error {
    Error::from_kind(kind, msg).with_code(ErrorCode::Internal)
}

/// A netlink failure as Go's tuning returns it, unwrapped: only the errno text
/// (`invalid argument`).
fn netlink_error(e: &NetError) -> Error {
    go_error(e.kind().into(), kit::go::errno_text(e))
}

/// A sysctl file failure as Go's `os` package prints it: `open <file>: <reason>` when the file
/// could not be opened, `write`/`read` otherwise.
fn sysctl_error(file: &SysctlFile, e: &NetError, writing: bool) -> Error {
    let at_open = matches!(
        e.errno(),
        Some(libc::ENOENT | libc::EACCES | libc::EPERM | libc::ENOTDIR | libc::EISDIR | libc::EROFS)
    );
    let op = match (at_open, writing) {
        (true, _) => "open",
        (false, true) => "write",
        (false, false) => "read",
    };
    go_error(e.kind().into(), format!("{op} {}: {}", file.path, kit::go::errno_text(e)))
}

/// Go's `net.ParseMAC` failure, as tuning wraps it.
fn parse_mac(s: &str) -> Result<MacAddr> {
    s.parse().map_err(|_| Error::internal(format!("invalid args {s} for MAC addr: address {s}: invalid MAC address")))
}

/// A configured number the kernel takes as a `u32`: anything else is the kernel's `EINVAL`
/// (Go passes it on truncated).
fn kernel_u32(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| go_error(ErrorKind::InvalidArgument, "invalid argument".to_owned()))
}

/// The container's namespace; one that is gone is Go's `ns.GetNS` error, unwrapped.
async fn container_net(cx: &Context<()>) -> Result<Net> {
    match cx.container_net_if_exists().await? {
        Some(net) => Ok(net),
        None => {
            let path = cx.netns().map(|p| p.display().to_string()).unwrap_or_default();
            Err(go_error(ErrorKind::NetnsGone, format!("failed to Statfs {path:?}: no such file or directory")))
        }
    }
}

/// Whether a sysctl file's value is the configured one. The kernel prints multi-value sysctls
/// with tabs (`4096\t131072\t6291456`) where configurations use spaces, so the values are
/// compared field by field (Go compares the strings and reports a false mismatch).
fn same_sysctl_value(configured: &str, current: &str) -> bool {
    configured.split_whitespace().eq(current.split_whitespace())
}

/// The values to save before this ADD changes the link: what the link has now, except where a
/// backup of the same attachment exists (an earlier ADD without DEL, Go bug B17) and the link
/// already has the value this ADD sets: the earlier ADD set it, and the backup holds the value
/// from before. Values the backup holds for attributes this ADD leaves alone are kept too.
fn originals(link: &Link, conf: &TuningConf, previous: Option<Saved>, network: &str) -> Saved {
    let prev = previous.unwrap_or_default();
    fn keep<T>(earlier: Option<T>, already_set: bool, now: T) -> Option<T> {
        if already_set { earlier.or(Some(now)) } else { Some(now) }
    }
    let target_mac = conf.mac.as_deref().and_then(|m| m.parse::<MacAddr>().ok());
    let mtu = i64::from(link.mtu);
    let txqlen = i64::from(link.txqlen);
    Saved {
        mac: match conf.mac {
            Some(_) => keep(prev.mac, target_mac == Some(link.mac), link.mac.to_string()),
            None => prev.mac,
        },
        promisc: if conf.promisc { keep(prev.promisc, link.promisc, link.promisc) } else { prev.promisc },
        mtu: match conf.mtu {
            Some(m) => keep(prev.mtu, m == mtu, mtu),
            None => prev.mtu,
        },
        allmulti: match conf.allmulti {
            Some(a) => keep(prev.allmulti, a == link.allmulti, link.allmulti),
            None => prev.allmulti,
        },
        tx_qlen: match conf.tx_qlen {
            Some(q) => keep(prev.tx_qlen, q == txqlen, txqlen),
            None => prev.tx_qlen,
        },
        network: Some(network.to_owned()),
    }
}

/// The link part of ADD, in Go's order: save the originals, then MAC, promiscuous mode, MTU,
/// all-multicast mode and transmit queue length. Every change registers its inverse.
async fn tune_link(
    cx: &Context<()>,
    conf: &TuningConf,
    ctr: &Net,
    undo: &mut Undo<'_>,
    result: &mut CniResult,
) -> Result<()> {
    let ifname = cx.ifname();
    let link = ctr
        .find_link(ifname)
        .await
        .map_err(|e| Error::internal(format!("failed to get {ifname:?}: {}", kit::go::errno_text(&e))))?
        .ok_or_else(|| Error::internal(format!("failed to get {ifname:?}: Link not found")))?;
    let file = backup::path(&conf.data_dir, cx.container_id(), ifname);
    let previous = backup::read(&file).ok().and_then(StateRead::valid);
    let saved = originals(&link, conf, previous, &cx.config().name);
    let previous = backup::write(&conf.data_dir, &file, ifname, &saved)?;
    undo.push("put the previous backup back", async move { previous.put_back() });

    let index = link.index;
    if let Some(m) = &conf.mac {
        let mac = parse_mac(m)?;
        ctr.set_mac(index, mac).await.map_err(|e| netlink_error(&e))?;
        let (net, old) = (ctr.clone(), link.mac);
        undo.push("restore the MAC address", async move { net.set_mac(index, old).await });
        for i in result.interfaces.iter_mut().filter(|i| i.name == ifname) {
            i.mac = Some(mac.into());
        }
    }
    if conf.promisc {
        ctr.set_promisc(index, true).await.map_err(|e| netlink_error(&e))?;
        let (net, old) = (ctr.clone(), link.promisc);
        undo.push("restore promiscuous mode", async move { net.set_promisc(index, old).await });
    }
    if let Some(mtu) = conf.mtu {
        ctr.set_mtu(index, kernel_u32(mtu)?).await.map_err(|e| netlink_error(&e))?;
        let (net, old) = (ctr.clone(), link.mtu);
        undo.push("restore the MTU", async move { net.set_mtu(index, old).await });
    }
    if let Some(on) = conf.allmulti {
        ctr.set_allmulti(index, on).await.map_err(|e| netlink_error(&e))?;
        let (net, old) = (ctr.clone(), link.allmulti);
        undo.push("restore all-multicast mode", async move { net.set_allmulti(index, old).await });
    }
    if let Some(qlen) = conf.tx_qlen {
        ctr.set_txqlen(index, kernel_u32(qlen)?).await.map_err(|e| netlink_error(&e))?;
        let (net, old) = (ctr.clone(), link.txqlen);
        undo.push("restore the transmit queue length", async move { net.set_txqlen(index, old).await });
    }
    Ok(())
}

/// Puts the saved values back on `link` in Go's order (MTU, MAC, promiscuous mode,
/// all-multicast mode, transmit queue length) and returns Go's messages for those that failed.
async fn restore(ctr: &Net, link: &Link, saved: &Saved) -> Vec<String> {
    let mut failed = Vec::new();
    let index = link.index;
    if let Some(mtu) = saved.mtu {
        let done = match kernel_u32(mtu) {
            Ok(m) => ctr.set_mtu(index, m).await.map_err(|e| netlink_error(&e)),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            failed.push(format!("failed to restore MTU: {}", e.message()));
        }
    }
    if let Some(mac) = &saved.mac {
        let done = match parse_mac(mac) {
            Ok(m) => ctr.set_mac(index, m).await.map_err(|e| netlink_error(&e)),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            failed.push(format!("failed to restore MAC address: {}", e.message()));
        }
    }
    if let Some(on) = saved.promisc
        && let Err(e) = ctr.set_promisc(index, on).await
    {
        failed.push(format!("failed to restore promiscuous mode: {}", kit::go::errno_text(&e)));
    }
    if let Some(on) = saved.allmulti
        && let Err(e) = ctr.set_allmulti(index, on).await
    {
        failed.push(format!("failed to restore all-multicast mode: {}", kit::go::errno_text(&e)));
    }
    if let Some(qlen) = saved.tx_qlen {
        let done = match kernel_u32(qlen) {
            Ok(q) => ctr.set_txqlen(index, q).await.map_err(|e| netlink_error(&e)),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            failed.push(format!("failed to restore transmit queue length: {}", e.message()));
        }
    }
    failed
}

#[cni_plugin(about = "CNI tuning plugin (cni-rs)", init = Tuning::new, main = false)]
impl Plugin for Tuning {
    /// The keys are decoded from the raw configuration with Go's rules ([`TuningConf::parse`]).
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        check_duplicate_sysctls(cx.raw_config())?;
        let conf = TuningConf::parse(cx.raw_config(), cx.args())?;
        check_allowlist(&self.allowlist, &conf.sysctl)?;
        let prev = cx.prev_result().ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let ctr = container_net(cx).await?;
        // Every key is checked before anything changes (Go checks each one as it writes it).
        let sysctls = conf
            .sysctl
            .iter()
            .map(|(k, v)| Ok((sysctl_file(k, cx.ifname())?, v.clone())))
            .collect::<Result<Vec<_>>>()?;
        kit::with_undo(async |undo| {
            for (file, value) in sysctls {
                let old = ctr.sysctl(&file.key).await.ok();
                ctr.set_sysctl(&file.key, &value).await.map_err(|e| sysctl_error(&file, &e, true))?;
                if let Some(old) = old {
                    let (net, key) = (ctr.clone(), file.key.clone());
                    undo.push(format!("restore {}", file.path), async move { net.set_sysctl(&key, &old).await });
                }
            }
            let mut result = prev.clone();
            if conf.changes_link() {
                tune_link(cx, &conf, &ctr, undo, &mut result).await?;
            }
            Ok(result)
        })
        .await
    }

    async fn del(&self, cx: &Context<()>) -> Result<()> {
        // Like Go, a configuration that does not parse fails DEL; nothing else does.
        let conf = TuningConf::parse(cx.raw_config(), cx.args())?;
        let ifname = cx.ifname();
        let file = backup::path(&conf.data_dir, cx.container_id(), ifname);
        let ctr = match cx.netns() {
            None => None,
            Some(_) => match cx.container_net_if_exists().await {
                Ok(net) => net,
                Err(e) => {
                    tracing::warn!(error = %e, "DEL: cannot open the container's namespace; the saved values stay");
                    return Ok(());
                }
            },
        };
        let saved = match backup::read(&file) {
            Ok(StateRead::Valid(saved)) => saved,
            Ok(StateRead::Missing) => return Ok(()),
            Ok(StateRead::Damaged(_)) => {
                backup::remove(&file);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "DEL: cannot read the saved values");
                return Ok(());
            }
        };
        // Without the namespace or the link there is nothing to restore (Go keeps the file
        // forever in these cases).
        let Some(ctr) = ctr else {
            tracing::info!(path = %file.display(), "DEL: the namespace is gone; dropping the saved values");
            backup::remove(&file);
            return Ok(());
        };
        let link = match ctr.find_link(ifname).await {
            Ok(Some(link)) => link,
            Ok(None) => {
                tracing::info!(path = %file.display(), "DEL: the interface is gone; dropping the saved values");
                backup::remove(&file);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "DEL: cannot look the interface up; the saved values stay");
                return Ok(());
            }
        };
        let failed = restore(&ctr, &link, &saved).await;
        if failed.is_empty() {
            backup::remove(&file);
        } else {
            // Go ignores these too; the file stays for a retried DEL (or GC).
            tracing::warn!(errors = %failed.join("; "), "DEL: some saved values could not be restored");
        }
        Ok(())
    }

    async fn check(&self, cx: &Context<()>) -> Result<()> {
        check_duplicate_sysctls(cx.raw_config())?;
        let conf = TuningConf::parse(cx.raw_config(), cx.args())?;
        cx.prev_result().ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let ctr = container_net(cx).await?;
        let ifname = cx.ifname();
        for (key, configured) in &conf.sysctl {
            // `IFNAME` is substituted here too (Go 1.1.1 forgot to, bug B15).
            let file = sysctl_file(key, ifname)?;
            let current = ctr.sysctl(&file.key).await.map_err(|e| sysctl_error(&file, &e, false))?;
            if !same_sysctl_value(configured, &current) {
                return Err(Error::internal(format!(
                    "Error: Tuning configured value of {} is {configured}, current value is {current}",
                    file.path
                )));
            }
        }
        let link = ctr
            .find_link(ifname)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| Error::internal(format!("Cannot find container link {ifname}")))?;
        if let Some(mac) = &conf.mac
            // Compared as addresses: Go compares the strings, so an upper-case MAC never passes.
            && mac.parse::<MacAddr>().ok() != Some(link.mac)
        {
            return Err(Error::internal(format!(
                "Error: Tuning configured Ethernet of {ifname} is {mac}, current value is {}",
                link.mac
            )));
        }
        // Only a requested promiscuous mode is checked: `promisc: false` (the default) never
        // turns it off, so it cannot be expected off (Go checks both ways, bug B17).
        if conf.promisc && !link.promisc {
            return Err(Error::internal(format!(
                "Error: Tuning link {ifname} configured promisc is true, current value is 0"
            )));
        }
        if let Some(mtu) = conf.mtu
            && mtu != i64::from(link.mtu)
        {
            return Err(Error::internal(format!(
                "Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}",
                link.mtu
            )));
        }
        if let Some(on) = conf.allmulti
            && on != link.allmulti
        {
            // (Go prints the address of its configured value here.)
            return Err(Error::internal(format!(
                "Error: Tuning configured all-multicast mode of {ifname} is {on}, current value is {}",
                link.allmulti
            )));
        }
        if let Some(qlen) = conf.tx_qlen
            && qlen != i64::from(link.txqlen)
        {
            return Err(Error::internal(format!(
                "Error: Tuning configured Transmit Queue Length of {ifname} is {qlen}, current value is {}",
                link.txqlen
            )));
        }
        Ok(())
    }

    async fn gc(&self, cx: &Context<()>) -> Result<()> {
        let conf = TuningConf::parse(cx.raw_config(), &CniArgs::default())?;
        backup::collect(&conf.data_dir, &cx.config().name, cx.gc_attachments())?;
        Ok(())
    }
}
