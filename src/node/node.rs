//! One QuorumLM node: its Raft instance, its replica of the engine, and the routing of every
//! request to where it is answered. What only the leader does is in `leader.rs`, and the
//! license set a leader proposes in `licenses.rs`.
//!
//! Every client request can go to any node. A write is proposed by the leader: a follower
//! forwards it over the peer port (`RaftService.Forward`) and relays the answer, so a client
//! never has to know who leads (the answer still says, so a smart client can go straight
//! there). A linearizable read on a follower first asks the leader for its commit index
//! (`ReadIndex`, which the leader confirms with a quorum) and waits until its own replica has
//! applied that far. Every call to Raft or to a peer has a deadline: a node that has lost its
//! quorum answers UNAVAILABLE within it, never hangs.
//!
//! Leases (see `leases.rs`) live only on the leader. A node that becomes leader starts every
//! live session's lease afresh, and proposes the license set and policy it reads from its own
//! files, so a fresh cluster gets its licenses from its first leader.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use openraft::error::RaftError;
use tonic::Status;
use tracing::info;

use crate::clock::LicenseClock;
use crate::leases::Leases;
use crate::peer::Peers;
use crate::proposer::{Confirmer, Proposer};
use crate::settings::NodeSettings;
use qlm_engine::{Applied, Command};
use qlm_raft::{NodeId, Raft, SharedReplica};

/// Longest a write may take (proposal, replication to a majority, fsync, apply).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// Longest a linearizable read may wait for the leader's confirmation and the local apply.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How often the leader looks for expired leases and leadership changes.
pub const LEASE_TICK: Duration = Duration::from_millis(100);
/// How often an idle leader proposes a `Tick`, so lingering seats and borrows end on time.
pub const TICK_EVERY: Duration = Duration::from_secs(5);
/// How often the leader checks that every live session has a lease (a safety net behind the
/// take-over and the lease bookkeeping of its own proposals).
pub const LEASE_AUDIT_EVERY: Duration = Duration::from_secs(2);
/// Most sessions one `ExpireSessions` entry carries.
pub const MAX_EXPIRE_BATCH: usize = 256;
pub use crate::settings::DEFAULT_SESSION_TTL_MS;

/// How up to date a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began, on any node.
    Linearizable,
    /// This replica as it is: possibly behind the leader, never waiting for it.
    Stale,
}

impl Consistency {
    /// The consistency a request's `stale` flag asks for.
    pub fn stale_if(stale: bool) -> Consistency {
        if stale { Consistency::Stale } else { Consistency::Linearizable }
    }
}

/// The node.
pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    /// The engine replica this node applies the log to.
    pub replica: SharedReplica,
    /// Peer links: forwarding, heartbeats and read index to the leader; client addresses.
    pub peers: Peers,
    /// This node's settings (license and options files for the leader's proposals).
    pub(crate) config: NodeSettings,
    /// Session deadlines; only meaningful while this node leads. Never held across `.await`.
    pub(crate) leases: Arc<Mutex<Leases>>,
    /// Origin of the monotonic clock the leases use.
    pub(crate) started: Instant,
    /// Times this node has seen the leader change (docs/DESIGN.md, "Sessions and leases":
    /// each change postpones expiries).
    pub leader_changes: std::sync::atomic::AtomicU64,
    /// Batches this node's proposals while it leads.
    pub(crate) proposer: Arc<Proposer>,
    /// Shares leadership confirmations between concurrent reads and renewals.
    pub(crate) confirmer: Arc<Confirmer>,
    /// The license clock: the stamps this node writes while it leads, and whether its wall
    /// clock lets it lead (`crate::clock`).
    pub clock: Arc<LicenseClock>,
}

impl Node {
    pub fn new(config: NodeSettings, raft: Raft, replica: SharedReplica, peers: Peers) -> Node {
        let clock = Arc::new(LicenseClock::new(config.max_clock_offset));
        Node {
            proposer: Proposer::with_clock(raft.clone(), clock.clone()),
            clock,
            confirmer: Confirmer::new(raft.clone()),
            id: config.id,
            raft,
            replica,
            peers,
            config,
            leases: Arc::new(Mutex::new(Leases::new())),
            started: Instant::now(),
            leader_changes: Default::default(),
        }
    }

    /// Makes the proposer propose what it gathered each time `signal` fires (a follower
    /// answered an AppendEntries of this node's).
    pub fn propose_on(&self, signal: &qlm_raft::ReplicationSignal) {
        self.proposer.listen(signal);
    }

    /// Milliseconds of this node's monotonic clock.
    pub(crate) fn now_ms(&self) -> u64 {
        ms_since(self.started)
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// Forms the cluster when this node has the lowest id of `--initial-cluster` and has never
    /// held any state; every other node waits to be contacted (docs/DESIGN.md, trap 8).
    pub async fn bootstrap(&self, fresh: bool) -> Result<(), String> {
        let lowest = self.config.initial_cluster.keys().next().copied();
        if !fresh || lowest != Some(self.id) {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = self
            .config
            .initial_cluster
            .iter()
            .map(|(&id, addr)| (id, BasicNode { addr: addr.clone() }))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                info!(
                    node = self.id,
                    "initialized the cluster with every --initial-cluster member"
                );
                Ok(())
            }
            Err(RaftError::APIError(e)) => {
                info!(node = self.id, reason = %e, "cluster already initialized");
                Ok(())
            }
            Err(e) => Err(format!("initializing the cluster failed: {e}")),
        }
    }

    /// Proposes `command` through the leader, wherever it is, and returns what it produced.
    pub async fn propose(&self, command: Command) -> Result<Applied, Status> {
        match tokio::time::timeout(WRITE_DEADLINE, self.route_to_leader(command)).await {
            Ok(result) => result,
            Err(_) => Err(Status::unavailable(format!(
                "no answer within {WRITE_DEADLINE:?}: the cluster may have lost its quorum"
            ))),
        }
    }

    /// Proposes here when this node leads, else forwards to the leader and relays its answer.
    async fn route_to_leader(&self, command: Command) -> Result<Applied, Status> {
        let leader = self.known_leader().await?;
        if leader != self.id {
            return self.peers.forward(leader, &command).await;
        }
        self.propose_here(command).await
    }

    /// The leader, waiting (within the caller's deadline) while an election is under way.
    pub async fn known_leader(&self) -> Result<NodeId, Status> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = self.leader_with_addr(&metrics.borrow()) {
                return Ok(leader);
            }
            if metrics.changed().await.is_err() {
                return Err(Status::unavailable("the node is shutting down"));
            }
        }
    }

    /// The current leader, after making sure the peer links know its peer address from the
    /// membership (a node added at run time is in no node's `--initial-cluster`).
    fn leader_with_addr(
        &self,
        metrics: &openraft::RaftMetrics<NodeId, BasicNode>,
    ) -> Option<NodeId> {
        let leader = metrics.current_leader?;
        if leader != self.id
            && let Some(node) = metrics.membership_config.membership().get_node(&leader)
        {
            self.peers.set_addr(leader, node.addr.clone());
        }
        Some(leader)
    }

    /// Waits until this replica reflects every write acknowledged before the call, for a
    /// [`Consistency::Linearizable`] read; a stale read goes on at once.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), Status> {
        if consistency == Consistency::Stale {
            return Ok(());
        }
        let wait = async {
            let leader = self.known_leader().await?;
            let index = if leader == self.id {
                self.read_index_here().await?
            } else {
                self.peers.read_index(leader).await?
            };
            self.raft
                .wait(Some(READ_DEADLINE))
                .applied_index_at_least(Some(index), "linearizable read")
                .await
                .map_err(|e| Status::unavailable(format!("replica did not catch up: {e}")))?;
            Ok(())
        };
        match tokio::time::timeout(READ_DEADLINE, wait).await {
            Ok(result) => result,
            Err(_) => Err(Status::unavailable(format!(
                "no confirmation within {READ_DEADLINE:?}: the cluster may have lost its quorum \
                 (ask with stale=true for this node's view)"
            ))),
        }
    }

    /// A heartbeat: renews the session's lease on the leader. Returns the TTL.
    pub async fn heartbeat(&self, session_id: &str) -> Result<u64, Status> {
        let wait = async {
            let leader = self.known_leader().await?;
            if leader == self.id {
                self.renew_here(session_id).await
            } else {
                self.peers.renew(leader, session_id).await
            }
        };
        match tokio::time::timeout(crate::peer::PEER_CALL_DEADLINE, wait).await {
            Ok(result) => result,
            Err(_) => Err(Status::unavailable("no leader: the cluster is electing one")),
        }
    }
}

/// Milliseconds since `started` on the monotonic clock (the leases' time).
pub(crate) fn ms_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Sets a session's lease TTL (when the engine knows the session).
pub(crate) fn set_session_ttl(
    leases: &Mutex<Leases>,
    session_id: &str,
    ttl: Option<u64>,
    now_ms: u64,
) {
    if let (Some(ttl), Ok(mut leases)) = (ttl, leases.lock()) {
        leases.set_ttl(session_id, ttl, now_ms);
    }
}
