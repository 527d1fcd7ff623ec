//! macvlan and macvtap links.

use crate::net::backend::{Common, NewLink};
use crate::net::link::{common_setters, create_named};
use crate::net::{Link, MacvlanMode, Net, NetResult};

impl Net {
    /// Starts building a macvlan on the parent (lower device) with index `parent` in this
    /// namespace.
    ///
    /// The kernel's rules, which the fake follows: the parent must exist
    /// ([`NotFound`](crate::net::NetErrorKind::NotFound)) and be an Ethernet device, not
    /// loopback ([`InvalidArgument`](crate::net::NetErrorKind::InvalidArgument)); a parent that
    /// is itself a macvlan is replaced by its own parent; a parent that is a bridge port or has
    /// ipvlans is [`Busy`](crate::net::NetErrorKind::Busy); a `passthru` macvlan must be the only
    /// one of its parent (else `InvalidArgument`), and takes the parent's MAC address.
    pub fn macvlan(&self, name: &str, parent: u32) -> MacvlanRequest<'_> {
        MacvlanRequest { net: self, common: Common::new(name), temp_name: false, parent, mode: None, tap: false }
    }

    /// Starts building a macvtap (a macvlan with a character device, `/dev/tapN`); same rules as
    /// [`Net::macvlan`]. Its transmit queue length defaults to 500.
    pub fn macvtap(&self, name: &str, parent: u32) -> MacvlanRequest<'_> {
        MacvlanRequest { tap: true, ..self.macvlan(name, parent) }
    }
}

/// Builder for a macvlan or macvtap; see [`Net::macvlan`]. Defaults: mode `vepa` (the
/// kernel's), the parent's MTU (a larger MTU is refused), a random MAC.
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct MacvlanRequest<'a> {
    net: &'a Net,
    common: Common,
    temp_name: bool,
    parent: u32,
    mode: Option<MacvlanMode>,
    tap: bool,
}

impl MacvlanRequest<'_> {
    common_setters!();

    /// The mode (default: the kernel's, `vepa`).
    pub fn mode(mut self, mode: MacvlanMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Creates the link and returns it (as seen in its namespace).
    pub async fn execute(self) -> NetResult<Link> {
        let (common, parent, mode, tap) = (self.common, self.parent, self.mode, self.tap);
        create_named(self.net, &common.name.clone(), self.temp_name, |name| NewLink::Macvlan {
            common: Common { name: name.to_owned(), ..common.clone() },
            parent,
            mode,
            tap,
        })
        .await
    }
}
