//! Raft for QuorumLM: openraft's type configuration, the log entry every replica applies, and
//! the durable sled stores that openraft runs on.
//!
//! One Raft group replicates one log of [`LogEntry`]s. Each entry is a batch of engine
//! [`Command`]s (the requests the leader gathered while its previous proposals were under way)
//! plus the wall-clock stamp of the leader that proposed it; applying an entry is
//! `Engine::apply(command, stamp)` for each command in order, nothing else, so every replica
//! that applies the same log holds the same engine, byte for byte. The engine never reads a
//! clock: the stamp is the only time it sees.
//!
//! The storage, in the order a write travels:
//!
//! - `store`: opens the node's one sled database (the vote, the purge mark, the storage
//!   format and the snapshot; sled locks its directory) and the log's segment files
//!   (`wal`), checks both before anyone trusts them, and owns the only place where sled's
//!   writes are made durable (`flush` and then `fsync`; see `DURABILITY.md`).
//! - `log_store`: the Raft log and the vote ([`LogStore`], openraft's `RaftLogStorage`).
//!   A vote or an append is acknowledged only once it is on disk.
//! - `state_machine`: the engine behind openraft's `RaftStateMachine`
//!   ([`StateMachineStore`]). The engine lives in memory; snapshots of it are written to sled
//!   and fsynced, and on start the engine is rebuilt from the last snapshot while openraft
//!   re-applies the log after it.
//!
//! And between the nodes, `network`: openraft's `RaftNetwork` over gRPC
//! ([`GrpcNetworkFactory`]), the peer port's client side; the server side is
//! `qlm_node::peer::service`. `dial` holds [`PeerDialer`] (plaintext, or mutual TLS) and
//! [`PeerChannels`], the node's one table of peer channels, which openraft's network and the
//! node's own peer calls share.
//!
//! Invariants:
//!
//! - An acknowledged vote or log entry survives `kill -9` and power loss (the fsync).
//! - The log has no holes: its indexes run from `last_purged + 1` to the last entry.
//! - The engine is a function of the applied log: the same entries give the same snapshot bytes.
//! - A database that cannot be read back exactly is refused at open, naming its path; a node
//!   never serves from a doubtful log (docs/DESIGN.md, trap 2).
//!
//! Entries that are not commands (openraft's blank entries and membership changes) answer with
//! [`neutral_response`]: no client waits for them, and the engine does not see them.

// openraft's traits return its `StorageError` (over 200 bytes) by value; boxing it on our
// side would only add an allocation before openraft takes it back by value.
#![allow(clippy::result_large_err)]

pub mod dial;
mod log_store;
pub mod network;
pub mod observer;
mod state_machine;
mod stats;
mod store;
pub mod testkit;
mod wal;

use std::io::Cursor;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use qlm_engine::{Applied, Command};
use qlm_license::Timestamp;

pub use dial::{PeerChannels, PeerDialer};
pub use log_store::LogStore;
pub use network::{GrpcNetwork, GrpcNetworkFactory, ReplicationSignal};
pub use observer::{AppliedEntry, ApplyObserver};
pub use state_machine::{ReplicaState, SharedReplica, SnapshotBuilder, StateMachineStore};
pub use stats::StorageStats;
pub use store::{STORAGE_FORMAT, StoreError, is_no_space, open_stores};

openraft::declare_raft_types!(
    /// The types QuorumLM's Raft group is made of.
    pub TypeConfig:
        D = LogEntry,
        R = Answers,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A node's id in the cluster (`--id`, and the keys of `--initial-cluster`).
pub type NodeId = u64;
/// A running Raft node.
pub type Raft = openraft::Raft<TypeConfig>;
/// One entry of the replicated log as openraft stores it.
pub type Entry = openraft::Entry<TypeConfig>;
/// The position of a log entry: leader term and node, and index.
pub type LogId = openraft::LogId<NodeId>;
/// A node's vote: the term and the candidate it voted for.
pub type Vote = openraft::Vote<NodeId>;
/// A cluster membership (voters and learners with their addresses).
pub type Membership = openraft::Membership<NodeId, openraft::BasicNode>;
/// A membership with the log id of the entry that carried it.
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
/// What a snapshot covers: last log id, membership, id.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
/// A snapshot as openraft hands it around.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// The error every storage call returns; openraft stops the node on it.
pub type StorageError = openraft::StorageError<NodeId>;

/// Name of the cluster in openraft's configuration (shows in its logs).
pub const CLUSTER_NAME: &str = "quorumlm";

/// Leader heartbeat interval, in milliseconds: a quarter of the shortest election timeout
/// below, so that a follower misses several heartbeats before it stands (docs/DESIGN.md,
/// "Replication").
pub const HEARTBEAT_INTERVAL_MS: u64 = 50;

/// Shortest election timeout, in milliseconds. openraft 0.9 adds its leader lease (the longest
/// election timeout) to a follower's timer, so a follower stands only after 600–800 ms without
/// a heartbeat (12 or more missed heartbeats), and a candidate then finds the other
/// followers' leases expired too. Longer timeouts delay the first grant after a leader dies by
/// as much (docs/BENCHMARKS.md, "Failover").
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 200;

/// Longest election timeout, in milliseconds (also openraft's leader lease).
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 400;

/// A snapshot is built after this many entries have been applied since the last one, and the
/// log behind it is purged: the disk stays bounded.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 5_000;

/// A snapshot is also built when the entries written since the last one take this many MiB
/// of log (`--snapshot-log-mb`; `qlm_node::compaction`).
pub const SNAPSHOT_LOG_MIB: u64 = 64;

/// Entries kept behind a snapshot, so that a follower a little behind catches up from the log
/// rather than with a whole snapshot.
pub const ENTRIES_KEPT_BEHIND_SNAPSHOT: u64 = 1_000;

/// A follower further behind than this many entries is sent a snapshot. It must exceed
/// [`SNAPSHOT_EVERY_ENTRIES`] (docs/DESIGN.md, trap 9), or a snapshot may not close the gap.
pub const REPLICATION_LAG_THRESHOLD: u64 = 2 * SNAPSHOT_EVERY_ENTRIES;

/// Most bytes the commands of one [`LogEntry`] take encoded (postcard, as the network carries
/// them). The proposer stops a batch before it would pass this and refuses a command that
/// alone does (`qlm_node::proposer`). An entry cannot be split: it crosses to a follower in one
/// AppendEntries, which must fit in a peer message ([`network::MAX_PEER_MESSAGE_BYTES`],
/// sixteen times this) and be answered within openraft's deadline for it, one heartbeat
/// interval (this takes 8.4 ms on 1 Gbit/s, before the follower's fsync). The entry's own log
/// id, stamp and count add a few dozen bytes. A batch of commands bounded at the client edge
/// (a few KiB each) can come near only when hostile; a license set, when huge.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// openraft's configuration with QuorumLM's tunables, validated.
pub fn raft_config() -> Result<openraft::Config, openraft::ConfigError> {
    raft_config_snapshot_every(SNAPSHOT_EVERY_ENTRIES)
}

/// The same with a snapshot every `entries` applied entries (`--snapshot-every`); the entries
/// kept behind a snapshot and the replication lag threshold scale with it as the defaults do
/// (a fifth, and twice).
pub fn raft_config_snapshot_every(entries: u64) -> Result<openraft::Config, openraft::ConfigError> {
    let entries = entries.max(1);
    openraft::Config {
        cluster_name: CLUSTER_NAME.to_string(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(entries),
        max_in_snapshot_log_to_keep: ENTRIES_KEPT_BEHIND_SNAPSHOT.min(entries / 5),
        replication_lag_threshold: REPLICATION_LAG_THRESHOLD.max(2 * entries),
        ..openraft::Config::default()
    }
    .validate()
}

/// One entry of the replicated log: commands applied in order, with the time they happened.
///
/// A leader batches the requests that arrive while its earlier proposals are being replicated
/// into one entry: one append, one fsync and one AppendEntries carry them all. Each command is
/// still applied on its own (a denial of one changes nothing for the next) and answers its own
/// client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub commands: Vec<Command>,
    /// The proposing leader's wall clock. Applying uses this and never a local clock, so every
    /// replica sees the same time; the engine keeps the largest stamp, so time never goes back
    /// when a new leader's clock is behind.
    pub stamp: Timestamp,
}

impl LogEntry {
    /// An entry stamped with this machine's wall clock: what a leader proposes.
    pub fn stamped_now(commands: Vec<Command>) -> LogEntry {
        // A clock before 1970 is broken; stamping 0 lets the engine's own time (the largest
        // stamp seen) win rather than failing the proposal.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        LogEntry { commands, stamp: Timestamp(millis) }
    }
}

/// What applying one log entry answered: one [`Applied`] per command, in the entry's order.
pub type Answers = Vec<Applied>;

/// The answer to an entry that is not a command (blank or membership): no command, nothing
/// happened to any seat. Only openraft and admin calls that change membership ever see it.
pub fn neutral_response() -> Answers {
    Vec::new()
}
