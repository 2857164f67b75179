//! The checker: the rules a license server's history must keep, whatever faults it went
//! through. Give it a [`History`] (operations, faults, the nodes' final states) and it returns
//! a [`Report`] whose `violations` must be empty.
//!
//! The rules, and how an answer that never came (an [`Answer::Unknown`]) is read:
//!
//! 1. **No over-grant.** At no instant do the seats *certainly held* of a feature exceed its
//!    count. A grant is certainly held from its acknowledgement until the earliest moment it
//!    could have been released: the invocation of its checkin or of its session's close
//!    (whatever they were answered), the session's earliest legal expiry (the last
//!    acknowledged renewal's invocation plus the TTL), the first time the client was told the
//!    session is gone, or the end of the history. A checkout whose answer was lost is only
//!    *maybe* held (until its session could have expired): since a history where it was never
//!    granted is possible, it cannot prove an over-grant, and it is reported as
//!    `maybe_held_peak` for information.
//! 2. **No lost checkout.** An acknowledged grant that was never checked in (nor its session
//!    closed) must be on every node's final state when its session is proven alive after the
//!    final states were taken (an acknowledged heartbeat invoked after them): a session's
//!    seats only go with a checkin, a close or its expiry. Mid-run, a checkin answered
//!    NOT_FOUND for such a grant, with no earlier checkin of it and its session proven alive
//!    afterwards, is a lost checkout too.
//! 3. **No early expiry.** When a client is told its session is gone (NOT_FOUND on a
//!    heartbeat or a checkout, without having closed it), that answer must come no earlier
//!    than TTL after the invocation of the last acknowledged renewal (open or heartbeat): the
//!    renewal happened after its invocation, and the session lived at least TTL after it.
//! 4. **Convergence.** Every node's final state has the same applied index and the same state
//!    digest.
//! 5. **Recovery.** Once the faults stopped, a checkout is granted within a bound.
//! 6. **No phantom seat.** A seat on a node's final state belongs to an acknowledged grant,
//!    unless its session had a checkout whose answer never came (or is not known to the
//!    history): a client told "denied", or whose wait ended without a grant, holds nothing.
//!    Such a seat would stay taken, unknown to its holder, for as long as the session lives.
//!
//! 7. **Linearizable.** Each feature's operations have a linearization against a counting
//!    semaphore with sessions, TTL expiry and lost answers: the model check of
//!    [`linearizable`], which catches what no rule above states (a checkin answered Done for
//!    a handle never granted, a denial while the pool was free, a seat granted while its
//!    holder's later checkin proves it held). A search that hits its bound is reported in
//!    [`Report::linearizability`], not as a violation.
//!
//! Time is the history's own (milliseconds); a small tolerance absorbs the rounding of
//! milliseconds on both sides.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{Answer, Call, History, Millis, Op};

pub mod linearizable;

use linearizable::{FeatureCheck, ModelOptions, Verdict};

/// What the checker is lenient about.
#[derive(Clone, Debug)]
pub struct CheckerOptions {
    /// Longest the first grant after the faults stopped may take.
    pub recovery_bound_ms: Millis,
    /// Slack on time comparisons (millisecond rounding on both sides).
    pub tolerance_ms: Millis,
    /// The model check (rule 7), or none to skip it.
    pub model: Option<ModelOptions>,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        CheckerOptions {
            recovery_bound_ms: 15_000,
            tolerance_ms: 2,
            model: Some(ModelOptions::default()),
        }
    }
}

/// A broken rule, with what shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    OverGrant {
        feature: String,
        at: Millis,
        held: u32,
        seats: u32,
        handles: Vec<u64>,
    },
    LostCheckout {
        handle: u64,
        session: String,
        detail: String,
    },
    EarlyExpiry {
        session: String,
        told_gone_at: Millis,
        earliest_legal: Millis,
    },
    PhantomSeat {
        handle: u64,
        session: String,
        detail: String,
    },
    Diverged {
        detail: String,
    },
    NoRecovery {
        healed_at: Millis,
        bound_ms: Millis,
        first_grant_at: Option<Millis>,
    },
    /// Rule 7: no linearization of the feature's operations; `detail` names the operation no
    /// order could place.
    NotLinearizable {
        feature: String,
        detail: String,
    },
}

/// What the checker found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Operations in the history.
    pub ops: usize,
    /// Acknowledged grants.
    pub grants: usize,
    /// Operations whose answer never came.
    pub unknown: usize,
    /// Faults injected.
    pub faults: usize,
    /// Acknowledged grants checked against the final states (rule 2).
    pub checked_at_end: usize,
    /// Per feature, the most seats certainly held at once.
    pub peak_held: BTreeMap<String, u32>,
    /// Per feature, the most seats certainly or maybe held at once (information only).
    pub maybe_held_peak: BTreeMap<String, u32>,
    /// Milliseconds from the end of the faults to the next grant.
    pub recovery_ms: Option<Millis>,
    /// Per feature, the model check's verdict, size and time (rule 7).
    pub linearizability: Vec<FeatureCheck>,
}

impl Report {
    pub fn lost(&self) -> usize {
        self.count(|v| matches!(v, Violation::LostCheckout { .. }))
    }
    pub fn over_grants(&self) -> usize {
        self.count(|v| matches!(v, Violation::OverGrant { .. }))
    }
    pub fn early_expiries(&self) -> usize {
        self.count(|v| matches!(v, Violation::EarlyExpiry { .. }))
    }
    /// The model check in a few words: `feature: verdict (model ops, steps, ms)` each.
    pub fn linearizability_summary(&self) -> String {
        let parts: Vec<String> = self
            .linearizability
            .iter()
            .map(|c| {
                let verdict = match &c.verdict {
                    Verdict::Linearizable => "linearizable",
                    Verdict::NotLinearizable(_) => "NOT linearizable",
                    Verdict::BoundHit => "unknown (bound hit)",
                    Verdict::Skipped(_) => "skipped",
                };
                format!(
                    "{}: {verdict} ({} ops, {} steps, {} ms)",
                    c.feature,
                    c.ops,
                    c.steps,
                    c.elapsed.as_millis()
                )
            })
            .collect();
        parts.join("; ")
    }
    fn count(&self, f: impl Fn(&Violation) -> bool) -> usize {
        self.violations.iter().filter(|v| f(v)).count()
    }
}

/// What the history says about one session.
#[derive(Debug, Default)]
struct SessionFacts {
    ttl_ms: Millis,
    /// Invocation times of acknowledged renewals (the open and every acknowledged heartbeat).
    renewals: Vec<Millis>,
    /// First invocation of CloseSession.
    closed_at: Option<Millis>,
    /// Completion times of answers that said the session is gone.
    told_gone: Vec<Millis>,
}

impl SessionFacts {
    fn last_renewal(&self) -> Option<Millis> {
        self.renewals.iter().copied().max()
    }
    fn earliest_expiry(&self) -> Option<Millis> {
        self.last_renewal().map(|r| r + self.ttl_ms)
    }
    fn proven_alive_after(&self, at: Millis) -> bool {
        self.renewals.iter().any(|&r| r >= at)
    }
}

/// One acknowledged grant.
struct Grant<'a> {
    op: &'a Op,
    handle: u64,
    count: u32,
    feature: &'a str,
    session: &'a str,
}

/// Checks `history` against the rules of the module documentation.
pub fn check(history: &History, options: &CheckerOptions) -> Report {
    let mut report = Report {
        ops: history.ops.len(),
        unknown: history.ops.iter().filter(|op| op.answer.is_unknown()).count(),
        faults: history.faults.len(),
        ..Report::default()
    };
    let sessions = session_facts(&history.ops);
    let grants: Vec<Grant> = history
        .ops
        .iter()
        .filter_map(|op| match (&op.call, &op.answer, &op.session) {
            (Call::Checkout { feature, .. }, Answer::Granted { handle, count }, Some(session)) => {
                Some(Grant { op, handle: *handle, count: *count, feature, session })
            }
            _ => None,
        })
        .collect();
    report.grants = grants.len();
    let mut checkins: HashMap<u64, Vec<&Op>> = HashMap::new();
    for op in &history.ops {
        if let Call::Checkin { handle } = op.call {
            checkins.entry(handle).or_default().push(op);
        }
    }
    let end = history.ops.iter().map(|op| op.completed).max().unwrap_or(0);

    over_grants(history, &grants, &sessions, &checkins, end, &mut report);
    lost_checkouts(history, &grants, &sessions, &checkins, &mut report);
    early_expiries(&sessions, options, &mut report);
    phantom_seats(history, &grants, &sessions, &mut report);
    convergence(history, &mut report);
    if let Some(model) = &options.model {
        report.linearizability = linearizable::check(history, model);
        for check in &report.linearizability {
            if let Verdict::NotLinearizable(detail) = &check.verdict {
                report.violations.push(Violation::NotLinearizable {
                    feature: check.feature.clone(),
                    detail: detail.clone(),
                });
            }
        }
    }
    if let Some(healed) = history.healed_at {
        let first = history.next_grant_after(healed);
        report.recovery_ms = first.map(|at| at - healed);
        if first.is_none_or(|at| at - healed > options.recovery_bound_ms) {
            report.violations.push(Violation::NoRecovery {
                healed_at: healed,
                bound_ms: options.recovery_bound_ms,
                first_grant_at: first,
            });
        }
    }
    report
}

/// Rule 6: every seat held at the end was granted to a client that knows it, or may have been.
fn phantom_seats(
    history: &History,
    grants: &[Grant],
    sessions: &HashMap<&str, SessionFacts>,
    report: &mut Report,
) {
    let acknowledged: HashSet<u64> = grants.iter().map(|g| g.handle).collect();
    let uncertain: HashSet<&str> = history
        .ops
        .iter()
        .filter(|op| matches!(op.call, Call::Checkout { .. }) && op.answer.is_unknown())
        .filter_map(|op| op.session.as_deref())
        .collect();
    let mut reported = HashSet::new();
    for state in &history.final_states {
        for held in &state.checkouts {
            if acknowledged.contains(&held.handle)
                || uncertain.contains(held.session.as_str())
                || !sessions.contains_key(held.session.as_str())
                || !reported.insert(held.handle)
            {
                continue;
            }
            report.violations.push(Violation::PhantomSeat {
                handle: held.handle,
                session: held.session.clone(),
                detail: format!(
                    "node {} holds {} seat(s) of {} for the session at applied index {}, but no \
                     checkout of that session was granted it, and every one was answered",
                    state.node, held.count, held.feature, state.applied_index
                ),
            });
        }
    }
}

fn session_facts(ops: &[Op]) -> HashMap<&str, SessionFacts> {
    let mut sessions: HashMap<&str, SessionFacts> = HashMap::new();
    for op in ops {
        let Some(session) = op.session.as_deref() else { continue };
        let facts = sessions.entry(session).or_default();
        match (&op.call, &op.answer) {
            (Call::OpenSession { .. }, Answer::Opened { ttl_ms, .. }) => {
                facts.ttl_ms = *ttl_ms;
                facts.renewals.push(op.invoked);
            }
            (Call::Heartbeat, Answer::Done) => facts.renewals.push(op.invoked),
            (Call::Heartbeat | Call::Checkout { .. }, Answer::NotFound(_)) => {
                facts.told_gone.push(op.completed)
            }
            (Call::CloseSession, _) => {
                facts.closed_at = Some(facts.closed_at.map_or(op.invoked, |c| c.min(op.invoked)))
            }
            _ => {}
        }
    }
    sessions
}

/// The earliest moment grant `g` may have stopped being held (rule 1).
fn held_until(
    g: &Grant,
    sessions: &HashMap<&str, SessionFacts>,
    checkins: &HashMap<u64, Vec<&Op>>,
    end: Millis,
) -> Millis {
    let mut until = end;
    if let Some(first) = checkins.get(&g.handle).and_then(|ops| ops.iter().map(|o| o.invoked).min())
    {
        until = until.min(first);
    }
    if let Some(facts) = sessions.get(g.session) {
        for bound in
            [facts.closed_at, facts.earliest_expiry(), facts.told_gone.iter().min().copied()]
                .into_iter()
                .flatten()
        {
            until = until.min(bound);
        }
    }
    until
}

fn over_grants(
    history: &History,
    grants: &[Grant],
    sessions: &HashMap<&str, SessionFacts>,
    checkins: &HashMap<u64, Vec<&Op>>,
    end: Millis,
    report: &mut Report,
) {
    // Per feature: (time, +seats or -seats, handle); releases sort before grants at one instant.
    let mut certain: BTreeMap<&str, Vec<(Millis, i64, u64)>> = BTreeMap::new();
    let mut maybe: BTreeMap<&str, Vec<(Millis, i64, u64)>> = BTreeMap::new();
    for g in grants {
        let until = held_until(g, sessions, checkins, end);
        if until > g.op.completed {
            let events = certain.entry(g.feature).or_default();
            events.push((g.op.completed, i64::from(g.count), g.handle));
            events.push((until, -i64::from(g.count), g.handle));
        }
        let events = maybe.entry(g.feature).or_default();
        events.push((g.op.invoked, i64::from(g.count), g.handle));
        events.push((until.max(g.op.invoked), -i64::from(g.count), g.handle));
    }
    for op in history.ops.iter().filter(|op| op.answer.is_unknown()) {
        let (Call::Checkout { feature, count, .. }, Some(session)) = (&op.call, &op.session) else {
            continue;
        };
        let until = sessions.get(session.as_str()).and_then(SessionFacts::earliest_expiry);
        let until = until.unwrap_or(end).max(op.completed);
        let events = maybe.entry(feature.as_str()).or_default();
        events.push((op.invoked, i64::from((*count).max(1)), 0));
        events.push((until, -i64::from((*count).max(1)), 0));
    }
    for (feature, mut events) in maybe {
        events.sort();
        let (mut held, mut peak) = (0i64, 0i64);
        for (_, delta, _) in events {
            held += delta;
            peak = peak.max(held);
        }
        report.maybe_held_peak.insert(feature.to_owned(), peak as u32);
    }
    for (feature, mut events) in certain {
        events.sort();
        let seats = history.pools.get(feature).copied().unwrap_or(u32::MAX);
        let mut held: BTreeMap<u64, i64> = BTreeMap::new();
        let mut peak = 0u32;
        let mut reported = false;
        for (at, delta, handle) in events {
            *held.entry(handle).or_default() += delta;
            held.retain(|_, seats| *seats != 0);
            let now: i64 = held.values().sum();
            peak = peak.max(now as u32);
            if now as u32 > seats && !reported {
                reported = true;
                report.violations.push(Violation::OverGrant {
                    feature: feature.to_owned(),
                    at,
                    held: now as u32,
                    seats,
                    handles: held.keys().copied().collect(),
                });
            }
        }
        report.peak_held.insert(feature.to_owned(), peak);
    }
}

fn lost_checkouts(
    history: &History,
    grants: &[Grant],
    sessions: &HashMap<&str, SessionFacts>,
    checkins: &HashMap<u64, Vec<&Op>>,
    report: &mut Report,
) {
    for g in grants {
        let Some(facts) = sessions.get(g.session) else { continue };
        let handle_checkins = checkins.get(&g.handle).map(Vec::as_slice).unwrap_or_default();
        // Mid-run: a first checkin told NOT_FOUND while the session lived on.
        if let Some(first) = handle_checkins.iter().min_by_key(|op| op.invoked)
            && matches!(first.answer, Answer::NotFound(_))
            && facts.closed_at.is_none_or(|c| c > first.completed)
            && facts.proven_alive_after(first.completed)
        {
            report.violations.push(Violation::LostCheckout {
                handle: g.handle,
                session: g.session.to_owned(),
                detail: format!(
                    "checkin at {} ms answered NOT_FOUND while the session lived on",
                    first.completed
                ),
            });
            continue;
        }
        // At the end: on every node, when never released and the session lived on.
        let Some(final_at) = history.final_at else { continue };
        if handle_checkins.iter().any(|op| op.invoked <= final_at)
            || facts.closed_at.is_some_and(|c| c <= final_at)
            || !facts.proven_alive_after(final_at)
            || g.op.completed > final_at
        {
            continue;
        }
        report.checked_at_end += 1;
        for state in &history.final_states {
            if !state.checkouts.iter().any(|c| c.handle == g.handle) {
                report.violations.push(Violation::LostCheckout {
                    handle: g.handle,
                    session: g.session.to_owned(),
                    detail: format!(
                        "granted at {} ms, never checked in, its session alive after the end, \
                         but node {} does not hold it (applied index {})",
                        g.op.completed, state.node, state.applied_index
                    ),
                });
            }
        }
    }
}

fn early_expiries(
    sessions: &HashMap<&str, SessionFacts>,
    options: &CheckerOptions,
    report: &mut Report,
) {
    for (session, facts) in sessions {
        for &told in &facts.told_gone {
            if facts.closed_at.is_some_and(|c| c <= told) {
                continue;
            }
            let Some(last) = facts.renewals.iter().copied().filter(|&r| r <= told).max() else {
                continue;
            };
            let earliest_legal = last + facts.ttl_ms;
            if told + options.tolerance_ms < earliest_legal {
                report.violations.push(Violation::EarlyExpiry {
                    session: (*session).to_owned(),
                    told_gone_at: told,
                    earliest_legal,
                });
            }
        }
    }
}

fn convergence(history: &History, report: &mut Report) {
    let states = &history.final_states;
    let Some(first) = states.first() else {
        report.violations.push(Violation::Diverged { detail: "no final state was taken".into() });
        return;
    };
    for state in &states[1..] {
        if state.applied_index != first.applied_index || state.state_digest != first.state_digest {
            report.violations.push(Violation::Diverged {
                detail: format!(
                    "node {} at index {} digest {} but node {} at index {} digest {}",
                    first.node,
                    first.applied_index,
                    first.state_digest,
                    state.node,
                    state.applied_index,
                    state.state_digest
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests;
