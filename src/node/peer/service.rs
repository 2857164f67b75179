//! The peer port's server: `RaftService` (proto/quorumlm/v1/raft.proto), what other nodes of
//! the cluster call.
//!
//! Two kinds of calls arrive here:
//!
//! - openraft's messages (AppendEntries, Vote, InstallSnapshot), sent by
//!   [`qlm_raft::GrpcNetwork`]: decoded and handed to the local [`Raft`], whose result,
//!   `Ok` or a Raft-level `Err`, goes back encoded with status OK.
//! - what a follower asks of the leader on a client's behalf (Forward, Renew, ReadIndex,
//!   ClusterView) and Hello. The leader side of those lives in the node, behind the small
//!   [`LeaderOps`] trait, so that this file is only the wire: checks, decoding, encoding,
//!   status codes.
//!   [`read_index`] is the Raft half a `LeaderOps` builds on.
//!
//! Every request is checked before anything is decoded, in this order: the cluster id
//! (PERMISSION_DENIED: a node of another cluster never votes or appends here; the refusal is a
//! fixed text that tells the caller nothing about this cluster, and the details go to this
//! node's log), the target id (FAILED_PRECONDITION: the address now belongs to another node),
//! the payload format (UNIMPLEMENTED), then the payload (INVALID_ARGUMENT). Nothing that comes
//! from the network can make this code panic.

use std::future::Future;

use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ForwardToLeader, RaftError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use qlm_engine::{Applied, Command};
use qlm_proto::v1::raft_service_server::{RaftService, RaftServiceServer};
use qlm_proto::v1::{
    ClusterResponse, ClusterViewRequest, ForwardRequest, ForwardResponse, HelloRequest,
    HelloResponse, RaftRequest, RaftResponse, ReadIndexRequest, ReadIndexResponse, RenewRequest,
    RenewResponse,
};
use qlm_proto::validate::MAX_COMMAND_BYTES;
use qlm_raft::network::{MAX_PEER_MESSAGE_BYTES, PAYLOAD_FORMAT, decode_payload, encode_payload};
use qlm_raft::{NodeId, Raft};

/// How a refusal of a peer of another cluster starts (PERMISSION_DENIED), so the refused
/// node can tell it from other refusals.
pub const CLUSTER_MISMATCH: &str = "another cluster";

/// The whole message of a refusal of a peer of another cluster. It is the same for every
/// caller and names nothing of this node's cluster (id, members, node id): whoever can reach
/// the peer port learns nothing from a wrong guess. The misconfigured node names its own
/// list, and this node logs both cluster ids and its list, so the two admins can compare.
pub const CLUSTER_REFUSAL: &str = concat!(
    "another cluster: this node belongs to a cluster other than the caller's (their ",
    "--initial-cluster lists differ); the refusing node's log names its list"
);

/// Trailing metadata naming the leader's node id (decimal) on a refusal (common.proto).
pub const LEADER_ID_METADATA: &str = "qlm-leader-id";

/// Trailing metadata naming the leader's client address, `host:port` (common.proto).
pub const LEADER_ADDR_METADATA: &str = "qlm-leader-addr";

/// The leader-side operations a follower asks for through the peer port. The node implements
/// them (it owns the leases and knows the addresses); a non-leader answers UNAVAILABLE with
/// the leader hint ([`not_leader`]).
pub trait LeaderOps: Send + Sync + 'static {
    /// Stamps `command` with this leader's clock, proposes it, and answers once it is applied:
    /// the engine's answer and the entry's log index (`Node::propose_here`).
    fn forward(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<(Applied, u64), Status>> + Send;

    /// Renews the lease of `session_id`; answers its ttl in milliseconds, or NOT_FOUND when
    /// this leader holds no lease for it.
    fn renew(&self, session_id: &str) -> impl Future<Output = Result<u64, Status>> + Send;

    /// Confirms leadership with a majority and answers the index a follower must have applied
    /// before it serves a linearizable read. [`read_index`] does exactly this.
    fn read_index(&self) -> impl Future<Output = Result<u64, Status>> + Send;

    /// Confirms leadership with a majority, waits until this leader has applied everything
    /// committed, and answers its own view of the cluster (a linearizable
    /// `StatusService.Cluster` asked of a follower).
    fn cluster_view(&self) -> impl Future<Output = Result<ClusterResponse, Status>> + Send;

    /// This node's id, client address and HTTP address.
    fn hello(&self) -> HelloResponse;
}

/// The RaftService of one node.
pub struct PeerService<H> {
    /// The local Raft node that openraft's messages are handed to.
    raft: Raft,
    /// This node's cluster: requests of any other are refused.
    cluster_id: String,
    /// This node's id: Raft messages meant for another node are refused.
    node_id: NodeId,
    /// The leader-side operations.
    leader: H,
    /// This node's `--initial-cluster`, as written, logged with a refusal so that its admin
    /// can compare it with the misconfigured node's (see `qlm_server::cluster_check`); never sent
    /// to the refused caller.
    members: String,
    /// When a refusal was last logged, per sender: a misconfigured peer retries every few
    /// hundred milliseconds, and one ERROR line per [`REFUSAL_LOG_EVERY`] is enough.
    refusals_logged: std::sync::Mutex<std::collections::BTreeMap<NodeId, std::time::Instant>>,
}

/// How often a refusal of the same misconfigured peer is logged again.
pub const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Senders whose last refusal is remembered (for [`REFUSAL_LOG_EVERY`]); a flood of made-up
/// sender ids past this is not logged one by one.
pub const REFUSALS_REMEMBERED: usize = 256;

/// How much of a refused caller's cluster id is logged.
const LOGGED_CLUSTER_ID_CHARS: usize = 64;

impl<H: LeaderOps> PeerService<H> {
    /// The peer service of node `node_id` of cluster `cluster_id`.
    pub fn new(
        raft: Raft,
        cluster_id: impl Into<String>,
        node_id: NodeId,
        leader: H,
    ) -> PeerService<H> {
        PeerService {
            raft,
            cluster_id: cluster_id.into(),
            node_id,
            leader,
            members: String::new(),
            refusals_logged: Default::default(),
        }
    }

    /// Logs this node's `--initial-cluster` with refusals of peers of another cluster.
    pub fn with_members(mut self, initial_cluster: impl Into<String>) -> PeerService<H> {
        self.members = initial_cluster.into();
        self
    }

    /// The tonic service to add to the peer port's server, with the peer message size limits.
    pub fn into_server(self) -> RaftServiceServer<PeerService<H>> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
    }

    fn check_cluster(&self, cluster_id: &str, sender_id: NodeId) -> Result<(), Status> {
        if cluster_id == self.cluster_id {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let log_now = self.refusals_logged.lock().is_ok_and(|mut logged| {
            // Sender ids are the caller's to choose: forget stale entries before the table
            // grows, and stay quiet rather than grow it past its bound.
            if logged.len() >= REFUSALS_REMEMBERED {
                logged.retain(|_, at| now - *at < REFUSAL_LOG_EVERY);
            }
            let due = logged.get(&sender_id).is_none_or(|at| now - *at >= REFUSAL_LOG_EVERY)
                && (logged.contains_key(&sender_id) || logged.len() < REFUSALS_REMEMBERED);
            if due {
                logged.insert(sender_id, now);
            }
            due
        });
        if log_now {
            // The caller's cluster id is as long as it likes: the log keeps its start.
            let theirs: String = cluster_id.chars().take(LOGGED_CLUSTER_ID_CHARS).collect();
            tracing::error!(
                node = self.node_id,
                sender_id,
                sender_cluster_id = %theirs.escape_debug(),
                cluster_id = %self.cluster_id,
                initial_cluster = %self.members,
                "refused node {sender_id}: it was started with another --initial-cluster \
                 (cluster id {:?}) than this node's (cluster id {}, --initial-cluster {}); \
                 every node must be started with the same --initial-cluster",
                theirs,
                self.cluster_id,
                self.members
            );
        }
        Err(Status::permission_denied(CLUSTER_REFUSAL))
    }

    /// The checks of a Raft message, then its payload decoded.
    fn open<T: DeserializeOwned>(&self, request: &RaftRequest) -> Result<T, Status> {
        self.check_cluster(&request.cluster_id, request.sender_id)?;
        if request.target_id != self.node_id {
            return Err(Status::failed_precondition(format!(
                "target_id {} reached node {}",
                request.target_id, self.node_id
            )));
        }
        check_format(request.format)?;
        decode_payload(&request.payload)
            .map_err(|e| Status::invalid_argument(format!("payload: {e}")))
    }
}

fn check_format(format: i32) -> Result<(), Status> {
    if format == i32::from(PAYLOAD_FORMAT) {
        Ok(())
    } else {
        Err(Status::unimplemented(format!("payload format {format}")))
    }
}

/// A RaftResponse carrying `result`.
fn reply<T: Serialize>(result: &T) -> Result<Response<RaftResponse>, Status> {
    let payload = encode_payload(result)
        .map_err(|e| Status::internal(format!("encode the response: {e}")))?;
    Ok(Response::new(RaftResponse { format: PAYLOAD_FORMAT.into(), payload }))
}

#[tonic::async_trait]
impl<H: LeaderOps> RaftService for PeerService<H> {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        let rpc = self.open(request.get_ref())?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftResponse>, Status> {
        let rpc = self.open(request.get_ref())?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        let rpc = self.open(request.get_ref())?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.sender_id)?;
        check_format(request.format)?;
        // Only client requests are forwarded, and a node checks those before it forwards
        // them: one larger than any checked request can make is refused, not proposed.
        if request.command.len() > MAX_COMMAND_BYTES {
            return Err(Status::invalid_argument(format!(
                "command: {} bytes; a forwarded command is at most {MAX_COMMAND_BYTES}",
                request.command.len()
            )));
        }
        let command: Command = decode_payload(&request.command)
            .map_err(|e| Status::invalid_argument(format!("command: {e}")))?;
        let (applied, log_index) = self.leader.forward(command).await?;
        let applied = encode_payload(&applied)
            .map_err(|e| Status::internal(format!("encode the outcome: {e}")))?;
        Ok(Response::new(ForwardResponse { format: PAYLOAD_FORMAT.into(), applied, log_index }))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.sender_id)?;
        let ttl_ms = self.leader.renew(&request.session_id).await?;
        Ok(Response::new(RenewResponse { ttl_ms }))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.sender_id)?;
        let index = self.leader.read_index().await?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn cluster_view(
        &self,
        request: Request<ClusterViewRequest>,
    ) -> Result<Response<ClusterResponse>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.sender_id)?;
        Ok(Response::new(self.leader.cluster_view().await?))
    }

    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.sender_id)?;
        let hello: HelloResponse = self.leader.hello();
        Ok(Response::new(hello))
    }
}

/// UNAVAILABLE "not the leader", with the leader hint in the trailing metadata when a leader
/// is known (`client_addr` is its client address, which only the node knows: openraft's
/// membership holds peer addresses).
pub fn not_leader(leader_id: Option<NodeId>, client_addr: Option<&str>) -> Status {
    let mut status = Status::unavailable(match leader_id {
        Some(id) => format!("not the leader; node {id} leads"),
        None => "not the leader, and no leader is known".to_string(),
    });
    if let Some(id) = leader_id {
        status.metadata_mut().insert(LEADER_ID_METADATA, MetadataValue::from(id));
    }
    if let Some(addr) = client_addr.and_then(|a| MetadataValue::try_from(a).ok()) {
        status.metadata_mut().insert(LEADER_ADDR_METADATA, addr);
    }
    status
}

/// The status for a forward-to-leader refusal (peer addresses are not client addresses, so
/// only the id is hinted).
fn forward_to_leader(forward: &ForwardToLeader<NodeId, BasicNode>) -> Status {
    not_leader(forward.leader_id, None)
}

/// Rounds of leadership confirmation a read index tries before it answers UNAVAILABLE.
const CONFIRM_ATTEMPTS: u32 = 3;

/// A leader's read index: leadership confirmed with a majority, and the index of the last
/// entry committed (0 when none). A non-leader answers UNAVAILABLE with the leader's id.
///
/// openraft 0.9 gives each follower one heartbeat interval (50 ms by default) to answer a
/// confirmation round. A burst of work (100,000 sessions opening) can keep followers on two
/// busy cores longer than that while the leader still leads: the round fails, and every
/// heartbeat waiting on it would be answered UNAVAILABLE. So a failed round is tried again, up
/// to `CONFIRM_ATTEMPTS` in all; each is a new round, begun after the caller arrived, which is
/// all a linearizable read needs. A node that learns it does not lead answers at once.
pub async fn read_index(raft: &Raft) -> Result<u64, Status> {
    let mut attempt = 1;
    loop {
        match raft.ensure_linearizable().await {
            Ok(index) => return Ok(index.map_or(0, |log_id| log_id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                return Err(forward_to_leader(&forward));
            }
            Err(e) if attempt >= CONFIRM_ATTEMPTS => {
                return Err(Status::unavailable(format!(
                    "confirm leadership ({attempt} rounds): {e}"
                )));
            }
            Err(e) => {
                tracing::debug!(attempt, error = %e, "leadership confirmation failed; once more");
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CLUSTER_MISMATCH, CLUSTER_REFUSAL};

    #[test]
    fn the_refusal_is_fixed_and_recognizable_by_the_refused_node() {
        // `cluster_check::ask` tells a refusal for another cluster by this start.
        assert!(CLUSTER_REFUSAL.starts_with(CLUSTER_MISMATCH));
        assert!(!CLUSTER_REFUSAL.contains('{'), "no placeholder: nothing is filled in");
    }
}
