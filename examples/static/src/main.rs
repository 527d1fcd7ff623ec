//! The `static` binary: runs [`static_ipam::Static`].
cni_sdk::main!(static_ipam::Static);
