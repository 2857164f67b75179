//! The Raft log: segment files of checksummed records, written and fsynced by this module.
//!
//! Why not in sled with the rest: an entry must be on disk before it counts toward a commit,
//! so every entry costs a durable write on each node. Through sled that write is a `flush`
//! (sled hands its buffer to its thread pool, whose seven threads are all woken for each job,
//! and waits for it) and then an `fsync`: under load that hand-off, not the disk, costs the
//! most (docs/BENCHMARKS.md, "Second stop"). Here an append is one `pwrite` on openraft's
//! task and the log flusher's `fdatasync` covers every append made before it (group commit).
//!
//! Layout: `<data dir>/log/<first index, 20 digits>.wal`. A segment starts with
//! [`MAGIC`](segment::MAGIC) and holds consecutive entries, each a record
//! `[length u32 LE][CRC-32 u32 LE][postcard(Entry)]` (the CRC is of the encoded entry).
//! Segments follow each other without gaps; a new one is started before a record would cross
//! [`SEGMENT_BYTES`], so a purge can delete whole files and a segment never grows past the space
//! preallocated for it. The next segment's file is preallocated ahead of time (`prealloc`).
//!
//! Opening reads every segment back, checks each record's CRC and that the indexes run on
//! without a gap, and keeps in memory where each entry is (its log id, offset and length).
//! A damaged record at the end of the last segment is a write the crash cut short: nothing
//! after it was ever acknowledged (its fsync had not returned), so the tail is cut off there.
//! A damaged record anywhere else, a gap between segments, or a segment that is not ours is
//! refused with its path: a node never serves from a doubtful log (docs/DESIGN.md, trap 2).
//!
//! Purged entries: `last_purged` lives in the sled database (written and synced before any
//! file is deleted); whole segments at or below it are deleted, at once or at the next open.
//!
//! The parts: `record` (the record format), `segment` (segment files: listing, reading one
//! back), `index` (where each live entry is, rebuilt at open), `prealloc` (the spare segment and
//! the thread that makes it), `committed` (the saved committed id); this module is the log.

mod committed;
mod index;
mod prealloc;
mod record;
mod segment;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use super::store::sync_dir as sync_dir_io;
use super::{Entry, LogId};
use index::{Loc, State};
use prealloc::Spare;
use segment::{MAGIC, SEGMENT_BYTES, SUFFIX, Segment, zero_fill};

/// Why the log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub(super) enum WalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

impl WalError {
    fn io(path: &Path, source: io::Error) -> WalError {
        WalError::Io { path: path.to_path_buf(), source }
    }
    fn damaged(path: &Path, detail: impl Into<String>) -> WalError {
        WalError::Damaged { path: path.to_path_buf(), detail: detail.into() }
    }
}

impl From<WalError> for io::Error {
    fn from(e: WalError) -> io::Error {
        match e {
            WalError::Io { path, source } => {
                io::Error::new(source.kind(), format!("{}: {source}", path.display()))
            }
            damaged => io::Error::other(damaged.to_string()),
        }
    }
}

/// The segment files of one node's log.
pub(super) struct Wal {
    dir: PathBuf,
    /// [`SEGMENT_BYTES`], smaller in tests.
    segment_bytes: u64,
    state: Mutex<State>,
    /// The next segment's file, zero-filled to `segment_bytes` and synced ahead of time.
    spare: Arc<Mutex<Option<Spare>>>,
    /// Asks the preparing thread for a new spare.
    prepare: mpsc::Sender<()>,
    /// [`COMMITTED_FILE`](committed::COMMITTED_FILE), open.
    committed: File,
}

/// What the flusher must sync for the appends it holds.
pub(super) struct PendingSync {
    files: Vec<Arc<File>>,
    dir: Option<PathBuf>,
}

impl PendingSync {
    /// fdatasyncs the files (data and size), then the directory if a segment was created.
    pub(super) fn run(self) -> io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        match self.dir {
            Some(dir) => File::open(&dir)?.sync_all(),
            None => Ok(()),
        }
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`; entries at or below `last_purged` are
    /// dropped (and segments wholly below it deleted: a purge cut short is finished).
    pub(super) fn open(dir: &Path, last_purged: Option<LogId>) -> Result<Wal, WalError> {
        Wal::open_with(dir, last_purged, SEGMENT_BYTES)
    }

    fn open_with(
        dir: &Path,
        last_purged: Option<LogId>,
        segment_bytes: u64,
    ) -> Result<Wal, WalError> {
        create_dir(dir)?;
        let state = State::load(segment::list(dir)?, last_purged.map(|p| p.index))?;
        // The first spare is made now, so that even a new node's first segment is preallocated;
        // later ones by a thread of their own, each as the one before is taken.
        let spare = Arc::new(Mutex::new(Some(prealloc::make_spare(dir, segment_bytes)?)));
        let prepare = prealloc::start_preparing(dir, segment_bytes, spare.clone())?;
        let committed = committed::open(dir)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes,
            state: Mutex::new(state),
            spare,
            prepare,
            committed,
        };
        // Segments wholly purged (a purge cut short, or a log left behind by a snapshot).
        wal.delete_purged(&mut wal.lock())?;
        Ok(wal)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves nothing half-done that a reader could
        // misread (each change is made in memory after its file operation succeeded).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The last entry's log id, if the log holds any.
    pub(super) fn last(&self) -> Option<LogId> {
        let state = self.lock();
        state.locs.back().map(|loc| LogId {
            leader_id: loc.leader_id,
            index: state.first_live + state.locs.len() as u64 - 1,
        })
    }

    /// Live entries and the bytes of their records.
    pub(super) fn size(&self) -> (u64, u64) {
        let state = self.lock();
        (state.locs.len() as u64, state.live_bytes)
    }

    /// Bytes the segment files take.
    pub(super) fn bytes_on_disk(&self) -> u64 {
        let segments: u64 =
            self.lock().segments.iter().map(|s| s.file.metadata().map_or(s.len, |m| m.len())).sum();
        let spare = self.spare.lock().ok().and_then(|s| s.as_ref().map(|_| self.segment_bytes));
        segments + spare.unwrap_or(0)
    }

    /// Writes `entries` (consecutive, following the last entry) at the end of the log. Not
    /// durable until the flusher's next [`Wal::take_pending_sync`] has run.
    pub(super) fn append(&self, entries: &[Entry]) -> Result<(), WalError> {
        let Some(first) = entries.first() else { return Ok(()) };
        let mut buf = Vec::new();
        let mut locs = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let wanted = first.log_id.index + i as u64;
            if entry.log_id.index != wanted {
                return Err(WalError::damaged(
                    &self.dir,
                    format!("append of entry {} where {wanted} was expected", entry.log_id.index),
                ));
            }
            let offset = buf.len();
            let len = record::encode(entry, &mut buf)
                .map_err(|detail| WalError::damaged(&self.dir, detail))?;
            locs.push(Loc { leader_id: entry.log_id.leader_id, offset: offset as u64, len });
        }
        let mut state = self.lock();
        let next = state.first_live + state.locs.len() as u64;
        if !state.locs.is_empty() && first.log_id.index != next {
            return Err(WalError::damaged(
                &self.dir,
                format!("append of entry {} where {next} was expected", first.log_id.index),
            ));
        }
        // An empty log has no segment (see `delete_purged`): its first entry starts one, named
        // after it, wherever the log was before (a snapshot may have moved it on).
        // A segment ends before a record would cross its preallocated end: writing past it
        // would grow the file, which needs new space from the volume (and an inode update in
        // each fdatasync) while the spare, allocated ahead, sits unused. A record larger than
        // a whole segment still goes into a segment of its own, which grows to hold it.
        let roll = state.segments.back().is_none_or(|current| {
            current.len > MAGIC.len() as u64 && current.len + buf.len() as u64 > self.segment_bytes
        });
        if state.locs.is_empty() {
            state.first_live = first.log_id.index;
        }
        if roll {
            if let Some(previous) = state.segments.back() {
                // A segment is durable, whole, before anything is written to the next: a
                // torn write can then only be at the end of the last segment.
                previous.file.sync_data().map_err(|e| WalError::io(&previous.path, e))?;
                let synced = previous.file.clone();
                state.unsynced.retain(|f| !Arc::ptr_eq(f, &synced));
            }
            let segment = self.create_segment(first.log_id.index)?;
            state.segments.push_back(segment);
            state.dir_dirty = true;
        }
        let Some(current) = state.segments.back_mut() else {
            return Err(WalError::damaged(&self.dir, "no segment to append to"));
        };
        let base = current.len;
        current.file.write_all_at(&buf, base).map_err(|e| WalError::io(&current.path, e))?;
        current.len += buf.len() as u64;
        let file = current.file.clone();
        state.live_bytes += buf.len() as u64;
        for mut loc in locs {
            loc.offset += base;
            state.locs.push_back(loc);
        }
        if !state.unsynced.iter().any(|f| Arc::ptr_eq(f, &file)) {
            state.unsynced.push(file);
        }
        Ok(())
    }

    /// What must be synced to make every append so far durable; the caller runs it (outside
    /// the lock) before acknowledging them.
    pub(super) fn take_pending_sync(&self) -> PendingSync {
        let mut state = self.lock();
        let files = std::mem::take(&mut state.unsynced);
        let dir = std::mem::replace(&mut state.dir_dirty, false).then(|| self.dir.clone());
        PendingSync { files, dir }
    }

    /// Reads the live entries `start..end` (`end` None: to the last).
    pub(super) fn read(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, WalError> {
        // Under the lock: which byte ranges of which files. The reads happen after it.
        let mut runs: Vec<(Arc<File>, PathBuf, u64, Vec<Loc>)> = Vec::new();
        {
            let state = self.lock();
            let live_end = state.first_live + state.locs.len() as u64;
            let start = start.max(state.first_live);
            let end = end.map_or(live_end, |e| e.min(live_end));
            if start >= end {
                return Ok(Vec::new());
            }
            let mut seg = segment::position(&state.segments, start);
            for index in start..end {
                while seg + 1 < state.segments.len() && state.segments[seg + 1].first <= index {
                    seg += 1;
                }
                let segment = &state.segments[seg];
                let loc = state.locs[(index - state.first_live) as usize];
                match runs.last_mut() {
                    Some(run) if run.2 == segment.first => run.3.push(loc),
                    _ => runs.push((
                        segment.file.clone(),
                        segment.path.clone(),
                        segment.first,
                        vec![loc],
                    )),
                }
            }
        }
        let mut entries = Vec::new();
        for (file, path, _, locs) in runs {
            let (Some(first), Some(last)) = (locs.first(), locs.last()) else { continue };
            let from = first.offset;
            let to = last.offset + u64::from(last.len);
            let mut bytes = vec![0; (to - from) as usize];
            file.read_exact_at(&mut bytes, from).map_err(|e| WalError::io(&path, e))?;
            for loc in locs {
                let at = (loc.offset - from) as usize;
                let record = &bytes[at..at + loc.len as usize];
                let (entry, _) = record::parse(record).map_err(|detail| {
                    WalError::damaged(&path, format!("at byte {}: {detail}", loc.offset))
                })?;
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Deletes the entries from `index` on (a follower's log that disagrees with its leader),
    /// durably: on return the files no longer hold them. Blocking.
    pub(super) fn truncate(&self, index: u64) -> Result<(), WalError> {
        let mut state = self.lock();
        let live_end = state.first_live + state.locs.len() as u64;
        if index >= live_end {
            return Ok(());
        }
        if index <= state.first_live {
            state.locs.clear();
            state.live_bytes = 0;
            self.delete_purged(&mut state)?;
            return sync_dir(&self.dir);
        }
        let keep = (index - state.first_live) as usize;
        let holder = segment::position(&state.segments, index);
        // The segments after the one holding `index` go whole; so does that one if `index` is
        // its first entry (then the one before it ends just before the cut, and stays whole).
        let first_gone = if state.segments[holder].first == index { holder } else { holder + 1 };
        while state.segments.len() > first_gone {
            if let Some(segment) = state.segments.pop_back() {
                state.unsynced.retain(|f| !Arc::ptr_eq(f, &segment.file));
                remove_file(&segment.path)?;
            }
        }
        if first_gone > holder {
            let cut = state.locs[keep].offset;
            if let Some(current) = state.segments.back_mut() {
                // Zeros, not a shorter file: the segment stays preallocated.
                zero_fill(&current.file, cut, current.len)
                    .and_then(|()| current.file.sync_data())
                    .map_err(|e| WalError::io(&current.path, e))?;
                current.len = cut;
            }
        }
        let dropped: u64 = state.locs.iter().skip(keep).map(|l| u64::from(l.len)).sum();
        state.live_bytes -= dropped;
        state.locs.truncate(keep);
        sync_dir(&self.dir)
    }

    /// Forgets the entries up to `index` (the caller has made `last_purged` durable first)
    /// and deletes the segments that hold nothing else.
    pub(super) fn purge(&self, index: u64) -> Result<(), WalError> {
        let mut state = self.lock();
        let drop = (index + 1).saturating_sub(state.first_live).min(state.locs.len() as u64);
        for _ in 0..drop {
            if let Some(loc) = state.locs.pop_front() {
                state.live_bytes -= u64::from(loc.len);
            }
        }
        state.first_live += drop;
        self.delete_purged(&mut state)
    }

    /// Deletes every segment whose entries all precede the first live one; when no entry is
    /// live, every segment (the next entry starts a new one, named after it).
    fn delete_purged(&self, state: &mut State) -> Result<(), WalError> {
        loop {
            let deletable = match state.segments.get(1) {
                _ if state.locs.is_empty() => !state.segments.is_empty(),
                Some(next) => next.first <= state.first_live,
                None => false,
            };
            if !deletable {
                return Ok(());
            }
            if let Some(segment) = state.segments.pop_front() {
                state.unsynced.retain(|f| !Arc::ptr_eq(f, &segment.file));
                remove_file(&segment.path)?;
            }
        }
    }

    /// Starts the segment for entry `first`: the spare, renamed, if one is ready (the usual
    /// case), else a new file that grows as it is written.
    fn create_segment(&self, first: u64) -> Result<Segment, WalError> {
        let path = self.dir.join(format!("{first:020}{SUFFIX}"));
        let spare = self.spare.lock().ok().and_then(|mut s| s.take());
        // The preparing thread is gone only if the log is being dropped.
        let _ = self.prepare.send(());
        let file = match spare {
            Some(spare) => {
                std::fs::rename(&spare.path, &path).map_err(|e| WalError::io(&path, e))?;
                spare.file
            }
            None => {
                tracing::debug!(file = %path.display(), "no preallocated segment ready");
                create_file(&path)?
            }
        };
        file.write_all_at(MAGIC, 0).map_err(|e| WalError::io(&path, e))?;
        Ok(Segment { first, path, file: Arc::new(file), len: MAGIC.len() as u64 })
    }
}

/// Creates the log's directory if it is missing, durably (its parent is synced).
fn create_dir(dir: &Path) -> Result<(), WalError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        sync_dir_io(parent).map_err(|e| WalError::io(parent, e))?;
    }
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), WalError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WalError::io(path, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    sync_dir_io(dir).map_err(|e| WalError::io(dir, e))
}

/// Creates (or empties) `path` for reading and writing.
fn create_file(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| WalError::io(path, e))
}
