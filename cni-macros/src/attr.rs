//! Parses the options of `#[cni_plugin(...)]` into a [`Config`].
//!
//! Every option keeps the tokens it came from so errors point at them. A bad option does not
//! stop the parse: the error is recorded, the parser skips to the next `,` and carries on, so
//! the user sees every problem in one build.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote;
use syn::ext::IdentExt as _;
use syn::parse::discouraged::Speculative as _;
use syn::parse::{ParseStream, Parser as _};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprPath, Ident, LitBool, LitStr, Path, Token, bracketed};

use crate::error::Errors;

/// The option keywords.
mod kw {
    syn::custom_keyword!(about);
    syn::custom_keyword!(versions);
    syn::custom_keyword!(go_strict);
    syn::custom_keyword!(init);
    syn::custom_keyword!(name);
    syn::custom_keyword!(main);
}

/// The spec versions `versions = [...]` accepts, oldest first.
const SPEC_VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The option names, for "expected one of" messages.
const OPTIONS: &str = "`about`, `versions`, `go_strict`, `init`, `name`, `main`, `crate`";

/// The options as written, each with the tokens it came from.
#[derive(Default)]
pub(crate) struct Config {
    /// `about = "..."`.
    pub(crate) about: Option<LitStr>,
    /// `versions = [...]`: the literals (validated, non-empty).
    pub(crate) versions: Option<Vec<LitStr>>,
    /// `go_strict` or `go_strict = true|false`.
    pub(crate) go_strict: Option<LitBool>,
    /// `init = ...`.
    pub(crate) init: Option<Init>,
    /// `name = "..."`: the name the plugin is installed under.
    pub(crate) name: Option<LitStr>,
    /// `main = true|false`: whether to write `fn main`.
    pub(crate) main: Option<LitBool>,
    /// `crate = "..."` or `crate = path`.
    pub(crate) krate: Option<Path>,
}

/// How the plugin value is made.
pub(crate) enum Init {
    /// `init = path::to::ctor`: called with no arguments.
    Call(ExprPath),
    /// `init = <any other expression>`: the plugin value itself.
    Expr(Expr),
}

impl Config {
    /// Parses the attribute's arguments, recording every problem in `errors`. The returned
    /// config holds the options that parsed; the failed ones are left unset.
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> Self {
        let mut config = Self::default();
        let parser = |input: ParseStream<'_>| {
            while !input.is_empty() {
                if let Err(error) = config.parse_option(input) {
                    errors.push(error);
                    skip_past_comma(input);
                    continue;
                }
                if input.is_empty() {
                    break;
                }
                if let Err(error) = input.parse::<Token![,]>() {
                    errors.push(syn::Error::new(
                        error.span(),
                        "expected `,` between options, e.g. `#[cni_plugin(about = \"...\", go_strict)]`",
                    ));
                    skip_past_comma(input);
                }
            }
            Ok(())
        };
        // The closure consumes all input and never fails.
        if let Err(error) = parser.parse2(args) {
            errors.push(error);
        }
        config
    }

    /// The path of the `cni_sdk` crate: the `crate` option or `::cni_sdk`.
    pub(crate) fn crate_path(&self) -> Path {
        self.krate.clone().unwrap_or_else(|| syn::parse_quote!(::cni_sdk))
    }

    fn parse_option(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::about) {
            let key: kw::about = input.parse()?;
            let value = parse_value(input, key.span, "about", "a string literal", EXAMPLE_ABOUT, |input| {
                input.parse::<LitStr>()
            })?;
            set_once(&mut self.about, value, key.span, "about")
        } else if lookahead.peek(kw::versions) {
            let key: kw::versions = input.parse()?;
            let value = parse_value(
                input,
                key.span,
                "versions",
                "a list of version strings",
                EXAMPLE_VERSIONS,
                parse_versions,
            )??;
            set_once(&mut self.versions, value, key.span, "versions")
        } else if lookahead.peek(kw::go_strict) {
            let key: kw::go_strict = input.parse()?;
            let value = if input.peek(Token![=]) {
                parse_value(
                    input,
                    key.span,
                    "go_strict",
                    "`true` or `false` (or no value at all)",
                    EXAMPLE_GO_STRICT,
                    |input| input.parse::<LitBool>(),
                )?
            } else {
                LitBool::new(true, key.span)
            };
            set_once(&mut self.go_strict, value, key.span, "go_strict")
        } else if lookahead.peek(kw::init) {
            let key: kw::init = input.parse()?;
            let value = parse_value(
                input,
                key.span,
                "init",
                "an expression, or a path to a function that takes no arguments",
                EXAMPLE_INIT,
                |input| Ok(Init::from_expr(input.parse()?)),
            )?;
            set_once(&mut self.init, value, key.span, "init")
        } else if lookahead.peek(kw::name) {
            let key: kw::name = input.parse()?;
            let value = parse_value(input, key.span, "name", "a string literal", EXAMPLE_NAME, |input| {
                input.parse::<LitStr>()
            })?;
            let text = value.value();
            if text.is_empty() || text.contains(['/', '\0']) || text.chars().any(char::is_whitespace) {
                return Err(syn::Error::new(
                    value.span(),
                    format!("`name` must be a plugin binary name (not empty, no `/` or spaces), e.g. `{EXAMPLE_NAME}`"),
                ));
            }
            set_once(&mut self.name, value, key.span, "name")
        } else if lookahead.peek(kw::main) {
            let key: kw::main = input.parse()?;
            let value = parse_value(input, key.span, "main", "`true` or `false`", EXAMPLE_MAIN, |input| {
                input.parse::<LitBool>()
            })?;
            set_once(&mut self.main, value, key.span, "main")
        } else if lookahead.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            let value =
                parse_value(input, key.span, "crate", "the path of the `cni_sdk` crate", EXAMPLE_CRATE, |input| {
                    if input.peek(LitStr) {
                        input.parse::<LitStr>()?.parse_with(Path::parse_mod_style)
                    } else {
                        Path::parse_mod_style(input)
                    }
                })?;
            set_once(&mut self.krate, value, key.span, "crate")
        } else if input.peek(Ident::peek_any) {
            let ident = input.call(Ident::parse_any)?;
            let hint = match ident.to_string().as_str() {
                "version" => "; did you mean `versions`?",
                "strict" | "gostrict" => "; did you mean `go_strict`?",
                "init_fn" | "new" | "constructor" => "; did you mean `init`?",
                "description" | "help" => "; did you mean `about`?",
                "no_main" | "lib" | "bin" => "; did you mean `main = false`?",
                "cni_sdk" | "krate" => "; did you mean `crate`?",
                _ => "",
            };
            Err(syn::Error::new(ident.span(), format!("unknown option `{ident}`; expected one of: {OPTIONS}{hint}")))
        } else {
            Err(lookahead.error())
        }
    }
}

const EXAMPLE_ABOUT: &str = "about = \"CNI my-plugin v0.1\"";
const EXAMPLE_VERSIONS: &str = "versions = [\"1.0.0\", \"1.1.0\"]";
const EXAMPLE_GO_STRICT: &str = "go_strict = true";
const EXAMPLE_INIT: &str = "init = MyPlugin::new";
const EXAMPLE_CRATE: &str = "crate = \"my_crate::cni_sdk\"";
const EXAMPLE_NAME: &str = "name = \"my-plugin\"";
const EXAMPLE_MAIN: &str = "main = false";

/// Parses `= <value>` after option `name`, turning a missing `=` or a malformed value into
/// an error that shows the expected form.
fn parse_value<T>(
    input: ParseStream<'_>,
    key: Span,
    name: &str,
    expects: &str,
    example: &str,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<T> {
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(key, format!("`{name}` needs a value: write `{example}`")));
    }
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(input.span(), format!("expected `=` after `{name}`: write `{example}`")));
    }
    input.parse::<Token![=]>()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(key, format!("`{name}` needs a value: write `{example}`")));
    }
    // Parse on a fork so that, on failure, the whole value is still there to point at.
    let fork = input.fork();
    match value(&fork) {
        Ok(v) => {
            input.advance_to(&fork);
            Ok(v)
        }
        Err(_) => {
            let tokens = value_tokens(input);
            Err(syn::Error::new_spanned(tokens, format!("`{name}` expects {expects}, e.g. `{example}`")))
        }
    }
}

/// Parses `[ "x.y.z", ... ]`, checking each version. The outer `Result` is about the shape,
/// the inner one about the contents (bad versions are reported on their own literals).
fn parse_versions(input: ParseStream<'_>) -> syn::Result<syn::Result<Vec<LitStr>>> {
    let content;
    let brackets = bracketed!(content in input);
    let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
    let mut errors = Errors::new();
    if list.is_empty() {
        errors.push(syn::Error::new(
            brackets.span.join(),
            format!(
                "`versions` must list at least one version; choose from: {} \
                 (or leave `versions` out to support all of them)",
                quoted(&SPEC_VERSIONS)
            ),
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for lit in &list {
        let value = lit.value();
        if !SPEC_VERSIONS.contains(&value.as_str()) {
            errors.push_spanned(
                lit,
                format!("`{value}` is not a CNI spec version; expected one of: {}", quoted(&SPEC_VERSIONS)),
            );
        } else if seen.contains(&value) {
            errors.push_spanned(lit, format!("version `{value}` is listed twice"));
        } else {
            seen.push(value);
        }
    }
    Ok(errors.finish().map(|()| list.into_iter().collect()))
}

/// Records `value` in `slot` unless the option was already given.
fn set_once<T>(slot: &mut Option<T>, value: T, key: Span, name: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(key, format!("duplicate option `{name}`; give it only once")));
    }
    *slot = Some(value);
    Ok(())
}

/// Consumes the tokens of one option value (up to, not including, the next top-level `,`).
fn value_tokens(input: ParseStream<'_>) -> TokenStream {
    let mut tokens = TokenStream::new();
    while !input.is_empty() && !input.peek(Token![,]) {
        match input.parse::<TokenTree>() {
            Ok(tt) => tokens.extend([tt]),
            Err(_) => break,
        }
    }
    tokens
}

/// Error recovery: drops the rest of a broken option, including the `,` after it.
fn skip_past_comma(input: ParseStream<'_>) {
    let _ = value_tokens(input);
    let _ = input.parse::<Option<Token![,]>>();
}

fn quoted(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|v| format!("`{v}`")).collect();
    quoted.join(", ")
}

impl Init {
    /// A path to a function (`MyPlugin::new`, `make_plugin`) is called; anything else is
    /// the value itself. Following Rust's naming conventions, a path whose last segment is
    /// capitalised (a unit struct `MyPlugin`, a constant `PLUGIN`) is a value too.
    fn from_expr(expr: Expr) -> Self {
        match expr {
            Expr::Path(p)
                if p.attrs.is_empty()
                    && p.path
                        .segments
                        .last()
                        .is_some_and(|segment| !segment.ident.to_string().starts_with(char::is_uppercase)) =>
            {
                Self::Call(p)
            }
            expr => Self::Expr(expr),
        }
    }

    /// The expression that makes the plugin value.
    pub(crate) fn to_expr(&self) -> TokenStream {
        match self {
            Self::Call(path) => {
                // The call's span is the path's, so "not a function" and type errors point
                // at what the user wrote.
                let span = path.span();
                quote::quote_spanned!(span=> #path())
            }
            Self::Expr(expr) => quote!(#expr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: TokenStream) -> (Config, Vec<String>) {
        let mut errors = Errors::new();
        let config = Config::parse(args, &mut errors);
        (config, errors.messages())
    }

    fn parse_ok(args: TokenStream) -> Config {
        let (config, errors) = parse(args);
        assert!(errors.is_empty(), "unexpected errors: {errors:?}");
        config
    }

    fn text(t: impl quote::ToTokens) -> String {
        t.to_token_stream().to_string()
    }

    #[test]
    fn no_options() {
        let config = parse_ok(TokenStream::new());
        assert!(config.about.is_none());
        assert!(config.versions.is_none());
        assert!(config.go_strict.is_none());
        assert!(config.init.is_none());
        assert_eq!(text(config.crate_path()), ":: cni_sdk");
    }

    #[test]
    fn all_options() {
        let config = parse_ok(quote! {
            about = "CNI x v1", versions = ["1.0.0", "1.1.0",], go_strict,
            init = MyPlugin::new, crate = "my::sdk",
        });
        assert_eq!(config.about.unwrap().value(), "CNI x v1");
        let versions: Vec<String> = config.versions.unwrap().iter().map(LitStr::value).collect();
        assert_eq!(versions, ["1.0.0", "1.1.0"]);
        assert!(config.go_strict.unwrap().value);
        assert_eq!(text(config.init.unwrap().to_expr()), "MyPlugin :: new ()");
        assert_eq!(text(config.krate.unwrap()), "my :: sdk");
    }

    #[test]
    fn go_strict_with_value_and_bare_crate_path() {
        let config = parse_ok(quote!(go_strict = false, crate = ::renamed::sdk));
        assert!(!config.go_strict.as_ref().unwrap().value);
        assert_eq!(text(config.crate_path()), ":: renamed :: sdk");
    }

    #[test]
    fn init_expressions_are_kept() {
        let config = parse_ok(quote!(init = MyPlugin { cache: Vec::new() }));
        assert_eq!(text(config.init.unwrap().to_expr()), "MyPlugin { cache : Vec :: new () }");
        let config = parse_ok(quote!(init = MyPlugin::new(42)));
        assert_eq!(text(config.init.unwrap().to_expr()), "MyPlugin :: new (42)");
        // Capitalised paths are values: unit structs and constants.
        for (init, expected) in [
            (quote!(init = MyPlugin), "MyPlugin"),
            (quote!(init = plugins::DEFAULT), "plugins :: DEFAULT"),
            (quote!(init = make_plugin), "make_plugin ()"),
            (quote!(init = <MyPlugin as Default>::default), "< MyPlugin as Default > :: default ()"),
        ] {
            let config = parse_ok(init);
            assert_eq!(text(config.init.unwrap().to_expr()), expected);
        }
    }

    #[test]
    fn unknown_option_lists_the_valid_ones() {
        let (_, errors) = parse(quote!(foo = 1));
        assert_eq!(
            errors,
            [
                "unknown option `foo`; expected one of: `about`, `versions`, `go_strict`, `init`, `name`, `main`, `crate`"
            ]
        );
        let (_, errors) = parse(quote!(version = ["1.0.0"]));
        assert!(errors[0].ends_with("did you mean `versions`?"), "{errors:?}");
    }

    #[test]
    fn name_and_main() {
        let config = parse_ok(quote!(name = "host-local", main = false));
        assert_eq!(config.name.unwrap().value(), "host-local");
        assert!(!config.main.unwrap().value);
        let (_, errors) = parse(quote!(name = "a b", main = "no"));
        assert_eq!(
            errors,
            [
                "`name` must be a plugin binary name (not empty, no `/` or spaces), e.g. `name = \"my-plugin\"`",
                "`main` expects `true` or `false`, e.g. `main = false`",
            ]
        );
        let (_, errors) = parse(quote!(no_main));
        assert!(errors[0].ends_with("did you mean `main = false`?"), "{errors:?}");
    }

    #[test]
    fn duplicate_option() {
        let (config, errors) = parse(quote!(about = "a", about = "b"));
        assert_eq!(errors, ["duplicate option `about`; give it only once"]);
        assert_eq!(config.about.unwrap().value(), "a");
    }

    #[test]
    fn wrong_value_types_are_all_reported() {
        let (config, errors) =
            parse(quote!(about = 1, versions = "1.0.0", go_strict = "yes", crate = 3, init = MyPlugin::new));
        assert_eq!(
            errors,
            [
                "`about` expects a string literal, e.g. `about = \"CNI my-plugin v0.1\"`",
                "`versions` expects a list of version strings, e.g. `versions = [\"1.0.0\", \"1.1.0\"]`",
                "`go_strict` expects `true` or `false` (or no value at all), e.g. `go_strict = true`",
                "`crate` expects the path of the `cni_sdk` crate, e.g. `crate = \"my_crate::cni_sdk\"`",
            ]
        );
        // The good option after the bad ones still counts.
        assert!(config.init.is_some());
    }

    #[test]
    fn missing_values() {
        let (_, errors) = parse(quote!(about, init =));
        assert_eq!(
            errors,
            [
                "`about` needs a value: write `about = \"CNI my-plugin v0.1\"`",
                "`init` needs a value: write `init = MyPlugin::new`",
            ]
        );
    }

    #[test]
    fn versions_are_validated() {
        let (config, errors) = parse(quote!(versions = ["1.0.0", "2.0.0", "1.0", "1.0.0"]));
        assert_eq!(
            errors,
            [
                "`2.0.0` is not a CNI spec version; expected one of: `0.1.0`, `0.2.0`, `0.3.0`, \
                 `0.3.1`, `0.4.0`, `1.0.0`, `1.1.0`",
                "`1.0` is not a CNI spec version; expected one of: `0.1.0`, `0.2.0`, `0.3.0`, \
                 `0.3.1`, `0.4.0`, `1.0.0`, `1.1.0`",
                "version `1.0.0` is listed twice",
            ]
        );
        assert!(config.versions.is_none());
    }

    #[test]
    fn empty_versions() {
        let (_, errors) = parse(quote!(versions = []));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("`versions` must list at least one version"), "{errors:?}");
    }

    #[test]
    fn missing_comma() {
        let (config, errors) = parse(quote!(about = "x" go_strict));
        assert_eq!(errors, ["expected `,` between options, e.g. `#[cni_plugin(about = \"...\", go_strict)]`"]);
        assert!(config.about.is_some());
    }

    #[test]
    fn not_an_option_at_all() {
        let (_, errors) = parse(quote!("about"));
        assert_eq!(errors, ["expected one of: `about`, `versions`, `go_strict`, `init`, `name`, `main`, `crate`"]);
    }
}
