//! `CNI_ARGS` parsing: never a panic; what parses prints back to a string that parses to the
//! same pairs, and the typed readers (`IP`, `IgnoreUnknown`, the known-key check) only ever
//! return errors.
#![no_main]

use cni_types::CniArgs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(args) = CniArgs::parse(s) else { return };
    let printed = args.to_env_string();
    let again = CniArgs::parse(&printed).expect("a printed CNI_ARGS parses");
    assert_eq!(again.pairs(), args.pairs(), "round trip of {s:?} through {printed:?}");
    let _ = args.ip();
    let _ = args.ignore_unknown();
    let _ = args.check_known(&["IP", "K8S_POD_NAME", "K8S_POD_NAMESPACE", "IgnoreUnknown"]);
    assert_eq!(args.is_empty(), args.pairs().is_empty());
});
