//! A plugin with its own configuration keys. The plugin crate depends on `serde` for the
//! derive only; the generated `main` needs neither serde nor tokio.
use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BridgeConfig {
    bridge: String,
    #[serde(default)]
    is_gateway: bool,
}

#[derive(Default)]
struct Bridge;

#[cni_plugin(about = "CNI typed bridge v0.1")]
impl Plugin for Bridge {
    type Config = BridgeConfig;

    async fn add(&self, cx: &Context<BridgeConfig>) -> Result<CniResult> {
        let config = cx.plugin_config();
        let _ = (&config.bridge, config.is_gateway);
        Ok(CniResult::default())
    }

    async fn del(&self, cx: &Context<Self::Config>) -> Result<()> {
        let _ = &cx.plugin_config().bridge;
        Ok(())
    }

    async fn check(&self, _cx: &Context<Self::Config>) -> Result<()> {
        Ok(())
    }
}
