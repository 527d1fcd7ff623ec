use cni_sdk::{CniResult, Context, Plugin, Result, cni_plugin};

#[derive(Default)]
struct P;

#[cni_plugin(name = "my plugin", main = "no")]
impl Plugin for P {
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
