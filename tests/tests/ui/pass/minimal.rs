//! The smallest plugin: no options, `type Config = ()`, `Default` makes the value.
use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct Minimal;

#[cni_plugin]
impl Plugin for Minimal {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        Ok(cx.prev_result().cloned().unwrap_or_default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
