use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct MyPlugin;

#[cni_plugin]
impl Plugin for MyPlugin {
    async fn add(&self, _cx: &Context<Self::Config>) -> Result<CniResult> {
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<Self::Config>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<Self::Config>) -> Result<()> {
        Ok(())
    }
}
