//! The "CNI_NETNS is my own namespace" check.

use std::os::unix::fs::MetadataExt as _;

/// Whether `path` names the network namespace of the calling thread. Unopenable paths (empty,
/// deleted, not a namespace) are not "own", as in Go.
pub(crate) fn is_own_netns(path: &str) -> bool {
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(own) = std::fs::metadata("/proc/thread-self/ns/net") else {
        return false;
    };
    target.dev() == own.dev() && target.ino() == own.ino()
}
