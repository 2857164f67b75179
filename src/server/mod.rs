//! The node: gRPC services, leader forwarding, the heartbeat/expiry loop, HTTP, configuration
//! (built with issue 4).
//!
//! - `leases`: session deadlines on the leader, as etcd keeps leases.

pub mod leases;

pub use leases::{Leases, NoLease};
