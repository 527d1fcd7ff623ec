// A path given to `init` is called with no arguments.
use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

struct MyPlugin {
    mtu: u32,
}

fn make_plugin(mtu: u32) -> MyPlugin {
    MyPlugin { mtu }
}

#[cni_plugin(init = make_plugin)]
impl Plugin for MyPlugin {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        let _ = self.mtu;
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
