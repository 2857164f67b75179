//! The call to one peer: a Raft message as one unary gRPC call with its deadline, and the
//! peer's answer or failure as openraft's error (the table in the network's documentation).

use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;
use tonic::transport::Channel;

use super::{MAX_PEER_MESSAGE_BYTES, PAYLOAD_FORMAT, RpcResult, decode_payload, encode_payload};
use crate::NodeId;
use qlm_proto::v1::raft_service_client::RaftServiceClient;
use qlm_proto::v1::{RaftRequest, RaftResponse};

/// Everything needed to call one peer; cloned into the task that sends a notice late.
#[derive(Clone)]
pub(super) struct PeerLink {
    pub(super) cluster_id: String,
    pub(super) node_id: NodeId,
    pub(super) target: NodeId,
    pub(super) target_node: BasicNode,
    /// The channel, or why the peer's address cannot be used (reported on every call as
    /// unreachable, so openraft backs off rather than the node failing).
    pub(super) channel: Result<Channel, String>,
}

impl PeerLink {
    /// Sends `request` as the rpc `kind` and decodes the peer's `Result<Resp, RaftError<E>>`.
    pub(super) async fn call<Req, Resp, E>(
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
        let payload =
            encode_payload(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.call_encoded(kind, payload, option).await
    }

    /// Sends `payload`, an encoded request, as the rpc `kind`, and decodes the peer's
    /// `Result<Resp, RaftError<E>>`.
    pub(super) async fn call_encoded<Resp, E>(
        &self,
        kind: RPCTypes,
        payload: Vec<u8>,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self.channel.clone().map_err(|e| unreachable(std::io::Error::other(e)))?;
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
            // tonic answers CANCELLED ("Timeout expired") when the call's deadline passes.
            Code::DeadlineExceeded | Code::Cancelled => self.timeout(kind, ttl),
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
