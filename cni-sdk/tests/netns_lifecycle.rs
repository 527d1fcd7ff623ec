//! Named namespaces across a runtime restart: open by name or path, list, remove by name or
//! path (root-only parts are `#[ignore = "needs root"]`).

use cni_sdk::netns::{NamedNetns, NetnsErrorKind};

#[test]
fn removing_and_listing_without_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    // Absent: removal is idempotent, listing an absent directory gives nothing.
    NamedNetns::remove_path(dir.path().join("gone")).unwrap();
    assert!(NamedNetns::list_in(dir.path().join("nope")).unwrap().is_empty());
    // A file that is not a namespace is refused and left alone.
    let file = dir.path().join("precious");
    std::fs::write(&file, b"data").unwrap();
    let e = NamedNetns::remove_path(&file).unwrap_err();
    assert_eq!(e.kind(), NetnsErrorKind::NotANetns);
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
    assert!(NamedNetns::list_in(dir.path()).unwrap().is_empty(), "regular files are not namespaces");
    assert_eq!(NamedNetns::open_in(dir.path(), "precious").unwrap_err().kind(), NetnsErrorKind::NotANetns);
    assert_eq!(NamedNetns::open_in(dir.path(), "missing").unwrap_err().kind(), NetnsErrorKind::NotFound);
    // The empty placeholder of a failed creation is cleaned up.
    let placeholder = dir.path().join("half-made");
    std::fs::write(&placeholder, b"").unwrap();
    NamedNetns::remove_path(&placeholder).unwrap();
    assert!(!placeholder.exists());
    for bad in ["", "..", "a/b"] {
        assert_eq!(NamedNetns::open(bad).unwrap_err().kind(), NetnsErrorKind::InvalidName, "{bad:?}");
        assert_eq!(NamedNetns::remove_named(bad).unwrap_err().kind(), NetnsErrorKind::InvalidName, "{bad:?}");
    }
}

/// Removes the named namespaces on drop, whatever the test did.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = NamedNetns::remove_named(n);
        }
    }
}

#[test]
#[ignore = "needs root"]
fn named_namespace_survives_a_restart_and_is_removed_by_name() {
    let name = format!("rt218-life-{}", std::process::id());
    let _cleanup = Cleanup(vec![name.clone(), format!("{name}-p")]);
    let made = NamedNetns::create(&name).unwrap();
    let inode = made.netns().unwrap().inode().unwrap();
    drop(made); // the handle is gone, the namespace is not

    let again = NamedNetns::open(&name).unwrap();
    assert_eq!(again.path(), std::path::Path::new("/run/netns").join(&name));
    assert_eq!(again.netns().unwrap().inode().unwrap(), inode, "the same namespace");
    let by_path = NamedNetns::from_path(again.path()).unwrap();
    assert_eq!(by_path.name(), name);
    let listed = NamedNetns::list().unwrap();
    assert!(listed.iter().any(|n| n.name() == name), "listed");
    assert!(listed.windows(2).all(|w| w[0].name() <= w[1].name()), "sorted");

    NamedNetns::remove_named(&name).unwrap();
    assert_eq!(NamedNetns::open(&name).unwrap_err().kind(), NetnsErrorKind::NotFound);
    assert!(!NamedNetns::list().unwrap().iter().any(|n| n.name() == name));
    NamedNetns::remove_named(&name).unwrap();

    // Removal by path, through the path `ip netns` prints.
    let other = NamedNetns::create(&format!("{name}-p")).unwrap();
    let path = other.path().to_owned();
    NamedNetns::remove_path(&path).unwrap();
    assert!(!path.exists());
}
