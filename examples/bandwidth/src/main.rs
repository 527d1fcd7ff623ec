//! The `bandwidth` binary: runs [`bandwidth::Bandwidth`].
cni_sdk::main!(bandwidth::Bandwidth);
