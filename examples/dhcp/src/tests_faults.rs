//! The daemon's state under faults (fake network, in-process DHCP server, no root): a daemon
//! killed between its DHCPREQUEST and the lease record, debris of interrupted writes, and a
//! state directory that cannot be written.

use std::net::Ipv4Addr;
use std::time::Duration;

use cni_sdk::{Command, PluginEntry as _};
use dhcproto::v4::MessageType;
use serde_json::json;
use tokio::task::LocalSet;

use crate::tests::Rig;

/// Waits until the server has seen `count` messages of `kind`.
async fn seen(rig: &Rig, kind: MessageType, count: usize) {
    while rig.server.kinds().iter().filter(|k| **k == kind).count() < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The daemon dies (its future is dropped, as a SIGKILL would stop it) after the server bound
/// the address but before the daemon recorded the lease: the pending record it wrote before the
/// REQUEST lets the next daemon release the address instead of leaking it until it expires.
#[tokio::test(start_paused = true)]
async fn a_daemon_killed_between_request_and_record_releases_the_offer() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            rig.container("ctr1").await;
            rig.server.set_reply_delay(Duration::from_millis(200));
            let conf = rig.conf("1.0.0", json!({}));
            let add = rig.direct(Command::Add, "c1", "ctr1", &conf).run();
            tokio::select! {
                _ = add => panic!("the ADD finished before the daemon was killed"),
                () = async {
                    seen(&rig, MessageType::Request, 1).await;
                    // The server answered (ACK queued, address bound); the daemon has not read it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } => {}
            }
            assert_eq!(rig.server.bound(), vec![Ipv4Addr::new(10, 219, 0, 10)], "bound at the server");
            let records = rig.store().load_all().unwrap();
            assert_eq!(records.len(), 1);
            assert!(records[0].pending, "only the offer is on disk");
            rig.daemon.stop();

            let restarted = rig.restarted();
            assert_eq!(restarted.restore().await.unwrap(), 0, "nothing to maintain");
            assert_eq!(rig.server.kinds().last(), Some(&MessageType::Release));
            assert!(rig.server.bound().is_empty(), "the offered address was released");
            assert!(rig.store().load_all().unwrap().is_empty());
            // The runtime's retried ADD gets the address again, for good.
            rig.server.set_reply_delay(Duration::ZERO);
            let r = add_on(&rig, &restarted, "c1", "ctr1", &conf).await;
            assert_eq!(r, "10.219.0.10/24");
            assert_eq!(rig.server.bound(), vec![Ipv4Addr::new(10, 219, 0, 10)]);
            assert!(!rig.store().load_all().unwrap()[0].pending);
        })
        .await;
}

/// ADD on `daemon` (not the rig's own); returns the address.
async fn add_on(rig: &Rig, daemon: &crate::server::DhcpDaemon, id: &str, ns: &str, conf: &serde_json::Value) -> String {
    let r = cni_sdk::testing::PluginTest::new(daemon)
        .options(crate::Dhcp::options())
        .network(&rig.world)
        .command(Command::Add)
        .container_id(id)
        .netns(&format!("/var/run/netns/{ns}"))
        .config(conf.clone())
        .run()
        .await
        .expect_result();
    r.ips[0].address.to_string()
}

/// Temporaries of killed writers (this version's and earlier ones), empty and truncated records
/// are removed when a daemon starts; whole records are restored.
#[tokio::test]
async fn debris_of_interrupted_writes_is_removed_at_start() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            rig.container("ctr1").await;
            let conf = rig.conf("1.0.0", json!({}));
            rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_result();
            rig.daemon.stop();
            let dir = rig.store().dir().to_owned();
            let debris = [
                (".cni-tmp-4242-0-0123456789abcdef.json", &b"{\"version\": 1, \"clientId\": \"x"[..]),
                (".0123456789abcdef.json.tmp-4242", b"{}"),
                ("00000000000000000000000000000000.json", b""),
                ("11111111111111111111111111111111.json", b"{\"version\": 1, \"clie"),
            ];
            for (name, bytes) in debris {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
            let restarted = rig.restarted();
            assert_eq!(restarted.restore().await.unwrap(), 1, "the whole record is restored");
            let mut left: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert_eq!(left.len(), 1, "only the lease record is left: {left:?}");
            restarted.stop();
        })
        .await;
}

/// A state directory that cannot be written (here: a file is in its place): ADD fails at once
/// with one error naming the directory, sends no DHCPREQUEST (nothing is bound at the server)
/// and leaves the link as it was; once the directory can be created, ADD works.
#[tokio::test(start_paused = true)]
async fn an_unwritable_store_fails_add_before_anything_is_bound() {
    let rig = Rig::new();
    LocalSet::new()
        .run_until(async {
            rig.container("ctr1").await;
            let dir = rig.store().dir().to_owned();
            std::fs::write(&dir, b"not a directory").unwrap();
            let conf = rig.conf("1.0.0", json!({}));
            let e = rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_error(999);
            assert!(e.msg.starts_with(&format!("failed to save the lease in {}: ", dir.display())), "{}", e.msg);
            assert_eq!(rig.server.kinds(), vec![MessageType::Discover], "no retries, no REQUEST");
            assert!(rig.server.bound().is_empty());
            assert!(!rig.link_up("ctr1").await, "the link it set up is down again");
            std::fs::remove_file(&dir).unwrap();
            rig.direct(Command::Add, "c1", "ctr1", &conf).run().await.expect_result();
            assert_eq!(rig.store().load_all().unwrap().len(), 1);
            rig.daemon.stop();
        })
        .await;
}
