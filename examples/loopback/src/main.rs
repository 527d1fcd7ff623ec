//! The `loopback` binary: runs [`loopback::Loopback`].
cni_sdk::main!(loopback::Loopback);
