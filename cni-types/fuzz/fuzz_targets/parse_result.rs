//! Feeds arbitrary bytes to `CniResult::parse` with every default version (and the empty one),
//! then prints every parsed result in every version. Nothing may panic, and a result printed in
//! a version must parse back as that version.
#![no_main]

use cni_types::{CniResult, SpecVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let defaults = std::iter::once("").chain(SpecVersion::ALL.iter().map(|v| v.as_str()));
    for default in defaults {
        let Ok(result) = CniResult::parse(data, default) else {
            continue;
        };
        for v in SpecVersion::ALL {
            let _ = result.is_lossless_in(v);
            let _ = result.to_json(v);
            if let Ok(printed) = result.to_value(v) {
                assert_eq!(printed["cniVersion"], v.as_str());
                CniResult::from_value(printed, "").expect("a printed result parses back");
            }
        }
    }
});
