use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct MyPlugin;

#[cni_plugin(go_strict, about = "CNI a", go_strict = false, about = "CNI b")]
impl Plugin for MyPlugin {
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
