//! GC as root, with this workspace's plugins driven through this `cnitool`: two containers are
//! attached, the runtime loses one of them (its cache entry and its netns are gone, as after a
//! kubelet restart), and `cnitool gc --keep <the other>` must free exactly the lost container's
//! host-side state — its host-local lease, its masquerading, its port mappings, its firewall
//! rules, its ifb device and the records and backups the plugins keep — and nothing of the
//! kept one's. Then a normal DEL of the kept container must leave nothing of either.
//!
//! Everything lives on a bridge `gc9*` in the host namespace, in 10.232.91.0/24 and
//! 10.232.92.0/24, under a network name unique to the process; a Drop guard removes what the
//! test created (a plugin GC of the whole network, then a sweep of the iptables rules, nftables
//! rules, links and files that name this network or its subnet) even when an assertion fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cni_test_support::Netns;
use common::{BIN, iptables_args, iptables_rules, jump_target, link_exists, nft_masq_rules, plugin_dir, text};
use serde_json::{Value, json};

/// One container of a test: its ID, namespace and what ADD gave it.
struct Ctr {
    id: &'static str,
    netns: Option<Netns>,
    netns_path: String,
    host_port: u16,
    /// Its address without prefix length.
    ip: String,
    /// The ifb device the bandwidth plugin reported (full chain only).
    ifb: Option<String>,
}

/// A test's network: config, cache and data directories, the bridge, and the cleanup guard.
struct Net {
    name: String,
    bridge: String,
    subnet: String,
    /// `10.232.N.`, which every address of the test starts with.
    prefix: String,
    conf: tempfile::TempDir,
    cache: tempfile::TempDir,
    data: tempfile::TempDir,
    plugins: PathBuf,
    /// ifb devices to remove if GC/DEL did not.
    ifbs: std::cell::RefCell<Vec<String>>,
    forwarding: String,
}

impl Net {
    fn new(tag: &str, third_octet: u8, full_chain: bool, nft_masq: bool) -> Self {
        let name = format!("gc9-{tag}-{}", std::process::id());
        let bridge = format!("gc9{tag}{}", std::process::id() % 100_000);
        assert!(bridge.len() <= 15, "bridge name {bridge} too long");
        let net = Self {
            subnet: format!("10.232.{third_octet}.0/24"),
            prefix: format!("10.232.{third_octet}."),
            name,
            bridge,
            conf: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
            plugins: plugin_dir(),
            ifbs: std::cell::RefCell::new(Vec::new()),
            forwarding: common::original_forwarding(),
        };
        let mut bridge_conf = json!({
            "type": "bridge", "bridge": net.bridge, "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": net.subnet, "dataDir": net.dir("ipam"),
                     "routes": [{"dst": "0.0.0.0/0"}]}
        });
        if nft_masq {
            bridge_conf["ipMasqBackend"] = json!("nftables");
        }
        let mut plugins = vec![bridge_conf];
        if full_chain {
            plugins.extend([
                json!({"type": "portmap", "backend": "iptables", "capabilities": {"portMappings": true},
                       "dataDir": net.dir("portmap")}),
                json!({"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"},
                       "dataDir": net.dir("tuning")}),
                json!({"type": "bandwidth", "ingressRate": 8_000_000, "ingressBurst": 80_000,
                       "egressRate": 8_000_000, "egressBurst": 80_000, "dataDir": net.dir("bandwidth")}),
                json!({"type": "firewall", "backend": "iptables", "dataDir": net.dir("firewall")}),
            ]);
        }
        let list = json!({"cniVersion": "1.1.0", "name": net.name, "plugins": plugins});
        std::fs::write(net.conf.path().join("gc.conflist"), list.to_string()).unwrap();
        net
    }

    fn dir(&self, plugin: &str) -> PathBuf {
        self.data.path().join(plugin)
    }

    fn cnitool(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NETCONFPATH", self.conf.path())
            .env("CNI_PATH", &self.plugins)
            .env("CNI_CACHE_DIR", self.cache.path());
        c
    }

    fn ctr_cmd(&self, verb: &str, ctr: &Ctr) -> Command {
        let mut c = self.cnitool(&[verb, &self.name, &ctr.netns_path]);
        let caps = json!({"portMappings": [{"hostPort": ctr.host_port, "containerPort": 80, "protocol": "tcp"}]});
        c.env("CNI_CONTAINERID", ctr.id).env("CAP_ARGS", caps.to_string());
        c
    }

    /// ADD `id` in a fresh namespace; returns the container with its address (and ifb).
    fn add(&self, id: &'static str, host_port: u16) -> Ctr {
        let netns = Netns::new(&format!("gc9{id}"));
        let mut ctr = Ctr { id, netns_path: netns.path(), netns: Some(netns), host_port, ip: String::new(), ifb: None };
        let out = self.ctr_cmd("add", &ctr).output().unwrap();
        assert!(out.status.success(), "ADD {id}: {}", text(&out));
        let result: Value = serde_json::from_slice(&out.stdout).expect("ADD prints the result");
        let addr = result["ips"][0]["address"].as_str().expect("an address").to_owned();
        ctr.ip = addr.split('/').next().unwrap().to_owned();
        assert!(ctr.ip.starts_with(&self.prefix), "{id} got {addr}, not in {}", self.subnet);
        ctr.ifb = result["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str())
            .find(|n| n.starts_with("bwp"))
            .map(str::to_owned);
        if let Some(ifb) = &ctr.ifb {
            self.ifbs.borrow_mut().push(ifb.clone());
        }
        ctr
    }

    /// The runtime's cache entry of `ctr` (libcni's `results/<net>-<id>-<ifname>`).
    fn cache_entry(&self, ctr: &Ctr) -> PathBuf {
        self.cache.path().join("results").join(format!("{}-{}-eth0", self.name, ctr.id))
    }

    /// The comment Go's ipMasq (iptables) puts on a container's rules.
    fn masq_comment(&self, ctr: &Ctr) -> String {
        format!("name: \"{}\" id: \"{}\"", self.name, ctr.id)
    }

    /// Every host-side object of `ctr`: what it is, how many of it exist now, and how many
    /// an attachment has (present: exactly that many; gone: none at all).
    fn footprint(&self, ctr: &Ctr, full_chain: bool, nft_masq: bool) -> Vec<(&'static str, usize, usize)> {
        let nat: Vec<Vec<String>> = iptables_rules("nat").iter().map(|l| iptables_args(l)).collect();
        let chain_exists = |c: &str| nat.iter().any(|a| a.len() == 2 && a[0] == "-N" && a[1] == c);
        let rules_in = |c: &str| nat.iter().filter(|a| a.len() > 2 && a[0] == "-A" && a[1] == c).count();
        let host = format!("{}/32", ctr.ip);
        let mut out = Vec::new();

        let lease = std::fs::read_to_string(self.dir("ipam").join(&self.name).join(&ctr.ip))
            .is_ok_and(|s| s.starts_with(&format!("{}\r\n", ctr.id)));
        out.push(("host-local lease file", usize::from(lease), 1));

        // ipMasq (iptables): POSTROUTING -s <ip>/32 -j CNI-<hash> commented with the container,
        // into a chain of two rules (ACCEPT to the subnet, MASQUERADE) commented the same way.
        let comment = self.masq_comment(ctr);
        let masq_jumps: Vec<&Vec<String>> = nat
            .iter()
            .filter(|a| {
                a.get(1).is_some_and(|c| c == "POSTROUTING")
                    && a.contains(&host)
                    && a.contains(&comment)
                    && jump_target(a).is_some_and(|t| t.starts_with("CNI-"))
            })
            .collect();
        if nft_masq {
            out.push(("iptables ipMasq jump (none with the nftables backend)", masq_jumps.len(), 0));
            let rules = nft_masq_rules().iter().filter(|r| r.contains(&format!("ip saddr {} ", ctr.ip))).count();
            out.push(("nftables masq_checks rule", rules, 1));
        } else {
            out.push(("ipMasq POSTROUTING jump", masq_jumps.len(), 1));
            // The chain may outlive its jump: then it is found by the comment of its own rules.
            let chain = masq_jumps.first().and_then(|a| jump_target(a)).map(str::to_owned).or_else(|| {
                nat.iter()
                    .find(|a| a.len() > 2 && a[0] == "-A" && a[1].starts_with("CNI-") && a.contains(&comment))
                    .map(|a| a[1].clone())
            });
            let chain = chain.unwrap_or_default();
            out.push(("ipMasq chain", usize::from(chain_exists(&chain)), 1));
            out.push(("ipMasq chain rules", rules_in(&chain), 2));
        }
        if !full_chain {
            return out;
        }

        // portmap (iptables): CNI-HOSTPORT-DNAT -p tcp --dport <port> -j CNI-DN-<hash> commented
        // `dnat name: .. id: ..`, into a chain that DNATs to <ip>:80.
        let dnat_comment = format!("dnat name: \"{}\" id: \"{}\"", self.name, ctr.id);
        let port = ctr.host_port.to_string();
        let dnat_jumps: Vec<&Vec<String>> = nat
            .iter()
            .filter(|a| {
                a.get(1).is_some_and(|c| c == "CNI-HOSTPORT-DNAT") && a.contains(&dnat_comment) && a.contains(&port)
            })
            .collect();
        out.push(("portmap CNI-HOSTPORT-DNAT jump", dnat_jumps.len(), 1));
        let dn_chain = dnat_jumps.first().and_then(|a| jump_target(a)).unwrap_or_default();
        out.push(("portmap CNI-DN chain", usize::from(chain_exists(dn_chain)), 1));
        // The DNAT itself, wherever it is (a chain that outlived its jump still counts).
        let dnat = nat.iter().filter(|a| a.contains(&format!("{}:80", ctr.ip))).count();
        out.push(("portmap DNAT rule to the container", dnat, 1));

        // firewall (iptables): the two address rules in CNI-FORWARD, and the plugin's record.
        let filter: Vec<Vec<String>> = iptables_rules("filter").iter().map(|l| iptables_args(l)).collect();
        let fw_rules =
            filter.iter().filter(|a| a.get(1).is_some_and(|c| c == "CNI-FORWARD") && a.contains(&host)).count();
        out.push(("firewall CNI-FORWARD address rules", fw_rules, 2));
        let record = |plugin: &str| usize::from(self.dir(plugin).join(&self.name).join(ctr.id).join("eth0").is_file());
        out.push(("firewall record", record("firewall"), 1));

        // bandwidth: the ifb device and its record.
        let ifb = ctr.ifb.as_deref().is_some_and(link_exists);
        out.push(("bandwidth ifb device", usize::from(ifb), 1));
        out.push(("bandwidth record", record("bandwidth"), 1));

        // tuning: the saved original values.
        let backup = self.dir("tuning").join(format!("{}_eth0.json", ctr.id)).is_file();
        out.push(("tuning backup", usize::from(backup), 1));
        out
    }

    fn assert_present(&self, ctr: &Ctr, full_chain: bool, nft_masq: bool, when: &str) {
        let wrong: Vec<_> = self
            .footprint(ctr, full_chain, nft_masq)
            .into_iter()
            .filter(|(_, found, want)| found != want)
            .map(|(what, found, want)| format!("{what}: {found} (want {want})"))
            .collect();
        assert!(wrong.is_empty(), "{when}: {} ({}) has {wrong:?}\n{}", ctr.id, ctr.ip, self.dump());
    }

    fn assert_gone(&self, ctr: &Ctr, full_chain: bool, nft_masq: bool, when: &str) {
        let left: Vec<_> = self
            .footprint(ctr, full_chain, nft_masq)
            .into_iter()
            .filter(|(_, found, _)| *found > 0)
            .map(|(what, found, _)| format!("{what}: {found}"))
            .collect();
        assert!(left.is_empty(), "{when}: {} ({}) still has {left:?}\n{}", ctr.id, ctr.ip, self.dump());
    }

    /// What the host holds of this test, for failure messages.
    fn dump(&self) -> String {
        let mine = |l: &&String| l.contains(&self.name) || l.contains(&self.prefix);
        let nat: Vec<_> = iptables_rules("nat").into_iter().filter(|l| mine(&l)).collect();
        let filter: Vec<_> = iptables_rules("filter").into_iter().filter(|l| mine(&l)).collect();
        let nft: Vec<_> = nft_masq_rules().into_iter().filter(|l| l.contains(&self.prefix)).collect();
        format!("nat: {nat:#?}\nfilter: {filter:#?}\nnft masq_checks: {nft:#?}")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The plugins' own cleanup of the whole network first, then whatever they left.
        let _ = self.cnitool(&["gc", &self.name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        common::sweep_iptables("nat", &self.name, &self.prefix);
        common::sweep_iptables("filter", &self.name, &self.prefix);
        common::sweep_nft(&self.prefix);
        for ifb in self.ifbs.borrow().iter() {
            common::del_link(ifb);
        }
        common::del_link(&self.bridge);
        common::restore_forwarding(&self.forwarding);
    }
}

/// The lost-state flow shared by both tests: ADD c1 and c2, lose c1 (cache entry and netns),
/// `gc --keep c2/eth0`, check, DEL c2, check.
fn lose_one_and_collect(net: &Net, full_chain: bool, nft_masq: bool) {
    let mut c1 = net.add("c1", 29191);
    let c2 = net.add("c2", 29192);
    assert_ne!(c1.ip, c2.ip);
    if full_chain {
        assert!(c1.ifb.is_some() && c2.ifb.is_some(), "bandwidth reports an ifb device for each container");
        assert_ne!(c1.ifb, c2.ifb);
    }
    net.assert_present(&c1, full_chain, nft_masq, "after ADD");
    net.assert_present(&c2, full_chain, nft_masq, "after ADD");

    // The runtime forgets c1: its cache entry is deleted and its namespace goes away.
    let entry = net.cache_entry(&c1);
    assert!(entry.is_file(), "cnitool cached c1's attachment at {}", entry.display());
    std::fs::remove_file(&entry).unwrap();
    drop(c1.netns.take());
    assert!(!Path::new(&c1.netns_path).exists());

    let out = net.cnitool(&["gc", &net.name, "--keep", &format!("{}/eth0", c2.id)]).output().unwrap();
    assert!(out.status.success(), "gc: {}", text(&out));
    net.assert_gone(&c1, full_chain, nft_masq, "after GC keeping c2");
    net.assert_present(&c2, full_chain, nft_masq, "after GC keeping c2");
    assert!(net.cache_entry(&c2).is_file(), "GC keeps c2's cache entry");

    // A second GC finds nothing more to do.
    let out = net.cnitool(&["gc", &net.name, "--keep", "c2/eth0"]).output().unwrap();
    assert!(out.status.success(), "second gc: {}", text(&out));
    net.assert_present(&c2, full_chain, nft_masq, "after a second GC");

    let out = net.ctr_cmd("del", &c2).output().unwrap();
    assert!(out.status.success(), "DEL c2: {}", text(&out));
    net.assert_gone(&c1, full_chain, nft_masq, "after DEL c2");
    net.assert_gone(&c2, full_chain, nft_masq, "after DEL c2");
    assert!(!net.cache_entry(&c2).exists(), "DEL removes c2's cache entry");
    let leases: Vec<_> = std::fs::read_dir(net.dir("ipam").join(&net.name))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!leases.iter().any(|n: &String| n.starts_with(&net.prefix)), "no lease left: {leases:?}");
    if full_chain {
        for plugin in ["firewall", "bandwidth"] {
            let dir = net.dir(plugin).join(&net.name);
            let left: Vec<_> = std::fs::read_dir(&dir)
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "{plugin} records left: {left:?}");
        }
        let tuning: Vec<_> = std::fs::read_dir(net.dir("tuning"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(tuning.is_empty(), "tuning backups left: {tuning:?}");
    }
    let rest: Vec<_> = iptables_rules("nat")
        .into_iter()
        .chain(iptables_rules("filter"))
        .filter(|l| l.contains(&net.name) || l.contains(&net.prefix))
        .collect();
    assert!(rest.is_empty(), "iptables rules of the network left: {rest:#?}");
}

#[test]
#[ignore = "needs root"]
fn gc_frees_exactly_the_lost_containers_state_bridge_portmap_tuning_bandwidth_firewall() {
    let net = Net::new("f", 91, true, false);
    lose_one_and_collect(&net, true, false);
}

#[test]
#[ignore = "needs root"]
fn gc_frees_exactly_the_lost_containers_state_bridge_nftables_masq_host_local() {
    let net = Net::new("n", 92, false, true);
    lose_one_and_collect(&net, false, true);
}

#[test]
fn iptables_lines_split_like_a_shell() {
    let line = r#"-A POSTROUTING -s 10.232.91.2/32 -m comment --comment "name: \"gc9-f-1\" id: \"c1\"" -j CNI-0a"#;
    assert_eq!(
        iptables_args(line),
        [
            "-A",
            "POSTROUTING",
            "-s",
            "10.232.91.2/32",
            "-m",
            "comment",
            "--comment",
            r#"name: "gc9-f-1" id: "c1""#,
            "-j",
            "CNI-0a"
        ]
    );
    assert_eq!(jump_target(&iptables_args(line)), Some("CNI-0a"));
    assert_eq!(iptables_args(r#"-A X --comment "" -j Y"#), ["-A", "X", "--comment", "", "-j", "Y"]);
}
