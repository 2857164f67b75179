//! `qlmd`, the node process: its settings, ports, client-port services, HTTP, TLS and report
//! log, around the replicated core of `qlm_node`.
//!
//! - `config`: flags, `QLM_*` variables and the TOML file, merged and checked
//! - `services`: the client port's LicenseService and StatusService
//! - `cluster_node`: what those services need of the node under them ([`cluster_node::ClusterNode`])
//! - `client_port`: the client port's services as one set of routes, as `qlmd` serves them
//! - `cluster_view`: StatusService.Cluster's answers, the leader's view asked of the leader
//! - `refusals`: the client port's size limits, and tonic's own refusals in the contract's codes
//! - `http`: the HTTP port: dashboard, `/metrics`, `/healthz`, `/readyz`
//! - `admin`: the client port's AdminService (token-checked): remove, reload, membership
//! - `cluster_check`: does this node's `--initial-cluster` agree with its peers'?
//! - `preflight`: is the data directory usable by this user?
//! - `run`: starting and stopping a node (`qlmd`), in phases
//! - `ports`: binding and serving the client and peer ports
//! - `leader_ops`: what this node answers when a follower asks the leader
//! - `tls_config`: which certificate files each port uses, checked whole at start
//! - `testkit`: test support: the real client services over a one-process node
//! - `report_log`, `report_file`: the usage report log every node writes from what it applies

pub mod admin;
pub mod client_port;
pub mod cluster_check;
pub mod cluster_node;
pub mod cluster_view;
pub mod config;
pub mod edge;
pub mod http;
mod leader_ops;
mod ports;
pub mod preflight;
pub mod reflection;
pub mod refusals;
pub mod report_file;
pub mod report_log;
pub mod run;
pub mod services;
pub mod testkit;
pub mod tls_config;
