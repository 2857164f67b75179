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
        let mut members = membership
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
            .collect::<Vec<_>>();
        // status.proto: voters then learners, each by id.
        members.sort_by_key(|m| (m.role != i32::from(v1::MemberRole::Voter), m.id));
        members
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

    /// `status` with the leader hint in its trailing metadata, as common.proto promises of
    /// every failed rpc: `qlm-leader-id` and `qlm-leader-addr`, when this node knows a leader
    /// (and its client address, for the second). Entries the status already carries stay.
    pub fn hinted(&self, status: Status) -> Status {
        with_leader_hint(status, self.leader_hint().as_ref())
    }
}

/// `status` with `hint` added to its trailing metadata ([`ClientServices::hinted`]); no leader
/// (none, or id 0) adds nothing, nor does an empty or unsendable address.
pub fn with_leader_hint(mut status: Status, hint: Option<&v1::LeaderHint>) -> Status {
    use crate::server::peer::{LEADER_ADDR_METADATA, LEADER_ID_METADATA};
    use tonic::metadata::MetadataValue;
    let Some(hint) = hint.filter(|h| h.id != 0) else { return status };
    let metadata = status.metadata_mut();
    if !metadata.contains_key(LEADER_ID_METADATA) {
        metadata.insert(LEADER_ID_METADATA, MetadataValue::from(hint.id));
    }
    if !hint.client_addr.is_empty()
        && !metadata.contains_key(LEADER_ADDR_METADATA)
        && let Ok(addr) = MetadataValue::try_from(hint.client_addr.as_str())
    {
        metadata.insert(LEADER_ADDR_METADATA, addr);
    }
    status
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
        self.node.read_barrier(request.stale).await.map_err(|status| self.hinted(status))?;
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
        self.node.read_barrier(request.stale).await.map_err(|status| self.hinted(status))?;
        let replica = self.node.replica.read().await;
        let mut answer = convert::checkouts_response(replica.engine(), &request);
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    async fn cluster(
        &self,
        request: Request<v1::ClusterRequest>,
    ) -> Result<Response<v1::ClusterResponse>, Status> {
        // status.proto: a linearizable answer is the leader's view, wherever it is asked.
        let answer = if request.into_inner().stale {
            Ok(self.own_cluster_view().await)
        } else {
            self.leader_cluster_view().await
        };
        answer.map(Response::new).map_err(|status| self.hinted(status))
    }
}

#[cfg(test)]
mod hint_tests {
    use super::{Status, v1, with_leader_hint};

    fn entry<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
        status.metadata().get(key).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_known_leader_is_added_to_a_failed_status_and_present_entries_stay() {
        let hint = v1::LeaderHint { id: 2, client_addr: "10.0.0.2:7400".into() };
        let status = with_leader_hint(Status::unauthenticated("wrong admin token"), Some(&hint));
        assert_eq!(entry(&status, "qlm-leader-id"), Some("2"));
        assert_eq!(entry(&status, "qlm-leader-addr"), Some("10.0.0.2:7400"));
        assert_eq!(status.message(), "wrong admin token", "the status itself is unchanged");

        let mut fresher = Status::unavailable("not the leader; node 3 leads");
        fresher.metadata_mut().insert("qlm-leader-id", 3.into());
        let status = with_leader_hint(fresher, Some(&hint));
        assert_eq!(entry(&status, "qlm-leader-id"), Some("3"), "an entry present stays");
        assert_eq!(entry(&status, "qlm-leader-addr"), Some("10.0.0.2:7400"));
    }

    #[test]
    fn no_leader_adds_nothing_and_no_address_adds_only_the_id() {
        let status = with_leader_hint(Status::unavailable("electing"), None);
        assert!(status.metadata().is_empty());
        let nobody = v1::LeaderHint { id: 0, client_addr: String::new() };
        assert!(with_leader_hint(Status::unavailable("x"), Some(&nobody)).metadata().is_empty());
        let no_addr = v1::LeaderHint { id: 1, client_addr: String::new() };
        let status = with_leader_hint(Status::unavailable("x"), Some(&no_addr));
        assert_eq!(entry(&status, "qlm-leader-id"), Some("1"));
        assert!(entry(&status, "qlm-leader-addr").is_none());
    }
}
