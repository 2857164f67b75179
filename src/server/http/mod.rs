//! The node's HTTP port (`--http-listen`): the dashboard, Prometheus metrics and the health
//! probes a load balancer or Kubernetes asks.
//!
//! | path          | answer |
//! |---------------|--------|
//! | `/`           | the dashboard: one self-contained page (`dashboard.html`, no external asset) |
//! | `/api/status` | what the dashboard draws, as JSON (it fetches this every few seconds) |
//! | `/metrics`    | every metric, OpenMetrics text format (`metrics.rs`) |
//! | `/healthz`    | 200 while the process serves HTTP |
//! | `/readyz`     | 200 when the node can serve (`status::readiness`), else 503 and the reason |
//!
//! Everything here reads; nothing changes the license state, so the port needs no token.
//! It serves plain HTTP: put it on an admin network (or behind a proxy with TLS).
//!
//! - `metrics`: the metrics, their sources, and the counters fed by the applied log
//! - `grpc_timing`: the tower layer that times client-port gRPC calls
//! - `usage`: seats in use over time, sampled into a ring buffer for the plot
//! - `status`: the dashboard's JSON and the readiness rule

pub mod grpc_timing;
pub mod metrics;
pub mod status;
pub mod usage;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use qlm_node::node::Node;
use qlm_raft::StorageStats;

pub use grpc_timing::GrpcTimingLayer;
pub use metrics::{AppliedCounters, Metrics};
pub use usage::UsageHistory;

/// The dashboard page: HTML, CSS and JavaScript in one file, compiled into the binary.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// The page may load nothing from anywhere but this node (its own inline script and style,
/// and `/api/status`).
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
                             style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the HTTP handlers share.
pub struct HttpState {
    pub node: Arc<Node>,
    /// This node's client address (shown on the dashboard).
    pub client_addr: String,
    pub metrics: Arc<Metrics>,
    pub history: Arc<UsageHistory>,
    pub storage: StorageStats,
    /// A leader that has not heard from a quorum for longer than this is not ready.
    pub quorum_silence: Duration,
    peer_views: status::PeerViews,
}

impl HttpState {
    pub fn new(
        node: Arc<Node>,
        client_addr: String,
        metrics: Arc<Metrics>,
        history: Arc<UsageHistory>,
        storage: StorageStats,
        quorum_silence: Duration,
    ) -> HttpState {
        HttpState {
            node,
            client_addr,
            metrics,
            history,
            storage,
            quorum_silence,
            peer_views: status::PeerViews::default(),
        }
    }

    fn readiness(&self) -> Result<(), String> {
        status::readiness(&self.node, &self.storage, self.quorum_silence)
    }
}

/// The routes.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(api_status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

/// Serves HTTP on `listener` until `shutdown` resolves (then finishes the requests under way).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}

async fn api_status(State(state): State<Arc<HttpState>>) -> Response {
    let payload = status::status(
        &state.node,
        &state.client_addr,
        state.readiness(),
        &state.storage,
        &state.metrics.counters,
        &state.history,
        &state.peer_views,
    )
    .await;
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(payload)).into_response()
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let text = state.metrics.render(&state.node).await;
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    match state.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()).into_response(),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response()
        }
    }
}

async fn not_found() -> Response {
    let text = "not found: this port serves /, /api/status, /metrics, /healthz and /readyz\n";
    (StatusCode::NOT_FOUND, text).into_response()
}
