//! Scenario tests of the license rules, each named for the behaviour a user sees.

use qlm_engine::testkit::{T0, World, date, pool, reason, version};
use qlm_engine::{Command, Event, Handle, Outcome, RejectKind, RemoveTarget};
use qlm_license::{
    AccessRule, DupGroup, Expiry, Policy, PoolId, SeatRule, Timestamp, Who, WhoKind,
};

fn who(kind: WhoKind, name: &str) -> Who {
    Who { kind, name: name.into() }
}

fn rejected_kind(outcome: &Outcome) -> RejectKind {
    match outcome {
        Outcome::Rejected(r) => r.kind,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn the_26th_checkout_of_25_seats_is_denied_with_the_holders() {
    let mut w = World::new(vec![pool("vhdl", 25)], Policy::default());
    for i in 0..25 {
        w.open(&format!("s{i}"), &format!("user{i}"), "ws1");
        w.grant(&format!("s{i}"), "vhdl", 1);
    }
    w.open("late", "zed", "ws2");
    let denied = w.checkout("late", "vhdl", 1);
    assert_eq!(reason(&denied), "ALL_IN_USE");
    let Outcome::Denied(denial) = denied else { unreachable!() };
    assert!(!denial.holders.is_empty());
    assert_eq!(&*denial.holders[0].user, "user0");
    assert_eq!(w.in_use("vhdl"), 25);
}

#[test]
fn pools_of_one_feature_add_up() {
    let mut second = pool("sim", 2);
    second.id = PoolId("sim-second".into());
    let mut w = World::new(vec![pool("sim", 3), second], Policy::default());
    let mut granted = 0;
    for i in 0..6 {
        let id = format!("s{i}");
        w.open(&id, &format!("u{i}"), "h");
        if matches!(w.checkout(&id, "sim", 1), Outcome::Granted(_)) {
            granted += 1;
        }
    }
    assert_eq!(granted, 5, "3 + 2 seats serve 5 checkouts");
    assert_eq!(w.engine.feature("sim").unwrap().seats_serving, 5);
}

#[test]
fn a_checkout_takes_all_its_seats_from_one_pool() {
    let mut second = pool("sim", 2);
    second.id = PoolId("sim-second".into());
    let mut w = World::new(vec![pool("sim", 2), second], Policy::default());
    w.open("a", "alice", "h");
    w.grant("a", "sim", 2);
    w.open("b", "bob", "h");
    w.grant("b", "sim", 1);
    w.open("c", "carol", "h");
    assert_eq!(reason(&w.checkout("c", "sim", 2)), "ALL_IN_USE", "1 free seat in each pool");
    assert_eq!(reason(&w.checkout("c", "sim", 3)), "COUNT_TOO_HIGH");
}

#[test]
fn checkin_gives_the_seat_back() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let grant = w.grant("a", "vhdl", 1);
    assert_eq!(reason(&w.checkout("b", "vhdl", 1)), "ALL_IN_USE");
    assert_eq!(w.checkin("a", grant.handle), Outcome::CheckedIn { handle: grant.handle });
    w.grant("b", "vhdl", 1);
}

#[test]
fn a_pool_serves_its_version_and_lower_ones_only() {
    let mut v4 = pool("editor", 1);
    v4.version = version("4.0");
    let mut w = World::new(vec![v4], Policy::default());
    w.open("a", "alice", "h");
    let denied = w.checkout_full("a", "editor", "4.1", 1, false, None).outcome;
    assert_eq!(reason(&denied), "VERSION_TOO_HIGH");
    let Outcome::Denied(d) = denied else { unreachable!() };
    assert!(d.message.contains("licensed up to 4.0"), "{}", d.message);
    let granted = w.checkout_full("a", "editor", "3.2", 1, false, None).outcome;
    let Outcome::Granted(g) = granted else { panic!("{granted:?}") };
    assert_eq!(g.version, version("4.0"));
}

#[test]
fn unknown_features_are_denied_no_such_feature() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    assert_eq!(reason(&w.checkout("a", "verilog", 1)), "NO_SUCH_FEATURE");
}

#[test]
fn expired_and_not_yet_started_pools_do_not_serve() {
    let mut old = pool("old", 5);
    old.expires = Expiry::On(date("2026-11-23"));
    let mut future = pool("future", 5);
    future.start = Some(date("2026-11-25"));
    let mut today = pool("today", 5);
    today.expires = Expiry::On(date("2026-11-24"));
    let mut w = World::new(vec![old, future, today], Policy::default());
    w.open("a", "alice", "h");
    assert_eq!(reason(&w.checkout("a", "old", 1)), "EXPIRED");
    assert_eq!(reason(&w.checkout("a", "future", 1)), "NOT_STARTED");
    w.grant("a", "today", 1);
    w.advance(86_400);
    w.open("b", "bob", "h");
    assert_eq!(reason(&w.checkout("b", "today", 1)), "EXPIRED", "valid through its last day");
    w.grant("b", "future", 1);
}

#[test]
fn the_pool_that_expires_first_is_used_first() {
    let mut late = pool("sim", 1);
    late.id = PoolId("late".into());
    late.expires = Expiry::On(date("2027-12-31"));
    let mut soon = pool("sim", 1);
    soon.id = PoolId("soon".into());
    soon.expires = Expiry::On(date("2027-01-31"));
    let mut w = World::new(vec![pool("sim", 1), late, soon], Policy::default());
    w.open("a", "alice", "h");
    let order: Vec<String> = (0..3).map(|_| w.grant("a", "sim", 1).pool.0).collect();
    assert_eq!(order, ["soon", "late", "sim-1"]);
}

#[test]
fn dup_group_user_shares_seats_between_one_users_checkouts() {
    let mut p = pool("vhdl", 1);
    p.dup_group = DupGroup::User;
    let mut w = World::new(vec![p], Policy::default());
    w.open("a1", "alice", "ws1");
    w.open("a2", "alice", "ws2");
    w.open("b", "bob", "ws1");
    let first = w.grant("a1", "vhdl", 1);
    let second = w.grant("a2", "vhdl", 1);
    assert!(!first.shared && second.shared);
    assert_eq!(w.in_use("vhdl"), 1);
    assert_eq!(reason(&w.checkout("b", "vhdl", 1)), "ALL_IN_USE");
    // The seat stays while any of alice's checkouts holds it.
    w.checkin("a1", first.handle);
    assert_eq!(reason(&w.checkout("b", "vhdl", 1)), "ALL_IN_USE");
    w.checkin("a2", second.handle);
    w.grant("b", "vhdl", 1);
}

#[test]
fn dup_group_host_and_user_host_group_by_what_they_say() {
    let mut by_host = pool("h", 1);
    by_host.dup_group = DupGroup::Host;
    let mut by_both = pool("uh", 1);
    by_both.dup_group = DupGroup::UserHost;
    let mut w = World::new(vec![by_host, by_both], Policy::default());
    w.open("a", "alice", "ws1");
    w.open("b", "bob", "ws1");
    w.open("a2", "alice", "ws2");
    w.grant("a", "h", 1);
    assert!(w.grant("b", "h", 1).shared, "same host shares");
    w.grant("a", "uh", 1);
    assert_eq!(reason(&w.checkout("b", "uh", 1)), "ALL_IN_USE", "other user, same host");
    assert_eq!(reason(&w.checkout("a2", "uh", 1)), "ALL_IN_USE", "same user, other host");
}

#[test]
fn without_dup_group_every_checkout_takes_its_own_seats() {
    let mut w = World::new(vec![pool("vhdl", 2)], Policy::default());
    w.open("a", "alice", "h");
    w.grant("a", "vhdl", 1);
    w.grant("a", "vhdl", 1);
    assert_eq!(reason(&w.checkout("a", "vhdl", 1)), "ALL_IN_USE");
}

fn linger_policy(secs: u32) -> Policy {
    let mut policy = Policy::default();
    policy.lingers.insert("vhdl".into(), secs);
    policy
}

#[test]
fn a_lingering_seat_stays_taken_until_its_linger_ends() {
    let mut w = World::new(vec![pool("vhdl", 1)], linger_policy(60));
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let g = w.grant("a", "vhdl", 1);
    let checkin = w.apply(Command::Checkin {
        session_id: "a".into(),
        request_id: "x".into(),
        handle: g.handle,
    });
    assert!(checkin.events.iter().any(|e| matches!(e, Event::CheckedIn { lingers_until: Some(t), .. } if *t == Timestamp(T0 + 60_000))));
    assert_eq!(reason(&w.checkout("b", "vhdl", 1)), "ALL_IN_USE");
    w.advance(59);
    assert_eq!(reason(&w.checkout("b", "vhdl", 1)), "ALL_IN_USE");
    let tick = w.advance(1);
    assert!(tick.events.iter().any(|e| matches!(e, Event::LingerEnded { .. })));
    w.grant("b", "vhdl", 1);
}

#[test]
fn the_same_client_takes_its_lingering_seat_back() {
    let mut w = World::new(vec![pool("vhdl", 1)], linger_policy(60));
    w.open("a", "alice", "h");
    let g = w.grant("a", "vhdl", 1);
    w.checkin("a", g.handle);
    w.advance(10);
    // A new process of the same user, host and display.
    w.open("a-again", "alice", "h");
    let again = w.grant("a-again", "vhdl", 1);
    assert!(again.shared);
    assert_eq!(w.in_use("vhdl"), 1);
    w.advance(120);
    assert_eq!(w.in_use("vhdl"), 1, "taken back: it no longer lingers");
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

fn reserve_policy() -> Policy {
    let mut policy = Policy::default();
    policy.groups.insert("leads".into(), ["lea".into()].into());
    policy.reserves.push(SeatRule {
        seats: 2,
        feature: "vhdl".into(),
        who: who(WhoKind::Group, "leads"),
        line: 1,
    });
    policy
}

#[test]
fn reserved_seats_go_only_to_their_owners() {
    let mut w = World::new(vec![pool("vhdl", 3)], reserve_policy());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    w.open("l", "lea", "h");
    w.grant("a", "vhdl", 1);
    assert_eq!(reason(&w.checkout("b", "vhdl", 1)), "RESERVED_FOR_OTHERS");
    w.grant("l", "vhdl", 1);
    w.grant("l", "vhdl", 1);
    assert_eq!(reason(&w.checkout("l", "vhdl", 1)), "ALL_IN_USE");
}

#[test]
fn a_reservation_owner_does_not_wait_behind_someone_who_cannot_use_the_reserved_seat() {
    let mut w = World::new(vec![pool("vhdl", 3)], reserve_policy());
    for (s, u) in [("a", "alice"), ("b", "bob"), ("c", "carl"), ("l", "lea")] {
        w.open(s, u, "h");
    }
    let a = w.grant("a", "vhdl", 1);
    let l = w.grant("l", "vhdl", 1);
    assert!(matches!(w.wait_for("b", "vhdl", 1), Outcome::Queued { .. }));
    w.open("l2", "lea", "h2");
    assert!(
        matches!(w.wait_for("l2", "vhdl", 1), Outcome::Granted(_)),
        "one reserved seat is still free"
    );
    w.checkin("l", l.handle);
    w.checkin("l2", w.engine.session("l2").unwrap().checkouts[0]);
    // Two reserved seats free, bob (head of the queue) cannot use them; lea's next request can.
    assert!(matches!(w.wait_for("l", "vhdl", 1), Outcome::Granted(_)));
    w.checkin("a", a.handle);
    assert!(
        w.engine.checkouts().iter().any(|c| &*c.user == "bob"),
        "bob gets alice's unreserved seat"
    );
}

#[test]
fn max_caps_what_a_user_or_group_holds() {
    let mut policy = Policy::default();
    policy.groups.insert("interns".into(), ["ian".into(), "ivy".into()].into());
    policy.maxes.push(SeatRule {
        seats: 2,
        feature: "vhdl".into(),
        who: who(WhoKind::User, "alice"),
        line: 3,
    });
    policy.maxes.push(SeatRule {
        seats: 1,
        feature: "vhdl".into(),
        who: who(WhoKind::Group, "interns"),
        line: 4,
    });
    let mut w = World::new(vec![pool("vhdl", 10)], policy);
    for (s, u) in [("a", "alice"), ("i1", "ian"), ("i2", "ivy")] {
        w.open(s, u, "h");
    }
    w.grant("a", "vhdl", 2);
    let denied = w.checkout("a", "vhdl", 1);
    assert_eq!(reason(&denied), "MAX_REACHED");
    let Outcome::Denied(d) = denied else { unreachable!() };
    assert!(d.message.contains("USER alice") && d.message.contains("line 3"), "{}", d.message);
    w.grant("i1", "vhdl", 1);
    assert_eq!(reason(&w.checkout("i2", "vhdl", 1)), "MAX_REACHED");
}

#[test]
fn include_makes_a_feature_exclusive_and_exclude_wins() {
    let mut policy = Policy::default();
    policy.host_groups.insert("lab".into(), ["lab1".into(), "lab2".into()].into());
    policy.includes.push(AccessRule {
        feature: Some("vhdl".into()),
        who: who(WhoKind::HostGroup, "lab"),
        line: 1,
    });
    policy.excludes.push(AccessRule {
        feature: Some("vhdl".into()),
        who: who(WhoKind::User, "mallory"),
        line: 2,
    });
    let mut w = World::new(vec![pool("vhdl", 10)], policy);
    w.open("a", "alice", "lab1");
    w.open("o", "oscar", "office");
    w.open("m", "mallory", "lab2");
    w.grant("a", "vhdl", 1);
    assert_eq!(reason(&w.checkout("o", "vhdl", 1)), "EXCLUDED");
    assert_eq!(reason(&w.checkout("m", "vhdl", 1)), "EXCLUDED");
}

#[test]
fn admin_removal_frees_seats_by_handle_or_by_user() {
    let mut w = World::new(vec![pool("vhdl", 3)], linger_policy(600));
    w.open("a", "alice", "h1");
    w.open("b", "bob", "h1");
    let a1 = w.grant("a", "vhdl", 1);
    w.grant("a", "vhdl", 1);
    w.grant("b", "vhdl", 1);
    let by_handle = w.apply(Command::Remove { target: RemoveTarget::Handle(a1.handle) });
    assert_eq!(by_handle.outcome, Outcome::Removed { released: vec![a1.handle] });
    assert_eq!(w.in_use("vhdl"), 2, "removal does not linger");
    let by_user = w.apply(Command::Remove {
        target: RemoveTarget::Holder {
            user: "bob".into(),
            host: None,
            feature: Some("vhdl".into()),
        },
    });
    assert!(matches!(by_user.outcome, Outcome::Removed { ref released } if released.len() == 1));
    assert_eq!(w.in_use("vhdl"), 1);
    let unknown = w.apply(Command::Remove { target: RemoveTarget::Handle(a1.handle) });
    assert_eq!(rejected_kind(&unknown.outcome), RejectKind::UnknownHandle);
}

#[test]
fn a_renewed_license_carries_the_seats_held_on_the_line_it_replaces() {
    let mut w = World::new(vec![pool("vhdl", 2)], Policy::default());
    for s in ["a", "b", "c"] {
        w.open(s, s, "h");
    }
    w.grant("a", "vhdl", 2);
    // The renewal: a new signed line (new id) with 3 seats replaces the 2-seat line.
    let mut renewed = pool("vhdl", 3);
    renewed.id = PoolId("vhdl-renewed".into());
    let loaded = w.apply(Command::LoadLicenses { pools: vec![renewed], policy: Policy::default() });
    assert_eq!(loaded.outcome, Outcome::LicensesLoaded { serving: 1, retired: 0 });
    assert_eq!(w.engine.checkouts()[0].feature.as_ref(), "vhdl");
    w.grant("b", "vhdl", 1);
    assert_eq!(reason(&w.checkout("c", "vhdl", 1)), "ALL_IN_USE", "3 seats, not 2 + 3");
}

#[test]
fn seats_held_on_a_vanished_line_stay_held_and_occupy_the_new_count() {
    let mut w = World::new(vec![pool("vhdl", 2)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let g = w.grant("a", "vhdl", 2);
    let loaded =
        w.apply(Command::LoadLicenses { pools: vec![pool("vhdl", 1)], policy: Policy::default() });
    assert_eq!(loaded.outcome, Outcome::LicensesLoaded { serving: 1, retired: 1 });
    assert_eq!(w.in_use("vhdl"), 2, "held seats stay held");
    assert_eq!(reason(&w.checkout("b", "vhdl", 1)), "ALL_IN_USE", "the new line has 1 seat");
    w.checkin("a", g.handle);
    w.grant("b", "vhdl", 1);
    let view = w.engine.feature("vhdl").unwrap();
    assert_eq!(view.pools.len(), 1, "the retired pool is forgotten once empty");
}

#[test]
fn a_reload_that_drops_a_feature_denies_its_queue() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    w.grant("a", "vhdl", 1);
    w.wait_for("b", "vhdl", 1);
    let loaded = w.apply(Command::LoadLicenses { pools: vec![], policy: Policy::default() });
    assert!(loaded.events.iter().any(|e| matches!(e, Event::LeftQueue { .. })));
    assert!(w.engine.queue("vhdl").is_empty());
}

#[test]
fn the_engines_time_never_goes_back() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.now = T0 + 10_000;
    w.advance(0);
    w.now = T0; // a new leader whose clock is behind
    w.open("a", "alice", "h");
    assert_eq!(w.engine.now(), Timestamp(T0 + 10_000));
    assert_eq!(w.engine.session("a").unwrap().opened, Timestamp(T0 + 10_000));
}

#[test]
fn timeout_shortens_the_ttl_of_sessions_holding_the_feature() {
    let mut policy = Policy::default();
    policy.timeouts.insert("vhdl".into(), 10);
    let mut w = World::new(vec![pool("vhdl", 1), pool("sim", 1)], policy);
    w.open("a", "alice", "h");
    assert_eq!(w.engine.session_ttl_ms("a"), Some(30_000));
    w.grant("a", "sim", 1);
    assert_eq!(w.engine.session_ttl_ms("a"), Some(30_000));
    w.grant("a", "vhdl", 1);
    assert_eq!(w.engine.session_ttl_ms("a"), Some(10_000));
}

#[test]
fn bad_requests_are_rejected_and_change_nothing() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    let before = w.engine.snapshot();
    assert_eq!(rejected_kind(&w.checkout("a", "vhdl", 0)), RejectKind::InvalidArgument);
    assert_eq!(rejected_kind(&w.checkout("a", "vhdl", u32::MAX)), RejectKind::InvalidArgument);
    assert_eq!(rejected_kind(&w.checkout("nobody", "vhdl", 1)), RejectKind::UnknownSession);
    assert_eq!(rejected_kind(&w.checkin("a", qlm_engine::Handle(999))), RejectKind::UnknownHandle);
    let past = w.checkout_full("a", "vhdl", "1.0", 1, false, Some(Timestamp(T0 - 1))).outcome;
    assert_eq!(rejected_kind(&past), RejectKind::InvalidArgument);
    let open = |id: &str, user: &str, ttl_ms| Command::OpenSession {
        session_id: id.into(),
        secret: "s3cret".into(),
        user: user.into(),
        host: "h".into(),
        pid: 1,
        display: String::new(),
        ttl_ms,
    };
    assert_eq!(rejected_kind(&w.apply(open("z", "zed", 0)).outcome), RejectKind::InvalidArgument);
    assert_eq!(rejected_kind(&w.apply(open("", "zed", 5000)).outcome), RejectKind::InvalidArgument);
    assert_eq!(
        rejected_kind(&w.apply(open("z", &"u".repeat(300), 5000)).outcome),
        RejectKind::InvalidArgument
    );
    assert_eq!(
        rejected_kind(&w.apply(open("a", "mallory", 5000)).outcome),
        RejectKind::SessionConflict
    );
    // Only the rejected requests' memory (for retries) differs; no seat, session or queue moved.
    let after = qlm_engine::Engine::from_snapshot(&w.engine.snapshot()).unwrap();
    assert_eq!(after.checkouts(), qlm_engine::Engine::from_snapshot(&before).unwrap().checkouts());
    assert_eq!(w.in_use("vhdl"), 0);
    assert_eq!(w.engine.session_count(), 1);
}

#[test]
fn a_snapshot_restores_the_same_engine_with_the_same_bytes() {
    let mut w = World::new(vec![pool("vhdl", 3)], reserve_policy());
    w.open("a", "alice", "h");
    w.grant("a", "vhdl", 1);
    let bytes = w.engine.snapshot();
    let restored = qlm_engine::Engine::from_snapshot(&bytes).unwrap();
    assert_eq!(restored, w.engine);
    assert_eq!(restored.snapshot(), bytes);
    assert!(qlm_engine::Engine::from_snapshot(&bytes[..bytes.len() / 2]).is_err());
}
