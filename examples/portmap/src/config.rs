//! portmap's configuration keys and their validation, in Go's order and with Go's messages
//! (`parseConfig` and `ensureBackend` of `plugins/meta/portmap/main.go`).

use std::net::IpAddr;
use std::path::PathBuf;

use cni_sdk::firewall::{Firewall, IpFamily, Protocol};
use cni_sdk::{Context, Error, Result};
use ipnet::IpNet;
use serde::Deserialize;

/// The mark bit Go uses when `markMasqBit` is not set (Kubernetes uses 14 and 15).
pub const DEFAULT_MARK_BIT: u32 = 13;

/// Where nftables attachment records live unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/portmap";

/// portmap's own configuration keys (the mappings come in `runtimeConfig.portMappings`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapConf {
    /// `iptables` or `nftables`; unset: iptables unless only nftables is usable.
    #[serde(default)]
    pub backend: Option<String>,
    /// Masquerade hairpin and localhost traffic (default true).
    #[serde(default)]
    pub snat: Option<bool>,
    /// Extra match arguments for the IPv4 entry rules (iptables arguments or nft syntax).
    #[serde(default, rename = "conditionsV4")]
    pub conditions_v4: Option<Vec<String>>,
    /// Extra match arguments for the IPv6 entry rules.
    #[serde(default, rename = "conditionsV6")]
    pub conditions_v6: Option<Vec<String>>,
    /// Masquerade hairpin traffic from any source, not only the container's subnet.
    #[serde(default)]
    pub masq_all: Option<bool>,
    /// The mark bit (0..=31) that asks for masquerading (default 13).
    #[serde(default)]
    pub mark_masq_bit: Option<i64>,
    /// An existing chain that sets the masquerade mark, instead of `CNI-HOSTPORT-SETMARK`.
    #[serde(default)]
    pub external_set_mark_chain: Option<String>,
    /// Where the nftables backend keeps its attachment records (extension; default
    /// `/var/lib/cni/portmap`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

/// The firewall a configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// iptables, with Go's chains.
    Iptables,
    /// nftables, with Go's `cni_hostport` tables.
    Nftables,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
        }
    }
}

/// One port mapping, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) host_port: u16,
    pub(crate) container_port: u16,
    pub(crate) protocol: Protocol,
    /// The protocol as written (Go groups and prints it verbatim).
    pub(crate) protocol_name: String,
    pub(crate) host_ip: Option<IpAddr>,
}

impl Mapping {
    /// Whether the mapping applies to a container address of `family`: no host IP, or a host IP
    /// of that family.
    pub(crate) fn applies_to(&self, family: IpFamily) -> bool {
        self.host_ip.is_none_or(|ip| IpFamily::of(ip) == family)
    }

    /// The host address to match, if any (an unspecified host IP matches every address).
    pub(crate) fn destination(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }
}

/// The configuration after Go's defaults and checks.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) backend: Backend,
    pub(crate) snat: bool,
    pub(crate) masq_all: bool,
    pub(crate) mark_bit: u32,
    pub(crate) external_chain: Option<String>,
    pub(crate) conditions_v4: Vec<String>,
    pub(crate) conditions_v6: Vec<String>,
    pub(crate) mappings: Vec<Mapping>,
    /// The first IPv4 and IPv6 container address of `prevResult` (with the prefix IPAM gave).
    pub(crate) container_v4: Option<IpNet>,
    pub(crate) container_v6: Option<IpNet>,
    pub(crate) data_dir: PathBuf,
}

impl Loaded {
    /// The container addresses, IPv4 first.
    pub(crate) fn container_nets(&self) -> Vec<IpNet> {
        self.container_v4.into_iter().chain(self.container_v6).collect()
    }

    /// The entry-rule conditions of `family`.
    pub(crate) fn conditions(&self, family: IpFamily) -> &[String] {
        match family {
            IpFamily::V4 => &self.conditions_v4,
            IpFamily::V6 => &self.conditions_v6,
        }
    }

    /// The mark value (and mask) of the mark bit.
    pub(crate) fn mark(&self) -> u32 {
        1u32 << self.mark_bit
    }
}

/// Go `detectBackendOfConditions`: iptables arguments start with `-` or `!`, nft syntax does not.
fn backend_of_conditions(conditions: Option<&Vec<String>>) -> Option<Backend> {
    let first = conditions?.first()?;
    match first.chars().next()? {
        '-' | '!' => Some(Backend::Iptables),
        _ => Some(Backend::Nftables),
    }
}

fn internal(msg: impl Into<String>) -> Error {
    Error::internal(msg)
}

/// Go `parseConfig`: defaults, the mark bit, the backend, the mappings and the container
/// addresses. Errors are Go's texts, not yet wrapped (ADD and DEL add `failed to parse config: `).
pub(crate) async fn load(cx: &Context<PortMapConf>, iptables: &Firewall, nftables: &Firewall) -> Result<Loaded> {
    let c = cx.plugin_config();
    if c.mark_masq_bit.is_some() && c.external_set_mark_chain.is_some() {
        return Err(internal("Cannot specify externalSetMarkChain and markMasqBit"));
    }
    let bit = c.mark_masq_bit.unwrap_or(i64::from(DEFAULT_MARK_BIT));
    let mark_bit =
        u32::try_from(bit).ok().filter(|b| *b <= 31).ok_or_else(|| internal("MasqMarkBit must be between 0 and 31"))?;
    let backend = ensure_backend(c, iptables, nftables).await?;
    let mappings = mappings(cx)?;
    let (container_v4, container_v6) = container_addresses(cx);
    Ok(Loaded {
        backend,
        snat: c.snat.unwrap_or(true),
        masq_all: c.masq_all.unwrap_or(false),
        mark_bit,
        external_chain: c.external_set_mark_chain.clone(),
        conditions_v4: c.conditions_v4.clone().unwrap_or_default(),
        conditions_v6: c.conditions_v6.clone().unwrap_or_default(),
        mappings,
        container_v4,
        container_v6,
        data_dir: c.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    })
}

/// Go `ensureBackend` and the backend switch of `parseConfig`.
async fn ensure_backend(c: &PortMapConf, iptables: &Firewall, nftables: &Firewall) -> Result<Backend> {
    let mut ipt_opts: Vec<&str> = Vec::new();
    let mut nft_opts: Vec<&str> = Vec::new();
    if c.external_set_mark_chain.is_some() {
        ipt_opts.push("externalSetMarkChain");
    }
    for (key, conds) in [("conditionsV4", &c.conditions_v4), ("conditionsV6", &c.conditions_v6)] {
        match backend_of_conditions(conds.as_ref()) {
            Some(Backend::Iptables) => ipt_opts.push(key),
            Some(Backend::Nftables) => nft_opts.push(key),
            None => {}
        }
    }
    let requested = match &c.backend {
        Some(b) => b.clone(),
        None => {
            if !iptables.is_usable().await && nftables.is_usable().await {
                "nftables".to_owned()
            } else {
                "iptables".to_owned()
            }
        }
    };
    let (wrong, wrong_opts) =
        if requested == "iptables" { (Backend::Nftables, &nft_opts) } else { (Backend::Iptables, &ipt_opts) };
    if !wrong_opts.is_empty() {
        return Err(internal(format!(
            "{requested} backend was requested but configuration contains {}-specific options [{}]",
            wrong.name(),
            wrong_opts.join(" ")
        )));
    }
    match requested.as_str() {
        "iptables" => Ok(Backend::Iptables),
        "nftables" => Ok(Backend::Nftables),
        other => Err(internal(format!("unrecognized backend {other:?}"))),
    }
}

/// The mappings of `runtimeConfig.portMappings`, checked as Go checks them (ports first), plus
/// what Go leaves to iptables to refuse (the protocol, the host IP).
fn mappings(cx: &Context<PortMapConf>) -> Result<Vec<Mapping>> {
    let raw = cx.runtime_config().and_then(|r| r.port_mappings.as_deref()).unwrap_or_default();
    for pm in raw {
        if pm.container_port == 0 {
            return Err(internal(format!("Invalid container port number: {}", pm.container_port)));
        }
        if pm.host_port == 0 {
            return Err(internal(format!("Invalid host port number: {}", pm.host_port)));
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for pm in raw {
        let protocol = Protocol::parse(&pm.protocol).filter(|p| p.has_ports()).ok_or_else(|| {
            internal(format!(
                "Invalid protocol {:?} for host port {} (want tcp, udp or sctp)",
                pm.protocol, pm.host_port
            ))
        })?;
        let host_ip = match pm.host_ip.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                s.parse::<IpAddr>()
                    .map_err(|_| internal(format!("Invalid host IP {s:?} for host port {}", pm.host_port)))?,
            ),
        };
        out.push(Mapping {
            host_port: pm.host_port,
            container_port: pm.container_port,
            protocol,
            protocol_name: pm.protocol.clone(),
            host_ip,
        });
    }
    Ok(out)
}

/// Go's choice of container addresses: the first IPv4 and the first IPv6 of `prevResult`,
/// skipping addresses of known interfaces that are not `CNI_IFNAME` in a sandbox.
fn container_addresses(cx: &Context<PortMapConf>) -> (Option<IpNet>, Option<IpNet>) {
    let (mut v4, mut v6) = (None, None);
    let Some(prev) = cx.prev_result() else { return (None, None) };
    for ip in &prev.ips {
        let slot = if ip.address.addr().is_ipv4() { &mut v4 } else { &mut v6 };
        if slot.is_some() {
            continue;
        }
        if let Some(intf) = ip.interface.and_then(|i| prev.interfaces.get(i))
            && (intf.name != cx.ifname() || intf.sandbox.as_deref().unwrap_or_default().is_empty())
        {
            continue;
        }
        *slot = Some(ip.address);
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_syntax_is_detected_like_go() {
        let v = |s: &[&str]| Some(s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>());
        assert_eq!(backend_of_conditions(v(&["-s", "1.2.3.4"]).as_ref()), Some(Backend::Iptables));
        assert_eq!(backend_of_conditions(v(&["!", "-d", "1.2.3.4"]).as_ref()), Some(Backend::Iptables));
        assert_eq!(backend_of_conditions(v(&["ip saddr 1.2.3.4"]).as_ref()), Some(Backend::Nftables));
        assert_eq!(backend_of_conditions(v(&[""]).as_ref()), None);
        assert_eq!(backend_of_conditions(v(&[]).as_ref()), None);
        assert_eq!(backend_of_conditions(None), None);
    }
}
