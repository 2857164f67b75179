//! Property tests: thousands of random command sequences against the engine, with every
//! invariant checked after every step, and replay determinism checked at the end.

use proptest::prelude::*;
use qlm_engine::testkit::{T0, pool};
use qlm_engine::{Command, Engine, Event, Handle, Outcome, RemoveTarget};
use qlm_license::{
    AccessRule, Date, DupGroup, Expiry, Policy, PoolId, SeatRule, Timestamp, Version, Who, WhoKind,
};

const FEATURES: [&str; 3] = ["vhdl", "sim", "synth"];
const USERS: [&str; 4] = ["alice", "bob", "carol", "lea"];
const HOSTS: [&str; 2] = ["h1", "h2"];
const SESSIONS: usize = 6;

/// One step of a random history.
#[derive(Clone, Debug)]
enum Step {
    Open {
        session: usize,
        user: usize,
        host: usize,
    },
    Close {
        session: usize,
    },
    Checkout {
        session: usize,
        feature: usize,
        version: u32,
        count: u32,
        wait: bool,
        borrow_hours: Option<u64>,
    },
    /// Checks in the session's `pick`-th checkout or queued request (or a bogus handle).
    Checkin {
        session: usize,
        pick: usize,
    },
    Expire {
        sessions: Vec<usize>,
    },
    RemoveHandle {
        handle: u64,
    },
    RemoveUser {
        user: usize,
    },
    Retry,
    /// Reloads without one pool, with the first or the second policy.
    Reload {
        drop_pool: usize,
        second_policy: bool,
    },
    Advance {
        secs: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let s = 0..SESSIONS;
    prop_oneof![
        2 => (s.clone(), 0..USERS.len(), 0..HOSTS.len()).prop_map(|(session, user, host)| Step::Open { session, user, host }),
        1 => s.clone().prop_map(|session| Step::Close { session }),
        6 => (s.clone(), 0..FEATURES.len(), 1..4u32, 1..4u32, any::<bool>(), prop::option::weighted(0.1, 1..100u64))
            .prop_map(|(session, feature, version, count, wait, borrow_hours)| Step::Checkout { session, feature, version, count, wait, borrow_hours }),
        5 => (s.clone(), 0..8usize).prop_map(|(session, pick)| Step::Checkin { session, pick }),
        1 => prop::collection::vec(s.clone(), 1..3).prop_map(|sessions| Step::Expire { sessions }),
        1 => (1..60u64).prop_map(|handle| Step::RemoveHandle { handle }),
        1 => (0..USERS.len()).prop_map(|user| Step::RemoveUser { user }),
        1 => Just(Step::Retry),
        1 => (0..8usize, any::<bool>()).prop_map(|(drop_pool, second_policy)| Step::Reload { drop_pool, second_policy }),
        4 => prop_oneof![8 => 0..90u64, 1 => 3_600..200_000u64].prop_map(|secs| Step::Advance { secs }),
    ]
}

/// A license set: per feature one or two pools with random seats, versions, dates, dup groups.
fn pools() -> impl Strategy<Value = Vec<qlm_license::Pool>> {
    let one = (0..FEATURES.len(), 1..5u32, 1..4u32, 0..4u8, 0..3u8, 0..4u32);
    prop::collection::vec(one, 1..6).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (feature, seats, version, dup, dates, borrow))| {
                let mut p = pool(FEATURES[feature], seats);
                p.id = PoolId(format!("pool-{i}"));
                p.version = Version::from_str_lossy(version);
                p.dup_group = [DupGroup::None, DupGroup::User, DupGroup::Host, DupGroup::UserHost]
                    [dup as usize];
                let day = |d: i64| Date::from_days_since_epoch((T0 / 86_400_000) as i64 + d);
                match dates {
                    1 => p.expires = Expiry::On(day(1)),
                    2 => p.start = Some(day(1)),
                    _ => {}
                }
                p.max_borrow_hours = borrow * 24;
                p
            })
            .collect()
    })
}

trait FromU32 {
    fn from_str_lossy(v: u32) -> Version;
}

impl FromU32 for Version {
    fn from_str_lossy(v: u32) -> Version {
        format!("{v}.0").parse().unwrap_or_default()
    }
}

fn who(kind: u8, i: usize) -> Who {
    match kind {
        0 => Who { kind: WhoKind::User, name: USERS[i % USERS.len()].into() },
        1 => Who { kind: WhoKind::Host, name: HOSTS[i % HOSTS.len()].into() },
        2 => Who { kind: WhoKind::Group, name: "team".into() },
        _ => Who { kind: WhoKind::HostGroup, name: "lab".into() },
    }
}

/// A policy with random reservations, limits, access lists, linger and timeouts.
fn policy() -> impl Strategy<Value = Policy> {
    let rule = (1..4u32, 0..FEATURES.len(), 0..4u8, 0..4usize);
    (
        prop::collection::vec(rule.clone(), 0..3),
        prop::collection::vec(rule, 0..3),
        prop::option::weighted(0.2, (0..FEATURES.len(), 0..4u8, 0..4usize)),
        prop::option::weighted(0.2, (0..FEATURES.len(), 0..4u8, 0..4usize)),
        prop::collection::btree_map(0..FEATURES.len(), 0..120u32, 0..2),
        prop::collection::btree_map(0..FEATURES.len(), 1..60u32, 0..2),
    )
        .prop_map(|(reserves, maxes, include, exclude, lingers, timeouts)| {
            let mut p = Policy::default();
            p.groups.insert("team".into(), ["alice".into(), "lea".into()].into());
            p.host_groups.insert("lab".into(), ["h2".into()].into());
            let seat_rule = |(seats, f, k, i): (u32, usize, u8, usize)| SeatRule {
                seats,
                feature: FEATURES[f].into(),
                who: who(k, i),
                line: 1,
            };
            p.reserves = reserves.into_iter().map(seat_rule).collect();
            p.maxes = maxes.into_iter().map(seat_rule).collect();
            let access = |(f, k, i): (usize, u8, usize)| AccessRule {
                feature: Some(FEATURES[f].into()),
                who: who(k, i),
                line: 1,
            };
            p.includes = include.into_iter().map(access).collect();
            p.excludes = exclude.into_iter().map(access).collect();
            p.lingers = lingers.into_iter().map(|(f, s)| (FEATURES[f].to_string(), s)).collect();
            p.timeouts = timeouts.into_iter().map(|(f, s)| (FEATURES[f].to_string(), s)).collect();
            p
        })
}

/// Turns steps into log entries, the way a leader would.
struct Log {
    entries: Vec<(Command, Timestamp)>,
    now: u64,
    request: u64,
    last_checkout: Option<Command>,
}

impl Log {
    fn command(
        &mut self,
        step: &Step,
        engine: &Engine,
        pools: &[qlm_license::Pool],
        policies: &(Policy, Policy),
    ) -> Command {
        let sid = |i: usize| format!("session-{i}");
        match step.clone() {
            Step::Open { session, user, host } => Command::OpenSession {
                session_id: sid(session),
                secret: format!("secret-{session}").into(),
                user: USERS[user].into(),
                host: HOSTS[host].into(),
                pid: 7,
                display: ":0".into(),
                ttl_ms: 30_000,
            },
            Step::Close { session } => Command::CloseSession { session_id: sid(session) },
            Step::Checkout { session, feature, version, count, wait, borrow_hours } => {
                self.request += 1;
                let command = Command::Checkout {
                    session_id: sid(session),
                    request_id: format!("r{}", self.request),
                    feature: FEATURES[feature].into(),
                    version: Version::from_str_lossy(version),
                    count,
                    wait,
                    borrow_until: borrow_hours.map(|h| Timestamp(self.now + h * 3_600_000)),
                };
                self.last_checkout = Some(command.clone());
                command
            }
            Step::Checkin { session, pick } => {
                self.request += 1;
                let mine: Vec<Handle> = engine
                    .session(&sid(session))
                    .map(|s| s.checkouts.into_iter().chain(s.queued).collect())
                    .unwrap_or_default();
                let handle = mine.get(pick % mine.len().max(1)).copied().unwrap_or(Handle(999));
                Command::Checkin {
                    session_id: sid(session),
                    request_id: format!("r{}", self.request),
                    handle,
                }
            }
            Step::Expire { sessions } => {
                Command::ExpireSessions { session_ids: sessions.into_iter().map(sid).collect() }
            }
            Step::RemoveHandle { handle } => {
                Command::Remove { target: RemoveTarget::Handle(Handle(handle)) }
            }
            Step::RemoveUser { user } => Command::Remove {
                target: RemoveTarget::Holder {
                    user: USERS[user].into(),
                    host: None,
                    feature: None,
                },
            },
            Step::Retry => self.last_checkout.clone().unwrap_or(Command::Tick),
            Step::Reload { drop_pool, second_policy } => {
                let policy = if second_policy { &policies.1 } else { &policies.0 };
                let kept = pools
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != drop_pool)
                    .map(|(_, p)| p.clone())
                    .collect();
                Command::LoadLicenses { pools: kept, policy: policy.clone() }
            }
            Step::Advance { secs } => {
                self.now += secs * 1000;
                Command::Tick
            }
        }
    }
}

/// Seats the clients named by `who` may still claim from `feature`'s reservations.
fn check_grant_rules(engine: &Engine, events: &[Event]) -> Result<(), String> {
    let policy = engine.policy();
    for event in events {
        let Event::CheckedOut { user, host, feature, shared: false, handle, .. } = event else {
            continue;
        };
        for r in engine.reservations(feature) {
            if !policy.names(&r.who, user, host) {
                let unmet = u64::from(r.seats).saturating_sub(r.held);
                let free = engine.free_seats(feature);
                if free < unmet {
                    return Err(format!(
                        "grant {handle} to {user}@{host} left {free} free seats of `{feature}` but {unmet} are reserved for {}",
                        r.who
                    ));
                }
            }
        }
        for rule in policy
            .maxes
            .iter()
            .filter(|m| *m.feature == **feature && policy.names(&m.who, user, host))
        {
            let held: u64 = engine
                .checkouts()
                .iter()
                .filter(|c| c.feature == *feature && policy.names(&rule.who, &c.user, &c.host))
                .map(|c| u64::from(c.seats))
                .sum();
            if held > u64::from(rule.seats) {
                return Err(format!(
                    "grant {handle} to {user}@{host}: {} holds {held} of `{feature}` over MAX {}",
                    rule.who, rule.seats
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_invariant_holds_after_every_step_and_replay_is_deterministic(
        pools in pools(),
        policy in policy(),
        second_policy in policy(),
        people in prop::collection::vec((0..USERS.len(), 0..HOSTS.len()), SESSIONS - 1),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let policies = (policy.clone(), second_policy);
        let mut log = Log { entries: Vec::new(), now: T0, request: 0, last_checkout: None };
        let mut engine = Engine::new();
        let load = Command::LoadLicenses { pools: pools.clone(), policy: policy.clone() };
        engine.apply(load.clone(), Timestamp(T0));
        log.entries.push((load, Timestamp(T0)));
        // Most sessions exist from the start, so that most steps do something.
        for (i, (user, host)) in people.iter().enumerate() {
            let open = log.command(&Step::Open { session: i, user: *user, host: *host }, &engine, &pools, &policies);
            engine.apply(open.clone(), Timestamp(T0));
            log.entries.push((open, Timestamp(T0)));
        }
        let preamble = log.entries.len();
        let mut outcomes = Vec::new();
        let mut halfway = None;
        let mut last_checkout_outcome = None;
        for (i, step) in steps.iter().enumerate() {
            if i == steps.len() / 2 {
                halfway = Some((engine.snapshot(), log.entries.len()));
            }
            let command = log.command(step, &engine, &pools, &policies);
            let stamp = Timestamp(log.now);
            let is_reload = matches!(command, Command::LoadLicenses { .. });
            let is_retry = matches!(step, Step::Retry);
            let applied = engine.apply(command.clone(), stamp);
            log.entries.push((command, stamp));
            if let Err(broken) = engine.check_invariants() {
                return Err(TestCaseError::fail(format!("step {i} {step:?}: {broken}")));
            }
            if !is_reload {
                check_grant_rules(&engine, &applied.events).map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
            }
            match step {
                Step::Checkout { session, .. } => last_checkout_outcome = Some((*session, applied.outcome.clone())),
                // A session id opened anew is a new session, with no memory of the old one's
                // requests (the server never reuses ids; the test does, to stress the engine).
                Step::Open { session, .. } | Step::Close { session } if last_checkout_outcome.as_ref().is_some_and(|(s, _)| s == session) => {
                    last_checkout_outcome = None;
                }
                Step::Expire { sessions } if last_checkout_outcome.as_ref().is_some_and(|(s, _)| sessions.contains(s)) => {
                    last_checkout_outcome = None;
                }
                _ => {}
            }
            // A retry of a request that was granted or queued never grants a second time.
            let first_took_effect = matches!(last_checkout_outcome, Some((_, Outcome::Granted(_) | Outcome::Queued { .. })));
            let granted_again = applied.events.iter().any(|e| matches!(e, Event::CheckedOut { from_queue: false, .. }));
            if is_retry && first_took_effect && granted_again {
                return Err(TestCaseError::fail(format!("step {i}: a retry granted again")));
            }
            outcomes.push(applied);
        }
        // The same log on a fresh replica: same outcomes, same state, same snapshot bytes.
        let mut replica = Engine::new();
        let replayed: Vec<_> = log.entries.iter().map(|(c, t)| replica.apply(c.clone(), *t)).collect();
        prop_assert_eq!(&replayed[preamble..], &outcomes[..]);
        prop_assert_eq!(&replica, &engine);
        prop_assert_eq!(replica.snapshot(), engine.snapshot());
        // A replica restored from a snapshot and fed the rest of the log ends the same.
        if let Some((bytes, from)) = halfway {
            let mut restored = Engine::from_snapshot(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (c, t) in &log.entries[from..] {
                restored.apply(c.clone(), *t);
            }
            prop_assert_eq!(restored.snapshot(), engine.snapshot());
        }
    }
}
