//! Root tests of the `bandwidth` binary in throwaway namespaces (the plugin's "host" is a
//! namespace too): kernel state, Go differential and interop, and the Go libcni chain.
//! `cargo test -p bandwidth -- --include-ignored` (as root).

mod chain;
mod common;
mod differential;
mod interop;
mod kernel;
