//! A history: every request the clients made, what they were told and when, the faults the
//! harness injected, and what every node held at the end.
//!
//! Times are milliseconds since the history's origin, on this machine's monotonic clock (the
//! servers run on the same machine, so their lease clocks run at the same rate). An operation
//! has an invocation time (just before the request left) and a completion time (just after
//! the answer, or the failure, came back). An answer that never came is
//! [`Answer::Unknown`]: the request may or may not have taken effect, and the checker must
//! allow both.
//!
//! The types are plain data with public fields, so that another driver (a docker-compose chaos
//! test, a replay of a log) can build a history and hand it to [`crate::checker`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Milliseconds since the history's origin.
pub type Millis = u64;

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// OpenSession with this TTL.
    OpenSession { ttl_ms: u64 },
    /// Checkout of `count` seats of `feature`, waiting in the queue or not.
    Checkout { feature: String, count: u32, wait: bool },
    /// Checkin of a checkout.
    Checkin { handle: u64 },
    /// One explicit heartbeat.
    Heartbeat,
    /// CloseSession.
    CloseSession,
    /// Not a request: the client stopped heartbeating (it crashed, as far as the cluster can
    /// tell). Invoked and completed at the same instant.
    Abandon,
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The session is open with this id and TTL.
    Opened { session: String, ttl_ms: u64 },
    /// The checkout was granted with this handle.
    Granted { handle: u64, count: u32 },
    /// The checkout was not granted (denied, or left its queue): nothing is held.
    Denied,
    /// A checkin, heartbeat or close was done.
    Done,
    /// NOT_FOUND: the session (or the handle) is not there.
    NotFound(String),
    /// Another definite refusal: nothing happened.
    Refused(String),
    /// No answer came (deadline, unreachable cluster): it may or may not have happened.
    Unknown(String),
}

impl Answer {
    /// True when nothing certain is known about the outcome.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Answer::Unknown(_))
    }
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client (workload task) that made it.
    pub client: u64,
    /// The session it was made in (for OpenSession, the id answered, if any).
    pub session: Option<String>,
    pub call: Call,
    pub invoked: Millis,
    pub completed: Millis,
    pub answer: Answer,
}

/// One checkout a node holds at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldCheckout {
    pub handle: u64,
    pub session: String,
    pub feature: String,
    pub count: u32,
}

/// What one node held when the final states were taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub node: u64,
    pub applied_index: u64,
    /// Hex SHA-256 of the node's engine snapshot at `applied_index`.
    pub state_digest: String,
    pub checkouts: Vec<HeldCheckout>,
}

/// Whether `states` holds one state from each of `members` nodes, all at the same applied
/// index with the same state digest: the cluster has converged.
pub fn states_agree(states: &[NodeState], members: usize) -> bool {
    states.len() == members
        && states.windows(2).all(|w| {
            w[0].applied_index == w[1].applied_index && w[0].state_digest == w[1].state_digest
        })
}

/// A fault the harness injected (or ended), for the report and the failover figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at: Millis,
    /// `kill-leader`, `partition-leader`, `restart-all`, ... (see `scenario`).
    pub kind: String,
    /// Which nodes, and anything else worth saying.
    pub detail: String,
}

/// Everything the checker reads.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
    pub faults: Vec<Fault>,
    /// Seats per feature of the license served.
    pub pools: BTreeMap<String, u32>,
    /// When every fault had stopped (nodes healed, restarted and resumed), if they did.
    pub healed_at: Option<Millis>,
    /// When the final node states were taken.
    pub final_at: Option<Millis>,
    /// Every member's final state.
    pub final_states: Vec<NodeState>,
}

impl History {
    /// The first checkout invoked at or after `at` that was granted: its completion time.
    pub fn next_grant_after(&self, at: Millis) -> Option<Millis> {
        self.ops
            .iter()
            .filter(|op| op.invoked >= at && matches!(op.answer, Answer::Granted { .. }))
            .map(|op| op.completed)
            .min()
    }

    /// Failover figures: for each fault of `kind`, milliseconds from the fault to the next
    /// granted checkout.
    pub fn failover_after(&self, kind: &str) -> Vec<Millis> {
        self.faults
            .iter()
            .filter(|f| f.kind == kind)
            .filter_map(|f| self.next_grant_after(f.at).map(|g| g - f.at))
            .collect()
    }
}

/// The shared, clock-stamping recorder the workload's clients write to.
#[derive(Clone)]
pub struct Recorder {
    origin: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose origin is now.
    pub fn new() -> Recorder {
        Recorder {
            origin: Instant::now(),
            ops: Arc::new(Mutex::new(Vec::new())),
            faults: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Milliseconds since the origin.
    pub fn now(&self) -> Millis {
        self.origin.elapsed().as_millis() as Millis
    }

    pub fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).push(op);
    }

    /// Records a fault injected now.
    pub fn fault(&self, kind: &str, detail: impl Into<String>) {
        let fault = Fault { at: self.now(), kind: kind.to_owned(), detail: detail.into() };
        self.faults.lock().unwrap_or_else(PoisonError::into_inner).push(fault);
    }

    /// Operations recorded so far.
    pub fn op_count(&self) -> usize {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// A history of what was recorded so far, the other fields empty.
    pub fn history(&self, pools: BTreeMap<String, u32>) -> History {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner).clone();
        ops.sort_by_key(|op| (op.invoked, op.completed));
        let faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner).clone();
        History { ops, faults, pools, ..History::default() }
    }
}
