//! The pod layer (containerd's go-cni): one namespace attached to several networks at once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni_types::{
    Attachment, Bandwidth, CniResult, Dns, HardwareAddr, IpRange, IpRequest, MacAddr, PortMapping, Route,
    RuntimeConfig, RuntimeDns, ident,
};
use futures_util::future::join_all;
use ipnet::IpNet;
use serde_json::Value;

use super::{
    AddOutcome, CancelToken, CniRuntime, Error, NetworkList, NetworkStatus, Result, RuntimeConf, capability_map,
};
use crate::{Command, ErrorKind};

/// The name and version of the loopback network [`PodNetworksBuilder::loopback`] adds, as
/// go-cni's `WithLoNetwork` does.
const LOOPBACK: &str = r#"{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;

/// One network of a pod and the interface name it gets in the pod's namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct PodNetwork {
    list: NetworkList,
    ifname: String,
}

impl PodNetwork {
    /// The network configuration list.
    pub fn list(&self) -> &NetworkList {
        &self.list
    }

    /// The network name.
    pub fn name(&self) -> &str {
        self.list.name()
    }

    /// The interface name in the pod (`CNI_IFNAME`).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
}

enum Entry {
    Network(Box<NetworkList>, Option<String>),
    Loopback,
    Dir(PathBuf, Option<usize>),
}

/// Builds [`PodNetworks`]; errors are reported by [`PodNetworksBuilder::build`].
#[must_use]
pub struct PodNetworksBuilder {
    cni: CniRuntime,
    prefix: String,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for PodNetworksBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetworksBuilder")
            .field("prefix", &self.prefix)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl PodNetworksBuilder {
    /// The prefix of generated interface names (default `eth`: `eth0`, `eth1`, ...).
    pub fn interface_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Adds a network; its interface is `<prefix><n>`, `n` counting the networks added with a
    /// generated name so far (the loopback network does not count).
    pub fn network(mut self, list: NetworkList) -> Self {
        self.entries.push(Entry::Network(Box::new(list), None));
        self
    }

    /// Adds a network with an interface name of its own choosing.
    pub fn network_with_ifname(mut self, list: NetworkList, ifname: &str) -> Self {
        self.entries.push(Entry::Network(Box::new(list), Some(ifname.to_owned())));
        self
    }

    /// Adds go-cni's loopback network (`cni-loopback`, version 0.3.1, plugin `loopback`) with
    /// interface `lo`.
    pub fn loopback(mut self) -> Self {
        self.entries.push(Entry::Loopback);
        self
    }

    /// Adds every network of `dir` (`.conf`, `.conflist` and `.json` files in one sorted list,
    /// as go-cni's `WithAllConf`; see [`load_conf_dir`](super::load_conf_dir)), or only the
    /// first `max`; each gets a generated interface name.
    pub fn conf_dir(mut self, dir: impl Into<PathBuf>, max: Option<usize>) -> Self {
        self.entries.push(Entry::Dir(dir.into(), max));
        self
    }

    /// Loads what was asked for and checks it: at least one network, valid and distinct
    /// interface names.
    pub fn build(self) -> Result<PodNetworks> {
        let mut networks = Vec::new();
        let mut generated = 0usize;
        let mut next_name = |prefix: &str| {
            let n = format!("{prefix}{generated}");
            generated += 1;
            n
        };
        for entry in self.entries {
            match entry {
                Entry::Network(list, Some(ifname)) => networks.push(PodNetwork { list: *list, ifname }),
                Entry::Network(list, None) => {
                    networks.push(PodNetwork { list: *list, ifname: next_name(&self.prefix) })
                }
                Entry::Loopback => {
                    let list = NetworkList::from_bytes(LOOPBACK.as_bytes())?;
                    networks.push(PodNetwork { list, ifname: "lo".to_owned() });
                }
                Entry::Dir(dir, max) => {
                    for list in super::load_conf_dir(&dir, max)? {
                        networks.push(PodNetwork { list, ifname: next_name(&self.prefix) });
                    }
                }
            }
        }
        if networks.is_empty() {
            return Err(Error::invalid_config("no networks given for the pod"));
        }
        for (i, n) in networks.iter().enumerate() {
            ident::validate_interface_name(&n.ifname)
                .map_err(|e| Error::invalid_config(e.msg).with_network(n.name()))?;
            if networks[..i].iter().any(|m| m.ifname == n.ifname) {
                return Err(Error::invalid_config(format!(
                    "interface name {:?} is used by two networks ({:?} is the second)",
                    n.ifname,
                    n.name()
                ))
                .with_network(n.name()));
            }
        }
        Ok(PodNetworks { cni: self.cni, networks })
    }
}

/// A pod's networks: set up, check and remove all (or some) of them in one call, concurrently
/// or one after the other, like containerd's go-cni. Cheap to clone.
///
/// * [`PodNetworks::setup`] attaches every network; when any attachment fails, everything it
///   started is deleted again (the spec wants a DEL after every ADD, failed ones included) and
///   the error lists the failures and any failed clean-up.
/// * [`PodNetworks::remove`] continues past failures and reports all of them.
/// * [`PodNetworks::check`] checks every network.
/// * The result is keyed by interface name ([`PodResult::interfaces`]) and keeps each
///   network's own result ([`PodResult::networks`]).
#[derive(Clone, Debug)]
pub struct PodNetworks {
    cni: CniRuntime,
    networks: Vec<PodNetwork>,
}

/// One call's parameters: container, namespace, `CNI_ARGS`, capabilities, which networks, and
/// how (concurrently or serially, deadline, cancellation).
///
/// Typed capabilities reach a plugin as `runtimeConfig` only when its configuration declares
/// them (`"capabilities": {"portMappings": true}`), as libcni does.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct PodOptions {
    container_id: String,
    netns: String,
    args: Vec<(String, String)>,
    caps: RuntimeConfig,
    only: Option<Vec<String>>,
    serial: bool,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    cancel: Option<CancelToken>,
}

impl PodOptions {
    /// Options for the container `container_id` whose network namespace is at `netns`.
    pub fn new(container_id: &str, netns: impl AsRef<Path>) -> Self {
        Self {
            container_id: container_id.to_owned(),
            netns: netns.as_ref().to_string_lossy().into_owned(),
            ..Self::default()
        }
    }

    /// Sets a `CNI_ARGS` pair (go-cni's `WithArgs`); setting a key again replaces its value.
    pub fn arg(mut self, key: &str, value: &str) -> Self {
        match self.args.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_owned(),
            None => self.args.push((key.to_owned(), value.to_owned())),
        }
        self
    }

    /// The same as [`PodOptions::arg`] (go-cni's `WithLabels` puts labels in `CNI_ARGS`).
    pub fn label(self, key: &str, value: &str) -> Self {
        self.arg(key, value)
    }

    /// Sets several `CNI_ARGS` pairs.
    pub fn labels<'a>(self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        labels.into_iter().fold(self, |o, (k, v)| o.arg(k, v))
    }

    /// The `CNI_ARGS` a CRI runtime sends for a Kubernetes pod: `IgnoreUnknown=1`,
    /// `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_INFRA_CONTAINER_ID` (the container ID) and
    /// `K8S_POD_UID`.
    pub fn kubernetes_pod(self, namespace: &str, name: &str, uid: &str) -> Self {
        let id = self.container_id.clone();
        self.arg("IgnoreUnknown", "1")
            .arg("K8S_POD_NAMESPACE", namespace)
            .arg("K8S_POD_NAME", name)
            .arg("K8S_POD_INFRA_CONTAINER_ID", &id)
            .arg("K8S_POD_UID", uid)
    }

    /// Adds a port mapping (capability `portMappings`).
    pub fn port_mapping(mut self, mapping: PortMapping) -> Self {
        self.caps.port_mappings.get_or_insert_with(Vec::new).push(mapping);
        self
    }

    /// Sets the port mappings (capability `portMappings`).
    pub fn port_mappings(mut self, mappings: Vec<PortMapping>) -> Self {
        self.caps.port_mappings = Some(mappings);
        self
    }

    /// Sets the bandwidth limits (capability `bandwidth`).
    pub fn bandwidth(mut self, bandwidth: Bandwidth) -> Self {
        self.caps.bandwidth = Some(bandwidth);
        self
    }

    /// Sets the DNS settings (capability `dns`).
    pub fn dns(mut self, dns: RuntimeDns) -> Self {
        self.caps.dns = Some(dns);
        self
    }

    /// Sets the address range sets (capability `ipRanges`).
    pub fn ip_ranges(mut self, ranges: Vec<Vec<IpRange>>) -> Self {
        self.caps.ip_ranges = Some(ranges);
        self
    }

    /// Sets the requested addresses (capability `ips`).
    pub fn ips(mut self, ips: Vec<IpRequest>) -> Self {
        self.caps.ips = Some(ips);
        self
    }

    /// Sets the requested MAC address (capability `mac`).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.caps.mac = Some(mac);
        self
    }

    /// Sets the cgroup path (capability `cgroupPath`).
    pub fn cgroup_path(mut self, path: &str) -> Self {
        self.caps.cgroup_path = Some(path.to_owned());
        self
    }

    /// Sets any other capability from a raw JSON value (go-cni's `WithCapability`).
    pub fn capability(mut self, key: &str, value: Value) -> Self {
        self.caps.extra.insert(key.to_owned(), value);
        self
    }

    /// Replaces every capability at once.
    pub fn capabilities(mut self, caps: RuntimeConfig) -> Self {
        self.caps = caps;
        self
    }

    /// Runs only on the networks with these names (default: all), in the pod's order.
    pub fn networks<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.only = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// One network after the other (go-cni's `SetupSerially`) instead of all at once.
    pub fn serial(mut self, yes: bool) -> Self {
        self.serial = yes;
        self
    }

    /// A deadline for the whole call (on top of the runtime's per-plugin timeout).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// A time limit for the whole call, counted from when the call starts.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Cancels the call when `token` is cancelled.
    pub fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The container ID.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The namespace path.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The `CNI_ARGS` pairs.
    pub fn args(&self) -> &[(String, String)] {
        &self.args
    }

    /// The capabilities.
    pub fn runtime_config(&self) -> &RuntimeConfig {
        &self.caps
    }

    fn check_args(&self) -> Result<()> {
        for (k, v) in &self.args {
            if k.is_empty() || [k, v].iter().any(|s| s.contains(';') || s.contains('=')) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "invalid CNI_ARGS pair {k:?}={v:?}: keys must be non-empty and neither may contain ';' or '='"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn runtime_conf(&self, ifname: &str) -> RuntimeConf {
        RuntimeConf {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: ifname.to_owned(),
            args: self.args.clone(),
            capability_args: capability_map(&self.caps),
        }
    }
}

/// An address of a pod interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodIp {
    /// Address and prefix length.
    pub address: IpNet,
    /// The gateway, if the result gave one.
    pub gateway: Option<IpAddr>,
}

/// An interface named in the results, with the addresses assigned to it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodInterface {
    /// The network whose result first named the interface.
    pub network: String,
    /// Its hardware address, if a result gave one.
    pub mac: Option<HardwareAddr>,
    /// The namespace it is in (`None` for host-side interfaces such as a bridge or a veth peer).
    pub sandbox: Option<String>,
    /// Its addresses, from every result.
    pub ips: Vec<PodIp>,
}

/// One network's attachment as its last plugin returned it.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkResult {
    /// The network name.
    pub network: String,
    /// The interface name the network was given.
    pub ifname: String,
    /// The result as printed.
    pub raw: Value,
    /// The result, up-converted.
    pub result: CniResult,
}

/// The outcome of [`PodNetworks::setup`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodResult {
    /// Every interface of every result, by name; each network's own interface name is always a
    /// key (with no addresses when its result named none). Addresses go to the interface their
    /// `interface` index names, else to the network's interface.
    pub interfaces: BTreeMap<String, PodInterface>,
    /// The DNS settings of the results that had any, in network order.
    pub dns: Vec<Dns>,
    /// The routes of all results, in network order.
    pub routes: Vec<Route>,
    /// Each network's result, in the pod's network order.
    pub networks: Vec<NetworkResult>,
}

/// The entry of interface `name`, made (for `network`) if it is new.
fn slot<'a>(ifs: &'a mut BTreeMap<String, PodInterface>, name: &str, network: &str) -> &'a mut PodInterface {
    ifs.entry(name.to_owned())
        .or_insert_with(|| PodInterface { network: network.to_owned(), ..PodInterface::default() })
}

impl PodResult {
    fn build(attached: Vec<(&PodNetwork, AddOutcome)>) -> Result<Self> {
        let mut out = Self::default();
        for (net, outcome) in attached {
            let r = &outcome.result;
            slot(&mut out.interfaces, &net.ifname, net.name());
            for intf in &r.interfaces {
                let e = slot(&mut out.interfaces, &intf.name, net.name());
                e.mac = e.mac.or(intf.mac);
                if e.sandbox.is_none() {
                    e.sandbox.clone_from(&intf.sandbox);
                }
            }
            for ip in &r.ips {
                let name = match ip.interface {
                    None => net.ifname.clone(),
                    Some(i) => match r.interfaces.get(i) {
                        Some(intf) => intf.name.clone(),
                        None => {
                            return Err(Error::new(
                                ErrorKind::Decoding,
                                format!(
                                    "invalid IP configuration (interface number {i} is >= number of interfaces {})",
                                    r.interfaces.len()
                                ),
                            )
                            .with_network(net.name()));
                        }
                    },
                };
                slot(&mut out.interfaces, &name, net.name())
                    .ips
                    .push(PodIp { address: ip.address, gateway: ip.gateway });
            }
            if !r.dns.is_empty() {
                out.dns.push(r.dns.clone());
            }
            out.routes.extend(r.routes.iter().cloned());
            out.networks.push(NetworkResult {
                network: net.name().to_owned(),
                ifname: net.ifname.clone(),
                raw: outcome.raw,
                result: outcome.result,
            });
        }
        Ok(out)
    }
}

impl PodNetworks {
    /// A builder over `cni`.
    pub fn builder(cni: CniRuntime) -> PodNetworksBuilder {
        PodNetworksBuilder { cni, prefix: "eth".to_owned(), entries: Vec::new() }
    }

    /// The networks, in order.
    pub fn networks(&self) -> &[PodNetwork] {
        &self.networks
    }

    /// The runtime the calls go through.
    pub fn runtime(&self) -> &CniRuntime {
        &self.cni
    }

    fn select(&self, opts: &PodOptions) -> Result<Vec<&PodNetwork>> {
        if opts.container_id.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument, "no container ID given"));
        }
        opts.check_args()?;
        let Some(only) = &opts.only else { return Ok(self.networks.iter().collect()) };
        if let Some(missing) = only.iter().find(|n| !self.networks.iter().any(|m| m.name() == n.as_str())) {
            return Err(Error::new(ErrorKind::InvalidArgument, format!("the pod has no network named {missing:?}"))
                .with_network(missing));
        }
        Ok(self.networks.iter().filter(|n| only.iter().any(|o| o == n.name())).collect())
    }

    /// The runtime for one call: the pod's, with the call's deadline and cancel token.
    fn call_runtime(&self, opts: &PodOptions) -> CniRuntime {
        let mut cni = self.cni.clone();
        if let Some(t) = opts.timeout {
            cni = cni.with_deadline(Instant::now() + t);
        }
        if let Some(d) = opts.deadline {
            cni = cni.with_deadline(d);
        }
        if let Some(c) = &opts.cancel {
            cni = cni.with_cancel(c.clone());
        }
        cni
    }

    /// Attaches the pod to the networks (all of them, or [`PodOptions::networks`]),
    /// concurrently unless [`PodOptions::serial`].
    ///
    /// On failure every network whose ADD was started is deleted again, in reverse order,
    /// without the call's deadline or cancel token (the runtime's per-plugin timeout still
    /// applies); the error is the first failure in network order, with the others in
    /// [`Error::failures`] and failed clean-up steps in [`Error::rollback_failures`].
    pub async fn setup(&self, opts: &PodOptions) -> Result<PodResult> {
        let selected = self.select(opts)?;
        let cni = self.call_runtime(opts);
        let rts: Vec<RuntimeConf> = selected.iter().map(|n| opts.runtime_conf(&n.ifname)).collect();
        let mut outcomes: Vec<Result<AddOutcome>> = Vec::new();
        if opts.serial {
            for (net, rt) in selected.iter().zip(&rts) {
                let r = cni.add(&net.list, rt).await;
                let failed = r.is_err();
                outcomes.push(r);
                if failed {
                    break;
                }
            }
        } else {
            outcomes = join_all(selected.iter().zip(&rts).map(|(net, rt)| cni.add(&net.list, rt))).await;
        }
        let started = outcomes.len();
        let mut attached = Vec::new();
        let mut failures = Vec::new();
        for (net, outcome) in selected.iter().zip(outcomes) {
            match outcome {
                Ok(o) => attached.push((*net, o)),
                Err(e) => failures.push(e),
            }
        }
        if failures.is_empty() {
            match PodResult::build(attached) {
                Ok(r) => return Ok(r),
                Err(e) => failures.push(e),
            }
        }
        let cleanup = self.cni.without_call_limits();
        let mut rollback = Vec::new();
        for (net, rt) in selected.iter().zip(&rts).take(started).rev() {
            if let Err(e) = cleanup.del(&net.list, rt).await {
                rollback.push(e);
            }
        }
        let first = Error::collect(failures).unwrap_or_else(|| Error::new(ErrorKind::Internal, "setup failed"));
        Err(first.with_rollback(rollback))
    }

    /// CHECKs the networks; concurrently, every network is checked and every failure reported;
    /// serially, the first failure stops the call (as go-cni).
    ///
    /// Networks whose version has no CHECK (older than 0.4.0, such as go-cni's own loopback
    /// network at 0.3.1) are skipped; go-cni fails the whole call on them instead.
    pub async fn check(&self, opts: &PodOptions) -> Result<()> {
        let mut selected = self.select(opts)?;
        selected.retain(|n| Command::Check.allowed_by(&n.list.version()).unwrap_or(true));
        let cni = self.call_runtime(opts);
        let rts: Vec<RuntimeConf> = selected.iter().map(|n| opts.runtime_conf(&n.ifname)).collect();
        let mut failures = Vec::new();
        if opts.serial {
            for (net, rt) in selected.iter().zip(&rts) {
                if let Err(e) = cni.check(&net.list, rt).await {
                    failures.push(e);
                    break;
                }
            }
        } else {
            let all = join_all(selected.iter().zip(&rts).map(|(net, rt)| cni.check(&net.list, rt))).await;
            failures.extend(all.into_iter().filter_map(Result::err));
        }
        Error::collect(failures).map_or(Ok(()), Err)
    }

    /// DELs the networks (serially in reverse order, or all at once), continuing past failures;
    /// the error lists every failure.
    pub async fn remove(&self, opts: &PodOptions) -> Result<()> {
        let selected = self.select(opts)?;
        let cni = self.call_runtime(opts);
        let rts: Vec<RuntimeConf> = selected.iter().map(|n| opts.runtime_conf(&n.ifname)).collect();
        let mut failures = Vec::new();
        if opts.serial {
            for (net, rt) in selected.iter().zip(&rts).rev() {
                if let Err(e) = cni.del(&net.list, rt).await {
                    failures.push(e);
                }
            }
        } else {
            let all = join_all(selected.iter().zip(&rts).map(|(net, rt)| cni.del(&net.list, rt))).await;
            failures.extend(all.into_iter().filter_map(Result::err));
        }
        Error::collect(failures).map_or(Ok(()), Err)
    }

    /// STATUS of every network, concurrently: each network's [`NetworkStatus`] in order, or
    /// every failure.
    pub async fn status(&self) -> Result<Vec<(String, NetworkStatus)>> {
        let all = join_all(self.networks.iter().map(|n| self.cni.status(&n.list))).await;
        let mut out = Vec::new();
        let mut failures = Vec::new();
        for (net, r) in self.networks.iter().zip(all) {
            match r {
                Ok(s) => out.push((net.name().to_owned(), s)),
                Err(e) => failures.push(e),
            }
        }
        Error::collect(failures).map_or(Ok(out), Err)
    }

    /// GC of every network, one after the other, keeping the `valid` attachments; the error
    /// lists every failure.
    pub async fn gc(&self, valid: &[Attachment]) -> Result<()> {
        let mut failures = Vec::new();
        let mut done: Vec<&str> = Vec::new();
        for net in &self.networks {
            // GC works per network name (the cache is keyed by it): once per name is enough.
            if done.contains(&net.name()) {
                continue;
            }
            done.push(net.name());
            if let Err(e) = self.cni.gc(&net.list, Some(valid)).await {
                failures.push(e);
            }
        }
        Error::collect(failures).map_or(Ok(()), Err)
    }
}
