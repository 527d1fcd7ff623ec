//! Root tests of the `sbr` binary in throwaway namespaces (the plugin's "host" is a namespace
//! too): rules and routes on the kernel, Go differential, the namespace lock.
//! `cargo test -p sbr -- --include-ignored` (as root).

mod common;
mod differential;
mod kernel;
