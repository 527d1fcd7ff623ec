//! The `passthrough` binary: runs [`passthrough::PassThrough`].
cni_sdk::main!(passthrough::PassThrough);
