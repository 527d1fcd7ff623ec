//! Allocation from one range set: requested addresses, duplicate detection and the round-robin
//! walk of Go's `allocator.IPAllocator` / `RangeIter`, which skips taken addresses through the
//! store's index instead of probing them one by one.

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

/// A stretch `lo..=hi` of one range, walked in order.
#[derive(Debug)]
struct Segment<'a> {
    range: &'a Range,
    lo: IpAddr,
    hi: IpAddr,
}

impl<'a> Allocator<'a> {
    pub(crate) fn new(set: &'a RangeSet, store: &'a Store, id: usize) -> Self {
        Self { set, store, id }
    }

    /// Go's `IPAllocator.Get`.
    pub(crate) fn get(&self, container_id: &str, ifname: &str, requested: Option<IpAddr>) -> Result<IpConfig, String> {
        let err = |e: std::io::Error| e.to_string();
        self.store.warn_garbage().map_err(err)?;
        let found = if let Some(ip) = requested {
            let ip = canonical(ip);
            let r = self.set.range_for(ip)?;
            if ip == r.gateway {
                return Err(format!("requested ip {ip} is subnet's gateway"));
            }
            if !self.store.reserve(container_id, ifname, ip, self.id).map_err(err)? {
                return Err(format!("requested IP address {ip} is not available in range set {}", self.set));
            }
            Some((ip, r))
        } else {
            for ip in self.store.get_by_id(container_id, ifname).map_err(err)? {
                if self.set.contains(ip) {
                    return Err(format!(
                        "{ip} has been allocated to {container_id}, duplicate allocation is not allowed"
                    ));
                }
            }
            self.walk(container_id, ifname).map_err(err)?
        };
        let Some((ip, r)) = found else {
            return Err(format!("no IP addresses available in range set: {}", self.set));
        };
        let address = IpNet::new(ip, r.subnet.prefix_len()).expect("prefix of a valid subnet");
        Ok(IpConfig { address, gateway: Some(r.gateway), interface: None })
    }

    /// Reserves the first free address in the order of Go's `RangeIter` (see [`Self::segments`]).
    fn walk(&self, container_id: &str, ifname: &str) -> std::io::Result<Option<(IpAddr, &'a Range)>> {
        for seg in self.segments() {
            let mut from = seg.lo;
            while let Some(ip) = self.store.first_free(from, seg.hi)? {
                if ip != seg.range.gateway && self.store.reserve(container_id, ifname, ip, self.id)? {
                    return Ok(Some((ip, seg.range)));
                }
                if ip == seg.hi {
                    break;
                }
                from = next_ip(ip);
            }
        }
        Ok(None)
    }

    /// The set's addresses in the order Go's `RangeIter` visits them, as stretches: from the
    /// address after `last_reserved_ip.<id>` (when it is in the set; else from the first
    /// range's start) to the end of its range, the following ranges wrapping around, and the
    /// first part of the starting range. Every address comes once; gateways are skipped by the
    /// caller.
    fn segments(&self) -> Vec<Segment<'a>> {
        let ranges = &self.set.0;
        let (first, start) = match self
            .store
            .last_reserved_ip(self.id)
            .and_then(|last| ranges.iter().position(|r| r.contains(last)).map(|idx| (idx, last)))
        {
            Some((idx, last)) if last == ranges[idx].end => {
                let next = (idx + 1) % ranges.len();
                (next, ranges[next].start)
            }
            Some((idx, last)) => (idx, next_ip(last)),
            None => (0, ranges[0].start),
        };
        let mut out = Vec::with_capacity(ranges.len() + 1);
        let r = &ranges[first];
        out.push(Segment { range: r, lo: start, hi: r.end });
        for i in 1..ranges.len() {
            let r = &ranges[(first + i) % ranges.len()];
            out.push(Segment { range: r, lo: r.start, hi: r.end });
        }
        if start != r.start {
            out.push(Segment { range: r, lo: r.start, hi: prev_ip(start) });
        }
        out
    }
}

/// The previous address (callers never pass the first address of a family).
fn prev_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_sub(1).into()),
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_sub(1).into()),
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

    /// Go's `RangeIter`, transcribed step by step: the reference the index-driven walk is
    /// compared with.
    #[derive(Debug)]
    struct RangeIter<'a> {
        ranges: &'a [Range],
        idx: usize,
        cur: Option<IpAddr>,
        start: Option<IpAddr>,
    }

    impl<'a> RangeIter<'a> {
        fn new(set: &'a RangeSet, last: Option<IpAddr>) -> Self {
            let ranges = &set.0;
            match last.and_then(|last| ranges.iter().position(|r| r.contains(last)).map(|idx| (idx, last))) {
                Some((idx, last)) => RangeIter { ranges, idx, cur: Some(last), start: None },
                None => RangeIter { ranges, idx: 0, cur: None, start: Some(ranges[0].start) },
            }
        }

        fn next(&mut self) -> Option<IpAddr> {
            loop {
                let mut r = &self.ranges[self.idx];
                let cur = match self.cur {
                    None => {
                        self.cur = Some(r.start);
                        self.start = Some(r.start);
                        if r.start == r.gateway {
                            continue;
                        }
                        return Some(r.start);
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
                return Some(cur);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

        /// The index-driven walk reserves the address Go's iterator would reach first, for
        /// any ranges, gateways, cursor and taken addresses.
        #[test]
        fn walk_matches_gos_iterator(
            ranges in proptest::collection::vec((0u8..4, 0u8..40, 0u8..40, proptest::option::of(0u8..64)), 1..4),
            taken in proptest::collection::vec(0u8..255, 0..120),
            last in proptest::option::of(0u8..255),
            last_sub in 0u8..4,
        ) {
            let raw: Vec<IpRange> = ranges
                .iter()
                .enumerate()
                .map(|(i, (_, a, b, gw))| {
                    let sub = i as u8 * 2;
                    let (lo, hi) = (1 + a.min(b), 1 + a.max(b) + 20);
                    IpRange {
                        subnet: format!("10.204.{sub}.0/25").parse().unwrap(),
                        range_start: Some(format!("10.204.{sub}.{lo}").parse().unwrap()),
                        range_end: Some(format!("10.204.{sub}.{hi}").parse().unwrap()),
                        gateway: gw.map(|g| format!("10.204.{sub}.{g}").parse().unwrap()),
                    }
                })
                .collect();
            let set = RangeSet::canonicalize(&raw).unwrap();
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("n");
            std::fs::create_dir(&dir).unwrap();
            let sub = |x: u8| x % 4 % (ranges.len() as u8) * 2;
            let mut taken_ips = std::collections::HashSet::new();
            for t in &taken {
                let ip: IpAddr = format!("10.204.{}.{}", sub(*t), t % 64).parse().unwrap();
                std::fs::write(dir.join(ip.to_string()), "other\r\neth0").unwrap();
                taken_ips.insert(ip);
            }
            let last: Option<IpAddr> = last.map(|l| format!("10.204.{}.{}", last_sub % 4 * 2, l % 70).parse().unwrap());
            if let Some(l) = last {
                std::fs::write(dir.join("last_reserved_ip.0"), l.to_string()).unwrap();
            }
            let mut it = RangeIter::new(&set, last.filter(|l| set.contains(*l)));
            let want = std::iter::from_fn(|| it.next()).find(|ip| !taken_ips.contains(ip));
            let store = Store::open(tmp.path(), "n").unwrap();
            let got = Allocator::new(&set, &store, 0).get("me", "eth0", None).ok().map(|c| c.address.addr());
            proptest::prop_assert_eq!(got, want, "{} last {:?}", set, last);
        }
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
