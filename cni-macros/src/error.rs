//! Collects every problem found in one macro invocation, so the user sees them all at once
//! instead of fixing one error per build.

use std::fmt::Display;

use quote::ToTokens;

/// An accumulator of [`syn::Error`]s.
///
/// Checks push into it and keep going; the expansion asks [`Errors::finish`] at the end
/// whether anything went wrong.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// Records an error that spans `tokens` (first to last token).
    pub(crate) fn push_spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.combined.is_none()
    }

    /// `Ok` if nothing was recorded, or all recorded errors as one.
    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// One `compile_error!` per recorded error (nothing if none were recorded).
    #[cfg(test)]
    pub(crate) fn to_compile_error(&self) -> proc_macro2::TokenStream {
        self.combined
            .as_ref()
            .map(syn::Error::to_compile_error)
            .unwrap_or_default()
    }

    /// The messages recorded so far, in order (for tests).
    #[cfg(test)]
    pub(crate) fn messages(&self) -> Vec<String> {
        self.combined
            .iter()
            .flat_map(|e| e.clone().into_iter().map(|e| e.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    #[test]
    fn empty_accumulator_is_ok() {
        let errors = Errors::new();
        assert!(errors.is_empty());
        assert!(errors.to_compile_error().is_empty());
        assert!(errors.finish().is_ok());
    }

    #[test]
    fn keeps_every_error_in_order() {
        let mut errors = Errors::new();
        errors.push(syn::Error::new(Span::call_site(), "first"));
        errors.push_spanned(quote::quote!(a b), "second");
        assert!(!errors.is_empty());
        assert_eq!(errors.messages(), ["first", "second"]);
        let text = errors.to_compile_error().to_string();
        assert_eq!(text.matches("compile_error").count(), 2, "{text}");
        assert_eq!(errors.finish().unwrap_err().into_iter().count(), 2);
    }
}
