//! The license engine behind openraft's `RaftStateMachine` and `RaftSnapshotBuilder`.
//!
//! The engine is applied in memory and is never written to disk entry by entry; what is
//! durable is the last snapshot (the engine's bytes and the `SnapshotMeta`), fsynced in the
//! `snapshot` tree before openraft is told about it. On open the replica is rebuilt from that
//! snapshot, and openraft re-applies the log entries after it: the engine is a function of its
//! log, so the result is the state the node had.
//!
//! The replica (engine, last applied log id, membership) sits behind one
//! `Arc<tokio::sync::RwLock<..>>`, the [`SharedReplica`]: openraft's apply task writes it, and
//! the server reads it for status and stale reads. The write lock is held only while entries
//! are applied in memory, never across an await of I/O.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::RwLock;

use super::observer::{AppliedEntry, ApplyObserver};
use super::store::{
    Disk, SNAPSHOT_DATA_KEY, SNAPSHOT_META_KEY, StoreError, blocking, decode, encode,
};
use super::{
    Answers, Entry, LogEntry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig, neutral_response,
};
use qlm_engine::{Applied, Command, Engine};
use qlm_license::Timestamp;

/// What a replica has applied: the engine, and where in the log it stands.
#[derive(Debug, Default)]
pub struct ReplicaState {
    engine: Engine,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

impl ReplicaState {
    /// The license engine, as of [`ReplicaState::last_applied`].
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The last log entry applied (None before the first).
    pub fn last_applied(&self) -> Option<LogId> {
        self.last_applied
    }

    /// The last membership applied, with the log id that carried it.
    pub fn membership(&self) -> &StoredMembership {
        &self.membership
    }
}

/// The replica, shared between openraft (which applies) and the server (which reads).
pub type SharedReplica = Arc<RwLock<ReplicaState>>;

/// The state machine openraft drives.
pub struct StateMachineStore {
    disk: Arc<Disk>,
    replica: SharedReplica,
    observers: Vec<Arc<dyn ApplyObserver>>,
}

impl StateMachineStore {
    /// The state machine as of the stored snapshot (an empty engine when there is none).
    pub(super) fn restore(disk: Arc<Disk>) -> Result<StateMachineStore, StoreError> {
        let inconsistent = |detail: String| StoreError::Inconsistent {
            path: disk.dir().to_path_buf(),
            detail: format!("stored snapshot: {detail}"),
        };
        let replica = match read_snapshot(&disk).map_err(inconsistent)? {
            Some((meta, data)) => ReplicaState {
                engine: Engine::from_snapshot(&data).map_err(|e| inconsistent(e.to_string()))?,
                last_applied: meta.last_log_id,
                membership: meta.last_membership,
            },
            None => ReplicaState::default(),
        };
        Ok(StateMachineStore {
            disk,
            replica: Arc::new(RwLock::new(replica)),
            observers: Vec::new(),
        })
    }

    /// Registers an observer of every applied entry (metrics, the report log); see
    /// [`super::observer`]. Observers are registered before openraft takes the store.
    pub fn observe(&mut self, observer: Arc<dyn ApplyObserver>) {
        self.observers.push(observer);
    }

    /// The replica, for reading the engine (status, stale reads).
    pub fn replica(&self) -> SharedReplica {
        self.replica.clone()
    }
}

impl StateMachineStore {
    /// Applies one command of the entry at `index`, and shows it to the observers.
    fn apply_command(
        &self,
        replica: &mut ReplicaState,
        index: u64,
        command: Command,
        stamp: Timestamp,
    ) -> Applied {
        if self.observers.is_empty() {
            return replica.engine.apply(command, stamp);
        }
        // The engine takes the command by value; observers get a copy.
        let seen = command.clone();
        let applied = replica.engine.apply(command, stamp);
        let observed = AppliedEntry {
            index,
            stamp,
            command: &seen,
            applied: &applied,
            engine: &replica.engine,
        };
        for observer in &self.observers {
            observer.applied(observed);
        }
        applied
    }
}

/// Builds snapshots of the replica; given to openraft by `get_snapshot_builder`.
pub struct SnapshotBuilder {
    disk: Arc<Disk>,
    replica: SharedReplica,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // Take the bytes under the read lock, then write them without it: applies go on.
        let (data, last_log_id, last_membership) = {
            let replica = self.replica.read().await;
            (replica.engine.snapshot(), replica.last_applied, replica.membership.clone())
        };
        let disk = self.disk.clone();
        blocking(move || {
            let unique = disk.unique_id().map_err(|e| StorageIOError::write_snapshot(None, &e))?;
            let snapshot_id = match last_log_id {
                Some(id) => format!("{}-{}-{unique}", id.leader_id, id.index),
                None => format!("none-{unique}"),
            };
            let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
            write_snapshot(&disk, &meta, &data)?;
            Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let replica = self.replica.read().await;
        Ok((replica.last_applied, replica.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Answers>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replica = self.replica.write().await;
        let mut responses = Vec::new();
        for entry in entries {
            replica.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Normal(LogEntry { commands, stamp }) => {
                    let mut answers = Vec::with_capacity(commands.len());
                    for command in commands {
                        answers.push(self.apply_command(
                            &mut replica,
                            entry.log_id.index,
                            command,
                            stamp,
                        ));
                    }
                    answers
                }
                EntryPayload::Blank => neutral_response(),
                EntryPayload::Membership(membership) => {
                    replica.membership = StoredMembership::new(Some(entry.log_id), membership);
                    neutral_response()
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { disk: self.disk.clone(), replica: self.replica.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        // A snapshot that does not decode is refused before anything is replaced.
        let engine = Engine::from_snapshot(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let disk = self.disk.clone();
        let stored_meta = meta.clone();
        blocking(move || {
            disk.mark_written()
                .map_err(|e| StorageIOError::write_snapshot(Some(stored_meta.signature()), &e))?;
            write_snapshot(&disk, &stored_meta, &data)
        })
        .await?;
        let mut replica = self.replica.write().await;
        *replica = ReplicaState {
            engine,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let index = meta.last_log_id.map_or(0, |id| id.index);
        tracing::info!(index, snapshot = %meta.snapshot_id, "installed a snapshot from the leader");
        for observer in &self.observers {
            observer.snapshot_installed(index);
            observer.replica_replaced(index, &replica.engine);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let disk = self.disk.clone();
        let stored = blocking(move || {
            read_snapshot(&disk)
                .map_err(|e| StorageIOError::read_snapshot(None, AnyError::error(e)).into())
        })
        .await?;
        Ok(stored.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// Replaces the stored snapshot (meta and data in one atomic batch) and fsyncs it, unless the
/// stored one is newer: openraft builds snapshots in a task of their own, so one built from an
/// older state may finish after a newer snapshot was installed (openraft ignores it too).
/// Blocking.
fn write_snapshot(disk: &Disk, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
    let failed = |e: &dyn std::error::Error| {
        StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e))
    };
    let _only_writer = disk.snapshot_write.lock().map_err(|_| {
        StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error("lock poisoned"))
    })?;
    if let Some(stored) = disk.snapshot.get(SNAPSHOT_META_KEY).map_err(|e| failed(&e))? {
        let stored: SnapshotMeta = decode(&stored).map_err(|e| failed(&e))?;
        if stored.last_log_id > meta.last_log_id {
            return Ok(());
        }
    }
    let mut batch = sled::Batch::default();
    batch.insert(SNAPSHOT_META_KEY, encode(meta).map_err(|e| failed(&e))?);
    batch.insert(SNAPSHOT_DATA_KEY, data);
    disk.snapshot.apply_batch(batch).map_err(|e| failed(&e))?;
    // openraft purges the log behind a snapshot once it has one: the snapshot must be on
    // disk first, or a crash would lose both (see DURABILITY.md).
    disk.sync().map_err(|e| failed(&e))?;
    Ok(())
}

/// The stored snapshot's meta and engine bytes, if any. Blocking.
fn read_snapshot(disk: &Disk) -> Result<Option<(SnapshotMeta, Vec<u8>)>, String> {
    let meta = disk.snapshot.get(SNAPSHOT_META_KEY).map_err(|e| e.to_string())?;
    let data = disk.snapshot.get(SNAPSHOT_DATA_KEY).map_err(|e| e.to_string())?;
    match (meta, data) {
        (Some(meta), Some(data)) => {
            let meta = decode(&meta).map_err(|e| format!("meta: {e}"))?;
            Ok(Some((meta, data.to_vec())))
        }
        (None, None) => Ok(None),
        _ => Err("meta and data are not both present".to_string()),
    }
}
