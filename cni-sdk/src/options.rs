//! Per-plugin settings: about text, supported versions, strictness, limits.

use std::borrow::Cow;

use cni_types::SpecVersion;

/// The default cap on the configuration read from stdin (4 MiB).
pub const DEFAULT_MAX_STDIN: usize = 4 << 20;

/// How a plugin presents itself and how strict its dispatcher is.
///
/// `#[cni_plugin(...)]` builds one from its options; in-process tests build one by hand.
///
/// ```
/// use cni_sdk::{PluginOptions, SpecVersion};
/// let opts = PluginOptions::new("CNI my-plugin v0.1")
///     .versions(&[SpecVersion::V1_0_0, SpecVersion::V1_1_0])
///     .go_strict(true);
/// assert_eq!(opts.supported_versions(), &[SpecVersion::V1_0_0, SpecVersion::V1_1_0]);
/// ```
#[derive(Clone, Debug)]
pub struct PluginOptions {
    pub(crate) about: Cow<'static, str>,
    pub(crate) versions: Vec<SpecVersion>,
    pub(crate) go_strict: bool,
    pub(crate) max_stdin: usize,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self::new("")
    }
}

impl PluginOptions {
    /// Options with an about text (printed when `CNI_COMMAND` is unset), all seven versions,
    /// spec-lenient environment checks and a 4 MiB stdin cap.
    pub fn new(about: impl Into<Cow<'static, str>>) -> Self {
        Self {
            about: about.into(),
            versions: SpecVersion::ALL.to_vec(),
            go_strict: false,
            max_stdin: DEFAULT_MAX_STDIN,
        }
    }

    /// The versions the plugin supports (sorted and de-duplicated; an empty list supports
    /// nothing, so every request fails with code 1).
    #[must_use]
    pub fn versions(mut self, versions: &[SpecVersion]) -> Self {
        let mut v = versions.to_vec();
        v.sort();
        v.dedup();
        self.versions = v;
        self
    }

    /// Go-strict mode: like Go's `skel`, also require `CNI_PATH` for ADD, DEL, CHECK and
    /// STATUS (the spec makes it optional there).
    #[must_use]
    pub fn go_strict(mut self, strict: bool) -> Self {
        self.go_strict = strict;
        self
    }

    /// Caps the configuration read from stdin (bytes).
    #[must_use]
    pub fn max_stdin_bytes(mut self, limit: usize) -> Self {
        self.max_stdin = limit;
        self
    }

    /// The about text.
    pub fn about(&self) -> &str {
        &self.about
    }

    /// The supported versions, oldest first.
    pub fn supported_versions(&self) -> &[SpecVersion] {
        &self.versions
    }

    /// The newest supported version (1.1.0 when none is supported).
    pub fn newest_version(&self) -> SpecVersion {
        self.versions.last().copied().unwrap_or(SpecVersion::LATEST)
    }
}
