//! Allocation from one range set: requested addresses, duplicate detection and the round-robin
//! walk of Go's `allocator.IPAllocator` / `RangeIter`.

use std::net::IpAddr;

use cni_sdk::IpConfig;
use ipnet::IpNet;

use super::config::{Range, RangeSet, canonical, next_ip};
use super::store::Store;

/// Allocates from range set `id` (its position in the configuration).
#[derive(Debug)]
pub(crate) struct Allocator<'a> {
    set: &'a RangeSet,
    store: &'a Store,
    id: usize,
}

impl<'a> Allocator<'a> {
    pub(crate) fn new(set: &'a RangeSet, store: &'a Store, id: usize) -> Self {
        Self { set, store, id }
    }

    /// Go's `IPAllocator.Get`.
    pub(crate) fn get(&self, container_id: &str, ifname: &str, requested: Option<IpAddr>) -> Result<IpConfig, String> {
        let found = if let Some(ip) = requested {
            let ip = canonical(ip);
            let r = self.set.range_for(ip)?;
            if ip == r.gateway {
                return Err(format!("requested ip {ip} is subnet's gateway"));
            }
            if !self.store.reserve(container_id, ifname, ip, self.id).map_err(|e| e.to_string())? {
                return Err(format!("requested IP address {ip} is not available in range set {}", self.set));
            }
            Some((ip, r))
        } else {
            for ip in self.store.get_by_id(container_id, ifname) {
                if self.set.contains(ip) {
                    return Err(format!(
                        "{ip} has been allocated to {container_id}, duplicate allocation is not allowed"
                    ));
                }
            }
            let mut iter = self.iter();
            let mut found = None;
            while let Some((ip, r)) = iter.next() {
                if self.store.reserve(container_id, ifname, ip, self.id).map_err(|e| e.to_string())? {
                    found = Some((ip, r));
                    break;
                }
            }
            found
        };
        let Some((ip, r)) = found else {
            return Err(format!("no IP addresses available in range set: {}", self.set));
        };
        let address = IpNet::new(ip, r.subnet.prefix_len()).expect("prefix of a valid subnet");
        Ok(IpConfig { address, gateway: Some(r.gateway), interface: None })
    }

    /// Go's `GetIter`: continue after the last reserved address when it is in this set.
    fn iter(&self) -> RangeIter<'a> {
        let ranges = &self.set.0;
        match self
            .store
            .last_reserved_ip(self.id)
            .and_then(|last| ranges.iter().position(|r| r.contains(last)).map(|idx| (idx, last)))
        {
            Some((idx, last)) => RangeIter { ranges, idx, cur: Some(last), start: None },
            None => RangeIter { ranges, idx: 0, cur: None, start: Some(ranges[0].start) },
        }
    }
}

/// Go's `RangeIter`: every address of the set once, skipping gateways, wrapping around.
#[derive(Debug)]
struct RangeIter<'a> {
    ranges: &'a [Range],
    idx: usize,
    cur: Option<IpAddr>,
    start: Option<IpAddr>,
}

impl<'a> RangeIter<'a> {
    fn next(&mut self) -> Option<(IpAddr, &'a Range)> {
        loop {
            let mut r = &self.ranges[self.idx];
            let cur = match self.cur {
                None => {
                    self.cur = Some(r.start);
                    self.start = Some(r.start);
                    if r.start == r.gateway {
                        continue;
                    }
                    return Some((r.start, r));
                }
                Some(cur) => cur,
            };
            let cur = if cur == r.end {
                self.idx = (self.idx + 1) % self.ranges.len();
                r = &self.ranges[self.idx];
                r.start
            } else {
                next_ip(cur)
            };
            self.cur = Some(cur);
            match self.start {
                None => self.start = Some(cur),
                Some(start) if start == cur => return None,
                Some(_) => {}
            }
            if cur == r.gateway {
                continue;
            }
            return Some((cur, r));
        }
    }
}

#[cfg(test)]
mod tests {
    use cni_sdk::types::IpRange;

    use super::*;

    fn set(ranges: &[(&str, Option<&str>, Option<&str>)]) -> RangeSet {
        let raw: Vec<IpRange> = ranges
            .iter()
            .map(|(s, a, b)| IpRange {
                subnet: s.parse().unwrap(),
                range_start: a.map(|x| x.parse().unwrap()),
                range_end: b.map(|x| x.parse().unwrap()),
                gateway: None,
            })
            .collect();
        RangeSet::canonicalize(&raw).unwrap()
    }

    fn addr(c: &IpConfig) -> String {
        c.address.addr().to_string()
    }

    #[test]
    fn round_robin_skips_gateway_and_wraps() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        let s = set(&[("10.203.0.0/29", None, None)]); // .1 gateway, .2-.6 usable
        let a = Allocator::new(&s, &store, 0);
        let got: Vec<String> = (0..5).map(|i| addr(&a.get(&format!("c{i}"), "eth0", None).unwrap())).collect();
        assert_eq!(got, ["10.203.0.2", "10.203.0.3", "10.203.0.4", "10.203.0.5", "10.203.0.6"]);
        assert_eq!(
            a.get("c9", "eth0", None).unwrap_err(),
            "no IP addresses available in range set: 10.203.0.1-10.203.0.6"
        );
        store.release_by_id("c1", "eth0").unwrap();
        // After the last one the walk wraps and finds the freed .3.
        assert_eq!(addr(&a.get("c9", "eth0", None).unwrap()), "10.203.0.3");
        assert_eq!(
            a.get("c9", "eth0", None).unwrap_err(),
            "10.203.0.3 has been allocated to c9, duplicate allocation is not allowed"
        );
        // Same container, other interface: allowed (but the range is full).
        assert!(a.get("c9", "eth1", None).unwrap_err().starts_with("no IP addresses available"));
    }

    #[test]
    fn continues_across_ranges_of_a_set() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        let s = set(&[
            ("10.203.1.0/24", Some("10.203.1.10"), Some("10.203.1.11")),
            ("10.203.2.0/24", Some("10.203.2.1"), Some("10.203.2.2")),
        ]);
        let a = Allocator::new(&s, &store, 3);
        let got: Vec<String> = (0..3).map(|i| addr(&a.get(&format!("c{i}"), "eth0", None).unwrap())).collect();
        // 10.203.2.1 is the second range's gateway.
        assert_eq!(got, ["10.203.1.10", "10.203.1.11", "10.203.2.2"]);
        assert_eq!(store.last_reserved_ip(3).unwrap().to_string(), "10.203.2.2");
        let c = a.get("c4", "eth0", None).unwrap_err();
        assert_eq!(c, "no IP addresses available in range set: 10.203.1.10-10.203.1.11,10.203.2.1-10.203.2.2");
    }

    #[test]
    fn last_reserved_outside_the_set_restarts_at_the_beginning() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        std::fs::write(tmp.path().join("n/last_reserved_ip.0"), "10.99.0.7").unwrap();
        let s = set(&[("10.203.0.0/24", None, None)]);
        let a = Allocator::new(&s, &store, 0);
        assert_eq!(addr(&a.get("c", "eth0", None).unwrap()), "10.203.0.2");
        std::fs::write(tmp.path().join("n/last_reserved_ip.0"), "10.203.0.100").unwrap();
        assert_eq!(addr(&a.get("d", "eth0", None).unwrap()), "10.203.0.101");
    }

    #[test]
    fn requested_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        let s = set(&[("10.203.0.0/24", Some("10.203.0.10"), Some("10.203.0.20"))]);
        let a = Allocator::new(&s, &store, 0);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let c = a.get("c", "eth0", ip("10.203.0.15")).unwrap();
        assert_eq!(c.address.to_string(), "10.203.0.15/24");
        assert_eq!(c.gateway.unwrap().to_string(), "10.203.0.1");
        assert_eq!(
            a.get("d", "eth0", ip("10.203.0.15")).unwrap_err(),
            "requested IP address 10.203.0.15 is not available in range set 10.203.0.10-10.203.0.20"
        );
        assert_eq!(
            a.get("d", "eth0", ip("10.203.0.30")).unwrap_err(),
            "10.203.0.30 not in range set 10.203.0.10-10.203.0.20"
        );
        let gw = set(&[("10.203.0.0/24", None, None)]);
        assert_eq!(
            Allocator::new(&gw, &store, 0).get("d", "eth0", ip("10.203.0.1")).unwrap_err(),
            "requested ip 10.203.0.1 is subnet's gateway"
        );
        // A requested address does not count as a duplicate.
        assert!(a.get("c", "eth0", ip("10.203.0.16")).is_ok());
    }

    #[test]
    fn ipv6() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        let s = set(&[("fd00:203::/64", Some("fd00:203::fffe"), Some("fd00:203::1:0"))]);
        let a = Allocator::new(&s, &store, 0);
        let got: Vec<String> = (0..3).map(|i| addr(&a.get(&format!("c{i}"), "eth0", None).unwrap())).collect();
        assert_eq!(got, ["fd00:203::fffe", "fd00:203::ffff", "fd00:203::1:0"]);
        assert!(tmp.path().join("n/fd00:203::ffff").is_file());
    }
}
