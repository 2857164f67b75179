//! The checker can fail: fabricated histories with each kind of violation are caught, and the
//! same histories without the fault pass.

use std::collections::BTreeMap;

use super::*;
use crate::history::{HeldCheckout, NodeState};

const TTL: Millis = 3_000;

fn op(
    client: u64,
    session: &str,
    call: Call,
    invoked: Millis,
    completed: Millis,
    answer: Answer,
) -> Op {
    Op { client, session: Some(session.into()), call, invoked, completed, answer }
}

fn open(client: u64, session: &str, at: Millis) -> Op {
    let answer = Answer::Opened { session: session.into(), ttl_ms: TTL };
    op(client, session, Call::OpenSession { ttl_ms: TTL }, at, at + 5, answer)
}

fn checkout(client: u64, session: &str, at: Millis, answer: Answer) -> Op {
    let call = Call::Checkout { feature: "f".into(), count: 1, wait: false };
    op(client, session, call, at, at + 5, answer)
}

fn granted(handle: u64) -> Answer {
    Answer::Granted { handle, count: 1 }
}

fn heartbeat(client: u64, session: &str, at: Millis, answer: Answer) -> Op {
    op(client, session, Call::Heartbeat, at, at + 5, answer)
}

fn checkin(client: u64, session: &str, handle: u64, at: Millis, answer: Answer) -> Op {
    op(client, session, Call::Checkin { handle }, at, at + 5, answer)
}

fn node_state(node: u64, held: &[(u64, &str)]) -> NodeState {
    NodeState {
        node,
        applied_index: 40,
        state_digest: "ab".into(),
        checkouts: held
            .iter()
            .map(|&(handle, session)| HeldCheckout {
                handle,
                session: session.into(),
                feature: "f".into(),
                count: 1,
            })
            .collect(),
    }
}

/// Two clients, one seat of `f`: a takes it and gives it back, then b takes it.
fn clean() -> History {
    let ops = vec![
        open(1, "a", 0),
        open(2, "b", 0),
        checkout(1, "a", 100, granted(1)),
        checkout(2, "b", 150, Answer::Denied),
        checkin(1, "a", 1, 500, Answer::Done),
        checkout(2, "b", 600, granted(2)),
        heartbeat(2, "b", 900, Answer::Done),
        heartbeat(1, "a", 900, Answer::Done),
        heartbeat(2, "b", 2_100, Answer::Done),
    ];
    History {
        ops,
        pools: BTreeMap::from([("f".to_owned(), 1)]),
        final_at: Some(2_000),
        final_states: vec![node_state(1, &[(2, "b")]), node_state(2, &[(2, "b")])],
        ..History::default()
    }
}

#[test]
fn a_clean_history_has_no_violation() {
    let report = check(&clean(), &CheckerOptions::default());
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.grants, 2);
    assert_eq!(report.peak_held["f"], 1);
    assert_eq!(report.checked_at_end, 1);
}

#[test]
fn an_over_grant_is_caught() {
    let mut history = clean();
    // b is granted the one seat while a still holds it.
    history.ops.push(checkout(2, "b", 200, granted(3)));
    let report = check(&history, &CheckerOptions::default());
    assert_eq!(report.over_grants(), 1, "{:?}", report.violations);
    match &report.violations[0] {
        Violation::OverGrant { feature, held, seats, handles, .. } => {
            assert_eq!((feature.as_str(), *held, *seats), ("f", 2, 1));
            assert_eq!(handles, &vec![1, 3]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_grant_whose_answer_was_lost_does_not_prove_an_over_grant() {
    let mut history = clean();
    let call = Call::Checkout { feature: "f".into(), count: 1, wait: false };
    history.ops.push(op(2, "b", call, 200, 2_200, Answer::Unknown("deadline".into())));
    let report = check(&history, &CheckerOptions::default());
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.maybe_held_peak["f"], 2, "it is reported as maybe held");
}

#[test]
fn a_seat_held_past_its_sessions_expiry_does_not_count() {
    let mut history = clean();
    // a takes a seat and stops heartbeating at 900: it may be gone from 3_900, and c then
    // takes two of the three seats while b holds the third.
    history.pools.insert("f".into(), 3);
    history.ops.push(checkout(1, "a", 950, granted(6)));
    history.ops.push(open(3, "c", 4_000));
    history.ops.push(checkout(3, "c", 4_100, granted(4)));
    history.ops.push(checkout(3, "c", 4_200, granted(5)));
    history.ops.push(heartbeat(3, "c", 4_300, Answer::Done));
    let report = check(&history, &CheckerOptions::default());
    let over: Vec<_> =
        report.violations.iter().filter(|v| matches!(v, Violation::OverGrant { .. })).collect();
    assert!(over.is_empty(), "{over:?}");
}

#[test]
fn a_lost_checkout_is_caught_on_the_node_that_lost_it() {
    let mut history = clean();
    history.final_states[1] = node_state(2, &[]);
    let report = check(&history, &CheckerOptions::default());
    assert_eq!(report.lost(), 1, "{:?}", report.violations);
    match &report.violations[0] {
        Violation::LostCheckout { handle, session, detail } => {
            assert_eq!((*handle, session.as_str()), (2, "b"));
            assert!(detail.contains("node 2"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_checkin_told_not_found_while_the_session_lives_is_a_lost_checkout() {
    let mut history = clean();
    history.ops.push(checkin(2, "b", 2, 1_000, Answer::NotFound("no checkout 2".into())));
    history.final_states = vec![node_state(1, &[]), node_state(2, &[])];
    let report = check(&history, &CheckerOptions::default());
    assert_eq!(report.lost(), 1, "{:?}", report.violations);
}

#[test]
fn an_early_expiry_is_caught() {
    let mut history = clean();
    // a heartbeated at 900 (acknowledged): it may not be gone before 3_900.
    history.ops.push(heartbeat(1, "a", 2_000, Answer::NotFound("session a expired".into())));
    let report = check(&history, &CheckerOptions::default());
    assert_eq!(report.early_expiries(), 1, "{:?}", report.violations);
    match &report.violations[0] {
        Violation::EarlyExpiry { session, earliest_legal, .. } => {
            assert_eq!((session.as_str(), *earliest_legal), ("a", 900 + TTL));
        }
        other => panic!("{other:?}"),
    }
    // The same answer one TTL after the heartbeat is a legal expiry.
    let mut history = clean();
    history.ops.push(heartbeat(1, "a", 4_000, Answer::NotFound("session a expired".into())));
    assert!(check(&history, &CheckerOptions::default()).violations.is_empty());
}

#[test]
fn nodes_that_disagree_are_caught() {
    let mut history = clean();
    history.final_states[1].state_digest = "cd".into();
    let report = check(&history, &CheckerOptions::default());
    assert!(
        matches!(report.violations.as_slice(), [Violation::Diverged { .. }]),
        "{:?}",
        report.violations
    );
}

#[test]
fn no_grant_after_the_faults_stopped_is_caught() {
    let mut history = clean();
    history.healed_at = Some(550);
    let options = CheckerOptions { recovery_bound_ms: 1_000, ..CheckerOptions::default() };
    assert!(check(&history, &options).violations.is_empty());
    history.healed_at = Some(2_000);
    let report = check(&history, &options);
    assert!(
        matches!(report.violations.as_slice(), [Violation::NoRecovery { .. }]),
        "{:?}",
        report.violations
    );
}

#[test]
fn a_seat_held_for_a_client_told_denied_is_caught() {
    // b was told "denied" at 150, yet every node holds a seat (handle 9) for b at the end.
    let mut history = clean();
    for state in &mut history.final_states {
        state.checkouts.push(HeldCheckout {
            handle: 9,
            session: "b".into(),
            feature: "f".into(),
            count: 1,
        });
    }
    let report = check(&history, &CheckerOptions::default());
    match report.violations.as_slice() {
        [Violation::PhantomSeat { handle: 9, session, .. }] => assert_eq!(session, "b"),
        other => panic!("one phantom seat (handle 9) expected: {other:?}"),
    }
    // Had one of b's checkouts gone unanswered, the seat may be that one's: no violation.
    let call = Call::Checkout { feature: "f".into(), count: 1, wait: true };
    history.ops.push(op(2, "b", call, 1_000, 3_000, Answer::Unknown("deadline".into())));
    let report = check(&history, &CheckerOptions::default());
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}
