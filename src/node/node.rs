//! One QuorumLM node: its Raft instance, its replica of the engine, and what only the leader
//! does (stamping and proposing commands, keeping session leases, proposing expiries).
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
use tracing::{info, warn};

use crate::leases::Leases;
use crate::peer::Peers;
use crate::proposer::{Confirmer, Proposer};
use crate::settings::NodeSettings;
use qlm_engine::{Applied, Command, Outcome};
use qlm_license::{HostId, LineError, Policy, TrustedKeys};
use qlm_raft::network::payload_len;
use qlm_raft::{MAX_ENTRY_BYTES, NodeId, Raft, SharedReplica};

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

/// The node.
pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    /// The engine replica this node applies the log to.
    pub replica: SharedReplica,
    /// Peer links: forwarding, heartbeats and read index to the leader; client addresses.
    pub peers: Peers,
    /// This node's settings (license and options files for the leader's proposals).
    config: NodeSettings,
    /// Session deadlines; only meaningful while this node leads. Never held across `.await`.
    leases: Arc<Mutex<Leases>>,
    /// Origin of the monotonic clock the leases use.
    started: Instant,
    /// Times this node has seen the leader change (docs/DESIGN.md, "Sessions and leases":
    /// each change postpones expiries).
    pub leader_changes: std::sync::atomic::AtomicU64,
    /// Batches this node's proposals while it leads.
    proposer: Arc<Proposer>,
    /// Shares leadership confirmations between concurrent reads and renewals.
    confirmer: Arc<Confirmer>,
}

impl Node {
    pub fn new(config: NodeSettings, raft: Raft, replica: SharedReplica, peers: Peers) -> Node {
        Node {
            proposer: Proposer::new(raft.clone()),
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
    fn now_ms(&self) -> u64 {
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
        match tokio::time::timeout(WRITE_DEADLINE, self.propose_inner(command)).await {
            Ok(result) => result,
            Err(_) => Err(Status::unavailable(format!(
                "no answer within {WRITE_DEADLINE:?}: the cluster may have lost its quorum"
            ))),
        }
    }

    async fn propose_inner(&self, command: Command) -> Result<Applied, Status> {
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

    /// Proposes as the leader (what `RaftService.Forward` calls on the leader).
    pub async fn propose_here(&self, command: Command) -> Result<Applied, Status> {
        let (applied, _) = self.proposer.propose(command.clone()).await?;
        self.after_apply(&command, &applied);
        if let Command::Checkout { session_id, .. } | Command::Checkin { session_id, .. } = &command
        {
            // A TIMEOUT on a feature the session now holds (or no longer holds) changes its TTL.
            // The answer does not wait for it: while the replica applies the next entry, the
            // lookup goes to a task of its own (it reads the replica as it is then, which is
            // at least as new as this command).
            match self.replica.try_read() {
                Ok(replica) => {
                    let ttl = replica.engine().session_ttl_ms(session_id);
                    drop(replica);
                    set_session_ttl(&self.leases, session_id, ttl, self.now_ms());
                }
                Err(_) => {
                    let (replica, leases) = (self.replica.clone(), self.leases.clone());
                    let (session_id, started) = (session_id.clone(), self.started);
                    tokio::spawn(async move {
                        let ttl = replica.read().await.engine().session_ttl_ms(&session_id);
                        set_session_ttl(&leases, &session_id, ttl, ms_since(started));
                    });
                }
            }
        }
        Ok(applied)
    }

    /// Waits until this replica reflects every write acknowledged before the call (a
    /// linearizable read); `stale` skips the wait.
    pub async fn read_barrier(&self, stale: bool) -> Result<(), Status> {
        if stale {
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

    /// The leader's read index: the log index a linearizable read must see applied.
    pub async fn read_index_here(&self) -> Result<u64, Status> {
        self.confirmer.read_index().await
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

    /// Renews a lease on this node, the leader.
    ///
    /// A session without a lease is not necessarily gone: a node that has just become leader
    /// fills its lease table only when its duties loop notices (up to a [`LEASE_TICK`] later),
    /// from a replica that may not have applied every committed entry yet. Answering NOT_FOUND
    /// then would tell a live client that its session is lost (the chaos suite's leader kill
    /// loop caught exactly that). So a miss waits until this replica has applied everything
    /// committed, and a session the engine still holds live gets its lease here, afresh.
    ///
    /// And a renewal is acknowledged only once a quorum has confirmed that this node still
    /// leads (as etcd's LeaseRenew does): a leader that was paused or cut off and has not yet
    /// heard of its successor would otherwise renew in a lease table nobody uses and tell the
    /// client so, while the real leader expires the session one TTL after its own take-over
    /// (the chaos leader-pause scenario caught that too). Once confirmed, any successor is
    /// elected after this call began and gives the session a full TTL from its take-over, so
    /// the client's deadline holds.
    pub async fn renew_here(&self, session_id: &str) -> Result<u64, Status> {
        let ttl_ms = self.renew_unconfirmed(session_id).await?;
        self.read_index_here().await?;
        Ok(ttl_ms)
    }

    /// [`Node::renew_here`] without the leadership confirmation.
    async fn renew_unconfirmed(&self, session_id: &str) -> Result<u64, Status> {
        if !self.is_leader() {
            let leader = self.leader();
            let addr = leader.and_then(|id| self.peers.client_addr(id));
            return Err(crate::peer::not_leader(leader, addr.as_deref()));
        }
        let now = self.now_ms();
        let missed = {
            let mut leases =
                self.leases.lock().map_err(|_| Status::internal("lease table poisoned"))?;
            match leases.renew(session_id, now) {
                Ok(deadline) => return Ok(deadline.saturating_sub(now)),
                Err(missed) => missed,
            }
        };
        self.read_barrier(false).await?;
        let live = {
            let replica = self.replica.read().await;
            replica
                .engine()
                .live_sessions()
                .find(|(id, _)| id.as_ref() == session_id)
                .map(|(id, ttl)| (id.clone(), ttl))
        };
        let Some((name, ttl_ms)) = live else {
            return Err(Status::not_found(missed.to_string()));
        };
        let now = self.now_ms();
        let mut leases =
            self.leases.lock().map_err(|_| Status::internal("lease table poisoned"))?;
        match leases.renew(session_id, now) {
            Ok(deadline) => Ok(deadline.saturating_sub(now)),
            Err(_) => {
                leases.track(name, ttl_ms, now);
                Ok(ttl_ms)
            }
        }
    }

    /// Lease bookkeeping after this leader applied a command.
    fn after_apply(&self, command: &Command, applied: &Applied) {
        let now = self.now_ms();
        let Ok(mut leases) = self.leases.lock() else { return };
        match (command, &applied.outcome) {
            (Command::OpenSession { session_id, ttl_ms, .. }, Outcome::SessionOpened { .. }) => {
                leases.track(session_id.as_str().into(), *ttl_ms, now);
            }
            (Command::CloseSession { session_id }, _) => leases.forget(session_id),
            (Command::ExpireSessions { session_ids }, _) => {
                for id in session_ids {
                    leases.forget(id);
                }
            }
            _ => {}
        }
    }

    /// This node's host id.
    pub fn hostid(&self) -> &str {
        &self.config.hostid
    }

    /// The license set and policy from this node's files (see [`load_licenses_command`]),
    /// less the pools bound to host ids that a majority of the voters do not have: a copy of
    /// the license file on another cluster does not double the count. Those pools are
    /// returned as refused, with the reason.
    pub async fn licenses_to_serve(&self) -> Result<(Command, Vec<LineError>), String> {
        let (command, mut refused) = load_licenses_command(&self.config)?;
        let Command::LoadLicenses { pools, policy } = command else {
            return Ok((command, refused));
        };
        let voters: Vec<NodeId> =
            self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        let mut hostids = Vec::new();
        for &voter in &voters {
            let hostid = if voter == self.id {
                Some(self.config.hostid.clone())
            } else {
                match self.peers.hostid(voter) {
                    Some(hostid) => Some(hostid),
                    None => {
                        self.peers.hello(voter).await.ok().and_then(|_| self.peers.hostid(voter))
                    }
                }
            };
            hostids.extend(hostid);
        }
        let (served, unserved): (Vec<_>, Vec<_>) =
            pools.into_iter().partition(|pool| match &pool.hostid {
                HostId::Any => true,
                HostId::List(allowed) => {
                    let matching = hostids.iter().filter(|h| allowed.contains(h.as_str())).count();
                    matching * 2 > voters.len()
                }
            });
        for pool in unserved {
            refused.push(LineError::field(
                &self.config.license.display().to_string(),
                0,
                "hostid",
                format!(
                    "`{}` (pool {}) is bound to hosts that fewer than a majority of the {} \
                     voting nodes have (known host ids: {})",
                    pool.feature,
                    pool.id,
                    voters.len(),
                    hostids.join(", ")
                ),
            ));
        }
        Ok((Command::LoadLicenses { pools: served, policy }, refused))
    }

    /// The leader's duties, until `shutdown` resolves: on taking over, reset every lease and
    /// propose the licenses; then expire silent sessions and tick.
    pub async fn run_leader_duties(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut was_leader = false;
        let mut last_leader = None;
        let mut last_tick = Instant::now();
        let mut last_audit = Instant::now();
        let mut interval = tokio::time::interval(LEASE_TICK);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            let leader = self.leader();
            if leader != last_leader {
                if last_leader.is_some() {
                    self.leader_changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                last_leader = leader;
            }
            let leading = leader == Some(self.id);
            if leading && !was_leader {
                self.take_over().await;
            }
            was_leader = leading;
            if !leading {
                continue;
            }
            if last_audit.elapsed() >= LEASE_AUDIT_EVERY {
                last_audit = Instant::now();
                self.adopt_unleased_sessions().await;
            }
            let due = match self.leases.lock() {
                Ok(leases) => leases.due(self.now_ms(), MAX_EXPIRE_BATCH),
                Err(_) => Vec::new(),
            };
            if !due.is_empty() {
                let session_ids: Vec<String> = due.iter().map(|s| s.to_string()).collect();
                info!(node = self.id, sessions = session_ids.len(), "expiring silent sessions");
                if let Err(e) = self.propose_here(Command::ExpireSessions { session_ids }).await {
                    warn!(node = self.id, error = %e, "could not propose the expiry");
                }
            } else if last_tick.elapsed() >= TICK_EVERY {
                last_tick = Instant::now();
                let _ = self.propose_here(Command::Tick).await;
            }
        }
    }

    /// Gives a lease to every live session of the replica that has none. That happens when the
    /// take-over could not wait for the replica (its read barrier failed), or when an
    /// `OpenSession` this leader proposed was committed after its proposal had been given up;
    /// without a lease such a session, and its seats, would never expire.
    async fn adopt_unleased_sessions(&self) {
        let replica = self.replica.read().await;
        // Under the replica's lock: no entry is applied meanwhile, so a session closed or
        // opened in the log is seen here the same way as by the bookkeeping after its apply.
        let adopted = match self.leases.lock() {
            // With as many leases as live sessions, none is missing: the full walk (a lookup
            // per session, milliseconds at 100,000 sessions, with every renewal waiting on the
            // lock) is done only when one is. A lease left for a session no longer live could
            // hide a missing one, but only until it falls due: its expiry forgets it.
            Ok(leases) if leases.len() >= replica.engine().live_session_count() => 0,
            Ok(mut leases) => leases.adopt_missing(replica.engine().live_sessions(), self.now_ms()),
            Err(_) => 0,
        };
        drop(replica);
        if adopted > 0 {
            warn!(
                node = self.id,
                sessions = adopted,
                "live sessions had no lease; each gets a full TTL"
            );
        }
    }

    /// A new leader's start: every live session's lease afresh, then this node's licenses.
    async fn take_over(&self) {
        // Every committed entry applied first: a session opened under the old leader but not
        // yet applied here would otherwise get no lease, and never expire under this leader.
        if let Err(e) = self.read_barrier(false).await {
            warn!(node = self.id, error = %e, "taking over before the replica caught up");
        }
        let sessions: Vec<_> = {
            let replica = self.replica.read().await;
            replica.engine().live_sessions().map(|(id, ttl)| (id.clone(), ttl)).collect()
        };
        let count = sessions.len();
        if let Ok(mut leases) = self.leases.lock() {
            leases.reset(sessions, self.now_ms());
        }
        info!(node = self.id, sessions = count, "leading: every session's lease starts afresh");
        match self.licenses_to_serve().await {
            Ok((command, refused)) => {
                for line in &refused {
                    warn!(node = self.id, refused = %line, "license line refused");
                }
                if let Err(e) = self.propose_here(command).await {
                    warn!(node = self.id, error = %e, "could not propose the license set");
                }
            }
            Err(e) => {
                warn!(node = self.id, error = %e, "license files not loaded; keeping the current set")
            }
        }
    }
}

/// The license set and policy from a node's files, as a `LoadLicenses` command, with the
/// license lines refused (a bad options file refuses the whole reload). A command too large
/// for one log entry is refused here, naming the files, at start, on a reload and when a node
/// takes over, rather than by the proposer.
pub fn load_licenses_command(config: &NodeSettings) -> Result<(Command, Vec<LineError>), String> {
    let trusted = TrustedKeys::read_files(&config.vendor_pubkeys).map_err(|e| e.to_string())?;
    let set =
        qlm_license::load_license_file(&config.license, &trusted).map_err(|e| e.to_string())?;
    let policy = match &config.options {
        Some(path) => qlm_license::options::load_options_file(path).map_err(|e| e.to_string())?,
        None => Policy::default(),
    };
    let command = Command::LoadLicenses { pools: set.pools, policy };
    let bytes = payload_len(&command).map_err(|e| format!("cannot encode the license set: {e}"))?;
    if bytes > MAX_ENTRY_BYTES {
        let files = match &config.options {
            Some(options) => format!("{} and {}", config.license.display(), options.display()),
            None => config.license.display().to_string(),
        };
        return Err(format!(
            "the license set and policy from {files} take {bytes} bytes encoded, more than the \
             {MAX_ENTRY_BYTES} bytes one replicated log entry holds: serve fewer license lines, or \
             a shorter policy, from this cluster"
        ));
    }
    Ok((command, set.refused))
}

/// Milliseconds since `started` on the monotonic clock (the leases' time).
fn ms_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Sets a session's lease TTL (when the engine knows the session).
fn set_session_ttl(leases: &Mutex<Leases>, session_id: &str, ttl: Option<u64>, now_ms: u64) {
    if let (Some(ttl), Ok(mut leases)) = (ttl, leases.lock()) {
        leases.set_ttl(session_id, ttl, now_ms);
    }
}
