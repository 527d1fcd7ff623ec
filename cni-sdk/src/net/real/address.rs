//! Addresses: `RTM_NEWADDR` / `RTM_GETADDR` / `RTM_DELADDR`.

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use super::{RealBackend, nl_err};
use crate::net::{Address, NetError, NetResult};

fn parse_address(msg: &AddressMessage) -> Option<Address> {
    let mut address = None;
    let mut local = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Local(a) => local = Some(*a),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface address (IFA_ADDRESS is the peer on point-to-point).
    let ip = local.or(address)?;
    let addr = IpNet::new(ip, msg.header.prefix_len).ok()?;
    Some(Address { index: msg.header.index, addr })
}

impl RealBackend {
    async fn address_messages(&self, index: Option<u32>) -> NetResult<Vec<AddressMessage>> {
        let mut req = self.handle.address().get();
        if let Some(index) = index {
            req = req.set_link_index_filter(index);
        }
        req.execute().try_collect().await.map_err(|e| nl_err(e, "list addresses"))
    }

    pub(super) async fn add_addr(&self, index: u32, addr: IpNet) -> NetResult<()> {
        self.handle
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .execute()
            .await
            .map_err(|e| nl_err(e, format_args!("add address {addr} to #{index}")))
    }

    pub(super) async fn list_addrs(&self, index: Option<u32>) -> NetResult<Vec<Address>> {
        let mut out: Vec<Address> = self.address_messages(index).await?.iter().filter_map(parse_address).collect();
        out.sort();
        Ok(out)
    }

    pub(super) async fn delete_addr(&self, index: u32, addr: IpNet) -> NetResult<()> {
        let msg = self
            .address_messages(Some(index))
            .await?
            .into_iter()
            .find(|m| parse_address(m).is_some_and(|a| a.index == index && a.addr == addr))
            .ok_or_else(|| {
                NetError::from_errno(libc::EADDRNOTAVAIL, format_args!("delete address {addr} from #{index}"))
            })?;
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| nl_err(e, format_args!("delete address {addr} from #{index}")))
    }
}
