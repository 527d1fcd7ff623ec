//! The `netwire-cni` binary: runs [`netwire_cni::NetwirePlugin`].
cni_sdk::main!(netwire_cni::NetwirePlugin);
