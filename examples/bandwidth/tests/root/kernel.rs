//! The binary on the kernel: the qdiscs, filter and ifb `tc -j` and `ip -j` report, traffic
//! through the redirect, DEL and GC leaving nothing, a failed ADD rolled back.

use serde_json::{Value, json};

use crate::common::{Host, NET, OURS};

fn both() -> Value {
    json!({"ingressRate": 1_000_000, "ingressBurst": 80_000, "egressRate": 2_000_000, "egressBurst": 160_000})
}

#[test]
#[ignore = "needs root"]
fn add_check_del_on_the_kernel_in_every_version() {
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let host = Host::new("bwk");
        let pod = host.pod(u8::try_from(10 + i).unwrap());
        let conf = host.conf(&pod, version, both());
        let r = host.call(OURS, "ADD", &pod, &conf).ok();
        let ifb = bandwidth::ifb_name(NET, &pod.cid);
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][2]["name"], ifb.as_str(), "{version}: {r}");
        let mac = host.ns.link(&ifb).unwrap()["address"].clone();
        assert_eq!(r["interfaces"][2]["mac"], mac);

        // `tc` shows Go's numbers: rate 1Mbit burst 10000b lat 25ms into the container.
        assert_eq!(
            host.qdiscs(&pod.veth),
            [
                json!(["tbf", "1:", "root", 125_000, 10_000, 25_000]),
                json!(["ingress", "ffff:", "ffff:fff1", null, null, null])
            ],
            "{version}"
        );
        assert_eq!(
            host.ingress_filters(&pod.veth),
            [json!([1, "all", "1:1", "0", "0", [["mirred", "redirect", "egress", ifb]]])]
        );
        assert_eq!(host.qdiscs(&ifb), [json!(["tbf", "1:", "root", 250_000, 20_000, 25_000])]);
        assert_eq!(host.ifbs(), [json!([ifb, "ifb", 1400, 0, true])]);
        assert_eq!(host.records(), [pod.cid.as_str()]);

        // Traffic from the container goes through the ifb, replies through the veth's tbf.
        pod.send_to_host();
        assert!(host.sent_packets(&ifb) >= 3, "{:?}", host.tc(&["-s", "qdisc", "show", "dev", &ifb]));
        assert!(host.sent_packets(&pod.veth) >= 3);

        let mut check = conf.clone();
        check["prevResult"] = r;
        if version != "0.3.0" && version != "0.3.1" {
            host.call(OURS, "CHECK", &pod, &check).ok();
        }
        host.call(OURS, "DEL", &pod, &conf).ok();
        assert!(host.ifbs().is_empty());
        assert_eq!(host.qdiscs(&pod.veth), [json!(["noqueue", "0:", "root", null, null, null])]);
        assert!(host.records().is_empty());
        host.call(OURS, "DEL", &pod, &conf).ok();
        pod.send_to_host();
    }
}

#[test]
#[ignore = "needs root"]
fn the_bandwidth_capability_and_passthrough() {
    let host = Host::new("bwcap");
    let pod = host.pod(20);
    let caps = json!({"runtimeConfig": {"bandwidth": {"egressRate": 8_000_000, "egressBurst": 800_000}}});
    let conf = host.conf(&pod, "1.0.0", caps);
    host.call(OURS, "ADD", &pod, &conf).ok();
    let ifb = bandwidth::ifb_name(NET, &pod.cid);
    assert_eq!(host.qdiscs(&ifb), [json!(["tbf", "1:", "root", 1_000_000, 100_000, 25_000])]);
    assert_eq!(host.qdiscs(&pod.veth)[0][0], "noqueue");
    host.call(OURS, "DEL", &pod, &conf).ok();
    assert!(host.ifbs().is_empty());
    // No limits: the prevResult comes back and nothing changes.
    let conf = host.conf(&pod, "1.0.0", json!({}));
    let r = host.call(OURS, "ADD", &pod, &conf).ok();
    assert_eq!(r["interfaces"], pod.prev("1.0.0")["interfaces"]);
    assert_eq!(host.qdiscs(&pod.veth), [json!(["noqueue", "0:", "root", null, null, null])]);
}

#[test]
#[ignore = "needs root"]
fn a_failed_add_leaves_nothing() {
    let host = Host::new("bwfail");
    let pod = host.pod(21);
    let ifb = bandwidth::ifb_name(NET, &pod.cid);
    // Something else already has the ifb's name: ADD fails after shaping the veth.
    host.ns.sh(&["ip", "link", "add", &ifb, "type", "bridge"]);
    let conf = host.conf(&pod, "1.0.0", both());
    let e = host.call(OURS, "ADD", &pod, &conf).err();
    assert_eq!(e["msg"], "adding link: file exists");
    assert_eq!(host.qdiscs(&pod.veth), [json!(["noqueue", "0:", "root", null, null, null])]);
    assert!(host.records().is_empty());
    assert!(host.ns.link(&ifb).is_some(), "the other link stays");
    // DEL does not take a bridge for its ifb.
    host.call(OURS, "DEL", &pod, &conf).ok();
    assert!(host.ns.link(&ifb).is_some());
}

#[test]
#[ignore = "needs root"]
fn del_after_the_namespace_is_gone() {
    let host = Host::new("bwgone");
    let pod = host.pod(22);
    let conf = host.conf(&pod, "0.4.0", both());
    host.call(OURS, "ADD", &pod, &conf).ok();
    let call = host.call(OURS, "DEL", &pod, &conf);
    let veth = pod.veth.clone();
    drop(pod);
    call.ok();
    assert!(host.ifbs().is_empty());
    assert!(host.records().is_empty());
    cni_test_support::wait_until("the veth to go with its namespace", std::time::Duration::from_secs(5), || {
        host.ns.link(&veth).is_none()
    });
    call.ok();
}

/// GC after one of two containers' runtime state was lost frees exactly that container's ifb,
/// and nothing of another network.
#[test]
#[ignore = "needs root"]
fn gc_frees_exactly_the_lost_container() {
    let host = Host::new("bwgc");
    let keep = host.pod(23);
    let lost = host.pod(24);
    let egress = json!({"egressRate": 1_000_000, "egressBurst": 80_000});
    host.call(OURS, "ADD", &keep, &host.conf(&keep, "1.1.0", egress.clone())).ok();
    host.call(OURS, "ADD", &lost, &host.conf(&lost, "1.1.0", egress.clone())).ok();
    // The lost container on another network too (its second veth, net1).
    host.ns.sh(&["ip", "link", "add", "vbwo", "type", "veth", "peer", "name", "net1", "netns", &lost.ns.name]);
    host.ns.sh(&["ip", "link", "set", "vbwo", "up"]);
    lost.ns.sh(&["ip", "link", "set", "net1", "up"]);
    let mut other = host.conf(&lost, "1.1.0", egress);
    other["name"] = json!("bwother");
    other["prevResult"]["interfaces"] = json!([{"name": "vbwo"}, {"name": "net1", "sandbox": lost.ns.path()}]);
    host.call(OURS, "ADD", &lost, &other).ifname("net1").ok();
    let (k, l, o) = (
        bandwidth::ifb_name(NET, &keep.cid),
        bandwidth::ifb_name(NET, &lost.cid),
        bandwidth::ifb_name("bwother", &lost.cid),
    );
    let names = |host: &Host| -> Vec<String> {
        let mut v: Vec<String> = host.ifbs().iter().map(|i| i[0].as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    let mut all = vec![k.clone(), l.clone(), o.clone()];
    all.sort();
    assert_eq!(names(&host), all);

    let gc = |valid: Value| {
        json!({
            "cniVersion": "1.1.0", "name": NET, "type": "bandwidth", "dataDir": host.data_dir(),
            "cni.dev/valid-attachments": valid.clone(), "cni.dev/attachments": valid,
        })
    };
    cni_test_support::Call::new(OURS, "GC", &gc(json!([{"containerID": keep.cid, "ifname": "eth0"}])), "")
        .in_ns(&host.ns)
        .ok();
    let mut left = vec![k.clone(), o.clone()];
    left.sort();
    assert_eq!(names(&host), left);
    assert_eq!(host.records(), [keep.cid.as_str()]);
    // The shaping of the kept container is untouched; an empty list releases the rest of NET.
    assert_eq!(host.qdiscs(&k)[0][0], "tbf");
    cni_test_support::Call::new(OURS, "GC", &gc(json!([])), "").in_ns(&host.ns).ok();
    assert_eq!(names(&host), [o]);
    assert!(host.records().is_empty());
}
