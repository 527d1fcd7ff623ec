// Every problem is reported in one build, options and item alike.
use cni_sdk::{Context, Plugin, Result, cni_plugin};

#[derive(Default)]
struct MyPlugin;

#[cni_plugin(about = "CNI x v1", bogus, versions = ["9.9.9"], about = "again")]
impl Plugin for MyPlugin {
    fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
