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
        MacvlanRequest {
            net: self,
            common: Common::new(name),
            temp_name: false,
            parent,
            mode: None,
            tap: false,
            bc_queue_len: None,
        }
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
    bc_queue_len: Option<u32>,
}

impl MacvlanRequest<'_> {
    common_setters!();

    /// The mode (default: the kernel's, `vepa`).
    pub fn mode(mut self, mode: MacvlanMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The broadcast queue length this link asks for (`IFLA_MACVLAN_BC_QUEUE_LEN`, Linux 5.11
    /// and later; `ip link ... bcqueuelen N`). The parent's queue uses the largest value any of
    /// its macvlans asked for; without it, the kernel's default (1000).
    pub fn bc_queue_len(mut self, len: u32) -> Self {
        self.bc_queue_len = Some(len);
        self
    }

    /// Creates the link and returns it (as seen in its namespace).
    pub async fn execute(self) -> NetResult<Link> {
        let (common, parent, mode, tap, bc_queue_len) =
            (self.common, self.parent, self.mode, self.tap, self.bc_queue_len);
        create_named(self.net, &common.name.clone(), self.temp_name, |name| NewLink::Macvlan {
            common: Common { name: name.to_owned(), ..common.clone() },
            parent,
            mode,
            tap,
            bc_queue_len,
        })
        .await
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use crate::net::MacvlanMode;
    use crate::net::fake::{FakeNetwork, OpKind};

    #[tokio::test]
    async fn the_broadcast_queue_length_is_part_of_the_request() {
        let world = FakeNetwork::new();
        let host = world.host();
        let parent = host.dummy("uplink0").execute().await.unwrap();
        host.macvlan("mv0", parent.index).mode(MacvlanMode::Bridge).bc_queue_len(2000).execute().await.unwrap();
        host.macvlan("mv1", parent.index).execute().await.unwrap();
        let ops: Vec<String> = world.ops_of(OpKind::CreateMacvlan).into_iter().map(|o| o.detail).collect();
        assert_eq!(
            ops,
            [format!("mv0 link #{} mode bridge bcqueuelen 2000", parent.index), format!("mv1 link #{}", parent.index)]
        );
    }
}
