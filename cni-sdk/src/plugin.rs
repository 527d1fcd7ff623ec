//! The [`Plugin`] trait and [`PluginEntry`], what `#[cni_plugin]` adds to it.

use cni_types::CniResult;
use serde::de::DeserializeOwned;

use crate::{Context, PluginOptions, Result};

/// A CNI plugin: ADD, DEL and CHECK, with STATUS and GC optional.
///
/// Write the impl and put `#[cni_plugin]` on it; the macro writes `main`. The methods are
/// native `async fn`s run on a current-thread runtime, so futures need not be `Send` (hold an
/// `Rc` if you like).
///
/// * `add` returns the canonical [`CniResult`]; the SDK prints it in the configuration's
///   version. With a `prevResult` (chained plugins), return it, modified or not.
/// * `del` must succeed when there is nothing to delete (repeated DEL, netns already gone).
/// * `check` returns an error when the container's networking is not as ADD left it.
/// * `status` (default: ready) and `gc` (default: nothing to collect) need spec 1.1.0.
#[allow(async_fn_in_trait)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a CNI plugin",
    note = "write `impl cni_sdk::Plugin for {Self}` with `type Config` and async `add`, `del` and `check`"
)]
pub trait Plugin {
    /// The plugin's own configuration keys (use `()` for none).
    type Config: DeserializeOwned;

    /// ADD.
    async fn add(&self, cx: &Context<Self::Config>) -> Result<CniResult>;

    /// DEL.
    async fn del(&self, cx: &Context<Self::Config>) -> Result<()>;

    /// CHECK.
    async fn check(&self, cx: &Context<Self::Config>) -> Result<()>;

    /// STATUS: `Ok` means ready for ADD; return code 50 or 51 otherwise.
    async fn status(&self, cx: &Context<Self::Config>) -> Result<()> {
        let _ = cx;
        Ok(())
    }

    /// GC: release resources of attachments not in [`Context::gc_attachments`].
    async fn gc(&self, cx: &Context<Self::Config>) -> Result<()> {
        let _ = cx;
        Ok(())
    }
}

/// A plugin type that knows its name, its options and how to make itself: what
/// `#[cni_plugin]` implements, so the type can be run as a binary ([`run`](crate::run),
/// [`main!`](crate::main)) or as one entry of a multi-call binary ([`multicall!`](crate::multicall!))
/// from any crate.
///
/// ```
/// use cni_sdk::{cni_plugin, Context, CniResult, Plugin, PluginEntry, Result};
///
/// #[derive(Default)]
/// pub struct Noop;
///
/// // In a library crate: `main = false`; the binary says `cni_sdk::main!(my_crate::Noop);`.
/// #[cni_plugin(about = "CNI noop plugin", name = "noop", versions = ["1.0.0", "1.1.0"], main = false)]
/// impl Plugin for Noop {
///     type Config = ();
///     async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
///         Ok(cx.prev_result().cloned().unwrap_or_default())
///     }
///     async fn del(&self, _cx: &Context<()>) -> Result<()> { Ok(()) }
///     async fn check(&self, _cx: &Context<()>) -> Result<()> { Ok(()) }
/// }
///
/// # fn main() {
/// assert_eq!(Noop::NAME, "noop");
/// assert_eq!(Noop::options().about(), "CNI noop plugin");
/// # }
/// ```
pub trait PluginEntry: Plugin + Sized {
    /// The name runtimes call it by: its binary's name, and its name in a multi-call binary.
    const NAME: &'static str;
    /// How it presents itself (about text, versions, strictness).
    fn options() -> PluginOptions;
    /// Makes the plugin value.
    fn create() -> Self;
}
