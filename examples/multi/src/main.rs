//! The `multi` binary: runs [`multi::Multi`].
cni_sdk::main!(multi::Multi);
