//! `passthrough`: a chained CNI plugin that returns the previous plugin's result unchanged.
use cni_sdk::{CniResult, Context, Error, Plugin, Result, cni_plugin};

/// Passes `prevResult` through; DEL has nothing to undo.
#[derive(Default, Debug)]
pub struct PassThrough;

#[cni_plugin(about = "CNI passthrough plugin v0.1.0", main = false)]
impl Plugin for PassThrough {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let prev = cx.prev_result().cloned();
        prev.ok_or_else(|| Error::invalid_config("passthrough must be chained after a plugin that returns a result"))
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, cx: &Context<()>) -> Result<()> {
        match cx.prev_result() {
            Some(_) => Ok(()),
            None => Err(Error::invalid_config("CHECK needs the prevResult of ADD")),
        }
    }
}
