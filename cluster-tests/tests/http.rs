//! The HTTP port of real 3-process clusters: metrics that follow the seats, readiness that
//! follows the quorum, and the dashboard as a browser (headless Chromium) shows it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_tests::{Cluster, READY_TIMEOUT};
use qlm_client::{CheckoutOptions, Client, ClientError, SessionOptions, parse_servers};

/// How long a test waits for a node to show what the cluster did (replication, an election).
const SETTLE: Duration = Duration::from_secs(20);

fn client(cluster: &Cluster) -> Client {
    Client::connect(parse_servers(&cluster.servers()).expect("server list")).expect("a client")
}

fn who(user: &str, host: &str) -> SessionOptions {
    SessionOptions {
        user: user.into(),
        host: host.into(),
        pid: 4242,
        display: ":0".into(),
        ttl: Some(Duration::from_secs(30)),
    }
}

fn seats(count: u32) -> CheckoutOptions {
    CheckoutOptions { count, ..CheckoutOptions::default() }
}

/// The value of one sample line `name{labels} value` in a metrics page (None if absent).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `GET path` on node `id` until `done(code, body)` holds; panics with the last answer
/// after [`SETTLE`].
async fn poll_http(
    cluster: &Cluster,
    id: u64,
    path: &str,
    what: &str,
    done: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let answer = cluster.http_get(id, path);
        if let Ok((code, body)) = &answer
            && done(*code, body)
        {
            return body.clone();
        }
        if Instant::now() > deadline {
            panic!("node {id} {path}: {what} not seen within {SETTLE:?}; last answer {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls node `id`'s metrics until `series` reads `value`.
async fn await_metric(cluster: &Cluster, id: u64, series: &str, value: f64) -> String {
    let what = format!("{series} = {value}");
    poll_http(cluster, id, "/metrics", &what, |code, body| {
        code == 200 && sample(body, series).unwrap_or(0.0) == value
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_seats_taken_and_given_back() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let in_use = r#"qlm_seats_in_use{feature="vhdl-editor"}"#;

    // Before: the license's count issued (once the follower has applied the licenses), nothing
    // taken, on a follower as on the leader.
    let issued = r#"qlm_seats_issued{feature="vhdl-editor"}"#;
    let before = await_metric(&cluster, follower, issued, 25.0).await;
    assert_eq!(sample(&before, in_use), Some(0.0));
    assert_eq!(sample(&before, r#"qlm_seats_issued{feature="simulator"}"#), Some(100.0));
    assert_eq!(sample(&before, r#"qlm_checkouts_total{feature="vhdl-editor"}"#), None);
    assert!(before.contains("# TYPE qlm_fsync_duration_seconds histogram"), "{before}");
    assert!(before.ends_with("# EOF\n"), "an OpenMetrics page ends with # EOF");

    // Take 3 seats, and be denied the one synthesis seat that another user holds.
    let client = client(&cluster);
    let alice = client.open_session(who("alice", "ws-alice")).await.expect("a session");
    let checkout = alice.checkout("vhdl-editor", seats(3)).await.expect("3 seats granted");
    let synthesis = alice.checkout("synthesis", seats(1)).await.expect("the synthesis seat");
    let bob = client.open_session(who("bob", "ws-bob")).await.expect("a session");
    match bob.checkout("synthesis", seats(1)).await {
        Err(ClientError::Denied { .. }) => {}
        other => panic!("expected a denial, got {other:?}"),
    }

    let during = await_metric(&cluster, follower, in_use, 3.0).await;
    let during = if sample(&during, r#"qlm_denials_total{feature="synthesis",reason="ALL_IN_USE"}"#)
        == Some(1.0)
    {
        during
    } else {
        let denial = r#"qlm_denials_total{feature="synthesis",reason="ALL_IN_USE"}"#;
        await_metric(&cluster, follower, denial, 1.0).await
    };
    assert_eq!(sample(&during, r#"qlm_checkouts_total{feature="vhdl-editor"}"#), Some(1.0));
    assert_eq!(sample(&during, r#"qlm_seats_in_use{feature="synthesis"}"#), Some(1.0));
    assert_eq!(sample(&during, "qlm_sessions_live"), Some(2.0));

    // Every node serves the metrics an admin alerts on; exactly one claims to lead, and the
    // client's calls were timed on the nodes that took them.
    let mut leaders = 0.0;
    let mut checkout_calls = 0.0;
    for id in 1..=3 {
        // A node may still be catching up with the log: wait until it has applied something.
        let text = poll_http(&cluster, id, "/metrics", "an applied entry", |code, body| {
            code == 200 && sample(body, "qlm_raft_applied_index").unwrap_or(0.0) >= 1.0
        })
        .await;
        leaders += sample(&text, "qlm_raft_is_leader").expect("qlm_raft_is_leader");
        assert!(sample(&text, "qlm_raft_term").expect("qlm_raft_term") >= 1.0);
        assert!(sample(&text, "qlm_raft_applied_index").expect("applied") >= 1.0);
        assert!(sample(&text, "qlm_fsync_duration_seconds_count").expect("fsyncs") >= 1.0);
        assert!(sample(&text, "qlm_database_size_bytes").expect("db size") > 0.0);
        assert!(sample(&text, "qlm_raft_log_entries").expect("log entries") >= 1.0);
        checkout_calls += sample(
            &text,
            r#"qlm_grpc_request_duration_seconds_count{service="LicenseService",method="Checkout"}"#,
        )
        .unwrap_or(0.0);
        if id == leader {
            let lag = format!(r#"qlm_raft_replication_lag_entries{{follower="{follower}"}}"#);
            assert!(sample(&text, &lag).is_some(), "the leader reports each follower's lag");
            // Each write's commit reaches the followers in a notice held back for a moment.
            let held = "qlm_raft_commit_notices_held_total";
            poll_http(&cluster, id, "/metrics", "a held commit notice", |code, body| {
                code == 200 && sample(body, held).unwrap_or(0.0) >= 1.0
            })
            .await;
            assert!(sample(&text, "qlm_raft_commit_notices_sent_late_total").is_some());
        }
    }
    assert_eq!(leaders, 1.0, "one leader");
    assert!(checkout_calls >= 3.0, "three Checkout calls timed, saw {checkout_calls}");

    // Give the seats back: in use falls to 0, the checkins are counted.
    checkout.checkin().await.expect("checkin");
    synthesis.checkin().await.expect("checkin");
    let after = await_metric(&cluster, follower, in_use, 0.0).await;
    let after = if sample(&after, r#"qlm_checkins_total{feature="synthesis"}"#) == Some(1.0) {
        after
    } else {
        await_metric(&cluster, follower, r#"qlm_checkins_total{feature="synthesis"}"#, 1.0).await
    };
    assert_eq!(sample(&after, r#"qlm_checkins_total{feature="vhdl-editor"}"#), Some(1.0));
    // The counters move as entries are applied, the gauges at the scrape: poll both.
    let after =
        await_metric(&cluster, follower, r#"qlm_seats_in_use{feature="synthesis"}"#, 0.0).await;
    assert_eq!(sample(&after, r#"qlm_checkouts_total{feature="vhdl-editor"}"#), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_does_not_count_again_what_it_had_applied() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let checkouts = r#"qlm_checkouts_total{feature="vhdl-editor"}"#;
    let client = client(&cluster);
    let alice = client.open_session(who("alice", "ws-alice")).await.expect("a session");
    let _held = alice.checkout("vhdl-editor", seats(1)).await.expect("a seat");
    // Two writes after it, so the follower has recorded the checkout as committed on disk
    // (the committed index travels with the next appends, and is made durable by them).
    let _bob = client.open_session(who("bob", "ws-bob")).await.expect("a session");
    let _carol = client.open_session(who("carol", "ws-carol")).await.expect("a session");
    await_metric(&cluster, follower, "qlm_sessions_live", 3.0).await;
    await_metric(&cluster, follower, checkouts, 1.0).await;
    // The follower applied the checkout, so it had saved the commit index past it; one more
    // write it applies was fsynced after that, which makes the saved index durable.
    let _dave = client.open_session(who("dave", "ws-dave")).await.expect("a session");
    await_metric(&cluster, follower, "qlm_sessions_live", 4.0).await;

    cluster.kill(follower);
    cluster.spawn(follower);
    poll_http(&cluster, follower, "/readyz", "ready after restart", |code, _| code == 200).await;
    let after =
        await_metric(&cluster, follower, r#"qlm_seats_in_use{feature="vhdl-editor"}"#, 1.0).await;
    assert_eq!(sample(&after, checkouts), None, "the replayed checkout is not counted again");

    let _second = alice.checkout("vhdl-editor", seats(1)).await.expect("another seat");
    await_metric(&cluster, follower, checkouts, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_goes_not_ready_on_a_node_cut_from_its_quorum_and_ready_again_after() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    for id in 1..=3 {
        poll_http(&cluster, id, "/readyz", "ready", |code, _| code == 200).await;
        assert_eq!(cluster.http_get(id, "/healthz").expect("healthz"), (200, "ok\n".into()));
    }

    // First the leader is left alone (it keeps its role but hears from no quorum), then a
    // follower (it loses its leader).
    for case in ["the leader", "a follower"] {
        let leader = cluster.wait_ready().await;
        let alone = if case == "the leader" { leader } else { leader % 3 + 1 };
        let others: Vec<u64> = (1..=3).filter(|&id| id != alone).collect();
        for &id in &others {
            cluster.kill(id);
        }
        let what = format!("{case} (node {alone}) alone is not ready");
        let body = poll_http(&cluster, alone, "/readyz", &what, |code, _| code == 503).await;
        assert!(body.starts_with("not ready: "), "{body}");
        eprintln!("{case} alone: {}", body.trim());
        let (code, _) = cluster.http_get(alone, "/healthz").expect("healthz");
        assert_eq!(code, 200, "the process is up, only not ready");

        for &id in &others {
            cluster.spawn(id);
        }
        for id in 1..=3 {
            poll_http(&cluster, id, "/readyz", "ready again", |code, _| code == 200).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_a_404_that_lists_the_endpoints() {
    let cluster = Cluster::start(1);
    let deadline = Instant::now() + READY_TIMEOUT;
    let answer = loop {
        match cluster.http_get(1, "/nope") {
            Ok(answer) => break answer,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("no HTTP answer: {e}"),
        }
    };
    assert_eq!(answer.0, 404);
    assert!(answer.1.contains("/metrics") && answer.1.contains("/readyz"), "{}", answer.1);
}

/// The Chromium binary: `$CHROMIUM`, else `chromium` or `chromium-browser` on the PATH.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "the dashboard test needs a headless Chromium and none was found: install Debian's \
         package (`apt-get install -y chromium`; .ci/run does this) or set CHROMIUM=/path/to/it"
    );
}

async fn checkout_checkin(checkout: qlm_client::Checkout) -> Result<(), ClientError> {
    checkout.checkin().await
}

/// Longest one Chromium run may take before the test kills it.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs headless Chromium with `args` on `url`; returns its standard output.
fn run_chromium(profile: &std::path::Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .args(["--no-first-run", "--hide-scrollbars", "--mute-audio"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let stdout = child.stdout.take().expect("chromium's stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stdout }, &mut text);
        text
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
            }
        }
    }
    reader.join().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_holders_in_a_real_browser() {
    let browser = chromium();
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;

    let client = client(&cluster);
    if std::env::var_os("QLM_DASHBOARD_PNG").is_some() {
        // For the screenshot in the docs: a varied minute and a half of use first, so the
        // plot has a history to show (the node samples every 10 s).
        let dave = client.open_session(who("dave", "ws-dave")).await.expect("a session");
        let mut held = Vec::new();
        for step in 0..15u32 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            let (feature, count) =
                [("simulator", 15), ("vhdl-editor", 4), ("simulator", 10)][step as usize % 3];
            if step % 4 == 3 {
                if let Some(checkout) = held.pop() {
                    let _ = checkout_checkin(checkout).await;
                }
            } else if let Ok(checkout) = dave.checkout(feature, seats(count)).await {
                held.push(checkout);
            }
        }
        for checkout in held {
            let _ = checkout_checkin(checkout).await;
        }
    }
    let alice = client.open_session(who("alice", "ws-alice")).await.expect("a session");
    let editor = alice.checkout("vhdl-editor", seats(2)).await.expect("2 seats");
    let bob = client.open_session(who("bob", "lab-07")).await.expect("a session");
    let tokens = bob.checkout("simulator", seats(40)).await.expect("40 tokens");
    let carol = client.open_session(who("carol", "ws-carol")).await.expect("a session");
    let synthesis = carol.checkout("synthesis", seats(1)).await.expect("the synthesis seat");
    assert!(bob.checkout("synthesis", seats(1)).await.is_err(), "bob is denied synthesis");
    let handle = editor.handle();

    // Node 3 (whichever role it has) shows what the cluster did once it has applied it.
    let node = 3;
    poll_http(&cluster, node, "/api/status", "the holders", |code, body| {
        code == 200 && body.contains(r#""user":"carol""#) && body.contains("ALL_IN_USE")
    })
    .await;

    let url = format!("http://{}/", cluster.http_addr(node));
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let budget = "--virtual-time-budget=8000";
    let dom = tokio::task::spawn_blocking({
        let (profile, url) = (profile.path().to_owned(), url.clone());
        move || run_chromium(&profile, &[budget, "--dump-dom"], &url)
    })
    .await
    .expect("the browser run");

    // What an admin sees, after the page's script ran: each holder with host and handle, the
    // counts, the cluster, the denial and the plot.
    for text in
        ["alice", "ws-alice", "bob", "lab-07", "carol", "ws-carol", "vhdl-editor", "simulator"]
    {
        assert!(dom.contains(text), "the page shows `{text}`:\n{dom}");
    }
    assert!(dom.contains(&format!(r#"data-handle="{handle}""#)), "alice's row by handle:\n{dom}");
    assert!(
        dom.contains(r#"<b data-field="in-use">40</b> of <b data-field="issued">100</b>"#),
        "{dom}"
    );
    assert!(dom.contains("ALL_IN_USE"), "the denial by reason:\n{dom}");
    assert!(dom.contains(r#"data-node="1""#) && dom.contains(r#"data-node="3""#), "{dom}");
    assert!(dom.contains(">leader<"), "the leader is marked:\n{dom}");
    assert!(dom.contains(r#"<path d="M"#), "the usage plot has lines:\n{dom}");
    assert!(!dom.contains("loading…"), "the script replaced the placeholder:\n{dom}");
    assert!(!dom.contains(r#"id="banner" style="display: block;""#), "no fetch failed:\n{dom}");

    // The screenshot: target/dashboard.png, or where QLM_DASHBOARD_PNG says (docs/).
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard.png");
    let png = std::env::var_os("QLM_DASHBOARD_PNG").map_or(target, PathBuf::from);
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    tokio::task::spawn_blocking({
        let profile = profile.path().to_owned();
        move || run_chromium(&profile, &[budget, "--window-size=1280,1500", &shot], &url)
    })
    .await
    .expect("the browser run");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {png:?}: {e}"));
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "a real PNG at {png:?}");
    eprintln!("dashboard screenshot: {} ({browser:?})", png.display());

    for checkout in [editor, tokens, synthesis] {
        checkout.checkin().await.expect("checkin");
    }
}

/// With `--snapshot-every` out of reach, every node still snapshots once the log written since
/// its last snapshot passes `--snapshot-log-mb` (here 1 MiB of batched checkouts and checkins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_grows_past_its_size_limit_is_snapshotted() {
    let cluster = Cluster::start_with(cluster_tests::ClusterOptions {
        nodes: 3,
        extra_args: ["--snapshot-every", "1000000", "--snapshot-log-mb", "1"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    cluster.wait_ready().await;
    let snapshotted = |id: u64| {
        cluster.http_get(id, "/metrics").is_ok_and(|(code, body)| {
            code == 200 && sample(&body, "qlm_raft_snapshot_size_bytes").unwrap_or(0.0) > 0.0
        })
    };
    assert!((1..=3).all(|id| !snapshotted(id)), "no snapshot before any load");

    // 16 sessions check a seat out and in as fast as they can (batched into large entries).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let (client, stop) = (client(&cluster), stop.clone());
            tokio::spawn(async move {
                let session = client.open_session(who(&format!("user{i}"), "host")).await?;
                let mut ops = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && ops < 20_000 {
                    session.checkout("vhdl-editor", seats(1)).await?.checkin().await?;
                    ops += 1;
                }
                session.close().await?;
                Ok::<u64, ClientError>(ops)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(1..=3).all(snapshotted) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ops = 0;
    for worker in workers {
        ops += worker.await.expect("worker task").expect("checkouts and checkins answered");
    }
    for id in 1..=3 {
        let (_, text) = cluster.http_get(id, "/metrics").expect("metrics");
        let applied = sample(&text, "qlm_raft_applied_index").unwrap_or(0.0);
        assert!(
            sample(&text, "qlm_raft_snapshot_size_bytes").unwrap_or(0.0) > 0.0,
            "node {id} has no snapshot after {ops} checkouts and checkins ({applied} entries)"
        );
        assert!(applied < 1_000_000.0, "the count of entries was not what triggered it");
    }
}
