//! The license state machine: one plain value that every Raft replica holds and changes only
//! through [`Engine::apply`].
//!
//! `apply(command, now) -> Applied` is pure: no clock, no randomness, no I/O. Time comes in
//! with each command (the leader's stamp), and the engine's time is the largest stamp it has
//! seen, so it never goes back even when leaders' clocks disagree. Handles are numbered in log
//! order. Every collection is ordered, so the same log gives the same state and the same
//! snapshot bytes on every replica: the property tests check exactly that.
//!
//! The rules, in the words of FlexLM and RLM admins:
//!
//! - **Pools add up.** Every FEATURE line of a feature is a pool; a checkout takes all its
//!   seats from one eligible pool (version at least the one asked, started, not expired),
//!   preferring the one that expires first.
//! - **Dup grouping.** A pool with `dup_group=user|host|user_host` lets checkouts of one user,
//!   host or both share the seats already taken.
//! - **Linger.** With `LINGER feature secs`, a checked-in seat stays taken that long; the same
//!   client (or its dup group) may take it back meanwhile.
//! - **Queue.** A checkout with `wait` that cannot be granted waits in a FIFO per feature and
//!   is granted, in order, as seats free up. A later, smaller request does not overtake the
//!   head; it may only use reserved seats that the head could not use anyway.
//! - **Borrow.** A checkout with `borrow_until` needs no heartbeat until then and survives its
//!   session; the cap is the vendor's `borrow=` hours, lowered by `MAX_BORROW_HOURS`.
//! - **Policy.** INCLUDE/EXCLUDE decide who may use a feature; RESERVE keeps seats for their
//!   owners; MAX caps what a user, host or group holds.
//! - **Idempotency.** Each session remembers the outcomes of its recent requests by
//!   `request_id`; a retry gets the first outcome, never a second grant.
//!
//! Invariants, checked after every step by the property tests ([`Engine::check_invariants`]):
//! seats in use of a pool never exceed its count; every checkout belongs to a session (a live
//! one, unless it is a borrow); a queued session holds no seat of that feature; the counters
//! kept for speed equal what they count.
//!
//! Every command costs O(log n) in sessions and checkouts, plus the pools and policy rules of
//! the one feature it touches.

mod checkin;
mod checkout;
mod command;
mod holds;
mod invariants;
mod licenses;
mod query;
mod queue;
mod request_key;
mod sessions;
mod state;
pub mod testkit;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use command::{
    Applied, Command, Denial, DenialReason, Event, Grant, Handle, Holder, Name, Outcome, QueueExit,
    RejectKind, Rejection, ReleaseCause, RemoveTarget, RequestId, SessionId, SessionSecret,
};
pub use query::{CheckoutView, FeatureView, PoolView, QueuedView, ReservationView, SessionView};
pub use request_key::{RequestKey, checkin_key, checkout_key};
pub use sessions::{Admission, Client, OpenCheck, secrets_equal};
pub use state::REMEMBERED_REQUESTS_PER_SESSION;

use qlm_license::{Policy, PoolId, Timestamp};
use state::{Checkout, FeatureState, PoolState, QueuedRequest, SeatHold, SessionMap, Timer};

/// Longest session id, request id, user, host or display name the engine accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Most holders listed in an `ALL_IN_USE` denial (the status call lists them all).
pub const MAX_HOLDERS_IN_DENIAL: usize = 16;

/// Shortest session TTL, in milliseconds: below it a client could not heartbeat in time.
pub const MIN_SESSION_TTL_MS: u64 = 1_000;

/// Longest session TTL, in milliseconds (one day).
pub const MAX_SESSION_TTL_MS: u64 = 86_400_000;

/// Most sessions the cluster holds at once (open ones and closed ones kept for their
/// borrows). Each costs every node about a kilobyte and the leader a lease; the bound keeps a
/// flood of OpenSession calls from growing the state without end. Twice the 100,000 sessions
/// the scale benchmark runs.
pub const MAX_SESSIONS: usize = 200_000;

/// Most seats one checkout may ask for.
pub const MAX_CHECKOUT_COUNT: u32 = qlm_license::pool::MAX_POOL_SEATS;

/// The license state machine. See the module documentation for its rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    /// The largest leader stamp seen.
    now: Timestamp,
    /// The last handle given out (handles start at 1).
    last_handle: u64,
    /// The last pool number given out.
    last_pool: u32,
    policy: Policy,
    /// Pools by number; numbers are stable while a pool is known.
    pools: BTreeMap<u32, PoolState>,
    /// Pool numbers by the pool's identity, to recognise a pool across reloads.
    pool_numbers: BTreeMap<PoolId, u32>,
    features: BTreeMap<Name, FeatureState>,
    #[serde(with = "state::sorted_sessions")]
    sessions: SessionMap,
    checkouts: BTreeMap<Handle, Checkout>,
    /// Seat holds by the handle of the checkout that took them.
    holds: BTreeMap<Handle, SeatHold>,
    queued: BTreeMap<Handle, QueuedRequest>,
    /// Linger ends and borrow ends, by due time.
    timers: BTreeSet<(Timestamp, Timer)>,
}

/// What an apply is collecting besides its outcome.
#[derive(Default)]
struct Effects {
    events: Vec<crate::Event>,
    /// Features whose queue may move because seats were freed or rules changed.
    dirty: BTreeSet<Name>,
}

/// The snapshot could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("engine snapshot is unreadable: {0}")]
pub struct SnapshotError(#[from] postcard::Error);

impl Engine {
    /// An engine with no licenses, no policy and no sessions.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Applies one log entry stamped `stamp` by the leader.
    pub fn apply(&mut self, command: Command, stamp: Timestamp) -> Applied {
        self.now = self.now.max(stamp);
        let mut fx = Effects::default();
        self.fire_timers(&mut fx);
        let outcome = match command {
            Command::LoadLicenses { pools, policy } => self.load_licenses(pools, policy, &mut fx),
            Command::OpenSession { session_id, secret, user, host, pid, display, ttl_ms } => {
                let client = sessions::Client { user, host, pid, display };
                self.open_session(session_id, secret, client, ttl_ms, &mut fx)
            }
            Command::CloseSession { session_id } => self.close_session(&session_id, &mut fx),
            Command::Checkout {
                session_id,
                request_id,
                feature,
                version,
                count,
                wait,
                borrow_until,
            } => {
                // Known names are shared with the engine's own copies: no allocation.
                let session_id = self.name_of_session(session_id);
                let feature = self.name_of_feature(feature);
                let req = checkout::Request {
                    session_id,
                    request_id,
                    feature,
                    version,
                    count,
                    borrow_until,
                };
                self.checkout(req, wait, &mut fx)
            }
            Command::Checkin { session_id, request_id, handle } => {
                self.checkin(&session_id, request_id, handle, &mut fx)
            }
            Command::ExpireSessions { session_ids } => self.expire_sessions(session_ids, &mut fx),
            Command::Remove { target } => self.remove(target, &mut fx),
            Command::Tick => {
                self.mark_all_queues_dirty(&mut fx);
                Outcome::Ticked
            }
        };
        self.drain_queues(&mut fx);
        Applied { outcome, events: fx.events }
    }

    /// The engine's time: the largest stamp it has seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The state as bytes: equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        // Serializing plain ordered data to a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// The engine a snapshot was taken of.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        Ok(postcard::from_bytes(bytes)?)
    }

    /// Frees lingering seats and ends borrows that are due.
    fn fire_timers(&mut self, fx: &mut Effects) {
        while let Some(&(due, timer)) = self.timers.first() {
            if due > self.now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::LingerEnd(hold) => self.end_linger(hold, fx),
                Timer::BorrowEnd(handle) => {
                    self.release(handle, ReleaseCause::BorrowEnded, fx);
                }
            }
        }
    }

    fn mark_all_queues_dirty(&self, fx: &mut Effects) {
        for (name, feature) in &self.features {
            if !feature.queue.is_empty() {
                fx.dirty.insert(name.clone());
            }
        }
    }

    /// The engine's shared copy of a session id, or a new one if the session is unknown.
    fn name_of_session(&self, id: String) -> Name {
        self.sessions.get_key_value(id.as_str()).map_or_else(|| Name::from(id), |(k, _)| k.clone())
    }

    /// The engine's shared copy of a feature name, or a new one if the feature is unknown.
    fn name_of_feature(&self, feature: String) -> Name {
        self.features
            .get_key_value(feature.as_str())
            .map_or_else(|| Name::from(feature), |(k, _)| k.clone())
    }

    /// Forgets a feature that has no pool, checkout, queue or lingering seat left.
    fn forget_feature_if_unused(&mut self, feature: &str) {
        if self.features.get(feature).is_some_and(FeatureState::is_unused) {
            self.features.remove(feature);
        }
    }
}

/// Whether `c` may not appear in a name: a control character, or a bidirectional formatting
/// character, which would let a listing (`qlm status`, the dashboard, the report log) show
/// another name than the one stored.
pub fn forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Checks a client-supplied name: not empty, no control or bidirectional formatting
/// characters, not huge. The server checks the same before it proposes (`proto::validate`);
/// the engine checks again because every replica must refuse what any replica refuses.
fn check_name(field: &str, value: &str) -> Result<(), Outcome> {
    if value.is_empty() {
        return Err(Outcome::rejected(RejectKind::InvalidArgument, format!("`{field}` is empty")));
    }
    if let Some(c) = value.chars().find(|&c| forbidden_in_name(c)) {
        return Err(Outcome::rejected(
            RejectKind::InvalidArgument,
            format!(
                "`{field}` contains the character U+{:04X}, which names may not hold",
                c as u32
            ),
        ));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Outcome::rejected(
            RejectKind::InvalidArgument,
            format!("`{field}` is {} bytes long; the limit is {MAX_NAME_BYTES}", value.len()),
        ));
    }
    Ok(())
}
