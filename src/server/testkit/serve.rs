//! The client port of an [`InProcessNode`], on a real port of 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use super::InProcessNode;
use crate::client_port::client_port_routes;
use crate::refusals::{MAX_REQUEST_METADATA_BYTES, RefusalLayer};
use crate::services::ClientServices;
use qlm_node::node::{LEASE_TICK, TICK_EVERY};

/// The admin token a served node accepts.
pub const ADMIN_TOKEN: &str = "s3cret";

/// A node being served; dropping it stops the server and the node's duties.
pub struct Serving {
    /// The address the client port listens on.
    pub addr: SocketAddr,
    pub node: Arc<InProcessNode>,
    stop: watch::Sender<bool>,
}

impl Serving {
    /// `host:port`, as `QLM_SERVERS` spells it.
    pub fn servers(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves the client port's services over `node` (as `qlmd` sets them up, admin calls taking
/// [`ADMIN_TOKEN`]) on a port of 127.0.0.1 the system picks, and runs the node's duties:
/// expiring sessions whose leases ran out, and ticking.
///
/// # Panics
///
/// When no port of 127.0.0.1 can be bound.
pub async fn serve(node: InProcessNode) -> Serving {
    let node = Arc::new(node);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port of 127.0.0.1");
    let addr = listener.local_addr().expect("the address of a bound port");
    let services = ClientServices { node: node.clone(), client_addr: addr.to_string() };
    let routes = client_port_routes(services.clone(), Some(ADMIN_TOKEN.to_owned()))
        .await
        .expect("the client port's routes");
    let (stop, stopped) = watch::channel(false);
    let mut server_stop = stopped.clone();
    let server = tonic::transport::Server::builder()
        .http2_max_header_list_size(MAX_REQUEST_METADATA_BYTES)
        .layer(RefusalLayer::new(move |status| services.hinted(status)))
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = server_stop.changed().await;
        });
    tokio::spawn(server);
    tokio::spawn(run_duties(node.clone(), stopped));
    Serving { addr, node, stop }
}

/// The leader's duties of `node`, at the pace a real leader keeps them, until `stop` changes.
async fn run_duties(node: Arc<InProcessNode>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(LEASE_TICK);
    let mut last_tick = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        // A failed duty is tried again at the next round, as on a real leader.
        let _ = node.expire_silent().await;
        if last_tick.elapsed() >= TICK_EVERY {
            last_tick = tokio::time::Instant::now();
            let _ = node.tick().await;
        }
    }
}

/// A port of 127.0.0.1 nothing listens on (bound, then closed).
///
/// # Panics
///
/// When no port of 127.0.0.1 can be bound.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port of 127.0.0.1");
    listener.local_addr().expect("the address of a bound port").port()
}
