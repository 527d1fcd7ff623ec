use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

// Without `init`, the plugin value comes from `Default`.
struct MyPlugin {
    port: u16,
}

#[cni_plugin]
impl Plugin for MyPlugin {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        let _ = self.port;
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
