use cni_sdk::cni_plugin;

#[cni_plugin]
#[derive(Default)]
struct MyPlugin;
