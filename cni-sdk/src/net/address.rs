//! IP addresses of links.

use ipnet::IpNet;

use super::{Address, Net, NetResult};

impl Net {
    /// Adds an address (host bits kept, e.g. `10.200.0.5/24`) to the link.
    pub async fn add_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.backend.add_address(index, addr).await
    }

    /// All addresses of the namespace (IPv4 and IPv6).
    pub async fn addresses(&self) -> NetResult<Vec<Address>> {
        self.backend.addresses(None).await
    }

    /// The addresses of one link.
    pub async fn link_addresses(&self, index: u32) -> NetResult<Vec<Address>> {
        self.backend.addresses(Some(index)).await
    }

    /// Removes an address from the link.
    pub async fn delete_address(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.backend.delete_address(index, addr).await
    }
}
