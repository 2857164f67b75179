//! What the log store acknowledges survives the process: a child process appends entries and
//! saves votes, says "acknowledged entry N" or "acknowledged vote N" after each, and is killed
//! with SIGKILL; the parent reopens the store and finds every acknowledged entry and vote.
//! Under strace, every acknowledged entry follows an fsync (or fdatasync) of a log segment,
//! and every acknowledged vote an fsync of the database file, made after the previous
//! acknowledgement (src/raft/DURABILITY.md).
//!
//! The child is this test binary run again with `CHILD_DIR_ENV` set, running only
//! `child_appends_and_acknowledges`; without that variable that test does nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use qlm_engine::Command;
use qlm_license::Timestamp;
use qlm_raft::{Entry, LogEntry, LogId, Vote, open_stores};

/// The child's data directory; its presence makes the child test run.
const CHILD_DIR_ENV: &str = "QLM_TEST_DURABILITY_CHILD_DIR";
/// Optional: the child stops after this many acknowledgements (the strace run).
const CHILD_ACKS_ENV: &str = "QLM_TEST_DURABILITY_CHILD_ACKS";
/// What the child prints once its store is open (the checks start after it).
const OPENED: &str = "opened";
/// What the child prints once an entry, or a vote, is durable.
const ACK: &str = "acknowledged ";
const ACK_ENTRY: &str = "acknowledged entry ";
const ACK_VOTE: &str = "acknowledged vote ";
/// Kill-and-reopen rounds on one directory.
const ROUNDS: usize = 5;
/// Every this many entries is one larger than sled's blob threshold (128 KiB), so that the
/// blob files sled keeps outside its log are covered too.
const LARGE_ENTRY_EVERY: u64 = 4;
const LARGE_ENTRY_BYTES: usize = 160 * 1024;

/// Entry `index` as the child writes it (term = index, so every entry is distinct).
fn entry(index: u64) -> Entry {
    let display = if index.is_multiple_of(LARGE_ENTRY_EVERY) {
        "x".repeat(LARGE_ENTRY_BYTES)
    } else {
        ":0".to_string()
    };
    let command = Command::OpenSession {
        session_id: format!("session-{index}"),
        secret: "s3cret".into(),
        user: "alice".into(),
        host: "ws1".into(),
        pid: 4242,
        display,
        ttl_ms: 30_000,
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(index, 1), index),
        payload: EntryPayload::Normal(LogEntry {
            commands: vec![command],
            stamp: Timestamp(index),
        }),
    }
}

/// The vote the child saves after entry `index`.
fn vote(index: u64) -> Vote {
    Vote::new(index, 1)
}

/// The child: appends entry N and acknowledges it, saves vote N and acknowledges it, forever
/// (or `CHILD_ACKS_ENV` times), continuing after whatever the store already holds.
#[test]
fn child_appends_and_acknowledges() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else { return };
    let limit: Option<u64> = std::env::var(CHILD_ACKS_ENV).ok().and_then(|s| s.parse().ok());
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let (mut log, _state_machine) = open_stores(&dir).expect("open the store");
        let state = log.get_log_state().await.expect("log state");
        let first = state.last_log_id.map_or(1, |id| id.index + 1);
        let mut stdout = std::io::stdout();
        let mut say = |line: String| {
            writeln!(stdout, "{line}").and_then(|()| stdout.flush()).expect("stdout");
        };
        say(OPENED.to_string());
        for index in first.. {
            log.blocking_append([entry(index)]).await.expect("append");
            say(format!("{ACK_ENTRY}{index}"));
            log.save_vote(&vote(index)).await.expect("save vote");
            say(format!("{ACK_VOTE}{index}"));
            if limit.is_some_and(|limit| index + 1 - first >= limit) {
                break;
            }
        }
    });
}

/// Runs the child on `dir`, under `wrapper` (e.g. strace) when given.
fn spawn_child(dir: &Path, wrapper: &[&str], acks: Option<u64>) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut args: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
    args.push(exe.display().to_string());
    args.extend(
        ["child_appends_and_acknowledges", "--exact", "--nocapture", "--test-threads=1"]
            .map(String::from),
    );
    let mut process = Process::new(&args[0]);
    process.args(&args[1..]).env(CHILD_DIR_ENV, dir).stdout(Stdio::piped());
    if let Some(acks) = acks {
        process.env(CHILD_ACKS_ENV, acks.to_string());
    }
    process.spawn().expect("spawn the child")
}

/// The last entry and the last vote acknowledged, as the child's lines say.
#[derive(Default)]
struct Acknowledged {
    entry: u64,
    vote: u64,
}

impl Acknowledged {
    /// Takes one line of the child's; true when it acknowledged a vote.
    fn read(&mut self, line: &str) -> bool {
        let number = |prefix| line.strip_prefix(prefix).and_then(|n: &str| n.trim().parse().ok());
        if let Some(index) = number(ACK_ENTRY) {
            self.entry = index;
        }
        number(ACK_VOTE).map(|index| self.vote = index).is_some()
    }
}

#[test]
fn acknowledged_entries_and_votes_survive_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut acked = Acknowledged::default();
    for round in 0..ROUNDS {
        // Kill at a different point each round, half of them right after an entry.
        let kill_after_votes = 2 + 4 * round;
        let kill_after_entry = round % 2 == 1;
        let mut child = spawn_child(&dir, &[], None);
        let stdout = child.stdout.take().expect("child stdout");
        let mut votes_this_round = 0;
        let mut killed = false;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("read child stdout");
            votes_this_round += usize::from(acked.read(&line));
            let entry_due = kill_after_entry && line.starts_with(ACK_ENTRY);
            if votes_this_round == kill_after_votes && (entry_due || !kill_after_entry) {
                child.kill().expect("kill -9 the child");
                killed = true;
                break;
            }
        }
        // Whatever the child printed before it died was acknowledged too.
        for line in lines.map_while(Result::ok) {
            acked.read(&line);
        }
        child.wait().expect("reap the child");
        assert!(killed, "round {round}: the child stopped by itself");
        let last_acked = acked.entry;

        let (mut log, _state_machine) = open_stores(&dir).expect("reopen after kill -9");
        runtime.block_on(async {
            let entries = log.try_get_log_entries(1..=last_acked).await.expect("read log");
            assert_eq!(entries.len() as u64, last_acked, "round {round}: entries lost");
            for (stored, index) in entries.iter().zip(1..) {
                assert_eq!(stored, &entry(index), "round {round}: entry {index} differs");
            }
            let stored = log.read_vote().await.expect("read vote").expect("a vote");
            // The child may have saved one more, unacknowledged, vote before it died.
            assert!(
                stored == vote(acked.vote) || stored == vote(acked.vote + 1),
                "round {round}: vote {stored:?} after acknowledging vote {}",
                acked.vote
            );
        });
    }
}

/// Each `acknowledged` write of the child is preceded, since the previous one, by a completed
/// sync of what it acknowledges: a segment in `<dir>/log/` for an entry, `<dir>/db` for a
/// vote. Skipped, with a notice, where strace is absent or cannot trace.
#[test]
fn every_acknowledgement_follows_an_fsync_of_what_it_acknowledges() {
    const ACKS: u64 = 6;
    if Process::new("strace").arg("-V").output().is_err() {
        eprintln!("NOTICE: strace is not installed; the fsync proof is skipped");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().canonicalize().expect("canonical tempdir").join("node");
    let trace = tmp.path().join("trace.txt");
    let trace_arg = trace.display().to_string();
    let strace = ["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,write", "-o"];
    let wrapper: Vec<&str> = strace.iter().copied().chain([trace_arg.as_str()]).collect();
    let output = spawn_child(&dir, &wrapper, Some(ACKS)).wait_with_output().expect("run child");
    let printed = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() && !printed.contains(ACK) {
        eprintln!(
            "NOTICE: strace cannot trace here ({}); the fsync proof is skipped",
            output.status
        );
        return;
    }
    assert!(output.status.success(), "the traced child failed: {printed}");
    let trace = std::fs::read_to_string(&trace).expect("read the trace");
    let files = SyncedFiles {
        db: format!("{}>", dir.join("db").display()),
        log: format!("<{}/", dir.join("log").display()),
    };
    // Each round acknowledges an entry and a vote.
    assert_eq!(acks_after_fsync(&trace, &files), 2 * ACKS, "trace:\n{trace}");
}

/// How strace (`-y`) names the files whose sync makes an acknowledgement true.
struct SyncedFiles {
    /// The end of sled's data file's name: `<dir>/db>`.
    db: String,
    /// The start of a log segment's name: `<<dir>/log/`.
    log: String,
}

/// What a completed sync made durable.
#[derive(Clone, Copy, PartialEq)]
enum Synced {
    Db,
    Log,
    Other,
}

/// Counts the `acknowledged` writes in an `strace -f -y` trace, asserting that each entry
/// follows a completed sync of a log segment, and each vote one of `db`, made after the
/// previous acknowledgement (or after the child said it had opened the store).
fn acks_after_fsync(trace: &str, files: &SyncedFiles) -> u64 {
    let kind = |call: &str| {
        if call.contains(&files.db) {
            Synced::Db
        } else if call.contains(&files.log) {
            Synced::Log
        } else {
            Synced::Other
        }
    };
    let mut unfinished: HashMap<&str, Synced> = HashMap::new();
    let (mut db_synced, mut log_synced) = (false, false);
    let mut acks = 0;
    for line in trace.lines() {
        let Some((pid, call)) = line.split_once(' ') else { continue };
        let call = call.trim_start();
        let succeeded = call.trim_end().ends_with("= 0");
        let completed = if call.starts_with("fsync(") || call.starts_with("fdatasync(") {
            if call.contains("<unfinished ...>") {
                unfinished.insert(pid, kind(call));
                None
            } else {
                succeeded.then(|| kind(call))
            }
        } else if call.starts_with("<... fsync resumed>")
            || call.starts_with("<... fdatasync resumed>")
        {
            unfinished.remove(pid).filter(|_| succeeded)
        } else {
            None
        };
        match completed {
            Some(Synced::Db) => db_synced = true,
            Some(Synced::Log) => log_synced = true,
            _ => {}
        }
        if call.starts_with("write(1") && call.contains(&format!("\"{OPENED}\\n\"")) {
            (db_synced, log_synced) = (false, false);
        } else if call.starts_with("write(1") && call.contains(ACK) {
            let (synced, what) = if call.contains(ACK_ENTRY) {
                (log_synced, "a log segment")
            } else {
                (db_synced, "the db")
            };
            assert!(
                synced,
                "acknowledgement {} written before an fsync of {what}: {line}",
                acks + 1
            );
            (db_synced, log_synced) = (false, false);
            acks += 1;
        }
    }
    acks
}
