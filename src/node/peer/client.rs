//! The client side of the peer port: how a node reaches the leader (forwarded writes,
//! heartbeats, read index, the leader's cluster view) and learns the other nodes' client
//! addresses.
//!
//! Calls go over the node's one table of peer channels (`qlm_raft::PeerChannels`, shared with
//! openraft's network); every call has a deadline, and a peer that
//! cannot be reached is UNAVAILABLE, which the client library answers by trying another node.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Status;
use tonic::transport::Channel;

use qlm_engine::{Applied, Command};
use qlm_proto::v1;
use qlm_proto::v1::raft_service_client::RaftServiceClient;
use qlm_raft::network::{PAYLOAD_FORMAT, decode_payload, encode_payload};
use qlm_raft::{NodeId, PeerChannels};

/// Longest a forwarded call may take (it includes the leader's own write deadline).
pub const FORWARD_DEADLINE: Duration = Duration::from_secs(6);
/// Longest a heartbeat, read-index or cluster-view call to the leader may take.
pub const PEER_CALL_DEADLINE: Duration = Duration::from_secs(2);

/// Links to the other nodes.
pub struct Peers {
    cluster_id: String,
    self_id: NodeId,
    /// Peer address by node id.
    addrs: Mutex<BTreeMap<NodeId, String>>,
    /// Client addresses learned with `Hello`, for leader hints.
    client_addrs: Mutex<BTreeMap<NodeId, String>>,
    /// Host ids learned with `Hello`, for license lines bound to hosts.
    hostids: Mutex<BTreeMap<NodeId, String>>,
    /// The node's channels to its peers, shared with openraft's network.
    channels: Arc<PeerChannels>,
}

impl Peers {
    pub fn new(cluster_id: String, self_id: NodeId, addrs: BTreeMap<NodeId, String>) -> Peers {
        Peers {
            cluster_id,
            self_id,
            addrs: Mutex::new(addrs),
            client_addrs: Mutex::new(BTreeMap::new()),
            hostids: Mutex::new(BTreeMap::new()),
            channels: Arc::default(),
        }
    }

    /// The same links over `channels`, the node's table of peer channels.
    pub fn with_channels(mut self, channels: Arc<PeerChannels>) -> Peers {
        self.channels = channels;
        self
    }

    /// Records (or changes) a peer's address, as membership changes.
    pub fn set_addr(&self, id: NodeId, addr: String) {
        // The channel table notices the new address at the next call and dials it.
        if let Ok(mut addrs) = self.addrs.lock() {
            addrs.insert(id, addr);
        }
    }

    /// The client address of node `id`, if learned.
    pub fn client_addr(&self, id: NodeId) -> Option<String> {
        self.client_addrs.lock().ok()?.get(&id).cloned()
    }

    /// The host id of node `id`, if learned.
    pub fn hostid(&self, id: NodeId) -> Option<String> {
        self.hostids.lock().ok()?.get(&id).cloned()
    }

    pub fn set_client_addr(&self, id: NodeId, addr: String) {
        if let Ok(mut map) = self.client_addrs.lock() {
            map.insert(id, addr);
        }
    }

    fn client(&self, id: NodeId) -> Result<RaftServiceClient<Channel>, Status> {
        let addr = self
            .addrs
            .lock()
            .map_err(|_| Status::internal("peer table poisoned"))?
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::unavailable(format!("node {id} has no known address")))?;
        let channel = self.channels.channel(id, &addr).map_err(Status::unavailable)?;
        Ok(RaftServiceClient::new(channel))
    }

    /// Sends a command to the leader to propose, and returns what it produced.
    pub async fn forward(&self, leader: NodeId, command: &Command) -> Result<Applied, Status> {
        let bytes = encode_payload(command)
            .map_err(|e| Status::internal(format!("encoding the command: {e}")))?;
        let mut request = tonic::Request::new(v1::ForwardRequest {
            cluster_id: self.cluster_id.clone(),
            sender_id: self.self_id,
            format: PAYLOAD_FORMAT.into(),
            command: bytes,
        });
        request.set_timeout(FORWARD_DEADLINE);
        let reply = self.client(leader)?.forward(request).await.map_err(unreachable(leader))?;
        decode_payload(&reply.into_inner().applied)
            .map_err(|e| Status::internal(format!("the leader's answer is unreadable: {e}")))
    }

    /// Renews a session's lease on the leader; returns the TTL.
    pub async fn renew(&self, leader: NodeId, session_id: &str) -> Result<u64, Status> {
        let mut request = tonic::Request::new(v1::RenewRequest {
            cluster_id: self.cluster_id.clone(),
            sender_id: self.self_id,
            session_id: session_id.to_owned(),
        });
        request.set_timeout(PEER_CALL_DEADLINE);
        let reply = self.client(leader)?.renew(request).await.map_err(unreachable(leader))?;
        Ok(reply.into_inner().ttl_ms)
    }

    /// Asks the leader for its read index.
    pub async fn read_index(&self, leader: NodeId) -> Result<u64, Status> {
        let mut request = tonic::Request::new(v1::ReadIndexRequest {
            cluster_id: self.cluster_id.clone(),
            sender_id: self.self_id,
        });
        request.set_timeout(PEER_CALL_DEADLINE);
        let reply = self.client(leader)?.read_index(request).await.map_err(unreachable(leader))?;
        Ok(reply.into_inner().index)
    }

    /// Asks the leader for its own view of the cluster (a linearizable `Cluster` read).
    pub async fn cluster_view(&self, leader: NodeId) -> Result<v1::ClusterResponse, Status> {
        let mut request = tonic::Request::new(v1::ClusterViewRequest {
            cluster_id: self.cluster_id.clone(),
            sender_id: self.self_id,
        });
        request.set_timeout(PEER_CALL_DEADLINE);
        let reply =
            self.client(leader)?.cluster_view(request).await.map_err(unreachable(leader))?;
        Ok(reply.into_inner())
    }

    /// Asks node `id` for its client address and remembers it.
    pub async fn hello(&self, id: NodeId) -> Result<String, Status> {
        Ok(self.hello_reply(id).await?.client_addr)
    }

    /// Node `id`'s whole `Hello` answer (its addresses, host id and wall clock), remembering
    /// its client address and host id.
    pub async fn hello_reply(&self, id: NodeId) -> Result<v1::HelloResponse, Status> {
        let mut request = tonic::Request::new(v1::HelloRequest {
            cluster_id: self.cluster_id.clone(),
            sender_id: self.self_id,
        });
        request.set_timeout(PEER_CALL_DEADLINE);
        let reply = self.client(id)?.hello(request).await?.into_inner();
        self.set_client_addr(id, reply.client_addr.clone());
        if let Ok(mut hostids) = self.hostids.lock() {
            hostids.insert(id, reply.hostid.clone());
        }
        Ok(reply)
    }
}

/// Transport failures to a peer become UNAVAILABLE (try another node); the peer's own
/// answers (NOT_FOUND, INVALID_ARGUMENT, ...) pass through.
fn unreachable(peer: NodeId) -> impl Fn(Status) -> Status {
    move |status| match status.code() {
        // CANCELLED too: this node did not cancel the call, so it is the connection to the
        // leader going away mid-call (the leader died), which the client must read as
        // UNAVAILABLE (try another node), not as its own call cancelled.
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Unknown
        | tonic::Code::Cancelled => Status::unavailable(format!(
            "node {peer} (the leader) did not answer: {}",
            status.message()
        )),
        _ => status,
    }
}
