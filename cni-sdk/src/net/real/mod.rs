//! The kernel backend: rtnetlink over a socket created inside the target namespace.
//!
//! rtnetlink's types stay inside this module; nothing here is public API. One file per concern
//! builds and parses its messages (`link`, `address`, `route`, `rule`, `tc`); `tun` creates
//! tun/tap devices through `/dev/net/tun`, `sysfs` answers device lookups and `sysctl` reads
//! `/proc/sys`.

use std::any::Any;
use std::fmt;
use std::path::Path;

use ipnet::IpNet;

use super::backend::{Backend, LinkChange, NewLink};
use super::lookup::{BusDevice, DeviceBus};
use super::rule::RuleSpec;
use super::tc::{FilterDelete, FilterSpec, QdiscSpec};
use super::{Address, Filter, IpFamily, Link, Net, NetError, NetErrorKind, NetResult, Qdisc, Route, Rule, TcHandle};
use crate::netns::NetNs;

mod address;
mod link;
mod route;
mod rule;
mod sysctl;
mod sysfs;
mod tc;
mod tun;

/// Netlink handle bound to one namespace.
pub(crate) struct RealBackend {
    ns: NetNs,
    handle: rtnetlink::Handle,
}

impl fmt::Debug for RealBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealBackend").field("netns", &self.ns.path()).finish_non_exhaustive()
    }
}

fn nl_err(e: rtnetlink::Error, context: impl fmt::Display) -> NetError {
    match &e {
        rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => {
            NetError::from_errno(msg.raw_code().abs(), context)
        }
        _ => {
            let e = NlSource(e);
            NetError::new(NetErrorKind::Other, format!("{context}: {e}")).with_source(e)
        }
    }
}

/// An rtnetlink error as the source of a [`NetError`]: rtnetlink's text, except that an
/// unexpected message is named by its header instead of dumped whole. rtnetlink's own `Display`
/// and `Debug` format the message with `Debug`, which links the `Debug` of every netlink message
/// type (about 130 KiB) into each plugin binary for an error that does not happen in practice.
struct NlSource(rtnetlink::Error);

impl fmt::Display for NlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use rtnetlink::Error as E;
        match &self.0 {
            E::UnexpectedMessage(msg) => write!(
                f,
                "Received an unexpected message (type {}, flags {:#x}, sequence {})",
                msg.header.message_type, msg.header.flags, msg.header.sequence_number
            ),
            E::NetlinkError(err) => write!(f, "Received a netlink error message {err}"),
            E::RequestFailed => f.write_str("A netlink request failed"),
            E::NamespaceError(err) => write!(f, "Namespace error {err}"),
            E::InvalidHardwareAddress(addr) => write!(
                f,
                "Received a link message (RTM_GETLINK, RTM_NEWLINK, RTM_SETLINK or RTMGETLINK) with an invalid \
                 hardware address attribute: {addr:?}."
            ),
            E::InvalidIp(addr) => write!(f, "Failed to parse an IP address: {addr:?}"),
            E::InvalidAddress(ip, mask) => {
                write!(f, "Failed to parse a network address (IP and mask): {ip:?}/{mask:?}")
            }
            E::InvalidNla(nla) => write!(f, "Attempting to set and Invalid NLA: {nla}"),
        }
    }
}

impl fmt::Debug for NlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NlSource").field(&format_args!("{self}")).finish()
    }
}

impl std::error::Error for NlSource {}

fn io_err(e: std::io::Error, context: impl fmt::Display) -> NetError {
    match e.raw_os_error() {
        Some(errno) => NetError::from_errno(errno, context),
        None => NetError::new(NetErrorKind::Other, format!("{context}: {e}")).with_source(e),
    }
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == errno)
}

fn netns_of(target: &Net) -> NetResult<NetNs> {
    target.netns().cloned().ok_or_else(|| {
        NetError::new(
            NetErrorKind::InvalidArgument,
            "the target namespace handle is not a kernel namespace (fake and real backends cannot be mixed)",
        )
    })
}

impl RealBackend {
    pub(crate) async fn open(ns: &NetNs) -> NetResult<Self> {
        let rt = tokio::runtime::Handle::try_current().map_err(|e| {
            NetError::new(NetErrorKind::Other, "Net::open must be called from within a tokio runtime").with_source(e)
        })?;
        // Create the socket inside the namespace (it stays bound to it) on the namespace's
        // worker, registering it with the caller's runtime.
        let created = ns
            .run_blocking(move || {
                let _enter = rt.enter();
                rtnetlink::new_connection()
            })
            .await?;
        Self::connected(ns, created)
    }

    /// A backend for the calling thread's own namespace, `ns` having just been opened from
    /// `/proc/thread-self/ns/net` on this thread: the socket is created right here, since this
    /// thread is in that namespace (no worker needed).
    pub(crate) fn open_here(ns: &NetNs) -> NetResult<Self> {
        tokio::runtime::Handle::try_current().map_err(|e| {
            NetError::new(NetErrorKind::Other, "Net::host must be called from within a tokio runtime").with_source(e)
        })?;
        Self::connected(ns, rtnetlink::new_connection())
    }

    /// Spawns the connection task of a new socket on the caller's runtime.
    fn connected<C, M>(ns: &NetNs, created: std::io::Result<(C, rtnetlink::Handle, M)>) -> NetResult<Self>
    where
        C: std::future::Future<Output = ()> + Send + 'static,
    {
        let (connection, handle, _messages) = created.map_err(|e| io_err(e, "create netlink socket"))?;
        tokio::spawn(connection);
        Ok(Self { ns: ns.clone(), handle })
    }
}

impl Backend for RealBackend {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn netns(&self) -> Option<&NetNs> {
        Some(&self.ns)
    }

    async fn links(&self) -> NetResult<Vec<Link>> {
        self.list_links().await
    }

    async fn link_by_name(&self, name: &str) -> NetResult<Option<Link>> {
        self.get_link_by_name(name).await
    }

    async fn link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        self.get_link_by_index(index).await
    }

    async fn create_link(&self, spec: &NewLink) -> NetResult<()> {
        match spec {
            NewLink::Tun { common, spec } => {
                let ns = match &common.netns {
                    Some(target) => netns_of(target)?,
                    None => self.ns.clone(),
                };
                tun::create(&ns, &common.name, spec).await
            }
            _ => self.create_netlink_link(spec).await,
        }
    }

    async fn change_link(&self, index: u32, change: &LinkChange) -> NetResult<()> {
        self.apply_change(index, change).await
    }

    async fn move_link(&self, index: u32, target: &Net, new_name: Option<&str>) -> NetResult<()> {
        self.move_to(index, target, new_name).await
    }

    async fn delete_link(&self, index: u32) -> NetResult<()> {
        self.handle.link().del(index).execute().await.map_err(|e| nl_err(e, format_args!("delete link #{index}")))
    }

    async fn bus_device(&self, bus: DeviceBus, id: &str) -> NetResult<Option<BusDevice>> {
        let (bus_owned, id_owned) = (bus, id.to_owned());
        sysfs::read(&self.ns, move || sysfs::bus_device(bus_owned, &id_owned)).await
    }

    async fn kernel_path_interfaces(&self, path: &Path) -> NetResult<Option<Vec<String>>> {
        let path = path.to_owned();
        sysfs::read(&self.ns, move || sysfs::interfaces_at(&path)).await
    }

    async fn add_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.add_addr(index, addr).await
    }

    async fn addresses(&self, index: Option<u32>) -> NetResult<Vec<Address>> {
        self.list_addrs(index).await
    }

    async fn delete_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.delete_addr(index, addr).await
    }

    async fn add_route(&self, route: &Route) -> NetResult<()> {
        self.add_rt(route, false).await
    }

    async fn routes(&self, table: u32) -> NetResult<Vec<Route>> {
        self.list_routes(Some(table)).await
    }

    async fn delete_route(&self, route: &Route) -> NetResult<()> {
        self.delete_rt(route).await
    }

    async fn replace_route(&self, route: &Route) -> NetResult<()> {
        self.add_rt(route, true).await
    }

    async fn all_routes(&self) -> NetResult<Vec<Route>> {
        self.list_routes(None).await
    }

    async fn rules(&self, family: IpFamily) -> NetResult<Vec<Rule>> {
        self.list_rules(family).await
    }

    async fn add_rule(&self, spec: &RuleSpec) -> NetResult<()> {
        self.rule_add(spec).await
    }

    async fn delete_rule(&self, spec: &RuleSpec) -> NetResult<()> {
        self.rule_delete(spec).await
    }

    async fn qdiscs(&self, index: Option<u32>) -> NetResult<Vec<Qdisc>> {
        self.list_qdiscs(index).await
    }

    async fn change_qdisc(&self, spec: &QdiscSpec) -> NetResult<()> {
        self.qdisc_change(spec).await
    }

    async fn filters(&self, index: u32, parent: TcHandle) -> NetResult<Vec<Filter>> {
        self.list_filters(index, parent).await
    }

    async fn add_filter(&self, spec: &FilterSpec) -> NetResult<()> {
        self.filter_add(spec).await
    }

    async fn delete_filter(&self, del: &FilterDelete) -> NetResult<()> {
        self.filter_delete(del).await
    }

    async fn sysctl_get(&self, key: &str) -> NetResult<String> {
        sysctl::get(&self.ns, key).await
    }

    async fn sysctl_set(&self, key: &str, value: &str) -> NetResult<()> {
        sysctl::set(&self.ns, key, value).await
    }
}
