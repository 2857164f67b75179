//! The synchronous client (what the C library and the Python package call) against the real
//! client services over in-process nodes on real ports: the walk down a search path, waits
//! with a time limit, and the news of a lost session.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qlm_client::blocking::{CheckoutRequest, Client, LostReason};
use qlm_client::{ClientError, SessionOptions};
use qlm_proto::v1::DenialReason;
use qlm_server::testkit::{InProcessNode, Serving, closed_port, serve};

/// The nodes run on a runtime of their own: the blocking client must not be called from one.
struct Nodes {
    runtime: tokio::runtime::Runtime,
    serving: Vec<Serving>,
}

impl Nodes {
    fn start(nodes: Vec<InProcessNode>) -> Nodes {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let serving = nodes.into_iter().map(|node| runtime.block_on(serve(node))).collect();
        Nodes { runtime, serving }
    }

    fn addr(&self, i: usize) -> String {
        self.serving[i].servers()
    }

    fn held(&self, i: usize) -> Vec<u64> {
        self.serving[i].node.held()
    }
}

fn me() -> SessionOptions {
    SessionOptions {
        user: "ann".into(),
        host: "ws1".into(),
        pid: 7,
        display: String::new(),
        ttl: Some(Duration::from_secs(1)),
    }
}

fn one() -> CheckoutRequest {
    CheckoutRequest { count: 1, ..CheckoutRequest::default() }
}

#[test]
fn a_seat_is_granted_through_a_cluster_and_checked_in() {
    let nodes = Nodes::start(vec![InProcessNode::with_seats("vhdl", 2)]);
    let client = Client::from_servers(&nodes.addr(0)).unwrap();
    let session = client.open_session(me()).unwrap();
    let seat = session.checkout("vhdl", &one()).unwrap();
    assert_eq!((seat.feature(), seat.count(), seat.is_node_locked()), ("vhdl", 1, false));
    assert_eq!(seat.source(), format!("cluster {}", nodes.addr(0)));
    assert_eq!(nodes.held(0), [seat.handle()]);
    let status = session.status();
    assert!(!status.session_id.is_empty() && !status.lost, "{status:?}");
    seat.checkin().unwrap();
    assert!(nodes.held(0).is_empty());
    session.close().unwrap();
    assert_eq!(nodes.serving[0].node.live_sessions(), 0);
}

#[test]
fn a_dead_cluster_hands_over_to_the_next_entry_and_a_denial_too() {
    let nodes = Nodes::start(vec![
        InProcessNode::with_seats("other", 1),
        InProcessNode::with_seats("vhdl", 1),
    ]);
    let dead = format!("127.0.0.1:{}", closed_port());
    let path = format!("{dead}:{}:{}", nodes.addr(0), nodes.addr(1));
    let client = Client::from_search_path(&path).unwrap().with_failover_budget(Duration::ZERO);
    let session = client.open_session(me()).unwrap();
    let seat = session.checkout("vhdl", &one()).unwrap();
    assert_eq!(seat.source(), format!("cluster {}", nodes.addr(1)));
    assert_eq!(nodes.held(1), [seat.handle()]);

    // Every seat taken: the error is the cluster's denial (ALL_IN_USE, the more telling one),
    // not the first cluster's NO_SUCH_FEATURE nor the dead one's silence.
    let other = client.open_session(me()).unwrap();
    match other.checkout("vhdl", &one()) {
        Err(ClientError::Denied { reason, holders, .. }) => {
            assert_eq!(reason, DenialReason::AllInUse);
            assert_eq!(holders.len(), 1);
        }
        other => panic!("expected ALL_IN_USE, got {other:?}"),
    }
    drop(seat);
    assert!(eventually(|| nodes.held(1).is_empty()), "a dropped seat is checked in");
}

#[test]
fn a_wait_ends_at_its_limit_and_leaves_the_queue() {
    let nodes = Nodes::start(vec![InProcessNode::with_seats("vhdl", 1)]);
    let client = Client::from_servers(&nodes.addr(0)).unwrap();
    let holder = client.open_session(me()).unwrap();
    let seat = holder.checkout("vhdl", &one()).unwrap();
    let waiter = client.open_session(me()).unwrap();
    let waiting = CheckoutRequest { wait: Some(Duration::from_millis(300)), ..one() };
    let started = Instant::now();
    match waiter.checkout("vhdl", &waiting) {
        Err(ClientError::WaitTimedOut(limit)) => assert_eq!(limit, Duration::from_millis(300)),
        other => panic!("expected a timed-out wait, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // The abandoned request left the queue before the error came back: the freed seat is
    // not granted to it, and the waiter's next wait is not refused as ALREADY_HOLDING.
    assert!(nodes.serving[0].node.engine(|e| e.queue("vhdl")).is_empty());
    seat.checkin().unwrap();
    assert!(nodes.held(0).is_empty(), "the queue granted a wait that was given up");

    // A wait that a checkin ends in time is granted.
    let seat = holder.checkout("vhdl", &one()).unwrap();
    std::thread::scope(|scope| {
        let waited = scope.spawn(|| {
            waiter
                .checkout("vhdl", &CheckoutRequest { wait: Some(Duration::from_secs(10)), ..one() })
        });
        std::thread::sleep(Duration::from_millis(200));
        seat.checkin().unwrap();
        let granted = waited.join().unwrap().unwrap();
        assert_eq!(nodes.held(0), [granted.handle()]);
    });
}

#[test]
fn a_cluster_silent_for_longer_than_the_ttl_is_reported_lost_once() {
    let mut nodes = Nodes::start(vec![InProcessNode::with_seats("vhdl", 1)]);
    let client = Client::from_servers(&nodes.addr(0)).unwrap().with_failover_budget(Duration::ZERO);
    let session = client.open_session(me()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    session.on_lost(Box::new(move |reason| {
        assert!(matches!(reason, LostReason::Unreachable { .. }), "{reason:?}");
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    let _seat = session.checkout("vhdl", &one()).unwrap();
    assert!(!session.is_lost());
    nodes.serving.clear(); // the only server stops
    assert!(eventually(|| session.is_lost()), "lost within a few TTLs");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the callback runs once");
    match session.checkout("vhdl", &one()) {
        Err(ClientError::SessionLost(message)) => assert!(message.contains("TTL"), "{message}"),
        other => panic!("expected SessionLost, got {other:?}"),
    }
    drop(nodes.runtime);
}

/// Polls `condition` for up to five seconds.
fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// A license file signed by a fresh vendor key: its path, and the public key's file text.
fn node_locked_file(dir: &std::path::Path, hostid: &str) -> (String, String) {
    let key = qlm_license::VendorKey::generate().unwrap();
    let text = format!(
        "FEATURE vhdl vendor=acme version=2.0 count=uncounted expires=permanent hostid=\"{hostid}\"\n"
    );
    let signed = qlm_license::sign_license_text("node.lic", &text, &key).unwrap();
    let path = dir.join("node.lic");
    std::fs::write(&path, signed).unwrap();
    (path.display().to_string(), key.public_key().to_key_file_text())
}

#[test]
fn a_file_before_a_server_grants_on_this_machine_without_a_session() {
    let nodes = Nodes::start(vec![InProcessNode::with_seats("vhdl", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let here = qlm_client::hostid::local_host_ids().remove(0);
    let (file, public_key) = node_locked_file(dir.path(), &here);
    let client = Client::from_search_path(&format!("{file}:{}", nodes.addr(0))).unwrap();
    client.trust_vendor_key(&public_key).unwrap();
    let session = client.open_session(me()).unwrap();
    let seat = session.checkout("vhdl", &one()).unwrap();
    assert!(seat.is_node_locked(), "{seat:?}");
    assert_eq!(seat.source(), format!("node-locked {file} line 1"));
    assert_eq!(nodes.serving[0].node.live_sessions(), 0, "the server was not asked");
    seat.checkin().unwrap();
}

#[test]
fn a_refused_file_hands_over_to_the_server_and_alone_names_its_line() {
    let nodes = Nodes::start(vec![InProcessNode::with_seats("vhdl", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let (file, public_key) = node_locked_file(dir.path(), "0a0b0c0d0e0f");
    let client = Client::from_search_path(&format!("{file}:{}", nodes.addr(0))).unwrap();
    client.trust_vendor_key(&public_key).unwrap();
    let session = client.open_session(me()).unwrap();
    let seat = session.checkout("vhdl", &one()).unwrap();
    assert!(!seat.is_node_locked());
    assert_eq!(nodes.held(0), [seat.handle()]);

    let alone = Client::from_search_path(&file).unwrap();
    alone.trust_vendor_key(&public_key).unwrap();
    match alone.open_session(me()).unwrap().checkout("vhdl", &one()) {
        Err(ClientError::NodeLocked(message)) => {
            assert!(message.contains(&format!("{file}:1: feature `vhdl`")), "{message}");
            assert!(message.contains("0a0b0c0d0e0f"), "{message}");
        }
        other => panic!("expected a node-locked refusal, got {other:?}"),
    }
}
