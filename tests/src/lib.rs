//! Test-only package: see `tests/` for the suites.
//!
//! The Rust examples of the workspace README, the guides in `docs/` and the READMEs of the
//! crates that cannot test their own (cni-macros cannot depend on cni-sdk) are compiled, and
//! run unless marked `no_run`, as this package's doctests: `cargo test -p cni-tests --doc`.

/// The Markdown files whose examples are doctests.
#[cfg(doctest)]
pub mod docs {
    /// `README.md`.
    #[doc = include_str!("../../README.md")]
    pub struct Readme;
    /// `cni-macros/README.md`.
    #[doc = include_str!("../../cni-macros/README.md")]
    pub struct MacrosReadme;
    /// `docs/writing-a-plugin.md`.
    #[doc = include_str!("../../docs/writing-a-plugin.md")]
    pub struct WritingAPlugin;
    /// `docs/testing.md`.
    #[doc = include_str!("../../docs/testing.md")]
    pub struct Testing;
    /// `docs/delegation.md`.
    #[doc = include_str!("../../docs/delegation.md")]
    pub struct Delegation;
    /// `docs/daemon.md`.
    #[doc = include_str!("../../docs/daemon.md")]
    pub struct Daemon;
    /// `docs/kit.md`.
    #[doc = include_str!("../../docs/kit.md")]
    pub struct Kit;
    /// `docs/porting.md`.
    #[doc = include_str!("../../docs/porting.md")]
    pub struct Porting;
    /// `docs/host-local.md`.
    #[doc = include_str!("../../docs/host-local.md")]
    pub struct HostLocal;
    /// `docs/performance.md`.
    #[doc = include_str!("../../docs/performance.md")]
    pub struct Performance;
    /// `templates/README.md`.
    #[doc = include_str!("../../templates/README.md")]
    pub struct Templates;
}
