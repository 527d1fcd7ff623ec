use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct MyPlugin;

#[cni_plugin]
impl Plugin for MyPlugin {
    type Config = ();

    fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    fn gc(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
