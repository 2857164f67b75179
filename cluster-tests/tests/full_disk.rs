//! A node whose data volume fills, on a real 3-process cluster: node 2's data directory is moved
//! onto a size-limited tmpfs, which is then filled. Mounting one needs root; without it the
//! test says so and passes, unless `QLM_REQUIRE_ROOT_TESTS=1` (CI sets it).
//!
//! What a user must see: the healthy majority grants throughout; the full node does not stay
//! up half-dead but exits with status 74, its log naming the cause; a start while the volume is
//! still full refuses with the cause (never "another qlmd"); once space is freed it starts, and
//! every checkout acknowledged before and during the fault is in its state.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster_tests::{Cluster, ClusterOptions, RawSession};
use qlm_proto::v1;
use qlm_proto::v1::license_service_client::LicenseServiceClient;
use qlm_raft::testkit::Tmpfs;
use tonic::transport::Channel;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for item in std::fs::read_dir(from).expect("list") {
        let item = item.expect("entry");
        let target = to.join(item.file_name());
        if item.file_type().expect("type").is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).expect("copy");
        }
    }
}

struct Driver {
    client: LicenseServiceClient<Channel>,
    session: RawSession,
    next: u64,
}

impl Driver {
    async fn open(cluster: &Cluster, via: u64) -> Driver {
        let channel = cluster.client_channel(via).await.expect("a channel");
        let mut client = LicenseServiceClient::new(channel);
        let request = v1::OpenSessionRequest {
            user: "alice".into(),
            host: "ws1".into(),
            pid: 42,
            display: String::new(),
            ttl_ms: 600_000,
            request_id: "open-1".into(),
        };
        let session = client.open_session(request).await.expect("a session").into_inner().into();
        Driver { client, session, next: 0 }
    }

    /// One checkout, retried with the same request id through an election for up to 20 s:
    /// its handle once granted.
    async fn checkout(&mut self) -> u64 {
        self.next += 1;
        let request = v1::CheckoutRequest {
            session_id: self.session.id.clone(),
            session_secret: self.session.secret.clone(),
            request_id: format!("co-{}", self.next),
            feature: "vhdl-editor".into(),
            version: String::new(),
            count: 1,
            wait: false,
            borrow_until_unix_ms: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.client.checkout(request.clone()).await {
                Ok(answer) => match answer.into_inner().result {
                    Some(v1::checkout_response::Result::Granted(g)) => return g.handle,
                    other => panic!("checkout {} not granted: {other:?}", self.next),
                },
                Err(e) if Instant::now() < deadline => {
                    eprintln!("checkout {} retried: {e}", self.next);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("checkout {} failed for 20 s: {e}", self.next),
            }
        }
    }
}

impl Driver {
    /// Checks `handle` in, retried through an election for up to 20 s.
    async fn checkin(&mut self, handle: u64) {
        self.next += 1;
        let request = v1::CheckinRequest {
            session_id: self.session.id.clone(),
            session_secret: self.session.secret.clone(),
            request_id: format!("ci-{}", self.next),
            handle,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(e) = self.client.checkin(request.clone()).await {
            assert!(Instant::now() < deadline, "checkin {handle} failed for 20 s: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Waits up to `limit` for node `id` to exit by itself.
async fn exit_of(cluster: &mut Cluster, id: u64, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = cluster.exit_status(id) {
            return Some(status.code().unwrap_or(-status.signal().unwrap_or(0)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_volume_fills_exits_and_comes_back_with_every_checkout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(volume) = Tmpfs::mount(dir.path(), 40) else { return };
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 3,
        snapshot_every: Some(20),
        ..ClusterOptions::default()
    });
    cluster.wait_ready().await;
    // Node 2 moves onto the small volume, with what it has.
    cluster.kill(2);
    let moved: PathBuf = volume.path().join("node2");
    copy_dir(&cluster.nodes[1].data_dir, &moved);
    cluster.nodes[1].data_dir = moved.clone();
    cluster.spawn(2);
    cluster.wait_ready().await;
    // Node 2 serves from the small volume before it fills (else this would be a start on a
    // full volume, tested below).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.cluster_status(2).await.is_ok_and(|s| s.leader.is_some_and(|l| l.id != 0)) {
        assert!(Instant::now() < deadline, "node 2 does not serve\n{}", cluster.log_of(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let via = if cluster.leader().await == Some(3) { 3 } else { 1 };
    let mut driver = Driver::open(&cluster, via).await;
    let mut held: BTreeSet<u64> = BTreeSet::new();
    for _ in 0..10 {
        held.insert(driver.checkout().await);
    }

    volume.fill("filler");
    let filled = Instant::now();
    // Checkouts go on through the healthy majority until node 2 needs space it lacks.
    let deadline = Instant::now() + Duration::from_secs(120);
    // Of the 25 seats, 20 stay held (acknowledged during the fault too); the rest come and go.
    let code = loop {
        let handle = driver.checkout().await;
        if held.len() < 20 {
            held.insert(handle);
        } else {
            driver.checkin(handle).await;
        }
        if let Some(status) = cluster.exit_status(2) {
            break status.code();
        }
        assert!(Instant::now() < deadline, "node 2 still runs on a full volume");
    };
    let log = cluster.log_of(2);
    let stopped = log.lines().find(|l| l.contains("Raft stopped")).unwrap_or_default();
    eprintln!("node 2 exited {:?} after the fill: {stopped}", filled.elapsed());
    assert_eq!(code, Some(74), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("the node exits so that its supervisor restarts it"), "{log}");
    for _ in 0..5 {
        held.insert(driver.checkout().await);
    }

    // Started again on the full volume: it refuses, naming the cause, or starts and stops
    // again at its first write; it never blames another qlmd.
    cluster.spawn(2);
    if let Some(code) = exit_of(&mut cluster, 2, Duration::from_secs(20)).await {
        let log = cluster.log_of(2);
        assert_eq!(code, 74, "{log}");
        assert!(!log.contains("another qlmd"), "{log}");
    } else {
        cluster.kill(2);
    }

    std::fs::remove_file(volume.path().join("filler")).expect("free the space");
    cluster.spawn(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let on_node_2: BTreeSet<u64> = match cluster.checkouts(2).await {
            Ok(checkouts) => checkouts.iter().map(|c| c.handle).collect(),
            Err(_) => BTreeSet::new(),
        };
        if held.is_subset(&on_node_2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 lacks {:?} of the acknowledged checkouts\n{}",
            held.difference(&on_node_2).collect::<Vec<_>>(),
            cluster.log_of(2)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(cluster.exit_status(2).is_none(), "node 2 runs once there is space");
}
