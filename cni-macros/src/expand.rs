//! Turns the checked options and item into tokens: the item unchanged, its `PluginEntry`
//! impl, and `fn main` (unless `main = false`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::attr::Config;
use crate::error::Errors;
use crate::item;

/// Expands `#[cni_plugin(args)] item`.
///
/// On success: the item unchanged, followed by `impl cni_sdk::PluginEntry for T` (name,
/// options, constructor) and a `fn main` that runs it through `cni_sdk::__private::run`. On
/// errors: the item (repaired where that avoids duplicate errors, so IDEs keep working), one
/// `compile_error!` per problem and an empty `fn main` (when one is wanted) so rustc does not
/// add "`main` function not found".
pub(crate) fn plugin(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let config = Config::parse(args, &mut errors);
    let krate = config.crate_path();
    let wants_main = config.main.as_ref().is_none_or(|m| m.value);

    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(error);
            return with_errors(item, errors, wants_main);
        }
    };
    let checked = item::check(parsed, &krate, &mut errors);
    match checked.plugin {
        Some(plugin) if errors.is_empty() => {
            let entry = entry_impl(&config, &krate, &plugin);
            let main = wants_main.then(|| {
                quote! {
                    fn main() {
                        #krate::__private::run::<#plugin>()
                    }
                }
            });
            quote! {
                #item
                #entry
                #main
            }
        }
        _ => with_errors(checked.item, errors, wants_main && !checked.is_main),
    }
}

/// `impl PluginEntry for T`: the name, the options and the constructor.
fn entry_impl(config: &Config, krate: &syn::Path, plugin: &syn::Type) -> TokenStream {
    let init = match &config.init {
        Some(init) => init.to_expr(),
        None => quote!(#krate::__private::default_plugin::<#plugin>()),
    };
    let name = match &config.name {
        Some(name) => quote!(#name),
        None => quote!(::core::env!("CARGO_PKG_NAME")),
    };
    let about = match &config.about {
        Some(about) => quote!(#about),
        None => quote! {
            ::core::concat!(
                "CNI ",
                ::core::env!("CARGO_PKG_NAME"),
                " plugin v",
                ::core::env!("CARGO_PKG_VERSION"),
            )
        },
    };
    let versions = match &config.versions {
        Some(versions) => quote!(::core::option::Option::Some(&[#(#versions),*])),
        None => quote!(::core::option::Option::None),
    };
    let go_strict = config.go_strict.as_ref().map_or_else(|| quote!(false), |strict| quote!(#strict));
    quote! {
        impl #krate::PluginEntry for #plugin {
            const NAME: &'static str = #name;
            fn options() -> #krate::PluginOptions {
                #krate::__private::options(#about, #versions, #go_strict)
            }
            fn create() -> Self {
                // The annotation aims a wrong `init` at the user's expression and type.
                let plugin: #plugin = #init;
                plugin
            }
        }
    }
}

/// The item, every recorded error and, if `fallback_main`, an empty `fn main`.
fn with_errors(item: TokenStream, errors: Errors, fallback_main: bool) -> TokenStream {
    let errors = errors.finish().err().map(|error| error.to_compile_error());
    let main = fallback_main.then(|| {
        quote!(
            fn main() {}
        )
    });
    quote! {
        #item
        #errors
        #main
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLUGIN: &str = "impl Plugin for P { type Config = (); \
        async fn add(&self, cx: &Context<()>) -> Result<CniResult> { Ok(CniResult::default()) } \
        async fn del(&self, cx: &Context<()>) -> Result<()> { Ok(()) } \
        async fn check(&self, cx: &Context<()>) -> Result<()> { Ok(()) } }";

    fn plugin_item() -> TokenStream {
        PLUGIN.parse().unwrap()
    }

    fn expand(args: TokenStream, item: TokenStream) -> String {
        plugin(args, item).to_string()
    }

    #[test]
    fn defaults() {
        let item = plugin_item();
        let expected = quote! {
            #item
            impl ::cni_sdk::PluginEntry for P {
                const NAME: &'static str = ::core::env!("CARGO_PKG_NAME");
                fn options() -> ::cni_sdk::PluginOptions {
                    ::cni_sdk::__private::options(
                        ::core::concat!(
                            "CNI ",
                            ::core::env!("CARGO_PKG_NAME"),
                            " plugin v",
                            ::core::env!("CARGO_PKG_VERSION"),
                        ),
                        ::core::option::Option::None,
                        false
                    )
                }
                fn create() -> Self {
                    let plugin: P = ::cni_sdk::__private::default_plugin::<P>();
                    plugin
                }
            }
            fn main() {
                ::cni_sdk::__private::run::<P>()
            }
        };
        assert_eq!(expand(TokenStream::new(), plugin_item()), expected.to_string());
    }

    #[test]
    fn all_options() {
        let item = plugin_item();
        let expected = quote! {
            #item
            impl ::my::sdk::PluginEntry for P {
                const NAME: &'static str = "p";
                fn options() -> ::my::sdk::PluginOptions {
                    ::my::sdk::__private::options(
                        "CNI p v1",
                        ::core::option::Option::Some(&["0.4.0", "1.1.0"]),
                        true
                    )
                }
                fn create() -> Self {
                    let plugin: P = P::new();
                    plugin
                }
            }
        };
        let args = quote! {
            about = "CNI p v1", name = "p", versions = ["0.4.0", "1.1.0"], go_strict,
            init = P::new, main = false, crate = "::my::sdk"
        };
        assert_eq!(expand(args, plugin_item()), expected.to_string());
    }

    #[test]
    fn init_expression_and_explicit_go_strict() {
        let out = expand(quote!(init = P { n: 1 }, go_strict = false), plugin_item());
        assert!(out.contains("let plugin : P = P { n : 1 } ;"), "{out}");
        assert!(out.contains(":: core :: option :: Option :: None , false)"), "{out}");
    }

    #[test]
    fn no_main_after_errors_when_main_is_off() {
        let out = expand(quote!(foo, main = false), plugin_item());
        assert!(out.contains("compile_error"), "{out}");
        assert!(!out.contains("fn main"), "{out}");
    }

    #[test]
    fn errors_keep_the_item_and_add_an_empty_main() {
        let out = expand(quote!(foo), plugin_item());
        let item = plugin_item().to_string();
        assert!(out.starts_with(&item), "{out}");
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.ends_with("fn main () { }"), "{out}");
        assert!(!out.contains("__private"), "{out}");
    }

    #[test]
    fn every_problem_is_reported_once() {
        let item = quote! {
            impl Plugin for P {
                fn add(&self, cx: &Context<()>) -> Result<CniResult> { Ok(CniResult::default()) }
            }
        };
        let out = expand(quote!(about = 1, versions = []), item);
        assert_eq!(out.matches("compile_error").count(), 5, "{out}");
        // The repaired item: `add` made async, stand-ins for the rest.
        assert!(out.contains("type Config = () ;"), "{out}");
        assert!(out.contains("async fn add"), "{out}");
        assert!(out.contains("async fn del"), "{out}");
        assert!(out.contains("async fn check"), "{out}");
    }

    #[test]
    fn wrong_items() {
        for (item, message) in [
            (
                quote!(
                    fn main() {}
                ),
                "not on a function",
            ),
            (
                quote!(
                    struct P;
                ),
                "not on a struct",
            ),
            (quote!(impl P {}), "not on an inherent impl"),
            (quote!(impl Default for P {}), "not on an impl of `Default`"),
            (
                quote!(
                    impl<T> Plugin for P<T> {}
                ),
                "remove the generic parameters",
            ),
        ] {
            let out = expand(TokenStream::new(), item);
            assert!(out.contains(message), "{message}: {out}");
        }
    }

    #[test]
    fn no_second_main_next_to_a_user_main() {
        let out = expand(
            TokenStream::new(),
            quote!(
                fn main() {}
            ),
        );
        assert_eq!(out.matches("fn main").count(), 1, "{out}");
    }

    #[test]
    fn impl_future_methods_are_accepted() {
        let item = quote! {
            impl Plugin for P {
                type Config = ();
                fn add(&self, cx: &Context<()>) -> impl Future<Output = Result<CniResult>> {
                    async { Ok(CniResult::default()) }
                }
                async fn del(&self, cx: &Context<()>) -> Result<()> { Ok(()) }
                async fn check(&self, cx: &Context<()>) -> Result<()> { Ok(()) }
            }
        };
        let out = expand(TokenStream::new(), item);
        assert!(!out.contains("compile_error"), "{out}");
    }
}
