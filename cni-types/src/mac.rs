//! Hardware (MAC) addresses as CNI writes them: lower-case, colon separated.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet MAC address (6 octets).
///
/// Parses the forms Go's `net.ParseMAC` accepts for 6-octet addresses
/// (`aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff`) and always prints the lower-case
/// colon form, which is what CNI results and `runtimeConfig.mac` use.
///
/// ```
/// use cni_types::MacAddr;
/// let mac: MacAddr = "C2-11-22-33-44-55".parse().unwrap();
/// assert_eq!(mac.to_string(), "c2:11:22:33:44:55");
/// assert!(mac.is_locally_administered());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// Wraps six octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for the all-zero address.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True when the locally-administered bit is set.
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// True for multicast (and broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// The error returned when a string is not a 6-octet MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}")]
pub struct MacParseError(String);

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_owned());
        let b = s.as_bytes();
        let mut out = [0u8; 6];
        match b.len() {
            // aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff
            17 => {
                let sep = b[2];
                if sep != b':' && sep != b'-' {
                    return Err(err());
                }
                for (i, octet) in out.iter_mut().enumerate() {
                    let at = i * 3;
                    if i > 0 && b[at - 1] != sep {
                        return Err(err());
                    }
                    *octet = hex(b[at]).ok_or_else(err)? << 4 | hex(b[at + 1]).ok_or_else(err)?;
                }
            }
            // aabb.ccdd.eeff
            14 => {
                if b[4] != b'.' || b[9] != b'.' {
                    return Err(err());
                }
                let digits: Vec<u8> = b.iter().copied().filter(|c| *c != b'.').collect();
                if digits.len() != 12 {
                    return Err(err());
                }
                for (i, octet) in out.iter_mut().enumerate() {
                    *octet = hex(digits[2 * i]).ok_or_else(err)? << 4 | hex(digits[2 * i + 1]).ok_or_else(err)?;
                }
            }
            _ => return Err(err()),
        }
        Ok(Self(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A hardware address of any length Go's `net.ParseMAC` accepts: 6 (Ethernet), 8 (EUI-64) or
/// 20 octets (IP over InfiniBand).
///
/// Results carry interface addresses of any of these kinds, so result types use this; use
/// [`HardwareAddr::as_mac`] for the Ethernet case.
///
/// ```
/// use cni_types::HardwareAddr;
/// let a: HardwareAddr = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01".parse().unwrap();
/// assert_eq!(a.octets().len(), 20);
/// assert!(a.as_mac().is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HardwareAddr {
    len: u8,
    bytes: [u8; 20],
}

impl HardwareAddr {
    /// The octets.
    pub fn octets(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The Ethernet address, when this is one.
    pub fn as_mac(&self) -> Option<MacAddr> {
        <[u8; 6]>::try_from(self.octets()).ok().map(MacAddr)
    }
}

impl From<MacAddr> for HardwareAddr {
    fn from(mac: MacAddr) -> Self {
        let mut bytes = [0u8; 20];
        bytes[..6].copy_from_slice(&mac.0);
        Self { len: 6, bytes }
    }
}

impl fmt::Display for HardwareAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.octets().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HardwareAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HardwareAddr({self})")
    }
}

impl FromStr for HardwareAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_owned());
        let b = s.as_bytes();
        let mut digits = Vec::with_capacity(40);
        if b.len() >= 14 && b.get(4) == Some(&b'.') {
            // xxxx.xxxx.xxxx form: groups of four hex digits.
            for (i, chunk) in b.split(|c| *c == b'.').enumerate() {
                if chunk.len() != 4 || i >= 10 {
                    return Err(err());
                }
                digits.extend_from_slice(chunk);
            }
        } else if b.len() >= 17 && (b[2] == b':' || b[2] == b'-') {
            let sep = b[2];
            for chunk in b.split(|c| *c == sep) {
                if chunk.len() != 2 {
                    return Err(err());
                }
                digits.extend_from_slice(chunk);
            }
        } else {
            return Err(err());
        }
        let len = digits.len() / 2;
        if !matches!(len, 6 | 8 | 20) {
            return Err(err());
        }
        let mut bytes = [0u8; 20];
        for (i, out) in bytes.iter_mut().take(len).enumerate() {
            *out = hex(digits[2 * i]).ok_or_else(err)? << 4 | hex(digits[2 * i + 1]).ok_or_else(err)?;
        }
        Ok(Self { len: len as u8, bytes })
    }
}

impl Serialize for HardwareAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HardwareAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        for s in ["c2:11:22:33:44:55", "C2-11-22-33-44-55", "c211.2233.4455"] {
            assert_eq!(s.parse::<MacAddr>().unwrap().octets(), [0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]);
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "c2:11:22:33:44",
            "c2:11:22:33:44:5g",
            "c2:11-22:33:44:55",
            "c2112233445566",
            "c2:11:22:33:44:55:66:77",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s}");
        }
    }

    #[test]
    fn hardware_addr_lengths() {
        let eui: HardwareAddr = "02:00:5E:10:00:00:00:01".parse().unwrap();
        assert_eq!(eui.to_string(), "02:00:5e:10:00:00:00:01");
        let mac: HardwareAddr = "c211.2233.4455".parse().unwrap();
        assert_eq!(mac.as_mac().unwrap().to_string(), "c2:11:22:33:44:55");
        for bad in ["", "02:00:5e:10:00:00:00", "02:00:5e:10:00:00:00:1", "zz:00:5e:10:00:00:00:01"] {
            assert!(bad.parse::<HardwareAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_is_lower_case_string() {
        let mac: MacAddr = serde_json::from_str("\"AA:BB:CC:DD:EE:0F\"").unwrap();
        assert_eq!(serde_json::to_string(&mac).unwrap(), "\"aa:bb:cc:dd:ee:0f\"");
    }
}
