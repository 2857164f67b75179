//! The state machine store: applies stamped commands to the engine, snapshots it to disk,
//! installs a snapshot from another node, restores itself on open; and the database checks
//! that make a node refuse a doubtful store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use qlm_engine::testkit::{T0, pool};
use qlm_engine::{Command, Outcome};
use qlm_license::{Policy, Timestamp};
use qlm_raft::testkit::reopen_stores;
use qlm_raft::{
    Entry, LogEntry, LogId, Membership, StateMachineStore, StoreError, Vote, neutral_response,
    open_stores, raft_config,
};

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn command_entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(LogEntry {
            commands: vec![command],
            stamp: Timestamp(T0 + index * 1000),
        }),
    }
}

fn membership_entry(index: u64) -> Entry {
    let nodes = BTreeMap::from([(1, openraft::BasicNode::new("127.0.0.1:7401"))]);
    let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
    Entry { log_id: log_id(index), payload: EntryPayload::Membership(membership) }
}

fn open_session(id: &str) -> Command {
    Command::OpenSession {
        session_id: id.into(),
        secret: "s3cret".into(),
        user: "alice".into(),
        host: "ws1".into(),
        pid: 7,
        display: ":0".into(),
        ttl_ms: 30_000,
    }
}

fn checkout(session: &str, request: &str) -> Command {
    Command::Checkout {
        session_id: session.into(),
        request_id: request.into(),
        feature: "vhdl-editor".into(),
        version: "1.0".parse().expect("version"),
        count: 1,
        wait: false,
        borrow_until: None,
    }
}

/// A short history: membership, licenses, two sessions, one checkout, a blank entry.
fn history() -> Vec<Entry> {
    vec![
        membership_entry(1),
        command_entry(
            2,
            Command::LoadLicenses {
                pools: vec![pool("vhdl-editor", 3)],
                policy: Policy::default(),
            },
        ),
        command_entry(3, open_session("s1")),
        command_entry(4, open_session("s2")),
        command_entry(5, checkout("s1", "r1")),
        Entry { log_id: log_id(6), payload: EntryPayload::Blank },
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

async fn engine_bytes(state_machine: &StateMachineStore) -> Vec<u8> {
    state_machine.replica().read().await.engine().snapshot()
}

/// An entry of several commands (a leader's batch) stamped `T0 + index * 1000`.
fn batch_entry(index: u64, commands: Vec<Command>) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(LogEntry { commands, stamp: Timestamp(T0 + index * 1000) }),
    }
}

#[test]
fn a_batched_entry_answers_each_command_and_leaves_the_state_one_entry_each_would() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_log, mut batched) = open_stores(tmp.path().join("batched")).expect("open");
    let (_log2, mut single) = open_stores(tmp.path().join("single")).expect("open");
    let licenses =
        Command::LoadLicenses { pools: vec![pool("vhdl-editor", 1)], policy: Policy::default() };
    // Two sessions want the one seat: the second is denied, the third command still runs.
    let commands = vec![
        open_session("s1"),
        open_session("s2"),
        checkout("s1", "r1"),
        checkout("s2", "r2"),
        Command::CloseSession { session_id: "s1".into() },
        checkout("s2", "r3"),
    ];
    runtime().block_on(async {
        batched.apply([command_entry(1, licenses.clone())]).await.expect("apply");
        let answers = batched.apply([batch_entry(2, commands.clone())]).await.expect("apply");
        assert_eq!(answers.len(), 1, "one response per entry");
        let outcomes: Vec<_> = answers[0].iter().map(|a| &a.outcome).collect();
        assert_eq!(outcomes.len(), 6, "one answer per command, in order: {outcomes:?}");
        assert!(matches!(outcomes[2], Outcome::Granted(_)), "{outcomes:?}");
        assert!(matches!(outcomes[3], Outcome::Denied(_)), "{outcomes:?}");
        assert!(matches!(outcomes[4], Outcome::SessionClosed { .. }), "{outcomes:?}");
        assert!(matches!(outcomes[5], Outcome::Granted(_)), "the seat s1 gave back: {outcomes:?}");

        // The same commands one per entry, all with the batch's stamp: the same engine.
        single.apply([command_entry(1, licenses)]).await.expect("apply");
        for command in commands {
            single.apply([batch_entry(2, vec![command])]).await.expect("apply");
        }
        assert_eq!(engine_bytes(&batched).await, engine_bytes(&single).await);
    });
}

#[test]
fn applying_runs_each_command_with_its_stamp_and_answers_others_neutrally() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_log, mut state_machine) = open_stores(tmp.path()).expect("open");
    runtime().block_on(async {
        let responses = state_machine.apply(history()).await.expect("apply");
        assert_eq!(responses[0], neutral_response(), "membership");
        assert!(matches!(responses[1][0].outcome, Outcome::LicensesLoaded { serving: 1, .. }));
        assert!(matches!(responses[4][0].outcome, Outcome::Granted(_)));
        assert_eq!(responses[5], neutral_response(), "blank");

        let replica = state_machine.replica();
        let replica = replica.read().await;
        assert_eq!(replica.engine().now(), Timestamp(T0 + 5 * 1000), "the last stamp");
        assert_eq!(replica.last_applied(), Some(log_id(6)));
        assert_eq!(replica.membership().log_id(), &Some(log_id(1)));
        assert_eq!(replica.engine().session("s1").map(|s| s.checkouts.len()), Some(1));
    });
}

#[test]
fn a_snapshot_installed_on_a_fresh_node_gives_the_same_engine() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_log_a, mut leader) = open_stores(tmp.path().join("a")).expect("open a");
    let (_log_b, mut follower) = open_stores(tmp.path().join("b")).expect("open b");
    runtime().block_on(async {
        leader.apply(history()).await.expect("apply");
        let built = leader.get_snapshot_builder().await.build_snapshot().await.expect("build");
        assert_eq!(built.meta.last_log_id, Some(log_id(6)));

        let mut receiving = follower.begin_receiving_snapshot().await.expect("begin");
        *receiving = Cursor::new(built.snapshot.get_ref().clone());
        follower.install_snapshot(&built.meta, receiving).await.expect("install");

        assert_eq!(engine_bytes(&follower).await, engine_bytes(&leader).await);
        assert_eq!(
            follower.applied_state().await.expect("state"),
            leader.applied_state().await.expect("state")
        );
        let current = follower.get_current_snapshot().await.expect("read").expect("a snapshot");
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
    });
}

#[test]
fn an_unreadable_snapshot_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_log, mut state_machine) = open_stores(tmp.path()).expect("open");
    runtime().block_on(async {
        state_machine.apply(history()).await.expect("apply");
        let before = (
            engine_bytes(&state_machine).await,
            state_machine.applied_state().await.expect("state"),
        );
        let mut meta =
            state_machine.get_snapshot_builder().await.build_snapshot().await.expect("build").meta;
        meta.last_log_id = Some(log_id(9));
        meta.snapshot_id = "garbage".into();
        let garbage = Box::new(Cursor::new(vec![0xff; 7]));
        assert!(state_machine.install_snapshot(&meta, garbage).await.is_err());
        let after = (
            engine_bytes(&state_machine).await,
            state_machine.applied_state().await.expect("state"),
        );
        assert_eq!(before, after);
        let current =
            state_machine.get_current_snapshot().await.expect("read").expect("a snapshot");
        assert_ne!(current.meta.snapshot_id, "garbage");
    });
}

#[test]
fn a_reopened_node_restarts_from_its_last_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let runtime = runtime();
    let (snapshot_bytes, final_bytes) = runtime.block_on(async {
        let (_log, mut state_machine) = open_stores(tmp.path()).expect("open");
        state_machine.apply(history()).await.expect("apply");
        state_machine.get_snapshot_builder().await.build_snapshot().await.expect("build");
        let snapshot_bytes = engine_bytes(&state_machine).await;
        // Applied after the snapshot: openraft re-applies it from the log on restart.
        state_machine.apply([command_entry(7, checkout("s2", "r2"))]).await.expect("apply");
        (snapshot_bytes, engine_bytes(&state_machine).await)
    });
    runtime.block_on(async {
        let (_log, mut state_machine) = reopen_stores(tmp.path()).expect("reopen");
        assert_eq!(engine_bytes(&state_machine).await, snapshot_bytes);
        assert_eq!(state_machine.applied_state().await.expect("state").0, Some(log_id(6)));
        state_machine.apply([command_entry(7, checkout("s2", "r2"))]).await.expect("re-apply");
        assert_eq!(engine_bytes(&state_machine).await, final_bytes);
    });
}

#[test]
fn every_kind_of_entry_reads_back_as_written_after_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let runtime = runtime();
    runtime.block_on(async {
        let (mut log, _state_machine) = open_stores(tmp.path()).expect("open");
        log.blocking_append(history()).await.expect("append");
    });
    runtime.block_on(async {
        let (mut log, _state_machine) = reopen_stores(tmp.path()).expect("reopen");
        assert_eq!(log.try_get_log_entries(..).await.expect("read"), history());
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(6)));
    });
}

#[test]
fn a_store_is_fresh_until_it_holds_a_vote_and_stays_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let runtime = runtime();
    runtime.block_on(async {
        let (mut log, _state_machine) = open_stores(tmp.path()).expect("open");
        assert!(log.is_fresh());
        log.save_vote(&Vote::new(1, 1)).await.expect("vote");
        assert!(!log.is_fresh());
    });
    let (log, _state_machine) = reopen_stores(tmp.path()).expect("reopen");
    assert!(!log.is_fresh(), "a node that voted is never fresh again");
}

fn refusal(dir: &Path) -> String {
    match open_stores(dir) {
        Ok(_) => panic!("{} was opened", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_database_in_use_is_refused_with_its_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let _open = open_stores(tmp.path()).expect("open");
    let message = refusal(tmp.path());
    assert!(message.contains(&tmp.path().display().to_string()), "{message}");
    assert!(message.contains("another qlmd is using this data directory"), "{message}");
}

#[test]
fn an_unfinished_sled_snapshot_file_does_not_stop_the_next_start() {
    // A sled snapshot write that failed (a full volume) leaves `snap.<lsn>.generating`
    // behind, empty or partial; sled reads the newest `snap.*` file at open (its lsn is the
    // newest here), so it would refuse the database as corrupted data at every later start.
    let tmp = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let (mut log, _) = open_stores(tmp.path()).expect("open");
        log.blocking_append([membership_entry(1)]).await.expect("append");
    });
    for contents in [&b""[..], &[0x5a; 100][..]] {
        let unfinished = tmp.path().join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&unfinished, contents).expect("write");
        let (mut log, _) = open_stores(tmp.path()).expect("opened despite the unfinished file");
        assert!(!unfinished.exists(), "the unfinished file is gone");
        let last = runtime().block_on(log.get_log_state()).expect("state").last_log_id;
        assert_eq!(last.map(|l| l.index), Some(1));
    }
}

#[test]
fn a_database_of_another_format_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    drop(open_stores(tmp.path()).expect("open"));
    {
        let db = sled::open(tmp.path()).expect("sled");
        db.open_tree("meta").expect("tree").insert("format", &99u32.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let message = refusal(tmp.path());
    assert!(message.contains("storage format 99"), "{message}");
}

/// The log's segment files, sorted (they are named by their first index).
fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("log"))
        .expect("list the log")
        .map(|e| e.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_log_with_a_hole_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let (mut log, _state_machine) = open_stores(tmp.path()).expect("open");
        log.blocking_append(history()).await.expect("append");
    });
    // A segment that starts after entry 9, when the log ends at 6.
    std::fs::write(tmp.path().join("log/00000000000000000009.wal"), b"QLMWAL01").expect("write");
    let message = refusal(tmp.path());
    assert!(message.contains("hole"), "{message}");
    assert!(matches!(open_stores(tmp.path()), Err(StoreError::Inconsistent { .. })));
}

#[test]
fn a_damaged_log_record_is_refused_and_a_torn_last_one_cut_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let runtime = runtime();
    runtime.block_on(async {
        let (mut log, _state_machine) = open_stores(tmp.path()).expect("open");
        log.blocking_append(history()).await.expect("append");
    });
    // The last record's end lost, as a crash during its write leaves it: it was never
    // acknowledged, and the log opens without it. (Segments are preallocated with zeros.)
    let segment = segments(tmp.path()).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    let end = bytes.iter().rposition(|b| *b != 0).expect("records") + 1;
    bytes[end - 2..end].fill(0);
    std::fs::write(&segment, &bytes).expect("write");
    runtime.block_on(async {
        let (mut log, _state_machine) = reopen_stores(tmp.path()).expect("reopen");
        assert_eq!(log.try_get_log_entries(..).await.expect("read"), history()[..5].to_vec());
    });
    // A flipped byte in the first record, with good records after it: refused.
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[12] ^= 0x55;
    std::fs::write(&segment, &bytes).expect("write");
    std::fs::write(tmp.path().join("log/00000000000000000006.wal"), b"QLMWAL01").expect("write");
    let message = refusal(tmp.path());
    assert!(
        message.contains("checksum") && message.contains("00000000000000000001.wal"),
        "{message}"
    );
}

#[test]
fn a_purge_cut_short_is_finished_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let runtime = runtime();
    let kept = runtime.block_on(async {
        let (mut log, _state_machine) = open_stores(tmp.path()).expect("open");
        log.blocking_append(history()).await.expect("append");
        log.purge(log_id(3)).await.expect("purge");
        assert_eq!(log.try_get_log_entries(..).await.expect("read"), history()[3..].to_vec());
        let segment = segments(tmp.path()).pop().expect("a segment");
        let kept = (segment.clone(), std::fs::read(&segment).expect("read"));
        log.purge(log_id(6)).await.expect("purge");
        kept
    });
    assert!(segments(tmp.path()).is_empty(), "a log purged to its end has no segment left");
    // As if the process died after writing last_purged but before deleting the segment.
    std::fs::write(&kept.0, &kept.1).expect("put the segment back");
    runtime.block_on(async {
        let (mut log, _state_machine) = reopen_stores(tmp.path()).expect("reopen");
        assert_eq!(log.try_get_log_entries(..).await.expect("read"), Vec::new());
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(6)));
        assert_eq!(state.last_log_id, Some(log_id(6)));
        assert!(segments(tmp.path()).is_empty(), "the purged segment is deleted on open");
        let next = command_entry(7, open_session("s3"));
        log.blocking_append([next.clone()]).await.expect("append after the purge");
        assert_eq!(log.try_get_log_entries(..).await.expect("read"), vec![next]);
    });
}

#[test]
fn the_raft_configuration_is_valid() {
    let config = raft_config().expect("valid");
    assert!(config.replication_lag_threshold > qlm_raft::SNAPSHOT_EVERY_ENTRIES);
}
