//! Procedural macros of `cni-sdk`. Use them through the facade:
//! [`cni_sdk::cni_plugin`](https://docs.rs/cni-sdk/latest/cni_sdk/attr.cni_plugin.html)
//! carries the documentation. The generated code calls `cni_sdk::__private`, so this crate
//! only works with the `cni-sdk` release of the same version.
//!
//! Layout: `attr` parses the options, `item` checks the annotated impl block, `expand`
//! writes the tokens and `error` collects every problem so all are reported at once.

mod attr;
mod error;
mod expand;
mod item;

use proc_macro::TokenStream;

// The user documentation is on the re-export, `cni_sdk::cni_plugin`; a doc comment here
// would be appended to it there, since rustdoc joins the docs of an inlined re-export.
#[proc_macro_attribute]
pub fn cni_plugin(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::plugin(args.into(), item.into()).into()
}
