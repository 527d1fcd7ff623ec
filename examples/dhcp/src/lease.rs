//! A lease as the daemon keeps it: what the server's DHCPACK granted, turned into the CNI result
//! and the renewal times (Go's `commit`, `IPNet`, `Gateway` and `Routes`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use cni_sdk::{CniResult, IpConfig, Route};
use dhcproto::v4::{DhcpOption, Message, OptionCode};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

/// The route scope Go v1.8 gives an option-121 route whose router is 0.0.0.0 (`RT_SCOPE_LINK`).
const SCOPE_LINK: u32 = 253;

/// The lease time assumed when the server sends none (Go since v1.6: 60 minutes).
const DEFAULT_LEASE_SECS: u32 = 3600;

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Lease {
    /// The address with the server's subnet mask (`yiaddr/mask`).
    pub(crate) address: Ipv4Net,
    /// The server identifier (option 54), where renewals and the release go.
    pub(crate) server: Ipv4Addr,
    /// The first router (option 3).
    pub(crate) router: Option<Ipv4Addr>,
    /// The routes for the result.
    pub(crate) routes: Vec<Route>,
    /// Lease time in seconds.
    pub(crate) lease_secs: u32,
    /// When it was granted (seconds since the epoch); renewal (T1), rebinding (T2) and expiry
    /// count from here.
    pub(crate) granted_at: u64,
    /// T1 in seconds after `granted_at`.
    pub(crate) t1_secs: u32,
    /// T2 in seconds after `granted_at`.
    pub(crate) t2_secs: u32,
}

/// Seconds since the epoch: the wall clock read once, advanced by tokio's monotonic clock, so
/// lease timing is immune to wall-clock jumps within a run (and follows a paused clock in
/// tests). Persisted times are in these seconds; a restarted daemon re-reads the wall clock.
pub(crate) fn now_secs() -> u64 {
    static ANCHOR: OnceLock<(tokio::time::Instant, u64)> = OnceLock::new();
    let (at, wall) = *ANCHOR.get_or_init(|| {
        (tokio::time::Instant::now(), SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    });
    wall + tokio::time::Instant::now().saturating_duration_since(at).as_secs()
}

fn u32_opt(ack: &Message, code: OptionCode) -> Option<u32> {
    match ack.opts().get(code) {
        Some(DhcpOption::AddressLeaseTime(v) | DhcpOption::Renewal(v) | DhcpOption::Rebinding(v)) => Some(*v),
        _ => None,
    }
}

/// A contiguous mask as a prefix length.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The classful network of an option-33 destination (Go's `DefaultMask`).
fn classful(dst: Ipv4Addr) -> Option<Ipv4Net> {
    let prefix = match dst.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        192..=223 => 24,
        _ => return None,
    };
    Ipv4Net::new(dst, prefix).ok()
}

impl Lease {
    /// The lease a DHCPACK grants at `now`; `offer_server` is the server identifier of the
    /// offer, for servers that leave it out of the ACK.
    pub(crate) fn from_ack(
        ack: &Message,
        now: u64,
        offer_server: Option<Ipv4Addr>,
        priority: Option<u32>,
    ) -> Result<Self, String> {
        let mask = match ack.opts().get(OptionCode::SubnetMask) {
            Some(DhcpOption::SubnetMask(m)) => *m,
            _ => return Err("DHCP option Subnet Mask not found in DHCPACK".to_owned()),
        };
        let prefix = prefix_of(mask).ok_or_else(|| format!("DHCP server sent a non-contiguous subnet mask {mask}"))?;
        let address = Ipv4Net::new(ack.yiaddr(), prefix).map_err(|e| e.to_string())?;
        let server = match ack.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            _ => offer_server
                .or_else(|| (!ack.siaddr().is_unspecified()).then(|| ack.siaddr()))
                .ok_or_else(|| "DHCP option Server Identifier not found in DHCPACK".to_owned())?,
        };
        let router = match ack.opts().get(OptionCode::Router) {
            Some(DhcpOption::Router(list)) => list.first().copied(),
            _ => None,
        };
        let lease_secs = u32_opt(ack, OptionCode::AddressLeaseTime).unwrap_or(DEFAULT_LEASE_SECS);
        // RFC 2131 4.4.5 defaults: T2 = 87.5 % in the RFC, 85 % in Go; T1 = 50 %.
        let t2_secs = u32_opt(ack, OptionCode::Rebinding)
            .filter(|t2| *t2 <= lease_secs)
            .unwrap_or((u64::from(lease_secs) * 85 / 100) as u32);
        let t1_secs = u32_opt(ack, OptionCode::Renewal).filter(|t1| *t1 <= t2_secs).unwrap_or(lease_secs / 2);

        let mut routes = Vec::new();
        if let Some(DhcpOption::ClasslessStaticRoute(list)) = ack.opts().get(OptionCode::ClasslessStaticRoute)
            && !list.is_empty()
        {
            // RFC 3442: with option 121, option 33 and the router option are ignored.
            for (dst, gw) in list {
                let mut r = Route::new(IpNet::V4(*dst), Some(IpAddr::V4(*gw)));
                if gw.is_unspecified() {
                    r.scope = Some(SCOPE_LINK);
                }
                routes.push(r);
            }
        } else {
            if let Some(DhcpOption::StaticRoutingTable(list)) = ack.opts().get(OptionCode::StaticRoutingTable) {
                for (dst, gw) in list {
                    match classful(*dst) {
                        Some(net) => routes.push(Route::new(IpNet::V4(net), Some(IpAddr::V4(*gw)))),
                        None => tracing::warn!(%dst, "ignoring a static route (option 33) to a class D/E destination"),
                    }
                }
            }
            if let Some(gw) = router {
                routes.push(Route::new("0.0.0.0/0".parse().expect("valid"), Some(IpAddr::V4(gw))));
            }
        }
        if let Some(p) = priority {
            routes.iter_mut().for_each(|r| r.priority = Some(p));
        }
        Ok(Self { address, server, router, routes, lease_secs, granted_at: now, t1_secs, t2_secs })
    }

    /// When to renew (T1), seconds since the epoch.
    pub(crate) fn renew_at(&self) -> u64 {
        self.granted_at + u64::from(self.t1_secs)
    }

    /// When to rebind (T2).
    pub(crate) fn rebind_at(&self) -> u64 {
        self.granted_at + u64::from(self.t2_secs)
    }

    /// When the lease ends.
    pub(crate) fn expires_at(&self) -> u64 {
        self.granted_at + u64::from(self.lease_secs)
    }

    /// What ADD returns: the address with the router as gateway, and the routes.
    pub(crate) fn result(&self) -> CniResult {
        let mut r = CniResult::default();
        r.ips.push(IpConfig { gateway: self.router.map(IpAddr::V4), ..IpConfig::new(IpNet::V4(self.address)) });
        r.routes = self.routes.clone();
        r
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::v4::MessageType;

    use super::*;

    fn ack(opts: Vec<DhcpOption>) -> Message {
        let mut m = Message::default();
        m.set_yiaddr(Ipv4Addr::new(10, 219, 0, 50));
        m.opts_mut().insert(DhcpOption::MessageType(MessageType::Ack));
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    fn basic() -> Vec<DhcpOption> {
        vec![
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 219, 0, 1)),
            DhcpOption::Router(vec![Ipv4Addr::new(10, 219, 0, 1), Ipv4Addr::new(10, 219, 0, 2)]),
            DhcpOption::AddressLeaseTime(600),
        ]
    }

    #[test]
    fn address_gateway_default_route_and_times() {
        let l = Lease::from_ack(&ack(basic()), 1000, None, None).unwrap();
        let r = l.result();
        assert_eq!(r.ips[0].address.to_string(), "10.219.0.50/24");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.219.0.1", "the first router");
        assert_eq!(r.routes.len(), 1);
        assert_eq!(
            (r.routes[0].dst.to_string(), r.routes[0].gw.unwrap().to_string()),
            ("0.0.0.0/0".into(), "10.219.0.1".into())
        );
        assert_eq!((l.renew_at(), l.rebind_at(), l.expires_at()), (1300, 1510, 1600));
    }

    #[test]
    fn t1_t2_from_the_server_when_sane() {
        let mut o = basic();
        o.push(DhcpOption::Renewal(10));
        o.push(DhcpOption::Rebinding(20));
        let l = Lease::from_ack(&ack(o), 0, None, None).unwrap();
        assert_eq!((l.t1_secs, l.t2_secs), (10, 20));
        let mut o = basic();
        o.push(DhcpOption::Renewal(700));
        o.push(DhcpOption::Rebinding(900));
        let l = Lease::from_ack(&ack(o), 0, None, None).unwrap();
        assert_eq!((l.t1_secs, l.t2_secs), (300, 510), "beyond the lease: 50 % and 85 %");
        let mut o = basic();
        o.retain(|x| !matches!(x, DhcpOption::AddressLeaseTime(_)));
        assert_eq!(Lease::from_ack(&ack(o), 0, None, None).unwrap().lease_secs, 3600, "no lease time: 60 min");
    }

    #[test]
    fn classless_routes_replace_static_routes_and_router() {
        let mut o = basic();
        o.push(DhcpOption::StaticRoutingTable(vec![(Ipv4Addr::new(10, 9, 0, 0), Ipv4Addr::new(10, 219, 0, 9))]));
        // Go keeps the destination as sent, with the classful mask (10.9.0.0/8).
        let l = Lease::from_ack(&ack(o.clone()), 0, None, Some(50)).unwrap();
        let routes: Vec<String> = l.routes.iter().map(|r| format!("{} {:?} {:?}", r.dst, r.gw, r.priority)).collect();
        assert_eq!(routes, vec!["10.9.0.0/8 Some(10.219.0.9) Some(50)", "0.0.0.0/0 Some(10.219.0.1) Some(50)"]);
        o.push(DhcpOption::ClasslessStaticRoute(vec![
            ("10.219.99.0/24".parse().unwrap(), Ipv4Addr::new(10, 219, 0, 3)),
            ("10.219.98.0/24".parse().unwrap(), Ipv4Addr::UNSPECIFIED),
        ]));
        let l = Lease::from_ack(&ack(o), 0, None, None).unwrap();
        assert_eq!(l.routes.len(), 2, "no default route with option 121");
        assert_eq!(l.routes[0].scope, None);
        assert_eq!(l.routes[1].scope, Some(SCOPE_LINK), "router 0.0.0.0: an on-link route");
        assert_eq!(l.result().ips[0].gateway.unwrap().to_string(), "10.219.0.1", "the gateway is still reported");
    }

    #[test]
    fn missing_mask_and_server() {
        let mut o = basic();
        o.retain(|x| !matches!(x, DhcpOption::SubnetMask(_)));
        assert_eq!(
            Lease::from_ack(&ack(o), 0, None, None).unwrap_err(),
            "DHCP option Subnet Mask not found in DHCPACK"
        );
        let mut o = basic();
        o.retain(|x| !matches!(x, DhcpOption::ServerIdentifier(_)));
        assert_eq!(
            Lease::from_ack(&ack(o.clone()), 0, Some(Ipv4Addr::new(10, 219, 0, 7)), None).unwrap().server.to_string(),
            "10.219.0.7"
        );
        assert!(Lease::from_ack(&ack(o), 0, None, None).is_err());
        let mut o = basic();
        o[0] = DhcpOption::SubnetMask(Ipv4Addr::new(255, 0, 255, 0));
        assert!(Lease::from_ack(&ack(o), 0, None, None).unwrap_err().contains("non-contiguous"));
    }
}
