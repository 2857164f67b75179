//! Segment files: `<first index, 20 digits>.wal`, [`MAGIC`] then consecutive records; finding
//! them in the log's directory and reading one back, checked.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::committed::COMMITTED_FILE;
use super::index::Loc;
use super::prealloc::SPARE_SUFFIX;
use super::record::{self, HEADER_BYTES};
use super::{WalError, remove_file};

/// The first bytes of every segment: what it is, and the record format's version.
pub(super) const MAGIC: &[u8; 8] = b"QLMWAL01";
/// A segment is closed, and the next one started, once it holds this many bytes; it is also
/// the size a segment is preallocated to.
pub(super) const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// File name suffix of a segment.
pub(super) const SUFFIX: &str = ".wal";

/// One segment file.
pub(super) struct Segment {
    /// Index of its first entry (its name), whether or not that entry is still live.
    pub(super) first: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    /// Bytes written (the offset of the next record).
    pub(super) len: u64,
}

/// The segments in `dir`, as (first index, path), oldest first. Spares of an earlier run
/// (never in use) are deleted: a new one is made at open. Files that are not ours are left
/// alone, with a warning.
pub(super) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut names = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| WalError::io(dir, e))? {
        let item = item.map_err(|e| WalError::io(dir, e))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name == COMMITTED_FILE {
            continue;
        }
        if name.ends_with(SPARE_SUFFIX) {
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
    Ok(names)
}

/// Reads one segment: its records' locations, checked. The records end at the first all-zero
/// header (the rest is preallocated space) or at the end of the file. In the last segment, a
/// damaged record is a write the crash cut short: it and everything after it are zeroed (and
/// synced); damage anywhere else is refused. None: a last segment whose creation was cut short
/// (no magic yet), now deleted.
pub(super) fn read(
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
        match record::parse(rest) {
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

/// The position in `segments` of the one holding `index` (the last that starts at or before it).
pub(super) fn position(segments: &VecDeque<Segment>, index: u64) -> usize {
    segments.partition_point(|s| s.first <= index).saturating_sub(1)
}

/// Writes zeros over `from..to` of `file`.
pub(super) fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
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
