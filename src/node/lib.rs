//! The replicated core of a QuorumLM node: everything between a client service and the Raft
//! log that must be the same on every node.
//!
//! - [`node`]: one node and the routing of its requests: writes through the leader, read barriers,
//!   heartbeats
//! - [`leader`]: what only the leader does: proposing, leases, read indexes, its duties loop
//! - [`licenses`]: the license set a leader proposes, filtered by the voters' host ids
//! - [`proposer`]: the leader's write path: batching proposals, sharing leadership confirmations
//! - [`leases`]: session deadlines on the leader, as etcd keeps leases
//! - [`peer`]: the peer port, its service (what other nodes call here) beside its client (how
//!   this node reaches the leader and learns the others' client addresses)
//! - [`settings`]: what the core needs of its node (id, cluster, license files)
//! - [`compaction`]: a snapshot when the log since the last one passes its size limit
//! - [`clock`]: the license clock: each peer's clock offset, the bound a leader's clock must
//!   keep, and the stamps it writes

pub mod clock;
pub mod compaction;
pub mod leader;
pub mod leases;
pub mod licenses;
pub mod node;
pub mod peer;
pub mod proposer;
pub mod settings;

pub use leases::{Leases, NoLease};
pub use peer::{LeaderOps, PeerService};
pub use settings::NodeSettings;
