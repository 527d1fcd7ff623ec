//! Procedural macros of `cni-sdk`. Use them through the facade: `cni_sdk::cni_plugin`, which
//! carries the documentation. The generated code calls `cni_sdk::__private`, so this crate
//! only works with the `cni-sdk` release of the same version.

mod attr;
mod error;
mod expand;
mod item;

use proc_macro::TokenStream;

/// Writes `main` for an `impl Plugin for YourType { ... }` block.
///
/// See [`cni_sdk::cni_plugin`](https://docs.rs/cni-sdk/latest/cni_sdk/attr.cni_plugin.html)
/// for the options and an example.
#[proc_macro_attribute]
pub fn cni_plugin(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::plugin(args.into(), item.into()).into()
}
