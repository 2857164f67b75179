//! Storage figures for the metrics: the database's size, the log's and the snapshot's, the
//! committed index, and how long each fsync takes.
//!
//! A [`StorageStats`] shares the node's open database (it is taken from the log store before
//! openraft gets the store), so reading it needs no second `sled::open` (docs/DESIGN.md,
//! trap 3). Its size readers call sled, which blocks: call them from `spawn_blocking`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::metrics::histogram::Histogram;

use super::store::{Disk, SNAPSHOT_DATA_KEY};

/// Upper bounds, in seconds, of the fsync latency histogram: from half a millisecond (a
/// battery-backed or NVMe write cache) to several seconds (a disk in trouble).
pub const FSYNC_BUCKETS_SECONDS: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 5.0];

pub(super) fn sync_histogram() -> Histogram {
    Histogram::new(FSYNC_BUCKETS_SECONDS)
}

/// A read-only handle on one node's database figures.
#[derive(Clone)]
pub struct StorageStats {
    disk: Arc<Disk>,
}

impl StorageStats {
    pub(super) fn new(disk: Arc<Disk>) -> StorageStats {
        StorageStats { disk }
    }

    /// The durations of every `Disk::sync` (flush and fsync before an acknowledgement). The
    /// histogram is shared: register it once.
    pub fn sync_seconds(&self) -> Histogram {
        self.disk.sync_seconds.clone()
    }

    /// The last committed log index this node knows of (0 before any).
    pub fn committed_index(&self) -> u64 {
        self.disk.committed_index.load(Ordering::Relaxed)
    }

    /// Bytes the whole database takes on disk (log, state, snapshot, sled's own overhead).
    /// Blocking.
    pub fn database_bytes(&self) -> u64 {
        self.disk.db_size_on_disk()
    }

    /// Entries in the log and the bytes of their records (what a purge behind a snapshot
    /// frees).
    pub fn log_size(&self) -> (u64, u64) {
        self.disk.wal.size()
    }

    /// Bytes of the stored snapshot of the engine (0 when there is none). Blocking.
    pub fn snapshot_bytes(&self) -> u64 {
        match self.disk.snapshot.get(SNAPSHOT_DATA_KEY) {
            Ok(Some(data)) => data.len() as u64,
            _ => 0,
        }
    }
}
