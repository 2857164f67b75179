//! What only the leader does: proposing through its proposer, renewing leases (with a quorum's
//! confirmation), answering read indexes, and its duties loop: on taking over, every live
//! session gets a lease afresh and the license set is proposed; then silent sessions expire
//! and an idle leader ticks, so lingering seats and borrows end on time.
//!
//! Leases (`leases.rs`) live only on the leader, in memory, on its monotonic clock:
//! heartbeats never enter the log.

use std::sync::Arc;
use std::time::Instant;

use tonic::Status;
use tracing::{info, warn};

use crate::node::{
    Consistency, LEASE_AUDIT_EVERY, LEASE_TICK, MAX_EXPIRE_BATCH, Node, TICK_EVERY, ms_since,
    set_session_ttl,
};
use qlm_engine::{Applied, Command, Outcome};

impl Node {
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

    /// The leader's read index: the log index a linearizable read must see applied.
    pub async fn read_index_here(&self) -> Result<u64, Status> {
        // A confirmation round is an AppendEntries to every follower, which renews their
        // leader lease: a leader whose clock is out of bounds must send none, so that the
        // others elect a successor.
        self.clock.lets_lead()?;
        self.confirmer.read_index().await
    }

    /// Renews a lease on this node, the leader.
    ///
    /// A session without a lease is not necessarily gone: a node that has just become leader
    /// fills its lease table only when its duties loop notices (up to a [`LEASE_TICK`] later),
    /// from a replica that may not have applied every committed entry yet. Answering NOT_FOUND
    /// then would tell a live client that its session is lost. So a miss waits until this
    /// replica has applied everything committed, and a session the engine still holds live
    /// gets its lease here, afresh.
    ///
    /// And a renewal is acknowledged only once a quorum has confirmed that this node still
    /// leads (as etcd's LeaseRenew does): a leader that was paused or cut off and has not yet
    /// heard of its successor would otherwise renew in a lease table nobody uses and tell the
    /// client so, while the real leader expires the session one TTL after its own take-over
    /// (docs/CHAOS.md lists both failures). Once confirmed, any successor is elected after
    /// this call began and gives the session a full TTL from its take-over, so the client's
    /// deadline holds.
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
        self.read_barrier(Consistency::Linearizable).await?;
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
            // Out of bounds, the node proposes nothing (its proposer refuses): its duties wait
            // for a leader whose clock may stamp the log.
            if !leading || self.clock.is_out_of_bounds() {
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
        if let Err(e) = self.read_barrier(Consistency::Linearizable).await {
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
