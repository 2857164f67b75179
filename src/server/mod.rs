//! The node: gRPC services, leader forwarding, the heartbeat/expiry loop, HTTP, configuration
//! (built with issue 4).
//!
//! - `config`: flags, `QLM_*` variables and the TOML file, merged and checked
//! - `leases`: session deadlines on the leader, as etcd keeps leases.
//! - `peer`: the peer port's RaftService (openraft's messages, and what followers ask of the
//!   leader: forwarded writes, heartbeats, read indexes).

pub mod config;
pub mod leases;
pub mod peer;

pub use leases::{Leases, NoLease};
pub use peer::{LeaderOps, PeerService};
