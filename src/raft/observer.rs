//! Watching what the replica applies, from outside the state machine.
//!
//! The engine stays pure; what the server wants to learn from each applied entry (metrics,
//! the usage report log) it learns through an [`ApplyObserver`] registered on the
//! [`StateMachineStore`](super::StateMachineStore) before openraft takes it. Observers are
//! called in log order, on openraft's apply task, while the replica's write lock is held: an
//! observer must only record (count, or hand the entry to a channel) and return; it must never
//! block or do I/O there.
//!
//! An entry may be seen twice across a restart: the engine is rebuilt from the last snapshot
//! and the log after it is applied again. Observers that must not count twice compare the
//! index with the last one they recorded durably.

use qlm_engine::{Applied, Command, Engine};
use qlm_license::Timestamp;

/// One applied command, as an observer sees it (an entry that batches several commands is
/// seen once per command, in order, each with the entry's index and stamp).
#[derive(Debug, Clone, Copy)]
pub struct AppliedEntry<'a> {
    /// The log index of the entry that carried it.
    pub index: u64,
    /// The leader's wall-clock stamp carried by the entry (the only time the engine saw).
    pub stamp: Timestamp,
    /// The command applied.
    pub command: &'a Command,
    /// What applying it answered and changed.
    pub applied: &'a Applied,
    /// The engine as it stands after this entry (to look up a session's user and host, say).
    pub engine: &'a Engine,
}

/// Told of every command entry the replica applies, and of snapshots that replace it.
pub trait ApplyObserver: Send + Sync + 'static {
    /// A command entry was applied (blank and membership entries are not reported).
    fn applied(&self, entry: AppliedEntry<'_>);

    /// The replica was replaced by a snapshot from the leader, as of log index `index`: the
    /// entries up to it were not (and will not be) reported one by one on this node.
    fn snapshot_installed(&self, _index: u64) {}

    /// Called right after [`ApplyObserver::snapshot_installed`], with the engine the snapshot
    /// holds, for an observer that keeps its own view of the engine (who holds what). It runs
    /// under the replica's write lock too: copy what is needed and return.
    fn replica_replaced(&self, _index: u64, _engine: &Engine) {}
}
