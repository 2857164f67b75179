//! The client-port gRPC services (LicenseService, StatusService) on top of [`Node`].
//!
//! Each handler turns the request into an engine command (`proto::convert`), has the node
//! propose it through the leader, and turns the outcome into the answer, adding the leader
//! hint. Reads wait for the node's read barrier unless the request says `stale`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::engine::{Handle, Outcome};
use crate::proto::convert;
use crate::proto::v1;
use crate::proto::v1::license_service_server::LicenseService;
use crate::proto::v1::status_service_server::StatusService;
use crate::server::node::{DEFAULT_SESSION_TTL_MS, Node};

/// How often a WaitQueued stream looks at the replica for its request's fate.
pub const QUEUE_POLL: Duration = Duration::from_millis(200);

/// Heartbeats per TTL a client is told to send (so two may be lost without expiry).
pub const HEARTBEATS_PER_TTL: u64 = 3;

/// The services, sharing one node.
#[derive(Clone)]
pub struct ClientServices {
    pub node: Arc<Node>,
    /// This node's client address, for leader hints that point at itself.
    pub client_addr: String,
}

impl ClientServices {
    /// The cluster's members as this node sees them (addresses, roles, replication).
    pub fn members(&self) -> Vec<v1::Member> {
        let metrics = self.node.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let replication = metrics.replication.clone().unwrap_or_default();
        let last_log = metrics.last_log_index.unwrap_or(0);
        membership
            .nodes()
            .map(|(&id, node)| {
                let matched = replication.get(&id).and_then(|m| m.map(|log| log.index));
                let client_addr = if id == self.node.id {
                    self.client_addr.clone()
                } else {
                    self.node.peers.client_addr(id).unwrap_or_default()
                };
                let role = if voters.contains(&id) {
                    v1::MemberRole::Voter
                } else {
                    v1::MemberRole::Learner
                };
                v1::Member {
                    id,
                    peer_addr: node.addr.clone(),
                    client_addr,
                    role: role.into(),
                    applied_index: (id == self.node.id)
                        .then(|| metrics.last_applied.map_or(0, |l| l.index)),
                    matched_index: matched,
                    lag: matched.map(|m| last_log.saturating_sub(m)),
                    reachable: id == self.node.id || matched.is_some(),
                }
            })
            .collect()
    }

    pub fn leader_hint(&self) -> Option<v1::LeaderHint> {
        let leader = self.node.leader()?;
        let client_addr = if leader == self.node.id {
            self.client_addr.clone()
        } else {
            self.node.peers.client_addr(leader).unwrap_or_default()
        };
        Some(v1::LeaderHint { id: leader, client_addr })
    }
}

/// A session id the server makes: derived from the request id when the client gives one (a
/// retried OpenSession then finds its session), else random.
fn new_session_id(request: &v1::OpenSessionRequest) -> Result<String, Status> {
    let mut bytes = [0u8; 16];
    if request.request_id.is_empty() {
        getrandom::fill(&mut bytes).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
    } else {
        let digest = Sha256::new()
            .chain_update(request.user.as_bytes())
            .chain_update([0])
            .chain_update(request.host.as_bytes())
            .chain_update([0])
            .chain_update(request.pid.to_be_bytes())
            .chain_update(request.request_id.as_bytes())
            .finalize();
        bytes.copy_from_slice(&digest[..16]);
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[tonic::async_trait]
impl LicenseService for ClientServices {
    async fn open_session(
        &self,
        request: Request<v1::OpenSessionRequest>,
    ) -> Result<Response<v1::OpenSessionResponse>, Status> {
        let request = request.into_inner();
        let session_id = new_session_id(&request)?;
        let command = convert::open_session_command(request, session_id, DEFAULT_SESSION_TTL_MS);
        let ttl_ms = match &command {
            crate::engine::Command::OpenSession { ttl_ms, .. } => *ttl_ms,
            _ => DEFAULT_SESSION_TTL_MS,
        };
        match self.node.propose(command).await?.outcome {
            Outcome::SessionOpened { session_id } => Ok(Response::new(v1::OpenSessionResponse {
                session_id,
                ttl_ms,
                heartbeat_interval_ms: ttl_ms / HEARTBEATS_PER_TTL,
                leader: self.leader_hint(),
            })),
            Outcome::Rejected(rejection) => Err(convert::rejection_status(&rejection)),
            other => Err(Status::internal(format!("OpenSession answered {other:?}"))),
        }
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let session_id = request.into_inner().session_id;
        if session_id.is_empty() {
            return Err(Status::invalid_argument("`session_id` is empty"));
        }
        let ttl_ms = self.node.heartbeat(&session_id).await?;
        Ok(Response::new(v1::HeartbeatResponse {
            ttl_ms,
            heartbeat_interval_ms: ttl_ms / HEARTBEATS_PER_TTL,
            leader: self.leader_hint(),
        }))
    }

    async fn checkout(
        &self,
        request: Request<v1::CheckoutRequest>,
    ) -> Result<Response<v1::CheckoutResponse>, Status> {
        let command = convert::checkout_command(request.into_inner())?;
        let applied = self.node.propose(command).await?;
        let mut answer = convert::checkout_response(applied.outcome)?;
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    async fn checkin(
        &self,
        request: Request<v1::CheckinRequest>,
    ) -> Result<Response<v1::CheckinResponse>, Status> {
        let applied = self.node.propose(convert::checkin_command(request.into_inner())).await?;
        let mut answer = convert::checkin_response(applied.outcome)?;
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    type WaitQueuedStream = Pin<Box<dyn Stream<Item = Result<v1::QueueUpdate, Status>> + Send>>;

    async fn wait_queued(
        &self,
        request: Request<v1::WaitQueuedRequest>,
    ) -> Result<Response<Self::WaitQueuedStream>, Status> {
        let request = request.into_inner();
        if request.session_id.is_empty() {
            return Err(Status::invalid_argument("`session_id` is empty"));
        }
        if request.handle == 0 {
            return Err(Status::invalid_argument("`handle` is 0: give the handle from Queued"));
        }
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let node = self.node.clone();
        tokio::spawn(async move {
            let handle = Handle(request.handle);
            let mut last_position = None;
            let mut caught_up = false;
            loop {
                let update = {
                    let replica = node.replica.read().await;
                    queue_update(replica.engine(), &request.session_id, handle)
                };
                if matches!(update, QueueState::Done(v1::queue_update::Update::Left(_)))
                    && !caught_up
                {
                    // The leader answered Queued once the entry committed; this replica may
                    // not have applied it yet. "Left" would tell the client it holds nothing
                    // while the queue may still grant it a seat, so first catch up with
                    // everything the leader had committed, then look again.
                    if let Err(status) = node.read_barrier(false).await {
                        let _ = sender.send(Err(status)).await;
                        return;
                    }
                    caught_up = true;
                    continue;
                }
                let (update, done) = match update {
                    QueueState::Waiting(position) if last_position == Some(position) => {
                        (None, false)
                    }
                    QueueState::Waiting(position) => {
                        last_position = Some(position);
                        let position = v1::QueuePosition { handle: handle.0, position };
                        (Some(v1::queue_update::Update::Position(position)), false)
                    }
                    QueueState::Done(update) => (Some(update), true),
                };
                if let Some(update) = update {
                    let message = v1::QueueUpdate { update: Some(update), leader: None };
                    if sender.send(Ok(message)).await.is_err() {
                        return; // The client went away.
                    }
                }
                if done {
                    return;
                }
                tokio::time::sleep(QUEUE_POLL).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn close_session(
        &self,
        request: Request<v1::CloseSessionRequest>,
    ) -> Result<Response<v1::CloseSessionResponse>, Status> {
        let command = convert::close_session_command(request.into_inner());
        let applied = self.node.propose(command).await?;
        let mut answer = convert::close_session_response(applied.outcome)?;
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }
}

enum QueueState {
    Waiting(u32),
    Done(v1::queue_update::Update),
}

/// Where a queued request stands in this replica.
fn queue_update(engine: &crate::engine::Engine, session_id: &str, handle: Handle) -> QueueState {
    use v1::queue_update::Update;
    let mine = engine.session(session_id);
    let left = |cause: v1::LeftCause| {
        QueueState::Done(Update::Left(v1::Left { handle: handle.0, cause: cause.into() }))
    };
    let Some(session) = mine else { return left(v1::LeftCause::SessionEnded) };
    let owned = session.checkouts.contains(&handle) || session.queued.contains(&handle);
    match convert::queued_handle_state(engine, handle).filter(|_| owned) {
        Some(Ok(granted)) => QueueState::Done(Update::Granted(granted)),
        Some(Err(position)) => QueueState::Waiting(position),
        None => left(v1::LeftCause::Cancelled),
    }
}

#[tonic::async_trait]
impl StatusService for ClientServices {
    async fn features(
        &self,
        request: Request<v1::FeaturesRequest>,
    ) -> Result<Response<v1::FeaturesResponse>, Status> {
        let request = request.into_inner();
        self.node.read_barrier(request.stale).await?;
        let replica = self.node.replica.read().await;
        let mut answer = convert::features_response(replica.engine(), &request.feature);
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    async fn checkouts(
        &self,
        request: Request<v1::CheckoutsRequest>,
    ) -> Result<Response<v1::CheckoutsResponse>, Status> {
        let request = request.into_inner();
        self.node.read_barrier(request.stale).await?;
        let replica = self.node.replica.read().await;
        let mut answer = convert::checkouts_response(replica.engine(), &request);
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    async fn cluster(
        &self,
        request: Request<v1::ClusterRequest>,
    ) -> Result<Response<v1::ClusterResponse>, Status> {
        self.node.read_barrier(request.into_inner().stale).await?;
        // The applied index and the digest under one read lock, so they describe one state.
        let (applied_index, state_digest) = {
            let replica = self.node.replica.read().await;
            let digest = Sha256::digest(replica.engine().snapshot());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            (replica.last_applied().map_or(0, |l| l.index), hex)
        };
        let metrics = self.node.raft.metrics().borrow().clone();
        let members = self.members();
        let last_log = metrics.last_log_index.unwrap_or(0);
        Ok(Response::new(v1::ClusterResponse {
            node_id: self.node.id,
            state_digest,
            applied_index,
            term: metrics.current_term,
            commit_index: metrics.last_applied.map_or(0, |l| l.index),
            last_log_index: last_log,
            members,
            leader: self.leader_hint(),
        }))
    }
}
