//! The client side of the peer port: how a node reaches the leader (forwarded writes,
//! heartbeats, read index, the leader's cluster view) and learns the other nodes' client
//! addresses.
//!
//! One lazily connected channel per peer, reused; every call has a deadline, and a peer that
//! cannot be reached is UNAVAILABLE, which the client library answers by trying another node.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::Status;
use tonic::transport::Channel;

use qlm_engine::{Applied, Command};
use qlm_proto::v1;
use qlm_proto::v1::raft_service_client::RaftServiceClient;
use qlm_raft::network::{PAYLOAD_FORMAT, decode_payload, dial_addr, encode_payload};
use qlm_raft::{NodeId, PeerDialer};

/// Longest a forwarded call may take (it includes the leader's own write deadline).
pub const FORWARD_DEADLINE: Duration = Duration::from_secs(6);
/// Longest a heartbeat, read-index or cluster-view call to the leader may take.
pub const PEER_CALL_DEADLINE: Duration = Duration::from_secs(2);
/// Longest a connection attempt to a peer may take.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Links to the other nodes.
pub struct Peers {
    cluster_id: String,
    self_id: NodeId,
    /// Peer address by node id.
    addrs: Mutex<BTreeMap<NodeId, String>>,
    channels: Mutex<BTreeMap<NodeId, Channel>>,
    /// Client addresses learned with `Hello`, for leader hints.
    client_addrs: Mutex<BTreeMap<NodeId, String>>,
    /// Host ids learned with `Hello`, for license lines bound to hosts.
    hostids: Mutex<BTreeMap<NodeId, String>>,
    /// How channels are made: plaintext or mutual TLS (the same as openraft's network).
    dialer: PeerDialer,
    /// `--peer-route`: dial addresses that replace advertised ones.
    routes: BTreeMap<NodeId, String>,
}

impl Peers {
    pub fn new(cluster_id: String, self_id: NodeId, addrs: BTreeMap<NodeId, String>) -> Peers {
        Peers {
            cluster_id,
            self_id,
            addrs: Mutex::new(addrs),
            channels: Mutex::new(BTreeMap::new()),
            client_addrs: Mutex::new(BTreeMap::new()),
            hostids: Mutex::new(BTreeMap::new()),
            dialer: PeerDialer::plaintext(),
            routes: BTreeMap::new(),
        }
    }

    /// The same links, dialed with `dialer` (mutual TLS when the node has it).
    pub fn with_dialer(mut self, dialer: PeerDialer) -> Peers {
        self.dialer = dialer;
        self
    }

    /// Dials the peers listed in `routes` there instead of at their advertised address.
    pub fn with_routes(mut self, routes: BTreeMap<NodeId, String>) -> Peers {
        self.routes = routes;
        self
    }

    /// Records (or changes) a peer's address, as membership changes.
    pub fn set_addr(&self, id: NodeId, addr: String) {
        if let Ok(mut addrs) = self.addrs.lock()
            && addrs.insert(id, addr.clone()).as_ref() != Some(&addr)
            && let Ok(mut channels) = self.channels.lock()
        {
            channels.remove(&id);
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
        let mut channels =
            self.channels.lock().map_err(|_| Status::internal("peer table poisoned"))?;
        if let Some(channel) = channels.get(&id) {
            return Ok(RaftServiceClient::new(channel.clone()));
        }
        let addr = self
            .addrs
            .lock()
            .map_err(|_| Status::internal("peer table poisoned"))?
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::unavailable(format!("node {id} has no known address")))?;
        let addr = dial_addr(&self.routes, id, &addr);
        let channel = self
            .dialer
            .channel(addr, PEER_CONNECT_TIMEOUT)
            .map_err(|e| Status::unavailable(format!("node {id}: {e}")))?;
        channels.insert(id, channel.clone());
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
        Ok(reply.client_addr)
    }
}

/// Transport failures to a peer become UNAVAILABLE (try another node); the peer's own
/// answers (NOT_FOUND, INVALID_ARGUMENT, ...) pass through.
fn unreachable(peer: NodeId) -> impl Fn(Status) -> Status {
    move |status| match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
            Status::unavailable(format!(
                "node {peer} (the leader) did not answer: {}",
                status.message()
            ))
        }
        _ => status,
    }
}
