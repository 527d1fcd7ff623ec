//! The `tap` binary: runs [`tap::Tap`].
cni_sdk::main!(tap::Tap);
