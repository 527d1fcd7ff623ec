//! `dummy`: the reference CNI dummy plugin, a drop-in replacement for Go's
//! `plugins/main/dummy` (v1.2.0 and later; same configuration, results and error messages).
//!
//! ADD creates a `dummy` link named `CNI_IFNAME` inside the container's namespace, runs the
//! IPAM plugin (which is required) and gives the link its addresses and routes. Anything that
//! fails after the link exists deletes it again, and anything after IPAM ADD also runs IPAM DEL
//! (Go leaks the link when IPAM returns no address). The link is created from inside the
//! namespace, so a host interface of the same name cannot collide (Go before v1.9.0 did).

#![warn(missing_docs)]

#[cfg(test)]
mod tests;

use cni_sdk::kit::{self, go, with_undo};
use cni_sdk::net::LinkKind;
use cni_sdk::{CniResult, Context, Error, Interface, Plugin, Result, cni_plugin};

/// The dummy plugin: no keys of its own (`ipam` and the standard keys only).
#[derive(Debug, Default, Clone, Copy)]
pub struct Dummy;

/// Go's text when `ipam.type` is missing (ADD and CHECK).
const IPAM_REQUIRED: &str = "dummy interface requires an IPAM configuration";

fn ipam_type(cx: &Context<()>) -> &str {
    cx.config().ipam.as_ref().map(|i| i.plugin_type.as_str()).unwrap_or_default()
}

/// IPAM DEL and STATUS run even without an `ipam.type`, failing as Go's delegation does.
fn ipam_or_no_name(cx: &Context<()>) -> Result<&str> {
    match ipam_type(cx) {
        "" => Err(Error::internal("no plugin name provided")),
        t => Ok(t),
    }
}

fn sandbox(cx: &Context<()>) -> String {
    cx.netns().map(|p| p.display().to_string()).unwrap_or_default()
}

impl Dummy {
    async fn add_in(&self, cx: &Context<()>, ipam_type: &str) -> Result<CniResult> {
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        let ifname = cx.ifname();
        with_undo(async |undo| {
            let link = ctr.dummy(ifname).execute().await.map_err(|e| go::wrap_net("failed to create dummy", &e))?;
            undo.push(format!("delete {ifname:?}"), kit::delete_link_by_name(&ctr, ifname));
            cx.delegate(ipam_type)
                .add_with_rollback(|mut result| async {
                    if result.ips.is_empty() {
                        return Err(Error::internal("IPAM plugin returned missing IP config"));
                    }
                    for ipc in &mut result.ips {
                        ipc.interface = Some(0);
                    }
                    result.interfaces = vec![Interface { sandbox: Some(sandbox(cx)), ..Interface::from(&link) }];
                    kit::configure_iface(&ctr, ifname, &result).await?;
                    Ok(result)
                })
                .await
        })
        .await
    }
}

#[cni_plugin(about = "CNI dummy plugin (cni-rs)", main = false)]
impl Plugin for Dummy {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let t = ipam_type(cx);
        if t.is_empty() {
            return Err(Error::internal(IPAM_REQUIRED));
        }
        self.add_in(cx, t).await
    }

    async fn del(&self, cx: &Context<()>) -> Result<()> {
        cx.delegate(ipam_or_no_name(cx)?).del().await?;
        // No netns, or one that is gone: the link went with it.
        let Some(ctr) = cx.container_net_if_exists().await? else { return Ok(()) };
        kit::delete_link_by_name(&ctr, cx.ifname()).await?;
        Ok(())
    }

    async fn check(&self, cx: &Context<()>) -> Result<()> {
        let t = ipam_type(cx);
        if t.is_empty() {
            return Err(Error::internal(IPAM_REQUIRED));
        }
        let ctr = cx.container_net().await.map_err(|e| go::netns_open_error(cx.netns(), &e))?;
        cx.delegate(t).check().await?;
        let result = cx.prev_result().ok_or_else(|| Error::internal("dummy: Required prevResult missing"))?;
        let netns = sandbox(cx);
        let link =
            kit::validate_expected_interface(&ctr, result, cx.ifname(), &netns, "dummy", |l| l.kind == LinkKind::Dummy)
                .await?;
        if !link.up {
            return Err(Error::internal(format!("Interface {} is down", link.name)));
        }
        // Go's dummy checks the addresses, not the routes.
        kit::validate_expected_ips(&ctr, cx.ifname(), &result.ips).await
    }

    async fn status(&self, cx: &Context<()>) -> Result<()> {
        cx.delegate(ipam_or_no_name(cx)?).status().await
    }
}
