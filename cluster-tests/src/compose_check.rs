//! The compose chaos test's history and checks: a small, self-contained seam.
//!
//! The process-based chaos suite (branch `chaos`, `cluster-tests/src/checker.rs`) has the
//! full history checker; until it is merged, the compose test records what its clients saw
//! here and checks the three properties the issue names. The integrator replaces
//! [`History`] + [`check_history`] with that checker's history and check, and
//! [`agreement`] with its `state_digest` comparison; the fault driver does not change.
//!
//! What is checked, and why it is sound with uncertain outcomes:
//!
//! - **No over-grant.** A seat is surely held from the moment a grant was *acknowledged* to
//!   the moment its checkin was *sent* (the real hold covers at least that). If more than
//!   the pool's seats are surely held at one instant, the cluster granted too many. The
//!   cluster's own listing, sampled during the run, must never show more seats in use either.
//! - **Nothing lost.** A checkin of an acknowledged grant must not be answered "unknown
//!   handle"; at the end, every acknowledged grant not checked in is listed on every node.
//!   A listed checkout nobody acknowledged must belong to a session with a checkout whose
//!   answer was lost in a fault (its outcome is unknown, so either way is correct).
//! - **Agreement.** Once the faults are healed, every node has applied the same index and
//!   lists the same checkouts (and, after every session is closed, none).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use quorumlm::proto::v1;

/// What one client operation saw.
#[derive(Clone, Debug)]
pub enum Op {
    /// A grant was acknowledged at `at` with `handle`.
    Granted { session: String, handle: u64, at: Instant },
    /// The checkout was denied (all seats in use).
    Denied,
    /// The checkout's answer was lost (every retry failed): it may or may not be held.
    CheckoutUnknown { session: String },
    /// A checkin of `handle` was sent at `sent`; `ok` tells whether it was acknowledged,
    /// `lost` whether the cluster said the handle is unknown.
    Checkin { handle: u64, sent: Instant, ok: bool, lost: bool },
}

/// Every client operation, in the order recorded, and the cluster's listings sampled during
/// the run.
#[derive(Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
    /// Seats in use of the contended feature, in each sampled linearizable listing.
    pub sampled_in_use: Vec<u32>,
}

/// What the checks found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub grants: usize,
    pub denials: usize,
    pub checkins: usize,
    pub unknown: usize,
    pub samples: usize,
    /// The most seats surely held at once, by the clients' own view.
    pub max_surely_held: u32,
    pub violations: Vec<String>,
}

/// Checks over-grant and loss on the clients' history; `held_at_end` are the grants still
/// held when the workload stopped (handles), `listed` every node's final listing.
pub fn check_history(
    history: &History,
    seats: u32,
    end: Instant,
    listed: &BTreeMap<u64, Vec<v1::CheckoutStatus>>,
) -> Verdict {
    let mut verdict = Verdict { samples: history.sampled_in_use.len(), ..Verdict::default() };
    let mut granted: BTreeMap<u64, (String, Instant)> = BTreeMap::new();
    let mut released: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut unknown_sessions: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked_in: BTreeSet<u64> = BTreeSet::new();
    let mut unsure_checkins: BTreeSet<u64> = BTreeSet::new();
    for op in &history.ops {
        match op {
            Op::Granted { session, handle, at } => {
                verdict.grants += 1;
                if granted.insert(*handle, (session.clone(), *at)).is_some() {
                    verdict.violations.push(format!("handle {handle} was granted twice"));
                }
            }
            Op::Denied => verdict.denials += 1,
            Op::CheckoutUnknown { session } => {
                verdict.unknown += 1;
                *unknown_sessions.entry(session.clone()).or_default() += 1;
            }
            Op::Checkin { handle, sent, ok, lost } => {
                verdict.checkins += 1;
                released.insert(*handle, *sent);
                if *lost {
                    verdict.violations.push(format!(
                        "lost: the checkin of acknowledged handle {handle} found it unknown"
                    ));
                } else if *ok {
                    checked_in.insert(*handle);
                } else {
                    unsure_checkins.insert(*handle);
                }
            }
        }
    }

    // Over-grant by the clients' view: sweep the sure intervals.
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    for (handle, (_, at)) in &granted {
        let until = released.get(handle).copied().unwrap_or(end);
        if until > *at {
            edges.push((*at, 1));
            edges.push((until, -1));
        }
    }
    // Releases sort before grants at the same instant (a seat handed over is not two).
    edges.sort_by_key(|&(t, delta)| (t, delta));
    let mut held = 0i32;
    for (_, delta) in edges {
        held += delta;
        verdict.max_surely_held = verdict.max_surely_held.max(held.max(0) as u32);
    }
    if verdict.max_surely_held > seats {
        verdict.violations.push(format!(
            "over-grant: {} seats surely held at once, the pool has {seats}",
            verdict.max_surely_held
        ));
    }
    for (i, in_use) in history.sampled_in_use.iter().enumerate() {
        if *in_use > seats {
            verdict.violations.push(format!(
                "over-grant: sampled listing {i} shows {in_use} seats in use of {seats}"
            ));
        }
    }

    // Loss: every acknowledged grant not (surely or maybe) checked in is listed everywhere.
    let held_at_end: BTreeSet<u64> = granted
        .keys()
        .filter(|h| !checked_in.contains(h) && !unsure_checkins.contains(h))
        .copied()
        .collect();
    for (node, listing) in listed {
        let handles: BTreeSet<u64> = listing.iter().map(|c| c.handle).collect();
        for handle in held_at_end.difference(&handles) {
            verdict
                .violations
                .push(format!("lost: node {node} does not list acknowledged handle {handle}"));
        }
        for handle in handles.intersection(&checked_in) {
            verdict.violations.push(format!(
                "node {node} still lists handle {handle}, whose checkin was acknowledged"
            ));
        }
        // A listed checkout nobody acknowledged: only a lost answer explains it.
        let mut unexplained: BTreeMap<&str, usize> = BTreeMap::new();
        for checkout in listing {
            if !granted.contains_key(&checkout.handle) {
                *unexplained.entry(checkout.session_id.as_str()).or_default() += 1;
            }
        }
        for (session, n) in unexplained {
            if n > unknown_sessions.get(session).copied().unwrap_or(0) {
                verdict.violations.push(format!(
                    "node {node} lists {n} checkout(s) of session {session} that no client \
                     was granted"
                ));
            }
        }
    }
    verdict
}

/// Compares the nodes' final states: the same applied index and the same checkouts.
pub fn agreement(
    applied: &BTreeMap<u64, u64>,
    listed: &BTreeMap<u64, Vec<v1::CheckoutStatus>>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let indexes: BTreeSet<u64> = applied.values().copied().collect();
    if indexes.len() > 1 {
        violations.push(format!("the nodes applied different indexes: {applied:?}"));
    }
    let mut listings = listed.iter();
    if let Some((first_node, first)) = listings.next() {
        for (node, listing) in listings {
            if listing != first {
                violations.push(format!(
                    "node {node} lists {} checkouts, node {first_node} {}: they differ",
                    listing.len(),
                    first.len()
                ));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn overlapping_acknowledged_grants_beyond_the_count_are_an_over_grant() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut history = History::default();
        for (handle, start) in [(1, 0), (2, 10), (3, 20)] {
            history.ops.push(Op::Granted { session: "s".into(), handle, at: at(start) });
        }
        history.ops.push(Op::Checkin { handle: 1, sent: at(30), ok: true, lost: false });
        history.ops.push(Op::Granted { session: "s".into(), handle: 4, at: at(30) });
        let listing = vec![2, 3, 4]
            .into_iter()
            .map(|handle| v1::CheckoutStatus {
                handle,
                session_id: "s".into(),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        let listed = BTreeMap::from([(1, listing.clone())]);
        let verdict = check_history(&history, 3, at(100), &listed);
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert_eq!(verdict.max_surely_held, 3);

        history.ops.push(Op::Granted { session: "s".into(), handle: 5, at: at(40) });
        let verdict = check_history(&history, 3, at(100), &listed);
        assert!(verdict.violations.iter().any(|v| v.contains("over-grant")), "{verdict:?}");
        assert!(verdict.violations.iter().any(|v| v.contains("lost: node 1")), "{verdict:?}");
    }
}
