//! Code shared by the `bridge` and `ptp` plugins (the `ptp` package includes this directory,
//! and each plugin uses a subset of it).

#[allow(dead_code)]
pub(crate) mod ipmasq;
#[allow(dead_code)]
pub(crate) mod netconf;
