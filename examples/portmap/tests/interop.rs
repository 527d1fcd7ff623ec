//! Go's portmap (Debian 1.1.1, `/usr/lib/cni/portmap`) and this one remove each other's
//! mappings: the same chains, rules and comments. Runs in throwaway namespaces; needs root:
//! `cargo test -p portmap --test interop -- --include-ignored`.

mod common;

use common::{BIN, Host, NET, fetch, go_portmap, serve};
use serde_json::json;

fn mappings() -> serde_json::Value {
    json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
        {"hostPort": 9443, "containerPort": 443, "protocol": "tcp", "hostIP": "fd00:222:50::1"}
    ])
}

#[test]
#[ignore = "needs root"]
fn go_adds_we_delete_and_we_add_go_deletes() {
    let host = Host::new("pmgo", 50);
    let pod = host.pod("pm-go-1");
    let conf = host.conf(&pod, mappings(), json!({}));
    let chain = cni_sdk::firewall::names::portmap_dnat_chain(NET, &pod.cid);
    let _server = serve(&pod.ns, 80, "pod");

    // Go ADD: our CHECK accepts its rules, our DEL removes them (both families).
    host.call(go_portmap(), "ADD", &pod, &conf).ok();
    // Per family: the chain, two entry rules (tcp, udp), three rules per IPv4 mapping and two per
    // IPv6 one; the IPv6 host IP mapping is IPv6 only.
    assert_eq!(host.nat_mentions(&chain).len(), (1 + 2 + 2 * 3) + (1 + 2 + 3 * 2), "{:?}", host.nat_mentions(&chain));
    host.call(BIN, "CHECK", &pod, &conf).ok();
    assert_eq!(fetch(&host.ns, &format!("{}:8080", host.gateway4())), "pod");
    host.call(BIN, "DEL", &pod, &conf).ok();
    assert!(host.nat_mentions(&chain).is_empty(), "{:?}", host.nat_mentions(&chain));
    assert!(fetch(&host.ns, &format!("{}:8080", host.gateway4())).starts_with("connect failed"));

    // Our ADD: Go's DEL removes our rules.
    host.call(BIN, "ADD", &pod, &conf).ok();
    assert_eq!(fetch(&host.ns, &format!("[{}]:8080", host.gateway6())), "pod");
    host.call(go_portmap(), "DEL", &pod, &conf).ok();
    assert!(host.nat_mentions(&chain).is_empty(), "{:?}", host.nat_mentions(&chain));
    // Go's repeated DEL and ours on what is left (nothing) both succeed.
    host.call(go_portmap(), "DEL", &pod, &conf).ok();
    host.call(BIN, "DEL", &pod, &conf).ok();
}

#[test]
#[ignore = "needs root"]
fn go_and_ours_share_the_chains_for_two_containers() {
    let host = Host::new("pmgo2", 51);
    let a = host.pod("pm-go-a");
    let b = host.pod("pm-rs-b");
    let ca = host.conf(&a, json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]), json!({}));
    let cb = host.conf(&b, json!([{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]), json!({}));
    host.call(go_portmap(), "ADD", &a, &ca).ok();
    host.call(BIN, "ADD", &b, &cb).ok();
    let _sa = serve(&a.ns, 80, "a");
    let _sb = serve(&b.ns, 80, "b");
    let gw = host.gateway4();
    assert_eq!(fetch(&host.ns, &format!("{gw}:8080")), "a");
    assert_eq!(fetch(&host.ns, &format!("{gw}:8081")), "b");
    // Each removes the other's container: the shared chains are used by both.
    host.call(BIN, "DEL", &a, &ca).ok();
    host.call(go_portmap(), "DEL", &b, &cb).ok();
    assert!(host.nat_mentions("CNI-DN-").is_empty(), "{:?}", host.nat_mentions("CNI-DN-"));
    let shared = host.nat_mentions("CNI-HOSTPORT-DNAT");
    assert_eq!(shared.iter().filter(|l| l.starts_with("-A PREROUTING")).count(), 2, "one per family: {shared:?}");
}
