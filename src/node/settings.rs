//! What the replicated core needs to know about its node, and nothing of how `qlmd` was
//! started: the process's flags, ports, TLS and data directory stay in `qlm_server::config`,
//! which builds this from them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use qlm_raft::NodeId;

/// Session TTL for a client that asks for none.
pub const DEFAULT_SESSION_TTL_MS: u64 = 30_000;

/// One node's identity, its cluster, and the files a leader proposes the licenses from.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// This node's id, one of `initial_cluster`'s keys unless it joined later.
    pub id: NodeId,
    /// Every founding member's id and peer address; the lowest id forms the cluster.
    pub initial_cluster: BTreeMap<NodeId, String>,
    /// This node's host id, for licenses bound to the cluster's hosts.
    pub hostid: String,
    /// The license file the leader reads and proposes.
    pub license: PathBuf,
    /// Vendor public keys that license signatures are checked against.
    pub vendor_pubkeys: Vec<PathBuf>,
    /// The options (policy) file, when there is one.
    pub options: Option<PathBuf>,
    /// How far this node's wall clock may be from a majority of the voters' before it stops
    /// leading (`crate::clock`).
    pub max_clock_offset: Duration,
}
