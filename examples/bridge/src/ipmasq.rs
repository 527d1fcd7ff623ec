//! IP masquerading with iptables, compatible with Go's `ip.SetupIPMasq` / `ip.TeardownIPMasq`:
//! one nat chain per (network, container), named and commented exactly like Go's
//! `utils.FormatChainName` / `utils.FormatComment`, so either implementation can remove the
//! other's rules.
//!
//! iptables runs as a child process (`iptables -w ...` / `ip6tables -w ...`) in the plugin's own
//! (host) namespace.

use std::net::IpAddr;
use std::process::Command;
use std::sync::Mutex;

use ipnet::IpNet;
use sha2::{Digest, Sha512};

/// Longest iptables chain name Go's helpers produce.
const MAX_CHAIN_LENGTH: usize = 28;
/// Go's chain prefix.
const CHAIN_PREFIX: &str = "CNI-";

/// `CNI-` + the first 24 hex digits of sha512(name + containerID) (Go `utils.FormatChainName`).
pub fn chain_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{CHAIN_PREFIX}{}", &hex[..MAX_CHAIN_LENGTH - CHAIN_PREFIX.len()])
}

/// `name: "<net>" id: "<cid>"` (Go `utils.FormatComment`, `%q` quoting).
pub fn chain_comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Go's `%q` for the identifier alphabet CNI allows (plus escapes for `"` and `\`).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// IPv4 or IPv6 iptables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Self::V4 } else { Self::V6 }
    }

    fn multicast(self) -> &'static str {
        match self {
            Self::V4 => "224.0.0.0/4",
            Self::V6 => "ff00::/8",
        }
    }
}

/// The nat-table operations masquerading needs. Implemented by [`Iptables`] (child processes) and,
/// in tests, by an in-memory model.
pub trait Firewall: Send + Sync {
    /// Creates `chain` in the nat table if it does not exist.
    fn ensure_chain(&self, family: Family, chain: &str) -> Result<(), String>;
    /// Appends `rule` to `chain` unless an identical rule exists.
    fn append_unique(&self, family: Family, chain: &str, rule: &[String]) -> Result<(), String>;
    /// Deletes every rule of `chain` that jumps to `target`.
    fn delete_jumps(&self, family: Family, chain: &str, target: &str) -> Result<(), String>;
    /// Flushes and deletes `chain`; a missing chain is not an error.
    fn delete_chain(&self, family: Family, chain: &str) -> Result<(), String>;
}

/// Sets up masquerading for `addr` (Go `ip.SetupIPMasq`).
pub fn setup(fw: &dyn Firewall, addr: IpNet, chain: &str, comment: &str) -> Result<(), String> {
    let family = Family::of(addr.addr());
    fw.ensure_chain(family, chain)?;
    let c = |v: &[&str]| -> Vec<String> {
        let mut r: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
        r.extend(["-m", "comment", "--comment", comment].map(str::to_owned));
        r
    };
    // Packets to this network are not touched.
    fw.append_unique(family, chain, &c(&["-d", &addr.to_string(), "-j", "ACCEPT"]))?;
    // Multicast is not masqueraded, so pods can talk to the local network with it.
    fw.append_unique(family, chain, &c(&["!", "-d", family.multicast(), "-j", "MASQUERADE"]))?;
    // Packets from the container's address go through the chain.
    fw.append_unique(family, "POSTROUTING", &c(&["-s", &addr.addr().to_string(), "-j", chain]))
}

/// Removes masquerading of a container (Go `ip.TeardownIPMasq`, by chain rather than by address,
/// so it also cleans up after an ADD that was interrupted): every POSTROUTING jump to `chain`,
/// then the chain itself.
pub fn teardown(fw: &dyn Firewall, family: Family, chain: &str) -> Result<(), String> {
    fw.delete_jumps(family, "POSTROUTING", chain)?;
    fw.delete_chain(family, chain)
}

/// Splits a rule as `iptables -S` prints it into arguments: whitespace separates them, double
/// quotes group, and a backslash escapes the next character inside quotes.
pub fn split_rule(spec: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_arg = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    args
}

/// iptables / ip6tables run as child processes with `-w` (wait for the xtables lock).
#[derive(Debug, Default)]
pub struct Iptables;

impl Iptables {
    fn run(family: Family, args: &[&str]) -> Result<String, (Option<i32>, String)> {
        let bin = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        let out =
            Command::new(bin).arg("-w").args(args).output().map_err(|e| (None, format!("failed to run {bin}: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Err((out.status.code(), format!("running [{bin} -w {}]: {err}", args.join(" "))))
        }
    }

    fn not_exist(msg: &str) -> bool {
        msg.contains("No chain/target/match by that name")
            || msg.contains("does not exist")
            || msg.contains("Bad rule (does a matching rule exist")
            || msg.contains("No such file or directory")
    }

    fn chains(family: Family) -> Result<Vec<String>, String> {
        let out = Self::run(family, &["-t", "nat", "-S"]).map_err(|e| e.1)?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("-N ").or_else(|| l.strip_prefix("-P ")))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect())
    }
}

impl Firewall for Iptables {
    fn ensure_chain(&self, family: Family, chain: &str) -> Result<(), String> {
        if Self::chains(family)?.iter().any(|c| c == chain) {
            return Ok(());
        }
        match Self::run(family, &["-t", "nat", "-N", chain]) {
            Ok(_) => Ok(()),
            // Lost a race with another creator.
            Err((_, e)) if e.contains("already exists") => Ok(()),
            Err((_, e)) => Err(e),
        }
    }

    fn append_unique(&self, family: Family, chain: &str, rule: &[String]) -> Result<(), String> {
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        let mut check = vec!["-t", "nat", "-C", chain];
        check.extend(&rule);
        match Self::run(family, &check) {
            Ok(_) => return Ok(()),
            Err((Some(1), _)) => {}
            Err((_, e)) => return Err(e),
        }
        let mut append = vec!["-t", "nat", "-A", chain];
        append.extend(&rule);
        Self::run(family, &append).map(drop).map_err(|e| e.1)
    }

    fn delete_jumps(&self, family: Family, chain: &str, target: &str) -> Result<(), String> {
        // Delete by rule specification (not by number: rules of other containers may come and go
        // concurrently, which would shift the numbers).
        let listing = match Self::run(family, &["-t", "nat", "-S", chain]) {
            Ok(l) => l,
            Err((_, e)) if Self::not_exist(&e) => return Ok(()),
            Err((_, e)) => return Err(e),
        };
        let prefix = format!("-A {chain} ");
        for line in listing.lines() {
            let Some(spec) = line.strip_prefix(&prefix) else { continue };
            let args = split_rule(spec);
            if !args.windows(2).any(|w| w[0] == "-j" && w[1] == target) {
                continue;
            }
            let mut del: Vec<&str> = vec!["-t", "nat", "-D", chain];
            del.extend(args.iter().map(String::as_str));
            match Self::run(family, &del) {
                Ok(_) => {}
                Err((_, e)) if Self::not_exist(&e) => {}
                Err((_, e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn delete_chain(&self, family: Family, chain: &str) -> Result<(), String> {
        for op in ["-F", "-X"] {
            match Self::run(family, &["-t", "nat", op, chain]) {
                Ok(_) => {}
                Err((_, e)) if Self::not_exist(&e) => return Ok(()),
                Err((_, e)) => return Err(e),
            }
        }
        Ok(())
    }
}

/// An in-memory nat table for tests: chains with their rules, per family, and a log.
#[derive(Debug, Default)]
pub struct FakeFirewall {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    /// (family, chain) → rules; POSTROUTING exists implicitly.
    chains: std::collections::BTreeMap<(Family, String), Vec<Vec<String>>>,
    fail: Option<String>,
}

#[allow(dead_code)]
impl FakeFirewall {
    /// The rules of `chain` (None if it does not exist).
    pub fn rules(&self, family: Family, chain: &str) -> Option<Vec<Vec<String>>> {
        self.state.lock().unwrap().chains.get(&(family, chain.to_owned())).cloned()
    }

    /// All chains other than POSTROUTING.
    pub fn chains(&self) -> Vec<(Family, String)> {
        let st = self.state.lock().unwrap();
        st.chains.keys().filter(|(_, c)| c != "POSTROUTING").cloned().collect()
    }

    /// The POSTROUTING rules.
    pub fn postrouting(&self, family: Family) -> Vec<Vec<String>> {
        self.rules(family, "POSTROUTING").unwrap_or_default()
    }

    /// Makes every following operation fail with `msg`.
    pub fn fail_with(&self, msg: &str) {
        self.state.lock().unwrap().fail = Some(msg.to_owned());
    }

    fn check(st: &FakeState) -> Result<(), String> {
        st.fail.clone().map_or(Ok(()), Err)
    }
}

impl Firewall for FakeFirewall {
    fn ensure_chain(&self, family: Family, chain: &str) -> Result<(), String> {
        let mut st = self.state.lock().unwrap();
        Self::check(&st)?;
        st.chains.entry((family, chain.to_owned())).or_default();
        Ok(())
    }

    fn append_unique(&self, family: Family, chain: &str, rule: &[String]) -> Result<(), String> {
        let mut st = self.state.lock().unwrap();
        Self::check(&st)?;
        if chain != "POSTROUTING" && !st.chains.contains_key(&(family, chain.to_owned())) {
            return Err(format!("iptables: No chain/target/match by that name ({chain})"));
        }
        let rules = st.chains.entry((family, chain.to_owned())).or_default();
        if !rules.iter().any(|r| r == rule) {
            rules.push(rule.to_vec());
        }
        Ok(())
    }

    fn delete_jumps(&self, family: Family, chain: &str, target: &str) -> Result<(), String> {
        let mut st = self.state.lock().unwrap();
        Self::check(&st)?;
        if let Some(rules) = st.chains.get_mut(&(family, chain.to_owned())) {
            rules.retain(|r| !r.windows(2).any(|w| w[0] == "-j" && w[1] == target));
        }
        Ok(())
    }

    fn delete_chain(&self, family: Family, chain: &str) -> Result<(), String> {
        let mut st = self.state.lock().unwrap();
        Self::check(&st)?;
        st.chains.remove(&(family, chain.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_name_matches_go() {
        // sha512("mynet" + "ctr1"), first 24 hex digits, as Go's utils.FormatChainName computes it.
        let name = chain_name("mynet", "ctr1");
        assert_eq!(name.len(), 28);
        assert!(name.starts_with("CNI-"));
        let digest = Sha512::digest(b"mynetctr1");
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        assert_eq!(name, format!("CNI-{hex}"));
        assert_ne!(chain_name("mynet", "ctr2"), name);
    }

    #[test]
    fn comment_matches_go() {
        assert_eq!(chain_comment("mynet", "ctr1"), r#"name: "mynet" id: "ctr1""#);
        assert_eq!(go_quote("a\"b"), r#""a\"b""#);
    }

    #[test]
    fn split_rule_undoes_iptables_quoting() {
        let line = r#"-s 10.1.0.5/32 -m comment --comment "name: \"net\" id: \"c\\d\"" -j CNI-abc"#;
        assert_eq!(
            split_rule(line),
            ["-s", "10.1.0.5/32", "-m", "comment", "--comment", r#"name: "net" id: "c\d""#, "-j", "CNI-abc"]
        );
        assert_eq!(split_rule(r#"-j X --comment """#), ["-j", "X", "--comment", ""]);
    }

    #[test]
    fn setup_and_teardown_on_the_model() {
        let fw = FakeFirewall::default();
        let chain = chain_name("n", "c");
        setup(&fw, "10.1.0.5/16".parse().unwrap(), &chain, "x").unwrap();
        setup(&fw, "10.1.0.5/16".parse().unwrap(), &chain, "x").unwrap();
        assert_eq!(fw.rules(Family::V4, &chain).unwrap().len(), 2);
        assert_eq!(fw.postrouting(Family::V4).len(), 1);
        teardown(&fw, Family::V4, &chain).unwrap();
        assert!(fw.chains().is_empty());
        assert!(fw.postrouting(Family::V4).is_empty());
        teardown(&fw, Family::V4, &chain).unwrap();
    }
}
