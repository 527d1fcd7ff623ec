//! The `host-local` binary: runs [`host_local::HostLocal`].
cni_sdk::main!(host_local::HostLocal);
