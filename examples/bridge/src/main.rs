//! The `bridge` binary: runs [`bridge::Bridge`].
cni_sdk::main!(bridge::Bridge);
