//! Bridges ("ensure" semantics).

use cni_types::MacAddr;

use crate::net::backend::{Common, NewLink};
use crate::net::link::bad_mac_is_invalid;
use crate::net::{Link, LinkKind, Net, NetError, NetErrorKind, NetResult, validate_ifname};

impl Net {
    /// Starts building an "ensure bridge" request: create the bridge `name` if missing, reuse it if
    /// it exists as a bridge, fail with [`NetErrorKind::NotABridge`] if another kind of link has
    /// that name.
    pub fn bridge(&self, name: &str) -> BridgeRequest<'_> {
        BridgeRequest { net: self, name: name.to_owned(), mtu: None, mac: None }
    }
}

/// Builder for "ensure a bridge"; see [`Net::bridge`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct BridgeRequest<'a> {
    net: &'a Net,
    name: String,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
}

impl BridgeRequest<'_> {
    /// MTU for a newly created bridge (default 1500).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Hardware address for a newly created bridge (default: random).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Creates the bridge if it does not exist and returns it. An existing bridge is returned
    /// unchanged; an existing link of another kind is an error of kind
    /// [`NetErrorKind::NotABridge`].
    pub async fn execute(self) -> NetResult<Link> {
        validate_ifname(&self.name)?;
        let check = |link: Link| {
            if link.kind == LinkKind::Bridge {
                Ok(link)
            } else {
                Err(NetError::new(
                    NetErrorKind::NotABridge,
                    format!("link {:?} already exists and is not a bridge (kind {:?})", link.name, link.kind),
                ))
            }
        };
        if let Some(link) = self.net.find_link(&self.name).await? {
            return check(link);
        }
        let spec = NewLink::Bridge(Common { mtu: self.mtu, mac: self.mac, ..Common::new(&self.name) });
        match self.net.backend.create_link(&spec).await {
            Ok(()) => {}
            // Lost a race with another creator: use whatever is there now.
            Err(e) if e.kind() == NetErrorKind::Exists => {}
            Err(e) => return Err(bad_mac_is_invalid(e)),
        }
        check(self.net.link(&self.name).await?)
    }
}
