//! The last committed log id openraft saved, in a small file beside the segments:
//! `[magic][length u32 LE][CRC-32 u32 LE][postcard(Option<LogId>)]`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Wal, WalError};
use crate::LogId;
use crate::store::decode;

/// The file that holds the last committed log id openraft saved (advisory: see
/// [`Wal::save_committed`]).
pub(super) const COMMITTED_FILE: &str = "committed";
const COMMITTED_MAGIC: &[u8; 4] = b"QLMC";

/// Opens (creating if needed) [`COMMITTED_FILE`] in `dir`.
pub(super) fn open(dir: &Path) -> Result<File, WalError> {
    let committed_path = dir.join(COMMITTED_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&committed_path)
        .map_err(|e| WalError::io(&committed_path, e))
}

impl Wal {
    /// Records the last committed log id openraft saved: one small positioned write, no sync.
    /// It is advisory (a lost or older one only makes a restarted node re-apply entries later,
    /// when the leader says they are committed), so it needs no fsync of its own: it reaches
    /// the page cache at once (so it survives a killed process) and the disk with the kernel's
    /// writeback.
    pub(crate) fn save_committed(&self, committed: Option<LogId>) -> Result<(), WalError> {
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
    pub(crate) fn saved_committed(&self) -> Option<LogId> {
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
}
