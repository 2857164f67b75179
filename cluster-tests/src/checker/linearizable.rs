//! The model check: each feature's history checked for linearizability against a counting
//! semaphore with sessions, TTL expiry and answers that never came, beside the domain rules
//! of [`super`]. The search itself is in `search` (Wing & Gong with Lowe's memo, as
//! Porcupine does it); this module turns a [`History`] into its operations.
//!
//! **The model.** One feature: a pool of `seats` (from [`History::pools`]) and the grants
//! held, each with its seats and session, plus the sessions that have ended. A checkout
//! granted takes seats when its session is alive and they are free; a checkin answered Done
//! frees a grant that was held; NOT_FOUND on a checkin says the grant was not held, and on a
//! heartbeat or a checkout that the session had ended; an acknowledged heartbeat says it was
//! alive; a close (answered, or NOT_FOUND: a retried close) ends the session and frees its
//! seats. A handle names one grant: the same handle granted twice is not linearizable.
//!
//! **Expiry** is an optional operation of each session, *expire*: it ends an alive session
//! and frees its seats, at any time from `L` on, or never. `L` is the latest invocation of an
//! acknowledged renewal (the open, a heartbeat) plus the TTL, less the tolerance: the server
//! applied that renewal after its invocation, so the session lived at least a TTL after it,
//! and renewals the history does not show (the client library's own heartbeats, answers
//! lost) only move the real expiry later. No upper bound is assumed: a session outlives its
//! TTL while there is no leader.
//!
//! **Answers that never came** ([`Answer::Unknown`]) are optional operations with no return:
//! a checkout may have taken seats (under a handle the client never learned, so no checkin
//! names it; the client library checks such a seat in by itself, unrecorded, so it may also
//! have come back at any time after), a checkin freed its grant, a close ended its session, at any time after the
//! invocation, or never. Refused answers, unknown heartbeats, opens and abandons change
//! nothing the model holds and are left out.
//!
//! **Denials.** [`Answer::Denied`] does not say why. A checkout that does not wait is denied
//! ALL_IN_USE when the seats are not free, or when a queue is ahead of it; so a denial says
//! "the pool lacked the seats" only when no waiting checkout of the feature could have been
//! queued during it (none overlapping it in time; one whose answer never came is queued
//! forever), and only for a pool with no other reason to deny (a plain count line with no
//! options file: [`ModelOptions::denials_mean_full`]). Other denials are left out.
//!
//! **Soundness** (no false alarm). Every rule above is something a correct server does in
//! every run: each operation's effect happens at one instant between its invocation and its
//! answer, expiry never before `L`, lost answers may or may not have acted. Each feature is
//! checked apart (its checkouts, their checkins, and the session events of the sessions that
//! checked it out): a linearization of the whole history restricted to one feature is one of
//! that feature's operations, so a feature that fails has no whole linearization either.
//! Assumed of the pool: no DUP_GROUP sharing, no linger, no borrowing, no reload mid-run (the
//! chaos license's plain count lines).
//!
//! **Bounds.** The search is exponential in the worst case: it stops after
//! [`ModelOptions::max_steps`] or [`ModelOptions::time_bound`] per feature, and the outcome is
//! then [`Verdict::BoundHit`], information and not a violation.

mod search;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::history::{Answer, Call, History, Millis, Op};
use search::{Bounds, Found, Kind, ModelOp, Problem, State};

/// How the model check reads a history and how long it may search.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// Most search steps per feature.
    pub max_steps: u64,
    /// Most time per feature.
    pub time_bound: Duration,
    /// Whether a denial of a checkout that does not wait, with no queue possible, means the
    /// pool lacked the seats: true for plain count lines and no options file (RESERVE, MAX,
    /// EXCLUDE deny for other reasons).
    pub denials_mean_full: bool,
    /// Slack on the expiry bound (millisecond rounding).
    pub tolerance_ms: Millis,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            max_steps: 10_000_000,
            time_bound: Duration::from_secs(10),
            denials_mean_full: true,
            tolerance_ms: 2,
        }
    }
}

/// What the model check concluded about one feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No linearization: why, in a sentence.
    NotLinearizable(String),
    /// The search stopped at its bound: nothing is known.
    BoundHit,
    /// Not checked (no pool size for the feature).
    Skipped(String),
}

/// One feature's model check.
#[derive(Clone, Debug)]
pub struct FeatureCheck {
    pub feature: String,
    /// Operations of the model (optional ones and expiries included).
    pub ops: usize,
    pub steps: u64,
    pub elapsed: Duration,
    pub verdict: Verdict,
}

/// Model-checks every feature the history checks out (see the module documentation).
pub fn check(history: &History, options: &ModelOptions) -> Vec<FeatureCheck> {
    let features: BTreeSet<&str> = history
        .ops
        .iter()
        .filter_map(|op| match &op.call {
            Call::Checkout { feature, .. } => Some(feature.as_str()),
            _ => None,
        })
        .collect();
    let twice = granted_twice(history);
    features.into_iter().map(|f| check_feature(history, f, twice.get(f), options)).collect()
}

fn check_feature(
    history: &History,
    feature: &str,
    granted_twice: Option<&String>,
    options: &ModelOptions,
) -> FeatureCheck {
    let started = Instant::now();
    let mut check = FeatureCheck {
        feature: feature.to_owned(),
        ops: 0,
        steps: 0,
        elapsed: Duration::ZERO,
        verdict: Verdict::Linearizable,
    };
    let Some(&seats) = history.pools.get(feature) else {
        check.verdict = Verdict::Skipped("the history has no pool size for it".into());
        return check;
    };
    if let Some(detail) = granted_twice {
        check.verdict = Verdict::NotLinearizable(detail.clone());
        return check;
    }
    let problem = Builder::new(history, feature, options).build(seats);
    check.ops = problem.ops.len();
    let bounds = Bounds { steps: options.max_steps, time: options.time_bound };
    let searched = search::search(&problem, &bounds);
    check.steps = searched.steps;
    check.verdict = match searched.found {
        Found::Linearizable => Verdict::Linearizable,
        Found::BoundHit => Verdict::BoundHit,
        Found::Not { placed, stuck, state } => {
            Verdict::NotLinearizable(explain(history, &problem, placed, stuck, &state))
        }
    };
    check.elapsed = started.elapsed();
    check
}

/// Per feature, the first handle acknowledged by two grants, described: a handle names one
/// grant, so no linearization has both.
fn granted_twice(history: &History) -> HashMap<&str, String> {
    let mut first: HashMap<u64, &Op> = HashMap::new();
    let mut found = HashMap::new();
    for op in &history.ops {
        let (Call::Checkout { feature, .. }, Answer::Granted { handle, .. }) =
            (&op.call, &op.answer)
        else {
            continue;
        };
        if let Some(earlier) = first.insert(*handle, op) {
            found.entry(feature.as_str()).or_insert_with(|| {
                format!("handle {handle} granted twice: {} and {}", describe(earlier), describe(op))
            });
        }
    }
    found
}

fn describe(op: &Op) -> String {
    format!(
        "client {} session {} {:?} [{}..{}] -> {:?}",
        op.client,
        op.session.as_deref().unwrap_or("-"),
        op.call,
        op.invoked,
        op.completed,
        op.answer
    )
}

/// The failure, in a sentence: the operation no order could place, and the seats held then.
fn explain(
    history: &History,
    problem: &Problem,
    placed: usize,
    stuck: usize,
    state: &State,
) -> String {
    let required = problem.ops.iter().filter(|op| op.ret.is_some()).count();
    let op = &problem.ops[stuck];
    let what = op.origin.map_or_else(|| "an expiry".to_owned(), |i| describe(&history.ops[i]));
    let handles: Vec<String> = state
        .held
        .iter()
        .map(|&slot| {
            match problem
                .ops
                .iter()
                .find(|o| matches!(o.kind, Kind::Take { slot: s, .. } if s == slot))
            {
                Some(ModelOp { origin: Some(i), .. }) => match history.ops[*i].answer {
                    Answer::Granted { handle, .. } => format!("handle {handle}"),
                    _ => format!("a lost checkout invoked at {} ms", history.ops[*i].invoked),
                },
                _ => format!("slot {slot}"),
            }
        })
        .collect();
    format!(
        "no order of the operations explains {what} ({:?} in the model): the furthest order placed \
         {placed} of {required} answered operations before it, with {} of {} seats held by [{}]",
        op.kind,
        state.used,
        problem.seats,
        handles.join(", ")
    )
}

/// Turns one feature's part of a history into the model's operations.
struct Builder<'a> {
    history: &'a History,
    feature: &'a str,
    options: &'a ModelOptions,
    /// The sessions that checked the feature out, by id: their index.
    sessions: HashMap<&'a str, u32>,
    /// Handles granted for the feature: their slot.
    slot_of: HashMap<u64, u32>,
    /// Handles granted for other features (their checkins are not this feature's).
    elsewhere: BTreeSet<u64>,
    /// Sessions whose checkins of handles never granted are checked here: those whose first
    /// checkout was of this feature.
    orphans_here: BTreeSet<&'a str>,
    problem: Problem,
}

impl<'a> Builder<'a> {
    fn new(history: &'a History, feature: &'a str, options: &'a ModelOptions) -> Builder<'a> {
        let mut builder = Builder {
            history,
            feature,
            options,
            sessions: HashMap::new(),
            slot_of: HashMap::new(),
            elsewhere: BTreeSet::new(),
            orphans_here: BTreeSet::new(),
            problem: Problem { ops: Vec::new(), seats: 0, slots: Vec::new(), sessions: 0 },
        };
        let mut first_feature: HashMap<&str, &str> = HashMap::new();
        for op in &history.ops {
            let (Call::Checkout { feature: f, .. }, Some(session)) = (&op.call, &op.session) else {
                continue;
            };
            first_feature.entry(session.as_str()).or_insert(f.as_str());
            if let Answer::Granted { handle, .. } = op.answer
                && f != feature
            {
                builder.elsewhere.insert(handle);
            }
            if f == feature {
                let next = builder.sessions.len() as u32;
                builder.sessions.entry(session.as_str()).or_insert(next);
            }
        }
        builder.orphans_here =
            first_feature.into_iter().filter(|(_, f)| *f == feature).map(|(s, _)| s).collect();
        builder
    }

    fn build(mut self, seats: u32) -> Problem {
        self.problem.seats = seats;
        self.problem.sessions = self.sessions.len();
        // Slots first: a checkin may be listed before its grant when their times tie.
        for op in &self.history.ops {
            if let (Call::Checkout { feature, .. }, Answer::Granted { handle, count }) =
                (&op.call, &op.answer)
                && feature == self.feature
                && let Some(&session) = op.session.as_deref().and_then(|s| self.sessions.get(s))
            {
                self.slot_of.insert(*handle, self.problem.slots.len() as u32);
                self.problem.slots.push((session, *count));
            }
        }
        let waits = self.waiting_windows();
        for (i, op) in self.history.ops.iter().enumerate() {
            if let Some(&session) = op.session.as_deref().and_then(|s| self.sessions.get(s)) {
                self.add(i, op, session, &waits);
            }
        }
        self.add_expiries();
        // Call order: the memo key counts on it.
        self.problem.ops.sort_by_key(|op| op.call);
        self.problem
    }

    /// When a checkout of the feature may have waited in its queue: (from, until).
    fn waiting_windows(&self) -> Vec<(Millis, Millis)> {
        self.history
            .ops
            .iter()
            .filter(|op| matches!(&op.call, Call::Checkout { feature, wait: true, .. } if feature == self.feature))
            .map(|op| (op.invoked, if op.answer.is_unknown() { Millis::MAX } else { op.completed }))
            .collect()
    }

    fn push(&mut self, kind: Kind, session: u32, op: &Op, origin: usize) {
        let ret = (!op.answer.is_unknown()).then_some(op.completed);
        self.problem.ops.push(ModelOp {
            kind,
            session,
            call: op.invoked,
            ret,
            origin: Some(origin),
        });
    }

    /// The model operation of history operation `i`, if it has one.
    fn add(&mut self, i: usize, op: &Op, session: u32, waits: &[(Millis, Millis)]) {
        let unknown = op.answer.is_unknown();
        match (&op.call, &op.answer) {
            (Call::Checkout { .. }, Answer::NotFound(_))
            | (Call::Heartbeat, Answer::NotFound(_)) => self.push(Kind::Gone, session, op, i),
            (Call::Heartbeat, Answer::Done) => self.push(Kind::Alive, session, op, i),
            (Call::CloseSession, Answer::Done | Answer::NotFound(_) | Answer::Unknown(_)) => {
                self.push(Kind::Close, session, op, i)
            }
            (Call::Checkout { feature, count, wait }, answer) if feature == self.feature => {
                let kind = match answer {
                    Answer::Granted { handle, count } => {
                        Kind::Take { slot: self.slot_of[handle], count: *count }
                    }
                    Answer::Unknown(_) => {
                        self.problem.slots.push((session, (*count).max(1)));
                        let slot = self.problem.slots.len() as u32 - 1;
                        // The client library resends a checkout it gave up on and checks in
                        // whatever it got, unrecorded: the seats may come back at any time.
                        self.push(Kind::Release { slot: Some(slot) }, session, op, i);
                        Kind::Take { slot, count: (*count).max(1) }
                    }
                    Answer::Denied
                        if !wait
                            && self.options.denials_mean_full
                            && !waits.iter().any(|&(from, until)| {
                                from <= op.completed && until >= op.invoked
                            }) =>
                    {
                        Kind::Full { count: (*count).max(1) }
                    }
                    _ => return,
                };
                self.push(kind, session, op, i);
            }
            (Call::Checkin { handle }, answer) => {
                let slot = self.slot_of.get(handle).copied();
                let orphan = slot.is_none() && !self.elsewhere.contains(handle);
                let here = op.session.as_deref().is_some_and(|s| self.orphans_here.contains(s));
                // The grant's session: the checkin's optional effect ends with it.
                let owner = slot.map_or(session, |s| self.problem.slots[s as usize].0);
                match (slot, answer) {
                    (Some(_), Answer::Done | Answer::Unknown(_)) => {
                        self.push(Kind::Release { slot }, owner, op, i)
                    }
                    (Some(slot), Answer::NotFound(_)) => {
                        self.push(Kind::NotHeld { slot }, owner, op, i)
                    }
                    (None, Answer::Done) if orphan && here && !unknown => {
                        self.push(Kind::Release { slot: None }, session, op, i)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Each session's optional expiry, from its earliest legal time on.
    fn add_expiries(&mut self) {
        let mut earliest: HashMap<&str, Millis> = HashMap::new();
        let mut ttl: HashMap<&str, Millis> = HashMap::new();
        for op in &self.history.ops {
            let Some(session) = op.session.as_deref() else { continue };
            match (&op.call, &op.answer) {
                (Call::OpenSession { .. }, Answer::Opened { ttl_ms, .. }) => {
                    ttl.insert(session, *ttl_ms);
                    let e = earliest.entry(session).or_default();
                    *e = (*e).max(op.invoked);
                }
                (Call::Heartbeat, Answer::Done) => {
                    let e = earliest.entry(session).or_default();
                    *e = (*e).max(op.invoked);
                }
                _ => {}
            }
        }
        for (&id, &session) in &self.sessions {
            // With no TTL known, the session may have expired at any time.
            let call = match (earliest.get(id), ttl.get(id)) {
                (Some(&renewed), Some(&ttl)) => {
                    (renewed + ttl).saturating_sub(self.options.tolerance_ms)
                }
                _ => 0,
            };
            self.problem.ops.push(ModelOp {
                kind: Kind::Expire,
                session,
                call,
                ret: None,
                origin: None,
            });
        }
    }
}

#[cfg(test)]
mod tests;
