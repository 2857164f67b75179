//! The node: gRPC services, leader forwarding, the heartbeat/expiry loop, HTTP, configuration
//! (`qlmd`).
//!
//! - `config`: flags, `QLM_*` variables and the TOML file, merged and checked
//! - `leases`: session deadlines on the leader, as etcd keeps leases.
//! - `peer`: the peer port's RaftService (openraft's messages, and what followers ask of the
//!   leader: forwarded writes, heartbeats, read indexes).
//! - `peers`: the client side of the peer port: reaching the leader, learning client addresses
//! - `node`: one node: proposing through the leader, read barriers, leases, the leader's duties
//! - `services`: the client port's LicenseService and StatusService
//! - `cluster_view`: StatusService.Cluster's answers, the leader's view asked of the leader
//! - `refusals`: the client port's size limits, and tonic's own refusals in the contract's codes
//! - `http`: the HTTP port: dashboard, `/metrics`, `/healthz`, `/readyz`
//! - `admin`: the client port's AdminService (token-checked): remove, reload, membership
//! - `compaction`: a snapshot when the log since the last one passes `--snapshot-log-mb`
//! - `cluster_check`: does this node's `--initial-cluster` agree with its peers'?
//! - `preflight`: is the data directory usable by this user?
//! - `run`: starting and stopping a node (`qlmd`)
//! - `tls_config`: which certificate files each port uses, checked whole at start
//! - `report_log`, `report_file`: the usage report log every node writes from what it applies

pub mod admin;
pub mod cluster_check;
pub mod cluster_view;
pub mod compaction;
pub mod config;
pub mod edge;
pub mod http;
pub mod leases;
pub mod node;
pub mod peer;
pub mod peers;
pub mod preflight;
pub mod proposer;
pub mod refusals;
pub mod report_file;
pub mod report_log;
pub mod run;
pub mod services;
pub mod tls_config;

pub use leases::{Leases, NoLease};
pub use peer::{LeaderOps, PeerService};
