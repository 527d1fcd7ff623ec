//! Delegating to the configured IPAM plugin with Go's errors (`pkg/ipam` `ExecAdd`, `ExecDel`,
//! `ExecCheck`, `ExecStatus`).
//!
//! [`Context::ipam`] refuses a configuration without `ipam.type` up front (code 7). Go's main
//! plugins instead hand the (possibly empty) type to `invoke`, whose plugin lookup fails with
//! `no plugin name provided` or `failed to find plugin "x" in path [...]`, printed as code 999
//! with exactly that text. These helpers give a drop-in those errors; errors the IPAM plugin
//! itself prints (its code, message and details) pass through unchanged.

use cni_types::CniResult;

use crate::{Context, Delegate, Error, ErrorKind, Result};

/// `ipam.type` of the configuration (`""` when there is no `ipam` section).
pub fn ipam_type<C>(cx: &Context<C>) -> &str {
    cx.config().ipam.as_ref().map(|i| i.plugin_type.as_str()).unwrap_or_default()
}

/// Whether the configuration names an IPAM plugin (Go's `n.IPAM.Type != ""`, which decides
/// between a layer-3 and a layer-2 attachment in macvlan, ipvlan, dummy and tap).
pub fn has_ipam<C>(cx: &Context<C>) -> bool {
    !ipam_type(cx).is_empty()
}

fn delegate<C>(cx: &Context<C>) -> Result<Delegate<'_>> {
    let t = ipam_type(cx);
    if t.is_empty() {
        return Err(Error::internal("no plugin name provided"));
    }
    if t.contains('/') {
        return Err(Error::internal(format!("invalid plugin name: {t}")));
    }
    Ok(cx.delegate(t))
}

/// A plugin missing from `CNI_PATH` reads as Go's lookup error (code 999, the lookup's text as
/// the message) instead of the SDK's code 7 with the delegation as context.
fn go_shape(e: Error) -> Error {
    if e.kind() == ErrorKind::PluginNotFound {
        let msg = e.details().unwrap_or_else(|| e.message().to_owned());
        return Error::from_kind(ErrorKind::PluginNotFound, msg).with_code(cni_types::ErrorCode::Internal);
    }
    e
}

/// IPAM ADD (Go `ipam.ExecAdd(n.IPAM.Type, stdin)`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use cni_sdk::testing::{InProcessExec, PluginTest};
/// use cni_sdk::{kit, Context, CniResult, Plugin, Result};
///
/// struct P;
/// impl Plugin for P {
///     type Config = ();
///     async fn add(&self, cx: &Context<()>) -> Result<CniResult> { kit::ipam_add(cx).await }
///     async fn del(&self, cx: &Context<()>) -> Result<()> { kit::ipam_del(cx).await }
///     async fn check(&self, _cx: &Context<()>) -> Result<()> { Ok(()) }
/// }
///
/// // No `ipam` section: Go's text, code 999.
/// let err = PluginTest::new(&P).run().await.expect_error(999);
/// assert_eq!(err.msg, "no plugin name provided");
/// // A type that is not in CNI_PATH (here: not served by the test's in-process executor).
/// let out = PluginTest::new(&P).config_keys(serde_json::json!({"ipam": {"type": "nope"}})).run().await;
/// assert_eq!(out.expect_error(999).msg, r#"failed to find plugin "nope" in path [in-process]"#);
/// # });
/// ```
pub async fn ipam_add<C>(cx: &Context<C>) -> Result<CniResult> {
    delegate(cx)?.add().await.map_err(go_shape)
}

/// IPAM DEL (Go `ipam.ExecDel`).
pub async fn ipam_del<C>(cx: &Context<C>) -> Result<()> {
    delegate(cx)?.del().await.map_err(go_shape)
}

/// IPAM CHECK (Go `ipam.ExecCheck`).
pub async fn ipam_check<C>(cx: &Context<C>) -> Result<()> {
    delegate(cx)?.check().await.map_err(go_shape)
}

/// IPAM STATUS (Go `ipam.ExecStatus`, plugins v1.6.0 and later).
pub async fn ipam_status<C>(cx: &Context<C>) -> Result<()> {
    delegate(cx)?.status().await.map_err(go_shape)
}
