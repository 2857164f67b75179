//! Test support: the real client services over a one-process node. Always compiled, because
//! the integration tests of the client library and of `qlm` use it as well as this crate's;
//! `qlmd` never does. Test code only: the helpers panic on what a test environment gets wrong
//! (no loopback port, a poisoned lock).
//!
//! [`InProcessNode`] is a [`ClusterNode`] without Raft: one engine behind a lock, each command
//! applied when it is proposed, stamped by a clock (the wall clock, or a manual one a test
//! moves), the engine's invariants checked after every apply. It is the leader of a cluster of
//! one and keeps session leases as a leader does, so a session whose heartbeats stop expires.
//! It can also lose or hold back the answers of checkouts it applied: the "outcome unknown"
//! that a client must retry under the same request id. [`serve`] puts the real
//! LicenseService, StatusService and AdminService over it on a loopback port; the handlers
//! decide every answer, as on a real node.

mod serve;

pub use serve::{ADMIN_TOKEN, Serving, closed_port, serve};

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::Status;

use crate::cluster_node::{ClusterNode, MemberView, RaftView};
use qlm_engine::testkit::pool;
use qlm_engine::{Applied, Command, Engine, Outcome};
use qlm_license::{LineError, Policy, Pool, Timestamp};
use qlm_node::Leases;
use qlm_node::node::{Consistency, MAX_EXPIRE_BATCH};
use qlm_proto::v1;
use qlm_raft::NodeId;

/// The id of an in-process node, the one member of its cluster.
pub const IN_PROCESS_ID: NodeId = 1;

/// Why an in-process node refuses a membership change.
const ONE_MEMBER: &str = "an in-process node is a cluster of one without Raft: it takes no members";

/// A node of one, in this process. See the [module](self) documentation.
pub struct InProcessNode {
    replica: RwLock<Replica>,
    clock: Clock,
    /// Session deadlines, in the clock's milliseconds. Taken inside the replica's lock when
    /// both are needed, never the other way round.
    leases: Mutex<Leases>,
    /// What a reload proposes: the set the node started with.
    licenses: Command,
    heartbeats: AtomicU64,
    checkout_proposals: AtomicU64,
    /// Checkout answers still to lose after applying them.
    lose_checkout_answers: AtomicU64,
    /// How long the next checkout's answer is held back after it is applied (0: not at all).
    delay_next_checkout_answer_ms: AtomicU64,
}

struct Replica {
    engine: Engine,
    /// Commands applied so far: the index of the last one, as a log index.
    applied_index: u64,
}

enum Clock {
    /// Milliseconds since the Unix epoch, now.
    Wall,
    /// Milliseconds since the Unix epoch, as a test set them.
    Manual(AtomicU64),
}

impl InProcessNode {
    /// A node serving `pools` under `policy`, on the wall clock.
    pub fn new(pools: Vec<Pool>, policy: Policy) -> InProcessNode {
        InProcessNode::with_clock(Clock::Wall, pools, policy)
    }

    /// A node serving `pools` under `policy` whose clock stands at `start` until
    /// [`InProcessNode::advance`] moves it: answers do not depend on when the test runs.
    pub fn at(start: Timestamp, pools: Vec<Pool>, policy: Policy) -> InProcessNode {
        InProcessNode::with_clock(Clock::Manual(AtomicU64::new(start.0)), pools, policy)
    }

    /// A node serving `seats` seats of `feature` (version 1.0, permanent), on the wall clock.
    pub fn with_seats(feature: &str, seats: u32) -> InProcessNode {
        InProcessNode::new(vec![pool(feature, seats)], Policy::default())
    }

    fn with_clock(clock: Clock, pools: Vec<Pool>, policy: Policy) -> InProcessNode {
        let licenses = Command::LoadLicenses { pools, policy };
        let node = InProcessNode {
            replica: RwLock::new(Replica { engine: Engine::new(), applied_index: 0 }),
            clock,
            leases: Mutex::new(Leases::new()),
            licenses: licenses.clone(),
            heartbeats: AtomicU64::new(0),
            checkout_proposals: AtomicU64::new(0),
            lose_checkout_answers: AtomicU64::new(0),
            delay_next_checkout_answer_ms: AtomicU64::new(0),
        };
        // As a new leader does; a set the engine refuses leaves the node without licenses,
        // which the test sees in the answers.
        let _ = node.apply(licenses);
        node
    }

    /// Milliseconds since the Unix epoch on this node's clock.
    pub fn now_ms(&self) -> u64 {
        match &self.clock {
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Clock::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock on by `by` (the wall clock moves by itself: nothing changes). The
    /// engine sees the new time with the next command applied; [`InProcessNode::tick`]
    /// applies one.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(now) = &self.clock {
            let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            let _ = now
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| Some(t.saturating_add(by)));
        }
    }

    /// `read` of the engine as it is now.
    pub fn engine<R>(&self, read: impl FnOnce(&Engine) -> R) -> R {
        read(&self.replica().engine)
    }

    /// Handles of every checkout held now.
    pub fn held(&self) -> Vec<u64> {
        self.engine(|engine| engine.checkouts().iter().map(|c| c.handle.0).collect())
    }

    /// Sessions open now.
    pub fn live_sessions(&self) -> usize {
        self.engine(|engine| engine.live_session_count())
    }

    /// Heartbeats that renewed a lease so far.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats.load(Ordering::SeqCst)
    }

    /// Checkout commands proposed so far: one per checkout call that passed the node's checks,
    /// retries included.
    pub fn checkout_proposals(&self) -> u64 {
        self.checkout_proposals.load(Ordering::SeqCst)
    }

    /// Applies the next `count` checkouts and then answers UNAVAILABLE instead of their
    /// outcome, as a node whose forwarded write's answer was lost (0 stops losing them).
    pub fn lose_checkout_answers(&self, count: u64) {
        self.lose_checkout_answers.store(count, Ordering::SeqCst);
    }

    /// Applies the next checkout and holds its answer back for `delay`.
    pub fn delay_next_checkout_answer(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_next_checkout_answer_ms.store(ms, Ordering::SeqCst);
    }

    /// Proposes the expiry of every session whose lease has run out, as the leader's duties
    /// do; answers how many sessions it expired.
    pub async fn expire_silent(&self) -> Result<usize, Status> {
        let due = self.leases().due(self.now_ms(), MAX_EXPIRE_BATCH);
        if due.is_empty() {
            return Ok(0);
        }
        let session_ids = due.iter().map(|s| s.to_string()).collect();
        match self.propose(Command::ExpireSessions { session_ids }).await?.outcome {
            Outcome::Expired { sessions, .. } => Ok(sessions.len()),
            _ => Ok(0),
        }
    }

    /// Proposes a `Tick`, as an idle leader does, so lingering seats and borrows that are due
    /// end and queues move.
    pub async fn tick(&self) -> Result<(), Status> {
        self.propose(Command::Tick).await.map(drop)
    }

    fn replica(&self) -> RwLockReadGuard<'_, Replica> {
        self.replica.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn leases(&self) -> MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `command` at the clock's time, checks the engine's invariants, and keeps the
    /// leases as the leader does after an apply.
    fn apply(&self, command: Command) -> Result<Applied, Status> {
        let now = self.now_ms();
        let opened = match &command {
            Command::OpenSession { session_id, ttl_ms, .. } => Some((session_id.clone(), *ttl_ms)),
            _ => None,
        };
        let ended = match &command {
            Command::CloseSession { session_id } => vec![session_id.clone()],
            Command::ExpireSessions { session_ids } => session_ids.clone(),
            _ => Vec::new(),
        };
        let holder = match &command {
            Command::Checkout { session_id, .. } | Command::Checkin { session_id, .. } => {
                Some(session_id.clone())
            }
            _ => None,
        };
        let mut replica = self.replica.write().unwrap_or_else(PoisonError::into_inner);
        let applied = replica.engine.apply(command, Timestamp(now));
        replica.applied_index += 1;
        replica
            .engine
            .check_invariants()
            .map_err(|broken| Status::internal(format!("engine invariant broken: {broken}")))?;
        let mut leases = self.leases();
        if let (Some((session_id, ttl_ms)), Outcome::SessionOpened { .. }) =
            (opened, &applied.outcome)
        {
            leases.track(session_id.as_str().into(), ttl_ms, now);
        }
        for session_id in ended {
            leases.forget(&session_id);
        }
        // A TIMEOUT of a feature the session now holds, or no longer holds, changes its TTL.
        if let Some(session_id) = holder
            && let Some(ttl_ms) = replica.engine.session_ttl_ms(&session_id)
        {
            leases.set_ttl(&session_id, ttl_ms, now);
        }
        Ok(applied)
    }

    /// What the faults a test set do to a checkout's answer once it is applied.
    async fn checkout_answer_faults(&self) -> Result<(), Status> {
        let lose =
            self.lose_checkout_answers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if lose.is_ok() {
            return Err(Status::unavailable("the answer was lost on its way back (test fault)"));
        }
        let delay = self.delay_next_checkout_answer_ms.swap(0, Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        Ok(())
    }
}

impl ClusterNode for InProcessNode {
    fn id(&self) -> NodeId {
        IN_PROCESS_ID
    }

    fn leader(&self) -> Option<NodeId> {
        Some(IN_PROCESS_ID)
    }

    fn client_addr_of(&self, _: NodeId) -> Option<String> {
        None
    }

    async fn known_leader(&self) -> Result<NodeId, Status> {
        Ok(IN_PROCESS_ID)
    }

    async fn propose(&self, command: Command) -> Result<Applied, Status> {
        let checkout = matches!(command, Command::Checkout { .. });
        if checkout {
            self.checkout_proposals.fetch_add(1, Ordering::SeqCst);
        }
        let applied = self.apply(command)?;
        if checkout {
            self.checkout_answer_faults().await?;
        }
        Ok(applied)
    }

    async fn read_barrier(&self, _consistency: Consistency) -> Result<(), Status> {
        // Every command is applied when it is proposed: the replica is never behind.
        Ok(())
    }

    async fn leader_barrier(&self) -> Result<(), Status> {
        Ok(())
    }

    async fn read_at<R>(&self, read: impl FnOnce(&Engine, u64) -> R + Send) -> R {
        let replica = self.replica();
        read(&replica.engine, replica.applied_index)
    }

    async fn renew_lease(&self, session_id: &str) -> Result<u64, Status> {
        let now = self.now_ms();
        let deadline =
            self.leases().renew(session_id, now).map_err(|e| Status::not_found(e.to_string()))?;
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(deadline.saturating_sub(now))
    }

    fn raft_view(&self) -> RaftView {
        let applied_index = self.replica().applied_index;
        let me = MemberView {
            id: IN_PROCESS_ID,
            peer_addr: String::new(),
            voter: true,
            matched_index: Some(applied_index),
        };
        RaftView { term: 1, applied_index, last_log_index: applied_index, members: vec![me] }
    }

    async fn ask_cluster_view(&self, leader: NodeId) -> Result<v1::ClusterResponse, Status> {
        Err(Status::unavailable(format!("node {leader} is not in this one-member cluster")))
    }

    async fn licenses_to_serve(&self) -> Result<(Command, Vec<LineError>), String> {
        Ok((self.licenses.clone(), Vec::new()))
    }

    async fn add_learner(&self, _: NodeId, _: String, _: String) -> Result<(), String> {
        Err(ONE_MEMBER.into())
    }

    async fn change_voters(&self, _: BTreeSet<NodeId>) -> Result<(), String> {
        Err(ONE_MEMBER.into())
    }
}
