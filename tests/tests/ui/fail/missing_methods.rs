use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct MyPlugin;

#[cni_plugin]
impl Plugin for MyPlugin {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        Ok(CniResult::default())
    }
}
