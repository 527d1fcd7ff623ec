//! Routes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Net, NetResult, Route, RouteScope, TABLE_MAIN};

impl Net {
    /// Starts building a route to `dst` (truncated to its network). Finish with
    /// [`RouteRequest::add`] or [`RouteRequest::delete`].
    pub fn route(&self, dst: IpNet) -> RouteRequest<'_> {
        RouteRequest { net: self, route: Route::new(dst), scope_set: false }
    }

    /// Adds a fully specified route.
    pub async fn add_route(&self, route: &Route) -> NetResult<()> {
        let mut route = route.clone();
        route.dst = route.dst.trunc();
        self.backend.add_route(&route).await
    }

    /// The routes of the main table (IPv4 and IPv6), like `ip route; ip -6 route`.
    pub async fn routes(&self) -> NetResult<Vec<Route>> {
        self.backend.routes(TABLE_MAIN).await
    }

    /// The routes of `table`.
    pub async fn routes_in_table(&self, table: u32) -> NetResult<Vec<Route>> {
        self.backend.routes(table).await
    }

    /// The routes of every table (`ip route show table all`, unicast routes only), IPv4 first.
    pub async fn all_routes(&self) -> NetResult<Vec<Route>> {
        self.backend.all_routes().await
    }

    /// The main-table routes whose output link is `index` (`ip route show dev <link>`), both
    /// families.
    pub async fn routes_of_link(&self, index: u32) -> NetResult<Vec<Route>> {
        let mut routes = self.routes().await?;
        routes.retain(|r| r.oif == Some(index));
        Ok(routes)
    }

    /// Adds `route`, or replaces the route of the same table, destination and metric
    /// (`ip route replace`).
    pub async fn replace_route(&self, route: &Route) -> NetResult<()> {
        let mut route = route.clone();
        route.dst = route.dst.trunc();
        self.backend.replace_route(&route).await
    }

    /// Moves `route` (as listed) to `table`: replaces it into `table`, then deletes it from its
    /// own, as Go's sbr and vrf plugins do. Returns the route as added. If the delete fails,
    /// the copy is removed again and the delete's error returned.
    pub async fn move_route(&self, route: &Route, table: u32) -> NetResult<Route> {
        let mut moved = route.clone();
        moved.dst = moved.dst.trunc();
        moved.table = table;
        if moved.table == route.table {
            return Ok(moved);
        }
        self.backend.replace_route(&moved).await?;
        if let Err(e) = self.delete_route(route).await {
            // Best effort: the caller gets the delete's error, which says why.
            let _ = self.backend.delete_route(&moved).await;
            return Err(e);
        }
        Ok(moved)
    }

    /// Deletes the route matching `route`: destination and table always, gateway, output link
    /// and metric when set (non-zero metric).
    pub async fn delete_route(&self, route: &Route) -> NetResult<()> {
        let mut route = route.clone();
        route.dst = route.dst.trunc();
        self.backend.delete_route(&route).await
    }
}

/// Builder for adding or deleting a route; see [`Net::route`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.add().await` or `.delete().await`"]
pub struct RouteRequest<'a> {
    net: &'a Net,
    route: Route,
    scope_set: bool,
}

impl RouteRequest<'_> {
    /// Next-hop gateway (must be reachable through a connected route).
    pub fn gateway(mut self, gateway: IpAddr) -> Self {
        self.route.gateway = Some(gateway);
        self
    }

    /// Output link.
    pub fn dev(mut self, index: u32) -> Self {
        self.route.oif = Some(index);
        self
    }

    /// Metric (priority).
    pub fn metric(mut self, metric: u32) -> Self {
        self.route.metric = metric;
        self
    }

    /// Routing table (default [`TABLE_MAIN`]).
    pub fn table(mut self, table: u32) -> Self {
        self.route.table = table;
        self
    }

    /// Scope. Without it, an IPv4 route with no gateway gets [`RouteScope::Link`] (as with
    /// `ip route add`) and every other route [`RouteScope::Universe`]. IPv6 routes always have
    /// universe scope.
    pub fn scope(mut self, scope: RouteScope) -> Self {
        self.route.scope = scope;
        self.scope_set = true;
        self
    }

    /// Preferred source address.
    pub fn source(mut self, source: IpAddr) -> Self {
        self.route.source = Some(source);
        self
    }

    /// Path MTU metric.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.route.mtu = Some(mtu);
        self
    }

    /// Advertised MSS metric.
    pub fn advmss(mut self, advmss: u32) -> Self {
        self.route.advmss = Some(advmss);
        self
    }

    /// The route this request describes (with the default scope applied).
    pub fn build(mut self) -> Route {
        self.apply_default_scope();
        self.route
    }

    fn apply_default_scope(&mut self) {
        if !self.scope_set {
            self.route.scope = match (self.route.dst, self.route.gateway) {
                (IpNet::V4(_), None) => RouteScope::Link,
                _ => RouteScope::Universe,
            };
        }
        if matches!(self.route.dst, IpNet::V6(_)) {
            self.route.scope = RouteScope::Universe;
        }
    }

    /// Adds the route. A route that already exists gives [`NetErrorKind::Exists`](super::NetErrorKind::Exists); an unreachable
    /// gateway or a down output link gives [`NetErrorKind::Unreachable`](super::NetErrorKind::Unreachable).
    pub async fn add(mut self) -> NetResult<()> {
        self.apply_default_scope();
        self.net.backend.add_route(&self.route).await
    }

    /// Adds the route or replaces the one of the same table, destination and metric (see
    /// [`Net::replace_route`]).
    pub async fn replace(mut self) -> NetResult<()> {
        self.apply_default_scope();
        self.net.backend.replace_route(&self.route).await
    }

    /// Deletes the matching route (see [`Net::delete_route`]).
    pub async fn delete(self) -> NetResult<()> {
        self.net.backend.delete_route(&self.route).await
    }
}
