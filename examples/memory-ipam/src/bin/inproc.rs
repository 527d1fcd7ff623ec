//! The in-process variant.
fn main() {
    cni_sdk::plugin_main(memory_ipam::MemoryIpam::default(), memory_ipam::options());
}
