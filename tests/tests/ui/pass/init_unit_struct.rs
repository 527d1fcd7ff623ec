//! A capitalised path given to `init` is a value, not a function: here a unit struct
//! without `Default`.
use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

struct Unit;

#[cni_plugin(init = Unit)]
impl Plugin for Unit {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
