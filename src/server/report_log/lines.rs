//! The report log's pure half: applied entries in, report lines out. It keeps who holds what
//! (`Holders`), since a checkin, expiry or removal names only a session or a handle, and the
//! line of its end gives the user, host, version and grant time of the checkout it ends.

use std::collections::{BTreeMap, HashMap};

use qlm_engine::{Engine, Event, Handle, Name, QueueExit, ReleaseCause};
use qlm_license::Timestamp;
use qlm_report::{EventKind, ReportLine};

/// One applied entry's events, with what the writer cannot learn later.
pub(super) struct ObservedEntry {
    pub(super) index: u64,
    /// The engine's time after the entry (the leader's stamp, never going back).
    pub(super) time: Timestamp,
    /// The version a `Checkout` command asked for (for its denial line).
    pub(super) requested_version: Option<String>,
    pub(super) events: Vec<Event>,
    /// Seats in use after the entry of each feature the events touch.
    pub(super) in_use: BTreeMap<Name, u64>,
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
pub(super) struct Holders {
    sessions: HashMap<Name, (Name, Name)>,
    checkouts: HashMap<Handle, Held>,
}

impl Holders {
    /// What the engine holds now.
    pub(super) fn of(engine: &Engine) -> Holders {
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

/// Makes the lines of one node's report log.
pub(super) struct Lines {
    node: u64,
    /// Who holds what, learnt from the entries so far.
    pub(super) holders: Holders,
    /// The last stamp formatted, and its text: the lines of one entry, and entries within one
    /// millisecond, share it.
    time_text: (u64, String),
}

impl Lines {
    pub(super) fn new(node: u64, holders: Holders) -> Lines {
        Lines { node, holders, time_text: (0, String::new()) }
    }

    /// A line with the fields every line has.
    pub(super) fn line(&mut self, event: EventKind, index: u64, time: Timestamp) -> ReportLine {
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

    pub(super) fn gap_line(&mut self, from: u64, to: u64, time: Timestamp) -> ReportLine {
        ReportLine { from: Some(from), to: Some(to), ..self.line(EventKind::Gap, to, time) }
    }

    /// The lines of one applied entry, learning from it who holds what.
    pub(super) fn entry(&mut self, entry: &ObservedEntry) -> Vec<ReportLine> {
        let mut lines = Vec::new();
        let mut ended = Vec::new();
        for event in &entry.events {
            let base = self.line(EventKind::Other, entry.index, entry.time);
            let mut line = match event {
                Event::SessionOpened { session_id, user, host } => {
                    self.holders.sessions.insert(session_id.clone(), (user.clone(), host.clone()));
                    continue;
                }
                Event::SessionEnded { session_id, .. } => {
                    ended.push(session_id.clone());
                    continue;
                }
                event => self.event_line(event, entry, base),
            };
            line.in_use = line.feature.as_deref().and_then(|f| entry.in_use.get(f).copied());
            line.seq = lines.len() as u32;
            lines.push(line);
        }
        for session in ended {
            self.holders.sessions.remove(&session);
        }
        lines
    }

    /// The line of one event that makes a line (every event but a session's start and end,
    /// which only teach the holders).
    fn event_line(&mut self, event: &Event, entry: &ObservedEntry, line: ReportLine) -> ReportLine {
        match event {
            Event::SessionOpened { .. } | Event::SessionEnded { .. } => line,
            Event::CheckedOut { handle, user, host, version, .. } => {
                let held = Held {
                    version: version.to_string(),
                    user: user.clone(),
                    host: host.clone(),
                    since: entry.time.0,
                };
                self.holders.checkouts.insert(*handle, held);
                checkout_line(event, line)
            }
            Event::Queued { handle, session_id, feature, position } => {
                let (user, host) = self.holders.user_host(session_id);
                ReportLine {
                    event: EventKind::Queued,
                    feature: Some(feature.to_string()),
                    user,
                    host,
                    session: Some(session_id.to_string()),
                    handle: Some(handle.0),
                    position: Some(*position),
                    ..line
                }
            }
            Event::Denied { session_id, user, host, feature, count, reason } => ReportLine {
                event: EventKind::Denial,
                feature: Some(feature.to_string()),
                version: entry.requested_version.clone(),
                count: Some(*count),
                user: Some(user.to_string()),
                host: Some(host.to_string()),
                session: Some(session_id.to_string()),
                reason: Some(reason.as_str().to_owned()),
                ..line
            },
            Event::CheckedIn { handle, session_id, feature, count, .. } => {
                let line = self.end_line(line, EventKind::Checkin, *handle, session_id, feature);
                ReportLine { count: Some(*count), ..line }
            }
            Event::Released { handle, session_id, feature, count, cause } => {
                let (kind, reason) = match cause {
                    ReleaseCause::Expired => (EventKind::Expiry, None),
                    ReleaseCause::Removed => (EventKind::Removal, None),
                    ReleaseCause::BorrowEnded => (EventKind::BorrowEnd, None),
                    ReleaseCause::SessionClosed => (EventKind::Checkin, Some("SESSION_CLOSED")),
                };
                let line = self.end_line(line, kind, *handle, session_id, feature);
                ReportLine { count: Some(*count), reason: reason.map(str::to_owned), ..line }
            }
            Event::LeftQueue { handle, session_id, feature, exit } => {
                let (user, host) = self.holders.user_host(session_id);
                let reason = match exit {
                    QueueExit::Cancelled => "CANCELLED",
                    QueueExit::SessionGone => "SESSION_GONE",
                    QueueExit::Denied(reason) => reason.as_str(),
                };
                ReportLine {
                    event: EventKind::Dequeued,
                    feature: Some(feature.to_string()),
                    user,
                    host,
                    session: Some(session_id.to_string()),
                    handle: Some(handle.0),
                    reason: Some(reason.to_owned()),
                    ..line
                }
            }
            Event::LingerEnded { feature, seats, .. } => ReportLine {
                event: EventKind::LingerEnd,
                feature: Some(feature.to_string()),
                count: Some(*seats),
                ..line
            },
            Event::LicensesLoaded { serving, retired } => ReportLine {
                event: EventKind::Reload,
                serving: Some(*serving),
                retired: Some(*retired),
                ..line
            },
        }
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

/// The line of a grant.
fn checkout_line(event: &Event, line: ReportLine) -> ReportLine {
    let Event::CheckedOut {
        handle,
        session_id,
        user,
        host,
        feature,
        version,
        count,
        shared,
        from_queue,
    } = event
    else {
        return line;
    };
    ReportLine {
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
    }
}
