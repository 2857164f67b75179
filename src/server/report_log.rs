//! The usage report log writer: one JSON line per checkout, checkin, denial, expiry, removal,
//! reload, queue move and linger end, written by every node from the entries it applies.
//!
//! Two halves, so the apply path never waits for a disk:
//!
//! - `ReportObserver`, an [`ApplyObserver`] on the state machine. It runs under the
//!   replica's write lock, so it only copies the entry's events (names are shared `Arc<str>`)
//!   with the seats in use of the features they touch, and hands them to a channel.
//! - A writer thread that turns events into [`ReportLine`]s and appends them to the file,
//!   one write per batch, rotating by size ([`super::report_file`]).
//!
//! Events name a session or a handle; the user, host, version and grant time of a checkin,
//! expiry or removal come from `Holders`, which the writer keeps from earlier events (the
//! session may be gone from the engine by then: an expiry ends it in the same entry). It is
//! seeded from the replica at start, and from the snapshot's engine when a snapshot replaces
//! the replica (read by the observer under the lock, since later entries may already have
//! changed the replica when the writer gets there).
//!
//! No duplicates across restarts: on start the engine is rebuilt from its last snapshot and
//! the log after it is applied again; the writer reads the last index in its file and writes
//! nothing for entries at or below it (it still learns holders from them). Where this node
//! cannot write an entry's events, it says so with a `gap` line (from, to): when the replica
//! is replaced by a snapshot from the leader, when a new file starts on a node whose replica
//! already starts after a snapshot, and when a write failed. The log is written after apply
//! and is not part of Raft's durability: a machine crash may lose the last lines the kernel
//! had not written (see docs/REPORT_LOG.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use tracing::{error, info, warn};

mod lines;

use lines::{Holders, Lines, ObservedEntry};

use super::report_file::ReportFile;
use qlm_engine::{Command, Engine, Event, Name};
use qlm_license::Timestamp;
use qlm_raft::{AppliedEntry, ApplyObserver, StateMachineStore};
use qlm_report::ReportLine;

/// The report log's size before rotation by default, in MiB.
pub const DEFAULT_REPORT_MAX_MB: u64 = 64;

/// Most entries the writer formats before it writes them out.
const MAX_BATCH: usize = 4096;

/// How long the writer lets entries gather after the first of a batch. While it waits it is
/// not parked on the channel, so the apply path's sends wake no thread: at full load that is
/// one wake-up per interval instead of one per entry (docs/BENCHMARKS.md, the report log).
const GATHER_FOR: std::time::Duration = std::time::Duration::from_millis(10);

/// What the observer hands the writer.
enum Message {
    Entry(Box<ObservedEntry>),
    /// The replica was replaced by a snapshot as of `index`: who holds what in it, and its
    /// time.
    Snapshot {
        index: u64,
        holders: Holders,
        now: Timestamp,
    },
    Stop,
}

/// The observer half: copies events into the channel.
struct ReportObserver {
    tx: Sender<Message>,
}

impl ApplyObserver for ReportObserver {
    fn applied(&self, entry: AppliedEntry<'_>) {
        let events = &entry.applied.events;
        if events.is_empty() {
            return;
        }
        let in_use = events
            .iter()
            .filter_map(event_feature)
            .map(|f| (f.clone(), entry.engine.seats_in_use(f)))
            .collect();
        let requested_version = match entry.command {
            Command::Checkout { version, .. } => Some(version.to_string()),
            _ => None,
        };
        let observed = ObservedEntry {
            index: entry.index,
            time: entry.engine.now(),
            requested_version,
            events: events.clone(),
            in_use,
        };
        // The writer only goes away at shutdown, after Raft; nothing to do then.
        let _ = self.tx.send(Message::Entry(Box::new(observed)));
    }

    fn replica_replaced(&self, index: u64, engine: &Engine) {
        // Read here, under the lock: by the time the writer runs, later entries may have
        // ended checkouts that the snapshot holds.
        let holders = Holders::of(engine);
        let _ = self.tx.send(Message::Snapshot { index, holders, now: engine.now() });
    }
}

fn event_feature(event: &Event) -> Option<&Name> {
    match event {
        Event::CheckedOut { feature, .. }
        | Event::Queued { feature, .. }
        | Event::Denied { feature, .. }
        | Event::CheckedIn { feature, .. }
        | Event::Released { feature, .. }
        | Event::LeftQueue { feature, .. }
        | Event::LingerEnded { feature, .. } => Some(feature),
        Event::SessionOpened { .. } | Event::SessionEnded { .. } | Event::LicensesLoaded { .. } => {
            None
        }
    }
}

/// The writer half, on its own thread.
struct Writer {
    node: u64,
    file: ReportFile,
    /// The last index already in the file: entries at or below it are not written again.
    written_through: u64,
    /// The last index seen (written or not).
    last_seen: u64,
    /// Entries whose lines could not be written (first, last, when), to report as a gap once
    /// writing works.
    lost: Option<(u64, u64, Timestamp)>,
    /// Turns entries into lines, knowing who holds what.
    lines: Lines,
}

impl Writer {
    fn run(mut self, rx: Receiver<Message>) {
        let mut stop = false;
        while !stop {
            let Ok(first) = rx.recv() else { break };
            if !matches!(first, Message::Stop) {
                std::thread::sleep(GATHER_FOR);
            }
            let mut out = Vec::new();
            let mut batch = vec![first];
            batch.extend(rx.try_iter().take(MAX_BATCH));
            let (mut low, mut high, mut time) = (u64::MAX, 0, None);
            for message in batch {
                let lines = match message {
                    Message::Entry(entry) => self.entry_lines(&entry),
                    Message::Snapshot { index, holders, now } => {
                        self.snapshot_lines(index, holders, now)
                    }
                    Message::Stop => {
                        stop = true;
                        Vec::new()
                    }
                };
                for line in lines {
                    (low, high) = (low.min(line.index), high.max(line.index));
                    time = time.or(Some(Timestamp(line.unix_ms)));
                    push_line(&mut out, &line);
                }
            }
            if let Some(time) = time {
                self.write(out, (low, high, time));
            }
        }
        if let Err(e) = self.file.sync() {
            warn!(node = self.node, error = %e, "report log: fsync at stop failed");
        }
    }

    /// Appends a batch of lines, whose entries span `batch` (first index, last index, time).
    fn write(&mut self, lines: Vec<u8>, batch: (u64, u64, Timestamp)) {
        let mut bytes = Vec::new();
        if let Some((from, to, time)) = self.lost {
            let gap = self.lines.gap_line(from, to, time);
            push_line(&mut bytes, &gap);
        }
        bytes.extend(lines);
        match self.file.append(&bytes) {
            Ok(()) => {
                if self.lost.take().is_some() {
                    info!(node = self.node, "report log: writing again");
                }
                if let Err(e) = self.file.rotate_if_full() {
                    warn!(node = self.node, error = %e, "report log: cannot rotate; writing on");
                }
            }
            Err(e) => {
                if self.lost.is_none() {
                    error!(node = self.node, error = %e, "report log: cannot write; lines are lost until it works again");
                }
                let last = batch.1;
                self.lost = Some(self.lost.map_or(batch, |(from, _, when)| (from, last, when)));
            }
        }
    }

    /// The lines of an applied entry: none for an entry already written before a restart
    /// (its holders are still learnt).
    fn entry_lines(&mut self, entry: &ObservedEntry) -> Vec<ReportLine> {
        self.last_seen = self.last_seen.max(entry.index);
        let lines = self.lines.entry(entry);
        if entry.index <= self.written_through { Vec::new() } else { lines }
    }

    fn snapshot_lines(&mut self, index: u64, holders: Holders, now: Timestamp) -> Vec<ReportLine> {
        self.lines.holders = holders;
        let from = self.last_seen.max(self.written_through) + 1;
        self.last_seen = self.last_seen.max(index);
        if index < from {
            return Vec::new();
        }
        info!(node = self.node, from, to = index, "report log: replica replaced by a snapshot");
        vec![self.lines.gap_line(from, index, now)]
    }
}

fn push_line(out: &mut Vec<u8>, line: &ReportLine) {
    // A struct of strings and numbers always serializes.
    if serde_json::to_writer(&mut *out, line).is_ok() {
        out.push(b'\n');
    }
}

/// The running report log of a node.
pub struct ReportLog {
    tx: Sender<Message>,
    thread: std::thread::JoinHandle<()>,
    pub path: PathBuf,
}

impl ReportLog {
    /// Opens the report file, seeds the writer from the replica (as restored from its
    /// snapshot) and registers the observer on the state machine. Call before Raft takes the
    /// store. An error names the path and what failed.
    pub async fn start(
        node: u64,
        path: PathBuf,
        max_bytes: u64,
        store: &mut StateMachineStore,
    ) -> Result<ReportLog, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("--report-log: cannot create the directory {}: {e}", dir.display())
            })?;
        }
        let (file, last) = ReportFile::open(&path, max_bytes)
            .map_err(|e| format!("--report-log: cannot open {}: {e}", path.display()))?;
        let replica = store.replica();
        let (holders, snapshot_index, now) = {
            let state = replica.read().await;
            let index = state.last_applied().map_or(0, |id| id.index);
            (Holders::of(state.engine()), index, state.engine().now())
        };
        let mut writer = Writer {
            node,
            file,
            written_through: last.unwrap_or(0),
            last_seen: snapshot_index,
            lost: None,
            lines: Lines::new(node, holders),
        };
        if last.is_none() && snapshot_index > 0 {
            // A new file on a replica that starts from a snapshot: the entries before it are
            // not applied again here.
            let gap = writer.lines.gap_line(1, snapshot_index, now);
            writer.written_through = snapshot_index;
            let mut bytes = Vec::new();
            push_line(&mut bytes, &gap);
            writer
                .file
                .append(&bytes)
                .map_err(|e| format!("--report-log: cannot write {}: {e}", path.display()))?;
        }
        info!(node, path = %path.display(), resume_after = writer.written_through, "report log");
        let (tx, rx) = channel();
        store.observe(Arc::new(ReportObserver { tx: tx.clone() }));
        let thread = std::thread::Builder::new()
            .name("report-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("--report-log: cannot start its writer: {e}"))?;
        Ok(ReportLog { tx, thread, path })
    }

    /// Writes what is queued, fsyncs and stops the writer. Call after Raft has shut down.
    pub async fn stop(self) {
        let _ = self.tx.send(Message::Stop);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
