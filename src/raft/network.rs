//! openraft's network over gRPC: how a node sends Raft messages to its peers.
//!
//! Each message travels as one unary call of `RaftService` (proto/quorumlm/v1/raft.proto) on
//! the peer's peer port, `BasicNode::addr`, over a channel from [`PeerDialer`] (plaintext, or
//! mutual TLS with the cluster CA). openraft's own request and response
//! values ride as postcard bytes in [`RaftRequest`]/[`RaftResponse`] (PITFALLS.md #8): protobuf
//! does not describe them, and both ends are the same release. Every request names the
//! cluster, the sender and the node it means to reach, so a receiver of another cluster, or a
//! different node now at that address, refuses it before decoding anything.
//!
//! Invariants:
//!
//! - Nothing here panics on what comes from the network. An address that does not parse, a
//!   peer that is down, a status code, a payload that does not decode: each becomes one of
//!   openraft's [`RPCError`] variants, and openraft decides whether to retry or back off.
//! - Every call has a deadline: openraft's `RPCOption::hard_ttl`, both as the gRPC timeout
//!   the server sees and as a local timeout, so a call to a peer that hangs ends.
//! - One tonic channel per peer, connected lazily and reused by every client openraft makes
//!   for that peer (tonic multiplexes calls on it and reconnects after a failure). A node
//!   whose address changes in the membership gets a new channel.
//!
//! How failures map (the receiver's codes are documented on `RaftResponse`):
//!
//! | what happened | openraft error |
//! |---|---|
//! | local deadline, or `DEADLINE_EXCEEDED` | [`RPCError::Timeout`] |
//! | cannot connect, `UNAVAILABLE`, or a refusal that retrying soon will not fix (`PERMISSION_DENIED`, `FAILED_PRECONDITION`, `UNIMPLEMENTED`, `INVALID_ARGUMENT`) | [`RPCError::Unreachable`]: openraft backs off |
//! | any other status, a response that does not decode | [`RPCError::Network`] |
//! | an `Err` inside the response payload | [`RPCError::RemoteError`] |

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;
use tonic::transport::Channel;

use super::{NodeId, PeerDialer, TypeConfig};
use crate::proto::v1::raft_service_client::RaftServiceClient;
use crate::proto::v1::{RaftPayloadFormat, RaftRequest, RaftResponse};

/// Longest wait for a TCP connection to a peer. Shorter than an election timeout, so that one
/// dead peer does not hold a heartbeat round back.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Largest gRPC message a node sends or accepts on the peer port, in bytes. Above openraft's
/// default snapshot chunk (3 MiB) plus framing, and above tonic's 4 MiB default decode limit,
/// which a batch of appended entries could reach.
pub const MAX_PEER_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The payload format this release writes and reads.
pub const PAYLOAD_FORMAT: RaftPayloadFormat = RaftPayloadFormat::PostcardV1;

/// Encodes a payload (an openraft message, an engine command) in [`PAYLOAD_FORMAT`].
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

/// Decodes a payload written by [`encode_payload`].
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Where this node dials peer `id` whose membership entry advertises `advertised`: the route
/// given for it with `--peer-route`, else the advertised address. The one place that decides,
/// for openraft's messages and for the server's own peer calls alike.
pub fn dial_addr<'a>(
    routes: &'a std::collections::BTreeMap<NodeId, String>,
    id: NodeId,
    advertised: &'a str,
) -> &'a str {
    routes.get(&id).map_or(advertised, String::as_str)
}

/// What openraft's network calls return; `E` is the remote API error (none, or a snapshot's).
type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Tells the leader's proposer that a follower answered an AppendEntries.
///
/// openraft 0.9 keeps one AppendEntries in flight per follower, and when one is answered it
/// sends, at once, everything appended since. An entry proposed at that moment rides in that
/// very message; one proposed earlier waits in the log for it all the same, and carries only
/// the requests that had arrived by then. So the proposer gathers requests while the
/// followers work and proposes them when this fires (see `server::proposer`). The listener
/// runs on the replication task, before openraft hears of the answer: it must be quick and
/// must not wait on Raft.
#[derive(Clone, Default)]
pub struct ReplicationSignal {
    listener: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>,
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
}

/// Makes a [`GrpcNetwork`] for each peer openraft replicates to or asks for a vote.
pub struct GrpcNetworkFactory {
    /// This cluster's id, sent with every message.
    cluster_id: String,
    /// This node's id: the sender of every message.
    node_id: NodeId,
    /// One lazily connected channel per peer, with the address it was made for.
    channels: HashMap<NodeId, (String, Channel)>,
    /// How channels are made: plaintext or mutual TLS.
    dialer: PeerDialer,
    /// `--peer-route`: dial addresses that replace advertised ones.
    routes: std::collections::BTreeMap<NodeId, String>,
    /// Fired when a follower answers an AppendEntries.
    replicated: ReplicationSignal,
}

impl GrpcNetworkFactory {
    /// The network of node `node_id` of cluster `cluster_id`.
    pub fn new(cluster_id: impl Into<String>, node_id: NodeId) -> GrpcNetworkFactory {
        GrpcNetworkFactory {
            cluster_id: cluster_id.into(),
            node_id,
            channels: HashMap::new(),
            dialer: PeerDialer::plaintext(),
            routes: Default::default(),
            replicated: ReplicationSignal::default(),
        }
    }

    /// Fires `signal` each time a follower answers an AppendEntries.
    pub fn with_replication_signal(mut self, signal: ReplicationSignal) -> GrpcNetworkFactory {
        self.replicated = signal;
        self
    }

    /// The same network, dialing peers with `dialer` (mutual TLS when the node has it).
    pub fn with_dialer(mut self, dialer: PeerDialer) -> GrpcNetworkFactory {
        self.dialer = dialer;
        self.channels.clear();
        self
    }

    /// Dials the peers listed in `routes` there instead of at their advertised address.
    pub fn with_routes(
        mut self,
        routes: std::collections::BTreeMap<NodeId, String>,
    ) -> GrpcNetworkFactory {
        self.routes = routes;
        self.channels.clear();
        self
    }

    /// The channel to `target` at `addr`: the one made before when the address is the same.
    fn channel(&mut self, target: NodeId, advertised: &str) -> Result<Channel, String> {
        let addr = dial_addr(&self.routes, target, advertised).to_owned();
        let addr = addr.as_str();
        if let Some((known, channel)) = self.channels.get(&target)
            && known == addr
        {
            return Ok(channel.clone());
        }
        let channel = self
            .dialer
            .channel(addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("node {target}: {e}"))?;
        self.channels.insert(target, (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> GrpcNetwork {
        let channel = self.channel(target, &node.addr);
        if let Err(e) = &channel {
            tracing::warn!(node = self.node_id, target, "cannot reach peer: {e}");
        }
        GrpcNetwork {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
            target,
            target_node: node.clone(),
            channel,
            replicated: self.replicated.clone(),
        }
    }
}

/// The connection to one peer, as openraft uses it.
pub struct GrpcNetwork {
    cluster_id: String,
    node_id: NodeId,
    target: NodeId,
    target_node: BasicNode,
    /// The channel, or why the peer's address cannot be used (reported on every call as
    /// unreachable, so openraft backs off rather than the node failing).
    channel: Result<Channel, String>,
    replicated: ReplicationSignal,
}

impl GrpcNetwork {
    /// Sends `request` as the rpc `kind` and decodes the peer's `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E>(
        &self,
        kind: RPCTypes,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self.channel.clone().map_err(|e| unreachable(std::io::Error::other(e)))?;
        let payload =
            encode_payload(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let ttl = option.hard_ttl();
        let mut message = tonic::Request::new(RaftRequest {
            cluster_id: self.cluster_id.clone(),
            sender_id: self.node_id,
            target_id: self.target,
            format: PAYLOAD_FORMAT.into(),
            payload,
        });
        message.set_timeout(ttl);
        let mut client = RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES);
        let sent = async {
            match kind {
                RPCTypes::AppendEntries => client.append_entries(message).await,
                RPCTypes::Vote => client.vote(message).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(message).await,
            }
        };
        let response = match tokio::time::timeout(ttl, sent).await {
            Err(_elapsed) => return Err(self.timeout(kind, ttl)),
            Ok(Err(status)) => return Err(self.status_error(kind, ttl, status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> = decode_response(&response)?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.target_node.clone(),
                e,
            ))
        })
    }

    fn timeout<E: std::error::Error>(
        &self,
        kind: RPCTypes,
        ttl: Duration,
    ) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Timeout(Timeout {
            action: kind,
            id: self.node_id,
            target: self.target,
            timeout: ttl,
        })
    }

    /// The openraft error for a gRPC status (the table in the module documentation).
    fn status_error<E: std::error::Error>(
        &self,
        kind: RPCTypes,
        ttl: Duration,
        status: tonic::Status,
    ) -> RPCError<NodeId, BasicNode, E> {
        match status.code() {
            Code::DeadlineExceeded => self.timeout(kind, ttl),
            Code::Unavailable
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::Unimplemented
            | Code::InvalidArgument => unreachable(status),
            _ => RPCError::Network(NetworkError::new(&status)),
        }
    }
}

fn unreachable<E: std::error::Error + 'static, R: std::error::Error>(
    e: E,
) -> RPCError<NodeId, BasicNode, R> {
    RPCError::Unreachable(Unreachable::new(&e))
}

/// The peer's result out of its response: a format this release does not read, or bytes that
/// do not decode, are network errors (the message was not understood, not refused).
fn decode_response<T: DeserializeOwned, E: std::error::Error>(
    response: &RaftResponse,
) -> Result<T, RPCError<NodeId, BasicNode, E>> {
    if response.format != i32::from(PAYLOAD_FORMAT) {
        let e = std::io::Error::other(format!("response payload format {}", response.format));
        return Err(RPCError::Network(NetworkError::new(&e)));
    }
    decode_payload(&response.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl RaftNetwork<TypeConfig> for GrpcNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let answer = self.call(RPCTypes::AppendEntries, &rpc, &option).await;
        if answer.is_ok() {
            self.replicated.fire();
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests;
