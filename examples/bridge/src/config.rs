//! The bridge plugin's configuration keys, with Go's defaults and checks.

use cni_sdk::types::MacAddr;
use cni_sdk::{Context, Error, Result};
use serde::Deserialize;

/// Default bridge name.
pub(crate) const DEFAULT_BRIDGE: &str = "cni0";

fn default_bridge() -> String {
    DEFAULT_BRIDGE.to_owned()
}

/// One `vlanTrunk` item: `{"minID": a, "maxID": b}` or `{"id": n}`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct VlanTrunk {
    #[serde(rename = "minID", default)]
    pub min_id: Option<i64>,
    #[serde(rename = "maxID", default)]
    pub max_id: Option<i64>,
    #[serde(default)]
    pub id: Option<i64>,
}

/// The plugin's own keys (Go `NetConf` of plugins/main/bridge).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeConf {
    /// Bridge name (`cni0`).
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// Put the gateway address on the bridge.
    #[serde(default)]
    pub is_gateway: bool,
    /// Add a default route via the gateway (implies `isGateway`).
    #[serde(default)]
    pub is_default_gateway: bool,
    /// Replace a different address already on the bridge.
    #[serde(default)]
    pub force_address: bool,
    /// Masquerade traffic from the container's addresses.
    #[serde(default)]
    pub ip_masq: bool,
    /// `iptables` or `nftables`; unset: iptables unless it is unusable and nftables usable.
    #[serde(default)]
    pub ip_masq_backend: Option<String>,
    /// MTU of the bridge (at creation) and the veth pair; 0 = kernel default.
    #[serde(default)]
    pub mtu: i64,
    /// Hairpin mode on the host port.
    #[serde(default)]
    pub hairpin_mode: bool,
    /// Promiscuous mode on the bridge.
    #[serde(default)]
    pub promisc_mode: bool,
    /// Access VLAN of the port (0 = none).
    #[serde(default)]
    pub vlan: i64,
    /// Trunk VLANs of the port.
    #[serde(default)]
    pub vlan_trunk: Option<Vec<VlanTrunk>>,
    /// Keep VLAN 1 on the port when a VLAN is set.
    #[serde(default)]
    pub preserve_default_vlan: Option<bool>,
    /// MAC spoof check (nftables; not supported here).
    #[serde(default)]
    pub macspoofchk: bool,
    /// Duplicate address detection on the container interface.
    #[serde(default)]
    pub enabledad: bool,
    /// Leave the container interface down (L2 only).
    #[serde(default)]
    pub disable_container_interface: bool,
    /// Port isolation on the host port.
    #[serde(default)]
    pub port_isolation: bool,
}

/// The checked configuration of one request.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Trunk VLANs, sorted, unique.
    pub(crate) vlans: Vec<u16>,
    /// Requested container MAC (CNI_ARGS `MAC`, then `args.cni.mac`, then `runtimeConfig.mac`).
    pub(crate) mac: Option<MacAddr>,
    /// `ipam.type` is set.
    pub(crate) layer3: bool,
    /// `isGateway || isDefaultGateway`.
    pub(crate) is_gw: bool,
    /// MTU, if set.
    pub(crate) mtu: Option<u32>,
}

/// Go `collectVlanTrunk`.
pub(crate) fn collect_vlan_trunk(trunk: Option<&[VlanTrunk]>) -> Result<Vec<u16>> {
    let Some(trunk) = trunk else { return Ok(Vec::new()) };
    let mut set = std::collections::BTreeSet::new();
    let valid = |v: i64| (1..=4094).contains(&v);
    for item in trunk {
        match (item.min_id, item.max_id) {
            (Some(min), Some(max)) => {
                if !valid(min) {
                    return Err(Error::internal("incorrect trunk minID parameter"));
                }
                if !valid(max) {
                    return Err(Error::internal("incorrect trunk maxID parameter"));
                }
                if max < min {
                    return Err(Error::internal("minID is greater than maxID in trunk parameter"));
                }
                set.extend(min..=max);
            }
            (None, Some(_)) => {
                return Err(Error::internal("minID and maxID should be configured simultaneously, minID is missing"));
            }
            (Some(_), None) => {
                return Err(Error::internal("minID and maxID should be configured simultaneously, maxID is missing"));
            }
            (None, None) => {}
        }
        if let Some(id) = item.id {
            if !valid(id) {
                return Err(Error::internal("incorrect trunk id parameter"));
            }
            set.insert(id);
        }
    }
    Ok(set.into_iter().map(|v| u16::try_from(v).expect("checked range")).collect())
}

fn parse_mac(s: &str) -> Result<MacAddr> {
    // Go parses the address when it creates the veth pair, with this message.
    s.parse().map_err(|_| Error::internal(format!("failed to make veth pair: address {s}: invalid MAC address")))
}

/// Go `loadNetConf`: range checks, trunk parsing, MAC precedence. The MAC is only parsed when
/// `want_mac` (ADD): like Go, DEL and CHECK do not fail on a bad one.
pub(crate) fn load(cx: &Context<BridgeConf>, want_mac: bool) -> Result<Loaded> {
    let n = cx.plugin_config();
    if !(0..=4094).contains(&n.vlan) {
        return Err(Error::internal(format!("invalid VLAN ID {} (must be between 0 and 4094)", n.vlan)));
    }
    let vlans = collect_vlan_trunk(n.vlan_trunk.as_deref())?;
    if n.vlan > 0 && !vlans.is_empty() {
        return Err(Error::internal("cannot set vlan and vlanTrunk at the same time"));
    }
    if let Some(b) = n.ip_masq_backend.as_deref()
        && b != "iptables"
        && b != "nftables"
    {
        return Err(Error::internal(format!("unknown ipmasq backend {b:?}")));
    }
    let mut mac = None;
    if !cx.args().is_empty() {
        cx.args().check_known(&["MAC"]).map_err(|e| Error::internal(e.to_string()))?;
        if let Some(m) = cx.args().get("MAC").filter(|m| want_mac && !m.is_empty()) {
            mac = Some(parse_mac(m)?);
        }
    }
    let args_mac = cx.config().args.as_ref().and_then(|a| a.cni.as_ref()).and_then(|c| c.extra.get("mac"));
    if let Some(m) = args_mac.and_then(|m| m.as_str()).filter(|m| want_mac && !m.is_empty()) {
        mac = Some(parse_mac(m)?);
    }
    if let Some(m) = cx.runtime_config().and_then(|r| r.mac) {
        mac = Some(m);
    }
    let layer3 = cx.config().ipam.as_ref().is_some_and(|i| !i.plugin_type.is_empty());
    let mtu = u32::try_from(n.mtu).ok().filter(|m| *m > 0);
    Ok(Loaded { vlans, mac, layer3, is_gw: n.is_gateway || n.is_default_gateway, mtu })
}
