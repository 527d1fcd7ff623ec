//! The `dhcp` binary: the IPAM shim the runtime runs, or `dhcp daemon [flags]`.
cni_sdk::main!(dhcp::Dhcp);
