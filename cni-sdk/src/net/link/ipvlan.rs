//! ipvlan links.

use crate::net::backend::{Common, NewLink};
use crate::net::link::create_named;
use crate::net::{IpvlanFlag, IpvlanMode, Link, Net, NetResult};

impl Net {
    /// Starts building an ipvlan on the parent with index `parent` in this namespace (the kernel
    /// needs `CONFIG_IPVLAN`; without it the error is of kind
    /// [`NotSupported`](crate::net::NetErrorKind::NotSupported)).
    ///
    /// The kernel's rules, which the fake follows: the parent must exist
    /// ([`NotFound`](crate::net::NetErrorKind::NotFound)) and be an Ethernet device, not
    /// loopback ([`InvalidArgument`](crate::net::NetErrorKind::InvalidArgument)); a parent that
    /// is itself an ipvlan is replaced by its own parent; a parent that has macvlans or is a
    /// bridge port is [`Busy`](crate::net::NetErrorKind::Busy). An ipvlan shares its parent's
    /// MAC address, and the mode and flag are the parent's: creating an ipvlan sets them for
    /// all ipvlans of that parent.
    pub fn ipvlan(&self, name: &str, parent: u32) -> IpvlanRequest<'_> {
        IpvlanRequest { net: self, common: Common::new(name), temp_name: false, parent, mode: None, flag: None }
    }
}

/// Builder for an ipvlan; see [`Net::ipvlan`]. Defaults: mode `l3` and flag `bridge` (the
/// kernel's), the parent's MTU (a larger MTU is refused). A MAC address cannot be chosen.
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct IpvlanRequest<'a> {
    net: &'a Net,
    common: Common,
    temp_name: bool,
    parent: u32,
    mode: Option<IpvlanMode>,
    flag: Option<IpvlanFlag>,
}

impl IpvlanRequest<'_> {
    /// MTU of the new link (default: the parent's).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.common.mtu = Some(mtu);
        self
    }

    /// Creates the link directly in the namespace of `target` (`IFLA_NET_NS_FD`); the parent
    /// index still refers to this handle's namespace. The returned link is as seen in `target`.
    pub fn netns(mut self, target: &Net) -> Self {
        self.common.netns = Some(target.clone());
        self
    }

    /// Creates the link under a random temporary name and renames it once it exists in its
    /// namespace (see [`MacvlanRequest::via_temp_name`](crate::net::MacvlanRequest::via_temp_name)).
    pub fn via_temp_name(mut self) -> Self {
        self.temp_name = true;
        self
    }

    /// The mode (default: the kernel's, `l3`).
    pub fn mode(mut self, mode: IpvlanMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The isolation flag (default: `bridge`).
    pub fn flag(mut self, flag: IpvlanFlag) -> Self {
        self.flag = Some(flag);
        self
    }

    /// Creates the link and returns it (as seen in its namespace).
    pub async fn execute(self) -> NetResult<Link> {
        let (common, parent, mode, flag) = (self.common, self.parent, self.mode, self.flag);
        create_named(self.net, &common.name.clone(), self.temp_name, |name| NewLink::Ipvlan {
            common: Common { name: name.to_owned(), ..common.clone() },
            parent,
            mode,
            flag,
        })
        .await
    }
}
