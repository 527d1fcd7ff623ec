//! The `tuning` binary: runs [`tuning::Tuning`].
cni_sdk::main!(tuning::Tuning);
