//! The real `portmap` binary in throwaway namespaces: a "host" namespace where the plugin runs
//! (so every rule lives there), with a real bridge and containers made by Go's bridge plugin.
//! Asserts `iptables -S` / `nft -j list ruleset` state, traffic through the forwarded ports, and
//! that DEL and GC leave nothing of the container. Needs root:
//! `cargo test -p portmap -- --include-ignored`. Subnets 10.222.0.0/16 and fd00:222::/32.

mod common;

use common::{BIN, BRIDGE, Host, NET, fetch, serve};
use serde_json::{Value, json};

fn mappings() -> Value {
    json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8443, "containerPort": 443, "protocol": "tcp", "hostIP": "10.222.40.1"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}
    ])
}

fn dnat_chain(cid: &str) -> String {
    cni_sdk::firewall::names::portmap_dnat_chain(NET, cid)
}

#[test]
#[ignore = "needs root"]
fn iptables_rules_are_gos_traffic_flows_and_del_leaves_nothing() {
    let host = Host::new("pmipt", 40);
    let pod = host.pod("pm-ipt-1");
    let conf = host.conf(&pod, mappings(), json!({}));

    // Go's rules for the same configuration, as the reference.
    host.call(common::go_portmap(), "ADD", &pod, &conf).ok();
    let go = (host.nat_lines(false), host.nat_lines(true));
    host.call(common::go_portmap(), "DEL", &pod, &conf).ok();
    assert!(host.nat_mentions(&dnat_chain(&pod.cid)).is_empty());

    let mut r = host.call(BIN, "ADD", &pod, &conf).ok();
    let mut want = pod.result.clone();
    // Go prints an empty "dns" in 1.0.0 results; the SDK leaves it out.
    for doc in [&mut r, &mut want] {
        if doc["dns"] == json!({}) {
            doc.as_object_mut().unwrap().remove("dns");
        }
    }
    assert_eq!(r, want, "prevResult passes through");
    assert_eq!((host.nat_lines(false), host.nat_lines(true)), go, "the same rules as Go's portmap");
    assert_eq!(host.ns.sysctl(&format!("net.ipv4.conf.{BRIDGE}.route_localnet")), "1");
    host.call(BIN, "CHECK", &pod, &conf).ok();

    let _server = serve(&pod.ns, 80, "hello from the pod");
    assert_eq!(fetch(&host.ns, &format!("{}:8080", host.gateway4())), "hello from the pod");
    assert_eq!(fetch(&host.ns, "127.0.0.1:8080"), "hello from the pod", "localhost: route_localnet and masquerade");
    assert_eq!(fetch(&host.ns, &format!("[{}]:8080", host.gateway6())), "hello from the pod");

    host.call(BIN, "DEL", &pod, &conf).ok();
    assert!(host.nat_mentions(&dnat_chain(&pod.cid)).is_empty(), "{:?}", host.nat_mentions("CNI-DN"));
    assert!(host.nat_mentions("CNI-DN-").is_empty());
    assert!(fetch(&host.ns, &format!("{}:8080", host.gateway4())).starts_with("connect failed"));
    host.call(BIN, "DEL", &pod, &conf).ok();
    let e = host.call(BIN, "CHECK", &pod, &conf).err();
    assert_eq!(
        e["msg"],
        format!("could not check ipv4 dnat: chain {} not found in iptables table nat", dnat_chain(&pod.cid))
    );
}

#[test]
#[ignore = "needs root"]
fn readd_with_other_mappings_replaces_the_rules() {
    let host = Host::new("pmre", 41);
    let pod = host.pod("pm-re-1");
    let first = host.conf(&pod, json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]), json!({}));
    let second = host.conf(&pod, json!([{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]), json!({}));
    host.call(BIN, "ADD", &pod, &first).ok();
    host.call(BIN, "ADD", &pod, &second).ok();
    let _server = serve(&pod.ns, 80, "pod");
    assert_eq!(fetch(&host.ns, &format!("{}:8081", host.gateway4())), "pod");
    assert!(
        fetch(&host.ns, &format!("{}:8080", host.gateway4())).starts_with("connect failed"),
        "the old mapping is gone"
    );
    host.call(BIN, "DEL", &pod, &second).ok();
    assert!(host.nat_mentions("CNI-DN-").is_empty());
}

#[test]
#[ignore = "needs root"]
fn nftables_layout_traffic_and_del() {
    let host = Host::new("pmnft", 42);
    let pod = host.pod("pm-nft-1");
    let m = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}, {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]);
    let conf = host.conf(&pod, m, json!({"backend": "nftables"}));
    host.call(BIN, "ADD", &pod, &conf).ok();
    assert!(host.nat_mentions("CNI-").is_empty(), "nothing in iptables");
    for family in ["ip", "ip6"] {
        let mut chains = host.nft_chains(family);
        chains.sort();
        assert_eq!(
            chains,
            ["hostip_hostports", "hostports", "hostports_all", "masquerading", "output", "prerouting"],
            "{family}"
        );
        let mine = |chain: &str| {
            host.nft_rules(family, chain).into_iter().filter(|r| r["comment"] == pod.cid.as_str()).count()
        };
        assert_eq!(mine("hostports"), 2, "{family}");
        assert_eq!(mine("masquerading"), if family == "ip" { 2 } else { 1 }, "{family}");
        assert_eq!(host.nft_rules(family, "prerouting").len(), 1);
    }
    host.call(BIN, "CHECK", &pod, &conf).ok();
    let _server = serve(&pod.ns, 80, "nft pod");
    assert_eq!(fetch(&host.ns, &format!("{}:8080", host.gateway4())), "nft pod");
    assert_eq!(fetch(&host.ns, "127.0.0.1:8080"), "nft pod");
    assert_eq!(fetch(&host.ns, &format!("[{}]:8080", host.gateway6())), "nft pod");

    host.call(BIN, "DEL", &pod, &conf).ok();
    for family in ["ip", "ip6"] {
        for chain in ["hostports", "hostip_hostports", "masquerading"] {
            assert!(host.nft_rules(family, chain).is_empty(), "{family} {chain}");
        }
    }
    assert!(fetch(&host.ns, &format!("{}:8080", host.gateway4())).starts_with("connect failed"));
    host.call(BIN, "DEL", &pod, &conf).ok();
    let e = host.call(BIN, "CHECK", &pod, &conf).err();
    assert_eq!(e["msg"], "missing hostport rules in \"hostports\" chain");
}

#[test]
#[ignore = "needs root"]
fn a_failed_add_leaves_nothing() {
    let host = Host::new("pmfail", 43);
    let pod = host.pod("pm-fail-1");
    let conf = host.conf(&pod, mappings(), json!({"externalSetMarkChain": "NO-SUCH-CHAIN"}));
    let e = host.call(BIN, "ADD", &pod, &conf).err();
    assert!(e["msg"].as_str().unwrap().starts_with("unable to setup DNAT: "), "{e}");
    assert!(host.nat_mentions("CNI-").is_empty(), "{:?}", host.nat_mentions("CNI-"));
}

/// GC after one of two containers' runtime state was lost frees exactly that container's
/// mappings, with either backend, and nothing of another network.
#[test]
#[ignore = "needs root"]
fn gc_frees_exactly_the_lost_container() {
    for (i, backend) in [(44u8, "iptables"), (45, "nftables")] {
        let host = Host::new("pmgc", i);
        let keep = host.pod("pm-gc-keep");
        let lost = host.pod("pm-gc-lost");
        let m = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
        let m2 = json!([{"hostPort": 9090, "containerPort": 80, "protocol": "tcp"}]);
        host.call(BIN, "ADD", &keep, &host.conf(&keep, m, json!({"backend": backend}))).ok();
        host.call(BIN, "ADD", &lost, &host.conf(&lost, m2.clone(), json!({"backend": backend}))).ok();
        // The same container on another network (interface net1, another address).
        let mut other = host.conf(
            &lost,
            json!([{"hostPort": 7070, "containerPort": 80, "protocol": "tcp"}]),
            json!({"backend": backend}),
        );
        other["name"] = json!("pmother");
        other["prevResult"] = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": lost.ns.path()}],
            "ips": [{"address": "10.222.99.9/24", "interface": 0}],
        });
        host.call(BIN, "ADD", &lost, &other).ifname("net1").ok();
        let _a = serve(&keep.ns, 80, "keep");
        let _b = serve(&lost.ns, 80, "lost");
        let gw = host.gateway4();
        assert_eq!(fetch(&host.ns, &format!("{gw}:9090")), "lost", "{backend}");

        // The runtime lost `lost`'s state: GC names only `keep` as valid.
        let gc = json!({
            "cniVersion": "1.1.0",
            "name": NET,
            "type": "portmap",
            "backend": backend,
            "dataDir": host.dir.path().join("portmap"),
            "cni.dev/valid-attachments": [{"containerID": keep.cid, "ifname": "eth0"}],
            "cni.dev/attachments": [{"containerID": keep.cid, "ifname": "eth0"}],
        });
        cni_test_support::Call::new(BIN, "GC", &gc, "").in_ns(&host.ns).ok();
        assert_eq!(fetch(&host.ns, &format!("{gw}:8080")), "keep", "{backend}");
        assert!(fetch(&host.ns, &format!("{gw}:9090")).starts_with("connect failed"), "{backend}");
        match backend {
            "iptables" => {
                assert!(host.nat_mentions(&dnat_chain(&lost.cid)).is_empty());
                assert!(!host.nat_mentions(&dnat_chain(&keep.cid)).is_empty());
                let other_chain = cni_sdk::firewall::names::portmap_dnat_chain("pmother", &lost.cid);
                assert!(!host.nat_mentions(&other_chain).is_empty(), "another network's mapping stays");
            }
            _ => {
                let rules: Vec<(Value, bool)> = host
                    .nft_rules("ip", "hostports")
                    .into_iter()
                    .map(|r| (r["comment"].clone(), r.to_string().contains("10.222.99.9")))
                    .collect();
                assert_eq!(
                    rules,
                    [(json!(keep.cid), false), (json!(lost.cid), true)],
                    "another network's mapping stays"
                );
            }
        }
    }
}
