//! The CNI plugin SDK.
