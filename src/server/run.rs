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

use crate::cluster_check;
use crate::config::NodeConfig;
use crate::http::usage::run_sampler;
use crate::http::{GrpcTimingLayer, HttpState, Metrics, UsageHistory};
use crate::refusals::{MAX_REQUEST_METADATA_BYTES, RefusalLayer};
use crate::report_log::ReportLog;
use crate::services::ClientServices;
use crate::tls_config::LoadedTls;
use qlm_node::node::Node;
use qlm_node::peer::{LeaderOps, PeerService};
use qlm_node::peers::Peers;
use qlm_raft::{PeerDialer, Raft, ReplicationSignal, network::GrpcNetworkFactory, open_stores};

/// How often a node asks its peers for their client addresses (for leader hints).
pub const HELLO_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How soon a node asks again while a peer's client address is still unknown: at start the
/// peers come up one by one, and until a follower knows the leader's address its answers
/// carry a leader hint without one.
pub const HELLO_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Rounds asked at [`HELLO_RETRY`] in a row before a peer that does not answer (down for
/// good, or not started yet) is asked at [`HELLO_EVERY`] only.
pub const HELLO_FAST_ROUNDS: u32 = 40;

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Store(#[from] qlm_raft::StoreError),
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

/// The connections `listener` accepts, with Nagle's algorithm off. tonic ignores its own
/// `tcp_nodelay` setting for a listener it did not bind, and with Nagle on, a small answer
/// written after another can wait for the peer's delayed ACK (tens of milliseconds).
fn no_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr).await.map_err(|source| RunError::Bind { addr, what, source })
}

/// The leader-side operations the peer service calls, answered by the node.
struct NodeOps {
    node: Arc<Node>,
    /// The client services, for the leader's view of the cluster.
    services: ClientServices,
    client_addr: String,
    http_addr: String,
}

impl LeaderOps for NodeOps {
    async fn forward(
        &self,
        command: qlm_engine::Command,
    ) -> Result<(qlm_engine::Applied, u64), tonic::Status> {
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

    async fn cluster_view(&self) -> Result<qlm_proto::v1::ClusterResponse, tonic::Status> {
        self.services.leader_view_here().await
    }

    fn hello(&self) -> qlm_proto::v1::HelloResponse {
        qlm_proto::v1::HelloResponse {
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
    qlm_node::node::load_licenses_command(&config.node_settings()).map_err(RunError::Config)?;
    let tls = config.tls.load().map_err(|e| RunError::Config(e.to_string()))?;
    warn_plaintext(&config, &tls);
    let dialer = match &tls.peer {
        Some(peer) => PeerDialer::tls(peer.client_config()),
        None => PeerDialer::plaintext(),
    };
    crate::preflight::check_data_dir(&config.data_dir).map_err(RunError::Config)?;
    let (log_store, mut state_machine) = open_stores(&config.data_dir)?;
    let fresh = log_store.is_fresh();
    let replica = state_machine.replica();
    // Metrics see every applied entry; the ones this node applied before it stopped are not
    // counted again (see server/http/metrics.rs).
    let storage = log_store.stats();
    let storage_for_compaction = storage.clone();
    let replicated = ReplicationSignal::default();
    let metrics = Arc::new(Metrics::new(storage.clone(), storage.committed_index(), &replicated));
    state_machine.observe(metrics.counters.clone());
    let report_log = match &config.report_log {
        Some(path) => Some(
            ReportLog::start(id, path.clone(), config.report_max_bytes, &mut state_machine)
                .await
                .map_err(RunError::Config)?,
        ),
        None => None,
    };

    let client_listener = bind(config.listen, "--listen").await?;
    let peer_listener = bind(config.peer_listen, "--peer-listen").await?;
    let http_listener = bind(config.http_listen, "--http-listen").await?;
    let http_addr = http_listener.local_addr().map_err(|e| RunError::Config(e.to_string()))?;
    let client_addr = client_listener.local_addr().map_err(|e| RunError::Config(e.to_string()))?;
    // What peers and clients are told: --advertise-client, else the bound address.
    let advertised = config.advertise_client.clone().unwrap_or_else(|| client_addr.to_string());

    let raft_config = openraft::Config {
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        ..qlm_raft::raft_config_snapshot_every(config.snapshot_every)
            .map_err(|e| RunError::Config(e.to_string()))?
    }
    .validate()
    .map_err(|e| RunError::Config(e.to_string()))?;
    let network = GrpcNetworkFactory::new(cluster.clone(), id)
        .with_dialer(dialer.clone())
        .with_routes(config.peer_route.clone())
        .with_replication_signal(replicated.clone());
    let raft = Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
        .await
        .map_err(|e| RunError::Raft(e.to_string()))?;

    let peers = Peers::new(cluster.clone(), id, config.initial_cluster.clone())
        .with_dialer(dialer)
        .with_routes(config.peer_route.clone());
    let node = Arc::new(Node::new(config.node_settings(), raft.clone(), replica, peers));
    node.propose_on(&replicated);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let services = ClientServices { node: node.clone(), client_addr: advertised.clone() };
    let ops = NodeOps {
        node: node.clone(),
        services: services.clone(),
        client_addr: advertised.clone(),
        http_addr: http_addr.to_string(),
    };
    let peer_service = PeerService::new(raft.clone(), cluster.clone(), id, ops)
        .with_members(cluster_check::members_text(&config));
    let mut peer_stop = stop_rx.clone();
    let peer_server = tokio::spawn(
        server_builder(tls.peer.as_ref().map(|t| t.server_config()), "--peer-tls-cert")?
            .add_service(peer_service.into_server())
            .serve_with_incoming_shutdown(no_delay(peer_listener), async move {
                let _ = peer_stop.changed().await;
            }),
    );

    let routes =
        crate::client_port::client_port_routes(services.clone(), config.admin_token.clone())
            .await
            .map_err(RunError::Config)?;
    let hint_services = services.clone();
    let mut client_stop = stop_rx.clone();
    let client_server = tokio::spawn(
        server_builder(tls.client.as_ref().map(|t| t.server_config()), "--tls-cert")?
            // Up to this much metadata reaches the services, which refuse what is too long
            // for them by name (an oversize admin token is UNAUTHENTICATED, not a reset).
            .http2_max_header_list_size(MAX_REQUEST_METADATA_BYTES)
            .layer(GrpcTimingLayer::new(metrics.rpc_seconds.clone()))
            .layer(RefusalLayer::new(move |status| hint_services.hinted(status)))
            .add_routes(routes)
            .serve_with_incoming_shutdown(no_delay(client_listener), async move {
                let _ = client_stop.changed().await;
            }),
    );

    let history = UsageHistory::new();
    let http_state = Arc::new(HttpState::new(
        node.clone(),
        client_addr.to_string(),
        metrics,
        history.clone(),
        storage,
        std::time::Duration::from_millis(config.election_max_ms.saturating_mul(2)),
    ));
    let mut http_stop = stop_rx.clone();
    let http_server = tokio::spawn(crate::http::serve(http_listener, http_state, async move {
        let _ = http_stop.changed().await;
    }));
    let sampler = tokio::spawn(run_sampler(node.clone(), history, stop_rx.clone()));
    let compaction = tokio::spawn(qlm_node::compaction::run(
        id,
        raft.clone(),
        storage_for_compaction,
        config.snapshot_log_bytes,
        stop_rx.clone(),
    ));

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
    info!(node = id, cluster = %cluster, listen = %client_addr, peer = %config.peer_listen, http = %http_addr, "serving");
    if config.join && !config.initial_cluster.contains_key(&id) {
        info!(node = id, "joining: waiting to be added with `qlm cluster add`");
    }

    let fatal = tokio::select! {
        _ = shutdown => None,
        Some(message) = misconfigured.recv() => Some(message),
    };
    info!(node = id, "shutting down");
    let _ = stop_tx.send(true);
    for task in [duties, hello, sampler, compaction] {
        let _ = task.await;
    }
    for server in [client_server, peer_server] {
        if let Ok(Err(e)) = server.await {
            warn!(node = id, error = %e, "server stopped with an error");
        }
    }
    if let Ok(Err(e)) = http_server.await {
        warn!(node = id, error = %e, "HTTP server stopped with an error");
    }
    if let Err(e) = raft.shutdown().await {
        warn!(node = id, error = %e, "raft shutdown");
    }
    if let Some(report_log) = report_log {
        report_log.stop().await;
    }
    fatal.map_or(Ok(()), |message| Err(RunError::Config(message)))
}

/// A server builder, with TLS when `tls` is set (`setting` names the flag in an error).
fn server_builder(
    tls: Option<tonic::transport::ServerTlsConfig>,
    setting: &str,
) -> Result<tonic::transport::Server, RunError> {
    let builder = tonic::transport::Server::builder();
    match tls {
        None => Ok(builder),
        Some(tls) => {
            builder.tls_config(tls).map_err(|e| RunError::Config(format!("{setting}: {e}")))
        }
    }
}

/// Says loudly, at start, which ports carry plaintext: fine for a local demo, not for a
/// network anyone else can reach (docs/TLS.md).
fn warn_plaintext(config: &NodeConfig, tls: &LoadedTls) {
    let mut plaintext = Vec::new();
    if tls.client.is_none() {
        plaintext.push(format!("client port {} (--listen)", config.listen));
    }
    if tls.peer.is_none() {
        plaintext.push(format!("peer port {} (--peer-listen)", config.peer_listen));
    }
    if plaintext.is_empty() {
        info!(
            node = config.id,
            client_auth = tls.client.as_ref().is_some_and(|c| c.client_ca.is_some()),
            "TLS on the client port and mutual TLS on the peer port"
        );
        return;
    }
    warn!(
        node = config.id,
        plaintext = %plaintext.join(", "),
        "PLAINTEXT MODE: {} carry unencrypted, unauthenticated traffic; anyone who can reach \
         {} can read that traffic{}. For a local demo only; see docs/TLS.md to turn TLS on",
        plaintext.join(" and "),
        if plaintext.len() == 1 { "it" } else { "them" },
        if tls.peer.is_none() { " and send Raft messages as a peer" } else { "" },
    );
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
    let mut pause = std::time::Duration::ZERO;
    let mut fast_rounds = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
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
        // A peer that refuses this node is asked again at the slow pace only: each refusal
        // is logged at ERROR.
        let mut unanswered = false;
        for peer in peers {
            if node.peers.client_addr(peer).is_none() {
                let refusal = cluster_check::ask(&node.peers, &config, peer).await;
                unanswered |= refusal.is_none() && node.peers.client_addr(peer).is_none();
                if config.initial_cluster.contains_key(&peer) {
                    refusals.record(peer, refusal);
                }
            }
        }
        fast_rounds = if unanswered { fast_rounds + 1 } else { 0 };
        pause =
            if unanswered && fast_rounds <= HELLO_FAST_ROUNDS { HELLO_RETRY } else { HELLO_EVERY };
        if let Err(message) = refusals.verdict(&config) {
            let _ = misconfigured.send(message).await;
            return;
        }
    }
}
