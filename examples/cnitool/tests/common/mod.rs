//! Host inspection and cleanup shared by the root tests of this `cnitool` (`gc_root`, `chaos`):
//! where our plugins are, `iptables -S` and nftables listings parsed, and the sweeps their Drop
//! guards run to remove whatever a test network left on the host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cni_test_support::plugin_bin;

/// This package's `cnitool`.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_cnitool");
const FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// The host's IPv4 forwarding before the first test touched it (gateway bridges turn it on).
static ORIGINAL_FORWARDING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The chains several attachments share, never deleted by the cleanup sweep.
const SHARED_CHAINS: [&str; 8] = [
    "POSTROUTING",
    "PREROUTING",
    "OUTPUT",
    "FORWARD",
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-SETMARK",
    "CNI-HOSTPORT-MASQ",
    "CNI-FORWARD",
];
/// nftables' masquerading table and chain of the ipMasq nftables backend (Go's layout).
const NFT_MASQ: [&str; 3] = ["inet", "cni_plugins_masquerade", "masq_checks"];

/// The directory of this workspace's plugin binaries (or of the multi-call links that
/// `CNI_TEST_PLUGIN_DIR` redirects them to), for `CNI_PATH`.
pub(crate) fn plugin_dir() -> PathBuf {
    let ours = Path::new(BIN).parent().expect("cnitool lives in a target directory");
    let bridge = plugin_bin(ours.join("bridge"));
    let dir = bridge.parent().expect("plugin directory").to_owned();
    for p in ["bridge", "host-local", "portmap", "tuning", "bandwidth", "firewall"] {
        assert!(
            dir.join(p).exists(),
            "{} missing: build the plugins first (cargo build -p bridge -p host-local -p portmap -p tuning -p bandwidth -p firewall)",
            dir.join(p).display()
        );
    }
    dir
}

/// A finished command's status, stdout and stderr, for failure messages.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout_of(prog: &str, args: &[&str]) -> String {
    let o = Command::new(prog).args(args).stderr(Stdio::null()).output().expect("run a host tool");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `iptables -w -t <table> -S`.
pub(crate) fn iptables_rules(table: &str) -> Vec<String> {
    stdout_of("iptables", &["-w", "-t", table, "-S"]).lines().map(str::to_owned).collect()
}

/// Splits one line of `iptables -S` into arguments (double quotes, backslash escapes inside).
pub(crate) fn iptables_args(line: &str) -> Vec<String> {
    let (mut args, mut cur, mut quoted, mut escaped, mut any) = (Vec::new(), String::new(), false, false, false);
    for ch in line.chars() {
        if escaped {
            cur.push(ch);
            escaped = false;
        } else if quoted && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
            any = true;
        } else if ch.is_whitespace() && !quoted {
            if any || !cur.is_empty() {
                args.push(std::mem::take(&mut cur));
            }
            any = false;
        } else {
            cur.push(ch);
        }
    }
    if any || !cur.is_empty() {
        args.push(cur);
    }
    args
}

/// The `-j` target of an `iptables -S` rule.
pub(crate) fn jump_target(args: &[String]) -> Option<&str> {
    args.windows(2).find(|w| w[0] == "-j").map(|w| w[1].as_str())
}

/// The rules of `masq_checks` in the nftables masquerading table (empty when it does not exist).
pub(crate) fn nft_masq_rules() -> Vec<String> {
    stdout_of("nft", &["-a", "list", "chain", NFT_MASQ[0], NFT_MASQ[1], NFT_MASQ[2]])
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("masquerade") && l.contains("# handle"))
        .map(str::to_owned)
        .collect()
}

/// Whether the host namespace has a link `name`.
pub(crate) fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deletes the host link `name` if it exists.
pub(crate) fn del_link(name: &str) {
    let _ = Command::new("ip").args(["link", "del", name]).stderr(Stdio::null()).status();
}

/// Remembers the host's IPv4 forwarding (once per process, before a gateway bridge turns it
/// on); give the value to [`restore_forwarding`].
pub(crate) fn original_forwarding() -> String {
    ORIGINAL_FORWARDING.get_or_init(|| std::fs::read_to_string(FORWARDING).unwrap_or_default()).clone()
}

/// Puts back the value [`original_forwarding`] read.
pub(crate) fn restore_forwarding(value: &str) {
    if !value.is_empty() {
        let _ = std::fs::write(FORWARDING, value);
    }
}

/// Removes every iptables rule of `table` that names the network `name` or an address starting
/// with `prefix` (`10.x.y.`), and the per-container chains those rules lead to.
pub(crate) fn sweep_iptables(table: &str, name: &str, prefix: &str) {
    let rules: Vec<Vec<String>> = iptables_rules(table).iter().map(|l| iptables_args(l)).collect();
    let mut chains = Vec::new();
    for a in &rules {
        let named = a.iter().any(|x| x.contains(name));
        if a.first().is_some_and(|x| x == "-A") && (named || a.iter().any(|x| x.starts_with(prefix))) {
            // Chains entered by rules commented with this (process-unique) network are
            // per-container chains of this test.
            if let Some(t) = jump_target(a).filter(|t| named && t.starts_with("CNI-") && !SHARED_CHAINS.contains(t)) {
                chains.push(t.to_owned());
            }
            let mut del = vec!["-w".to_owned(), "-t".to_owned(), table.to_owned(), "-D".to_owned()];
            del.extend(a[1..].iter().cloned());
            let _ = Command::new("iptables").args(&del).stderr(Stdio::null()).status();
        }
    }
    chains.sort();
    chains.dedup();
    for c in chains {
        delete_chain(table, &c);
    }
}

/// Flushes and deletes the chain `chain` of `table` (nothing when it does not exist or is
/// still referenced).
pub(crate) fn delete_chain(table: &str, chain: &str) {
    let _ = Command::new("iptables").args(["-w", "-t", table, "-F", chain]).stderr(Stdio::null()).status();
    let _ = Command::new("iptables").args(["-w", "-t", table, "-X", chain]).stderr(Stdio::null()).status();
}

/// Removes the nftables masquerading rules of addresses starting with `prefix`.
pub(crate) fn sweep_nft(prefix: &str) {
    for rule in nft_masq_rules().into_iter().filter(|r| r.contains(&format!("ip saddr {prefix}"))) {
        if let Some(handle) = rule.rsplit("# handle ").next().map(str::trim) {
            let _ = Command::new("nft")
                .args(["delete", "rule", NFT_MASQ[0], NFT_MASQ[1], NFT_MASQ[2], "handle", handle])
                .stderr(Stdio::null())
                .status();
        }
    }
}
