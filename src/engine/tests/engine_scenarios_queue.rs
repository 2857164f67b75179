//! Scenario tests of waiting and retrying: the queue, retried requests, expired sessions and
//! borrows; each named for the behaviour a user sees.

use qlm_engine::testkit::{T0, World, pool, reason, version};
use qlm_engine::{Command, Event, Handle, Outcome, RejectKind};
use qlm_license::{Policy, Timestamp};

fn rejected_kind(outcome: &Outcome) -> RejectKind {
    match outcome {
        Outcome::Rejected(r) => r.kind,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_queued_request_is_granted_when_a_seat_frees_up() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let g = w.grant("a", "vhdl", 1);
    let queued = w.wait_for("b", "vhdl", 1);
    let Outcome::Queued { handle, position } = queued else { panic!("{queued:?}") };
    assert_eq!(position, 1);
    assert_eq!(w.engine.feature("vhdl").unwrap().queued, 1);
    let checkin = w.apply(Command::Checkin {
        session_id: "a".into(),
        request_id: "c".into(),
        handle: g.handle,
    });
    let granted = checkin.events.iter().find_map(|e| match e {
        Event::CheckedOut { handle: h, session_id, from_queue: true, .. } => {
            Some((*h, session_id.clone()))
        }
        _ => None,
    });
    assert_eq!(granted, Some((handle, "b".into())));
    assert_eq!(&*w.engine.checkout_view(handle).unwrap().user, "bob");
}

#[test]
fn the_queue_is_first_in_first_out() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    for s in ["a", "b", "c"] {
        w.open(s, s, "h");
    }
    let g = w.grant("a", "vhdl", 1);
    let Outcome::Queued { handle: b, .. } = w.wait_for("b", "vhdl", 1) else { panic!() };
    let Outcome::Queued { handle: c, .. } = w.wait_for("c", "vhdl", 1) else { panic!() };
    assert_eq!((w.engine.queue_position(b), w.engine.queue_position(c)), (Some(1), Some(2)));
    w.checkin("a", g.handle);
    assert_eq!(w.engine.queue_position(c), Some(1), "c moves up");
    let holders: Vec<String> =
        w.engine.checkouts().into_iter().map(|c| c.user.to_string()).collect();
    assert_eq!(holders, ["b"]);
    assert_eq!(w.engine.queue("vhdl").len(), 1);
}

#[test]
fn status_lists_the_queue_head_first_with_what_each_waiter_asked() {
    let mut w = World::new(vec![pool("vhdl", 2)], Policy::default());
    for s in ["a", "b", "c"] {
        w.open(s, s, "h");
    }
    w.grant("a", "vhdl", 2);
    let Outcome::Queued { handle: b, .. } = w.wait_for("b", "vhdl", 1) else { panic!() };
    let Outcome::Queued { handle: c, .. } = w.wait_for("c", "vhdl", 2) else { panic!() };
    let queue = w.engine.queued_requests("vhdl");
    let seen: Vec<(Handle, u32, &str, u32)> =
        queue.iter().map(|q| (q.handle, q.position, &*q.user, q.count)).collect();
    assert_eq!(seen, [(b, 1, "b", 1), (c, 2, "c", 2)]);
    assert_eq!(queue[0].since, w.engine.now());
    assert!(w.engine.queued_requests("no-such-feature").is_empty());
}

#[test]
fn a_later_smaller_request_does_not_starve_the_head_of_the_queue() {
    let mut w = World::new(vec![pool("sim", 4)], Policy::default());
    for s in ["a", "b", "big", "small"] {
        w.open(s, s, "h");
    }
    let a = w.grant("a", "sim", 2);
    w.grant("b", "sim", 2);
    assert!(matches!(w.wait_for("big", "sim", 3), Outcome::Queued { .. }));
    assert!(matches!(w.wait_for("small", "sim", 1), Outcome::Queued { .. }));
    // Two seats free up: enough for `small`, not for `big`; `small` must not overtake.
    w.checkin("a", a.handle);
    assert_eq!(w.in_use("sim"), 2);
    assert_eq!(w.engine.queue("sim").len(), 2);
}

#[test]
fn a_queued_request_can_be_cancelled_and_goes_with_its_session() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    for s in ["a", "b", "c"] {
        w.open(s, s, "h");
    }
    w.grant("a", "vhdl", 1);
    let Outcome::Queued { handle, .. } = w.wait_for("b", "vhdl", 1) else { panic!() };
    assert_eq!(w.checkin("b", handle), Outcome::CheckedIn { handle });
    w.wait_for("c", "vhdl", 1);
    w.apply(Command::CloseSession { session_id: "c".into() });
    assert!(w.engine.queue("vhdl").is_empty());
}

#[test]
fn a_session_holding_a_feature_may_not_also_queue_for_it() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    w.grant("a", "vhdl", 1);
    assert_eq!(reason(&w.wait_for("a", "vhdl", 1)), "ALREADY_HOLDING");
}

#[test]
fn a_retried_queued_request_learns_its_later_grant() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let g = w.grant("a", "vhdl", 1);
    let wait = Command::Checkout {
        session_id: "b".into(),
        request_id: "wait-1".into(),
        feature: "vhdl".into(),
        version: version("1.0"),
        count: 1,
        wait: true,
        borrow_until: None,
    };
    assert!(matches!(w.apply(wait.clone()).outcome, Outcome::Queued { .. }));
    w.checkin("a", g.handle);
    assert!(matches!(w.apply(wait).outcome, Outcome::Granted(_)));
    assert_eq!(w.in_use("vhdl"), 1);
}

#[test]
fn a_retried_checkout_returns_the_first_grant_and_takes_no_second_seat() {
    let mut w = World::new(vec![pool("vhdl", 5)], Policy::default());
    w.open("a", "alice", "h");
    let cmd = Command::Checkout {
        session_id: "a".into(),
        request_id: "req-7".into(),
        feature: "vhdl".into(),
        version: version("1.0"),
        count: 2,
        wait: false,
        borrow_until: None,
    };
    let first = w.apply(cmd.clone()).outcome;
    w.now += 5_000;
    let retry = w.apply(cmd.clone());
    assert_eq!(retry.outcome, first);
    assert!(retry.events.is_empty(), "a retry changes nothing");
    assert_eq!(w.in_use("vhdl"), 2);
    let Outcome::Granted(g) = first else { panic!() };
    let checkin =
        Command::Checkin { session_id: "a".into(), request_id: "req-8".into(), handle: g.handle };
    assert_eq!(w.apply(checkin.clone()).outcome, Outcome::CheckedIn { handle: g.handle });
    assert_eq!(
        w.apply(checkin).outcome,
        Outcome::CheckedIn { handle: g.handle },
        "retried checkin"
    );
}

#[test]
fn an_expired_session_loses_its_seats_and_queue_place() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let g = w.grant("a", "vhdl", 1);
    let expired =
        w.apply(Command::ExpireSessions { session_ids: vec!["a".into(), "nobody".into()] });
    assert_eq!(
        expired.outcome,
        Outcome::Expired { sessions: vec!["a".into()], released: vec![g.handle] }
    );
    assert_eq!(rejected_kind(&w.checkout("a", "vhdl", 1)), RejectKind::UnknownSession);
    w.grant("b", "vhdl", 1);
}

#[test]
fn a_borrow_survives_its_session_and_ends_on_its_deadline() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "laptop");
    let until = Timestamp(T0 + 48 * 3_600_000);
    let Outcome::Granted(g) = w.checkout_full("a", "vhdl", "1.0", 1, false, Some(until)).outcome
    else {
        panic!()
    };
    assert_eq!(g.borrow_until, Some(until));
    assert_eq!(w.engine.live_session_count(), 1);
    w.apply(Command::ExpireSessions { session_ids: vec!["a".into()] });
    w.apply(Command::CloseSession { session_id: "a".into() });
    assert_eq!(w.in_use("vhdl"), 1, "borrowed seat stays while the laptop is away");
    assert_eq!(w.engine.session_count(), 1, "the session stays for its borrow");
    assert_eq!(w.engine.live_session_count(), 0, "but it is no longer live");
    w.advance(48 * 3600 - 1);
    assert_eq!(w.in_use("vhdl"), 1);
    let tick = w.advance(1);
    assert!(tick.events.iter().any(|e| matches!(e, Event::Released { .. })));
    assert_eq!(w.in_use("vhdl"), 0);
    assert_eq!(w.engine.session_count(), 0);
}

#[test]
fn a_borrow_longer_than_the_cap_is_denied() {
    let mut vendor_cap = pool("vhdl", 2);
    vendor_cap.max_borrow_hours = 72;
    let mut no_borrow = pool("sim", 2);
    no_borrow.max_borrow_hours = 0;
    let mut policy = Policy::default();
    policy.max_borrow_hours.insert("vhdl".into(), 24);
    let mut w = World::new(vec![vendor_cap, no_borrow], policy);
    w.open("a", "alice", "h");
    let day = |h: u64| Some(Timestamp(T0 + h * 3_600_000));
    assert_eq!(
        reason(&w.checkout_full("a", "vhdl", "1.0", 1, false, day(25)).outcome),
        "BORROW_NOT_ALLOWED"
    );
    assert!(matches!(
        w.checkout_full("a", "vhdl", "1.0", 1, false, day(24)).outcome,
        Outcome::Granted(_)
    ));
    assert_eq!(
        reason(&w.checkout_full("a", "sim", "1.0", 1, false, day(1)).outcome),
        "BORROW_NOT_ALLOWED"
    );
}
