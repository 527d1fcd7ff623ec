//! Checks that the annotated item is an `impl Plugin for Type` block with the pieces the
//! trait needs, and repairs what it can so that rustc does not report the same problem again.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{ImplItem, ImplItemFn, Item, ItemImpl, ReturnType, Type, TypeParamBound};

use crate::error::Errors;

/// The one place that says where the attribute goes.
const GOES_ON: &str = "`#[cni_plugin]` goes on `impl Plugin for YourType { ... }`";

/// The plugin methods, with the signature each one should have.
const METHODS: [(&str, &str); 5] = [
    ("add", "Result<CniResult>"),
    ("del", "Result<()>"),
    ("check", "Result<()>"),
    ("status", "Result<()>"),
    ("gc", "Result<()>"),
];

/// The methods without a default in the trait.
const REQUIRED: [&str; 3] = ["add", "del", "check"];

/// The annotated item after the checks.
pub(crate) struct Checked {
    /// The item, repaired where that keeps rustc from reporting a problem again (used only
    /// after errors; a correct item is emitted exactly as written).
    pub(crate) item: TokenStream,
    /// The plugin type, when the item is an `impl Plugin for Type` block.
    pub(crate) plugin: Option<Type>,
    /// Whether the item is itself a `fn main` (then no fallback `main` may be added).
    pub(crate) is_main: bool,
}

/// Checks `item`, recording problems in `errors`. `krate` is the path of `cni_sdk`, used for
/// the stand-in methods added after an error.
pub(crate) fn check(item: Item, krate: &syn::Path, errors: &mut Errors) -> Checked {
    let mut imp = match item {
        Item::Impl(imp) => imp,
        other => {
            not_an_impl(&other, errors);
            return Checked {
                is_main: matches!(&other, Item::Fn(f) if f.sig.ident == "main"),
                item: other.into_token_stream(),
                plugin: None,
            };
        }
    };
    if !is_plugin_impl(&imp, errors) {
        return Checked {
            item: imp.into_token_stream(),
            plugin: None,
            is_main: false,
        };
    }
    if imp.generics.lt_token.is_some() {
        errors.push_spanned(
            &imp.generics,
            "`#[cni_plugin]` needs one concrete plugin type to write `main` for; \
             remove the generic parameters, e.g. `impl Plugin for MyPlugin<u32>`",
        );
    }
    check_items(&mut imp, krate, errors);
    let plugin = Some((*imp.self_ty).clone());
    Checked {
        item: imp.into_token_stream(),
        plugin,
        is_main: false,
    }
}

/// Reports a `#[cni_plugin]` put on something other than an impl block, pointing at the
/// item's keyword and name.
fn not_an_impl(item: &Item, errors: &mut Errors) {
    let tokens = match item {
        Item::Fn(f) => {
            let (kw, name) = (&f.sig.fn_token, &f.sig.ident);
            quote!(#kw #name)
        }
        Item::Struct(s) => {
            let (kw, name) = (&s.struct_token, &s.ident);
            quote!(#kw #name)
        }
        Item::Enum(e) => {
            let (kw, name) = (&e.enum_token, &e.ident);
            quote!(#kw #name)
        }
        Item::Trait(t) => {
            let (kw, name) = (&t.trait_token, &t.ident);
            quote!(#kw #name)
        }
        Item::Mod(m) => {
            let (kw, name) = (&m.mod_token, &m.ident);
            quote!(#kw #name)
        }
        other => other.to_token_stream(),
    };
    let what = match item {
        Item::Fn(_) => "a function",
        Item::Struct(_) => "a struct",
        Item::Enum(_) => "an enum",
        Item::Trait(_) => "a trait",
        Item::Mod(_) => "a module",
        _ => "this item",
    };
    errors.push_spanned(tokens, format!("{GOES_ON}, not on {what}"));
}

/// Whether `imp` implements a trait named `Plugin`; reports it if not.
fn is_plugin_impl(imp: &ItemImpl, errors: &mut Errors) -> bool {
    let (impl_token, self_ty) = (&imp.impl_token, &imp.self_ty);
    match &imp.trait_ {
        None => {
            errors.push_spanned(
                quote!(#impl_token #self_ty),
                format!(
                    "{GOES_ON}, not on an inherent impl; \
                     write `impl Plugin for {}`",
                    compact(self_ty)
                ),
            );
            false
        }
        Some((Some(bang), path, _)) => {
            errors.push_spanned(
                quote!(#bang #path),
                format!("{GOES_ON}, not on a negative impl"),
            );
            false
        }
        Some((None, path, _)) => {
            let is_plugin = path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Plugin");
            if !is_plugin {
                errors.push_spanned(
                    path,
                    format!(
                        "{GOES_ON}, not on an impl of `{}`; put it on the `Plugin` impl",
                        compact(path)
                    ),
                );
            }
            is_plugin
        }
    }
}

/// Checks `type Config` and the methods; adds stand-ins for missing ones and `async` where
/// it was forgotten, so rustc only sees the problems this macro has not already reported.
fn check_items(imp: &mut ItemImpl, krate: &syn::Path, errors: &mut Errors) {
    let header = {
        let (impl_token, self_ty) = (&imp.impl_token, &imp.self_ty);
        let path = imp.trait_.as_ref().map(|(_, path, _)| path);
        let for_token = imp.trait_.as_ref().map(|(_, _, for_token)| for_token);
        quote!(#impl_token #path #for_token #self_ty)
    };

    let has_config = imp
        .items
        .iter()
        .any(|item| matches!(item, ImplItem::Type(t) if t.ident == "Config"));
    if !has_config {
        errors.push_spanned(
            &header,
            "missing `type Config`: add `type Config = MyConfig;` naming the struct your \
             plugin's own configuration keys deserialize into, or `type Config = ();` if the \
             plugin has no own keys",
        );
        imp.items.insert(
            0,
            syn::parse_quote!(
                type Config = ();
            ),
        );
    }

    let mut present = Vec::new();
    for item in &mut imp.items {
        let ImplItem::Fn(method) = item else { continue };
        let name = method.sig.ident.to_string();
        let Some((_, returns)) = METHODS.iter().find(|(m, _)| *m == name) else {
            continue;
        };
        present.push(name.clone());
        if method.sig.asyncness.is_none() && !returns_impl_future(method) {
            let (fn_token, ident) = (&method.sig.fn_token, &method.sig.ident);
            errors.push_spanned(
                quote!(#fn_token #ident),
                format!(
                    "`{name}` must be an `async fn`: write \
                     `async fn {name}(&self, cx: &Context<Self::Config>) -> {returns}`"
                ),
            );
            method.sig.asyncness = Some(syn::Token![async](method.sig.fn_token.span));
        }
    }

    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|m| !present.iter().any(|p| p == m))
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
        let signatures: Vec<String> = missing
            .iter()
            .map(|m| {
                let returns = METHODS.iter().find(|(n, _)| n == m).map_or("", |(_, r)| r);
                format!("`async fn {m}(&self, cx: &Context<Self::Config>) -> {returns}`")
            })
            .collect();
        errors.push_spanned(
            &header,
            format!(
                "missing plugin method{s} {}: add {}",
                list.join(", "),
                signatures.join(", "),
                s = if missing.len() == 1 { "" } else { "s" },
            ),
        );
        for name in missing {
            imp.items.push(stand_in(name, krate));
        }
    }
}

/// `fn m(..) -> impl Future<Output = ..>` is a valid way to implement an `async fn` of a trait.
fn returns_impl_future(method: &ImplItemFn) -> bool {
    let ReturnType::Type(_, ty) = &method.sig.output else {
        return false;
    };
    let Type::ImplTrait(bounds) = &**ty else {
        return false;
    };
    bounds.bounds.iter().any(|bound| {
        matches!(bound, TypeParamBound::Trait(t)
            if t.path.segments.last().is_some_and(|s| s.ident == "Future"))
    })
}

/// A body-less stand-in for a missing method; only ever emitted next to a compile error.
fn stand_in(name: &str, krate: &syn::Path) -> ImplItem {
    let ident = syn::Ident::new(name, proc_macro2::Span::call_site());
    let returns = if name == "add" {
        quote!(#krate::Result<#krate::CniResult>)
    } else {
        quote!(#krate::Result<()>)
    };
    syn::parse_quote! {
        async fn #ident(&self, _: &#krate::Context<Self::Config>) -> #returns {
            ::core::unreachable!()
        }
    }
}

/// `tokens` as compact text for messages (`MyPlugin<u32>`, not `MyPlugin < u32 >`).
fn compact(tokens: impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    text.replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
}
