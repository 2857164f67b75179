//! The node's one sled database: opening it, checking it, and making writes durable.
//!
//! The Raft log's entries are in segment files of their own, `<data dir>/log/` (`wal/` says
//! why and how); everything else is in one `sled::Db` (sled locks its directory,
//! docs/DESIGN.md, trap 3), whose trees are:
//!
//! | tree       | key                       | value (postcard)                              |
//! |------------|---------------------------|-----------------------------------------------|
//! | `meta`     | `vote`, `last_purged`, `written`, `format` | see the constants               |
//! | `snapshot` | `meta`, `data`            | `SnapshotMeta`, the engine's snapshot bytes   |
//!
//! [`Disk::sync`] is the only way a sled write becomes durable, and the log's segments are
//! synced by the log flusher (`log_store.rs`); every acknowledgement that Raft relies on waits
//! for one or the other. `DURABILITY.md` beside this file says why it is built this way.
//!
//! Opening refuses, with the path in the message, a database that sled cannot open (or panics
//! on), one written in another storage format, and a log with a hole or a damaged record: a
//! node never serves from a doubtful log (docs/DESIGN.md, trap 2). The repairs it makes are
//! finishing an interrupted purge (segments at or below `last_purged` are deleted) and cutting
//! off a torn last record (a write the crash interrupted, never acknowledged).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::{AnyError, StorageIOError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::log_store::LogStore;
use super::state_machine::StateMachineStore;
use super::wal::{Wal, WalError};
use super::{LogId, StorageError};

/// Version of the on-disk layout above. Bumped when a tree, key or encoding changes; a node
/// refuses a database of another version instead of misreading it. Format 2: a log entry
/// carries a batch of commands (format 1 carried one). Format 3: the log is in segment files
/// (`log/`), not in sled. Format 4: sessions carry their secret and remembered requests
/// their key (engine commands and snapshots encode both).
pub const STORAGE_FORMAT: u32 = 4;

/// The log's directory, in the data directory.
const LOG_DIR: &str = "log";
pub(super) const META_TREE: &str = "meta";
pub(super) const SNAPSHOT_TREE: &str = "snapshot";

/// `meta`: the last saved vote.
pub(super) const VOTE_KEY: &[u8] = b"vote";
/// `meta`: the last purged log id; entries up to it are gone.
pub(super) const LAST_PURGED_KEY: &[u8] = b"last_purged";
/// `meta`: present once a vote, a log entry or a snapshot was ever written (see `is_fresh`).
pub(super) const WRITTEN_KEY: &[u8] = b"written";
/// `meta`: [`STORAGE_FORMAT`], big-endian u32.
const FORMAT_KEY: &[u8] = b"format";
/// `snapshot`: the current snapshot's `SnapshotMeta`.
pub(super) const SNAPSHOT_META_KEY: &[u8] = b"meta";
/// `snapshot`: the current snapshot's engine bytes.
pub(super) const SNAPSHOT_DATA_KEY: &[u8] = b"data";

/// sled's background flusher is off: every write that must survive is synced explicitly (and
/// an unforced background fsync would make the strace proof of that meaningless).
const SLED_BACKGROUND_FLUSH_MS: Option<u64> = None;

/// sled's page cache, in bytes (sled's default is 1 GiB). The node reads back only the log's
/// recent entries (to replicate them) and the snapshot (to send it); everything it serves is
/// in the engine's memory. A small cache keeps a node with 100,000 sessions, whose snapshot is
/// rewritten every few thousand entries, from growing sled's cache towards the default.
const SLED_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Why a node's database could not be opened. Each message names the directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}{}", io_hint(source))]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot open the Raft database in {path}: {source}{}", open_hint(source))]
    Open { path: PathBuf, source: sled::Error },
    #[error("the Raft database in {path} made sled panic while opening ({message}); {REJOIN}")]
    OpenPanicked { path: PathBuf, message: String },
    #[error("cannot write the Raft database in {path} to disk: {source}{}", io_hint(source))]
    Sync { path: PathBuf, source: io::Error },
    #[error(
        "cannot start the thread that fsyncs the Raft log in {path}: {source}{}",
        io_hint(source)
    )]
    Flusher { path: PathBuf, source: io::Error },
    #[error(
        "the Raft database in {path} has storage format {found}; this qlmd reads {expected}: \
         run the release that wrote it, or move the cluster to this release as docs/DEPLOY.md \
         says (Upgrading across a storage format change)"
    )]
    Format { path: PathBuf, found: String, expected: u32 },
    #[error("the Raft database in {path} is inconsistent: {detail}; {REJOIN}")]
    Inconsistent { path: PathBuf, detail: String },
    #[error("cannot read or repair the Raft log: {source}{}", io_hint(source))]
    Log { source: io::Error },
}

impl StoreError {
    /// Whether the data volume failed (an I/O error other than another process's lock): a
    /// disk to look at, not a setting to correct.
    pub fn is_io(&self) -> bool {
        match self {
            StoreError::CreateDir { .. } | StoreError::Sync { .. } | StoreError::Log { .. } => true,
            StoreError::Open { source: sled::Error::Io(e), .. } => !is_lock_error(e),
            _ => false,
        }
    }
}

/// What the admin does about a doubtful database (docs/DESIGN.md, trap 2; openraft issue 1535).
const REJOIN: &str = "remove this node from the cluster (qlm cluster remove), empty its data \
                      directory, and add it back as a new member";

/// Opens (creating if needed) the database in `data_dir` and returns the log store and the
/// state machine, the latter restored from the last snapshot.
pub fn open_stores(
    data_dir: impl AsRef<Path>,
) -> Result<(LogStore, StateMachineStore), StoreError> {
    let disk = Arc::new(Disk::open(data_dir.as_ref())?);
    let state_machine = StateMachineStore::restore(disk.clone())?;
    let path = disk.dir().to_path_buf();
    let log_store = LogStore::new(disk).map_err(|source| StoreError::Flusher { path, source })?;
    Ok((log_store, state_machine))
}

/// The open database, shared by the log store and the state machine.
pub(super) struct Disk {
    dir: PathBuf,
    db: sled::Db,
    /// The Raft log's entries.
    pub(super) wal: Wal,
    pub(super) meta: sled::Tree,
    pub(super) snapshot: sled::Tree,
    /// Held while the stored snapshot is compared and replaced, so that a snapshot built from
    /// an older state never replaces a newer one installed meanwhile.
    pub(super) snapshot_write: Mutex<()>,
    /// `<dir>/db`, sled's one data file, kept open so a sync is one `fsync` and no `open`.
    db_file: File,
    /// Blob files (sled's home for large values) already fsynced: each is synced once.
    synced_blobs: Mutex<BTreeSet<OsString>>,
    /// Whether [`WRITTEN_KEY`] is set, cached.
    written: AtomicBool,
    /// How long each [`Disk::sync`] took (the `qlm_fsync_duration_seconds` metric).
    pub(super) sync_seconds: prometheus_client::metrics::histogram::Histogram,
    /// The last committed index openraft saved (see `LogStore::save_committed`); read by
    /// `/readyz` and the metrics.
    pub(super) committed_index: AtomicU64,
}

impl Disk {
    fn open(dir: &Path) -> Result<Disk, StoreError> {
        let path = dir.to_path_buf();
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::CreateDir { path: path.clone(), source })?;
            // The new directory's entry lives in its parent: make it durable too.
            let parent =
                dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            sync_dir(parent).map_err(|source| StoreError::Sync { path: path.clone(), source })?;
        }
        remove_unfinished_sled_snapshots(dir)
            .map_err(|source| StoreError::Open { path: path.clone(), source: source.into() })?;
        let config = sled::Config::new()
            .path(dir)
            .flush_every_ms(SLED_BACKGROUND_FLUSH_MS)
            .cache_capacity(SLED_CACHE_BYTES);
        // sled 0.34 may panic on a database damaged by a crash; that is a refusal too.
        let db = match catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => db,
            Ok(Err(source)) => return Err(StoreError::Open { path, source }),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "no message".to_string());
                return Err(StoreError::OpenPanicked { path, message });
            }
        };
        let open_err = |source| StoreError::Open { path: path.clone(), source };
        let meta = db.open_tree(META_TREE).map_err(open_err)?;
        let snapshot = db.open_tree(SNAPSHOT_TREE).map_err(open_err)?;
        let db_file = File::open(dir.join("db"))
            .map_err(|e| StoreError::Open { path: path.clone(), source: e.into() })?;
        let written = meta.contains_key(WRITTEN_KEY).map_err(open_err)?;
        check_format(&path, &meta)?;
        let inconsistent = |detail: String| StoreError::Inconsistent { path: path.clone(), detail };
        let last_purged: Option<LogId> = match meta.get(LAST_PURGED_KEY).map_err(open_err)? {
            Some(bytes) => {
                Some(decode(&bytes).map_err(|e| inconsistent(format!("last purged: {e}")))?)
            }
            None => None,
        };
        if let Some(bytes) = meta.get(VOTE_KEY).map_err(open_err)? {
            decode::<super::Vote>(&bytes).map_err(|e| inconsistent(format!("vote: {e}")))?;
        }
        let wal = Wal::open(&dir.join(LOG_DIR), last_purged).map_err(|e| match e {
            WalError::Damaged { .. } => inconsistent(e.to_string()),
            WalError::Io { .. } => StoreError::Log { source: e.into() },
        })?;
        let committed = wal.saved_committed();
        let disk = Disk {
            dir: path.clone(),
            db,
            wal,
            meta,
            snapshot,
            snapshot_write: Mutex::new(()),
            db_file,
            synced_blobs: Mutex::new(BTreeSet::new()),
            written: AtomicBool::new(written),
            sync_seconds: super::stats::sync_histogram(),
            committed_index: AtomicU64::new(committed.map_or(0, |c| c.index)),
        };
        let sync_err = |source| StoreError::Sync { path: path.clone(), source };
        disk.sync().map_err(sync_err)?;
        // sled created `db`, `conf` and `blobs/` here: make their directory entries durable.
        sync_dir(dir).map_err(sync_err)?;
        tracing::info!(path = %dir.display(), fresh = !disk.was_written(), "opened the Raft database");
        Ok(disk)
    }

    /// Makes every write made so far durable. Blocking: call it from `spawn_blocking`.
    pub(super) fn sync(&self) -> io::Result<()> {
        // sled's flush writes its buffers to `db` but ends with sync_file_range, which is not
        // an fsync: it neither flushes the drive's cache nor the file's metadata (docs/DESIGN.md,
        // trap 1). A crash or power cut could then lose a vote or entry we acknowledged, and Raft
        // would be unsafe (a node could vote twice in a term, or a committed entry vanish from
        // a majority). So: flush, fsync the blobs sled wrote, then fsync `db` itself.
        let started = std::time::Instant::now();
        self.db.flush().map_err(io::Error::from)?;
        self.sync_new_blobs()?;
        let synced = self.db_file.sync_all();
        self.sync_seconds.observe(started.elapsed().as_secs_f64());
        synced
    }

    /// What the database and the log take on disk (sled's part 0 if it cannot tell).
    pub(super) fn db_size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.wal.bytes_on_disk()
    }

    /// fsyncs blob files not yet synced, and the `blobs` directory if any is new. sled stores
    /// a value (or a tree node) above about 128 KiB as its own file and never fsyncs it.
    fn sync_new_blobs(&self) -> io::Result<()> {
        let blobs_dir = self.dir.join("blobs");
        let listing = match std::fs::read_dir(&blobs_dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self.synced_blobs.lock().map_err(|_| io::Error::other("poisoned"))?;
        let mut present = BTreeSet::new();
        let mut any_new = false;
        for item in listing {
            let name = item?.file_name();
            if !synced.contains(&name) {
                match File::open(blobs_dir.join(&name)).and_then(|f| f.sync_all()) {
                    Ok(()) => any_new = true,
                    // sled removed it meanwhile: nothing to keep.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            }
            present.insert(name);
        }
        *synced = present;
        if any_new { sync_dir(&blobs_dir) } else { Ok(()) }
    }

    /// The data directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records that this store holds state (before the write that makes it so).
    pub(super) fn mark_written(&self) -> sled::Result<()> {
        if !self.written.load(Ordering::Acquire) {
            self.meta.insert(WRITTEN_KEY, &[1u8])?;
            self.written.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Whether a vote, a log entry or a snapshot was ever written here.
    pub(super) fn was_written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    /// A unique, increasing number (survives restarts): for snapshot ids.
    pub(super) fn unique_id(&self) -> sled::Result<u64> {
        self.db.generate_id()
    }
}

/// Refuses a database of another storage format; marks a new one with this format.
fn check_format(path: &Path, meta: &sled::Tree) -> Result<(), StoreError> {
    let path = path.to_path_buf();
    let stored =
        meta.get(FORMAT_KEY).map_err(|source| StoreError::Open { path: path.clone(), source })?;
    match stored {
        Some(bytes) if bytes.as_ref() == STORAGE_FORMAT.to_be_bytes() => Ok(()),
        Some(bytes) => Err(StoreError::Format {
            path,
            found: <[u8; 4]>::try_from(bytes.as_ref()).map_or_else(
                |_| format!("{:?}", bytes.as_ref()),
                |b| u32::from_be_bytes(b).to_string(),
            ),
            expected: STORAGE_FORMAT,
        }),
        None if meta.is_empty() => meta
            .insert(FORMAT_KEY, &STORAGE_FORMAT.to_be_bytes())
            .map(|_| ())
            .map_err(|source| StoreError::Open { path, source }),
        None => Err(StoreError::Inconsistent {
            path,
            detail: "it holds data but no storage format".to_string(),
        }),
    }
}

/// What the admin should know about a failed open, after sled's own message: a full volume
/// and a locked directory have causes of their own; anything else needs nothing added.
fn open_hint(source: &sled::Error) -> &'static str {
    match source {
        sled::Error::Io(e) if is_lock_error(e) => " (another qlmd is using this data directory)",
        sled::Error::Io(e) => io_hint(e),
        _ => "",
    }
}

/// Whether sled refused to open because another process holds the directory's lock (sled
/// says so only in its message).
fn is_lock_error(e: &io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// What follows an I/O error's own message: the remedy when the volume is full.
fn io_hint(e: &io::Error) -> &'static str {
    if is_no_space(e) {
        " (the data volume is full: free space on it, then start qlmd again)"
    } else {
        ""
    }
}

/// Whether an I/O error says the volume has no space (or no quota) left.
pub fn is_no_space(e: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// Deletes sled's snapshot files that were never finished. sled writes its snapshot to
/// `snap.<lsn>.generating`, syncs it and only then renames it, so such a file is never the
/// database's state; but sled 0.34 reads every `snap.*` file at open and refuses a partial one
/// as corrupted. A write that failed (a full volume) leaves one behind, and without this every
/// later start would fail until someone deleted it by hand.
fn remove_unfinished_sled_snapshots(dir: &Path) -> io::Result<()> {
    let mut removed = false;
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %item.path().display(),
                "removing sled's unfinished snapshot file (a write to it failed before it was complete)");
            std::fs::remove_file(item.path())?;
            removed = true;
        }
    }
    if removed { sync_dir(dir) } else { Ok(()) }
}

/// fsyncs a directory, so that the entries created in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Encodes a stored value. postcard: compact, deterministic, and already what the engine's
/// snapshots use; openraft's entries and metadata round-trip through it (tested).
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

/// Decodes a stored value.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Runs blocking sled and fsync work off the async threads (docs/DESIGN.md, trap 4).
pub(super) async fn blocking<T, F>(work: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageIOError::<u64>::write(AnyError::new(&e)))?
}
