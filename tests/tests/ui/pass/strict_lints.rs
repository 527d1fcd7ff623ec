//! The expansion is clean under strict user lints (rustc's; clippy's are checked by running
//! clippy over this file, see tests/README.md).
#![deny(
    missing_docs,
    warnings,
    unused_qualifications,
    unused_results,
    unreachable_pub,
    missing_debug_implementations,
    rust_2018_idioms,
    trivial_casts,
    trivial_numeric_casts,
    unused_extern_crates,
    unused_import_braces,
    variant_size_differences,
    single_use_lifetimes,
    elided_lifetimes_in_paths
)]
#![deny(clippy::all, clippy::pedantic)]
#![forbid(unsafe_code)]

use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

/// A documented plugin.
#[derive(Debug, Default)]
struct Linted;

#[cni_plugin(about = "CNI linted v0.1", versions = ["1.0.0"], go_strict = true)]
impl Plugin for Linted {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
