//! The bandwidth plugin's configuration: Go's four limit keys (top level or the `bandwidth`
//! capability), Go's validation and decoding errors, and the `dataDir` extension.

use std::path::PathBuf;

use cni_sdk::kit::go_keys;
use cni_sdk::{Context, Error, Result};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where the attachment records (for GC) live unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/bandwidth";

/// The four limit keys, as Go's `BandwidthEntry` names them.
const LIMIT_KEYS: [&str; 4] = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"];

/// The plugin's own keys (Go `PluginConf` of plugins/meta/bandwidth, plus `dataDir`).
///
/// The limits are kept as written until [`Limits`] are resolved, so that a value of the wrong
/// type fails with Go's message (`json: cannot unmarshal number -1 into Go struct field
/// PluginConf.ingressRate of type uint64`, code 999) rather than at decoding time.
#[derive(Debug, Clone, Default)]
pub struct BandwidthConf {
    keys: Keys,
    /// One of the four limit keys is present at the top level (even as `null`): then Go uses
    /// the top-level set and ignores `runtimeConfig.bandwidth` entirely.
    top_level: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Keys {
    ingress_rate: Option<Value>,
    ingress_burst: Option<Value>,
    egress_rate: Option<Value>,
    egress_burst: Option<Value>,
    data_dir: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for BandwidthConf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        // Go allocates the embedded `*BandwidthEntry` as soon as one of its keys appears, in any
        // letter case and whatever the value.
        let top_level = map.keys().any(|k| LIMIT_KEYS.iter().any(|f| k.eq_ignore_ascii_case(f)));
        let keys: Keys = go_keys(map).map_err(de::Error::custom)?;
        Ok(Self { keys, top_level })
    }
}

impl BandwidthConf {
    /// The `dataDir` extension: where ADD records the ifb devices it creates (for GC).
    pub fn data_dir(&self) -> PathBuf {
        self.keys.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The top-level limits, each decoded as Go decodes a `uint64`.
    fn top_level_limits(&self) -> Result<Limits> {
        let k = &self.keys;
        Ok(Limits {
            ingress_rate: go_uint64("ingressRate", k.ingress_rate.as_ref())?,
            ingress_burst: go_uint64("ingressBurst", k.ingress_burst.as_ref())?,
            egress_rate: go_uint64("egressRate", k.egress_rate.as_ref())?,
            egress_burst: go_uint64("egressBurst", k.egress_burst.as_ref())?,
        })
    }
}

/// A top-level limit as Go's `encoding/json` decodes it into a `uint64` field, with its error
/// text for anything else.
fn go_uint64(key: &str, v: Option<&Value>) -> Result<u64> {
    let what = match v {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => return Ok(u),
            None => format!("number {n}"),
        },
        Some(Value::String(_)) => "string".to_owned(),
        Some(Value::Bool(_)) => "bool".to_owned(),
        Some(Value::Array(_)) => "array".to_owned(),
        Some(Value::Object(_)) => "object".to_owned(),
    };
    Err(Error::internal(format!(
        "failed to parse network configuration: json: cannot unmarshal {what} into Go struct field PluginConf.{key} of type uint64"
    )))
}

/// Rates in bits per second and bursts in bits (Go's `BandwidthEntry`); 0 means "not set".
///
/// "Ingress" is traffic *into* the container (shaped on the host end of its veth), "egress"
/// traffic *from* the container (redirected to an ifb device and shaped there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Rate of traffic into the container, bits/s.
    pub ingress_rate: u64,
    /// Burst of traffic into the container, bits.
    pub ingress_burst: u64,
    /// Rate of traffic from the container, bits/s.
    pub egress_rate: u64,
    /// Burst of traffic from the container, bits.
    pub egress_burst: u64,
}

impl Limits {
    /// All four are 0: nothing to shape (Go `isZero`).
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// `(rate, burst)` of traffic into the container, when both are set.
    pub fn ingress(&self) -> Option<(u64, u64)> {
        (self.ingress_rate > 0 && self.ingress_burst > 0).then_some((self.ingress_rate, self.ingress_burst))
    }

    /// `(rate, burst)` of traffic from the container, when both are set.
    pub fn egress(&self) -> Option<(u64, u64)> {
        (self.egress_rate > 0 && self.egress_burst > 0).then_some((self.egress_rate, self.egress_burst))
    }
}

/// Go `validateRateAndBurst` for one direction.
fn validate_rate_and_burst(rate: u64, burst: u64) -> Result<()> {
    if burst == 0 && rate != 0 {
        return Err(Error::internal("if rate is set, burst must also be set"));
    }
    if rate == 0 && burst != 0 {
        return Err(Error::internal("if burst is set, rate must also be set"));
    }
    if burst / 8 >= u64::from(u32::MAX) {
        return Err(Error::internal("burst cannot be more than 4GB"));
    }
    Ok(())
}

/// The checked configuration of one request.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// Go `getBandwidth`: the top-level set if any of its keys is present, else the
    /// `bandwidth` capability, else none.
    pub(crate) limits: Option<Limits>,
    pub(crate) data_dir: PathBuf,
}

/// Go `parseConfig` (for every verb): resolve the limits and validate both directions.
pub(crate) fn load(cx: &Context<BandwidthConf>) -> Result<Loaded> {
    let c = cx.plugin_config();
    let limits = if c.top_level {
        Some(c.top_level_limits()?)
    } else {
        cx.runtime_config().and_then(|r| r.bandwidth.as_ref()).map(|b| Limits {
            ingress_rate: b.ingress_rate.unwrap_or(0),
            ingress_burst: b.ingress_burst.unwrap_or(0),
            egress_rate: b.egress_rate.unwrap_or(0),
            egress_burst: b.egress_burst.unwrap_or(0),
        })
    };
    if let Some(l) = &limits {
        validate_rate_and_burst(l.ingress_rate, l.ingress_burst)?;
        validate_rate_and_burst(l.egress_rate, l.egress_burst)?;
    }
    Ok(Loaded { limits, data_dir: c.data_dir() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> BandwidthConf {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn top_level_presence_follows_go_embedding() {
        assert!(!conf(json!({"name": "n"})).top_level);
        assert!(conf(json!({"ingressRate": 0})).top_level);
        assert!(conf(json!({"EGRESSBURST": null})).top_level);
        let c = conf(json!({"IngressRate": 8000, "ingressBurst": 800, "dataDir": "/tmp/x"}));
        let l = c.top_level_limits().unwrap();
        assert_eq!((l.ingress_rate, l.ingress_burst, l.egress_rate), (8000, 800, 0));
        assert_eq!(c.data_dir(), PathBuf::from("/tmp/x"));
        assert_eq!(conf(json!({})).data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn wrong_types_fail_with_go_text() {
        for (v, what) in [
            (json!(-1), "number -1"),
            (json!(1.5), "number 1.5"),
            (json!("x"), "string"),
            (json!(true), "bool"),
            (json!([1]), "array"),
            (json!({}), "object"),
        ] {
            let e = conf(json!({"egressBurst": v})).top_level_limits().unwrap_err();
            assert_eq!(
                e.message(),
                format!(
                    "failed to parse network configuration: json: cannot unmarshal {what} into Go struct field PluginConf.egressBurst of type uint64"
                )
            );
            assert_eq!(e.code(), cni_sdk::ErrorCode::Internal);
        }
    }

    #[test]
    fn rate_and_burst_rules() {
        assert!(validate_rate_and_burst(0, 0).is_ok());
        assert!(validate_rate_and_burst(1000, 80).is_ok());
        assert_eq!(validate_rate_and_burst(1000, 0).unwrap_err().message(), "if rate is set, burst must also be set");
        assert_eq!(validate_rate_and_burst(0, 80).unwrap_err().message(), "if burst is set, rate must also be set");
        let max = u64::from(u32::MAX) * 8;
        assert_eq!(validate_rate_and_burst(1, max).unwrap_err().message(), "burst cannot be more than 4GB");
        assert!(validate_rate_and_burst(1, max - 1).is_ok());
        let l = Limits { ingress_rate: 1, ingress_burst: 0, egress_rate: 0, egress_burst: 0 };
        assert_eq!((l.is_zero(), l.ingress(), l.egress()), (false, None, None));
        assert!(Limits::default().is_zero());
    }
}
