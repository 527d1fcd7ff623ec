//! Dummy links.

use crate::net::backend::{Common, NewLink};
use crate::net::link::{common_setters, create_named};
use crate::net::{Link, Net, NetResult};

impl Net {
    /// Starts building a dummy link (the kernel needs `CONFIG_DUMMY`; without it the error is of kind
    /// [`NetErrorKind::NotSupported`](crate::net::NetErrorKind::NotSupported)).
    pub fn dummy(&self, name: &str) -> DummyRequest<'_> {
        DummyRequest { net: self, common: Common::new(name), temp_name: false }
    }
}

/// Builder for a dummy link; see [`Net::dummy`]. Defaults for dummy links: MTU 1500, random MAC.
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct DummyRequest<'a> {
    net: &'a Net,
    common: Common,
    temp_name: bool,
}

impl DummyRequest<'_> {
    common_setters!();

    /// Creates the link and returns it (as seen in its namespace).
    pub async fn execute(self) -> NetResult<Link> {
        let common = self.common;
        create_named(self.net, &common.name.clone(), self.temp_name, |name| {
            NewLink::Dummy(Common { name: name.to_owned(), ..common.clone() })
        })
        .await
    }
}
