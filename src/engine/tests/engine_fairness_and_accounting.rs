//! Fairness and seat accounting: the queue's order, overlapping reservations, shared and
//! lingering seats, renewals and retries. Each test states a behaviour a user relies on.

use qlm_engine::testkit::{World, pool, reason, version};
use qlm_engine::{Command, Outcome};
use qlm_license::{DupGroup, Policy, PoolId, SeatRule, Who, WhoKind};

fn who(kind: WhoKind, name: &str) -> Who {
    Who { kind, name: name.into() }
}

fn checkout_cmd(s: &str, rid: &str, f: &str, v: &str, count: u32, wait: bool) -> Command {
    Command::Checkout {
        session_id: s.into(),
        request_id: rid.into(),
        feature: f.into(),
        version: version(v),
        count,
        wait,
        borrow_until: None,
    }
}

/// A new request does not take seats the head of the queue is waiting for.
#[test]
fn a_new_request_does_not_overtake_the_head_of_the_queue() {
    let mut w = World::new(vec![pool("sim", 4)], Policy::default());
    for s in ["a", "b", "big", "c"] {
        w.open(s, s, "h");
    }
    let a = w.grant("a", "sim", 2);
    w.grant("b", "sim", 2);
    assert!(matches!(w.wait_for("big", "sim", 3), Outcome::Queued { .. }));
    w.checkin("a", a.handle); // 2 free, big (3) still blocked
    let late = w.checkout("c", "sim", 1);
    assert!(
        !matches!(late, Outcome::Granted(_)),
        "a later, smaller request overtook the queued head: {late:?}"
    );
}

/// A free seat the head of the queue can never use (a lower version) goes to the next in line.
#[test]
fn a_queued_request_is_not_held_up_by_a_head_that_cannot_use_the_free_seat() {
    let mut p1 = pool("sim", 1);
    p1.id = PoolId("v1".into());
    let mut p2 = pool("sim", 1);
    p2.id = PoolId("v2".into());
    p2.version = version("2.0");
    let mut w = World::new(vec![p1, p2], Policy::default());
    for s in ["x", "y", "head", "w1", "n"] {
        w.open(s, s, "h");
    }
    let Outcome::Granted(x) = w.checkout_full("x", "sim", "1.0", 1, false, None).outcome else {
        panic!()
    };
    assert_eq!(x.version, version("1.0"));
    assert!(matches!(
        w.checkout_full("y", "sim", "2.0", 1, false, None).outcome,
        Outcome::Granted(_)
    ));
    assert!(matches!(
        w.checkout_full("head", "sim", "2.0", 1, true, None).outcome,
        Outcome::Queued { .. }
    ));
    assert!(matches!(
        w.checkout_full("w1", "sim", "1.0", 1, true, None).outcome,
        Outcome::Queued { .. }
    ));
    w.checkin("x", x.handle); // the v1 seat is free; head (v2) can never use it
    assert!(
        w.engine.session("w1").unwrap().checkouts.len() == 1,
        "w1 waits although a seat it can use (and the head cannot) is free; queue {:?}",
        w.engine.queue("sim")
    );
}

/// Overlapping RESERVE lines (a user and a group that contains her) each keep their seat.
#[test]
fn one_seat_does_not_fill_two_overlapping_reservations() {
    let mut policy = Policy::default();
    policy.groups.insert("team".into(), ["alice".into(), "lea".into()].into());
    for w in [who(WhoKind::User, "alice"), who(WhoKind::Group, "team")] {
        policy.reserves.push(SeatRule { seats: 1, feature: "vhdl".into(), who: w, line: 1 });
    }
    let mut w = World::new(vec![pool("vhdl", 3)], policy);
    for (s, u) in [("a", "alice"), ("b", "bob"), ("l", "lea")] {
        w.open(s, u, "h");
    }
    w.grant("a", "vhdl", 1); // alice uses her own reservation
    w.grant("b", "vhdl", 1); // the one unreserved seat
    let third = w.checkout("b", "vhdl", 1);
    assert_eq!(
        reason(&third),
        "RESERVED_FOR_OTHERS",
        "bob took the seat reserved for GROUP team; lea now gets {:?}",
        w.checkout("l", "vhdl", 1)
    );
}

/// Taking back one seat of a lingering three frees the other two at once.
#[test]
fn taking_back_one_lingering_seat_of_three_frees_the_other_two() {
    let mut policy = Policy::default();
    policy.lingers.insert("vhdl".into(), 60);
    let mut w = World::new(vec![pool("vhdl", 3)], policy);
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let g = w.grant("a", "vhdl", 3);
    w.checkin("a", g.handle);
    let back = w.grant("a", "vhdl", 1);
    assert!(back.shared);
    w.advance(3600);
    assert_eq!(
        w.in_use("vhdl"),
        1,
        "one seat checked out, but {} taken; bob: {:?}",
        w.in_use("vhdl"),
        w.checkout("b", "vhdl", 1)
    );
}

/// When a big checkout leaves a small dup-group sharer behind, the surplus seats are freed.
#[test]
fn a_small_sharer_left_behind_keeps_only_the_seats_it_needs() {
    let mut p = pool("vhdl", 3);
    p.dup_group = DupGroup::User;
    let mut w = World::new(vec![p], Policy::default());
    w.open("a", "alice", "h");
    w.open("a2", "alice", "h2");
    let big = w.grant("a", "vhdl", 3);
    let small = w.grant("a2", "vhdl", 1);
    assert!(small.shared);
    w.checkin("a", big.handle);
    assert_eq!(w.in_use("vhdl"), 1, "a 1-seat checkout holds {} seats", w.in_use("vhdl"));
}

/// Once the owner of shared seats leaves, they count against the sharer's MAX.
#[test]
fn shared_seats_count_against_the_sharer_once_the_owner_leaves() {
    let mut p = pool("vhdl", 5);
    p.dup_group = DupGroup::Host;
    let mut w = World::new(vec![p.clone()], Policy::default());
    w.open("a", "alice", "h1");
    w.open("c1", "carol", "h1");
    w.open("c2", "carol", "h2");
    let ga = w.grant("a", "vhdl", 1);
    assert!(w.grant("c1", "vhdl", 1).shared);
    let mut policy = Policy::default();
    policy.maxes.push(SeatRule {
        seats: 1,
        feature: "vhdl".into(),
        who: who(WhoKind::User, "carol"),
        line: 1,
    });
    w.apply(Command::LoadLicenses { pools: vec![p], policy });
    w.checkin("a", ga.handle); // carol alone holds the h1 seat now
    let second = w.checkout("c2", "vhdl", 1);
    assert_eq!(reason(&second), "MAX_REACHED", "carol may not hold 2 distinct seats under MAX 1");
    assert_eq!(w.in_use("vhdl"), 1);
}

/// A request waiting long in a queue is not forgotten by the retry memory.
#[test]
fn a_long_queued_request_is_still_remembered_for_retries() {
    let mut w = World::new(vec![pool("vhdl", 2), pool("gui", 20)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    w.grant("a", "vhdl", 1);
    w.grant("a", "vhdl", 1);
    let wait = checkout_cmd("b", "wait-1", "vhdl", "1.0", 1, true);
    let first = w.apply(wait.clone()).outcome;
    assert!(matches!(first, Outcome::Queued { .. }));
    for _ in 0..8 {
        w.grant("b", "gui", 1);
    }
    let retry = w.apply(wait.clone()).outcome;
    assert_eq!(retry, first, "retry of the still-queued request");
}

/// Nor once it is granted: its retry returns the grant, not a second one.
#[test]
fn a_retry_of_a_long_queued_request_after_its_grant_does_not_grant_twice() {
    let mut w = World::new(vec![pool("vhdl", 2), pool("gui", 20)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    let g1 = w.grant("a", "vhdl", 1);
    let g2 = w.grant("a", "vhdl", 1);
    let wait = checkout_cmd("b", "wait-1", "vhdl", "1.0", 1, true);
    assert!(matches!(w.apply(wait.clone()).outcome, Outcome::Queued { .. }));
    for _ in 0..8 {
        w.grant("b", "gui", 1);
    }
    w.checkin("a", g1.handle); // bob's queued request is granted
    w.checkin("a", g2.handle);
    let _ = w.apply(wait.clone()).outcome;
    let bobs_vhdl =
        w.engine.checkouts().iter().filter(|c| &*c.user == "bob" && &*c.feature == "vhdl").count();
    assert_eq!(bobs_vhdl, 1, "one request, {bobs_vhdl} grants");
}

/// A renewed line (new id) does not add its count to the seats held on the old one.
#[test]
fn a_renewal_never_serves_the_count_twice() {
    let old = pool("vhdl", 2);
    let mut w = World::new(vec![old], Policy::default());
    for s in ["a", "b", "c", "d"] {
        w.open(s, s, "h");
    }
    w.grant("a", "vhdl", 1);
    w.grant("b", "vhdl", 1);
    let mut renewed = pool("vhdl", 2);
    renewed.id = PoolId("vhdl-2-renewed".into());
    w.apply(Command::LoadLicenses { pools: vec![renewed], policy: Policy::default() });
    let c = w.checkout("c", "vhdl", 1);
    let d = w.checkout("d", "vhdl", 1);
    assert_eq!(
        w.in_use("vhdl"),
        2,
        "a 2-seat license has {} seats in use ({c:?}, {d:?})",
        w.in_use("vhdl")
    );
}

/// A retry of a wait the client cancelled does not claim it still waits.
#[test]
fn a_retry_of_a_cancelled_wait_does_not_say_queued() {
    let mut w = World::new(vec![pool("vhdl", 1)], Policy::default());
    w.open("a", "alice", "h");
    w.open("b", "bob", "h");
    w.grant("a", "vhdl", 1);
    let wait = checkout_cmd("b", "wait-1", "vhdl", "1.0", 1, true);
    let Outcome::Queued { handle, .. } = w.apply(wait.clone()).outcome else { panic!() };
    w.checkin("b", handle);
    let retry = w.apply(wait).outcome;
    assert!(
        !matches!(retry, Outcome::Queued { .. }),
        "retry says {retry:?}, queue {:?}",
        w.engine.queue("vhdl")
    );
}

/// A pool dated far beyond what the parser allows does not overflow the engine.
#[test]
fn a_pool_dated_far_in_the_future_does_not_overflow() {
    let mut p = pool("vhdl", 1);
    p.expires =
        qlm_license::Expiry::On(qlm_license::Date { year: 1_000_000_000, month: 1, day: 1 });
    let mut w = World::new(vec![p], Policy::default());
    w.open("a", "alice", "h");
    w.grant("a", "vhdl", 1);
}
