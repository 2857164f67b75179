//! Scenario tests of where a checkout's seats come from: pools adding up, versions, start and
//! expiry dates, dup groups and linger; each named for the behaviour a user sees.

use qlm_engine::testkit::{T0, World, date, pool, reason, version};
use qlm_engine::{Command, Event, Outcome};
use qlm_license::{DupGroup, Expiry, Policy, PoolId, Timestamp};

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
