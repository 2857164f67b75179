//! The one way a node builds a gRPC channel to a peer's peer port, used by openraft's network
//! (`network`) and by the node's own peer calls (`server::peers`).
//!
//! With peer TLS on, the channel is `https://{addr}`: it presents this node's certificate and
//! accepts the peer only if its certificate chains to the cluster CA and names the host
//! dialed. Without it, `http://{addr}`: plaintext, for a local demo (the node says so at
//! start). Channels connect lazily: making one does no I/O.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How a node dials its peers: plaintext, or mutual TLS with the cluster CA.
#[derive(Clone, Debug, Default)]
pub struct PeerDialer {
    /// The TLS client side of the peer port; `None` is plaintext.
    tls: Option<ClientTlsConfig>,
}

impl PeerDialer {
    /// Plaintext peer links.
    pub fn plaintext() -> PeerDialer {
        PeerDialer { tls: None }
    }

    /// TLS peer links with `config` (`tls::PeerTls::client_config`).
    pub fn tls(config: ClientTlsConfig) -> PeerDialer {
        PeerDialer { tls: Some(config) }
    }

    /// True when peer links use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A lazily connected channel to the peer port at `addr` (`host:port`); an address that
    /// does not make a URI is an error naming it.
    pub fn channel(&self, addr: &str, connect_timeout: Duration) -> Result<Channel, String> {
        let scheme = if self.is_tls() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| format!("peer address {addr:?}: {e}"))?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| format!("peer address {addr:?}: TLS: {e}"))?;
        }
        Ok(endpoint.connect_lazy())
    }
}
