//! Routes: `RTM_NEWROUTE` / `RTM_GETROUTE` / `RTM_DELROUTE`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol as NlProto,
    RouteScope as NlScope, RouteType, RouteVia,
};

use super::{RealBackend, nl_err};
use crate::net::{NetError, NetErrorKind, NetResult, Route, RouteProtocol, RouteScope};

fn invalid<E: fmt::Display>(e: E) -> NetError {
    NetError::new(NetErrorKind::InvalidArgument, format!("invalid route: {e}"))
}

fn route_message(route: &Route, for_delete: bool) -> NetResult<RouteMessage> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.dst.addr(), route.dst.prefix_len())
        .map_err(invalid)?;
    if let Some(gw) = route.gateway {
        b = b.gateway(gw).map_err(invalid)?;
    }
    if let Some(src) = route.source.filter(|_| !for_delete) {
        b = b.pref_source(src).map_err(invalid)?;
    }
    if let Some(oif) = route.oif {
        b = b.output_interface(oif);
    }
    if route.metric != 0 {
        b = b.priority(route.metric);
    }
    b = b.table_id(route.table);
    let mut msg = b.build();
    if for_delete {
        msg.header.scope = NlScope::NoWhere;
        msg.header.protocol = NlProto::Unspec;
        msg.header.kind = RouteType::Unspec;
    } else {
        msg.header.scope = match route.scope {
            RouteScope::Universe => NlScope::Universe,
            RouteScope::Link => NlScope::Link,
            RouteScope::Host => NlScope::Host,
            RouteScope::Other(v) => NlScope::from(v),
        };
        msg.header.protocol = match route.protocol {
            RouteProtocol::Kernel => NlProto::Kernel,
            RouteProtocol::Boot => NlProto::Boot,
            RouteProtocol::Static => NlProto::Static,
            RouteProtocol::Other(v) => NlProto::from(v),
        };
        let mut metrics = Vec::new();
        if let Some(mtu) = route.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = route.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if !metrics.is_empty() {
            msg.attributes.push(RouteAttribute::Metrics(metrics));
        }
    }
    Ok(msg)
}

fn route_ip(addr: RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(a)),
        _ => None,
    }
}

fn parse_route(msg: RouteMessage) -> Option<(u32, Route)> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut dst = None;
    let mut route = Route::new(IpNet::default());
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = t,
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
            RouteAttribute::Via(RouteVia::Inet6(a)) => route.gateway = Some(IpAddr::V6(a)),
            RouteAttribute::Via(RouteVia::Inet(a)) => route.gateway = Some(IpAddr::V4(a)),
            RouteAttribute::Oif(i) => route.oif = Some(i),
            RouteAttribute::Priority(p) => route.metric = p,
            RouteAttribute::PrefSource(a) => route.source = route_ip(a),
            RouteAttribute::Metrics(metrics) => {
                for m in metrics {
                    match m {
                        RouteMetric::Mtu(v) => route.mtu = Some(v),
                        RouteMetric::Advmss(v) => route.advmss = Some(v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let dst = dst.unwrap_or(match msg.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    route.dst = IpNet::new(dst, msg.header.destination_prefix_length).ok()?.trunc();
    route.table = table;
    route.scope = match msg.header.scope {
        NlScope::Universe => RouteScope::Universe,
        NlScope::Link => RouteScope::Link,
        NlScope::Host => RouteScope::Host,
        other => RouteScope::Other(u8::from(other)),
    };
    route.protocol = match msg.header.protocol {
        NlProto::Kernel => RouteProtocol::Kernel,
        NlProto::Boot => RouteProtocol::Boot,
        NlProto::Static => RouteProtocol::Static,
        other => RouteProtocol::Other(u8::from(other)),
    };
    Some((table, route))
}

impl RealBackend {
    pub(super) async fn add_rt(&self, route: &Route, replace: bool) -> NetResult<()> {
        let msg = route_message(route, false)?;
        let what = format!("{} route {}", if replace { "replace" } else { "add" }, route.dst);
        let req = self.handle.route().add(msg);
        let req = if replace { req.replace() } else { req };
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = nl_err(e, what);
                // IPv4 reports an unreachable gateway as EINVAL ("Nexthop has invalid gateway").
                if route.gateway.is_some() && err.errno() == Some(libc::EINVAL) {
                    Err(err.with_kind(NetErrorKind::Unreachable))
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The unicast routes of `table`, or of every table.
    pub(super) async fn list_routes(&self, table: Option<u32>) -> NetResult<Vec<Route>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut query = RouteMessage::default();
            query.header.address_family = family;
            query.header.table = RouteHeader::RT_TABLE_UNSPEC;
            let msgs: Vec<RouteMessage> =
                self.handle.route().get(query).execute().try_collect().await.map_err(|e| nl_err(e, "list routes"))?;
            out.extend(
                msgs.into_iter().filter_map(parse_route).filter(|(t, _)| table.is_none_or(|x| *t == x)).map(|(_, r)| r),
            );
        }
        Ok(out)
    }

    pub(super) async fn delete_rt(&self, route: &Route) -> NetResult<()> {
        let msg = route_message(route, true)?;
        self.handle.route().del(msg).execute().await.map_err(|e| nl_err(e, format_args!("delete route {}", route.dst)))
    }
}
