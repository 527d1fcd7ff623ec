//! `crate = "..."` for a crate that re-exports `cni_sdk` under another path.
mod toolkit {
    pub use cni_sdk as cni;
}

use toolkit::cni::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct Reexported;

#[cni_plugin(crate = "toolkit::cni", versions = ["1.1.0"])]
impl Plugin for Reexported {
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
