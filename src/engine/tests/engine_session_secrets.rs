//! Sessions only their owner can act for, and request ids that name one request: what the
//! engine answers, and what it tells the server before anything is proposed (`admit`).

use qlm_engine::testkit::{World, pool};
use qlm_engine::{Admission, Command, Handle, Outcome, RejectKind, checkin_key, checkout_key};
use qlm_license::Policy;

fn open(world: &mut World, id: &str, secret: &str, pid: u32) -> Outcome {
    world
        .apply(Command::OpenSession {
            session_id: id.into(),
            secret: secret.into(),
            user: "alice".into(),
            host: "ws1".into(),
            pid,
            display: String::new(),
            ttl_ms: 30_000,
        })
        .outcome
}

fn checkout(session: &str, request_id: &str, feature: &str, count: u32) -> Command {
    Command::Checkout {
        session_id: session.into(),
        request_id: request_id.into(),
        feature: feature.into(),
        version: "1.0".parse().unwrap(),
        count,
        wait: false,
        borrow_until: None,
    }
}

fn rejected_kind(outcome: &Outcome) -> Option<RejectKind> {
    match outcome {
        Outcome::Rejected(rejection) => Some(rejection.kind),
        _ => None,
    }
}

#[test]
fn a_retried_open_gets_the_first_secret_and_another_process_is_refused() {
    let mut world = World::new(vec![pool("vhdl", 2)], Policy::default());
    let first = open(&mut world, "s1", "first-secret", 7);
    assert_eq!(
        first,
        Outcome::SessionOpened { session_id: "s1".into(), secret: "first-secret".into() }
    );
    // The retry came through another node, which made another secret: the session keeps its own.
    let retry = open(&mut world, "s1", "second-secret", 7);
    assert_eq!(retry, first);
    let other_pid = open(&mut world, "s1", "third-secret", 8);
    assert_eq!(rejected_kind(&other_pid), Some(RejectKind::SessionConflict));
}

#[test]
fn admit_tells_a_wrong_secret_an_unknown_session_and_a_reused_request_id() {
    let mut world = World::new(vec![pool("vhdl", 2), pool("sim", 2)], Policy::default());
    open(&mut world, "s1", "k1", 7);
    let engine = &world.engine;
    assert_eq!(engine.admit("s1", "k1", None), Admission::Admitted { live: true });
    assert_eq!(engine.admit("s1", "k2", None), Admission::WrongSecret);
    assert_eq!(engine.admit("s1", "", None), Admission::WrongSecret);
    assert_eq!(engine.admit("s9", "k1", None), Admission::UnknownSession);

    let applied = world.apply(checkout("s1", "r1", "vhdl", 1));
    let Outcome::Granted(grant) = applied.outcome else { panic!("{applied:?}") };
    let version = "1.0".parse().unwrap();
    let same = checkout_key("vhdl", &version, 1, false, None);
    let other = checkout_key("sim", &version, 1, false, None);
    let engine = &world.engine;
    assert_eq!(engine.admit("s1", "k1", Some(("r1", same))), Admission::Admitted { live: true });
    assert_eq!(engine.admit("s1", "k1", Some(("r1", other))), Admission::RequestIdReused);
    assert_eq!(engine.admit("s1", "k1", Some(("r2", other))), Admission::Admitted { live: true });
    let checkin = checkin_key(grant.handle);
    assert_eq!(engine.admit("s1", "k1", Some(("r1", checkin))), Admission::RequestIdReused);
}

#[test]
fn a_request_id_reused_for_another_request_is_refused_and_changes_nothing() {
    let mut world = World::new(vec![pool("vhdl", 2), pool("sim", 2)], Policy::default());
    open(&mut world, "s1", "k1", 7);
    let first = world.apply(checkout("s1", "r1", "vhdl", 1)).outcome;
    assert!(matches!(first, Outcome::Granted(_)), "{first:?}");
    // The same request again is a retry: the first answer.
    assert_eq!(world.apply(checkout("s1", "r1", "vhdl", 1)).outcome, first);
    // Another feature, or another count, under the same id is not a retry.
    for reused in [checkout("s1", "r1", "sim", 1), checkout("s1", "r1", "vhdl", 2)] {
        let outcome = world.apply(reused).outcome;
        assert_eq!(rejected_kind(&outcome), Some(RejectKind::InvalidArgument), "{outcome:?}");
    }
    // A checkin under the checkout's request id neither checks in nor answers the grant.
    let Outcome::Granted(grant) = first else { unreachable!() };
    let checkin =
        Command::Checkin { session_id: "s1".into(), request_id: "r1".into(), handle: grant.handle };
    let outcome = world.apply(checkin).outcome;
    assert_eq!(rejected_kind(&outcome), Some(RejectKind::InvalidArgument), "{outcome:?}");
    assert_eq!((world.in_use("vhdl"), world.in_use("sim")), (1, 0));
    let checkin = Command::Checkin {
        session_id: "s1".into(),
        request_id: "r2".into(),
        handle: Handle(grant.handle.0),
    };
    assert_eq!(world.apply(checkin).outcome, Outcome::CheckedIn { handle: grant.handle });
}

#[test]
fn names_with_bidirectional_overrides_are_refused() {
    let mut world = World::new(vec![pool("vhdl", 2)], Policy::default());
    let outcome = world
        .apply(Command::OpenSession {
            session_id: "s1".into(),
            secret: "k1".into(),
            user: "alice\u{202E}nimda".into(),
            host: "ws1".into(),
            pid: 1,
            display: String::new(),
            ttl_ms: 30_000,
        })
        .outcome;
    let Outcome::Rejected(rejection) = outcome else { panic!("{outcome:?}") };
    assert_eq!(rejection.kind, RejectKind::InvalidArgument);
    assert!(rejection.message.contains("U+202E"), "{}", rejection.message);
}

#[test]
fn the_cluster_holds_at_most_max_sessions_and_a_full_cluster_refuses_new_ones_only() {
    use qlm_engine::{Engine, MAX_SESSIONS};
    use qlm_license::Timestamp;
    let mut engine = Engine::new();
    let open = |i: usize| Command::OpenSession {
        session_id: format!("s{i}"),
        secret: format!("k{i}").into(),
        user: "flood".into(),
        host: "ws".into(),
        pid: 1,
        display: String::new(),
        ttl_ms: 30_000,
    };
    for i in 0..MAX_SESSIONS {
        let outcome = engine.apply(open(i), Timestamp(1)).outcome;
        assert!(matches!(outcome, Outcome::SessionOpened { .. }), "{i}: {outcome:?}");
    }
    let refused = engine.apply(open(MAX_SESSIONS), Timestamp(1)).outcome;
    assert_eq!(rejected_kind(&refused), Some(RejectKind::TooManySessions), "{refused:?}");
    assert_eq!(engine.session_count(), MAX_SESSIONS);
    // A retried open of a session it holds is still answered.
    let retried = engine.apply(open(7), Timestamp(1)).outcome;
    assert_eq!(retried, Outcome::SessionOpened { session_id: "s7".into(), secret: "k7".into() });
}
