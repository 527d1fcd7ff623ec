//! Network configuration list loading as a runtime does it (`runtime::NetworkList::from_bytes`):
//! never a panic, and a list that loads has a name and a version and loads again from its own
//! bytes with the same name and version.
#![no_main]

use cni_sdk::runtime::NetworkList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = NetworkList::from_bytes(data) else { return };
    let (name, version) = (list.name().to_owned(), list.version());
    let again = NetworkList::from_bytes(data).expect("the same bytes load twice");
    assert_eq!((again.name(), again.version()), (name.as_str(), version));
});
