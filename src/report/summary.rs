//! The usage summary `qlm report` prints, as FlexLM's report tools give it: per feature the
//! peak of seats in use (and when), the seat-hours used, the checkouts and the denials by
//! reason; per user and feature the checkouts, denials and hours used.
//!
//! The rules, which the tests pin down:
//!
//! - Lines are taken in log order (`index`, then `seq`); a line seen twice (the same
//!   `(index, seq)`, from two nodes' files or a file given twice) counts once.
//! - The period is `[from, to)`; without `--from` it starts at the first line, without `--to`
//!   it ends at the last line (inclusive). Events (checkouts, denials, expiries, removals) are
//!   counted when their time is in the period.
//! - Seats in use follow each line's `in_use` (the feature's seats in use after the entry, as
//!   the server counts them: lingering seats included, shared dup_group seats once). The value
//!   in force at `from` counts from `from`; the value in force at `to` counts until `to`. The
//!   peak is the highest value in force during the period, with the first time it was reached
//!   (`from` itself when it was already in force then).
//! - A checkout's hours run from its grant to its end (checkin, expiry, removal, borrow end),
//!   clipped to the period; one still held at the end of the period counts until then.
//!   `seat_hours` weighs those hours by the checkout's count; a checkout that shares seats
//!   (dup_group) counts fully for its user, so per-user seat-hours may add up to more than the
//!   feature's.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::line::{EventKind, ReportLine};
use qlm_license::Timestamp;

/// Milliseconds in an hour.
const MILLIS_PER_HOUR: f64 = 3_600_000.0;

/// What to summarize.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SummaryOptions {
    /// Start of the period (inclusive); the first line's time when absent.
    pub from: Option<Timestamp>,
    /// End of the period (exclusive); the last line's time when absent.
    pub to: Option<Timestamp>,
    /// Only this feature.
    pub feature: Option<String>,
}

/// The usage summary of a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// The period, RFC 3339 UTC and Unix milliseconds.
    pub from: String,
    pub to: String,
    pub from_ms: u64,
    pub to_ms: u64,
    /// Distinct lines read (after dropping duplicates), all times.
    pub lines: usize,
    pub features: Vec<FeatureUsage>,
    pub users: Vec<UserUsage>,
    /// Ranges of log entries that a file's node did not write (see the `gap` event).
    pub gaps: Vec<Gap>,
}

/// One feature's use in the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FeatureUsage {
    pub feature: String,
    /// Most seats in use at once, and the first time that many were.
    pub peak_in_use: u64,
    pub peak_at: String,
    pub peak_at_ms: u64,
    /// Seats in use integrated over the period, in hours.
    pub seat_hours: f64,
    pub checkouts: u64,
    pub denials: u64,
    /// Denials by reason (`ALL_IN_USE`: ...).
    pub denials_by_reason: BTreeMap<String, u64>,
    pub expiries: u64,
    pub removals: u64,
}

/// One user's use of one feature in the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UserUsage {
    pub user: String,
    pub feature: String,
    pub checkouts: u64,
    pub denials: u64,
    /// Time the user held checkouts of the feature (each checkout counted), in hours.
    pub hours: f64,
    /// The same, weighed by each checkout's count.
    pub seat_hours: f64,
}

/// Entries a node did not write.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Gap {
    pub node: u64,
    pub from_index: u64,
    pub to_index: u64,
    pub time: String,
}

/// The files a list of paths names: files as given, directories expanded to their report
/// files (`*.jsonl` and rotated `*.jsonl.N`), oldest first. An unreadable path is an error
/// that names it.
pub fn report_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut found: Vec<(u32, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(age) = rotation_number(&name) {
                found.push((age, entry.path()));
            }
        }
        // Rotated files are older the higher their number; the live file (0) is the newest.
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        files.extend(found.into_iter().map(|(_, p)| p));
    }
    Ok(files)
}

/// 0 for `x.jsonl`, N for `x.jsonl.N`, None for other names.
fn rotation_number(name: &str) -> Option<u32> {
    if name.ends_with(".jsonl") {
        return Some(0);
    }
    let (stem, number) = name.rsplit_once('.')?;
    if stem.ends_with(".jsonl") { number.parse().ok() } else { None }
}

/// Reads report lines from files. A file that cannot be read is an error naming it; a line
/// that is not a report line is passed to `warn` as `file:line: why` and skipped.
pub fn read_lines(
    files: &[PathBuf],
    warn: &mut dyn FnMut(String),
) -> Result<Vec<ReportLine>, String> {
    let mut lines = Vec::new();
    for file in files {
        let text = read_text(file)?;
        for (number, text) in text.lines().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ReportLine>(text) {
                Ok(line) => lines.push(line),
                Err(e) => {
                    warn(format!("{}:{}: not a report line: {e}", file.display(), number + 1))
                }
            }
        }
    }
    Ok(lines)
}

fn read_text(file: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    // A torn last line (a crash mid-write) is not UTF-8 at worst: read what is.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A checkout whose end has not been read yet.
struct OpenCheckout {
    user: String,
    feature: String,
    count: u32,
    since: u64,
}

#[derive(Default)]
struct FeatureTally {
    usage: FeatureUsage,
    /// Seats in use in force since `since` (clipped to the period).
    in_use: u64,
    since: u64,
    seat_ms: u128,
}

#[derive(Default)]
struct UserTally {
    checkouts: u64,
    denials: u64,
    held_ms: u128,
    seat_ms: u128,
}

/// The period summarized: its bounds, and `to` as given (an event counts when before it).
#[derive(Clone, Copy)]
struct Period {
    start: u64,
    end: u64,
    to: Option<Timestamp>,
}

impl Period {
    /// The period of `options` over `events` (sorted): absent bounds are the first and last
    /// event's times.
    fn of(events: &[ReportLine], options: &SummaryOptions) -> Period {
        let start = options.from.map(|t| t.0).or(events.first().map(|l| l.unix_ms)).unwrap_or(0);
        let end = options.to.map(|t| t.0).or(events.last().map(|l| l.unix_ms)).unwrap_or(start);
        Period { start, end: end.max(start), to: options.to }
    }

    /// Whether an event at `t` is counted.
    fn counts(&self, t: u64) -> bool {
        t >= self.start && self.to.is_none_or(|to| t < to.0)
    }

    /// How many milliseconds of `since..until` fall in the period.
    fn clipped(&self, since: u64, until: u64) -> u64 {
        until.clamp(self.start, self.end).saturating_sub(since.clamp(self.start, self.end))
    }
}

/// Turns report lines into the summary of a period (rules in the module documentation).
pub fn summarize(lines: Vec<ReportLine>, options: &SummaryOptions) -> Summary {
    let (gaps, events) = gaps_and_events(lines);
    let period = Period::of(&events, options);
    let mut tallies = Tallies::default();
    for line in &events {
        tallies.add(line, period, options);
    }
    tallies.into_summary(period, events.len(), gaps)
}

/// The gaps, sorted and without repeats, and the other events in log order, each once.
fn gaps_and_events(lines: Vec<ReportLine>) -> (Vec<Gap>, Vec<ReportLine>) {
    let mut gaps = Vec::new();
    let mut events = Vec::new();
    for line in lines {
        match line.event {
            EventKind::Gap => gaps.push(Gap {
                node: line.node,
                from_index: line.from.unwrap_or(line.index),
                to_index: line.to.unwrap_or(line.index),
                time: line.time,
            }),
            EventKind::Other => {}
            _ => events.push(line),
        }
    }
    gaps.sort();
    gaps.dedup();
    events.sort_by_key(|l| (l.index, l.seq));
    events.dedup_by_key(|l| (l.index, l.seq));
    (gaps, events)
}

fn unknown() -> String {
    "(unknown)".to_owned()
}

impl FeatureTally {
    fn new(feature: &str, period: Period) -> FeatureTally {
        FeatureTally {
            usage: FeatureUsage {
                feature: feature.to_owned(),
                peak_at_ms: period.start,
                ..Default::default()
            },
            since: period.start,
            ..Default::default()
        }
    }

    /// The feature's seats in use became `in_use` at `t`.
    fn note_in_use(&mut self, t: u64, in_use: u64, period: Period) {
        let now = t.clamp(period.start, period.end);
        self.seat_ms += u128::from(self.in_use) * u128::from(now - self.since);
        self.since = now;
        self.in_use = in_use;
        if t < period.start {
            // The value in force when the period starts, so far.
            self.usage.peak_in_use = in_use;
            self.usage.peak_at_ms = period.start;
        } else if t <= period.end && in_use > self.usage.peak_in_use {
            self.usage.peak_in_use = in_use;
            self.usage.peak_at_ms = t;
        }
    }
}

/// What the events read so far add up to.
#[derive(Default)]
struct Tallies {
    features: BTreeMap<String, FeatureTally>,
    users: BTreeMap<(String, String), UserTally>,
    open: HashMap<u64, OpenCheckout>,
}

impl Tallies {
    /// Counts one event (in log order).
    fn add(&mut self, line: &ReportLine, period: Period, options: &SummaryOptions) {
        let Some(feature) = line.feature.clone() else { return };
        if options.feature.as_ref().is_some_and(|f| *f != feature) {
            return;
        }
        let t = line.unix_ms;
        let tally = self
            .features
            .entry(feature.clone())
            .or_insert_with(|| FeatureTally::new(&feature, period));
        if let Some(in_use) = line.in_use {
            tally.note_in_use(t, in_use, period);
        }
        let counted = period.counts(t);
        let user_key =
            |user: Option<&String>| (user.cloned().unwrap_or_else(unknown), feature.clone());
        match line.event {
            EventKind::Checkout => {
                if let Some(handle) = line.handle {
                    let checkout = OpenCheckout {
                        user: line.user.clone().unwrap_or_else(unknown),
                        feature: feature.clone(),
                        count: line.count.unwrap_or(1),
                        since: t,
                    };
                    self.open.insert(handle, checkout);
                }
                if counted {
                    tally.usage.checkouts += 1;
                    self.users.entry(user_key(line.user.as_ref())).or_default().checkouts += 1;
                }
            }
            EventKind::Denial if counted => {
                tally.usage.denials += 1;
                let reason = line.reason.clone().unwrap_or_else(unknown);
                *tally.usage.denials_by_reason.entry(reason).or_default() += 1;
                self.users.entry(user_key(line.user.as_ref())).or_default().denials += 1;
            }
            kind if kind.ends_checkout() => {
                if counted && kind == EventKind::Expiry {
                    tally.usage.expiries += 1;
                }
                if counted && kind == EventKind::Removal {
                    tally.usage.removals += 1;
                }
                let held = line.handle.and_then(|h| self.open.remove(&h));
                let since = line.since_ms.or(held.as_ref().map(|c| c.since));
                let Some(since) = since else { return };
                let user = line.user.clone().or(held.as_ref().map(|c| c.user.clone()));
                let count = line.count.or(held.as_ref().map(|c| c.count)).unwrap_or(1);
                let ms = u128::from(period.clipped(since, t));
                let user =
                    self.users.entry((user.unwrap_or_else(unknown), feature.clone())).or_default();
                user.held_ms += ms;
                user.seat_ms += ms * u128::from(count);
            }
            _ => {}
        }
    }

    /// The summary: checkouts still open count until the end of the period.
    fn into_summary(self, period: Period, lines: usize, gaps: Vec<Gap>) -> Summary {
        let Tallies { features, mut users, open } = self;
        let (start, end) = (period.start, period.end);
        for checkout in open.into_values() {
            let ms = u128::from(period.clipped(checkout.since, end));
            let user = users.entry((checkout.user, checkout.feature)).or_default();
            user.held_ms += ms;
            user.seat_ms += ms * u128::from(checkout.count);
        }
        Summary {
            from: Timestamp(start).to_string(),
            to: Timestamp(end).to_string(),
            from_ms: start,
            to_ms: end,
            lines,
            features: features
                .into_values()
                .map(|mut tally| {
                    tally.seat_ms += u128::from(tally.in_use) * u128::from(end - tally.since);
                    tally.usage.seat_hours = hours(tally.seat_ms);
                    tally.usage.peak_at = Timestamp(tally.usage.peak_at_ms).to_string();
                    tally.usage
                })
                .collect(),
            users: users
                .into_iter()
                .map(|((user, feature), tally)| UserUsage {
                    user,
                    feature,
                    checkouts: tally.checkouts,
                    denials: tally.denials,
                    hours: hours(tally.held_ms),
                    seat_hours: hours(tally.seat_ms),
                })
                .collect(),
            gaps,
        }
    }
}

/// Milliseconds as hours, rounded to the 1/10000 (a third of a second) so that printed sums
/// do not show float noise.
fn hours(ms: u128) -> f64 {
    (ms as f64 / MILLIS_PER_HOUR * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests;
