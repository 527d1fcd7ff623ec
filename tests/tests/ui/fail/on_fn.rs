use cni_sdk::cni_plugin;

#[cni_plugin]
fn plugin() {}
