//! VLAN links.

use crate::net::backend::{Common, NewLink};
use crate::net::link::{common_setters, create_named};
use crate::net::{Link, Net, NetResult, VlanProtocol};

impl Net {
    /// Starts building a VLAN device with id `id` on the parent with index `parent` in this
    /// namespace (the kernel needs `CONFIG_VLAN_8021Q`; without it the error is of kind
    /// [`NotSupported`](crate::net::NetErrorKind::NotSupported)).
    ///
    /// The kernel's rules, which the fake follows: ids 0..=4094 (else `ERANGE`, kind
    /// [`InvalidArgument`](crate::net::NetErrorKind::InvalidArgument)); the parent must exist
    /// ([`NotFound`](crate::net::NetErrorKind::NotFound)) and support VLANs (loopback does not:
    /// `NotSupported`); one VLAN per parent, protocol and id
    /// ([`Exists`](crate::net::NetErrorKind::Exists)).
    pub fn vlan(&self, name: &str, parent: u32, id: u16) -> VlanRequest<'_> {
        VlanRequest { net: self, common: Common::new(name), temp_name: false, parent, id, protocol: None }
    }
}

/// Builder for a VLAN device; see [`Net::vlan`]. Defaults: protocol 802.1Q, the parent's MTU (a
/// larger MTU is refused), the parent's MAC address.
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct VlanRequest<'a> {
    net: &'a Net,
    common: Common,
    temp_name: bool,
    parent: u32,
    id: u16,
    protocol: Option<VlanProtocol>,
}

impl VlanRequest<'_> {
    common_setters!();

    /// The tag protocol (default 802.1Q).
    pub fn protocol(mut self, protocol: VlanProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Creates the link and returns it (as seen in its namespace).
    pub async fn execute(self) -> NetResult<Link> {
        let (common, parent, id, protocol) = (self.common, self.parent, self.id, self.protocol);
        create_named(self.net, &common.name.clone(), self.temp_name, |name| NewLink::Vlan {
            common: Common { name: name.to_owned(), ..common.clone() },
            parent,
            id,
            protocol,
        })
        .await
    }
}
