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
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::cluster_check;
use crate::config::NodeConfig;
use crate::http::usage::run_sampler;
use crate::http::{HttpState, Metrics, UsageHistory};
use crate::leader_ops::NodeLeaderOps;
use crate::ports::{Ports, Served, serve_client_port, serve_peer_port, warn_plaintext};
use crate::report_log::ReportLog;
use crate::services::ClientServices;
use crate::tls_config::LoadedTls;
use qlm_node::node::Node;
use qlm_node::peer::{PeerService, Peers};
use qlm_raft::network::GrpcNetworkFactory;
use qlm_raft::{
    LogStore, PeerChannels, PeerDialer, Raft, ReplicationSignal, SharedReplica, StateMachineStore,
    StorageStats, open_stores,
};

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
    /// Raft stopped by itself: a write or fsync of the data directory failed (a full volume,
    /// a failing disk). The node exits rather than stay up half-dead (see `raft_stopped`).
    #[error(
        "Raft stopped: {0}; the node exits so that its supervisor restarts it \
         (docs/OPERATIONS.md, \"A full or failing disk\")"
    )]
    Stopped(String),
}

impl RunError {
    /// The exit status `qlmd` ends with: 74 (EX_IOERR of sysexits.h) when the data volume
    /// failed, at start or while running, so that a supervisor or a person can tell a disk to
    /// look at from a setting to correct (2).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Stopped(_) => 74,
            RunError::Store(e) if e.is_io() => 74,
            _ => 2,
        }
    }
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

/// The opened stores and what reads them.
struct Stores {
    log_store: LogStore,
    state_machine: StateMachineStore,
    /// True when the log holds nothing yet: this node may form the cluster.
    fresh: bool,
    replica: SharedReplica,
}

/// What a node has before it binds a port: its checked files, TLS, and open stores.
struct Prepared {
    tls: LoadedTls,
    channels: Arc<PeerChannels>,
    stores: Stores,
    storage: StorageStats,
    replicated: ReplicationSignal,
    metrics: Arc<Metrics>,
    report_log: Option<ReportLog>,
}

/// Checks the configuration's files and the data directory, and opens the stores. A license,
/// key or options file that cannot be read is an error here, before the database is touched,
/// not at the first election.
async fn prepare(config: &NodeConfig) -> Result<Prepared, RunError> {
    qlm_node::licenses::load_licenses_command(&config.node_settings()).map_err(RunError::Config)?;
    let tls = config.tls.load().map_err(|e| RunError::Config(e.to_string()))?;
    warn_plaintext(config, &tls);
    let dialer = match &tls.peer {
        Some(peer) => PeerDialer::tls(peer.client_config()),
        None => PeerDialer::plaintext(),
    };
    let channels = Arc::new(PeerChannels::new(dialer, config.peer_route.clone()));
    crate::preflight::check_data_dir(&config.data_dir).map_err(RunError::Config)?;
    let (log_store, mut state_machine) = open_stores(&config.data_dir)?;
    let fresh = log_store.is_fresh();
    let replica = state_machine.replica();
    // Metrics see every applied entry; the ones this node applied before it stopped are not
    // counted again (see http/metrics.rs).
    let storage = log_store.stats();
    let replicated = ReplicationSignal::default();
    let metrics = Arc::new(Metrics::new(storage.clone(), storage.committed_index(), &replicated));
    state_machine.observe(metrics.counters.clone());
    let report_log = match &config.report_log {
        Some(path) => Some(
            ReportLog::start(config.id, path.clone(), config.report_max_bytes, &mut state_machine)
                .await
                .map_err(RunError::Config)?,
        ),
        None => None,
    };
    let stores = Stores { log_store, state_machine, fresh, replica };
    Ok(Prepared { tls, channels, stores, storage, replicated, metrics, report_log })
}

/// Starts Raft over the stores, and the node's core around it.
async fn start_node(
    config: &NodeConfig,
    cluster: &str,
    stores: Stores,
    channels: Arc<PeerChannels>,
    replicated: &ReplicationSignal,
) -> Result<(Raft, Arc<Node>), RunError> {
    let raft_config = openraft::Config {
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        ..qlm_raft::raft_config_snapshot_every(config.snapshot_every)
            .map_err(|e| RunError::Config(e.to_string()))?
    }
    .validate()
    .map_err(|e| RunError::Config(e.to_string()))?;
    let network = GrpcNetworkFactory::new(cluster, config.id)
        .with_channels(channels.clone())
        .with_replication_signal(replicated.clone());
    let Stores { log_store, state_machine, replica, .. } = stores;
    let raft = Raft::new(config.id, Arc::new(raft_config), network, log_store, state_machine)
        .await
        .map_err(|e| RunError::Raft(e.to_string()))?;
    // No election until the clock rounds have vouched for this node's wall clock
    // (qlm_node::clock): a node started with a clock a year ahead must not lead, not even once.
    raft.runtime_config().elect(false);
    let peers = Peers::new(cluster.to_owned(), config.id, config.initial_cluster.clone())
        .with_channels(channels);
    let node = Arc::new(Node::new(config.node_settings(), raft.clone(), replica, peers));
    node.propose_on(replicated);
    Ok((raft, node))
}

/// The node's tasks besides its gRPC ports: the HTTP port, the usage sampler and compaction.
struct Background {
    http_server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

fn start_background(
    config: &NodeConfig,
    node: &Arc<Node>,
    ports: (tokio::net::TcpListener, SocketAddr),
    metrics: Arc<Metrics>,
    storage: StorageStats,
    stop: &watch::Receiver<bool>,
) -> Background {
    let (http_listener, client_addr) = ports;
    let history = UsageHistory::new();
    let http_state = Arc::new(HttpState::new(
        node.clone(),
        client_addr.to_string(),
        metrics,
        history.clone(),
        storage.clone(),
        std::time::Duration::from_millis(config.election_max_ms.saturating_mul(2)),
    ));
    let mut http_stop = stop.clone();
    let http_server = tokio::spawn(crate::http::serve(http_listener, http_state, async move {
        let _ = http_stop.changed().await;
    }));
    let sampler = tokio::spawn(run_sampler(node.clone(), history, stop.clone()));
    let compaction = tokio::spawn(qlm_node::compaction::run(
        config.id,
        node.raft.clone(),
        storage,
        config.snapshot_log_bytes,
        stop.clone(),
    ));
    Background { http_server, tasks: vec![sampler, compaction] }
}

/// Runs a node until `shutdown` resolves.
pub async fn run_node(
    config: NodeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let id = config.id;
    let cluster = cluster_id(&config);
    let Prepared { tls, channels, stores, storage, replicated, metrics, report_log } =
        prepare(&config).await?;
    let fresh = stores.fresh;
    let ports = Ports::bind(&config).await?;
    let (raft, node) = start_node(&config, &cluster, stores, channels, &replicated).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let services = ClientServices { node: node.clone(), client_addr: ports.advertised.clone() };
    let ops = NodeLeaderOps {
        node: node.clone(),
        services: services.clone(),
        client_addr: ports.advertised.clone(),
        http_addr: ports.http_addr.to_string(),
    };
    let peer_service = PeerService::new(raft.clone(), cluster.clone(), id, ops)
        .with_members(cluster_check::members_text(&config));
    let peer_server = serve_peer_port(ports.peer, peer_service, &tls, stop_rx.clone())?;
    let token = config.admin_token.clone();
    let client_server =
        serve_client_port(ports.client, services, token, &metrics, &tls, stop_rx.clone()).await?;
    let background = start_background(
        &config,
        &node,
        (ports.http, ports.client_addr),
        metrics,
        storage,
        &stop_rx,
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
    let clock_rounds = tokio::spawn(node.clone().run_clock_rounds(stop_rx.clone()));
    let (misconfigured_tx, mut misconfigured) = tokio::sync::mpsc::channel(1);
    let hello = tokio::spawn(cluster_check::learn_client_addrs(
        node.clone(),
        config.clone(),
        refusals,
        misconfigured_tx,
        stop_rx.clone(),
    ));
    info!(node = id, cluster = %cluster, listen = %ports.client_addr, peer = %config.peer_listen, http = %ports.http_addr, "serving");
    if config.join && !config.initial_cluster.contains_key(&id) {
        info!(node = id, "joining: waiting to be added with `qlm cluster add`");
    }

    let fatal = tokio::select! {
        _ = shutdown => None,
        Some(message) = misconfigured.recv() => Some(RunError::Config(message)),
        reason = raft_stopped(&raft) => {
            error!(node = id, reason = %reason, "Raft stopped: this node no longer takes part; exiting");
            Some(RunError::Stopped(reason))
        }
    };
    info!(node = id, "shutting down");
    let _ = stop_tx.send(true);
    for task in background.tasks.into_iter().chain([duties, clock_rounds, hello]) {
        let _ = task.await;
    }
    stop_servers(&stop_tx, [client_server, peer_server], &raft, id).await;
    if let Ok(Err(e)) = background.http_server.await {
        warn!(node = id, error = %e, "HTTP server stopped with an error");
    }
    if let Some(report_log) = report_log {
        report_log.stop().await;
    }
    fatal.map_or(Ok(()), Err)
}

/// Resolves, with the reason, once Raft has stopped by itself: openraft stops its core for
/// good on a storage error (a log append, a vote or a snapshot that could not be written or
/// synced). Such a node cannot vote, replicate or lead again in this process, and after a
/// failed fsync the kernel's view of the files is not to be trusted (the page cache may have
/// dropped the dirty pages); so the process exits, its ports close at once (clients and peers
/// go elsewhere instead of waiting on a node that answers but cannot write), and its supervisor
/// starts it again: the start reads the log back from disk, and refuses, naming the cause,
/// while the volume is still full.
async fn raft_stopped(raft: &Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(e) = &metrics.borrow_and_update().running_state {
            return e.to_string();
        }
        if metrics.changed().await.is_err() {
            return "its metrics channel closed".to_owned();
        }
    }
}

/// Stops the gRPC servers, then Raft, so the database closes cleanly.
async fn stop_servers(stop: &watch::Sender<bool>, servers: [Served; 2], raft: &Raft, id: u64) {
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
