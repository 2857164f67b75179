//! The usage report log on a real 3-process cluster: a known workload (checkouts, checkins,
//! a denial, an expiry, a removal, a reload) gives the same lines on every node, with the
//! holder on every line that ends a checkout; `qlm report` turns a node's file into the
//! expected summary; a node killed and restarted does not write its lines twice.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_tests::{Cluster, RawSession, TEST_ADMIN_TOKEN, qlmd_binary};
use qlm_proto::v1;
use qlm_proto::v1::admin_service_client::AdminServiceClient;
use qlm_proto::v1::license_service_client::LicenseServiceClient;
use qlm_report::{EventKind, ReportLine};
use tonic::transport::Channel;

/// How long the report lines of a workload may take to reach every node's file.
const LINES_TIMEOUT: Duration = Duration::from_secs(30);

async fn license_client(cluster: &Cluster, id: u64) -> LicenseServiceClient<Channel> {
    LicenseServiceClient::connect(format!("http://{}", cluster.client_addr(id)))
        .await
        .expect("a connection to the node")
}

async fn admin_client(cluster: &Cluster, id: u64) -> AdminServiceClient<Channel> {
    AdminServiceClient::connect(format!("http://{}", cluster.client_addr(id)))
        .await
        .expect("a connection to the node")
}

fn with_token<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer = format!("Bearer {TEST_ADMIN_TOKEN}");
    request.metadata_mut().insert("authorization", bearer.parse().expect("ascii"));
    request
}

async fn open(client: &mut LicenseServiceClient<Channel>, user: &str, ttl_ms: u64) -> RawSession {
    let request = v1::OpenSessionRequest {
        user: user.into(),
        host: format!("{user}-ws"),
        pid: 42,
        display: String::new(),
        ttl_ms,
        request_id: String::new(),
    };
    client.open_session(request).await.expect("a session").into_inner().into()
}

/// Checks out; returns the handle when granted, the denial reason otherwise.
async fn checkout(
    client: &mut LicenseServiceClient<Channel>,
    session: &RawSession,
    feature: &str,
    count: u32,
) -> Result<u64, i32> {
    let request = v1::CheckoutRequest {
        session_id: session.id.clone(),
        session_secret: session.secret.clone(),
        request_id: format!("{feature}-{count}"),
        feature: feature.into(),
        version: String::new(),
        count,
        wait: false,
        borrow_until_unix_ms: None,
    };
    match client.checkout(request).await.expect("an answer").into_inner().result {
        Some(v1::checkout_response::Result::Granted(granted)) => Ok(granted.handle),
        Some(v1::checkout_response::Result::Denied(denied)) => Err(denied.reason),
        other => panic!("neither granted nor denied: {other:?}"),
    }
}

async fn checkin(client: &mut LicenseServiceClient<Channel>, session: &RawSession, handle: u64) {
    let request = v1::CheckinRequest {
        session_id: session.id.clone(),
        session_secret: session.secret.clone(),
        request_id: format!("in-{handle}"),
        handle,
    };
    client.checkin(request).await.expect("checked in");
}

fn report_file(cluster: &Cluster, id: u64) -> PathBuf {
    let node = cluster.nodes.iter().find(|n| n.id == id).expect("a node");
    node.data_dir.join("report").join("usage.jsonl")
}

fn read_report(path: &Path) -> Vec<ReportLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: `{line}`: {e}", path.display()))
        })
        .collect()
}

/// Waits until node `id`'s report has a line that `done` accepts; returns its lines.
async fn wait_for_line(
    cluster: &Cluster,
    id: u64,
    done: impl Fn(&ReportLine) -> bool,
) -> Vec<ReportLine> {
    let deadline = Instant::now() + LINES_TIMEOUT;
    loop {
        let lines = read_report(&report_file(cluster, id));
        if lines.iter().any(&done) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "node {id}'s report never got the line; it has:\n{lines:#?}\nlog:\n{}",
            cluster.log_of(id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is(line: &ReportLine, event: EventKind, user: &str) -> bool {
    line.event == event && line.user.as_deref() == Some(user)
}

/// A line without the writing node's id: what every node must agree on.
fn agreed(lines: &[ReportLine]) -> Vec<ReportLine> {
    lines.iter().cloned().map(|line| ReportLine { node: 0, ..line }).collect()
}

/// `(event, user, feature, count, reason)` of the workload's users' lines, in order.
fn story(lines: &[ReportLine]) -> Vec<(EventKind, String, String, u32, Option<String>)> {
    lines
        .iter()
        .filter(|l| l.user.as_deref().is_some_and(|u| u.starts_with("rep-")))
        .map(|l| {
            let user = l.user.clone().unwrap_or_default();
            let feature = l.feature.clone().unwrap_or_default();
            (l.event, user, feature, l.count.unwrap_or(0), l.reason.clone())
        })
        .collect()
}

fn qlm(args: &[&str]) -> (String, String, i32) {
    let binary = qlmd_binary().with_file_name("qlm");
    let output = Command::new(&binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs (cargo build --bins): {e}", binary.display()));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (text(&output.stdout), text(&output.stderr), output.status.code().unwrap_or(-1))
}

/// What the known workload left for the checks: alice's synthesis handle and carol's session.
struct Workload {
    synthesis: u64,
    carol: RawSession,
}

/// The known workload: alice's checkout and checkin, bob's denial and his two seats, carol's
/// expiry, dave's tokens removed by the admin, a reload, then bob's checkin.
async fn run_known_workload(cluster: &Cluster, leader: u64) -> Workload {
    let mut via1 = license_client(cluster, 1).await;
    let mut via2 = license_client(cluster, 2).await;

    let alice = open(&mut via1, "rep-alice", 60_000).await;
    let bob = open(&mut via2, "rep-bob", 60_000).await;
    let synthesis = checkout(&mut via1, &alice, "synthesis", 1).await.expect("alice's seat");
    let denied = checkout(&mut via2, &bob, "synthesis", 1).await.expect_err("one seat only");
    assert_eq!(denied, v1::DenialReason::AllInUse as i32);
    let editor = checkout(&mut via2, &bob, "vhdl-editor", 2).await.expect("bob's two seats");
    checkin(&mut via1, &alice, synthesis).await;

    // carol goes silent: the leader expires her session and her seat.
    let carol = open(&mut via1, "rep-carol", 2_000).await;
    checkout(&mut via1, &carol, "vhdl-editor", 1).await.expect("carol's seat");
    wait_for_line(cluster, 1, |l| is(l, EventKind::Expiry, "rep-carol")).await;

    // dave's tokens are removed by the admin; then the admin reloads the licenses.
    let dave = open(&mut via2, "rep-dave", 60_000).await;
    checkout(&mut via2, &dave, "simulator", 5).await.expect("dave's tokens");
    let mut admin = admin_client(cluster, 3).await;
    let remove = v1::RemoveRequest {
        target: Some(v1::remove_request::Target::Holder(v1::HolderSelector {
            user: "rep-dave".into(),
            host: String::new(),
            feature: String::new(),
        })),
    };
    let removed = admin.remove(with_token(remove)).await.expect("removed").into_inner();
    assert_eq!(removed.released.len(), 1);
    // A reload re-reads the leader's files, so it is asked of the leader.
    let mut leader_admin = admin_client(cluster, leader).await;
    leader_admin.reload(with_token(v1::ReloadRequest {})).await.expect("reloaded");
    checkin(&mut via2, &bob, editor).await;
    Workload { synthesis, carol }
}

/// Waits for bob's last checkin in every node's report; checks that every node wrote the same
/// lines, each once, signed with its id; returns each node's lines.
async fn every_nodes_agreed_lines(cluster: &Cluster) -> Vec<Vec<ReportLine>> {
    let mut files = Vec::new();
    for id in 1..=3 {
        files.push(wait_for_line(cluster, id, |l| is(l, EventKind::Checkin, "rep-bob")).await);
    }
    // Every node wrote the same lines, each once.
    for (id, lines) in files.iter().enumerate().skip(1) {
        assert_eq!(agreed(lines), agreed(&files[0]), "node {} differs from node 1", id + 1);
    }
    let keys: HashSet<(u64, u32)> = files[0].iter().map(|l| (l.index, l.seq)).collect();
    assert_eq!(keys.len(), files[0].len(), "no line twice");
    assert!(files[1].iter().all(|l| l.node == 2), "node 2 signs its lines");
    files
}

/// Alice's checkout and checkin lines.
struct AliceLines<'a> {
    out: &'a ReportLine,
    back: &'a ReportLine,
}

/// Checks the workload's story in `lines`, and what its lines tell: the expired session's
/// holder, the checkin's grant time, the pool's use, the reloads; returns alice's lines.
fn check_the_lines<'a>(lines: &'a [ReportLine], workload: &Workload) -> AliceLines<'a> {
    use EventKind::*;
    let s = |t: &str| t.to_owned();
    assert_eq!(
        story(lines),
        vec![
            (Checkout, s("rep-alice"), s("synthesis"), 1, None),
            (Denial, s("rep-bob"), s("synthesis"), 1, Some(s("ALL_IN_USE"))),
            (Checkout, s("rep-bob"), s("vhdl-editor"), 2, None),
            (Checkin, s("rep-alice"), s("synthesis"), 1, None),
            (Checkout, s("rep-carol"), s("vhdl-editor"), 1, None),
            (Expiry, s("rep-carol"), s("vhdl-editor"), 1, None),
            (Checkout, s("rep-dave"), s("simulator"), 5, None),
            (Removal, s("rep-dave"), s("simulator"), 5, None),
            (Checkin, s("rep-bob"), s("vhdl-editor"), 2, None),
        ]
    );
    let expiry = lines.iter().find(|l| is(l, Expiry, "rep-carol")).expect("the expiry");
    assert_eq!(expiry.host.as_deref(), Some("rep-carol-ws"), "an expired session's host");
    assert_eq!(expiry.version.as_deref(), Some("4.0"));
    assert_eq!(expiry.session.as_deref(), Some(workload.carol.id.as_str()));
    let alice_out = lines.iter().find(|l| is(l, Checkout, "rep-alice")).expect("alice's checkout");
    let alice_in = lines.iter().find(|l| is(l, Checkin, "rep-alice")).expect("alice's checkin");
    assert_eq!(alice_in.handle, Some(workload.synthesis));
    assert_eq!(alice_in.since_ms, Some(alice_out.unix_ms), "the checkin tells its grant time");
    assert_eq!((alice_out.in_use, alice_in.in_use), (Some(1), Some(0)));
    let reloads: Vec<_> = lines.iter().filter(|l| l.event == Reload).collect();
    assert!(reloads.len() >= 2, "the start's load and the admin's reload: {reloads:?}");
    assert!(reloads.iter().all(|l| l.serving.is_some_and(|n| n >= 3)), "{reloads:?}");
    AliceLines { out: alice_out, back: alice_in }
}

/// `qlm report --json` on the report directory `dir`: each feature's peak, checkouts,
/// denials, expiries and removals, and each user's use.
fn check_the_json_summary(dir: &str, alice: &AliceLines) {
    let (json, stderr, code) = qlm(&["report", "--json", dir]);
    assert_eq!(code, 0, "qlm report: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let feature = |name: &str| {
        summary["features"]
            .as_array()
            .and_then(|fs| fs.iter().find(|f| f["feature"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {summary:#}"))
    };
    let user = |name: &str, feature: &str| {
        summary["users"]
            .as_array()
            .and_then(|us| us.iter().find(|u| u["user"] == name && u["feature"] == feature))
            .cloned()
            .unwrap_or_else(|| panic!("{name}/{feature} in {summary:#}"))
    };
    let synthesis_use = feature("synthesis");
    assert_eq!(synthesis_use["peak_in_use"], 1);
    assert_eq!(synthesis_use["peak_at_ms"], alice.out.unix_ms);
    assert_eq!(synthesis_use["checkouts"], 1);
    assert_eq!(synthesis_use["denials_by_reason"]["ALL_IN_USE"], 1);
    let editor_use = feature("vhdl-editor");
    assert_eq!(
        (editor_use["peak_in_use"].clone(), editor_use["checkouts"].clone()),
        (3.into(), 2.into())
    );
    assert_eq!(editor_use["expiries"], 1);
    let simulator_use = feature("simulator");
    assert_eq!(
        (simulator_use["peak_in_use"].clone(), simulator_use["removals"].clone()),
        (5.into(), 1.into())
    );
    let alice_hours = (alice.back.unix_ms - alice.out.unix_ms) as f64 / 3_600_000.0;
    let alice_use = user("rep-alice", "synthesis");
    assert_eq!(alice_use["checkouts"], 1);
    let reported = alice_use["hours"].as_f64().expect("hours");
    assert!((reported - alice_hours).abs() < 0.0001, "{reported} vs {alice_hours}");
    assert_eq!(user("rep-bob", "synthesis")["denials"], 1);
    assert_eq!(user("rep-bob", "vhdl-editor")["checkouts"], 1);
    assert_eq!(user("rep-dave", "simulator")["checkouts"], 1);
}

/// `qlm report --feature` keeps one feature; a bad `--from` is bad input.
fn check_the_table_and_its_flags(dir: &str) {
    let (table, _, code) = qlm(&["report", "--feature", "synthesis", dir]);
    assert_eq!(code, 0);
    assert!(table.contains("synthesis") && table.contains("ALL_IN_USE"), "{table}");
    assert!(!table.contains("vhdl-editor"), "--feature keeps one feature:\n{table}");
    let (_, stderr, code) = qlm(&["report", "--from", "next tuesday", dir]);
    assert_eq!(code, 2, "a bad --from is bad input: {stderr}");
    assert!(stderr.contains("next tuesday"), "{stderr}");
}

/// Node 3 is killed and restarted: it applies its log again and writes nothing twice, and
/// agrees with node 1 up to a checkout made after the restart.
async fn check_a_restarted_node_writes_no_line_twice(cluster: &mut Cluster) {
    cluster.kill(3);
    cluster.spawn(3);
    cluster.wait_ready().await;
    let mut via1 = license_client(cluster, 1).await;
    let erin = open(&mut via1, "rep-erin", 60_000).await;
    checkout(&mut via1, &erin, "vhdl-editor", 1).await.expect("erin's seat");
    let after = wait_for_line(cluster, 3, |l| is(l, EventKind::Checkout, "rep-erin")).await;
    let keys: HashSet<(u64, u32)> = after.iter().map(|l| (l.index, l.seq)).collect();
    assert_eq!(keys.len(), after.len(), "a restarted node writes no line twice");
    let node1 = wait_for_line(cluster, 1, |l| is(l, EventKind::Checkout, "rep-erin")).await;
    let through_erin = |lines: &[ReportLine]| {
        let end =
            lines.iter().position(|l| is(l, EventKind::Checkout, "rep-erin")).map_or(0, |i| i + 1);
        agreed(&lines[..end])
    };
    assert_eq!(through_erin(&after), through_erin(&node1), "node 3 after its restart agrees");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_gives_the_same_report_on_every_node_and_the_expected_summary() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let workload = run_known_workload(&cluster, leader).await;

    let files = every_nodes_agreed_lines(&cluster).await;
    let alice = check_the_lines(&files[0], &workload);

    // qlm report on node 1's directory.
    let dir = report_file(&cluster, 1).parent().expect("the report dir").to_path_buf();
    let dir = dir.to_string_lossy().into_owned();
    check_the_json_summary(&dir, &alice);
    check_the_table_and_its_flags(&dir);

    check_a_restarted_node_writes_no_line_twice(&mut cluster).await;
}
