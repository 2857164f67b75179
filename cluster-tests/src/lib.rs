//! Multi-process QuorumLM clusters for integration, chaos and load tests.
//!
//! [`Cluster::start`] makes a vendor key and a signed license in a temporary directory, picks
//! free loopback ports, and starts one real `qlmd` process per node with its own data
//! directory. Nodes can be killed with SIGKILL and restarted from their data. Every child is
//! killed when the `Cluster` is dropped, pass or fail, so no test leaves a process behind.
//!
//! [`Cluster::start_with`] takes [`ClusterOptions`]: extra flags and environment for every
//! node, and `tls`, which makes a cluster CA and one certificate per node and starts every
//! node with TLS on the client port and mutual TLS between peers (the harness's own status
//! calls then trust that CA).
//!
//! The `qlmd` binary is the one cargo built next to this test binary (`target/<profile>/qlmd`;
//! `cargo test --workspace` builds it), or `$QLMD_BIN`.
//!
//! The harness: `cluster` (the processes: start, kill, pause, restart, addresses),
//! `cluster::status` (the harness's own gRPC calls: status, leader, readiness), `certs` (a TLS
//! cluster's CA and node certificates), `http` (GET on a node's HTTP port), `raw_session`
//! (sessions opened through the raw gRPC API). Their types are re-exported here.
//!
//! For the chaos suite, [`Cluster::start_with`] also puts a fault-injecting proxy on every
//! directed peer link (see [`proxy`]), keeps spare node ids that can join later with `--join`,
//! and can pause nodes (SIGSTOP) and resume them. The parts:
//!
//! - `proxy`: the peer-link proxies and their modes (pass, drop, black-hole, delay)
//! - `history`: what every client asked and was told, with times
//! - `workload`: client sessions through the real client library that record a history
//! - `checker`: the rules a history and the nodes' final states must keep
//! - `scenario`: the fault scenarios, shared by `tests/chaos.rs` and the `chaos` binary

pub mod checker;
pub mod history;
pub mod proxy;
pub mod rng;
pub mod scenario;
pub mod workload;

pub mod compose;

pub mod bench;
pub mod failover;
pub mod fleet;

mod certs;
mod cluster;
mod http;
mod raw_session;

use std::time::Duration;

pub use certs::ClusterTls;
pub use cluster::{Cluster, ClusterOptions, NodeProcess, qlmd_binary};
pub use http::{HTTP_TIMEOUT, http_get};
pub use raw_session::RawSession;

/// The license every test cluster serves, before signing.
pub const TEST_LICENSE: &str = "\
# test license
FEATURE vhdl-editor vendor=test version=4.0 count=25 expires=permanent
FEATURE simulator vendor=test version=2.1 tokens=100 expires=permanent
FEATURE synthesis vendor=test version=1.0 count=1 expires=permanent
FEATURE bound-to-two vendor=test version=1.0 count=5 expires=permanent hostid=node1-host,node2-host
FEATURE bound-to-one vendor=test version=1.0 count=5 expires=permanent hostid=node3-host
FEATURE chaos-pool vendor=test version=1.0 count=3 expires=permanent
";

/// The chaos workload's feature: few seats, so that an over-grant shows.
pub const CHAOS_FEATURE: &str = "chaos-pool";
/// Seats of [`CHAOS_FEATURE`] in [`TEST_LICENSE`].
pub const CHAOS_SEATS: u32 = 3;

/// The admin token every test node accepts.
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token";

/// How long a cluster may take to elect a leader and load its licenses.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
