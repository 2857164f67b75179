//! The node's three ports: bound first (a port in use is an error naming the flag and the
//! address, before any Raft traffic), then served with TLS where it is configured. The client
//! port carries the contract's size limits and leader hints on tonic's own refusals.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::http::{GrpcTimingLayer, Metrics};
use crate::leader_ops::NodeLeaderOps;
use crate::refusals::{MAX_REQUEST_METADATA_BYTES, RefusalLayer};
use crate::run::RunError;
use crate::services::ClientServices;
use crate::tls_config::LoadedTls;
use qlm_node::peer::PeerService;

/// A served port: the task serving it, which ends once the stop signal is sent.
pub(crate) type Served = JoinHandle<Result<(), tonic::transport::Error>>;

/// The three listeners, bound, and the addresses they are known by.
pub(crate) struct Ports {
    pub(crate) client: TcpListener,
    pub(crate) peer: TcpListener,
    pub(crate) http: TcpListener,
    pub(crate) client_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
    /// What peers and clients are told: `--advertise-client`, else the bound address.
    pub(crate) advertised: String,
}

impl Ports {
    /// Binds the client, peer and HTTP ports, in that order.
    pub(crate) async fn bind(config: &NodeConfig) -> Result<Ports, RunError> {
        let client = bind(config.listen, "--listen").await?;
        let peer = bind(config.peer_listen, "--peer-listen").await?;
        let http = bind(config.http_listen, "--http-listen").await?;
        let http_addr = http.local_addr().map_err(|e| RunError::Config(e.to_string()))?;
        let client_addr = client.local_addr().map_err(|e| RunError::Config(e.to_string()))?;
        let advertised = config.advertise_client.clone().unwrap_or_else(|| client_addr.to_string());
        Ok(Ports { client, peer, http, client_addr, http_addr, advertised })
    }
}

/// Binds one port; an error names the flag and the address.
async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr).await.map_err(|source| RunError::Bind { addr, what, source })
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

/// Serves the peer port's RaftService (mutual TLS when the node has it).
pub(crate) fn serve_peer_port(
    listener: TcpListener,
    service: PeerService<NodeLeaderOps>,
    tls: &LoadedTls,
    mut stop: watch::Receiver<bool>,
) -> Result<Served, RunError> {
    let mut builder =
        server_builder(tls.peer.as_ref().map(|t| t.server_config()), "--peer-tls-cert")?;
    Ok(tokio::spawn(builder.add_service(service.into_server()).serve_with_incoming_shutdown(
        no_delay(listener),
        async move {
            let _ = stop.changed().await;
        },
    )))
}

/// Serves the client port (`client_port_routes`: health, reflection, LicenseService,
/// StatusService, AdminService) behind the size limits, with leader hints on every refusal.
pub(crate) async fn serve_client_port(
    listener: TcpListener,
    services: ClientServices,
    admin_token: Option<String>,
    metrics: &Arc<Metrics>,
    tls: &LoadedTls,
    mut stop: watch::Receiver<bool>,
) -> Result<Served, RunError> {
    let routes = crate::client_port::client_port_routes(services.clone(), admin_token)
        .await
        .map_err(RunError::Config)?;
    let hint_services = services.clone();
    let builder = server_builder(tls.client.as_ref().map(|t| t.server_config()), "--tls-cert")?;
    Ok(tokio::spawn(
        builder
            // Up to this much metadata reaches the services, which refuse what is too long
            // for them by name (an oversize admin token is UNAUTHENTICATED, not a reset).
            .http2_max_header_list_size(MAX_REQUEST_METADATA_BYTES)
            .layer(GrpcTimingLayer::new(metrics.rpc_seconds.clone()))
            .layer(RefusalLayer::new(move |status| hint_services.hinted(status)))
            .add_routes(routes)
            .serve_with_incoming_shutdown(no_delay(listener), async move {
                let _ = stop.changed().await;
            }),
    ))
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
pub(crate) fn warn_plaintext(config: &NodeConfig, tls: &LoadedTls) {
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
