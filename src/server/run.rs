//! Starting and stopping a node: `run_node(config, shutdown)` is all `qlmd` does.
//!
//! The order matters for a clear start: check the configuration's files, open (and check) the
//! database, bind every port (a port in use is an error with the address, before any Raft
//! traffic), then start Raft, the peer service, the client services and the leader's duties,
//! and form the cluster if this node is the one to. On shutdown, the servers stop taking calls,
//! the background tasks stop, and Raft shuts down so the database closes cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::license_service_server::LicenseServiceServer;
use crate::proto::v1::status_service_server::StatusServiceServer;
use crate::raft::{Raft, network::GrpcNetworkFactory, open_stores};
use crate::server::admin::AdminServices;
use crate::server::cluster_check;
use crate::server::config::NodeConfig;
use crate::server::node::Node;
use crate::server::peer::{LeaderOps, PeerService};
use crate::server::peers::Peers;
use crate::server::services::ClientServices;

/// How often a node asks its peers for their client addresses (for leader hints).
pub const HELLO_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Store(#[from] crate::raft::StoreError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { addr: SocketAddr, what: &'static str, source: std::io::Error },
    #[error("raft: {0}")]
    Raft(String),
}

/// The cluster's identity: a digest of `--initial-cluster`, the same on every node started
/// with the same list. Peers with another identity are refused, so two clusters (or a node
/// started with a different list) never mix.
pub fn cluster_id(config: &NodeConfig) -> String {
    let mut hasher = Sha256::new();
    for (id, addr) in &config.initial_cluster {
        hasher.update(format!("{id}={addr};").as_bytes());
    }
    hasher.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr).await.map_err(|source| RunError::Bind { addr, what, source })
}

/// The leader-side operations the peer service calls, answered by the node.
struct NodeOps {
    node: Arc<Node>,
    client_addr: String,
    http_addr: String,
}

impl LeaderOps for NodeOps {
    async fn forward(
        &self,
        command: crate::engine::Command,
    ) -> Result<(crate::engine::Applied, u64), tonic::Status> {
        let applied = self.node.propose_here(command).await?;
        let index = self.node.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        Ok((applied, index))
    }

    async fn renew(&self, session_id: &str) -> Result<u64, tonic::Status> {
        self.node.renew_here(session_id).await
    }

    async fn read_index(&self) -> Result<u64, tonic::Status> {
        self.node.read_index_here().await
    }

    fn hello(&self) -> crate::proto::v1::HelloResponse {
        crate::proto::v1::HelloResponse {
            id: self.node.id,
            client_addr: self.client_addr.clone(),
            http_addr: self.http_addr.clone(),
            hostid: self.node.hostid().to_owned(),
        }
    }
}

/// Runs a node until `shutdown` resolves.
pub async fn run_node(
    config: NodeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let id = config.id;
    let cluster = cluster_id(&config);
    // A license, key or options file that cannot be read is an error at start, before the
    // database is touched, not at the first election.
    crate::server::node::load_licenses_command(&config).map_err(RunError::Config)?;
    crate::server::preflight::check_data_dir(&config.data_dir).map_err(RunError::Config)?;
    let (log_store, state_machine) = open_stores(&config.data_dir)?;
    let fresh = log_store.is_fresh();
    let replica = state_machine.replica();

    let client_listener = bind(config.listen, "--listen").await?;
    let peer_listener = bind(config.peer_listen, "--peer-listen").await?;
    let client_addr = client_listener.local_addr().map_err(|e| RunError::Config(e.to_string()))?;
    // What peers and clients are told: --advertise-client, else the bound address.
    let advertised = config.advertise_client.clone().unwrap_or_else(|| client_addr.to_string());

    let raft_config = openraft::Config {
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        ..crate::raft::raft_config_snapshot_every(config.snapshot_every)
            .map_err(|e| RunError::Config(e.to_string()))?
    }
    .validate()
    .map_err(|e| RunError::Config(e.to_string()))?;
    let network =
        GrpcNetworkFactory::new(cluster.clone(), id).with_routes(config.peer_route.clone());
    let raft = Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
        .await
        .map_err(|e| RunError::Raft(e.to_string()))?;

    let peers = Peers::new(cluster.clone(), id, config.initial_cluster.clone())
        .with_routes(config.peer_route.clone());
    let node = Arc::new(Node::new(config.clone(), raft.clone(), replica, peers));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ops = NodeOps {
        node: node.clone(),
        client_addr: advertised.clone(),
        http_addr: config.http_listen.to_string(),
    };
    let peer_service = PeerService::new(raft.clone(), cluster.clone(), id, ops)
        .with_members(cluster_check::members_text(&config));
    let mut peer_stop = stop_rx.clone();
    let peer_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(peer_service.into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(peer_listener), async move {
                let _ = peer_stop.changed().await;
            }),
    );

    let services = ClientServices { node: node.clone(), client_addr: advertised };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<LicenseServiceServer<ClientServices>>().await;
    let reflection = crate::proto::client_port_reflection()
        .map_err(|e| RunError::Config(format!("reflection: {e}")))?;
    let mut client_stop = stop_rx.clone();
    let client_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(LicenseServiceServer::new(services.clone()))
            .add_service(StatusServiceServer::new(services.clone()))
            .add_service(AdminServiceServer::new(AdminServices {
                services,
                token: config.admin_token.clone(),
            }))
            .serve_with_incoming_shutdown(TcpListenerStream::new(client_listener), async move {
                let _ = client_stop.changed().await;
            }),
    );

    // A node whose --initial-cluster its peers refuse stops here, before it forms a cluster.
    let refusals = match cluster_check::check_at_start(&node.peers, &config).await {
        Ok(refusals) => refusals,
        Err(message) => {
            stop_servers(&stop_tx, [client_server, peer_server], &raft, id).await;
            return Err(RunError::Config(message));
        }
    };
    node.bootstrap(fresh).await.map_err(RunError::Raft)?;
    let duties = tokio::spawn(node.clone().run_leader_duties(stop_rx.clone()));
    let (misconfigured_tx, mut misconfigured) = tokio::sync::mpsc::channel(1);
    let hello = tokio::spawn(learn_client_addrs(
        node.clone(),
        config.clone(),
        refusals,
        misconfigured_tx,
        stop_rx.clone(),
    ));
    info!(node = id, cluster = %cluster, listen = %client_addr, peer = %config.peer_listen, "serving");
    if config.join && !config.initial_cluster.contains_key(&id) {
        info!(node = id, "joining: waiting to be added with `qlm cluster add`");
    }

    let fatal = tokio::select! {
        _ = shutdown => None,
        Some(message) = misconfigured.recv() => Some(message),
    };
    info!(node = id, "shutting down");
    let _ = stop_tx.send(true);
    for task in [duties, hello] {
        let _ = task.await;
    }
    for server in [client_server, peer_server] {
        if let Ok(Err(e)) = server.await {
            warn!(node = id, error = %e, "server stopped with an error");
        }
    }
    if let Err(e) = raft.shutdown().await {
        warn!(node = id, error = %e, "raft shutdown");
    }
    fatal.map_or(Ok(()), |message| Err(RunError::Config(message)))
}

/// Stops the servers and Raft of a node that will not run.
async fn stop_servers<E: std::fmt::Display>(
    stop: &tokio::sync::watch::Sender<bool>,
    servers: [tokio::task::JoinHandle<Result<(), E>>; 2],
    raft: &Raft,
    id: u64,
) {
    let _ = stop.send(true);
    for server in servers {
        if let Ok(Err(e)) = server.await {
            warn!(node = id, error = %e, "server stopped with an error");
        }
    }
    if let Err(e) = raft.shutdown().await {
        warn!(node = id, error = %e, "raft shutdown");
    }
}

/// Asks every peer for its client address now and then, for leader hints; a peer that
/// refuses this node's cluster is logged, and when too many do, `misconfigured` gets the
/// message this node stops with (`cluster_check`).
async fn learn_client_addrs(
    node: Arc<Node>,
    config: NodeConfig,
    mut refusals: cluster_check::Refusals,
    misconfigured: tokio::sync::mpsc::Sender<String>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(HELLO_EVERY);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        // Members added since the start (`qlm cluster add`) are reached at the address the
        // membership names: a follower may have to forward to a leader that joined later.
        let members: Vec<(u64, String)> = node
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(&id, n)| (id, n.addr.clone()))
            .collect();
        for (id, addr) in &members {
            if *id != node.id {
                node.peers.set_addr(*id, addr.clone());
            }
        }
        let peers: std::collections::BTreeSet<u64> = config
            .initial_cluster
            .keys()
            .copied()
            .chain(members.iter().map(|(id, _)| *id))
            .filter(|&p| p != node.id)
            .collect();
        for peer in peers {
            if node.peers.client_addr(peer).is_none() {
                let refusal = cluster_check::ask(&node.peers, &config, peer).await;
                if config.initial_cluster.contains_key(&peer) {
                    refusals.record(peer, refusal);
                }
            }
        }
        if let Err(message) = refusals.verdict(&config) {
            let _ = misconfigured.send(message).await;
            return;
        }
    }
}
