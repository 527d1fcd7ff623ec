//! Persistent tun/tap devices.

use crate::net::backend::{Common, NewLink, TunSpec};
use crate::net::link::{common_setters, create_named};
use crate::net::{Link, Net, NetResult, TunMode};

impl Net {
    /// Starts building a persistent tun or tap device.
    ///
    /// rtnetlink cannot create these: the kernel backend opens `/dev/net/tun` on a thread inside
    /// the target namespace and configures the device with the `TUNSETIFF`, `TUNSETOWNER`,
    /// `TUNSETGROUP` and `TUNSETPERSIST` ioctls, then sets MTU and MAC over netlink. A name that
    /// is taken is refused ([`Exists`](crate::net::NetErrorKind::Exists)) rather than attached
    /// to. The device is persistent: it stays until deleted, and its operational state is
    /// [`Down`](crate::net::OperState::Down) (no carrier) until a program attaches a queue.
    pub fn tuntap(&self, name: &str, mode: TunMode) -> TuntapRequest<'_> {
        TuntapRequest {
            net: self,
            common: Common::new(name),
            temp_name: false,
            spec: TunSpec { mode, owner: None, group: None, multi_queue: false, vnet_hdr: false, pi: false },
        }
    }

    /// Starts building a persistent tap device: `self.tuntap(name, TunMode::Tap)`.
    pub fn tap(&self, name: &str) -> TuntapRequest<'_> {
        self.tuntap(name, TunMode::Tap)
    }
}

/// Builder for a tun/tap device; see [`Net::tuntap`]. Defaults: MTU 1500, random MAC (tap),
/// no owner or group restriction, single queue, no `vnet_hdr`, no packet information header.
#[derive(Debug)]
#[must_use = "a request does nothing until `.execute().await`"]
pub struct TuntapRequest<'a> {
    net: &'a Net,
    common: Common,
    temp_name: bool,
    spec: TunSpec,
}

impl TuntapRequest<'_> {
    common_setters!();

    /// Only this user may attach to the device.
    pub fn owner(mut self, uid: u32) -> Self {
        self.spec.owner = Some(uid);
        self
    }

    /// Only this group may attach to the device.
    pub fn group(mut self, gid: u32) -> Self {
        self.spec.group = Some(gid);
        self
    }

    /// Allows several queues (`IFF_MULTI_QUEUE`).
    pub fn multi_queue(mut self, on: bool) -> Self {
        self.spec.multi_queue = on;
        self
    }

    /// Prefixes packets with a `virtio_net_hdr` (`IFF_VNET_HDR`), as Go's tap plugin does.
    pub fn vnet_hdr(mut self, on: bool) -> Self {
        self.spec.vnet_hdr = on;
        self
    }

    /// Prefixes packets with the 4-byte protocol information header (no `IFF_NO_PI`).
    pub fn packet_info(mut self, on: bool) -> Self {
        self.spec.pi = on;
        self
    }

    /// Creates the device and returns it (as seen in its namespace). When setting the MTU or
    /// MAC address fails, the device is deleted again and that error returned.
    pub async fn execute(self) -> NetResult<Link> {
        let (common, spec) = (self.common, self.spec);
        let (mtu, mac) = (common.mtu, common.mac);
        let link = create_named(self.net, &common.name.clone(), self.temp_name, |name| NewLink::Tun {
            common: Common { name: name.to_owned(), ..common.clone() },
            spec: spec.clone(),
        })
        .await?;
        if mtu.is_none() && mac.is_none() {
            return Ok(link);
        }
        let target = common.netns.clone().unwrap_or_else(|| self.net.clone());
        let configured = async {
            if let Some(mtu) = mtu {
                target.set_mtu(link.index, mtu).await?;
            }
            if let Some(mac) = mac {
                target.set_mac(link.index, mac).await?;
            }
            target.link_by_index(link.index).await
        };
        match configured.await {
            Ok(link) => Ok(link),
            Err(e) => {
                let _ = target.delete_link(link.index).await;
                Err(e)
            }
        }
    }
}
