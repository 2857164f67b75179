//! The Raft log: segment files of checksummed records, written and fsynced by this module.
//!
//! Why not in sled with the rest: an entry must be on disk before it counts toward a commit,
//! so every entry costs a durable write on each node. Through sled that write is a `flush`
//! (sled hands its buffer to its thread pool, whose seven threads are all woken for each job,
//! and waits for it) and then an `fsync`: under load that hand-off, not the disk, was a fifth
//! of the cluster's CPU (docs/BENCHMARKS.md). Here an append is one `pwrite` on openraft's
//! task and the log flusher's `fdatasync` covers every append made before it (group commit).
//!
//! Layout: `<data dir>/log/<first index, 20 digits>.wal`. A segment starts with [`MAGIC`] and
//! holds consecutive entries, each a record `[length u32 LE][CRC-32 u32 LE][postcard(Entry)]`
//! (the CRC is of the encoded entry). Segments follow each other without gaps; a new one is
//! started once the current one passes [`SEGMENT_BYTES`], so a purge can delete whole files.
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

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use openraft::CommittedLeaderId;

use super::store::{decode, sync_dir as sync_dir_io};
use super::{Entry, LogId};

/// The first bytes of every segment: what it is, and the record format's version.
pub(super) const MAGIC: &[u8; 8] = b"QLMWAL01";
/// A segment is closed, and the next one started, once it holds this many bytes; it is also
/// the size a segment is preallocated to.
pub(super) const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// The file that holds the last committed log id openraft saved (advisory: see
/// [`Wal::save_committed`]).
const COMMITTED_FILE: &str = "committed";
const COMMITTED_MAGIC: &[u8; 4] = b"QLMC";
/// File name suffix of a preallocated segment not yet in use.
const SPARE_SUFFIX: &str = ".spare";
/// Length and CRC before each record's bytes.
const HEADER_BYTES: usize = 8;
/// The largest record accepted when reading (an entry holds at most a batch of commands; a
/// length beyond this is damage, not data).
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;
/// File name suffix of a segment.
const SUFFIX: &str = ".wal";

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

/// One segment file.
struct Segment {
    /// Index of its first entry (its name), whether or not that entry is still live.
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes written (the offset of the next record).
    len: u64,
}

/// Where a live entry is.
#[derive(Clone, Copy)]
struct Loc {
    leader_id: CommittedLeaderId<u64>,
    offset: u64,
    len: u32,
}

struct State {
    /// Oldest first; the last one is appended to. Empty when the log holds nothing.
    segments: VecDeque<Segment>,
    /// The live entries: `locs[i]` is entry `first_live + i`.
    locs: VecDeque<Loc>,
    first_live: u64,
    /// Bytes of the live entries' records (for the metrics).
    live_bytes: u64,
    /// Files written (or created) since the flusher last synced: their data must reach the
    /// disk before the appends waiting on the flusher are acknowledged.
    unsynced: Vec<Arc<File>>,
    /// A segment file was created since the last sync: the directory must be synced too.
    dir_dirty: bool,
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
    /// [`COMMITTED_FILE`], open.
    committed: File,
}

/// A preallocated file, ready to become the next segment.
///
/// Why preallocate: `fdatasync` of a write past the end of a file must also write the inode
/// (its new size), a second synchronous I/O; a write into space already written and synced
/// changes no metadata, and its sync is the data alone (on this project's test machine: about
/// 155 instead of 265 microseconds). Zeros, not `fallocate`: extents that `fallocate` leaves
/// unwritten must be converted on the first write, which is a metadata change again.
struct Spare {
    path: PathBuf,
    file: File,
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
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
            let parent = dir.parent().unwrap_or(Path::new("."));
            sync_dir_io(parent).map_err(|e| WalError::io(parent, e))?;
        }
        let mut names = Vec::new();
        for item in std::fs::read_dir(dir).map_err(|e| WalError::io(dir, e))? {
            let item = item.map_err(|e| WalError::io(dir, e))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name == COMMITTED_FILE {
                continue;
            }
            if name.ends_with(SPARE_SUFFIX) {
                // A spare of an earlier run (never in use): a new one is made below.
                remove_file(&item.path())?;
                continue;
            }
            match name.strip_suffix(SUFFIX).and_then(|n| n.parse::<u64>().ok()) {
                Some(first) => names.push((first, item.path())),
                None => tracing::warn!(file = %item.path().display(),
                    "not a log segment; left alone"),
            }
        }
        names.sort();
        let purged = last_purged.map(|p| p.index);
        let mut state = State {
            segments: VecDeque::new(),
            locs: VecDeque::new(),
            first_live: purged.map_or(0, |p| p + 1),
            live_bytes: 0,
            unsynced: Vec::new(),
            dir_dirty: false,
        };
        let count = names.len();
        // The index the next segment must start at (None before the first segment).
        let mut expected: Option<u64> = None;
        for (position, (first, path)) in names.into_iter().enumerate() {
            let is_last = position + 1 == count;
            if let Some(wanted) = expected
                && wanted != first
            {
                return Err(WalError::damaged(
                    &path,
                    format!(
                        "the log has a hole: this segment starts at entry {first} where {wanted} \
                         was expected"
                    ),
                ));
            }
            let Some((segment, entries)) = read_segment(first, &path, is_last)? else {
                continue;
            };
            expected = Some(first + entries.len() as u64);
            for (offset, loc) in entries.into_iter().enumerate() {
                let index = first + offset as u64;
                if purged.is_some_and(|p| index <= p) {
                    continue;
                }
                if state.locs.is_empty() {
                    if let Some(p) = purged
                        && index != p + 1
                    {
                        return Err(WalError::damaged(
                            &segment.path,
                            format!(
                                "the log has a hole: the first entry after the purged ones (up \
                                 to {p}) is {index}"
                            ),
                        ));
                    }
                    state.first_live = index;
                }
                state.live_bytes += u64::from(loc.len);
                state.locs.push_back(loc);
            }
            state.segments.push_back(segment);
        }
        // The first spare is made now, so that even a new node's first segment is preallocated;
        // later ones by a thread of their own, each as the one before is taken.
        let spare = Arc::new(Mutex::new(Some(make_spare(dir, segment_bytes)?)));
        let (prepare, requests) = mpsc::channel();
        let (spare_slot, spare_dir) = (spare.clone(), dir.to_path_buf());
        std::thread::Builder::new()
            .name("qlm-log-prepare".to_string())
            .spawn(move || prepare_spares(&spare_dir, segment_bytes, &spare_slot, &requests))
            .map_err(|e| WalError::io(dir, e))?;
        let committed_path = dir.join(COMMITTED_FILE);
        let committed = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&committed_path)
            .map_err(|e| WalError::io(&committed_path, e))?;
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

    /// Records the last committed log id openraft saved: one small positioned write, no sync.
    /// It is advisory (a lost or older one only makes a restarted node re-apply entries later,
    /// when the leader says they are committed), so it needs no fsync of its own: it reaches
    /// the page cache at once (so it survives a killed process) and the disk with the kernel's
    /// writeback.
    pub(super) fn save_committed(&self, committed: Option<LogId>) -> Result<(), WalError> {
        let payload = postcard::to_stdvec(&committed)
            .map_err(|e| WalError::damaged(&self.dir, format!("encoding the committed id: {e}")))?;
        let mut record = Vec::with_capacity(12 + payload.len());
        record.extend_from_slice(COMMITTED_MAGIC);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let path = self.dir.join(COMMITTED_FILE);
        self.committed.write_all_at(&record, 0).map_err(|e| WalError::io(&path, e))
    }

    /// The committed log id last saved, if it reads back whole (None otherwise: advisory).
    pub(super) fn saved_committed(&self) -> Option<LogId> {
        let mut header = [0u8; 12];
        self.committed.read_exact_at(&mut header, 0).ok()?;
        if &header[..4] != COMMITTED_MAGIC {
            return None;
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let mut payload = vec![0u8; len.min(256)];
        self.committed.read_exact_at(&mut payload, 12).ok()?;
        if crc32fast::hash(&payload) != crc {
            return None;
        }
        let committed = decode::<Option<LogId>>(&payload).ok().flatten()?;
        // The id and the entries are in different files: after a power cut the id may have
        // reached the disk and the entries it covers not. Beyond the log, it is no use.
        let state = self.lock();
        (committed.index < state.first_live + state.locs.len() as u64).then_some(committed)
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
            buf.extend_from_slice(&[0; HEADER_BYTES]);
            postcard::to_io(entry, &mut buf)
                .map_err(|e| WalError::damaged(&self.dir, format!("encoding an entry: {e}")))?;
            let len = buf.len() - offset - HEADER_BYTES;
            let crc = crc32fast::hash(&buf[offset + HEADER_BYTES..]);
            let len32 = u32::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_RECORD_BYTES)
                .ok_or_else(|| WalError::damaged(&self.dir, format!("an entry of {len} bytes")))?;
            buf[offset..offset + 4].copy_from_slice(&len32.to_le_bytes());
            buf[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
            locs.push(Loc {
                leader_id: entry.log_id.leader_id,
                offset: offset as u64,
                len: (len + HEADER_BYTES) as u32,
            });
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
        let roll = state.segments.back().is_none_or(|current| current.len >= self.segment_bytes);
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
            let mut seg = segment_position(&state.segments, start);
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
                let (entry, _) = parse_record(record).map_err(|detail| {
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
        let holder = segment_position(&state.segments, index);
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

/// The preparing thread: makes a spare each time one is asked for and none is ready. Ends
/// when the log is dropped.
fn prepare_spares(
    dir: &Path,
    segment_bytes: u64,
    slot: &Mutex<Option<Spare>>,
    requests: &mpsc::Receiver<()>,
) {
    while requests.recv().is_ok() {
        if slot.lock().map_or(true, |s| s.is_some()) {
            continue;
        }
        match make_spare(dir, segment_bytes) {
            Ok(spare) => {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(spare);
                }
            }
            Err(e) => tracing::warn!(error = %e,
                "cannot preallocate the next log segment (it will grow as it is written)"),
        }
    }
}

/// A new spare: `segment_bytes` of zeros, synced (data and size).
fn make_spare(dir: &Path, segment_bytes: u64) -> Result<Spare, WalError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name =
        format!("{}-{}{SPARE_SUFFIX}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let path = dir.join(name);
    let file = create_file(&path)?;
    zero_fill(&file, 0, segment_bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| WalError::io(&path, e))?;
    Ok(Spare { path, file })
}

/// Writes zeros over `from..to` of `file`.
fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 1024 * 1024;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from) as usize)];
    let mut at = from;
    while at < to {
        let n = zeros.len().min((to - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The position in `segments` of the one holding `index` (the last that starts at or before it).
fn segment_position(segments: &VecDeque<Segment>, index: u64) -> usize {
    segments.partition_point(|s| s.first <= index).saturating_sub(1)
}

/// Reads one segment: its records' locations, checked. The records end at the first all-zero
/// header (the rest is preallocated space) or at the end of the file. In the last segment, a
/// damaged record is a write the crash cut short: it and everything after it are zeroed (and
/// synced); damage anywhere else is refused. None: a last segment whose creation was cut short
/// (no magic yet), now deleted.
fn read_segment(
    first: u64,
    path: &Path,
    is_last: bool,
) -> Result<Option<(Segment, Vec<Loc>)>, WalError> {
    let bytes = std::fs::read(path).map_err(|e| WalError::io(path, e))?;
    let magic_len = MAGIC.len();
    let head = &bytes[..magic_len.min(bytes.len())];
    if is_last && (MAGIC.starts_with(head) || head.iter().all(|b| *b == 0)) && head != MAGIC {
        // Created (or renamed from a spare), and the crash came before its magic was written.
        remove_file(path)?;
        return Ok(None);
    }
    if head != MAGIC {
        return Err(WalError::damaged(
            path,
            "not a QuorumLM log segment (its first bytes are wrong)",
        ));
    }
    let mut locs = Vec::new();
    let mut at = magic_len;
    let mut torn = None;
    while at < bytes.len() {
        let index = first + locs.len() as u64;
        let rest = &bytes[at..];
        if rest[..HEADER_BYTES.min(rest.len())].iter().all(|b| *b == 0) {
            break;
        }
        match parse_record(rest) {
            Ok((entry, len)) if entry.log_id.index == index => {
                locs.push(Loc {
                    leader_id: entry.log_id.leader_id,
                    offset: at as u64,
                    len: len as u32,
                });
                at += len;
            }
            Ok((entry, _)) => {
                torn = Some(format!("entry {} where {index} was expected", entry.log_id.index));
                break;
            }
            Err(detail) => {
                torn = Some(detail);
                break;
            }
        }
    }
    let garbage_after = bytes[at..].iter().any(|b| *b != 0);
    if !is_last && (torn.is_some() || garbage_after) {
        let detail = torn.unwrap_or_else(|| "bytes after its last record".to_string());
        let index = first + locs.len() as u64;
        return Err(WalError::damaged(path, format!("at byte {at} (entry {index}): {detail}")));
    }
    let file =
        OpenOptions::new().read(true).write(true).open(path).map_err(|e| WalError::io(path, e))?;
    if garbage_after {
        let reason = torn.unwrap_or_else(|| "bytes after the last record".to_string());
        tracing::warn!(file = %path.display(), offset = at, reason = %reason,
            "zeroing the log's torn tail (a write the crash interrupted; never acknowledged)");
        zero_fill(&file, at as u64, bytes.len() as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| WalError::io(path, e))?;
    }
    let segment = Segment { first, path: path.to_path_buf(), file: Arc::new(file), len: at as u64 };
    Ok(Some((segment, locs)))
}

/// Decodes the record at the start of `bytes`: the entry and the record's whole length.
fn parse_record(bytes: &[u8]) -> Result<(Entry, usize), String> {
    let header = bytes.get(..HEADER_BYTES).ok_or("a record header cut short")?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES {
        return Err(format!("a record length of {len} bytes"));
    }
    let end = HEADER_BYTES + len as usize;
    let payload = bytes.get(HEADER_BYTES..end).ok_or("a record cut short")?;
    if crc32fast::hash(payload) != crc {
        return Err("a record's checksum does not match".to_string());
    }
    let entry: Entry = decode(payload).map_err(|e| format!("a record does not decode: {e}"))?;
    Ok((entry, end))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogEntry;
    use openraft::EntryPayload;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(LogEntry {
                commands: Vec::new(),
                stamp: qlm_license::Timestamp(index),
            }),
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range.map(|i| entry(i, 1)).collect()
    }

    fn purged(index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(1, 1), index))
    }

    /// Segments so small that each append after the first starts a new one.
    const SMALL: u64 = 40;

    fn segment_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(SUFFIX))
            .collect();
        names.sort();
        names
    }

    /// A log in `<tmp>/log` with `batches` appends of `per` entries each, from entry 1.
    fn log_of(tmp: &tempfile::TempDir, batches: u64, per: u64) -> (PathBuf, Wal) {
        let dir = tmp.path().join("log");
        let wal = Wal::open_with(&dir, None, SMALL).expect("open");
        for i in 0..batches {
            append_synced(&wal, &entries(i * per + 1..=i * per + per));
        }
        (dir, wal)
    }

    fn append_synced(wal: &Wal, batch: &[Entry]) {
        wal.append(batch).expect("append");
        wal.take_pending_sync().run().expect("sync");
    }

    #[test]
    fn entries_read_back_across_segments_and_after_reopening() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        let wal = Wal::open_with(&dir, None, SMALL).expect("open");
        assert_eq!(wal.last(), None);
        for i in 0..10 {
            append_synced(&wal, &entries(i * 3..=i * 3 + 2));
        }
        assert!(segment_names(&dir).len() > 3, "{:?}", segment_names(&dir));
        assert_eq!(wal.read(0, None).expect("read"), entries(0..=29));
        assert_eq!(wal.read(7, Some(19)).expect("read"), entries(7..=18));
        assert_eq!(wal.read(40, None).expect("read"), Vec::new());
        assert_eq!(wal.last().map(|l| l.index), Some(29));
        assert_eq!(wal.size().0, 30);
        drop(wal);
        let wal = Wal::open_with(&dir, None, SMALL).expect("reopen");
        assert_eq!(wal.read(0, None).expect("read"), entries(0..=29));
        append_synced(&wal, &entries(30..=31));
        assert_eq!(wal.read(28, None).expect("read"), entries(28..=31));
    }

    #[test]
    fn the_committed_id_reads_back_after_reopening() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open_with(tmp.path(), None, SMALL).expect("open");
        assert_eq!(wal.saved_committed(), None);
        append_synced(&wal, &entries(1..=12));
        wal.save_committed(purged(7)).expect("save");
        wal.save_committed(purged(12)).expect("save");
        drop(wal);
        let wal = Wal::open_with(tmp.path(), None, SMALL).expect("reopen");
        assert_eq!(wal.saved_committed(), purged(12));
        // One beyond the log (its entries lost, the id not): no use.
        wal.save_committed(purged(13)).expect("save");
        assert_eq!(wal.saved_committed(), None);
        // Damaged: read as none (advisory), never an error.
        std::fs::write(tmp.path().join(COMMITTED_FILE), b"QLMC\x05\0\0\0garbage").expect("write");
        assert_eq!(wal.saved_committed(), None);
    }

    #[test]
    fn an_append_out_of_order_is_refused_and_changes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open_with(tmp.path(), None, SMALL).expect("open");
        append_synced(&wal, &entries(1..=3));
        assert!(wal.append(&entries(5..=6)).is_err());
        assert!(wal.append(&[entry(4, 1), entry(6, 1)]).is_err());
        assert_eq!(wal.read(0, None).expect("read"), entries(1..=3));
    }

    #[test]
    fn a_purge_deletes_whole_segments_and_the_next_entry_may_jump_ahead() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, wal) = log_of(&tmp, 8, 2);
        let before = segment_names(&dir).len();
        wal.purge(9).expect("purge");
        let after = segment_names(&dir);
        assert!(after.len() < before, "{after:?}");
        assert_eq!(wal.read(0, None).expect("read"), entries(10..=16));
        drop(wal);
        let wal = Wal::open_with(&dir, purged(9), SMALL).expect("reopen");
        assert_eq!(wal.read(0, None).expect("read"), entries(10..=16));
        // A snapshot far ahead: everything goes, and the log goes on from after it.
        wal.purge(100).expect("purge");
        assert!(segment_names(&dir).is_empty());
        assert_eq!(wal.last(), None);
        append_synced(&wal, &entries(101..=102));
        drop(wal);
        let wal = Wal::open_with(&dir, purged(100), SMALL).expect("reopen");
        assert_eq!(wal.read(0, None).expect("read"), entries(101..=102));
    }

    #[test]
    fn a_truncate_removes_the_tail_across_segments_durably() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, wal) = log_of(&tmp, 6, 3);
        // Find a segment boundary and cut exactly there, then inside a segment.
        let boundary: u64 = segment_names(&dir)[2].trim_end_matches(SUFFIX).parse().expect("name");
        wal.truncate(boundary).expect("truncate");
        assert_eq!(wal.last().map(|l| l.index), Some(boundary - 1));
        wal.truncate(boundary - 1).expect("truncate");
        assert_eq!(wal.read(0, None).expect("read"), entries(1..=boundary - 2));
        // The follower then takes the leader's entries (another term) from the cut on.
        let replacement: Vec<Entry> = (boundary - 1..=boundary + 3).map(|i| entry(i, 2)).collect();
        append_synced(&wal, &replacement);
        drop(wal);
        let wal = Wal::open_with(&dir, None, SMALL).expect("reopen");
        let mut expected = entries(1..=boundary - 2);
        expected.extend(replacement);
        assert_eq!(wal.read(0, None).expect("read"), expected);
        wal.truncate(0).expect("truncate everything");
        assert_eq!(wal.last(), None);
        assert!(segment_names(&dir).is_empty());
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_damage_before_it_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, wal) = log_of(&tmp, 4, 3);
        drop(wal);
        let names = segment_names(&dir);
        let last = dir.join(names.last().expect("a segment"));
        let len = std::fs::metadata(&last).expect("stat").len();
        OpenOptions::new().write(true).open(&last).expect("open").set_len(len - 3).expect("cut");
        let wal = Wal::open_with(&dir, None, SMALL).expect("a torn tail is repaired");
        assert_eq!(wal.last().map(|l| l.index), Some(11));
        append_synced(&wal, &entries(12..=12));
        drop(wal);
        let wal = Wal::open_with(&dir, None, SMALL).expect("reopen");
        assert_eq!(wal.read(0, None).expect("read"), entries(1..=12));
        drop(wal);
        // A flipped byte in a segment that is not the last: refused, naming the file.
        let first = dir.join(&names[0]);
        let mut bytes = std::fs::read(&first).expect("read");
        let at = bytes.len() - 2;
        bytes[at] ^= 0xff;
        std::fs::write(&first, bytes).expect("write");
        let refused = Wal::open_with(&dir, None, SMALL).err().expect("refused").to_string();
        assert!(refused.contains(&names[0]) && refused.contains("checksum"), "{refused}");
    }

    #[test]
    fn segments_are_preallocated_and_a_zeroed_tail_ends_the_records() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        let wal = Wal::open_with(&dir, None, 4096).expect("open");
        append_synced(&wal, &entries(1..=3));
        let name = segment_names(&dir).pop().expect("a segment");
        assert_eq!(std::fs::metadata(dir.join(&name)).expect("stat").len(), 4096);
        // A spare is ready for the next segment (made by the preparing thread).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while wal.spare.lock().expect("lock").is_none() {
            assert!(std::time::Instant::now() < deadline, "no spare made");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(wal);
        let wal = Wal::open_with(&dir, None, 4096).expect("reopen");
        assert_eq!(wal.read(0, None).expect("read"), entries(1..=3));
        // Garbage after the last record (a torn write whose header did not reach the disk)
        // is zeroed at open, and the log goes on after its last good record.
        drop(wal);
        let path = dir.join(&name);
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.write_all_at(&[7; 16], 2000).expect("write");
        drop(file);
        let wal = Wal::open_with(&dir, None, 4096).expect("reopen");
        assert!(std::fs::read(&path).expect("read")[2000..].iter().all(|b| *b == 0));
        append_synced(&wal, &entries(4..=4));
        drop(wal);
        let wal = Wal::open_with(&dir, None, 4096).expect("reopen");
        assert_eq!(wal.read(0, None).expect("read"), entries(1..=4));
        assert!(!std::fs::read_dir(&dir).expect("list").any(|e| {
            let name = e.expect("entry").file_name();
            name.to_string_lossy().ends_with(SPARE_SUFFIX)
                && wal.spare.lock().expect("lock").is_none()
        }));
    }

    #[test]
    fn a_hole_between_segments_and_a_foreign_file_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, wal) = log_of(&tmp, 4, 3);
        drop(wal);
        let names = segment_names(&dir);
        std::fs::remove_file(dir.join(&names[1])).expect("remove");
        let refused = Wal::open_with(&dir, None, SMALL).err().expect("refused").to_string();
        assert!(refused.contains("hole"), "{refused}");
        std::fs::write(dir.join(&names[1]), b"not a log segment").expect("write");
        let refused = Wal::open_with(&dir, None, SMALL).err().expect("refused").to_string();
        assert!(refused.contains("not a QuorumLM log segment"), "{refused}");
    }

    #[test]
    fn every_write_is_in_the_pending_sync_until_taken() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        let wal = Wal::open_with(&dir, None, SMALL).expect("open");
        wal.append(&entries(1..=3)).expect("append");
        let pending = wal.take_pending_sync();
        assert_eq!(pending.files.len(), 1);
        assert!(pending.dir.is_some(), "a new segment needs its directory synced");
        assert_eq!(wal.take_pending_sync().files.len(), 0);
        // Rolling to a new segment syncs the old one at once: only the new one is pending.
        wal.append(&entries(4..=9)).expect("append");
        wal.append(&entries(10..=10)).expect("append");
        let pending = wal.take_pending_sync();
        assert!(pending.files.len() == 1 && pending.dir.is_some());
        pending.run().expect("sync");
    }
}
