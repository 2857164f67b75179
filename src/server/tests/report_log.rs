//! The report log writer on a real state machine store (sled files, openraft's apply and
//! snapshot install): lines name the holder even after an expiry, a reopened store that
//! applies its log again writes nothing twice, and a snapshot install leaves one `gap` line.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};
use qlm_engine::testkit::{T0, pool};
use qlm_engine::{Command, Handle};
use qlm_license::{Policy, Timestamp};
use qlm_raft::testkit::reopen_stores;
use qlm_raft::{Entry, LogEntry, LogId, StateMachineStore, open_stores};
use qlm_report::{EventKind, ReportLine};
use qlm_server::report_log::ReportLog;

fn entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(LogEntry {
            commands: vec![command],
            stamp: Timestamp(T0 + index * 1000),
        }),
    }
}

fn open_session(id: &str, user: &str) -> Command {
    Command::OpenSession {
        session_id: id.into(),
        secret: "s3cret".into(),
        user: user.into(),
        host: format!("{user}-ws"),
        pid: 7,
        display: ":0".into(),
        ttl_ms: 30_000,
    }
}

fn checkout(session: &str) -> Command {
    Command::Checkout {
        session_id: session.into(),
        request_id: format!("{session}-out"),
        feature: "cad".into(),
        version: "1.0".parse().expect("version"),
        count: 1,
        wait: false,
        borrow_until: None,
    }
}

/// Licenses, alice (s1) and bob (s2) each take a seat (handles 1 and 2), alice expires.
fn history() -> Vec<Entry> {
    vec![
        entry(2, Command::LoadLicenses { pools: vec![pool("cad", 3)], policy: Policy::default() }),
        entry(3, open_session("s1", "alice")),
        entry(4, checkout("s1")),
        entry(5, open_session("s2", "bob")),
        entry(6, checkout("s2")),
        entry(7, Command::ExpireSessions { session_ids: vec!["s1".into()] }),
    ]
}

fn bob_checks_in(index: u64) -> Entry {
    let command =
        Command::Checkin { session_id: "s2".into(), request_id: "in".into(), handle: Handle(2) };
    entry(index, command)
}

fn read(path: &Path) -> Vec<ReportLine> {
    let text = std::fs::read_to_string(path).expect("the report file");
    text.lines().map(|l| serde_json::from_str(l).expect("a report line")).collect()
}

async fn store_with_report(dir: &Path, report: &Path) -> (StateMachineStore, ReportLog) {
    // A test may have dropped stores on `dir` just before (a restart in the same process).
    let (_log, mut state_machine) = reopen_stores(dir).expect("stores");
    let log = ReportLog::start(1, report.to_path_buf(), 1 << 20, &mut state_machine)
        .await
        .expect("the report log starts");
    (state_machine, log)
}

fn paths() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (data, report) = (dir.path().join("data"), dir.path().join("report/usage.jsonl"));
    (dir, data, report)
}

#[tokio::test]
async fn an_expiry_names_its_holder_and_a_reapplied_log_is_not_written_twice() {
    let (_dir, data, report) = paths();
    {
        let (mut store, log) = store_with_report(&data, &report).await;
        store.apply(history()).await.expect("applied");
        log.stop().await;
    }
    let first = read(&report);
    let kinds: Vec<_> = first.iter().map(|l| (l.index, l.event)).collect();
    use EventKind::*;
    assert_eq!(kinds, [(2, Reload), (4, Checkout), (6, Checkout), (7, Expiry)]);
    let expiry = &first[3];
    assert_eq!(expiry.user.as_deref(), Some("alice"), "the session is gone; its user is not");
    assert_eq!(expiry.host.as_deref(), Some("alice-ws"));
    assert_eq!(expiry.version.as_deref(), Some("1.0"));
    assert_eq!(expiry.since_ms, Some(T0 + 4000));
    assert_eq!((expiry.handle, expiry.in_use), (Some(1), Some(1)));
    assert_eq!(expiry.time, Timestamp(T0 + 7000).to_string());

    // Reopened without a snapshot: openraft applies the whole log again, then a new entry.
    {
        let (mut store, log) = store_with_report(&data, &report).await;
        let mut again = history();
        again.push(bob_checks_in(8));
        store.apply(again).await.expect("applied");
        log.stop().await;
    }
    let second = read(&report);
    assert_eq!(second[..4], first[..], "the first lines are kept as they were");
    assert_eq!(second.len(), 5, "only the new entry's line is added: {second:#?}");
    let checkin = &second[4];
    assert_eq!((checkin.event, checkin.index), (Checkin, 8));
    assert_eq!(checkin.user.as_deref(), Some("bob"), "learnt from the entries not rewritten");
    assert_eq!(checkin.since_ms, Some(T0 + 6000));
}

#[tokio::test]
async fn a_snapshot_install_writes_one_gap_and_the_holders_come_from_the_snapshot() {
    let (_dir, data, report) = paths();
    let (_leader_dir, leader_data, _) = paths();
    // The leader's replica: the whole history, snapshotted at index 7.
    let (_leader_log, mut leader) = open_stores(&leader_data).expect("stores");
    leader.apply(history()).await.expect("applied");
    let snapshot = leader.get_snapshot_builder().await.build_snapshot().await.expect("built");

    let (mut follower, log) = store_with_report(&data, &report).await;
    follower.apply(history().into_iter().take(2)).await.expect("applied");
    let mut receiving = follower.begin_receiving_snapshot().await.expect("begin");
    *receiving = Cursor::new(snapshot.snapshot.get_ref().clone());
    follower.install_snapshot(&snapshot.meta, receiving).await.expect("installed");
    follower.apply([bob_checks_in(8)]).await.expect("applied");
    log.stop().await;

    let lines = read(&report);
    let kinds: Vec<_> = lines.iter().map(|l| (l.index, l.event)).collect();
    use EventKind::*;
    assert_eq!(kinds, [(2, Reload), (7, Gap), (8, Checkin)]);
    assert_eq!((lines[1].from, lines[1].to), (Some(4), Some(7)), "entries 4..=7 not written");
    assert_eq!(lines[2].user.as_deref(), Some("bob"), "bob's checkout came in the snapshot");
    assert_eq!(lines[2].since_ms, Some(T0 + 6000));
}

#[tokio::test]
async fn a_new_file_on_a_replica_restored_from_a_snapshot_starts_with_a_gap() {
    let (_dir, data, report) = paths();
    {
        let (_log, mut store) = open_stores(&data).expect("stores");
        store.apply(history()).await.expect("applied");
        store.get_snapshot_builder().await.build_snapshot().await.expect("built");
    }
    let (_store, log) = store_with_report(&data, &report).await;
    log.stop().await;
    let lines = read(&report);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].event, lines[0].from, lines[0].to), (EventKind::Gap, Some(1), Some(7)));
}

#[tokio::test]
async fn a_report_directory_that_cannot_be_made_fails_the_start_naming_it() {
    let (dir, data, _) = paths();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").expect("a file");
    let (_log, mut store) = open_stores(&data).expect("stores");
    let error = ReportLog::start(1, blocker.join("usage.jsonl"), 1 << 20, &mut store)
        .await
        .err()
        .expect("refused");
    assert!(error.contains("--report-log") && error.contains("a-file"), "{error}");
}

#[tokio::test]
async fn queue_moves_linger_ends_and_closed_sessions_have_their_lines() {
    let (_dir, data, report) = paths();
    let mut policy = Policy::default();
    policy.lingers.insert("cad".into(), 10);
    let request = |session: &str, id: &str, wait: bool| Command::Checkout {
        session_id: session.into(),
        request_id: id.into(),
        feature: "cad".into(),
        version: "1.0".parse().expect("version"),
        count: 1,
        wait,
        borrow_until: None,
    };
    let checkin = |session: &str, handle: u64| Command::Checkin {
        session_id: session.into(),
        request_id: format!("in-{handle}"),
        handle: Handle(handle),
    };
    let mut tick = entry(9, Command::Tick);
    if let EntryPayload::Normal(e) = &mut tick.payload {
        e.stamp = Timestamp(T0 + 30_000); // after the linger of the checkin at 8 s
    }
    let entries = vec![
        entry(2, Command::LoadLicenses { pools: vec![pool("cad", 1)], policy }),
        entry(3, open_session("s1", "alice")),
        entry(4, request("s1", "a", false)),
        entry(5, open_session("s2", "bob")),
        entry(6, request("s2", "b", true)),
        entry(7, checkin("s2", 2)),
        entry(8, checkin("s1", 1)),
        tick,
        entry(10, request("s2", "c", false)),
        entry(11, Command::CloseSession { session_id: "s2".into() }),
    ];
    let (mut store, log) = store_with_report(&data, &report).await;
    store.apply(entries).await.expect("applied");
    log.stop().await;

    let lines = read(&report);
    let seen: Vec<_> =
        lines.iter().map(|l| (l.index, l.event, l.reason.as_deref(), l.in_use)).collect();
    use EventKind::*;
    assert_eq!(
        seen,
        [
            (2, Reload, None, None),
            (4, Checkout, None, Some(1)),
            (6, Queued, None, Some(1)),
            (7, Dequeued, Some("CANCELLED"), Some(1)),
            (8, Checkin, None, Some(1)),
            (9, LingerEnd, None, Some(0)),
            (10, Checkout, None, Some(1)),
            (11, Checkin, Some("SESSION_CLOSED"), Some(0)),
        ],
        "{lines:#?}"
    );
    assert_eq!(lines[2].user.as_deref(), Some("bob"), "a queued request names its user");
    assert_eq!(lines[2].position, Some(1));
    assert_eq!(lines[7].user.as_deref(), Some("bob"));
}
