//! Go's host-local (Debian's `/usr/lib/cni/host-local`, which knows nothing of our index) and
//! ours operate on one store in a random interleaving of ADD (with and without a requested
//! address), DEL, CHECK and GC, while the index is deleted, damaged, truncated or replaced by a
//! stale copy, and Go's crashes are simulated (empty lease files) along with legacy leases.
//! After every step the lease files, the cursors and every answer equal those of a model of
//! Go's semantics; and our binary trusts its index exactly when nobody else touched the store
//! (its debug log says when it rebuilds). Run with `--include-ignored`; `HL_SEED=<n>` and
//! `HL_STEPS=<n>` replay one run.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};

/// A SplitMix64 stream: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// One range: its addresses in order and its gateway.
struct Range {
    addrs: Vec<IpAddr>,
    gateway: IpAddr,
    prefix: u8,
}

/// The configuration's range sets, as Go canonicalises them.
fn sets() -> Vec<(Vec<Range>, &'static str)> {
    let v4 = |last: u8| -> IpAddr { format!("10.233.10.{last}").parse().unwrap() };
    let v6 = |last: u8| -> IpAddr { format!("fd00:233:10::{last:x}").parse().unwrap() };
    vec![
        (
            vec![
                // 10.233.10.0/28 from .8: gateway .1 (outside the range), .8-.14.
                Range { addrs: (8..=14).map(v4).collect(), gateway: v4(1), prefix: 28 },
                // 10.233.10.32/28: gateway .33 (inside, skipped), .33-.46.
                Range { addrs: (33..=46).map(v4).collect(), gateway: v4(33), prefix: 28 },
            ],
            "10.233.10.8-10.233.10.14,10.233.10.33-10.233.10.46",
        ),
        // fd00:233:10::/124: gateway ::1, ::1-::f.
        (
            vec![Range { addrs: (1..=15).map(v6).collect(), gateway: v6(1), prefix: 124 }],
            "fd00:233:10::1-fd00:233:10::f",
        ),
    ]
}

fn ipam() -> Value {
    json!({"ranges": [
        [{"subnet": "10.233.10.0/28", "rangeStart": "10.233.10.8"}, {"subnet": "10.233.10.32/28"}],
        [{"subnet": "fd00:233:10::/124"}]
    ]})
}

/// Go's semantics over the store: lease files (name → content) and cursors.
#[derive(Default)]
struct Model {
    leases: BTreeMap<String, String>,
    cursors: [Option<IpAddr>; 2],
}

type Answer = Result<Vec<String>, String>;

impl Model {
    fn in_set(set: &[Range], ip: IpAddr) -> Option<&Range> {
        set.iter().find(|r| r.addrs.contains(&ip))
    }

    /// Go's `ReleaseByID`; true when a file was removed.
    fn release(&mut self, id: &str, ifname: &str) -> bool {
        let key = format!("{id}\r\n{ifname}");
        let before = self.leases.len();
        self.leases.retain(|_, c| *c != key);
        if self.leases.len() == before {
            self.leases.retain(|_, c| *c != id);
        }
        self.leases.len() != before
    }

    /// Go's ADD; the answer and whether the directory changed.
    fn add(&mut self, id: &str, ifname: &str, requested: Option<IpAddr>) -> (Answer, bool) {
        let key = format!("{id}\r\n{ifname}");
        let mut touched = false;
        let mut ips = Vec::new();
        for (idx, (set, shown)) in sets().iter().enumerate() {
            let got = match requested.filter(|ip| Self::in_set(set, *ip).is_some()) {
                Some(ip) => {
                    let r = Self::in_set(set, ip).unwrap();
                    if ip == r.gateway {
                        Err(format!("requested ip {ip} is subnet's gateway"))
                    } else if self.leases.contains_key(&ip.to_string()) {
                        Err(format!("requested IP address {ip} is not available in range set {shown}"))
                    } else {
                        Ok((ip, r.prefix))
                    }
                }
                None => {
                    // Go's GetByID walks the directory in name order.
                    let dup = self
                        .leases
                        .iter()
                        .filter(|(_, c)| **c == key || *c == id)
                        .map(|(n, _)| n.parse::<IpAddr>().unwrap())
                        .find(|ip| Self::in_set(set, *ip).is_some());
                    match dup {
                        Some(ip) => {
                            Err(format!("{ip} has been allocated to {id}, duplicate allocation is not allowed"))
                        }
                        None => self
                            .walk(idx, set)
                            .ok_or_else(|| format!("no IP addresses available in range set: {shown}")),
                    }
                }
            };
            match got {
                Ok((ip, prefix)) => {
                    self.leases.insert(ip.to_string(), key.clone());
                    self.cursors[idx] = Some(ip);
                    touched = true;
                    ips.push(format!("{ip}/{prefix}"));
                }
                Err(e) => {
                    for _ in 0..ips.len() {
                        self.release(id, ifname);
                    }
                    return (Err(format!("failed to allocate for range {idx}: {e}")), touched);
                }
            }
        }
        (Ok(ips), touched)
    }

    /// Go's `RangeIter` from the cursor: the first free address that is not a gateway.
    fn walk(&self, idx: usize, set: &[Range]) -> Option<(IpAddr, u8)> {
        let all: Vec<(IpAddr, &Range)> = set.iter().flat_map(|r| r.addrs.iter().map(move |a| (*a, r))).collect();
        let start = self.cursors[idx].and_then(|c| all.iter().position(|(a, _)| *a == c)).map_or(0, |p| p + 1);
        (0..all.len())
            .map(|k| all[(start + k) % all.len()])
            .find(|(a, r)| *a != r.gateway && !self.leases.contains_key(&a.to_string()))
            .map(|(a, r)| (a, r.prefix))
    }

    fn check(&self, id: &str, ifname: &str) -> Answer {
        let key = format!("{id}\r\n{ifname}");
        if self.leases.values().any(|c| *c == key || c == id) {
            Ok(vec![])
        } else {
            Err(format!("host-local: Failed to find address added by container {id}"))
        }
    }

    fn gc(&mut self, valid: &[(String, String)]) {
        self.leases.retain(|_, c| match c.split_once("\r\n") {
            Some((id, ifname)) => valid.iter().any(|(i, f)| i == id && f == ifname),
            None => valid.iter().any(|(i, _)| i == c),
        });
    }
}

/// What an execution printed, reduced to an answer.
fn answer(out: &Run) -> Answer {
    if out.code == 0 {
        let doc = if out.stdout.is_empty() { Value::Null } else { out.doc() };
        Ok(doc["ips"]
            .as_array()
            .map(|a| a.iter().map(|i| i["address"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default())
    } else {
        Err(out.doc()["msg"].as_str().unwrap_or_default().to_owned())
    }
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    leases(dir).into_iter().map(|n| (n.clone(), fs::read_to_string(dir.join(&n)).unwrap())).collect()
}

fn cursor(dir: &Path, idx: usize) -> Option<IpAddr> {
    fs::read_to_string(dir.join(format!("last_reserved_ip.{idx}"))).ok().map(|s| s.parse().unwrap())
}

fn run_one(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("mix");
    let c10 = conf("1.0.0", "mix", tmp.path(), ipam());
    let c11 = conf("1.1.0", "mix", tmp.path(), ipam());
    let ids: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    let ifnames = ["eth0", "net1"];
    let all_set0: Vec<IpAddr> = sets()[0].0.iter().flat_map(|r| r.addrs.clone()).collect();
    let all: Vec<IpAddr> = sets().iter().flat_map(|(s, _)| s.iter().flat_map(|r| r.addrs.clone())).collect();
    let mut model = Model::default();
    let mut saved: Option<Vec<u8>> = None;
    // Whether our next operation must rebuild the index: when the directory changed since our
    // last one, or its index file is no longer what that operation left; it must trust it
    // otherwise. A flipped byte may lie in a slot it never reads: then it may do either.
    let mut dir_changed = true;
    let mut ours_left: Option<Vec<u8>> = None;
    let mut flipped = false;
    let index = dir.join(INDEX);
    fs::create_dir_all(&dir).unwrap();
    let mut log = Vec::new();
    let mut script: Vec<usize> = Vec::new();

    for step in 0..steps {
        let id = rng.pick(&ids).clone();
        let ifname = *rng.pick(&ifnames);
        // A stale copy is most telling when only we changed the store since it was taken: some
        // steps are a scripted "save, our ADD/DEL, our ADD/DEL, write the copy back".
        let forced = script.pop();
        let ours = forced.is_some_and(|f| f < 100) || (forced.is_none() && rng.below(2) == 0);
        let roll = forced.map_or_else(|| rng.below(100), |f| f % 100);
        let what;
        let mut expected: Option<Answer> = None;
        let mut got: Option<Answer> = None;
        let mut our_stderr = None;
        let bin = if ours { RUST } else { GO };
        let index_before = fs::read(&index).ok();
        let mut e = env("ADD", &id, ifname);
        if ours {
            e.push(("CNI_LOG_LEVEL".into(), "debug".into()));
        }
        let set_cmd = |e: &mut Vec<(String, String)>, cmd: &str| e[0].1 = cmd.to_owned();
        if roll < 35 {
            let requested = (rng.below(4) == 0).then(|| *rng.pick(&all_set0));
            what = format!("{} ADD {id}/{ifname} {requested:?}", if ours { "rs" } else { "go" });
            if let Some(ip) = requested {
                e.push(("CNI_ARGS".into(), format!("IP={ip}")));
            }
            let out = exec(bin, &e, &c10.to_string());
            let (want, touched) = model.add(&id, ifname, requested);
            expected = Some(want);
            got = Some(answer(&out));
            if ours {
                our_stderr = Some(out.stderr)
            } else if touched {
                dir_changed = true
            }
        } else if roll < 60 {
            what = format!("{} DEL {id}/{ifname}", if ours { "rs" } else { "go" });
            set_cmd(&mut e, "DEL");
            let out = exec(bin, &e, &c10.to_string());
            let touched = model.release(&id, ifname) | model.release(&id, ifname);
            expected = Some(Ok(vec![]));
            got = Some(answer(&out));
            if ours {
                our_stderr = Some(out.stderr)
            } else if touched {
                dir_changed = true
            }
        } else if roll < 70 {
            what = format!("{} CHECK {id}/{ifname}", if ours { "rs" } else { "go" });
            set_cmd(&mut e, "CHECK");
            let out = exec(bin, &e, &c10.to_string());
            expected = Some(model.check(&id, ifname));
            got = Some(answer(&out));
            if ours {
                our_stderr = Some(out.stderr);
            }
        } else if roll < 75 {
            // GC: ours only (Go's 1.1.1 has no GC).
            let valid: Vec<(String, String)> = ids
                .iter()
                .flat_map(|i| ifnames.iter().map(move |f| (i.clone(), (*f).to_owned())))
                .filter(|_| rng.below(3) != 0)
                .collect();
            what = format!("rs GC keeping {} attachments", valid.len());
            let mut g = c11.clone();
            g["cni.dev/valid-attachments"] =
                Value::Array(valid.iter().map(|(i, f)| json!({"containerID": i, "ifname": f})).collect());
            let env = vec![
                ("CNI_COMMAND".to_owned(), "GC".to_owned()),
                ("CNI_PATH".to_owned(), "/nonexistent".to_owned()),
                ("CNI_LOG_LEVEL".to_owned(), "debug".to_owned()),
            ];
            let out = exec(RUST, &env, &g.to_string());
            model.gc(&valid);
            expected = Some(Ok(vec![]));
            got = Some(answer(&out));
            our_stderr = Some(out.stderr);
        } else if roll < 80 {
            // What a crashed Go ADD leaves (an empty file), or a lease of an old version (the
            // container ID alone).
            let ip = *rng.pick(&all);
            let content = if rng.below(2) == 0 { String::new() } else { id.clone() };
            what = format!("plant {ip} {content:?}");
            if !model.leases.contains_key(&ip.to_string())
                && !sets().iter().any(|(s, _)| s.iter().any(|r| r.gateway == ip))
            {
                fs::write(dir.join(ip.to_string()), &content).unwrap();
                model.leases.insert(ip.to_string(), content);
                dir_changed = true;
            }
        } else {
            let current = fs::read(&index).ok();
            let action = if forced.is_some() { 5 + rng.below(2) } else { rng.below(8) };
            match action {
                0 => {
                    what = "index deleted".to_owned();
                    if current.is_some() {
                        fs::remove_file(&index).unwrap();
                        dir_changed = true;
                    }
                }
                1 => {
                    what = "index overwritten with random bytes".to_owned();
                    if let Some(cur) = &current {
                        let junk: Vec<u8> = (0..cur.len()).map(|_| rng.next() as u8).collect();
                        fs::write(&index, junk).unwrap();
                    }
                }
                2 => {
                    what = "index truncated".to_owned();
                    if let Some(cur) = &current {
                        let len = rng.below(cur.len());
                        fs::write(&index, &cur[..len]).unwrap();
                    }
                }
                3 => {
                    what = "one index byte flipped".to_owned();
                    if let Some(mut cur) = current.clone() {
                        let at = rng.below(cur.len());
                        cur[at] ^= 1 + (rng.next() % 255) as u8;
                        fs::write(&index, cur).unwrap();
                        flipped = true;
                    }
                }
                4 => {
                    what = "index copy saved".to_owned();
                    saved = current.clone();
                }
                7 => {
                    what = "index copy saved; two of our operations, then it is written back".to_owned();
                    saved = current.clone();
                    // Popped from the end: ADD or DEL (ours), ADD or DEL (ours), restore.
                    script = vec![180, *rng.pick(&[0, 40]), *rng.pick(&[0, 40])];
                }
                5 => {
                    what = "stale index written back in place".to_owned();
                    // In place: the directory does not change.
                    if let (Some(old), Some(_)) = (&saved, &current) {
                        fs::write(&index, old).unwrap();
                    }
                }
                _ => {
                    what = "stale index renamed into place".to_owned();
                    if let Some(old) = &saved {
                        let t = dir.join("stale-copy");
                        fs::write(&t, old).unwrap();
                        fs::rename(&t, &index).unwrap();
                        dir_changed = true;
                    }
                }
            }
        }
        log.push(format!("{step}: {what}"));
        let ctx = || format!("seed {seed}, step {step}: {what}\n{}", log[log.len().saturating_sub(12)..].join("\n"));
        if let (Some(want), Some(got)) = (&expected, &got) {
            assert_eq!(got, want, "{}", ctx());
        }
        if let Some(stderr) = &our_stderr {
            let rebuilt = stderr.contains("rebuil");
            let altered = index_before != ours_left;
            if dir_changed || (altered && !flipped) {
                assert!(rebuilt, "the index must be rebuilt: {}\n{stderr}", ctx());
            } else if !altered && !flipped {
                assert!(!rebuilt, "the index must be trusted: {}\n{stderr}", ctx());
            }
            dir_changed = false;
            flipped &= !rebuilt;
            ours_left = fs::read(&index).ok();
        }
        assert_eq!(files(&dir), model.leases, "{}", ctx());
        for idx in 0..2 {
            assert_eq!(cursor(&dir, idx), model.cursors[idx], "cursor {idx}: {}", ctx());
        }
        if dir.is_dir() {
            let temps: Vec<String> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with(".cni-rs.tmp"))
                .collect();
            assert!(temps.is_empty(), "{temps:?}: {}", ctx());
        }
    }
}

#[test]
#[ignore = "needs root and the Go interop tools"]
fn go_and_rust_interleaved_randomly_with_the_index_present_deleted_damaged_or_stale() {
    need_go();
    let steps = std::env::var("HL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    match std::env::var("HL_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => run_one(seed, steps),
        None => {
            for seed in [1, 2, 3, 0x0019_0019] {
                run_one(seed, steps);
            }
        }
    }
}
