//! The world: namespaces, registered devices, the operation log and injected faults, and the
//! rules that cross namespaces (veth peers, parents and their children, moves, deletion).

use std::path::{Path, PathBuf};

use cni_types::MacAddr;

use super::model::{FLink, LinkId, NsState, check_mac, check_mtu, no_device};
use super::tc::LinkTc;
use super::{Injection, Op};
use crate::net::backend::LinkChange;
use crate::net::lookup::{BusDevice, DeviceBus};
use crate::net::{Link, LinkKind, LinkRef, NetError, NetResult, OperState};

/// A registered fake device (a "physical" NIC, or a bus device without a network interface).
#[derive(Debug, Clone)]
pub(super) struct FDevice {
    pub(super) bus: Option<(DeviceBus, String)>,
    pub(super) path: PathBuf,
    pub(super) driver: Option<String>,
    /// The network interface of the device, if it has one.
    pub(super) link: Option<LinkId>,
}

pub(super) struct World {
    pub(super) namespaces: Vec<NsState>,
    pub(super) devices: Vec<FDevice>,
    pub(super) ops: Vec<Op>,
    pub(super) injections: Vec<Injection>,
    mac_seq: u32,
    next_id: LinkId,
}

/// The directory sysfs lists every virtual (driver-less) interface of a namespace under.
const VIRTUAL_DEVICES: &str = "/sys/devices/virtual";

impl World {
    pub(super) fn new(host: &str) -> Self {
        let mut w = Self {
            namespaces: Vec::new(),
            devices: Vec::new(),
            ops: Vec::new(),
            injections: Vec::new(),
            mac_seq: 0,
            next_id: 0,
        };
        w.add_namespace(host);
        w
    }

    pub(super) fn add_namespace(&mut self, name: &str) -> usize {
        if let Some(id) = self.ns_id(name) {
            return id;
        }
        let lo = self.new_id();
        self.namespaces.push(NsState::new(name, lo));
        self.namespaces.len() - 1
    }

    pub(super) fn ns_id(&self, name: &str) -> Option<usize> {
        self.namespaces.iter().position(|n| n.alive && n.name == name)
    }

    pub(super) fn new_id(&mut self) -> LinkId {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn next_mac(&mut self) -> MacAddr {
        self.mac_seq += 1;
        let [_, a, b, c] = self.mac_seq.to_be_bytes();
        MacAddr::new([0x02, 0xfa, 0xce, a, b, c])
    }

    pub(super) fn injected(&mut self, op: &Op) -> Option<NetError> {
        let pos = self.injections.iter().position(|inj| match inj {
            Injection::Next { kind, netns, .. } => *kind == op.kind && netns.as_ref().is_none_or(|n| *n == op.netns),
            Injection::When(_) => false,
        });
        if let Some(pos) = pos
            && let Injection::Next { error, .. } = self.injections.remove(pos)
        {
            return Some(NetError::new(error, format!("injected error ({error}) for {:?} {}", op.kind, op.detail)));
        }
        self.injections.iter().find_map(|inj| match inj {
            Injection::When(pred) => pred(op),
            Injection::Next { .. } => None,
        })
    }

    /// Where the link `id` is: (namespace, index).
    pub(super) fn locate(&self, id: LinkId) -> Option<(usize, u32)> {
        self.namespaces
            .iter()
            .enumerate()
            .filter(|(_, n)| n.alive)
            .find_map(|(ns, n)| n.links.values().find(|l| l.id == id).map(|l| (ns, l.index)))
    }

    pub(super) fn get(&self, id: LinkId) -> Option<&FLink> {
        let (ns, index) = self.locate(id)?;
        self.namespaces[ns].links.get(&index)
    }

    /// All links whose parent is `id` (wherever they are).
    pub(super) fn children(&self, id: LinkId) -> Vec<&FLink> {
        self.namespaces
            .iter()
            .filter(|n| n.alive)
            .flat_map(|n| n.links.values())
            .filter(|l| l.parent == Some(id))
            .collect()
    }

    fn link_ref(&self, ns: usize, id: Option<LinkId>) -> Option<LinkRef> {
        let (lns, index) = self.locate(id?)?;
        Some(LinkRef { index, same_netns: lns == ns })
    }

    /// The operational state the kernel would report.
    fn oper_state(&self, ns: usize, link: &FLink) -> OperState {
        if !link.up {
            return OperState::Down;
        }
        let running = |id: Option<LinkId>| {
            id.and_then(|id| self.locate(id)).is_some_and(|(lns, idx)| {
                self.namespaces[lns].links.get(&idx).is_some_and(|l| self.oper_state(lns, l).is_running())
            })
        };
        match link.kind {
            LinkKind::Loopback | LinkKind::Dummy | LinkKind::Ifb | LinkKind::Other(_) => OperState::Unknown,
            LinkKind::Vrf | LinkKind::Device => OperState::Up,
            // Persistent and nobody attached: no carrier.
            LinkKind::Tun => OperState::Down,
            LinkKind::Veth => {
                let peer_up = link.peer.and_then(|p| self.get(p)).is_some_and(|p| p.up);
                if peer_up { OperState::Up } else { OperState::LowerLayerDown }
            }
            LinkKind::Macvlan | LinkKind::Macvtap | LinkKind::Ipvlan | LinkKind::Vlan => {
                if running(link.parent) {
                    OperState::Up
                } else {
                    OperState::LowerLayerDown
                }
            }
            LinkKind::Bridge => {
                let state = &self.namespaces[ns];
                let ports: Vec<&FLink> = state.links.values().filter(|l| l.master == Some(link.index)).collect();
                if ports.is_empty() {
                    OperState::Unknown
                } else if ports.iter().any(|p| self.oper_state(ns, p).is_running()) {
                    OperState::Up
                } else {
                    OperState::Down
                }
            }
        }
    }

    /// The link as [`Net`](crate::net::Net) reports it.
    pub(super) fn view(&self, ns: usize, link: &FLink) -> Link {
        let state = &self.namespaces[ns];
        let is_port = link.master.and_then(|m| state.links.get(&m)).is_some_and(|m| m.kind == LinkKind::Bridge);
        let mut out = Link::new(link.index, &link.name, link.kind.clone());
        out.info = link.info;
        out.mac = link.mac;
        out.mtu = link.mtu;
        out.up = link.up;
        out.oper_state = self.oper_state(ns, link);
        out.promisc = link.promisc;
        out.allmulti = link.allmulti;
        out.txqlen = link.txqlen;
        out.alias = link.alias.clone();
        out.master = link.master;
        out.peer = self.link_ref(ns, link.peer);
        out.parent = self.link_ref(ns, link.parent);
        out.hairpin = is_port.then_some(link.hairpin);
        out
    }

    /// Deletes link `index` of namespace `ns`, its veth peer and (recursively) its children.
    pub(super) fn delete_link(&mut self, ns: usize, index: u32) -> NetResult<()> {
        let link = self.namespaces[ns].link(index)?;
        if matches!(link.kind, LinkKind::Loopback | LinkKind::Device) {
            return Err(NetError::from_errno(
                libc::EOPNOTSUPP,
                format_args!("delete {:?}: the device cannot be deleted", link.name),
            ));
        }
        self.remove_cascade(link.id);
        Ok(())
    }

    /// Removes a link with everything the kernel removes along with it.
    fn remove_cascade(&mut self, id: LinkId) {
        let Some((ns, index)) = self.locate(id) else {
            return;
        };
        let Some(link) = self.namespaces[ns].detach(index) else {
            return;
        };
        if let Some(dev) = link.device {
            self.devices[dev].link = None;
        }
        let children: Vec<LinkId> = self.children(id).iter().map(|l| l.id).collect();
        for child in children {
            self.remove_cascade(child);
        }
        if let Some(peer) = link.peer {
            self.remove_cascade(peer);
        }
    }

    /// Moves link `index` of `ns` to `target`, renamed to `new_name` there if given.
    pub(super) fn move_link(&mut self, ns: usize, index: u32, target: usize, new_name: Option<&str>) -> NetResult<()> {
        let link = self.namespaces[ns].link(index)?;
        if link.netns_local() {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("move {:?}: the link is local to its namespace", link.name),
            ));
        }
        let name = new_name.unwrap_or(&link.name).to_owned();
        if target == ns {
            if name != link.name {
                self.namespaces[ns].name_free(&name, &format!("move {:?}", link.name))?;
                let old = std::mem::replace(&mut self.namespaces[ns].link_mut(index)?.name, name.clone());
                self.namespaces[ns].rename_sysctls(&old, &name);
            }
            return Ok(());
        }
        self.namespaces[target].name_free(&name, &format!("move {:?} to another namespace", link.name))?;
        let mut link = self.namespaces[ns].detach(index).ok_or_else(|| no_device(index))?;
        let tgt = &mut self.namespaces[target];
        let new_index = if tgt.links.contains_key(&index) { tgt.alloc_index() } else { index };
        link.index = new_index;
        link.name = name;
        link.up = false;
        link.master = None;
        link.hairpin = false;
        // The device is unregistered from the old namespace: its qdiscs and filters go.
        link.tc = LinkTc::default();
        tgt.links.insert(new_index, link);
        Ok(())
    }

    pub(super) fn change_link(&mut self, ns: usize, index: u32, change: &LinkChange) -> NetResult<()> {
        let link = self.namespaces[ns].link(index)?.clone();
        let what = format!("set {:?}", link.name);
        let state = &mut self.namespaces[ns];
        match change {
            LinkChange::Up => state.set_up(index),
            LinkChange::Down => state.set_down(index),
            LinkChange::Mtu(mtu) => self.set_mtu(ns, &link, *mtu),
            LinkChange::Mac(mac) => {
                if link.kind == LinkKind::Ipvlan {
                    return Err(NetError::from_errno(
                        libc::EOPNOTSUPP,
                        format_args!("{what} address: an ipvlan uses its parent's address"),
                    ));
                }
                check_mac(*mac, &what)?;
                state.link_mut(index)?.mac = *mac;
                Ok(())
            }
            LinkChange::Master(Some(master)) => self.set_master(ns, &link, *master),
            LinkChange::Master(None) => {
                let old = link.master.and_then(|m| state.links.get(&m)).map(|m| m.kind.clone());
                let l = state.link_mut(index)?;
                l.master = None;
                l.hairpin = false;
                if old == Some(LinkKind::Vrf) {
                    state.cycle(index)?;
                }
                Ok(())
            }
            LinkChange::Promisc(on) => {
                state.link_mut(index)?.promisc = *on;
                Ok(())
            }
            LinkChange::AllMulti(on) => {
                state.link_mut(index)?.allmulti = *on;
                Ok(())
            }
            LinkChange::TxQLen(len) => {
                state.link_mut(index)?.txqlen = *len;
                Ok(())
            }
            LinkChange::Hairpin(on) => {
                let is_port = link.master.and_then(|m| state.links.get(&m)).is_some_and(|m| m.kind == LinkKind::Bridge);
                if !is_port {
                    return Err(NetError::from_errno(
                        libc::EOPNOTSUPP,
                        format_args!("set hairpin on #{index}: not a bridge port"),
                    ));
                }
                state.link_mut(index)?.hairpin = *on;
                Ok(())
            }
            LinkChange::Name(name) => {
                if *name == link.name {
                    return Ok(());
                }
                state.name_free(name, &format!("rename {:?}", link.name))?;
                state.link_mut(index)?.name = name.clone();
                state.rename_sysctls(&link.name, name);
                Ok(())
            }
            LinkChange::Alias(alias) => {
                state.link_mut(index)?.alias = alias.clone().filter(|a| !a.is_empty());
                Ok(())
            }
        }
    }

    fn set_mtu(&mut self, ns: usize, link: &FLink, mtu: u32) -> NetResult<()> {
        let what = format!("set {:?}", link.name);
        check_mtu(&link.kind, mtu, &what)?;
        if let Some(parent) = link.parent.and_then(|p| self.get(p))
            && mtu > parent.mtu
        {
            let errno = if link.kind == LinkKind::Vlan { libc::ERANGE } else { libc::EINVAL };
            return Err(NetError::from_errno(
                errno,
                format_args!("{what}: mtu {mtu} exceeds the parent's ({})", parent.mtu),
            ));
        }
        self.namespaces[ns].link_mut(link.index)?.mtu = mtu;
        // Children follow: macvlans and vlans are clamped, ipvlans take the parent's MTU.
        let children: Vec<(LinkId, LinkKind, u32)> =
            self.children(link.id).iter().map(|c| (c.id, c.kind.clone(), c.mtu)).collect();
        for (id, kind, child_mtu) in children {
            let new = if kind == LinkKind::Ipvlan { mtu } else { child_mtu.min(mtu) };
            if let Some((cns, cidx)) = self.locate(id) {
                self.namespaces[cns].link_mut(cidx)?.mtu = new;
            }
        }
        Ok(())
    }

    fn set_master(&mut self, ns: usize, link: &FLink, master: u32) -> NetResult<()> {
        let index = link.index;
        let state = &self.namespaces[ns];
        // The kernel answers EINVAL for a master index that does not exist.
        let m = state.links.get(&master).ok_or_else(|| {
            NetError::from_errno(libc::EINVAL, format_args!("set master of #{index}: no link #{master}"))
        })?;
        let kind = m.kind.clone();
        if !matches!(kind, LinkKind::Bridge | LinkKind::Vrf) || master == index {
            return Err(NetError::from_errno(libc::EOPNOTSUPP, format_args!("set master of #{index} to #{master}")));
        }
        if link.master == Some(master) {
            return Ok(());
        }
        if kind == LinkKind::Bridge && self.children(link.id).iter().any(|c| c.kind != LinkKind::Vlan) {
            return Err(NetError::from_errno(
                libc::EBUSY,
                format_args!("set master of {:?}: it carries macvlans or ipvlans", link.name),
            ));
        }
        let state = &mut self.namespaces[ns];
        let l = state.link_mut(index)?;
        l.master = Some(master);
        l.hairpin = false;
        if kind == LinkKind::Vrf {
            state.cycle(index)?;
        }
        Ok(())
    }

    /// Destroys namespace `id` like the kernel does when its last reference goes: registered
    /// physical devices return to the host namespace (renamed `dev<index>` if their name is
    /// taken there), every other link is deleted together with its veth peer and children
    /// elsewhere.
    pub(super) fn remove_namespace(&mut self, id: usize) {
        let links: Vec<FLink> = self.namespaces[id].links.values().cloned().collect();
        for link in links {
            if link.device.is_some() && id != 0 && self.namespaces[0].alive {
                let name = if self.namespaces[0].by_name(&link.name).is_some() {
                    format!("dev{}", link.index)
                } else {
                    link.name.clone()
                };
                // Cannot fail: the device is not namespace-local and the name is free.
                let _ = self.move_link(id, link.index, 0, Some(&name));
            } else {
                self.remove_cascade(link.id);
            }
        }
        let ns = &mut self.namespaces[id];
        ns.alive = false;
        ns.links.clear();
        ns.addrs.clear();
        ns.routes.clear();
    }

    /// The names of a device's interfaces that are in namespace `ns`, sorted; `None` when the
    /// device has no network interface at all.
    fn device_interfaces(&self, ns: usize, dev: &FDevice) -> Option<Vec<String>> {
        let id = dev.link?;
        let mut names: Vec<String> =
            self.namespaces[ns].links.values().filter(|l| l.id == id).map(|l| l.name.clone()).collect();
        names.sort();
        Some(names)
    }

    pub(super) fn bus_device(&self, ns: usize, bus: DeviceBus, id: &str) -> Option<BusDevice> {
        let dev = self.devices.iter().find(|d| d.bus.as_ref().is_some_and(|(b, i)| *b == bus && i == id))?;
        Some(BusDevice::new(bus, id, dev.path.clone(), dev.driver.clone(), self.device_interfaces(ns, dev)))
    }

    pub(super) fn kernel_path_interfaces(&self, ns: usize, path: &Path) -> Option<Vec<String>> {
        if path == Path::new(VIRTUAL_DEVICES) {
            let mut names: Vec<String> =
                self.namespaces[ns].links.values().filter(|l| l.device.is_none()).map(|l| l.name.clone()).collect();
            names.sort();
            return Some(names);
        }
        let dev = self.devices.iter().find(|d| d.path == path)?;
        self.device_interfaces(ns, dev)
    }

    pub(super) fn check_new_mac(mac: Option<MacAddr>, what: &str) -> NetResult<()> {
        mac.map_or(Ok(()), |m| check_mac(m, what))
    }
}
