//! Wrong clocks on a real 3-process cluster, as an admin meets them: Debian's libfaketime
//! preloaded into one qlmd moves its wall clock (CLOCK_REALTIME) and leaves its monotonic clock
//! alone. `make test` installs libfaketime (scripts/test-deps.sh); without it these tests fail
//! and say so.
//!
//! What a user must see: the node with the wrong clock is flagged (`/readyz`, metrics) and
//! never leads; the license time the cluster stamps stays the real time (a checkout granted
//! now says it was granted now, not a year from now); the cluster serves throughout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster_tests::{Cluster, ClusterOptions, RawSession};
use qlm_proto::v1;
use qlm_proto::v1::license_service_client::LicenseServiceClient;

const YEAR_S: f64 = 365.0 * 86_400.0;

fn faketime_library() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ];
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!("libfaketime is missing: `make test-deps` (or apt-get install libfaketime)")
    })
}

/// The environment that makes a node's wall clock what `file` says (`+365d`, `-1h`, `+0`),
/// read again at most once a second; its monotonic clock stays true.
fn faked(id: u64, file: &Path) -> Vec<(u64, String, String)> {
    [
        ("LD_PRELOAD", faketime_library().display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ("FAKETIME_CACHE_DURATION", "1".to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (id, name.to_string(), value))
    .collect()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A gauge's value from node `id`'s /metrics (the first line that starts with `name`).
fn gauge(cluster: &Cluster, id: u64, name: &str) -> Option<f64> {
    let (_, text) = cluster.http_get(id, "/metrics").ok()?;
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Waits up to `limit` for `what` to hold, polling every 100 ms.
async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz(cluster: &Cluster, id: u64) -> (u16, String) {
    cluster.http_get(id, "/readyz").unwrap_or((0, String::new()))
}

/// Checks a seat out through node `via` and returns when the cluster says it was granted.
async fn granted_at(cluster: &Cluster, via: u64, user: &str) -> u64 {
    let channel = cluster.client_channel(via).await.expect("a channel");
    let mut client = LicenseServiceClient::new(channel);
    let open = v1::OpenSessionRequest {
        user: user.into(),
        host: "ws1".into(),
        pid: 1,
        display: String::new(),
        ttl_ms: 60_000,
        request_id: format!("open-{user}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let session: RawSession = loop {
        match client.open_session(open.clone()).await {
            Ok(answer) => break answer.into_inner().into(),
            Err(e) if Instant::now() < deadline => {
                eprintln!("open retried: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no session within 20 s: {e}"),
        }
    };
    let checkout = v1::CheckoutRequest {
        session_id: session.id.clone(),
        session_secret: session.secret.clone(),
        request_id: format!("co-{user}"),
        feature: "vhdl-editor".into(),
        version: String::new(),
        count: 1,
        wait: false,
        borrow_until_unix_ms: None,
    };
    let handle = loop {
        match client.checkout(checkout.clone()).await {
            Ok(answer) => match answer.into_inner().result {
                Some(v1::checkout_response::Result::Granted(g)) => break g.handle,
                other => panic!("not granted: {other:?}"),
            },
            Err(e) if Instant::now() < deadline => {
                eprintln!("checkout retried: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no grant within 20 s: {e}"),
        }
    };
    // The node's own replica (a stale read) may apply the grant a moment after answering it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let checkouts = cluster.checkouts(via).await.unwrap_or_default();
        if let Some(found) = checkouts.iter().find(|c| c.handle == handle) {
            return found.since_unix_ms;
        }
        assert!(Instant::now() < deadline, "handle {handle} granted but not on node {via}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the leader for `window` and fails if `never` leads at any moment.
async fn never_leads(cluster: &Cluster, never: u64, window: Duration) {
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        assert_ne!(cluster.leader().await, Some(never), "node {never} leads with a wrong clock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_a_year_ahead_is_flagged_never_leads_and_never_moves_license_time() {
    one_wrong_clock("+365d", YEAR_S).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_an_hour_behind_is_flagged_never_leads_and_never_holds_license_time() {
    one_wrong_clock("-1h", -3600.0).await;
}

/// Node 3's wall clock is `faketime` (libfaketime's spelling) off, `offset_s` seconds, from
/// its start: flagged, never leading through three leader deaths, license time the real time.
async fn one_wrong_clock(faketime: &str, offset_s: f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock_3 = dir.path().join("node3.faketime");
    std::fs::write(&clock_3, faketime).expect("write");
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 3,
        node_env: faked(3, &clock_3),
        ..ClusterOptions::default()
    });
    let leader = cluster.wait_ready().await;
    assert_ne!(leader, 3);
    eventually(Duration::from_secs(15), "node 3 flagged on /readyz", async || {
        let (code, body) = readyz(&cluster, 3).await;
        code == 503 && body.contains("clock out of bounds")
    })
    .await;
    assert_eq!(gauge(&cluster, 3, "qlm_clock_out_of_bounds"), Some(1.0));
    assert_eq!(gauge(&cluster, leader, "qlm_clock_out_of_bounds"), Some(0.0));
    // The leader measures node 3 in its own rounds, which need not have reached node 3 yet
    // (node 3 may have started after the leader's last round).
    let offset_of_3 = async || gauge(&cluster, leader, "qlm_clock_offset_seconds{peer=\"3\"}");
    eventually(Duration::from_secs(15), "the leader measures node 3", async || {
        offset_of_3().await.is_some()
    })
    .await;
    let offset = offset_of_3().await.expect("offset");
    assert!((offset - offset_s).abs() < 60.0, "node 3 measured {offset} s ahead");
    // Every leader death gives node 3 a chance to stand: it never takes it, and the other
    // healthy node is elected with node 3's vote.
    for _ in 0..3 {
        let leader = cluster.leader().await.expect("a leader");
        assert_ne!(leader, 3);
        cluster.kill(leader);
        never_leads(&cluster, 3, Duration::from_secs(3)).await;
        cluster.spawn(leader);
        cluster.wait_ready().await;
    }
    // License time is the real time: a checkout through node 3 is granted now.
    let since = granted_at(&cluster, 3, "alice").await;
    let now = now_ms();
    assert!(since.abs_diff(now) < 60_000, "granted at {since}, now is {now}");
    let leader = cluster.leader().await.expect("a leader");
    let ahead = gauge(&cluster, leader, "qlm_license_time_ahead_seconds").expect("gauge");
    assert!(ahead.abs() < 60.0, "license time {ahead} s from the wall clock");
    // What an admin reads: `qlm status` names the cluster's license time, the dashboard too,
    // whichever node answers (node 3 here, whose own clock is a year ahead).
    let qlm = cluster_tests::qlmd_binary().with_file_name("qlm");
    let output = std::process::Command::new(qlm)
        .args(["--servers", &cluster.client_addr(3), "status", "--json"])
        .output()
        .expect("qlm runs");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let license_time = status["cluster"]["license_time_unix_ms"].as_u64().expect("license time");
    assert!(license_time.abs_diff(now_ms()) < 60_000, "{status}");
    let (_, page) = cluster.http_get(3, "/api/status").expect("the dashboard's data");
    let page: serde_json::Value = serde_json::from_str(&page).expect("JSON");
    let shown = page["license_time_unix_ms"].as_u64().expect("license time");
    assert!(shown.abs_diff(now_ms()) < 60_000, "{page}");
    let own = page["now_unix_ms"].as_u64().expect("node 3's clock") as f64;
    let own_offset_s = (own - now_ms() as f64) / 1000.0;
    assert!((own_offset_s - offset_s).abs() < 60.0, "node 3's own clock: {own_offset_s} s off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_clock_jumps_steps_down_and_comes_back_when_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<PathBuf> =
        (1..=3).map(|id| dir.path().join(format!("node{id}.faketime"))).collect();
    let mut node_env = Vec::new();
    for (id, file) in (1..=3).zip(&files) {
        std::fs::write(file, "+0").expect("write");
        node_env.extend(faked(id, file));
    }
    let cluster =
        Cluster::start_with(ClusterOptions { nodes: 3, node_env, ..ClusterOptions::default() });
    let jumped = cluster.wait_ready().await;
    granted_at(&cluster, jumped, "before").await;
    std::fs::write(&files[(jumped - 1) as usize], "+365d").expect("the jump");
    let jump = Instant::now();
    eventually(Duration::from_secs(15), "another node leads", async || {
        cluster.leader().await.is_some_and(|l| l != jumped)
    })
    .await;
    eprintln!("node {jumped} stepped down {:?} after its clock jumped", jump.elapsed());
    let (code, body) = readyz(&cluster, jumped).await;
    assert!(code == 503 && body.contains("clock out of bounds"), "{code} {body}");
    never_leads(&cluster, jumped, Duration::from_secs(3)).await;
    let since = granted_at(&cluster, jumped, "after").await;
    let now = now_ms();
    assert!(since.abs_diff(now) < 60_000, "granted at {since}, now is {now}");
    for id in (1..=3).filter(|id| *id != jumped) {
        let ahead = gauge(&cluster, id, "qlm_license_time_ahead_seconds").expect("gauge");
        assert!(ahead.abs() < 60.0, "node {id}: license time {ahead} s from the wall clock");
    }
    // Fixed (here, set back to the true time): flagged no more.
    std::fs::write(&files[(jumped - 1) as usize], "+0").expect("the fix");
    eventually(Duration::from_secs(15), "the fixed node ready again", async || {
        readyz(&cluster, jumped).await.0 == 200
    })
    .await;
    assert_eq!(gauge(&cluster, jumped, "qlm_clock_out_of_bounds"), Some(0.0));
}
