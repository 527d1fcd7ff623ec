use cni_sdk::cni_plugin;

struct MyPlugin;

#[cni_plugin]
impl Default for MyPlugin {
    fn default() -> Self {
        MyPlugin
    }
}
