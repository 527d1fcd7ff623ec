//! The shim: the binary runtimes exec.
fn main() {
    cni_sdk::daemon::shim_main(memory_ipam::SOCKET, memory_ipam::options());
}
