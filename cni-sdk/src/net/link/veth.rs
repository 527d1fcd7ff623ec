//! veth pairs.

use cni_types::MacAddr;

use crate::net::backend::NewLink;
use crate::net::link::bad_mac_is_invalid;
use crate::net::{Link, Net, NetResult, validate_ifname};

impl Net {
    /// Starts building a veth pair `name` (in this namespace) ↔ `peer` (in this namespace or the
    /// one given with [`VethRequest::peer_netns`]).
    pub fn veth(&self, name: &str, peer: &str) -> VethRequest<'_> {
        VethRequest {
            net: self,
            name: name.to_owned(),
            peer: peer.to_owned(),
            peer_ns: None,
            mtu: None,
            mac: None,
            peer_mac: None,
        }
    }
}

/// Builder for a veth pair; see [`Net::veth`].
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct VethRequest<'a> {
    net: &'a Net,
    name: String,
    peer: String,
    peer_ns: Option<Net>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    peer_mac: Option<MacAddr>,
}

impl VethRequest<'_> {
    /// Creates the peer end directly in the namespace of `peer_ns`.
    pub fn peer_netns(mut self, peer_ns: &Net) -> Self {
        self.peer_ns = Some(peer_ns.clone());
        self
    }

    /// MTU of both ends (default 1500).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Hardware address of this namespace's end (default: random).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Hardware address of the peer end (default: random).
    pub fn peer_mac(mut self, mac: MacAddr) -> Self {
        self.peer_mac = Some(mac);
        self
    }

    /// Creates the pair and returns `(this end, peer end)`, each as seen in its namespace.
    pub async fn execute(self) -> NetResult<(Link, Link)> {
        validate_ifname(&self.name)?;
        validate_ifname(&self.peer)?;
        let peer_net = self.peer_ns.clone().unwrap_or_else(|| self.net.clone());
        let spec = NewLink::Veth {
            name: self.name.clone(),
            peer: self.peer.clone(),
            peer_ns: self.peer_ns,
            mtu: self.mtu,
            mac: self.mac,
            peer_mac: self.peer_mac,
        };
        self.net.backend.create_link(&spec).await.map_err(bad_mac_is_invalid)?;
        let own = self.net.link(&self.name).await?;
        let peer = peer_net.link(&self.peer).await?;
        Ok((own, peer))
    }
}
