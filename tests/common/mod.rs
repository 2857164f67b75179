//! A small world for engine tests: an engine, a clock, and helpers that read like the steps
//! of a scenario. Every apply is followed by the engine's invariant check.
#![allow(dead_code)]

use quorumlm::engine::{Applied, Command, Engine, Grant, Handle, Outcome};
use quorumlm::license::{
    Date, DupGroup, Expiry, HostId, Policy, Pool, PoolId, SeatUnit, Timestamp, Version,
};

/// 2026-11-24T00:00:00Z, the day the scenarios happen.
pub const T0: u64 = 1_795_478_400_000;

pub fn date(s: &str) -> Date {
    s.parse().unwrap()
}

pub fn version(s: &str) -> Version {
    s.parse().unwrap()
}

/// A permanent pool of `seats` seats of `feature` at version 1.0.
pub fn pool(feature: &str, seats: u32) -> Pool {
    Pool {
        id: PoolId(format!("{feature}-{seats}")),
        feature: feature.into(),
        vendor: "sigasi".into(),
        version: version("1.0"),
        seats,
        unit: SeatUnit::Seats,
        start: None,
        expires: Expiry::Permanent,
        issued: None,
        hostid: HostId::Any,
        dup_group: DupGroup::None,
        customer: None,
        notes: None,
        max_borrow_hours: quorumlm::license::pool::DEFAULT_MAX_BORROW_HOURS,
    }
}

pub struct World {
    pub engine: Engine,
    pub now: u64,
    next_request: u64,
}

impl World {
    pub fn new(pools: Vec<Pool>, policy: Policy) -> World {
        let mut world = World { engine: Engine::new(), now: T0, next_request: 0 };
        let applied = world.apply(Command::LoadLicenses { pools, policy });
        assert!(matches!(applied.outcome, Outcome::LicensesLoaded { .. }));
        world
    }

    pub fn apply(&mut self, command: Command) -> Applied {
        let applied = self.engine.apply(command, Timestamp(self.now));
        if let Err(broken) = self.engine.check_invariants() {
            panic!("invariant broken: {broken}");
        }
        applied
    }

    /// Opens session `id` for `user` on `host` with a 30 s TTL.
    pub fn open(&mut self, id: &str, user: &str, host: &str) {
        let outcome = self
            .apply(Command::OpenSession {
                session_id: id.into(),
                secret: "s3cret".into(),
                user: user.into(),
                host: host.into(),
                pid: 4242,
                display: ":0".into(),
                ttl_ms: 30_000,
            })
            .outcome;
        assert_eq!(
            outcome,
            Outcome::SessionOpened { session_id: id.into(), secret: "s3cret".into() }
        );
    }

    pub fn request_id(&mut self) -> String {
        self.next_request += 1;
        format!("r{}", self.next_request)
    }

    pub fn checkout_full(
        &mut self,
        session: &str,
        feature: &str,
        version: &str,
        count: u32,
        wait: bool,
        borrow_until: Option<Timestamp>,
    ) -> Applied {
        let request_id = self.request_id();
        self.apply(Command::Checkout {
            session_id: session.into(),
            request_id,
            feature: feature.into(),
            version: version.parse().unwrap(),
            count,
            wait,
            borrow_until,
        })
    }

    pub fn checkout(&mut self, session: &str, feature: &str, count: u32) -> Outcome {
        self.checkout_full(session, feature, "1.0", count, false, None).outcome
    }

    pub fn wait_for(&mut self, session: &str, feature: &str, count: u32) -> Outcome {
        self.checkout_full(session, feature, "1.0", count, true, None).outcome
    }

    /// Checks out and returns the grant, failing the test otherwise.
    pub fn grant(&mut self, session: &str, feature: &str, count: u32) -> Grant {
        match self.checkout(session, feature, count) {
            Outcome::Granted(grant) => grant,
            other => panic!("expected a grant of {feature} to {session}, got {other:?}"),
        }
    }

    pub fn checkin(&mut self, session: &str, handle: Handle) -> Outcome {
        let request_id = self.request_id();
        self.apply(Command::Checkin { session_id: session.into(), request_id, handle }).outcome
    }

    /// Lets `secs` seconds pass and ticks.
    pub fn advance(&mut self, secs: u64) -> Applied {
        self.now += secs * 1000;
        self.apply(Command::Tick)
    }

    pub fn in_use(&self, feature: &str) -> u64 {
        self.engine.feature(feature).map_or(0, |f| f.seats_in_use)
    }
}

/// The denial reason of an outcome, failing the test if it is not a denial.
pub fn reason(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Denied(denial) => denial.reason.as_str(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// Opens the stores in `dir` again after the test dropped its own: sled's I/O threads may hold
/// the database (and so its directory lock) for a moment after the last handle is dropped,
/// which a real restart never sees (the process is gone). Retries for up to 5 s while the lock
/// is held; any other error is returned at once.
pub fn reopen_stores(
    dir: &std::path::Path,
) -> Result<(quorumlm::raft::LogStore, quorumlm::raft::StateMachineStore), quorumlm::raft::StoreError>
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match quorumlm::raft::open_stores(dir) {
            Err(e)
                if e.to_string().contains("acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Opens sessions `s0` .. `s{writers - 1}` through `proposer`, all at once, and checks that
/// each write is answered within `wait` with its own session opened; the log indexes of the
/// entries that carried them.
pub async fn open_sessions_at_once(
    proposer: &std::sync::Arc<quorumlm::server::proposer::Proposer>,
    writers: usize,
    wait: std::time::Duration,
) -> std::collections::BTreeSet<u64> {
    let writes: Vec<_> = (0..writers)
        .map(|i| {
            let proposer = proposer.clone();
            let open = Command::OpenSession {
                session_id: format!("s{i}").as_str().into(),
                secret: "s3cret".into(),
                user: "alice".into(),
                host: "ws1".into(),
                pid: 7,
                display: ":0".into(),
                ttl_ms: 30_000,
            };
            tokio::spawn(async move { proposer.propose(open).await })
        })
        .collect();
    let mut indexes = std::collections::BTreeSet::new();
    for (i, write) in writes.into_iter().enumerate() {
        let (applied, index) = tokio::time::timeout(wait, write)
            .await
            .expect("answered in time: queued writes were proposed")
            .expect("the writer finishes")
            .expect("the write is applied");
        match applied.outcome {
            Outcome::SessionOpened { session_id, .. } => assert_eq!(session_id, format!("s{i}")),
            other => panic!("write {i}: {other:?}"),
        }
        indexes.insert(index);
    }
    indexes
}
