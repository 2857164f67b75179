//! QuorumLM: a floating-license server whose checkout state is replicated with Raft.
//!
//! The crate is layered so that the dependency arrow points one way:
//!
//! - [`license`]: license files (parse, canonical form, ed25519 signatures) and the policy
//!   (options) file. Pure data and parsing.
//! - [`engine`]: the license state machine, `apply(command, now) -> outcome`: pools, sessions,
//!   checkouts, queues, linger, borrowing, reservations. Pure, deterministic, no I/O.
//! - [`raft`]: openraft's type configuration, the durable sled stores (log, vote, engine
//!   snapshots) that replicate the engine, and openraft's network over gRPC.
//! - [`proto`]: the gRPC wire contract generated from `proto/quorumlm/v1/*.proto`, and the
//!   conversions between its messages and the engine's commands, outcomes and views.
//! - [`client`]: the client library: server list, failover, sessions with heartbeats,
//!   checkout guards, status and admin calls.
//! - [`server`]: the node (`qlmd`): configuration, proposing through the leader, read
//!   barriers, session leases, the client-port services and the peer port's RaftService.
//! - [`tls`]: certificate files for the client port, mutual TLS between peers and clients,
//!   and making a cluster CA and node certificates (`qlm cert`).
//! - [`report`]: the usage report log's line format and the summary `qlm report` prints.
//! - [`wire`]: the TCP connection under every channel the crate dials (writes coalesced).
//!
//! The binaries (`qlmd`, `qlm`) sit on top; see ARCHITECTURE.md for the whole picture.

pub mod client;
pub mod engine;
pub mod license;
pub mod proto;
pub mod raft;
pub mod report;
pub mod server;
pub mod tls;
pub mod wire;
