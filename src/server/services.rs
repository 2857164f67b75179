//! The client-port gRPC services (LicenseService, StatusService) on top of a
//! [`ClusterNode`] (in `qlmd`, the replicated [`Node`]).
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

use crate::cluster_node::{ClusterNode, RaftView};
use crate::edge::{Known, session_gone};
use qlm_engine::{Handle, Outcome};
use qlm_node::node::{Consistency, DEFAULT_SESSION_TTL_MS, Node};
use qlm_proto::v1::license_service_server::LicenseService;
use qlm_proto::v1::status_service_server::StatusService;
use qlm_proto::{convert, v1, validate};

/// How often a WaitQueued stream looks at the replica for its request's fate.
pub const QUEUE_POLL: Duration = Duration::from_millis(200);

/// Heartbeats per TTL a client is told to send (so two may be lost without expiry).
pub const HEARTBEATS_PER_TTL: u64 = 3;

/// The services, sharing one node.
pub struct ClientServices<N = Node> {
    pub node: Arc<N>,
    /// This node's client address, for leader hints that point at itself.
    pub client_addr: String,
}

impl<N> Clone for ClientServices<N> {
    fn clone(&self) -> Self {
        ClientServices { node: self.node.clone(), client_addr: self.client_addr.clone() }
    }
}

impl<N: ClusterNode> ClientServices<N> {
    /// The cluster's members as this node sees them (addresses, roles, replication).
    pub fn members(&self) -> Vec<v1::Member> {
        self.members_in(&self.node.raft_view())
    }

    /// The members of `view`, this node's client address and applied index filled in.
    pub fn members_in(&self, view: &RaftView) -> Vec<v1::Member> {
        let own = self.node.id();
        let mut members = view
            .members
            .iter()
            .map(|member| {
                let id = member.id;
                let matched = member.matched_index;
                let client_addr = if id == own {
                    self.client_addr.clone()
                } else {
                    self.node.client_addr_of(id).unwrap_or_default()
                };
                let role =
                    if member.voter { v1::MemberRole::Voter } else { v1::MemberRole::Learner };
                v1::Member {
                    id,
                    peer_addr: member.peer_addr.clone(),
                    client_addr,
                    role: role.into(),
                    applied_index: (id == own).then_some(view.applied_index),
                    matched_index: matched,
                    lag: matched.map(|m| view.last_log_index.saturating_sub(m)),
                    reachable: id == own || matched.is_some(),
                }
            })
            .collect::<Vec<_>>();
        // status.proto: voters then learners, each by id.
        members.sort_by_key(|m| (m.role != i32::from(v1::MemberRole::Voter), m.id));
        members
    }

    pub fn leader_hint(&self) -> Option<v1::LeaderHint> {
        let leader = self.node.leader()?;
        let client_addr = if leader == self.node.id() {
            self.client_addr.clone()
        } else {
            self.node.client_addr_of(leader).unwrap_or_default()
        };
        Some(v1::LeaderHint { id: leader, client_addr })
    }

    /// `status` with the leader hint in its trailing metadata, as common.proto promises of
    /// every failed rpc: `qlm-leader-id` and `qlm-leader-addr`, when this node knows a leader
    /// (and its client address, for the second). Entries the status already carries stay.
    pub fn hinted(&self, status: Status) -> Status {
        with_leader_hint(status, self.leader_hint().as_ref())
    }

    /// UNAVAILABLE with the leader hint unless this node leads: for what only the leader may
    /// do or say.
    pub fn must_lead(&self) -> Result<(), Status> {
        if self.node.is_leader() {
            return Ok(());
        }
        let leader = self.node.leader();
        let addr = leader.and_then(|id| self.node.client_addr_of(id));
        Err(qlm_node::peer::not_leader(leader, addr.as_deref()))
    }
}

/// `status` with `hint` added to its trailing metadata ([`ClientServices::hinted`]); no leader
/// (none, or id 0) adds nothing, nor does an empty or unsendable address.
pub fn with_leader_hint(mut status: Status, hint: Option<&v1::LeaderHint>) -> Status {
    use qlm_node::peer::{LEADER_ADDR_METADATA, LEADER_ID_METADATA};
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

/// A session id the server makes: derived from the request id when the client gives one, so
/// that a retried OpenSession finds its session on any node and the same request id from
/// another process finds it taken (ALREADY_EXISTS); else random.
fn new_session_id(request: &v1::OpenSessionRequest) -> Result<String, Status> {
    if request.request_id.is_empty() {
        return random_hex();
    }
    let digest = Sha256::new()
        .chain_update(b"quorumlm.v1 session id\0")
        .chain_update(request.request_id.as_bytes())
        .finalize();
    Ok(hex(&digest[..SESSION_ID_BYTES]))
}

/// Bytes of a session id and of a session secret (shown as twice as many hex digits).
const SESSION_ID_BYTES: usize = 16;

/// A random session id or secret: 128 bits from the operating system.
fn random_hex() -> Result<String, Status> {
    let mut bytes = [0u8; SESSION_ID_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Status::internal(format!("no randomness for a session: {e}")))?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl<N: ClusterNode> LicenseService for ClientServices<N> {
    async fn open_session(
        &self,
        request: Request<v1::OpenSessionRequest>,
    ) -> Result<Response<v1::OpenSessionResponse>, Status> {
        let request = request.into_inner();
        validate::open_session(&request).map_err(|e| self.hinted(e.into()))?;
        let session_id = new_session_id(&request)?;
        let ttl_ms = if request.ttl_ms == 0 { DEFAULT_SESSION_TTL_MS } else { request.ttl_ms };
        let opened = |session_id, secret: qlm_engine::SessionSecret| v1::OpenSessionResponse {
            session_id,
            session_secret: secret.expose().to_owned(),
            ttl_ms,
            heartbeat_interval_ms: ttl_ms / HEARTBEATS_PER_TTL,
            leader: self.leader_hint(),
        };
        if let Some(secret) =
            self.open_retried(&request, &session_id).await.map_err(|e| self.hinted(e))?
        {
            return Ok(Response::new(opened(session_id, secret)));
        }
        self.room_for_a_session().await.map_err(|e| self.hinted(e))?;
        let secret = random_hex()?;
        let command =
            convert::open_session_command(request, session_id, secret, DEFAULT_SESSION_TTL_MS);
        match self.node.propose(command).await.map_err(|e| self.hinted(e))?.outcome {
            Outcome::SessionOpened { session_id, secret } => {
                Ok(Response::new(opened(session_id, secret)))
            }
            Outcome::Rejected(rejection) => Err(self.hinted(convert::rejection_status(&rejection))),
            other => Err(Status::internal(format!("OpenSession answered {other:?}"))),
        }
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let ttl_ms = async {
            validate::heartbeat(&request)?;
            self.admit_live(&request.session_id, &request.session_secret, None).await?;
            self.node.renew_lease(&request.session_id).await
        }
        .await
        .map_err(|e| self.hinted(e))?;
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
        let request = request.into_inner();
        let mut answer = async {
            validate::checkout(&request)?;
            let secret = request.session_secret.clone();
            let command = convert::checkout_command(request)?;
            let (session_id, request_id, key) =
                command.retry_identity().ok_or_else(|| Status::internal("not a checkout"))?;
            let now = self.admit_live(session_id, &secret, Some((request_id, key))).await?;
            if let qlm_engine::Command::Checkout { borrow_until: Some(until), .. } = &command
                && *until <= now
            {
                return Err(Status::invalid_argument(format!(
                    "`borrow_until_unix_ms` {until} is not in the future (the cluster's time is \
                     {now})"
                )));
            }
            let applied = self.node.propose(command).await?;
            convert::checkout_response(applied.outcome)
        }
        .await
        .map_err(|e| self.hinted(e))?;
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    async fn checkin(
        &self,
        request: Request<v1::CheckinRequest>,
    ) -> Result<Response<v1::CheckinResponse>, Status> {
        let request = request.into_inner();
        let mut answer = async {
            validate::checkin(&request)?;
            let secret = request.session_secret.clone();
            let command = convert::checkin_command(request);
            let (session_id, request_id, key) =
                command.retry_identity().ok_or_else(|| Status::internal("not a checkin"))?;
            // A borrowed checkout is checked in under its session even once that session is
            // closed, so a closed session is admitted here; the engine says what it holds.
            if self.admit(session_id, &secret, Some((request_id, key))).await? == Known::Unknown {
                return Err(session_gone(session_id));
            }
            let applied = self.node.propose(command).await?;
            convert::checkin_response(applied.outcome)
        }
        .await
        .map_err(|e| self.hinted(e))?;
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    type WaitQueuedStream = Pin<Box<dyn Stream<Item = Result<v1::QueueUpdate, Status>> + Send>>;

    async fn wait_queued(
        &self,
        request: Request<v1::WaitQueuedRequest>,
    ) -> Result<Response<Self::WaitQueuedStream>, Status> {
        let request = request.into_inner();
        validate::wait_queued(&request).map_err(|e| self.hinted(e.into()))?;
        // A session unknown even after catching up is answered in the stream (Left), as the
        // contract says; only a wrong secret fails the call.
        self.admit(&request.session_id, &request.session_secret, None)
            .await
            .map_err(|e| self.hinted(e))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let services = self.clone();
        tokio::spawn(async move { services.follow_queued(request, sender).await });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn close_session(
        &self,
        request: Request<v1::CloseSessionRequest>,
    ) -> Result<Response<v1::CloseSessionResponse>, Status> {
        let request = request.into_inner();
        let mut answer = async {
            validate::close_session(&request)?;
            // Closing a session that is gone releases nothing: answered without a log entry.
            match self.admit(&request.session_id, &request.session_secret, None).await? {
                Known::Session { live: true, .. } => {}
                Known::Session { live: false, .. } | Known::Unknown => {
                    return Ok(v1::CloseSessionResponse { released: Vec::new(), leader: None });
                }
            }
            let command = convert::close_session_command(request);
            let applied = self.node.propose(command).await?;
            convert::close_session_response(applied.outcome)
        }
        .await
        .map_err(|e| self.hinted(e))?;
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }
}

impl<N: ClusterNode> ClientServices<N> {
    /// Sends `request`'s queue updates to `sender` until its final one (or the client leaves).
    async fn follow_queued(
        &self,
        request: v1::WaitQueuedRequest,
        sender: tokio::sync::mpsc::Sender<Result<v1::QueueUpdate, Status>>,
    ) {
        let node = &self.node;
        let handle = Handle(request.handle);
        let mut last_position = None;
        let mut caught_up = false;
        loop {
            let update =
                node.read(|engine| queue_update(engine, &request.session_id, handle)).await;
            if matches!(update, QueueState::Done(v1::queue_update::Update::Left(_))) && !caught_up {
                // The leader answered Queued once the entry committed; this replica may not
                // have applied it yet. "Left" would tell the client it holds nothing while the
                // queue may still grant it a seat, so first catch up with everything the
                // leader had committed, then look again.
                if let Err(status) = node.read_barrier(Consistency::Linearizable).await {
                    let _ = sender.send(Err(self.hinted(status))).await;
                    return;
                }
                caught_up = true;
                continue;
            }
            let (update, done) = match update {
                QueueState::Waiting(position) if last_position == Some(position) => (None, false),
                QueueState::Waiting(position) => {
                    last_position = Some(position);
                    let position = v1::QueuePosition { handle: handle.0, position };
                    (Some(v1::queue_update::Update::Position(position)), false)
                }
                QueueState::Done(update) => (Some(update), true),
            };
            if let Some(update) = update {
                let message = v1::QueueUpdate { update: Some(update), leader: self.leader_hint() };
                if sender.send(Ok(message)).await.is_err() {
                    return; // The client went away.
                }
            }
            if done {
                return;
            }
            tokio::time::sleep(QUEUE_POLL).await;
        }
    }
}

enum QueueState {
    Waiting(u32),
    Done(v1::queue_update::Update),
}

/// Where a queued request stands in this replica.
fn queue_update(engine: &qlm_engine::Engine, session_id: &str, handle: Handle) -> QueueState {
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
impl<N: ClusterNode> StatusService for ClientServices<N> {
    async fn features(
        &self,
        request: Request<v1::FeaturesRequest>,
    ) -> Result<Response<v1::FeaturesResponse>, Status> {
        let request = request.into_inner();
        validate::features(&request).map_err(|e| self.hinted(e.into()))?;
        self.node
            .read_barrier(Consistency::stale_if(request.stale))
            .await
            .map_err(|status| self.hinted(status))?;
        let mut answer =
            self.node.read(|engine| convert::features_response(engine, &request.feature)).await;
        answer.leader = self.leader_hint();
        Ok(Response::new(answer))
    }

    async fn checkouts(
        &self,
        request: Request<v1::CheckoutsRequest>,
    ) -> Result<Response<v1::CheckoutsResponse>, Status> {
        let request = request.into_inner();
        validate::checkouts(&request).map_err(|e| self.hinted(e.into()))?;
        self.node
            .read_barrier(Consistency::stale_if(request.stale))
            .await
            .map_err(|status| self.hinted(status))?;
        let mut answer =
            self.node.read(|engine| convert::checkouts_response(engine, &request)).await;
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
