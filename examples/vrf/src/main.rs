//! The `vrf` binary: runs [`vrf::Vrf`].
cni_sdk::main!(vrf::Vrf);
