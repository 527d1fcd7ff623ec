//! The `host-device` binary: runs [`host_device::HostDevice`].
cni_sdk::main!(host_device::HostDevice);
