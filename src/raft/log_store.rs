//! The Raft log and the vote: openraft's `RaftLogStorage` and `RaftLogReader`.
//!
//! Entries are in the log's segment files (`wal/`), the vote and the log's bookkeeping in
//! sled (`store.rs`). A vote is written on a blocking thread and returned only after
//! [`Disk::sync`]. An append is written to its segment at once, on openraft's task (one
//! `pwrite`: the entries can be read back and replicated right away), and its flush callback
//! goes to the store's flusher thread, which makes it durable (`fdatasync`) before it tells
//! openraft: a group commit. The flusher takes every callback that arrived while the previous
//! sync ran and covers them all with one, in arrival order, so under load many appends share
//! a sync while a lone append still waits for exactly one. openraft counts an entry toward the
//! commit only once its callback reports it flushed, so "acknowledged = on a majority's disk"
//! holds unchanged. openraft issues the writes one at a time (it awaits each), which keeps
//! them in order, and the segments are written in order, so after a crash the log holds a
//! prefix of what was written (a torn last record is cut off at the next open).
//!
//! Purge writes and syncs `last_purged` before it deletes segments, so a purge cut short
//! leaves entries that are known to be purged (the next open deletes them), never a hole.
//!
//! The reader is a clone of the store: the log's state is behind a lock, its reads are
//! positioned (`pread`), so several tasks may read while openraft appends.
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};

use super::store::{Disk, LAST_PURGED_KEY, VOTE_KEY, blocking, decode, encode};
use super::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The Raft log and vote of one node. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct LogStore {
    disk: Arc<Disk>,
    /// Append callbacks waiting for the flusher's next fsync.
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    pub(super) fn new(disk: Arc<Disk>) -> io::Result<LogStore> {
        let (flusher, pending) = mpsc::channel();
        // A weak handle: an idle flusher must not keep the database (and sled's lock on its
        // directory) open once the stores are dropped.
        let flusher_disk = Arc::downgrade(&disk);
        std::thread::Builder::new()
            .name("qlm-log-flusher".to_string())
            .spawn(move || flush_appends(&flusher_disk, &pending))?;
        Ok(LogStore { disk, flusher })
    }

    /// True when this store never held a vote, a log entry or a snapshot: the node has never
    /// been part of a cluster, so bootstrap may initialize it. A node that was once a member
    /// is never fresh again, even with its log purged.
    pub fn is_fresh(&self) -> bool {
        !self.disk.was_written()
    }

    /// A handle on this node's storage figures (sizes, fsync latency) for the metrics.
    pub fn stats(&self) -> super::StorageStats {
        super::StorageStats::new(self.disk.clone())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((start, end)) = index_range(&range) else {
            return Ok(Vec::new());
        };
        // Inline, not on the blocking pool: replication reads what was just appended, from the
        // page cache, and a hop to another thread for each AppendEntries costs more than that.
        self.disk
            .wal
            .read(start, end)
            .map_err(|e| StorageIOError::read_logs(&io::Error::from(e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let disk = self.disk.clone();
        blocking(move || {
            let last_purged_log_id = read_meta::<LogId>(&disk, LAST_PURGED_KEY)
                .map_err(|e| StorageIOError::read_logs(AnyError::error(e)))?;
            let last_log_id = disk.wal.last().or(last_purged_log_id);
            Ok(LogState { last_purged_log_id, last_log_id })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let value = encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let disk = self.disk.clone();
        blocking(move || {
            disk.mark_written().map_err(|e| StorageIOError::write_vote(&e))?;
            disk.meta.insert(VOTE_KEY, value).map_err(|e| StorageIOError::write_vote(&e))?;
            // The vote must be on disk before we answer: a node that forgot its vote could
            // vote twice in one term after a crash (see DURABILITY.md).
            disk.sync().map_err(|e| StorageIOError::write_vote(&e))?;
            Ok(())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let disk = self.disk.clone();
        blocking(move || {
            let vote = read_meta(&disk, VOTE_KEY)
                .map_err(|e| StorageIOError::read_vote(AnyError::error(e)))?;
            Ok(vote)
        })
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.disk.committed_index.store(committed.map_or(0, |c| c.index), Ordering::Relaxed);
        // No fsync, no thread hop: one positioned write (see `Wal::save_committed`).
        self.disk
            .wal
            .save_committed(committed)
            .map_err(|e| StorageIOError::write(&io::Error::from(e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.disk.wal.saved_committed())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if !self.disk.was_written() {
            // Once in a node's life: the mark that it holds state is made durable before its
            // first entry (a node that lost it could bootstrap a second cluster).
            let disk = self.disk.clone();
            let marked = blocking(move || {
                disk.mark_written().map_err(|e| StorageIOError::write_logs(&e))?;
                disk.sync().map_err(|e| StorageIOError::write_logs(&e))?;
                Ok(())
            })
            .await;
            if let Err(e) = marked {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                return Err(e);
            }
        }
        if let Err(e) = self.disk.wal.append(&entries) {
            let e = io::Error::from(e);
            callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(StorageIOError::write_logs(&e).into());
        }
        // Durable, and reported flushed, at the flusher's next sync.
        if let Err(mpsc::SendError(callback)) = self.flusher.send(callback) {
            let gone = io::Error::other("the log flusher thread has stopped");
            let e = StorageIOError::write_logs(&gone);
            callback.log_io_completed(Err(gone));
            return Err(e.into());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let disk = self.disk.clone();
        blocking(move || {
            disk.wal
                .truncate(log_id.index)
                .map_err(|e| StorageIOError::write_logs(&io::Error::from(e)).into())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let value = encode(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        let disk = self.disk.clone();
        blocking(move || {
            // First the mark, durably, then the deletes: a purge cut short leaves no hole.
            disk.meta.insert(LAST_PURGED_KEY, value).map_err(|e| StorageIOError::write_logs(&e))?;
            disk.sync().map_err(|e| StorageIOError::write_logs(&e))?;
            disk.wal
                .purge(log_id.index)
                .map_err(|e| StorageIOError::write_logs(&io::Error::from(e)).into())
        })
        .await
    }
}

/// The flusher thread: waits for an append's callback, takes every other one already waiting,
/// syncs what the appends wrote (one `fdatasync` of the current segment, usually), and reports
/// each in arrival order. Ends when every `LogStore` clone (every sender) is gone.
fn flush_appends(disk: &Weak<Disk>, pending: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = pending.recv() {
        let mut callbacks = vec![first];
        callbacks.extend(pending.try_iter());
        let synced = match disk.upgrade() {
            Some(disk) => {
                let started = std::time::Instant::now();
                let synced = disk.wal.take_pending_sync().run();
                disk.sync_seconds.observe(started.elapsed().as_secs_f64());
                synced
            }
            None => Err(io::Error::other("the Raft database was closed before its fsync")),
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, entries = callbacks.len(), "cannot fsync the Raft log");
        }
        for callback in callbacks {
            let result = match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            callback.log_io_completed(result);
        }
    }
}

/// Reads and decodes one `meta` value.
fn read_meta<T: serde::de::DeserializeOwned>(disk: &Disk, key: &[u8]) -> Result<Option<T>, String> {
    match disk.meta.get(key).map_err(|e| e.to_string())? {
        Some(bytes) => decode(&bytes).map(Some).map_err(|e| format!("{key:?}: {e}")),
        None => Ok(None),
    }
}

/// A range of log indexes as `start..end` (`end` None: to the last entry), or None when empty.
fn index_range(range: &impl RangeBounds<u64>) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.checked_add(1),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if end <= start => None,
        _ => Some((start, end)),
    }
}

#[cfg(test)]
mod tests {
    use super::index_range;

    #[test]
    fn index_ranges_cover_what_they_say() {
        assert_eq!(index_range(&(3..7)), Some((3, Some(7))));
        assert_eq!(index_range(&(3..=7)), Some((3, Some(8))));
        assert_eq!(index_range(&(3..)), Some((3, None)));
        assert_eq!(index_range(&(..)), Some((0, None)));
        assert_eq!(index_range(&(5..5)), None);
        let (start, end) = (6, 4);
        assert_eq!(index_range(&(start..end)), None);
        assert_eq!(index_range(&(0..=u64::MAX)), Some((0, None)));
    }
}
