//! Ifb links.

use crate::net::backend::{Common, NewLink};
use crate::net::link::{common_setters, create_named};
use crate::net::{Link, Net, NetResult};

impl Net {
    /// Starts building an ifb (intermediate functional block) link, the device the bandwidth plugin
    /// redirects ingress traffic to (kernel module `ifb`).
    pub fn ifb(&self, name: &str) -> IfbRequest<'_> {
        IfbRequest { net: self, common: Common::new(name), temp_name: false }
    }
}

/// Builder for a ifb link; see [`Net::ifb`]. Defaults for ifb links: MTU 1500, random MAC, transmit queue length 32.
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct IfbRequest<'a> {
    net: &'a Net,
    common: Common,
    temp_name: bool,
}

impl IfbRequest<'_> {
    common_setters!();

    /// Creates the link and returns it (as seen in its namespace).
    pub async fn execute(self) -> NetResult<Link> {
        let common = self.common;
        create_named(self.net, &common.name.clone(), self.temp_name, |name| {
            NewLink::Ifb(Common { name: name.to_owned(), ..common.clone() })
        })
        .await
    }
}
