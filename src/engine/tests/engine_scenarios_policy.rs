//! Scenario tests of the options file's rules (RESERVE, MAX, INCLUDE/EXCLUDE, TIMEOUT), admin
//! removal, license reloads, the engine's time, bad requests and snapshots; each named for the
//! behaviour a user sees.

use qlm_engine::testkit::{T0, World, pool, reason};
use qlm_engine::{Command, Event, Outcome, RejectKind, RemoveTarget};
use qlm_license::{AccessRule, Policy, PoolId, SeatRule, Timestamp, Who, WhoKind};

fn who(kind: WhoKind, name: &str) -> Who {
    Who { kind, name: name.into() }
}

fn rejected_kind(outcome: &Outcome) -> RejectKind {
    match outcome {
        Outcome::Rejected(r) => r.kind,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn linger_policy(secs: u32) -> Policy {
    let mut policy = Policy::default();
    policy.lingers.insert("vhdl".into(), secs);
    policy
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
