//! Link operations: lookups, attribute changes, renames, moves, deletion, and one request
//! builder per link kind (in the submodules).

use cni_types::MacAddr;

use super::backend::{LinkChange, NewLink};
use super::{Link, Net, NetError, NetErrorKind, NetResult, random_link_name, validate_ifname};

mod bridge;
mod dummy;
mod ifb;
mod ipvlan;
mod macvlan;
mod tuntap;
mod veth;
mod vlan;
mod vrf;

pub use bridge::BridgeRequest;
pub use dummy::DummyRequest;
pub use ifb::IfbRequest;
pub use ipvlan::IpvlanRequest;
pub use macvlan::MacvlanRequest;
pub use tuntap::TuntapRequest;
pub use veth::VethRequest;
pub use vlan::VlanRequest;
pub use vrf::VrfRequest;

/// Creates the link described by `spec` (whose name is `spec_for(name)`) through `net`, in
/// `spec`'s target namespace or `net`'s, and returns it as seen there.
///
/// With `temp_name`, the link is created under [`random_link_name`] and renamed to `name` once
/// it exists; a failed rename deletes it again and returns the rename's error.
pub(super) async fn create_named(
    net: &Net,
    name: &str,
    temp_name: bool,
    spec_for: impl Fn(&str) -> NewLink,
) -> NetResult<Link> {
    validate_ifname(name)?;
    let created_as = if temp_name { random_link_name() } else { name.to_owned() };
    let spec = spec_for(&created_as);
    let target = spec.target().cloned().unwrap_or_else(|| net.clone());
    net.backend.create_link(&spec).await.map_err(bad_mac_is_invalid)?;
    let link = target.link(&created_as).await?;
    if temp_name {
        if let Err(e) = target.rename_link(link.index, name).await {
            // Best effort: the caller gets the rename error, which says why.
            let _ = target.delete_link(link.index).await;
            return Err(e);
        }
        return target.link_by_index(link.index).await;
    }
    Ok(link)
}

/// The kernel reports an unusable hardware address (multicast, all zero) as `EADDRNOTAVAIL`,
/// which on its own would read as "not found"; it is an invalid argument.
pub(super) fn bad_mac_is_invalid(e: NetError) -> NetError {
    if e.errno() == Some(libc::EADDRNOTAVAIL) { e.with_kind(NetErrorKind::InvalidArgument) } else { e }
}

impl Net {
    /// All links of the namespace, ordered by index.
    pub async fn links(&self) -> NetResult<Vec<Link>> {
        self.backend.links().await
    }

    /// The link called `name`, or `None`.
    pub async fn find_link(&self, name: &str) -> NetResult<Option<Link>> {
        self.backend.link_by_name(name).await
    }

    /// The link called `name`; an error of kind [`NetErrorKind::NotFound`] if there is none.
    pub async fn link(&self, name: &str) -> NetResult<Link> {
        self.find_link(name)
            .await?
            .ok_or_else(|| NetError::new(NetErrorKind::NotFound, format!("link {name:?} not found")))
    }

    /// The link with index `index`, or `None`.
    pub async fn find_link_by_index(&self, index: u32) -> NetResult<Option<Link>> {
        self.backend.link_by_index(index).await
    }

    /// The link with index `index`; an error of kind [`NetErrorKind::NotFound`] if there is none.
    pub async fn link_by_index(&self, index: u32) -> NetResult<Link> {
        self.find_link_by_index(index)
            .await?
            .ok_or_else(|| NetError::new(NetErrorKind::NotFound, format!("link with index {index} not found")))
    }

    async fn change(&self, index: u32, change: LinkChange) -> NetResult<()> {
        self.backend.change_link(index, &change).await
    }

    /// Sets the link administratively up.
    pub async fn set_up(&self, index: u32) -> NetResult<()> {
        self.change(index, LinkChange::Up).await
    }

    /// Sets the link administratively down.
    pub async fn set_down(&self, index: u32) -> NetResult<()> {
        self.change(index, LinkChange::Down).await
    }

    /// Sets the MTU. A macvlan, ipvlan or vlan cannot exceed its parent's MTU.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> NetResult<()> {
        self.change(index, LinkChange::Mtu(mtu)).await
    }

    /// Sets the hardware address. A multicast or all-zero address is an error of kind
    /// [`NetErrorKind::InvalidArgument`].
    pub async fn set_mac(&self, index: u32, mac: MacAddr) -> NetResult<()> {
        self.change(index, LinkChange::Mac(mac)).await.map_err(bad_mac_is_invalid)
    }

    /// Attaches the link to the bridge (or other master) with index `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> NetResult<()> {
        self.change(index, LinkChange::Master(Some(master))).await
    }

    /// Detaches the link from its master.
    pub async fn set_no_master(&self, index: u32) -> NetResult<()> {
        self.change(index, LinkChange::Master(None)).await
    }

    /// Turns hairpin mode of a bridge port on or off.
    pub async fn set_hairpin(&self, index: u32, on: bool) -> NetResult<()> {
        self.change(index, LinkChange::Hairpin(on)).await
    }

    /// Turns promiscuous mode on or off.
    pub async fn set_promisc(&self, index: u32, on: bool) -> NetResult<()> {
        self.change(index, LinkChange::Promisc(on)).await
    }

    /// Turns all-multicast mode on or off (`ip link set ... allmulticast on`).
    pub async fn set_allmulti(&self, index: u32, on: bool) -> NetResult<()> {
        self.change(index, LinkChange::AllMulti(on)).await
    }

    /// Sets the transmit queue length (`ip link set ... txqueuelen N`).
    pub async fn set_txqlen(&self, index: u32, txqlen: u32) -> NetResult<()> {
        self.change(index, LinkChange::TxQLen(txqlen)).await
    }

    /// Renames the link. A name that is taken is an error of kind [`NetErrorKind::Exists`];
    /// renaming to the current name does nothing. Linux before 6.2 also refuses to rename a
    /// link that is up ([`NetErrorKind::Busy`]), so set it down first when that matters (Go's
    /// plugins do).
    pub async fn rename_link(&self, index: u32, name: &str) -> NetResult<()> {
        validate_ifname(name)?;
        self.change(index, LinkChange::Name(name.to_owned())).await
    }

    /// Sets the interface alias (`ifalias`, at most 255 bytes); an empty string clears it.
    pub async fn set_alias(&self, index: u32, alias: &str) -> NetResult<()> {
        if alias.len() > 255 || alias.contains('\0') {
            return Err(NetError::new(
                NetErrorKind::InvalidArgument,
                format!("invalid interface alias {alias:?} (at most 255 bytes, no NUL)"),
            ));
        }
        let alias = (!alias.is_empty()).then(|| alias.to_owned());
        self.change(index, LinkChange::Alias(alias)).await
    }

    /// Clears the interface alias.
    pub async fn clear_alias(&self, index: u32) -> NetResult<()> {
        self.change(index, LinkChange::Alias(None)).await
    }

    /// Moves the link into the namespace of `target` and returns it as seen there (its index
    /// may change; the kernel removes its addresses and sets it down).
    pub async fn move_link(&self, index: u32, target: &Net) -> NetResult<Link> {
        let link = self.link_by_index(index).await?;
        self.backend.move_link(index, target, None).await?;
        target.link(&link.name).await
    }

    /// Moves the link into the namespace of `target`, giving it the name `new_name` there in
    /// the same request (what host-device does with `CNI_IFNAME` and, on DEL, the original
    /// name). Returns it as seen in `target`.
    ///
    /// A name taken in `target` is an error of kind [`NetErrorKind::Exists`] and nothing moves.
    /// (The kernel itself would move the link under its current name and only then fail the
    /// rename, so the name is checked first.)
    pub async fn move_link_renamed(&self, index: u32, target: &Net, new_name: &str) -> NetResult<Link> {
        validate_ifname(new_name)?;
        let link = self.link_by_index(index).await?;
        if target.find_link(new_name).await?.is_some() {
            return Err(NetError::from_errno(
                libc::EEXIST,
                format_args!("move {:?} to another namespace as {new_name:?}", link.name),
            ));
        }
        self.backend.move_link(index, target, Some(new_name)).await?;
        target.link(new_name).await
    }

    /// Moves the link called `name` into the namespace of `target` (see [`Net::move_link`]).
    pub async fn move_link_by_name(&self, name: &str, target: &Net) -> NetResult<Link> {
        let link = self.link(name).await?;
        self.move_link(link.index, target).await
    }

    /// Deletes the link. Deleting one end of a veth pair deletes the other end too, wherever it
    /// is; deleting a parent deletes its macvlans, macvtaps, ipvlans and vlans, wherever they are.
    pub async fn delete_link(&self, index: u32) -> NetResult<()> {
        self.backend.delete_link(index).await
    }

    /// Deletes the link called `name`. Returns `false` when there is no such link (what DEL
    /// wants to treat as success).
    pub async fn delete_link_by_name(&self, name: &str) -> NetResult<bool> {
        let Some(link) = self.find_link(name).await? else {
            return Ok(false);
        };
        match self.delete_link(link.index).await {
            Ok(()) => Ok(true),
            // Gone in between (e.g. with its veth peer): same outcome.
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The setters every request that creates a single link has (`common: Common`,
/// `temp_name: bool` fields).
macro_rules! common_setters {
    () => {
        /// MTU of the new link (default: see the request's documentation).
        pub fn mtu(mut self, mtu: u32) -> Self {
            self.common.mtu = Some(mtu);
            self
        }

        /// Hardware address of the new link (default: see the request's documentation).
        pub fn mac(mut self, mac: cni_types::MacAddr) -> Self {
            self.common.mac = Some(mac);
            self
        }

        /// Creates the link directly in the namespace of `target` (`IFLA_NET_NS_FD`); a parent
        /// index still refers to this handle's namespace. The returned link is as seen in
        /// `target`.
        pub fn netns(mut self, target: &crate::net::Net) -> Self {
            self.common.netns = Some(target.clone());
            self
        }

        /// Creates the link under a random temporary name ([`random_link_name`](crate::net::random_link_name))
        /// and renames it to the requested name once it exists in its namespace, as Go's
        /// plugins do. If the rename fails, the link is deleted and the rename's error
        /// returned (so a name taken in the target gives [`NetErrorKind::Exists`](crate::net::NetErrorKind::Exists)).
        pub fn via_temp_name(mut self) -> Self {
            self.temp_name = true;
            self
        }
    };
}
pub(crate) use common_setters;
