//! What the usage report log costs: checkout+checkin cycles applied through the real state
//! machine store (sled files, in batches as openraft hands them over), once without the
//! report log and once with it; then how long the writer takes to put every line on disk.
//! `cargo bench --bench report_log` runs it; docs/BENCHMARKS.md records the figures.

use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};
use qlm_engine::{Command, Handle};
use qlm_license::{DupGroup, Expiry, HostId, Policy, Pool, PoolId, SeatUnit, Timestamp, Version};
use qlm_raft::{Entry, LogEntry, LogId, open_stores};
use qlm_server::report_log::ReportLog;

/// Checkout+checkin cycles timed (two applies each).
const CYCLES: u64 = 200_000;
/// Entries per apply call (openraft applies what was committed together).
const BATCH: usize = 64;
const FEATURES: u64 = 100;
const SESSIONS: u64 = 10_000;
const T0: u64 = 1_795_478_400_000;

fn entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(LogEntry {
            commands: vec![command],
            stamp: Timestamp(T0 + index),
        }),
    }
}

fn history(cycles: u64) -> Vec<Entry> {
    let pools = (0..FEATURES)
        .map(|f| Pool {
            id: PoolId(format!("pool-{f}")),
            feature: format!("feature-{f}"),
            vendor: "bench".into(),
            version: Version::ZERO,
            seats: 1_000,
            unit: SeatUnit::Seats,
            start: None,
            expires: Expiry::Permanent,
            issued: None,
            hostid: HostId::Any,
            dup_group: DupGroup::None,
            customer: None,
            notes: None,
            max_borrow_hours: 0,
        })
        .collect();
    let mut entries = vec![entry(1, Command::LoadLicenses { pools, policy: Policy::default() })];
    for s in 0..SESSIONS {
        let command = Command::OpenSession {
            session_id: format!("session-{s:08}"),
            secret: "s3cret".into(),
            user: format!("user-{}", s % 1_000),
            host: format!("host-{}", s % 300),
            pid: s as u32,
            display: ":0".into(),
            ttl_ms: 30_000,
        };
        entries.push(entry(entries.len() as u64 + 1, command));
    }
    for c in 0..cycles {
        let session_id = format!("session-{:08}", c % SESSIONS);
        let out = Command::Checkout {
            session_id: session_id.clone(),
            request_id: format!("o{c}"),
            feature: format!("feature-{}", c % FEATURES),
            version: Version::ZERO,
            count: 1,
            wait: false,
            borrow_until: None,
        };
        entries.push(entry(entries.len() as u64 + 1, out));
        let back =
            Command::Checkin { session_id, request_id: format!("i{c}"), handle: Handle(c + 1) };
        entries.push(entry(entries.len() as u64 + 1, back));
    }
    entries
}

async fn run(with_report: bool, cycles: u64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_log, mut store) = open_stores(dir.path().join("data")).expect("stores");
    let path = dir.path().join("report/usage.jsonl");
    let report = if with_report {
        Some(ReportLog::start(1, path.clone(), 64 << 20, &mut store).await.expect("report log"))
    } else {
        None
    };
    let mut entries = history(cycles);
    let setup: Vec<Entry> = entries.drain(..=SESSIONS as usize).collect();
    store.apply(setup).await.expect("applied");
    let applies = entries.len();
    let mut elapsed = Duration::ZERO;
    while !entries.is_empty() {
        let batch: Vec<Entry> = entries.drain(..BATCH.min(entries.len())).collect();
        let start = Instant::now();
        store.apply(batch).await.expect("applied");
        elapsed += start.elapsed();
    }
    let per_sec = applies as f64 / elapsed.as_secs_f64();
    let name = if with_report { "apply, report log on" } else { "apply, report log off" };
    println!(
        "{name:<24} applies={applies} time={:.3}s applies/s={per_sec:.0} ns/apply={:.0}",
        elapsed.as_secs_f64(),
        1e9 / per_sec
    );
    if let Some(report) = report {
        let start = Instant::now();
        report.stop().await;
        let drain = start.elapsed();
        let bytes: u64 = std::fs::read_dir(path.parent().expect("dir"))
            .expect("report dir")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        let lines = applies as u64 + 1;
        println!(
            "{:<24} lines={lines} bytes/line={} writer still busy after the last apply={:.3}s",
            "report log",
            bytes / lines,
            drain.as_secs_f64()
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // `cargo bench` passes --bench; `cargo test --all-targets` runs a small smoke test.
    let cycles = if std::env::args().any(|a| a == "--bench") { CYCLES } else { CYCLES / 100 };
    runtime.block_on(run(false, cycles));
    runtime.block_on(run(true, cycles));
}
