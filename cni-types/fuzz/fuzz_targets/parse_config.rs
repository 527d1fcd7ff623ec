//! Feeds arbitrary bytes to every configuration parser: a plugin's `NetworkConfig`, a
//! `.conflist` and a legacy single-plugin `.conf`. None of them may panic, and whatever parses
//! must survive a serialise/parse round trip.
#![no_main]

use cni_types::{NetworkConfig, NetworkConfigList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(conf) = serde_json::from_slice::<NetworkConfig>(data) {
        let _ = conf.spec_version();
        let _ = conf.parse_prev_result();
        let _ = conf.gc_attachments();
        // Compared through `Value`, not text: without serde_json's `float_roundtrip` feature a
        // printed float may read back one ulp off.
        let back = serde_json::to_value(&conf).expect("a parsed config serialises");
        let again: NetworkConfig =
            serde_json::from_value(back).expect("a serialised config parses");
        assert_eq!(again, conf);
    }
    if let Ok(list) = NetworkConfigList::from_slice(data) {
        let _ = list.selected_version();
        let _ = list.plugin_type(0);
        let printed = serde_json::to_vec(&list).expect("a parsed list serialises");
        let again = NetworkConfigList::from_slice(&printed).expect("a printed list parses");
        assert_eq!((again.name, again.plugins.len()), (list.name, list.plugins.len()));
    }
    if let Ok(list) = NetworkConfigList::from_single_conf(data) {
        assert_eq!(list.plugins.len(), 1);
        let _ = list.selected_version();
    }
});
