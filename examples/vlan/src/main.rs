//! The `vlan` binary: runs [`vlan::Vlan`].
cni_sdk::main!(vlan::Vlan);
