//! The `ptp` binary: runs [`ptp::Ptp`].
cni_sdk::main!(ptp::Ptp);
