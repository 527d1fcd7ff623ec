use cni_sdk::{Context, CniResult, Result, cni_plugin};

#[derive(Default)]
struct MyPlugin;

#[cni_plugin]
impl MyPlugin {
    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        Ok(CniResult::default())
    }
}
