//! Preallocation: the next segment's file is made ahead of time, zero-filled and synced, by a
//! thread of its own.
//!
//! Why preallocate: `fdatasync` of a write past the end of a file must also write the inode
//! (its new size), a second synchronous I/O; a write into space already written and synced
//! changes no metadata, and its sync is the data alone (docs/BENCHMARKS.md, "Second stop").
//! Zeros, not `fallocate`: extents that `fallocate` leaves unwritten must be converted on the
//! first write, which is a metadata change again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use super::segment::zero_fill;
use super::{WalError, create_file};

/// File name suffix of a preallocated segment not yet in use.
pub(super) const SPARE_SUFFIX: &str = ".spare";

/// A preallocated file, ready to become the next segment.
pub(super) struct Spare {
    pub(super) path: PathBuf,
    pub(super) file: File,
}

/// Starts the preparing thread, which refills `slot` each time it is asked (on the returned
/// sender) and finds it empty.
pub(super) fn start_preparing(
    dir: &Path,
    segment_bytes: u64,
    slot: Arc<Mutex<Option<Spare>>>,
) -> Result<mpsc::Sender<()>, WalError> {
    let (prepare, requests) = mpsc::channel();
    let spare_dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("qlm-log-prepare".to_string())
        .spawn(move || prepare_spares(&spare_dir, segment_bytes, &slot, &requests))
        .map_err(|e| WalError::io(dir, e))?;
    Ok(prepare)
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
pub(super) fn make_spare(dir: &Path, segment_bytes: u64) -> Result<Spare, WalError> {
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
