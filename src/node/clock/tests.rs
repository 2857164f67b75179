//! The offset estimate, the judgement against a majority and the pace rule, on made-up
//! readings.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;

const YEAR_US: u64 = 365 * 86_400 * 1_000_000;

fn voters(n: u64) -> BTreeSet<NodeId> {
    (1..=n).collect()
}

/// Records a call to `peer` of round trip `rtt_ms` whose answer says `peer_us`, sent when
/// this node's wall clock said `sent_us`.
fn measure(clock: &LicenseClock, peer: NodeId, sent_us: u64, rtt_ms: u64, peer_us: u64) -> Instant {
    let sent = Instant::now();
    clock.record(peer, sent_us, sent, sent + Duration::from_millis(rtt_ms), peer_us);
    sent
}

#[test]
fn the_offset_is_the_peers_clock_less_the_middle_of_the_call() {
    let clock = LicenseClock::new(Duration::from_millis(500));
    measure(&clock, 2, 1_000_000, 10, 1_000_000 + 5_000 + 300_000);
    let m = clock.measurements()[&2];
    assert_eq!((m.offset_us, m.rtt_us), (300_000, 10_000));
    assert_eq!(m.least_offset_us(), 295_000);
    // A release that does not send its clock (0) is recorded as clockless, agreeing.
    measure(&clock, 3, 1_000_000, 10, 0);
    let m = clock.measurements()[&3];
    assert!(m.clockless && m.offset_us == 0, "{m:?}");
}

#[test]
fn one_clock_a_year_ahead_is_out_of_bounds_on_its_own_node_only() {
    let bound = Duration::from_millis(500);
    let now_us = 1_800_000_000_000_000;
    // Node 3's view: both peers a year behind it.
    let bad = LicenseClock::new(bound);
    let round = Instant::now();
    measure(&bad, 1, now_us + YEAR_US, 2, now_us);
    measure(&bad, 2, now_us + YEAR_US, 2, now_us);
    let judged = bad.judge(3, &voters(3), round, Instant::now());
    let Judgement::OutOfBounds { disagreeing, typical_offset_us } = judged else {
        panic!("{judged:?}")
    };
    assert_eq!(disagreeing, 2);
    assert!(typical_offset_us < -(YEAR_US as i64) + 10_000, "{typical_offset_us}");
    // Node 1's view: node 2 agrees, node 3 is a year ahead; one of three is no majority.
    let good = LicenseClock::new(bound);
    measure(&good, 2, now_us, 2, now_us + 1_000);
    measure(&good, 3, now_us, 2, now_us + YEAR_US);
    assert_eq!(
        good.judge(1, &voters(3), round, Instant::now()),
        Judgement::InBounds { agreeing: 2 }
    );
}

#[test]
fn an_hour_behind_is_out_of_bounds_and_the_round_trip_is_given_in_the_nodes_favour() {
    let clock = LicenseClock::new(Duration::from_millis(500));
    let round = Instant::now();
    let hour_us = 3_600_000_000;
    measure(&clock, 1, 0, 2, hour_us);
    measure(&clock, 2, 0, 2, hour_us);
    assert!(matches!(
        clock.judge(3, &voters(3), round, Instant::now()),
        Judgement::OutOfBounds { .. }
    ));
    // 600 ms off, measured over a 400 ms round trip: it may be 400 ms off, inside the bound.
    let doubtful = LicenseClock::new(Duration::from_millis(500));
    measure(&doubtful, 1, 0, 400, 600_000 + 200_000);
    measure(&doubtful, 2, 0, 400, 600_000 + 200_000);
    assert_eq!(
        doubtful.judge(3, &voters(3), round, Instant::now()),
        Judgement::InBounds { agreeing: 3 }
    );
}

#[test]
fn stale_measurements_and_non_voters_say_nothing() {
    let clock = LicenseClock::new(Duration::from_millis(500));
    let before = Instant::now();
    measure(&clock, 1, 0, 2, YEAR_US);
    measure(&clock, 2, 0, 2, YEAR_US);
    let later = Instant::now() + Duration::from_millis(10);
    // Taken before the round began: not counted.
    assert_eq!(clock.judge(3, &voters(3), later, later), Judgement::InBounds { agreeing: 1 });
    // Older than the TTL: not counted.
    let much_later = before + MEASUREMENT_TTL + Duration::from_secs(1);
    assert_eq!(clock.judge(3, &voters(3), before, much_later), Judgement::InBounds { agreeing: 1 });
    // Peers that are not voters: not counted.
    let only_self: BTreeSet<NodeId> = [3].into();
    assert_eq!(
        clock.judge(3, &only_self, before, Instant::now()),
        Judgement::InBounds { agreeing: 1 }
    );
}

#[test]
fn stamps_keep_the_monotonic_pace_and_never_go_back() {
    let clock = LicenseClock::new(Duration::from_millis(500));
    let t0 = Instant::now();
    let wall0 = 1_800_000_000_000;
    clock.conclude_round(&Judgement::InBounds { agreeing: 3 }, 3, wall0, t0);
    assert_eq!(clock.stamp_at(wall0 + 100, t0 + Duration::from_millis(100)), wall0 + 100);
    // The wall clock jumps a year ahead 200 ms later: the stamp moves 200 ms.
    let year_ms = YEAR_US / 1000;
    let t = t0 + Duration::from_millis(200);
    assert_eq!(clock.stamp_at(wall0 + 200 + year_ms, t), wall0 + 200);
    // A round that finds the clock out of bounds does not move the anchor to the bad reading.
    let out = Judgement::OutOfBounds { disagreeing: 2, typical_offset_us: -(YEAR_US as i64) };
    assert!(clock.conclude_round(&out, 3, wall0 + 300 + year_ms, t0 + Duration::from_millis(300)));
    assert!(clock.is_out_of_bounds());
    let t = t0 + Duration::from_millis(400);
    assert_eq!(clock.stamp_at(wall0 + 400 + year_ms, t), wall0 + 400);
    // Set back an hour: the stamp holds (never back) until the wall clock catches up.
    let t = t0 + Duration::from_millis(500);
    assert_eq!(clock.stamp_at(wall0 + 500 - 3_600_000, t), wall0 + 400);
    // A round in bounds with a majority agreeing re-anchors to its own reading.
    let t = t0 + Duration::from_millis(600);
    assert!(clock.conclude_round(&Judgement::InBounds { agreeing: 2 }, 3, wall0 + 600, t));
    assert!(!clock.is_out_of_bounds());
    assert_eq!(clock.stamp_at(wall0 + 700, t + Duration::from_millis(100)), wall0 + 700);
    // In bounds but without a majority agreeing (peers unmeasured): the anchor stays.
    assert!(!clock.conclude_round(
        &Judgement::InBounds { agreeing: 1 },
        3,
        wall0 + year_ms,
        t + Duration::from_millis(150)
    ));
    assert_eq!(clock.stamp_at(wall0 + year_ms, t + Duration::from_millis(200)), wall0 + 800);
}

#[test]
fn peers_of_an_earlier_release_count_as_agreeing() {
    let clock = LicenseClock::new(Duration::from_millis(500));
    let round = Instant::now();
    measure(&clock, 1, 0, 2, 0);
    measure(&clock, 2, 0, 2, 0);
    assert_eq!(
        clock.judge(3, &voters(3), round, Instant::now()),
        Judgement::InBounds { agreeing: 3 }
    );
}

#[test]
fn a_node_may_stand_only_after_a_majority_vouched_for_its_clock() {
    let clock = LicenseClock::new(Duration::from_millis(500));
    assert!(!clock.may_stand(), "nothing measured yet");
    let t = Instant::now();
    clock.conclude_round(&Judgement::InBounds { agreeing: 1 }, 3, 0, t);
    assert!(!clock.may_stand(), "only itself agreeing, of three voters");
    clock.conclude_round(&Judgement::InBounds { agreeing: 2 }, 3, 0, t);
    assert!(clock.may_stand());
    assert!(clock.lets_lead().is_ok());
    let out = Judgement::OutOfBounds { disagreeing: 2, typical_offset_us: 3_600_000_000 };
    clock.conclude_round(&out, 3, 0, t);
    assert!(!clock.may_stand());
    let refused = clock.lets_lead().expect_err("out of bounds");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("clock"), "{}", refused.message());
    // A cluster of one vouches for itself.
    clock.conclude_round(&Judgement::InBounds { agreeing: 1 }, 1, 0, t);
    assert!(clock.may_stand());
    // Once vouched for, a round that reaches no peer (a node cut off) does not stop it
    // standing: only a round that finds it out of bounds does.
    clock.conclude_round(&Judgement::InBounds { agreeing: 1 }, 3, 0, t);
    assert!(clock.may_stand());
}
