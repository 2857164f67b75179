//! Helpers for the tests of this crate and the crates above it: a fixed day, a pool, and a
//! small world (an engine and a clock) whose helpers read like the steps of a scenario. Every
//! apply is followed by the engine's invariant check. Test code only: the helpers panic on
//! what a test gets wrong.

use crate::{Applied, Command, Engine, Grant, Handle, Outcome};
use qlm_license::{
    Date, DupGroup, Expiry, HostId, Policy, Pool, PoolId, SeatUnit, Timestamp, Version,
};

/// 2026-11-24T00:00:00Z, the day the scenarios happen.
pub const T0: u64 = 1_795_478_400_000;

pub fn date(s: &str) -> Date {
    s.parse().expect("a test date or version")
}

pub fn version(s: &str) -> Version {
    s.parse().expect("a test date or version")
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
        max_borrow_hours: qlm_license::pool::DEFAULT_MAX_BORROW_HOURS,
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
            version: version.parse().expect("a test version"),
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
