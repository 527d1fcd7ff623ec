//! Veth pairs between the host and a container (Go `ip.SetupVeth`).

use cni_types::MacAddr;

use super::go;
use crate::net::{Link, Net, NetErrorKind, random_link_name};
use crate::{Error, Result};

/// Creates a veth pair with `ifname` in the container and a random `veth…` name on the host
/// (10 tries on a name clash), both up, `accept_ra=0` on the host end (Go `ip.SetupVeth`).
/// Returns `(host end, container end)`. On failure nothing is left behind.
pub async fn setup_veth(
    host: &Net,
    ctr: &Net,
    ifname: &str,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
) -> Result<(Link, Link)> {
    for _ in 0..10 {
        let host_name = random_link_name();
        if ctr.find_link(ifname).await?.is_some() {
            return Err(Error::from_kind(
                crate::ErrorKind::Exists,
                format!("container veth name ({ifname:?}) peer provided ({host_name:?}) already exists"),
            )
            .with_code(cni_types::ErrorCode::Internal));
        }
        let mut req = host.veth(&host_name, ifname).peer_netns(ctr);
        if let Some(mtu) = mtu {
            req = req.mtu(mtu);
        }
        if let Some(mac) = mac {
            req = req.peer_mac(mac);
        }
        match req.execute().await {
            Ok((h, c)) => {
                let up = async {
                    ctr.set_up(c.index).await.map_err(|e| go::wrap_net(format!("failed to set {ifname:?} up"), &e))?;
                    host.set_up(h.index)
                        .await
                        .map_err(|e| go::wrap_net(format!("failed to set {host_name:?} up"), &e))?;
                    Ok::<_, Error>(())
                };
                if let Err(e) = up.await {
                    let _ = ctr.delete_link(c.index).await;
                    return Err(e);
                }
                // We want to own the routes for this interface.
                let _ = host.set_sysctl(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0").await;
                let h = host.link(&host_name).await?;
                let c = ctr.link(ifname).await?;
                return Ok((h, c));
            }
            Err(e) if e.kind() == NetErrorKind::Exists => {
                if host.find_link(&host_name).await?.is_some() {
                    continue;
                }
                return Err(Error::from_kind(
                    crate::ErrorKind::Exists,
                    format!("container veth name ({ifname:?}) peer provided ({host_name:?}) already exists"),
                )
                .with_code(cni_types::ErrorCode::Internal));
            }
            Err(e) => return Err(go::wrap_net("failed to make veth pair", &e)),
        }
    }
    Err(Error::internal("failed to find a unique veth name"))
}
