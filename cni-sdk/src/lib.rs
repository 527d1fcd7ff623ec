//! The CNI plugin SDK.
pub mod net;
pub mod netns;
