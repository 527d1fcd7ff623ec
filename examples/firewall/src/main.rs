//! The `firewall` binary: runs [`firewall::FirewallPlugin`].
cni_sdk::main!(firewall::FirewallPlugin);
