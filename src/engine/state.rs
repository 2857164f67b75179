//! The engine's records. Every collection is ordered (`BTreeMap`/`BTreeSet`/`VecDeque`), so
//! the serialized state, and therefore the snapshot bytes, is a function of the log alone.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, DefaultHasher};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::command::{Handle, Name, Outcome, RequestId, SessionSecret};
use crate::request_key::RequestKey;
use qlm_license::{Pool, Timestamp, Version};

/// Outcomes remembered per session for retries. A client retries the requests it has in
/// flight, not old ones; eight covers a client checking out several features at once, and the
/// bound keeps every session's memory, and so the snapshot, small.
pub const REMEMBERED_REQUESTS_PER_SESSION: usize = 8;

/// Sessions by id. The one map that grows with the number of clients is hashed, so that the
/// several lookups of an apply cost a hash each rather than a tree walk of string
/// comparisons. The hasher has fixed keys (no randomness), and the map is written to snapshots
/// in key order, so the state stays a function of the log and equal states give equal bytes.
pub type SessionMap = HashMap<Name, Session, BuildHasherDefault<DefaultHasher>>;

/// Serde for [`SessionMap`]: written as a map sorted by key.
pub mod sorted_sessions {
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Name, Session, SessionMap};

    pub fn serialize<S: Serializer>(map: &SessionMap, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&Name, &Session)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            out.serialize_entry(key, value)?;
        }
        out.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SessionMap, D::Error> {
        let sorted = std::collections::BTreeMap::<Name, Session>::deserialize(deserializer)?;
        Ok(sorted.into_iter().collect())
    }
}

/// A pool the engine knows: in the current license set, or retired by a reload but still
/// carrying seats taken before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    pub pool: Pool,
    /// Seats taken from this pool, lingering ones included.
    pub in_use: u32,
    /// In the license set loaded last; a retired pool grants nothing and is forgotten once its
    /// last seat is released.
    pub current: bool,
}

/// Per feature: its pools and who is using or waiting for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureState {
    /// Numbers of the current pools, in the order a checkout prefers them: the one that
    /// expires first, then the older line.
    pub pools: Vec<u32>,
    /// Held checkouts, for holder listings.
    pub checkouts: BTreeSet<Handle>,
    /// Queued requests, FIFO (handles grow with log order).
    pub queue: BTreeSet<Handle>,
    /// Holds that a later checkout may share or take back, by share key.
    pub shared: BTreeMap<String, BTreeSet<Handle>>,
    /// RESERVE rules of this feature: (index in `Policy::reserves`, seats counted against it;
    /// each hold counts against one rule at most).
    pub reserves: Vec<RuleCount>,
    /// MAX rules of this feature: (index in `Policy::maxes`, seats held by the named).
    pub maxes: Vec<RuleCount>,
    /// Retired pools of this feature that still carry seats (they occupy its capacity).
    pub retired: Vec<u32>,
}

impl FeatureState {
    pub fn is_unused(&self) -> bool {
        self.pools.is_empty()
            && self.checkouts.is_empty()
            && self.queue.is_empty()
            && self.shared.is_empty()
    }
}

/// A policy rule of one feature with the seats currently held by the clients it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    pub rule: usize,
    pub held: u64,
}

/// A client session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: Name,
    pub host: Name,
    pub pid: u32,
    pub display: Name,
    /// What the session's own requests present; the server checks it before it proposes
    /// them. Never shown by a view.
    pub secret: SessionSecret,
    pub ttl_ms: u64,
    pub opened: Timestamp,
    /// False once closed or expired while it still has borrowed checkouts; such a session
    /// takes no new request and goes when its last borrow ends.
    pub live: bool,
    /// Held checkouts.
    pub checkouts: BTreeSet<Handle>,
    /// Queued requests.
    pub queued: BTreeSet<Handle>,
    /// Recent outcomes by request id, for retries.
    pub requests: RequestLog,
}

/// The outcomes of a session's recent requests that changed something (a grant, a place in a
/// queue, a checkin), oldest forgotten first, each with the key of what the request asked.
/// Denials and rejections are not remembered: they changed nothing, so a retry may simply be
/// decided again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLog {
    recent: VecDeque<(RequestId, RequestKey, Outcome)>,
}

impl RequestLog {
    /// The remembered outcome of `request_id` and the key of the request that had it.
    pub fn get(&self, request_id: &str) -> Option<(RequestKey, &Outcome)> {
        self.recent
            .iter()
            .find(|(id, ..)| id == request_id)
            .map(|(_, key, outcome)| (*key, outcome))
    }

    /// Remembers `outcome` for `request_id` if it changed the state, forgetting the oldest
    /// beyond the bound. A request still waiting in a queue is in flight however old it is,
    /// so it is forgotten last.
    pub fn remember(&mut self, request_id: RequestId, key: RequestKey, outcome: &Outcome) {
        if matches!(
            outcome,
            Outcome::Granted(_) | Outcome::Queued { .. } | Outcome::CheckedIn { .. }
        ) {
            if self.recent.len() >= REMEMBERED_REQUESTS_PER_SESSION {
                let oldest_settled =
                    self.recent.iter().position(|(.., o)| !matches!(o, Outcome::Queued { .. }));
                self.recent.remove(oldest_settled.unwrap_or(0));
            }
            // Grow one slot at a time: most sessions remember one or two outcomes, and the
            // default growth (to 4 slots of 128 bytes at the first push) would take as much memory
            // as the rest of a session with one checkout.
            if self.recent.len() == self.recent.capacity() {
                self.recent.reserve_exact(1);
            }
            self.recent.push_back((request_id, key, outcome.clone()));
        }
    }

    /// Replaces the remembered outcome (a queued request granted or dropped later), if the
    /// request is still remembered.
    pub fn update(&mut self, request_id: &str, outcome: Outcome) {
        if let Some((.., slot)) = self.recent.iter_mut().find(|(id, ..)| id == request_id) {
            *slot = outcome;
        }
    }
}

/// A granted checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    pub session_id: Name,
    pub feature: Name,
    pub count: u32,
    /// The seats it holds (its own, or shared with its user's or host's other checkouts).
    pub hold: Handle,
    pub since: Timestamp,
    pub borrow_until: Option<Timestamp>,
}

/// Seats taken from one pool by one or more checkouts that share them (dup_group), or left
/// lingering after the last of them checked in. Identified by the handle of the checkout that
/// took them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatHold {
    pub pool: u32,
    pub feature: Name,
    pub seats: u32,
    /// Key under which later checkouts find this hold in `FeatureState::shared`.
    pub share_key: Option<String>,
    /// The client that took the seats; RESERVE and MAX count them as this client's.
    pub user: Name,
    pub host: Name,
    pub display: Name,
    /// The checkouts sharing the seats, in the order they joined (usually one).
    pub holders: SmallVec<[Handle; 2]>,
    /// Set while the seats linger after the last checkin.
    pub lingers_until: Option<Timestamp>,
    /// The RESERVE rule (index into the feature's `reserves`) these seats count against.
    pub reserve: Option<usize>,
}

/// A request waiting in a feature's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRequest {
    pub session_id: Name,
    pub request_id: RequestId,
    pub feature: Name,
    pub version: Version,
    pub count: u32,
    pub since: Timestamp,
}

/// Something due at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// A lingering hold's seats are freed.
    LingerEnd(Handle),
    /// A borrowed checkout is released.
    BorrowEnd(Handle),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_log_takes_memory_for_what_it_remembers_and_keeps_its_bound() {
        let mut log = RequestLog::default();
        log.remember("r0".into(), 0, &Outcome::CheckedIn { handle: Handle(1) });
        assert!(log.recent.capacity() <= 2, "one outcome took {} slots", log.recent.capacity());
        for i in 1..20 {
            log.remember(format!("r{i}"), i, &Outcome::CheckedIn { handle: Handle(i) });
        }
        assert_eq!(log.recent.len(), REMEMBERED_REQUESTS_PER_SESSION);
        assert!(log.get("r19").is_some() && log.get("r11").is_none());
    }
}
