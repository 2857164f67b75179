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

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use tracing::{error, info, warn};

use super::report_file::ReportFile;
use qlm_engine::{Command, Engine, Event, Handle, Name, QueueExit, ReleaseCause};
use qlm_license::Timestamp;
use qlm_raft::{AppliedEntry, ApplyObserver, StateMachineStore};
use qlm_report::{EventKind, ReportLine};

/// The report log's size before rotation by default, in MiB.
pub const DEFAULT_REPORT_MAX_MB: u64 = 64;

/// Most entries the writer formats before it writes them out.
const MAX_BATCH: usize = 4096;

/// How long the writer lets entries gather after the first of a batch. While it waits it is
/// not parked on the channel, so the apply path's sends wake no thread: at full load that is
/// one wake-up per interval instead of one per entry (measured: 14 µs per apply without it).
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

/// One applied entry's events, with what the writer cannot learn later.
struct ObservedEntry {
    index: u64,
    /// The engine's time after the entry (the leader's stamp, never going back).
    time: Timestamp,
    /// The version a `Checkout` command asked for (for its denial line).
    requested_version: Option<String>,
    events: Vec<Event>,
    /// Seats in use after the entry of each feature the events touch.
    in_use: BTreeMap<Name, u64>,
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

/// A checkout as the writer remembers it, for the line that ends it.
#[derive(Clone, Debug)]
struct Held {
    version: String,
    user: Name,
    host: Name,
    since: u64,
}

/// Who holds what, as far as the report needs: sessions' user and host, checkouts' version,
/// holder and grant time. Entries go when their session ends or their checkout ends.
#[derive(Default)]
struct Holders {
    sessions: HashMap<Name, (Name, Name)>,
    checkouts: HashMap<Handle, Held>,
}

impl Holders {
    /// What the engine holds now.
    fn of(engine: &Engine) -> Holders {
        let mut holders = Holders::default();
        for (id, _) in engine.live_sessions() {
            if let Some(s) = engine.session(id) {
                holders.sessions.insert(s.session_id, (s.user, s.host));
            }
        }
        for c in engine.checkouts() {
            holders.sessions.insert(c.session_id.clone(), (c.user.clone(), c.host.clone()));
            let held = Held {
                version: c.version.to_string(),
                user: c.user,
                host: c.host,
                since: c.since.0,
            };
            holders.checkouts.insert(c.handle, held);
        }
        holders
    }

    fn user_host(&self, session: &Name) -> (Option<String>, Option<String>) {
        match self.sessions.get(session) {
            Some((user, host)) => (Some(user.to_string()), Some(host.to_string())),
            None => (None, None),
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
    holders: Holders,
    /// Entries whose lines could not be written (first, last, when), to report as a gap once
    /// writing works.
    lost: Option<(u64, u64, Timestamp)>,
    /// The last stamp formatted, and its text: the lines of one entry, and entries within one
    /// millisecond, share it (formatting was a good part of the writer's time).
    time_text: (u64, String),
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
            let gap = self.gap_line(from, to, time);
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

    /// A line with the fields every line has.
    fn line(&mut self, event: EventKind, index: u64, time: Timestamp) -> ReportLine {
        if self.time_text.0 != time.0 || self.time_text.1.is_empty() {
            self.time_text = (time.0, time.to_string());
        }
        ReportLine {
            time: self.time_text.1.clone(),
            unix_ms: time.0,
            event,
            index,
            node: self.node,
            ..ReportLine::default()
        }
    }

    fn gap_line(&mut self, from: u64, to: u64, time: Timestamp) -> ReportLine {
        ReportLine { from: Some(from), to: Some(to), ..self.line(EventKind::Gap, to, time) }
    }

    fn snapshot_lines(&mut self, index: u64, holders: Holders, now: Timestamp) -> Vec<ReportLine> {
        self.holders = holders;
        let from = self.last_seen.max(self.written_through) + 1;
        self.last_seen = self.last_seen.max(index);
        if index < from {
            return Vec::new();
        }
        info!(node = self.node, from, to = index, "report log: replica replaced by a snapshot");
        vec![self.gap_line(from, index, now)]
    }

    fn entry_lines(&mut self, entry: &ObservedEntry) -> Vec<ReportLine> {
        self.last_seen = self.last_seen.max(entry.index);
        let mut lines = Vec::new();
        let mut ended = Vec::new();
        for event in &entry.events {
            let mut line = self.line(EventKind::Other, entry.index, entry.time);
            match event {
                Event::SessionOpened { session_id, user, host } => {
                    self.holders.sessions.insert(session_id.clone(), (user.clone(), host.clone()));
                    continue;
                }
                Event::SessionEnded { session_id, .. } => {
                    ended.push(session_id.clone());
                    continue;
                }
                Event::CheckedOut {
                    handle,
                    session_id,
                    user,
                    host,
                    feature,
                    version,
                    count,
                    shared,
                    from_queue,
                } => {
                    let held = Held {
                        version: version.to_string(),
                        user: user.clone(),
                        host: host.clone(),
                        since: entry.time.0,
                    };
                    self.holders.checkouts.insert(*handle, held);
                    line = ReportLine {
                        event: EventKind::Checkout,
                        feature: Some(feature.to_string()),
                        version: Some(version.to_string()),
                        count: Some(*count),
                        user: Some(user.to_string()),
                        host: Some(host.to_string()),
                        session: Some(session_id.to_string()),
                        handle: Some(handle.0),
                        shared: *shared,
                        from_queue: *from_queue,
                        ..line
                    };
                }
                Event::Queued { handle, session_id, feature, position } => {
                    let (user, host) = self.holders.user_host(session_id);
                    line = ReportLine {
                        event: EventKind::Queued,
                        feature: Some(feature.to_string()),
                        user,
                        host,
                        session: Some(session_id.to_string()),
                        handle: Some(handle.0),
                        position: Some(*position),
                        ..line
                    };
                }
                Event::Denied { session_id, user, host, feature, count, reason } => {
                    line = ReportLine {
                        event: EventKind::Denial,
                        feature: Some(feature.to_string()),
                        version: entry.requested_version.clone(),
                        count: Some(*count),
                        user: Some(user.to_string()),
                        host: Some(host.to_string()),
                        session: Some(session_id.to_string()),
                        reason: Some(reason.as_str().to_owned()),
                        ..line
                    };
                }
                Event::CheckedIn { handle, session_id, feature, count, .. } => {
                    line = self.end_line(line, EventKind::Checkin, *handle, session_id, feature);
                    line.count = Some(*count);
                }
                Event::Released { handle, session_id, feature, count, cause } => {
                    let (kind, reason) = match cause {
                        ReleaseCause::Expired => (EventKind::Expiry, None),
                        ReleaseCause::Removed => (EventKind::Removal, None),
                        ReleaseCause::BorrowEnded => (EventKind::BorrowEnd, None),
                        ReleaseCause::SessionClosed => (EventKind::Checkin, Some("SESSION_CLOSED")),
                    };
                    line = self.end_line(line, kind, *handle, session_id, feature);
                    line.count = Some(*count);
                    line.reason = reason.map(str::to_owned);
                }
                Event::LeftQueue { handle, session_id, feature, exit } => {
                    let (user, host) = self.holders.user_host(session_id);
                    let reason = match exit {
                        QueueExit::Cancelled => "CANCELLED",
                        QueueExit::SessionGone => "SESSION_GONE",
                        QueueExit::Denied(reason) => reason.as_str(),
                    };
                    line = ReportLine {
                        event: EventKind::Dequeued,
                        feature: Some(feature.to_string()),
                        user,
                        host,
                        session: Some(session_id.to_string()),
                        handle: Some(handle.0),
                        reason: Some(reason.to_owned()),
                        ..line
                    };
                }
                Event::LingerEnded { feature, seats, .. } => {
                    line = ReportLine {
                        event: EventKind::LingerEnd,
                        feature: Some(feature.to_string()),
                        count: Some(*seats),
                        ..line
                    };
                }
                Event::LicensesLoaded { serving, retired } => {
                    line = ReportLine {
                        event: EventKind::Reload,
                        serving: Some(*serving),
                        retired: Some(*retired),
                        ..line
                    };
                }
            }
            line.in_use = line.feature.as_deref().and_then(|f| entry.in_use.get(f).copied());
            line.seq = lines.len() as u32;
            lines.push(line);
        }
        for session in ended {
            self.holders.sessions.remove(&session);
        }
        if entry.index <= self.written_through {
            // Written before this restart: the holders above are learnt, the lines are not
            // written twice.
            return Vec::new();
        }
        lines
    }

    /// The line of a checkout's end, with its holder and grant time from [`Holders`].
    fn end_line(
        &mut self,
        line: ReportLine,
        kind: EventKind,
        handle: Handle,
        session: &Name,
        feature: &Name,
    ) -> ReportLine {
        let held = self.holders.checkouts.remove(&handle);
        let (user, host) = match &held {
            Some(held) => (Some(held.user.to_string()), Some(held.host.to_string())),
            None => self.holders.user_host(session),
        };
        ReportLine {
            event: kind,
            feature: Some(feature.to_string()),
            version: held.as_ref().map(|h| h.version.clone()),
            user,
            host,
            session: Some(session.to_string()),
            handle: Some(handle.0),
            since_ms: held.map(|h| h.since),
            ..line
        }
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
            holders,
            lost: None,
            time_text: (0, String::new()),
        };
        if last.is_none() && snapshot_index > 0 {
            // A new file on a replica that starts from a snapshot: the entries before it are
            // not applied again here.
            let gap = writer.gap_line(1, snapshot_index, now);
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
