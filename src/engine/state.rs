//! The engine's records. Every collection is ordered (`BTreeMap`/`BTreeSet`/`VecDeque`), so
//! the serialized state, and therefore the snapshot bytes, is a function of the log alone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::engine::command::{Handle, Outcome, RequestId, SessionId};
use crate::license::{Pool, Timestamp, Version};

/// Outcomes remembered per session for retries. A client retries its last few requests, not
/// old ones; the bound keeps a chatty session's memory constant.
pub const REMEMBERED_REQUESTS_PER_SESSION: usize = 32;

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
    /// RESERVE rules of this feature: (index in `Policy::reserves`, seats held by the named).
    pub reserves: Vec<RuleCount>,
    /// MAX rules of this feature: (index in `Policy::maxes`, seats held by the named).
    pub maxes: Vec<RuleCount>,
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
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub display: String,
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

/// The outcomes of a session's recent requests, oldest forgotten first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLog {
    order: VecDeque<RequestId>,
    outcomes: BTreeMap<RequestId, Outcome>,
}

impl RequestLog {
    pub fn get(&self, request_id: &str) -> Option<&Outcome> {
        self.outcomes.get(request_id)
    }

    /// Remembers `outcome` for `request_id`, forgetting the oldest beyond the bound.
    pub fn remember(&mut self, request_id: RequestId, outcome: Outcome) {
        if self.outcomes.insert(request_id.clone(), outcome).is_none() {
            self.order.push_back(request_id);
            while self.order.len() > REMEMBERED_REQUESTS_PER_SESSION {
                if let Some(old) = self.order.pop_front() {
                    self.outcomes.remove(&old);
                }
            }
        }
    }

    /// Replaces the remembered outcome (a queued request granted or dropped later), if the
    /// request is still remembered.
    pub fn update(&mut self, request_id: &str, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get_mut(request_id) {
            *slot = outcome;
        }
    }
}

/// A granted checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    pub session_id: SessionId,
    pub feature: String,
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
    pub feature: String,
    pub seats: u32,
    /// Key under which later checkouts find this hold in `FeatureState::shared`.
    pub share_key: Option<String>,
    /// The client that took the seats; RESERVE and MAX count them as this client's.
    pub user: String,
    pub host: String,
    pub display: String,
    pub holders: BTreeSet<Handle>,
    /// Set while the seats linger after the last checkin.
    pub lingers_until: Option<Timestamp>,
}

/// A request waiting in a feature's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRequest {
    pub session_id: SessionId,
    pub request_id: RequestId,
    pub feature: String,
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
