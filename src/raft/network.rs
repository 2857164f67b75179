//! openraft's network over gRPC: how a node sends Raft messages to its peers.
//!
//! Each message travels as one unary call of `RaftService` (proto/quorumlm/v1/raft.proto) on
//! the peer's peer port, `BasicNode::addr`, over a channel from the node's [`PeerChannels`]
//! (plaintext, or mutual TLS with the cluster CA). openraft's own request and response values
//! ride as postcard bytes in [`RaftRequest`](qlm_proto::v1::RaftRequest) and
//! [`RaftResponse`](qlm_proto::v1::RaftResponse) (docs/DESIGN.md, trap 6): protobuf does not
//! describe them, and both ends are the same release. Every request names the cluster, the
//! sender and the node it means to reach, so a receiver of another cluster, or a different node
//! now at that address, refuses it before decoding anything.
//!
//! Invariants:
//!
//! - Nothing here panics on what comes from the network. An address that does not parse, a
//!   peer that is down, a status code, a payload that does not decode: each becomes one of
//!   openraft's [`RPCError`] variants, and openraft decides whether to retry or back off.
//! - No AppendEntries is larger than a peer accepts ([`MAX_PEER_MESSAGE_BYTES`]), nor than
//!   its follower has shown it takes within openraft's deadline: one that would be is not
//!   sent, and openraft is told how many of its entries fit (`bounded`).
//! - Every call has a deadline: openraft's `RPCOption::hard_ttl`, both as the gRPC timeout
//!   the server sees and as a local timeout, so a call to a peer that hangs ends.
//! - One tonic channel per peer, connected lazily and reused by every client openraft makes
//!   for that peer (tonic multiplexes calls on it and reconnects after a failure). A node
//!   whose address changes in the membership gets a new channel.
//!
//! The parts: `link` (one call to a peer and the mapping of its failures), `notice` (commit
//! notices held back), `bounded` (the size of an AppendEntries); this module is openraft's
//! network factory and network.
//!
//! How failures map (the receiver's codes are documented on `RaftResponse`):
//!
//! | what happened | openraft error |
//! |---|---|
//! | local deadline, `DEADLINE_EXCEEDED`, or `CANCELLED` (tonic's answer at the deadline) | [`RPCError::Timeout`] |
//! | cannot connect, `UNAVAILABLE`, or a refusal that retrying soon will not fix (`PERMISSION_DENIED`, `FAILED_PRECONDITION`, `UNIMPLEMENTED`, `INVALID_ARGUMENT`) | [`RPCError::Unreachable`]: openraft backs off |
//! | any other status, a response that does not decode | [`RPCError::Network`] |
//! | an `Err` inside the response payload | [`RPCError::RemoteError`] |
//! | an AppendEntries of several entries over the follower's budget, not sent | [`RPCError::PayloadTooLarge`] with how many leading entries fit: openraft sends those at once |
//! | one entry over [`MAX_APPEND_PAYLOAD_BYTES`] on its own, not sent | [`RPCError::Unreachable`], naming the entry |

use std::sync::{Arc, OnceLock};

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use bounded::{
    ENVELOPE_HEADROOM_BYTES, MAX_APPEND_PAYLOAD_BYTES, MIN_APPEND_BUDGET_BYTES,
    START_APPEND_BUDGET_BYTES,
};

use bounded::AppendBudget;
use link::PeerLink;
use notice::HeldNotice;
pub use notice::NOTICE_DELAY;

use super::{LogId, NodeId, TypeConfig, Vote};
use qlm_proto::v1::RaftPayloadFormat;

/// Largest gRPC message a node sends or accepts on the peer port, in bytes. Above openraft's
/// default snapshot chunk (3 MiB) plus framing, and room for several entries of the largest
/// size ([`crate::MAX_ENTRY_BYTES`]) in one AppendEntries, which is split to fit.
pub const MAX_PEER_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The payload format this release writes and reads.
pub const PAYLOAD_FORMAT: RaftPayloadFormat = RaftPayloadFormat::PostcardV2;

/// Encodes a payload (an openraft message, an engine command) in [`PAYLOAD_FORMAT`].
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

/// How many bytes [`encode_payload`] writes for `value`, counted without writing them.
pub fn payload_len<T: Serialize>(value: &T) -> Result<usize, postcard::Error> {
    postcard::experimental::serialized_size(value)
}

/// Decodes a payload written by [`encode_payload`].
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

pub use crate::dial::{CONNECT_TIMEOUT, PeerChannels, dial_addr};

/// What openraft's network calls return; `E` is the remote API error (none, or a snapshot's).
type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Tells the leader's proposer that a follower answered an AppendEntries.
///
/// openraft 0.9 keeps one AppendEntries in flight per follower, and when one is answered it
/// sends, at once, everything appended since. An entry proposed at that moment rides in that
/// very message; one proposed earlier waits in the log for it all the same, and carries only
/// the requests that had arrived by then. So the proposer gathers requests while the
/// followers work and proposes them when this fires (see `qlm_node::proposer`). The listener
/// runs on the replication task, before openraft hears of the answer: it must be quick and
/// must not wait on Raft.
#[derive(Clone, Default)]
pub struct ReplicationSignal {
    listener: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>,
    /// Commit notices held back, and those of them sent late (see [`GrpcNetwork`]); exported
    /// as metrics.
    notices_held: Counter,
    notices_sent: Counter,
}

impl ReplicationSignal {
    /// Sets what runs on each answer; the first listener set stays.
    pub fn listen(&self, listener: impl Fn() + Send + Sync + 'static) {
        let _ = self.listener.set(Box::new(listener));
    }

    fn fire(&self) {
        if let Some(listener) = self.listener.get() {
            listener();
        }
    }

    /// How many commit notices this node's network held back, and how many of those it
    /// sent late (the rest were superseded by a later message).
    pub fn commit_notices(&self) -> (u64, u64) {
        (self.notices_held.get(), self.notices_sent.get())
    }

    /// The counters of held and late-sent commit notices, for the metrics registry.
    pub fn commit_notice_counters(&self) -> (Counter, Counter) {
        (self.notices_held.clone(), self.notices_sent.clone())
    }
}

/// Makes a [`GrpcNetwork`] for each peer openraft replicates to or asks for a vote.
pub struct GrpcNetworkFactory {
    /// This cluster's id, sent with every message.
    cluster_id: String,
    /// This node's id: the sender of every message.
    node_id: NodeId,
    /// The node's channels to its peers, shared with its own peer calls.
    channels: Arc<PeerChannels>,
    /// Fired when a follower answers an AppendEntries.
    replicated: ReplicationSignal,
}

impl GrpcNetworkFactory {
    /// The network of node `node_id` of cluster `cluster_id`.
    pub fn new(cluster_id: impl Into<String>, node_id: NodeId) -> GrpcNetworkFactory {
        GrpcNetworkFactory {
            cluster_id: cluster_id.into(),
            node_id,
            channels: Arc::default(),
            replicated: ReplicationSignal::default(),
        }
    }

    /// Fires `signal` each time a follower answers an AppendEntries.
    pub fn with_replication_signal(mut self, signal: ReplicationSignal) -> GrpcNetworkFactory {
        self.replicated = signal;
        self
    }

    /// The same network over `channels`, the node's table of peer channels (dialed with
    /// mutual TLS when the node has it, and `--peer-route`d).
    pub fn with_channels(mut self, channels: Arc<PeerChannels>) -> GrpcNetworkFactory {
        self.channels = channels;
        self
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> GrpcNetwork {
        let channel = self.channels.channel(target, &node.addr);
        if let Err(e) = &channel {
            tracing::warn!(node = self.node_id, target, "cannot reach peer: {e}");
        }
        GrpcNetwork {
            link: PeerLink {
                cluster_id: self.cluster_id.clone(),
                node_id: self.node_id,
                target,
                target_node: node.clone(),
                channel,
            },
            replicated: self.replicated.clone(),
            confirmed: None,
            notice: Arc::default(),
            budget: AppendBudget::new(),
        }
    }
}

/// The connection to one peer, as openraft uses it.
///
/// # Commit notices
///
/// openraft 0.9 keeps one AppendEntries in flight per follower. When an entry is committed
/// while a follower's message is out (the other follower answered first), openraft queues the
/// new commit index for that follower, and on its answer sends that index alone at once: an
/// AppendEntries with no entry, whose prev_log_id is what the follower has just confirmed.
/// Under load they are a large share of all AppendEntries (docs/BENCHMARKS.md, "Fifth stop").
/// Each costs a round trip on both nodes, and entries proposed meanwhile wait behind it. Yet
/// its answer tells the leader nothing it needs: the follower's log position is known, and
/// openraft ignores a heartbeat's answer but for the leader's clock, which in 0.9.25 only
/// feeds the `millis_since_quorum_ack` metric.
///
/// So such a notice, when it comes right after the answer to an AppendEntries with entries
/// from the same leader and extends exactly what that answer confirmed, is reported
/// delivered at once and kept for [`NOTICE_DELAY`]. If another message goes to the follower
/// meanwhile, it carries the same or a later commit index and the notice is dropped; else a
/// task sends it. Under load almost every notice is dropped; an idle follower still learns
/// the commit index within the delay rather than at the next heartbeat. The rules:
///
/// - Only on this stream's own client: openraft's leadership checks (`ensure_linearizable`)
///   make a new client for each round, which has confirmed nothing, so their heartbeats are
///   always sent and awaited. Linearizable reads keep their majority of real answers.
/// - At most one notice per answered AppendEntries with entries; a periodic heartbeat (which
///   follows a heartbeat) is always sent and awaited.
/// - A notice that fails when sent late (peer down, a higher term, a conflict) stops the next
///   one from being held until a message is answered again, so openraft sees the failure on
///   its next message.
/// - Commits never depend on it: a follower's log counts toward a commit only through its
///   answers to messages with entries, which are always sent and awaited.
pub struct GrpcNetwork {
    link: PeerLink,
    replicated: ReplicationSignal,
    /// The leader's vote and the last log id the follower confirmed by answering an
    /// AppendEntries with entries, when that was this client's last message; cleared by any
    /// other message.
    confirmed: Option<(Vote, Option<LogId>)>,
    /// The commit notice held back, shared with the task that sends it late.
    notice: Arc<std::sync::Mutex<HeldNotice>>,
    /// How many bytes one AppendEntries to this follower may take.
    budget: AppendBudget,
}

impl GrpcNetwork {
    /// Sends an encoded AppendEntries; one that carries entries teaches the budget how fast
    /// the follower takes them.
    async fn send_append_entries(
        &mut self,
        payload: Vec<u8>,
        with_entries: bool,
        option: &RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        if !with_entries {
            return self.link.call_encoded(RPCTypes::AppendEntries, payload, option).await;
        }
        let bytes = payload.len();
        self.budget.sending(bytes);
        let started = std::time::Instant::now();
        let answer = self.link.call_encoded(RPCTypes::AppendEntries, payload, option).await;
        let timed_out = matches!(answer, Err(RPCError::Timeout(_)));
        self.budget.answered(bytes, started.elapsed(), option.hard_ttl(), timed_out);
        answer
    }
}

impl RaftNetwork<TypeConfig> for GrpcNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let confirmed = self.confirmed.take();
        let Some((rpc, option)) = self.hold_notice(rpc, option, confirmed) else {
            return Ok(AppendEntriesResponse::Success);
        };
        // Encoded before a held notice is dropped: a request over the follower's budget is not
        // sent, and openraft sends fewer entries at once instead (see `bounded`).
        let payload = self.budget.encode(&rpc)?;
        // This message carries the newest commit index: a held notice is superseded.
        self.held().request = None;
        let answer = self.send_append_entries(payload, !rpc.entries.is_empty(), &option).await;
        if let Ok(response) = &answer {
            // Answered: a failed notice has been made up for.
            self.held().failed = false;
            if let Some(last) = rpc.entries.last() {
                self.confirmed = match response {
                    AppendEntriesResponse::Success => Some((rpc.vote, Some(last.log_id))),
                    AppendEntriesResponse::PartialSuccess(matching) => Some((rpc.vote, *matching)),
                    AppendEntriesResponse::Conflict | AppendEntriesResponse::HigherVote(_) => None,
                };
            }
            self.replicated.fire();
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.confirmed = None;
        self.link.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.confirmed = None;
        self.link.call(RPCTypes::Vote, &rpc, &option).await
    }
}

mod bounded;
mod link;
mod notice;
#[cfg(test)]
mod tests;
