//! The `sbr` binary: runs [`sbr::Sbr`].
cni_sdk::main!(sbr::Sbr);
