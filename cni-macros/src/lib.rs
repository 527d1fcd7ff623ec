//! Procedural macros of `cni-sdk`. Use them through `cni_sdk::cni_plugin`.
use proc_macro::TokenStream;

/// See `cni_sdk::cni_plugin`.
#[proc_macro_attribute]
pub fn cni_plugin(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
