//! The daemon's side: the plugin the daemon runs for each forwarded request (Go's `DHCP.Allocate`
//! and `DHCP.Release`, plus CHECK without allocating, STATUS and GC), the lease table, and the
//! background maintenance of every lease (renew at T1, rebind at T2, interface down at expiry).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use cni_sdk::net::{Link, Net};
use cni_sdk::{CniResult, Context, Error, Plugin, Result, Services};
use ipnet::IpNet;

use crate::client::{Backoff, Client, Failure, GiveUp, with_retries};
use crate::config::{self, ClientOptions, client_id};
use crate::flags::DaemonFlags;
use crate::lease::{Lease, now_secs};
use crate::port::{Port, Ports};
use crate::store::{LeaseRecord, Store};

fn plain(msg: impl Into<String>) -> Error {
    Error::internal(msg)
}

/// Why an interface could not be reached.
enum Attach {
    /// The namespace or the interface is gone (or the path now names another namespace).
    Gone(String),
    /// Anything else.
    Failed(String),
}

impl Attach {
    fn message(self) -> String {
        match self {
            Self::Gone(m) | Self::Failed(m) => m,
        }
    }
}

#[derive(Debug)]
struct Entry {
    record: LeaseRecord,
    task: Option<tokio::task::AbortHandle>,
    /// A restored lease gets one retry budget even when it expired while the daemon was down.
    grace_until: u64,
}

#[derive(Debug)]
struct Inner {
    flags: DaemonFlags,
    services: Services,
    ports: Ports,
    store: Store,
    leases: RefCell<BTreeMap<String, Entry>>,
}

/// The dhcp daemon's plugin: leases per `<containerID>/<network>/<ifname>`, persisted in the
/// state directory. Runs on the daemon's single thread (maintenance tasks are local tasks), so
/// it must be served from a `LocalSet` (which `cni_sdk::daemon::Daemon` provides).
#[derive(Debug, Clone)]
pub(crate) struct DhcpDaemon {
    inner: Rc<Inner>,
}

impl DhcpDaemon {
    /// A daemon with `flags`, reaching namespaces through `services`.
    pub(crate) fn new(flags: DaemonFlags, services: Services) -> Self {
        Self::with_ports(flags, services, Ports::Packet)
    }

    pub(crate) fn with_ports(flags: DaemonFlags, services: Services, ports: Ports) -> Self {
        let store = Store::new(flags.state_dir());
        Self { inner: Rc::new(Inner { flags, services, ports, store, leases: RefCell::default() }) }
    }

    /// Loads the persisted leases and resumes their maintenance; returns how many. What
    /// interrupted writes left is removed first; a pending record (an ADD that never finished:
    /// its runtime got no result) is released at the server and dropped; leases whose namespace
    /// or interface is gone are dropped. Call it on the `LocalSet` the daemon runs on, after the
    /// socket is bound (so no other daemon uses the directory) and before serving.
    pub(crate) async fn restore(&self) -> std::io::Result<usize> {
        self.inner.store.sweep()?;
        let records = self.inner.store.load_all()?;
        let grace_until = now_secs() + self.inner.flags.resend_timeout.as_secs();
        let mut n = 0;
        for record in records {
            let key = record.client_id.clone();
            if record.pending {
                tracing::info!("{key}: an ADD was interrupted after offering {}; releasing it", record.lease.address);
                self.inner.release(&record).await;
                if let Err(e) = self.inner.store.remove(&key) {
                    tracing::warn!("{key}: could not remove the lease record: {e}");
                }
                continue;
            }
            if let Err(Attach::Gone(why)) =
                self.inner.find_link(&record.netns, &record.ifname, record.netns_inode).await
            {
                tracing::info!("{key}: {why}; dropping the lease");
                if let Err(e) = self.inner.store.remove(&key) {
                    tracing::warn!("{key}: could not remove the lease record: {e}");
                }
                continue;
            }
            tracing::info!(
                "{key}: resuming maintenance of {} (lease expires at {})",
                record.lease.address,
                record.lease.expires_at()
            );
            self.inner.leases.borrow_mut().insert(key.clone(), Entry { record, task: None, grace_until });
            n += 1;
            let task = self.inner.spawn_maintenance(key.clone());
            if let Some(e) = self.inner.leases.borrow_mut().get_mut(&key) {
                e.task = Some(task);
            }
        }
        Ok(n)
    }

    /// Stops every maintenance task and empties the table, leaving the records on disk: what
    /// a daemon that exits does.
    #[cfg(test)]
    pub(crate) fn stop(&self) {
        let keys: Vec<String> = self.inner.leases.borrow().keys().cloned().collect();
        for key in keys {
            self.inner.take(&key);
        }
    }

    /// The keys of the leases held.
    #[cfg(test)]
    pub(crate) fn lease_keys(&self) -> Vec<String> {
        self.inner.leases.borrow().keys().cloned().collect()
    }

    fn netns_path(&self, netns: Option<&Path>) -> PathBuf {
        PathBuf::from(format!(
            "{}{}",
            self.inner.flags.hostprefix,
            netns.map(|p| p.display().to_string()).unwrap_or_default()
        ))
    }
}

impl Inner {
    fn client<'a>(&'a self, port: &'a Port, record: &'a LeaseRecord) -> Client<'a> {
        Client {
            port,
            mac: record.mac,
            client_id: &record.client_id,
            options: &record.options,
            broadcast: self.flags.broadcast,
            timeout: self.flags.timeout,
        }
    }

    /// Opens the namespace at `netns` and finds `ifname` there, with Go's texts.
    async fn find_link(
        &self,
        netns: &Path,
        ifname: &str,
        inode: Option<u64>,
    ) -> std::result::Result<(Net, Link), Attach> {
        let shown = netns.display().to_string();
        let net = match self.services.open_net(netns).await {
            Ok(Some(net)) => net,
            Ok(None) => return Err(Attach::Gone(format!("failed to Statfs {shown:?}: no such file or directory"))),
            Err(e) => return Err(Attach::Failed(format!("failed to open netns {shown:?}: {e}"))),
        };
        if let (Some(want), Ok(meta)) = (inode, std::fs::metadata(netns))
            && meta.ino() != want
        {
            return Err(Attach::Gone(format!("{shown} now names another network namespace")));
        }
        match net.find_link(ifname).await {
            Ok(Some(link)) => Ok((net, link)),
            Ok(None) => Err(Attach::Gone(format!("error looking up {ifname:?}: Link not found"))),
            Err(e) => Err(Attach::Failed(format!("error looking up {ifname:?}: {e}"))),
        }
    }

    async fn open_port(&self, net: &Net, link: &Link) -> std::result::Result<Port, String> {
        self.ports.open(net, link).await.map_err(|e| format!("failed to open a DHCP socket on {:?}: {e}", link.name))
    }

    fn spawn_maintenance(self: &Rc<Self>, key: String) -> tokio::task::AbortHandle {
        let this = self.clone();
        tokio::task::spawn_local(async move { this.maintain(key).await }).abort_handle()
    }

    /// Removes the lease from the table (stopping its maintenance) and returns its record.
    fn take(&self, key: &str) -> Option<LeaseRecord> {
        let entry = self.leases.borrow_mut().remove(key)?;
        if let Some(task) = entry.task {
            task.abort();
        }
        Some(entry.record)
    }

    /// Forgets a lease from within its own maintenance task.
    fn forget(&self, key: &str) {
        self.leases.borrow_mut().remove(key);
        if let Err(e) = self.store.remove(key) {
            tracing::warn!("{key}: could not remove the lease record: {e}");
        }
    }

    /// Sends DHCPRELEASE for `record` (failures are only logged, as in Go).
    async fn release(&self, record: &LeaseRecord) {
        let key = &record.client_id;
        tracing::info!("{key}: releasing lease");
        let (net, link) = match self.find_link(&record.netns, &record.ifname, record.netns_inode).await {
            Ok(found) => found,
            Err(e) => {
                tracing::info!("{key}: not sending DHCPRELEASE: {}", e.message());
                return;
            }
        };
        let sent = match self.open_port(&net, &link).await {
            Ok(port) => self.client(&port, record).release(&record.lease).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!("{key}: failed to release DHCP lease: failed to send DHCPRELEASE: {e}");
        }
    }

    /// Go's `maintain`: bound until T1, renewing until T2, rebinding until expiry; at expiry
    /// the interface is set down. Ends when the namespace or interface is gone.
    async fn maintain(self: Rc<Self>, key: String) {
        let mut backoff: Option<Backoff> = None;
        loop {
            let Some((record, grace_until)) = self.leases.borrow().get(&key).map(|e| (e.record.clone(), e.grace_until))
            else {
                return;
            };
            let lease = &record.lease;
            let now = now_secs();
            if now < lease.renew_at() {
                backoff = None;
                tokio::time::sleep(Duration::from_secs(lease.renew_at() - now)).await;
                continue;
            }
            let end = lease.expires_at().max(grace_until);
            let rebinding = now >= lease.rebind_at();
            if backoff.is_none() {
                tracing::info!("{key}: {} lease", if rebinding { "rebinding" } else { "renewing" });
            }
            let outcome = match self.find_link(&record.netns, &record.ifname, record.netns_inode).await {
                Err(Attach::Gone(why)) => {
                    tracing::info!(
                        "{key}: interface {} no longer exists ({why}), terminating lease maintenance",
                        record.ifname
                    );
                    self.forget(&key);
                    return;
                }
                Err(Attach::Failed(why)) => Err(why),
                Ok((net, link)) => match self.open_port(&net, &link).await {
                    Ok(port) => self.client(&port, &record).renew(lease, rebinding).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                },
            };
            match outcome.and_then(|ack| {
                Lease::from_ack(&ack, now_secs(), Some(lease.server), record.priority).map_err(|e| e.to_string())
            }) {
                Ok(renewed) => {
                    if renewed.address.addr() != lease.address.addr() {
                        tracing::warn!("{key}: the server now grants {} instead of {}", renewed.address, lease.address);
                    }
                    tracing::info!(
                        "{key}: lease {}, expiration is {}",
                        if rebinding { "rebound" } else { "renewed" },
                        renewed.expires_at()
                    );
                    let mut updated = record.clone();
                    updated.lease = renewed;
                    if let Err(e) = self.store.save(&updated) {
                        tracing::warn!("{key}: could not save the renewed lease: {e}");
                    }
                    if let Some(e) = self.leases.borrow_mut().get_mut(&key) {
                        e.record = updated;
                        e.grace_until = 0;
                    }
                    backoff = None;
                }
                Err(why) => {
                    tracing::info!("{key}: {why}");
                    let delay = backoff.get_or_insert_with(|| Backoff::new(self.flags.resend_max)).next();
                    let now = now_secs();
                    if now + delay.as_secs() >= end {
                        tracing::info!("{key}: lease expired, bringing interface DOWN");
                        if let Ok((net, link)) = self.find_link(&record.netns, &record.ifname, record.netns_inode).await
                            && let Err(e) = net.set_down(link.index).await
                        {
                            tracing::warn!("{key}: failed to bring {} interface DOWN: {e}", record.ifname);
                        }
                        self.forget(&key);
                        return;
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

impl DhcpDaemon {
    async fn acquire(
        &self,
        key: &str,
        cx: &Context<()>,
        netns: PathBuf,
        network: &str,
        options: ClientOptions,
        priority: Option<u32>,
    ) -> Result<LeaseRecord> {
        let inner = &self.inner;
        let ifname = cx.ifname();
        tracing::info!("{key}: acquiring lease");
        let (net, link) = inner.find_link(&netns, ifname, None).await.map_err(|e| plain(e.message()))?;
        let brought_up = !link.up;
        if brought_up {
            tracing::info!("Link {ifname:?} down. Attempting to set up");
            net.set_up(link.index).await.map_err(|e| plain(e.to_string()))?;
        }
        let mac = link.mac.octets();
        let mut record = LeaseRecord {
            version: LeaseRecord::version(),
            client_id: key.to_owned(),
            container_id: cx.container_id().to_owned(),
            network: network.to_owned(),
            ifname: ifname.to_owned(),
            netns_inode: std::fs::metadata(&netns).ok().map(|m| m.ino()),
            netns,
            mac,
            options,
            priority,
            lease: Lease {
                address: "0.0.0.0/32".parse().expect("valid"),
                server: std::net::Ipv4Addr::UNSPECIFIED,
                router: None,
                routes: Vec::new(),
                lease_secs: 0,
                granted_at: 0,
                t1_secs: 0,
                t2_secs: 0,
            },
            pending: false,
        };
        // Set once the offered address is recorded: from then on a failure releases it.
        let offered: std::cell::RefCell<Option<LeaseRecord>> = std::cell::RefCell::new(None);
        let record_offer = |yiaddr: std::net::Ipv4Addr, server: Option<std::net::Ipv4Addr>| {
            let mut pending = record.clone();
            pending.pending = true;
            pending.lease.address = ipnet::Ipv4Net::new(yiaddr, 32).expect("a /32");
            pending.lease.server = server.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            inner.store.save(&pending)?;
            *offered.borrow_mut() = Some(pending);
            Ok(())
        };
        let acquired = async {
            let port = inner.open_port(&net, &link).await.map_err(plain)?;
            let client = inner.client(&port, &record);
            let (ack, server) =
                with_retries(inner.flags.resend_max, inner.flags.resend_timeout, || client.acquire(&record_offer))
                    .await
                    .map_err(|e: GiveUp| match &e.last {
                        Failure::Store(io) => {
                            plain(format!("failed to save the lease in {}: {io}", inner.store.dir().display()))
                        }
                        _ => plain(GiveUp::MESSAGE).with_details(e.details()),
                    })?;
            match Lease::from_ack(&ack, now_secs(), server, priority) {
                Ok(lease) => Ok(lease),
                Err(e) => {
                    // Go's Allocate stops (and so releases) a lease it cannot use.
                    if let Some(server) = server {
                        let mut unusable = record.lease.clone();
                        unusable.address = ipnet::Ipv4Net::new(ack.yiaddr(), 32).expect("a /32");
                        unusable.server = server;
                        let _ = client.release(&unusable).await;
                    }
                    Err(plain(e))
                }
            }
        }
        .await;
        let lease = match acquired {
            Ok(l) => l,
            Err(e) => {
                // An address was offered and maybe bound by our REQUEST: release it, forget it.
                let pending = offered.borrow_mut().take();
                if let Some(pending) = pending {
                    if pending.lease.server != std::net::Ipv4Addr::UNSPECIFIED {
                        inner.release(&pending).await;
                    }
                    if let Err(rm) = inner.store.remove(key) {
                        tracing::warn!("{key}: could not remove the pending lease record: {rm}");
                    }
                }
                if brought_up && let Err(down) = net.set_down(link.index).await {
                    tracing::warn!("{key}: could not set {ifname} down again: {down}");
                }
                return Err(e);
            }
        };
        record.lease = lease;
        if let Err(e) = inner.store.save(&record) {
            inner.release(&record).await;
            if let Err(rm) = inner.store.remove(key) {
                tracing::warn!("{key}: could not remove the pending lease record: {rm}");
            }
            if brought_up {
                let _ = net.set_down(link.index).await;
            }
            return Err(plain(format!("failed to save the lease in {}: {e}", inner.store.dir().display())));
        }
        tracing::info!("{key}: lease acquired, expiration is {}", record.lease.expires_at());
        Ok(record)
    }
}

impl Plugin for DhcpDaemon {
    type Config = ();

    /// Go's `DHCP.Allocate`: an existing lease of the same attachment is returned as is (Go
    /// v1.2+); otherwise DISCOVER/REQUEST in the container's namespace, then maintenance.
    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let conf = config::load(cx.raw_config(), cx.env("CNI_ARGS").unwrap_or_default()).map_err(plain)?;
        let key = client_id(cx.container_id(), &conf.name, cx.ifname());
        let netns = self.netns_path(cx.netns());
        let existing = self.inner.leases.borrow().get(&key).map(|e| e.record.clone());
        if let Some(record) = existing {
            if record.netns == netns {
                return Ok(record.lease.result());
            }
            tracing::info!("{key}: the attachment moved to {}; replacing its lease", netns.display());
            if let Some(old) = self.inner.take(&key) {
                self.inner.release(&old).await;
            }
        }
        let record = self.acquire(&key, cx, netns, &conf.name, conf.options, conf.priority).await?;
        let result = record.lease.result();
        self.inner.leases.borrow_mut().insert(key.clone(), Entry { record, task: None, grace_until: 0 });
        let task = self.inner.spawn_maintenance(key.clone());
        if let Some(e) = self.inner.leases.borrow_mut().get_mut(&key) {
            e.task = Some(task);
        }
        Ok(result)
    }

    /// Go's `DHCP.Release`: stop maintenance, send DHCPRELEASE, forget the lease. Unknown
    /// leases (a repeated DEL) are fine; `CNI_NETNS` is not needed.
    async fn del(&self, cx: &Context<()>) -> Result<()> {
        let name = config::network_name(cx.raw_config()).map_err(plain)?;
        let key = client_id(cx.container_id(), &name, cx.ifname());
        if let Some(record) = self.inner.take(&key) {
            self.inner.release(&record).await;
        }
        self.inner.store.remove(&key).map_err(|e| plain(format!("failed to remove the lease record of {key}: {e}")))
    }

    /// Without allocating (Go's CHECK ran a whole new DISCOVER and orphaned the ADD lease): the
    /// lease must be held, unexpired and maintained, and its address must be in `prevResult`.
    async fn check(&self, cx: &Context<()>) -> Result<()> {
        let conf = config::load(cx.raw_config(), cx.env("CNI_ARGS").unwrap_or_default()).map_err(plain)?;
        let key = client_id(cx.container_id(), &conf.name, cx.ifname());
        let leases = self.inner.leases.borrow();
        let entry = leases.get(&key).ok_or_else(|| plain(format!("no DHCP lease is held for {key:?}")))?;
        let lease = &entry.record.lease;
        if now_secs() >= lease.expires_at() || entry.task.as_ref().is_some_and(|t| t.is_finished()) {
            return Err(plain(format!("the DHCP lease of {} for {key:?} is no longer maintained", lease.address)));
        }
        if let Some(prev) = cx.prev_result()
            && !prev.ips.is_empty()
            && !prev.ips.iter().any(|ip| ip.address == IpNet::V4(lease.address))
        {
            return Err(plain(format!("the DHCP lease {} for {key:?} is not in prevResult", lease.address)));
        }
        Ok(())
    }

    /// The daemon answers, so it is ready.
    async fn status(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    /// Releases every lease of this network whose attachment is not in the valid list.
    async fn gc(&self, cx: &Context<()>) -> Result<()> {
        let network = &cx.config().name;
        let valid = cx.gc_attachments();
        let stale: Vec<String> = self
            .inner
            .leases
            .borrow()
            .values()
            .map(|e| &e.record)
            .filter(|r| &r.network == network)
            .filter(|r| !valid.iter().any(|a| a.container_id == r.container_id && a.ifname == r.ifname))
            .map(|r| r.client_id.clone())
            .collect();
        let mut errors = Vec::new();
        for key in stale {
            tracing::info!("{key}: not a valid attachment any more (GC)");
            if let Some(record) = self.inner.take(&key) {
                self.inner.release(&record).await;
            }
            if let Err(e) = self.inner.store.remove(&key) {
                errors.push(format!("failed to remove the lease record of {key}: {e}"));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(plain(errors.join("; "))) }
    }
}
