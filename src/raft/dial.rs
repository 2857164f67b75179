//! The one way a node builds a gRPC channel to a peer's peer port, used by openraft's network
//! (`network`) and by the node's own peer calls (`node::peers`).
//!
//! With peer TLS on, the channel is `https://{addr}`: it presents this node's certificate and
//! accepts the peer only if its certificate chains to the cluster CA and names the host
//! dialed. Without it, `http://{addr}`: plaintext, for a local demo (the node says so at
//! start). Channels connect lazily: making one does no I/O.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How a node dials its peers: plaintext, or mutual TLS with the cluster CA. Its `Debug`
/// says which, and nothing of the key material (tonic's `ClientTlsConfig` would print the
/// private key's bytes).
#[derive(Clone, Default)]
pub struct PeerDialer {
    /// The TLS client side of the peer port; `None` is plaintext.
    tls: Option<ClientTlsConfig>,
}

impl PeerDialer {
    /// Plaintext peer links.
    pub fn plaintext() -> PeerDialer {
        PeerDialer { tls: None }
    }

    /// TLS peer links with `config` (`net::tls::PeerTls::client_config`).
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
            .connect_timeout(connect_timeout);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| format!("peer address {addr:?}: TLS: {e}"))?;
        }
        Ok(qlm_net::wire::connect_lazy(&endpoint))
    }
}

impl std::fmt::Debug for PeerDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_tls() { "PeerDialer(mutual TLS)" } else { "PeerDialer(plaintext)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn channels_are_lazy_and_bad_addresses_are_named() {
        let dialer = PeerDialer::tls(ClientTlsConfig::new());
        assert!(dialer.channel("127.0.0.1:1", Duration::from_millis(10)).is_ok());
        let err = PeerDialer::plaintext().channel("bad host:1", Duration::from_millis(10));
        assert!(err.unwrap_err().contains("bad host:1"));
        assert_eq!(format!("{dialer:?}"), "PeerDialer(mutual TLS)");
    }
}
