//! Interop with Debian's Go `bandwidth` 1.1.1: each CHECKs and DELs what the other ADDed (the
//! ifb names, the numbers and the redirect are the same), and ours takes Go's shaping off.

use cni_test_support::go;
use serde_json::json;

use crate::common::{Host, NET, OURS};

#[test]
#[ignore = "needs root"]
fn go_and_ours_check_and_delete_each_others_shaping() {
    let go = go::plugin("bandwidth");
    let go = go.to_str().unwrap();
    let keys =
        json!({"ingressRate": 1_000_000, "ingressBurst": 80_000, "egressRate": 2_000_000, "egressBurst": 160_000});
    for (adder, remover) in [(go, OURS), (OURS, go)] {
        let host = Host::new("bwio");
        let pod = host.pod(40);
        let conf = host.conf(&pod, "1.0.0", keys.clone());
        let r = host.call(adder, "ADD", &pod, &conf).ok();
        let mut check = conf.clone();
        check["prevResult"] = r;
        host.call(remover, "CHECK", &pod, &check).ok();
        host.call(adder, "CHECK", &pod, &check).ok();
        // A CHECK with other numbers fails on both sides with the same message.
        let mut other = check.clone();
        other["ingressRate"] = json!(4_000_000);
        assert_eq!(host.call(remover, "CHECK", &pod, &other).err()["msg"], "Rate doesn't match");
        host.call(remover, "DEL", &pod, &conf).ok();
        assert!(host.ifbs().is_empty(), "{adder} -> {remover}");
        if remover == OURS {
            assert_eq!(host.qdiscs(&pod.veth), [json!(["noqueue", "0:", "root", null, null, null])]);
        }
        let ifb = bandwidth::ifb_name(NET, &pod.cid);
        assert!(host.ns.link(&ifb).is_none());
    }
}
