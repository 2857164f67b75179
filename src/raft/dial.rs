//! The one way a node builds a gRPC channel to a peer's peer port, and the node's one table of
//! those channels ([`PeerChannels`]), shared by openraft's network (`network`) and the node's
//! own peer calls (`qlm_node::peer::client`): one connection per peer, whoever dials it.
//!
//! With peer TLS on, the channel is `https://{addr}`: it presents this node's certificate and
//! accepts the peer only if its certificate chains to the cluster CA and names the host
//! dialed. Without it, `http://{addr}`: plaintext, for a local demo (the node says so at
//! start). Channels connect lazily: making one does no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::NodeId;

/// Longest wait for a TCP connection to a peer. Shorter than an election timeout, so that one
/// dead peer does not hold a heartbeat round back.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

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

/// The node's channels to its peers, one per peer, made lazily and reused by every caller;
/// a peer whose address changes gets a new one.
#[derive(Debug, Default)]
pub struct PeerChannels {
    /// How channels are made: plaintext or mutual TLS.
    dialer: PeerDialer,
    /// `--peer-route`: dial addresses that replace advertised ones.
    routes: BTreeMap<NodeId, String>,
    /// The channel to each peer, with the address it was made for.
    table: Mutex<HashMap<NodeId, (String, Channel)>>,
}

impl PeerChannels {
    /// Channels made by `dialer`, to the addresses of `routes` where a peer has one.
    pub fn new(dialer: PeerDialer, routes: BTreeMap<NodeId, String>) -> PeerChannels {
        PeerChannels { dialer, routes, table: Mutex::default() }
    }

    /// True when peer links use TLS.
    pub fn is_tls(&self) -> bool {
        self.dialer.is_tls()
    }

    /// The channel to peer `id`, whose membership advertises `advertised`: the one made before
    /// when the address dialed is the same. An address that makes no URI is an error naming
    /// the peer and the address.
    pub fn channel(&self, id: NodeId, advertised: &str) -> Result<Channel, String> {
        let addr = dial_addr(&self.routes, id, advertised);
        // A poisoned table only means a panic elsewhere while inserting; its entries are whole.
        let mut table = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((known, channel)) = table.get(&id)
            && known == addr
        {
            return Ok(channel.clone());
        }
        let channel =
            self.dialer.channel(addr, CONNECT_TIMEOUT).map_err(|e| format!("node {id}: {e}"))?;
        table.insert(id, (addr.to_owned(), channel.clone()));
        Ok(channel)
    }
}

/// Where this node dials peer `id` whose membership entry advertises `advertised`: the route
/// given for it with `--peer-route`, else the advertised address.
pub fn dial_addr<'a>(
    routes: &'a BTreeMap<NodeId, String>,
    id: NodeId,
    advertised: &'a str,
) -> &'a str {
    routes.get(&id).map_or(advertised, String::as_str)
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

    #[tokio::test]
    async fn one_channel_per_peer_until_its_address_changes() {
        let routes = BTreeMap::from([(2, "10.0.0.2:7401".to_owned())]);
        let channels = PeerChannels::new(PeerDialer::plaintext(), routes);
        channels.channel(1, "10.0.0.1:7401").unwrap();
        channels.channel(1, "10.0.0.1:7401").unwrap();
        channels.channel(2, "ignored:1").unwrap();
        let table = channels.table.lock().unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table[&2].0, "10.0.0.2:7401", "the route wins over the advertised address");
        drop(table);
        channels.channel(1, "10.0.0.9:7401").unwrap();
        assert_eq!(channels.table.lock().unwrap()[&1].0, "10.0.0.9:7401");
    }
}
