//! Typed, versioned structures of the CNI specification.
#![warn(missing_docs)]

pub mod mac;

pub use mac::MacAddr;
