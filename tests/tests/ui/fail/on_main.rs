// On `fn main` itself: one error, and no second `main` from the macro.
use cni_sdk::cni_plugin;

#[cni_plugin]
fn main() {}
