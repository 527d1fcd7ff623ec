//! `crate = path` (unquoted) through a re-export module.
mod sdk {
    pub use ::cni_sdk::*;
}

#[derive(Default)]
struct Quoted;

#[sdk::cni_plugin(crate = self::sdk)]
impl sdk::Plugin for Quoted {
    type Config = ();

    async fn add(&self, _cx: &sdk::Context<()>) -> sdk::Result<sdk::CniResult> {
        Ok(sdk::CniResult::default())
    }

    async fn del(&self, _cx: &sdk::Context<()>) -> sdk::Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &sdk::Context<()>) -> sdk::Result<()> {
        Ok(())
    }
}
