//! Does this node's `--initial-cluster` agree with its peers'?
//!
//! Every node is started with the same `--initial-cluster`; its digest is the cluster id
//! every peer message carries, and a node refuses messages of another cluster (`peer.rs`).
//! That keeps two clusters from mixing, but by itself a node started with a different list
//! would only see its calls refused, over and over, and an admin would read nothing useful.
//! So a node asks each peer (`Hello`) at start and then every few seconds:
//!
//! - a peer that refuses is named in an ERROR line with this node's list, and the refusing
//!   peer logs an ERROR of its own with its list (its refusal tells the caller nothing about
//!   its cluster: whoever reaches a peer port is not told the members; the admin compares the
//!   two logs);
//! - when so many peers refuse that the nodes agreeing with this one (itself included) could
//!   never make a majority of its `--initial-cluster`, this node is the one misconfigured: it
//!   stops with that message (exit 2) instead of running a node that can never serve. At
//!   start this happens before a fresh node forms a cluster with the wrong members.
//!
//! A peer that cannot be reached says nothing about agreement and is not counted.

use std::collections::BTreeMap;

use tracing::error;

use std::sync::Arc;

use crate::config::NodeConfig;
use qlm_node::node::Node;
use qlm_node::peer::CLUSTER_MISMATCH;
use qlm_node::peer::Peers;
use qlm_raft::NodeId;

/// `1=a:7401,2=b:7401,3=c:7401`: a node's `--initial-cluster`, as the digest sees it.
pub fn members_text(config: &NodeConfig) -> String {
    config
        .initial_cluster
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Refusals heard so far, by peer: what the peer said.
#[derive(Debug, Default)]
pub struct Refusals(BTreeMap<NodeId, String>);

impl Refusals {
    /// Records what `peer` answered to Hello: `Some(message)` when it refused this node's
    /// cluster, `None` when it accepted (an earlier refusal is forgotten: it was restarted
    /// with the right list).
    pub fn record(&mut self, peer: NodeId, refusal: Option<String>) {
        match refusal {
            Some(message) => {
                self.0.insert(peer, message);
            }
            None => {
                self.0.remove(&peer);
            }
        }
    }

    /// `Err(message)` when the peers refusing this node leave it without a possible
    /// majority: it, not they, is misconfigured.
    pub fn verdict(&self, config: &NodeConfig) -> Result<(), String> {
        let members = config.initial_cluster.len();
        let majority = members / 2 + 1;
        if members - self.0.len() >= majority {
            return Ok(());
        }
        let theirs: Vec<String> =
            self.0.iter().map(|(peer, message)| format!("node {peer}: {message}")).collect();
        Err(format!(
            "configuration: --initial-cluster: this node's list ({}) disagrees with its peers'; \
             {} of {members} members refuse it ({}). Each refusing node logs its own list at \
             ERROR (`refused node {}`): compare the two. Start every node with the same \
             --initial-cluster (a node added later keeps the founders' list and sets --join)",
            members_text(config),
            self.0.len(),
            theirs.join("; "),
            config.id
        ))
    }
}

/// Asks `peer` whether it accepts this node's cluster: `Some(its message)` when it refuses,
/// `None` when it accepts or cannot be reached. A refusal is logged at ERROR with this node's
/// list (the peer logs its own).
pub async fn ask(peers: &Peers, config: &NodeConfig, peer: NodeId) -> Option<String> {
    let status = peers.hello(peer).await.err()?;
    if status.code() != tonic::Code::PermissionDenied
        || !status.message().starts_with(CLUSTER_MISMATCH)
    {
        return None;
    }
    error!(
        node = config.id,
        peer,
        peer_addr = config.initial_cluster.get(&peer).map(String::as_str).unwrap_or("?"),
        initial_cluster = %members_text(config),
        peer_says = status.message(),
        "node {peer} refuses this node: one of the two was started with another \
         --initial-cluster (node {peer}'s log names its list); every node must be started with \
         the same list"
    );
    Some(status.message().to_owned())
}

/// Asks every other member once, at start; `Err` when this node is the misconfigured one.
pub async fn check_at_start(peers: &Peers, config: &NodeConfig) -> Result<Refusals, String> {
    let mut refusals = Refusals::default();
    for &peer in config.initial_cluster.keys().filter(|&&p| p != config.id) {
        refusals.record(peer, ask(peers, config, peer).await);
    }
    refusals.verdict(config)?;
    Ok(refusals)
}

/// How often a node asks its peers for their client addresses (for leader hints).
pub const HELLO_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How soon a node asks again while a peer's client address is still unknown: at start the
/// peers come up one by one, and until a follower knows the leader's address its answers
/// carry a leader hint without one.
pub const HELLO_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Rounds asked at [`HELLO_RETRY`] in a row before a peer that does not answer (down for
/// good, or not started yet) is asked at [`HELLO_EVERY`] only.
pub const HELLO_FAST_ROUNDS: u32 = 40;

/// Asks every peer for its client address now and then, for leader hints; a peer that
/// refuses this node's cluster is logged, and when too many do, `misconfigured` gets the
/// message this node stops with (`cluster_check`).
pub(crate) async fn learn_client_addrs(
    node: Arc<Node>,
    config: NodeConfig,
    mut refusals: Refusals,
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
                let refusal = ask(&node.peers, &config, peer).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeConfig, NodeFlags};

    fn config(members: &str) -> NodeConfig {
        NodeConfig::resolve(NodeFlags {
            id: Some(1),
            data_dir: Some("/tmp/x".into()),
            listen: Some("127.0.0.1:7400".parse().unwrap()),
            peer_listen: Some("127.0.0.1:7401".parse().unwrap()),
            http_listen: Some("127.0.0.1:7402".parse().unwrap()),
            initial_cluster: Some(members.into()),
            license: Some("x.lic".into()),
            vendor_pubkey: vec!["x.pub".into()],
            ..NodeFlags::default()
        })
        .unwrap()
    }

    #[test]
    fn one_refusing_peer_of_three_is_its_problem_two_are_this_nodes() {
        let config = config("1=a:1,2=b:1,3=c:1");
        let mut refusals = Refusals::default();
        refusals.record(3, Some("another cluster: node 3 ...".into()));
        assert!(refusals.verdict(&config).is_ok(), "nodes 1 and 2 still make a majority");
        refusals.record(2, Some("another cluster: node 2 ...".into()));
        let message = refusals.verdict(&config).unwrap_err();
        assert!(message.contains("--initial-cluster"), "{message}");
        assert!(message.contains("1=a:1,2=b:1,3=c:1"), "names this node's list: {message}");
        assert!(message.contains("node 2: another cluster"), "names the peers': {message}");
        refusals.record(2, None);
        assert!(refusals.verdict(&config).is_ok(), "node 2 was fixed");
    }
}
