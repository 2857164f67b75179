//! The node: gRPC services, leader forwarding, the heartbeat/expiry loop, HTTP, configuration
//! (built with issue 4).
//!
//! - `config`: flags, `QLM_*` variables and the TOML file, merged and checked
//! - `leases`: session deadlines on the leader, as etcd keeps leases.

pub mod config;
pub mod leases;
pub mod node;
pub mod peers;
pub mod run;
pub mod services;

pub use leases::{Leases, NoLease};
