//! Creating links: one function per kind, each with the kernel's checks and errnos.

use cni_types::MacAddr;

use super::model::{FLink, LinkId, check_mtu};
use super::world::World;
use crate::net::backend::{Common, NewLink, TunSpec};
use crate::net::{
    IpvlanFlag, IpvlanMode, KindInfo, LinkKind, MacvlanMode, NetError, NetResult, TunInfo, TunMode, VlanProtocol,
    validate_ifname,
};

/// Where a new link goes: the handle's namespace and the target namespace (the same unless the
/// request names another one).
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    pub(super) ns: usize,
    pub(super) target: usize,
}

impl World {
    pub(super) fn create_link(&mut self, at: Placement, spec: &NewLink) -> NetResult<()> {
        match spec {
            NewLink::Veth { name, peer, mtu, mac, peer_mac, .. } => {
                self.create_veth(at, name, peer, *mtu, *mac, *peer_mac)
            }
            NewLink::Bridge(c) => self.create_simple(at, c, LinkKind::Bridge, "bridge").map(drop),
            NewLink::Dummy(c) => self.create_simple(at, c, LinkKind::Dummy, "dummy").map(drop),
            NewLink::Ifb(c) => self.create_simple(at, c, LinkKind::Ifb, "ifb").map(drop),
            NewLink::Vrf { common, table } => self.create_vrf(at, common, *table),
            NewLink::Macvlan { common, parent, mode, tap, .. } => self.create_macvlan(at, common, *parent, *mode, *tap),
            NewLink::Ipvlan { common, parent, mode, flag } => self.create_ipvlan(at, common, *parent, *mode, *flag),
            NewLink::Vlan { common, parent, id, protocol } => self.create_vlan(at, common, *parent, *id, *protocol),
            NewLink::Tun { common, spec } => self.create_tun(at, common, spec),
        }
    }

    /// Checks shared by every kind: name syntax, name free in the target, MTU range, MAC.
    fn check_common(&self, at: Placement, c: &Common, kind: &LinkKind, what: &str) -> NetResult<()> {
        validate_ifname(&c.name)?;
        self.namespaces[at.target].name_free(&c.name, what)?;
        if let Some(mtu) = c.mtu {
            check_mtu(kind, mtu, what)?;
        }
        World::check_new_mac(c.mac, what)
    }

    /// Registers a new link in the target namespace and returns (index, id).
    fn insert(&mut self, target: usize, name: &str, kind: LinkKind, mac: Option<MacAddr>) -> (u32, LinkId) {
        let mac = mac.unwrap_or_else(|| self.next_mac());
        let id = self.new_id();
        let index = self.namespaces[target].alloc_index();
        self.namespaces[target].links.insert(index, FLink::new(id, index, name, kind, mac));
        (index, id)
    }

    fn link_mut(&mut self, ns: usize, index: u32) -> &mut FLink {
        self.namespaces[ns].links.get_mut(&index).expect("link just inserted")
    }

    fn create_veth(
        &mut self,
        at: Placement,
        name: &str,
        peer: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
        peer_mac: Option<MacAddr>,
    ) -> NetResult<()> {
        let what = format!("create veth {name:?} <-> {peer:?}");
        validate_ifname(name)?;
        validate_ifname(peer)?;
        let (ns, pns) = (at.ns, at.target);
        self.namespaces[ns].name_free(name, &what)?;
        self.namespaces[pns].name_free(peer, &what)?;
        if pns == ns && name == peer {
            return Err(NetError::from_errno(libc::EEXIST, format_args!("{what}: both ends have the same name")));
        }
        if let Some(mtu) = mtu {
            check_mtu(&LinkKind::Veth, mtu, &what)?;
        }
        World::check_new_mac(mac, &what)?;
        World::check_new_mac(peer_mac, &what)?;
        // The kernel registers the peer first.
        let peer_mac = peer_mac.unwrap_or_else(|| self.next_mac());
        let own_mac = mac.unwrap_or_else(|| self.next_mac());
        let (pidx, pid) = self.insert(pns, peer, LinkKind::Veth, Some(peer_mac));
        let (idx, id) = self.insert(ns, name, LinkKind::Veth, Some(own_mac));
        for (n, i, other) in [(pns, pidx, id), (ns, idx, pid)] {
            let l = self.link_mut(n, i);
            l.peer = Some(other);
            if let Some(mtu) = mtu {
                l.mtu = mtu;
            }
        }
        Ok(())
    }

    fn create_simple(&mut self, at: Placement, c: &Common, kind: LinkKind, label: &str) -> NetResult<u32> {
        let what = format!("create {label} {:?}", c.name);
        self.check_common(at, c, &kind, &what)?;
        let (index, _) = self.insert(at.target, &c.name, kind, c.mac);
        if let Some(mtu) = c.mtu {
            self.link_mut(at.target, index).mtu = mtu;
        }
        Ok(index)
    }

    fn create_vrf(&mut self, at: Placement, c: &Common, table: u32) -> NetResult<()> {
        if table == 0 {
            return Err(NetError::from_errno(libc::EINVAL, format_args!("create vrf {:?}: invalid table 0", c.name)));
        }
        let index = self.create_simple(at, c, LinkKind::Vrf, "vrf")?;
        self.link_mut(at.target, index).info = KindInfo::Vrf { table };
        self.namespaces[at.target].add_vrf_rules();
        Ok(())
    }

    /// The parent (lower device) `index` of namespace `ns`, resolved through a macvlan/ipvlan
    /// parent to its own parent when `through` is that kind.
    fn lower_device(&self, ns: usize, index: u32, through: &[LinkKind], what: &str) -> NetResult<FLink> {
        let parent = self.namespaces[ns]
            .links
            .get(&index)
            .ok_or_else(|| NetError::from_errno(libc::ENODEV, format_args!("{what}: no parent link #{index}")))?;
        if through.contains(&parent.kind)
            && let Some(real) = parent.parent.and_then(|p| self.get(p))
        {
            return Ok(real.clone());
        }
        Ok(parent.clone())
    }

    /// The checks `netdev_rx_handler_register` makes: a device has one receive handler (a
    /// bridge port, a macvlan port or an ipvlan port).
    fn rx_handler_free(&self, parent: &FLink, keep: &[LinkKind], what: &str) -> NetResult<()> {
        let bridge_port = parent
            .master
            .and_then(|m| self.locate(parent.id).and_then(|(ns, _)| self.namespaces[ns].links.get(&m)))
            .is_some_and(|m| m.kind == LinkKind::Bridge);
        let other_port = self.children(parent.id).iter().any(|c| c.kind != LinkKind::Vlan && !keep.contains(&c.kind));
        if bridge_port || other_port {
            return Err(NetError::from_errno(
                libc::EBUSY,
                format_args!("{what}: parent {:?} is already a bridge, macvlan or ipvlan port", parent.name),
            ));
        }
        Ok(())
    }

    fn create_macvlan(
        &mut self,
        at: Placement,
        c: &Common,
        parent: u32,
        mode: Option<MacvlanMode>,
        tap: bool,
    ) -> NetResult<()> {
        let (kind, label) = if tap { (LinkKind::Macvtap, "macvtap") } else { (LinkKind::Macvlan, "macvlan") };
        let what = format!("create {label} {:?}", c.name);
        self.check_common(at, c, &kind, &what)?;
        let lower = self.lower_device(at.ns, parent, &[LinkKind::Macvlan, LinkKind::Macvtap], &what)?;
        if !lower.is_ether() {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("{what}: parent {:?} is not an Ethernet device", lower.name),
            ));
        }
        let mtu = c.mtu.unwrap_or(lower.mtu);
        if mtu > lower.mtu {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("{what}: mtu {mtu} exceeds the parent's ({})", lower.mtu),
            ));
        }
        self.rx_handler_free(&lower, &[LinkKind::Macvlan, LinkKind::Macvtap], &what)?;
        let siblings = self.children(lower.id).iter().filter(|s| s.kind != LinkKind::Vlan).count();
        let passthru_port = self.children(lower.id).iter().any(|s| s.macvlan_mode() == Some(MacvlanMode::Passthru));
        let mode = mode.unwrap_or(MacvlanMode::Vepa);
        if passthru_port || (mode == MacvlanMode::Passthru && siblings > 0) {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("{what}: a passthru macvlan must be the only one of {:?}", lower.name),
            ));
        }
        // passthru takes over the parent's address.
        let mac = if mode == MacvlanMode::Passthru { Some(lower.mac) } else { c.mac };
        let (index, _) = self.insert(at.target, &c.name, kind, mac);
        let l = self.link_mut(at.target, index);
        l.mtu = mtu;
        l.parent = Some(lower.id);
        l.info = if tap { KindInfo::Macvtap { mode } } else { KindInfo::Macvlan { mode } };
        Ok(())
    }

    fn create_ipvlan(
        &mut self,
        at: Placement,
        c: &Common,
        parent: u32,
        mode: Option<IpvlanMode>,
        flag: Option<IpvlanFlag>,
    ) -> NetResult<()> {
        let what = format!("create ipvlan {:?}", c.name);
        self.check_common(at, c, &LinkKind::Ipvlan, &what)?;
        let lower = self.lower_device(at.ns, parent, &[LinkKind::Ipvlan], &what)?;
        if !lower.is_ether() {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("{what}: parent {:?} is loopback or not an Ethernet device", lower.name),
            ));
        }
        self.rx_handler_free(&lower, &[LinkKind::Ipvlan], &what)?;
        let mtu = c.mtu.unwrap_or(lower.mtu);
        if mtu > lower.mtu {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("{what}: mtu {mtu} exceeds the parent's ({})", lower.mtu),
            ));
        }
        let info = KindInfo::Ipvlan { mode: mode.unwrap_or(IpvlanMode::L3), flag: flag.unwrap_or_default() };
        // Mode and flags belong to the parent's port: every sibling takes them.
        let siblings: Vec<LinkId> =
            self.children(lower.id).iter().filter(|s| s.kind == LinkKind::Ipvlan).map(|s| s.id).collect();
        for s in siblings {
            if let Some((sns, sidx)) = self.locate(s) {
                self.link_mut(sns, sidx).info = info;
            }
        }
        let (index, _) = self.insert(at.target, &c.name, LinkKind::Ipvlan, Some(lower.mac));
        let l = self.link_mut(at.target, index);
        l.mtu = mtu;
        l.parent = Some(lower.id);
        l.info = info;
        Ok(())
    }

    fn create_vlan(
        &mut self,
        at: Placement,
        c: &Common,
        parent: u32,
        id: u16,
        protocol: Option<VlanProtocol>,
    ) -> NetResult<()> {
        let what = format!("create vlan {:?}", c.name);
        if id >= 4095 {
            return Err(NetError::from_errno(libc::ERANGE, format_args!("{what}: invalid VLAN id {id}")));
        }
        self.check_common(at, c, &LinkKind::Vlan, &what)?;
        let lower = self.lower_device(at.ns, parent, &[], &what)?;
        if lower.kind == LinkKind::Loopback {
            return Err(NetError::from_errno(
                libc::EOPNOTSUPP,
                format_args!("{what}: VLANs not supported on {:?}", lower.name),
            ));
        }
        let protocol = protocol.unwrap_or_default();
        let dup = self.children(lower.id).iter().any(|s| s.info == KindInfo::Vlan { id, protocol });
        if dup {
            return Err(NetError::from_errno(
                libc::EEXIST,
                format_args!("{what}: {:?} already has VLAN {id} ({protocol})", lower.name),
            ));
        }
        let mtu = c.mtu.unwrap_or(lower.mtu);
        if mtu > lower.mtu {
            return Err(NetError::from_errno(
                libc::EINVAL,
                format_args!("{what}: mtu {mtu} exceeds the parent's ({})", lower.mtu),
            ));
        }
        let (index, _) = self.insert(at.target, &c.name, LinkKind::Vlan, Some(c.mac.unwrap_or(lower.mac)));
        let l = self.link_mut(at.target, index);
        l.mtu = mtu;
        l.parent = Some(lower.id);
        l.info = KindInfo::Vlan { id, protocol };
        Ok(())
    }

    fn create_tun(&mut self, at: Placement, c: &Common, spec: &TunSpec) -> NetResult<()> {
        let what = format!("create tun {:?}", c.name);
        validate_ifname(&c.name)?;
        self.namespaces[at.target].name_free(&c.name, &what)?;
        // A tun (layer 3) device has no hardware address.
        let mac = (spec.mode == TunMode::Tun).then(MacAddr::default);
        let (index, _) = self.insert(at.target, &c.name, LinkKind::Tun, mac);
        let l = self.link_mut(at.target, index);
        l.info = KindInfo::Tun(TunInfo {
            mode: spec.mode,
            owner: spec.owner,
            group: spec.group,
            pi: spec.pi,
            vnet_hdr: spec.vnet_hdr,
            multi_queue: spec.multi_queue,
            persist: true,
        });
        Ok(())
    }
}
