//! VRF devices.

use crate::net::backend::{Common, NewLink};
use crate::net::link::{common_setters, create_named};
use crate::net::{Link, Net, NetResult};

impl Net {
    /// Starts building a VRF device bound to routing table `table` (the kernel needs
    /// `CONFIG_NET_VRF`; without it the error is of kind
    /// [`NetErrorKind::NotSupported`](crate::net::NetErrorKind::NotSupported)). Table 0 is
    /// refused by the kernel ([`NetErrorKind::InvalidArgument`](crate::net::NetErrorKind::InvalidArgument)).
    pub fn vrf(&self, name: &str, table: u32) -> VrfRequest<'_> {
        VrfRequest { net: self, common: Common::new(name), temp_name: false, table }
    }
}

/// Builder for a VRF device; see [`Net::vrf`]. Defaults: MTU 65575, random MAC. A new VRF is
/// down like any new link, but its operational state is always up.
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct VrfRequest<'a> {
    net: &'a Net,
    common: Common,
    temp_name: bool,
    table: u32,
}

impl VrfRequest<'_> {
    common_setters!();

    /// Creates the device and returns it (as seen in its namespace).
    pub async fn execute(self) -> NetResult<Link> {
        let (common, table) = (self.common, self.table);
        create_named(self.net, &common.name.clone(), self.temp_name, |name| NewLink::Vrf {
            common: Common { name: name.to_owned(), ..common.clone() },
            table,
        })
        .await
    }
}
