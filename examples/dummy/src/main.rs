//! The `dummy` binary: runs [`dummy::Dummy`].
cni_sdk::main!(dummy::Dummy);
