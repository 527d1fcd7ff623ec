//! The `portmap` binary: runs [`portmap::Portmap`].
cni_sdk::main!(portmap::Portmap);
