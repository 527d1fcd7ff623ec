//! Procedural macros of `cni-sdk`.
