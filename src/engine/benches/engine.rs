//! Apply throughput of the license engine: checkout + checkin cycles over many sessions and
//! features, on one core. `make bench-engine` runs it; docs/BENCHMARKS.md records the figures.
//!
//! Commands are built before the timed part (in chunks), so the figure is the engine's own
//! cost per apply: what a replica spends applying a committed entry.

use std::time::{Duration, Instant};

use qlm_engine::{Command, Engine, Handle, Outcome};
use qlm_license::{
    DupGroup, Expiry, HostId, Policy, Pool, PoolId, SeatRule, SeatUnit, Timestamp, Version, Who,
    WhoKind,
};

/// Commands built per timed chunk.
const CHUNK: usize = 200_000;
/// Timed applies per scenario.
const APPLIES: usize = 4_000_000;
const FEATURES: usize = 100;
const T0: u64 = 1_795_478_400_000;

fn pools(seats_per_feature: u32) -> Vec<Pool> {
    (0..FEATURES)
        .map(|f| Pool {
            id: PoolId(format!("pool-{f}")),
            feature: format!("feature-{f}"),
            vendor: "bench".into(),
            version: Version::ZERO,
            seats: seats_per_feature,
            unit: SeatUnit::Seats,
            start: None,
            expires: Expiry::Permanent,
            issued: None,
            hostid: HostId::Any,
            dup_group: DupGroup::None,
            customer: None,
            notes: None,
            max_borrow_hours: 0,
        })
        .collect()
}

/// A policy with one RESERVE and one MAX per feature, so the rule paths are measured too.
fn busy_policy() -> Policy {
    let mut policy = Policy::default();
    policy.groups.insert("leads".into(), (0..50).map(|u| format!("user-{u}")).collect());
    for f in 0..FEATURES {
        let who = Who { kind: WhoKind::Group, name: "leads".into() };
        policy.reserves.push(SeatRule {
            seats: 5,
            feature: format!("feature-{f}"),
            who: who.clone(),
            line: 1,
        });
        policy.maxes.push(SeatRule { seats: 1_000, feature: format!("feature-{f}"), who, line: 2 });
    }
    policy
}

/// Opens `sessions` sessions, then times `APPLIES` applies of checkout+checkin cycles.
fn run(name: &str, sessions: usize, policy: Policy) {
    let mut engine = Engine::new();
    let mut now = T0;
    let seats = (sessions / FEATURES + 10) as u32;
    engine.apply(Command::LoadLicenses { pools: pools(seats), policy }, Timestamp(now));
    for s in 0..sessions {
        engine.apply(
            Command::OpenSession {
                session_id: session_id(s),
                secret: "s3cret".into(),
                user: format!("user-{}", s % 1_000),
                host: format!("host-{}", s % 300),
                pid: s as u32,
                display: ":0".into(),
                ttl_ms: 30_000,
            },
            Timestamp(now),
        );
    }
    let mut elapsed = Duration::ZERO;
    let mut done = 0usize;
    let mut granted = 0usize;
    let mut cycle = 0u64;
    while done < APPLIES {
        // A chunk of checkout -> checkin pairs. Every checkout is granted (each feature has
        // more seats than are ever out at once), so handles are numbered 1, 2, 3, ... in order.
        let commands: Vec<Command> = (0..CHUNK as u64 / 2)
            .flat_map(|i| {
                let c = cycle + i;
                let session_id = session_id(c as usize % sessions);
                [
                    Command::Checkout {
                        session_id: session_id.clone(),
                        request_id: format!("o{c}"),
                        feature: format!("feature-{}", c as usize % FEATURES),
                        version: Version::ZERO,
                        count: 1,
                        wait: false,
                        borrow_until: None,
                    },
                    Command::Checkin {
                        session_id,
                        request_id: format!("i{c}"),
                        handle: Handle(c + 1),
                    },
                ]
            })
            .collect();
        let start = Instant::now();
        for command in commands {
            now += 1;
            if let Outcome::Granted(_) = engine.apply(command, Timestamp(now)).outcome {
                granted += 1;
            }
        }
        elapsed += start.elapsed();
        cycle += CHUNK as u64 / 2;
        done += CHUNK;
    }
    assert_eq!(granted, done / 2, "every checkout of the benchmark is granted");
    let per_sec = done as f64 / elapsed.as_secs_f64();
    let snapshot = engine.snapshot().len();
    println!(
        "{name:<34} sessions={sessions:>7} applies={done} granted={granted} time={:.3}s \
         applies/s={:.0} ns/apply={:.0} snapshot={} KiB",
        elapsed.as_secs_f64(),
        per_sec,
        1e9 / per_sec,
        snapshot / 1024
    );
    if let Err(broken) = engine.check_invariants() {
        panic!("invariant broken after the benchmark: {broken}");
    }
}

/// A session id shaped like the server's (random hex), derived from `n` so runs repeat.
fn session_id(n: usize) -> String {
    let mixed = (n as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    format!("{:016x}{:016x}", mixed, mixed.rotate_left(29) ^ n as u64)
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("engine apply throughput: checkout+checkin cycles over {FEATURES} features, one core");
    run("no policy", 10_000, Policy::default());
    run("RESERVE+MAX on every feature", 10_000, busy_policy());
    run("no policy", 100_000, Policy::default());
    run("RESERVE+MAX on every feature", 100_000, busy_policy());
}
