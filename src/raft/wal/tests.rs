//! The log's own tests: small segments, so that a few appends cross several.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use openraft::{CommittedLeaderId, EntryPayload};

use super::committed::COMMITTED_FILE;
use super::prealloc::SPARE_SUFFIX;
use super::*;
use crate::LogEntry;

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
        name.to_string_lossy().ends_with(SPARE_SUFFIX) && wal.spare.lock().expect("lock").is_none()
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

/// Waits until the preparing thread has made the next segment's spare.
fn wait_for_spare(wal: &Wal) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while wal.spare.lock().expect("lock").is_none() {
        assert!(std::time::Instant::now() < deadline, "no spare made");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_record_that_would_cross_the_preallocated_end_starts_the_next_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let wal = Wal::open_with(&dir, None, 1024).expect("open");
    // Batches of five entries: a batch rarely ends exactly at a segment's end, so without the
    // rule the last batch of each segment would grow its file past the preallocated size.
    for i in 0..40 {
        wait_for_spare(&wal);
        append_synced(&wal, &entries(i * 5 + 1..=i * 5 + 5));
    }
    let names = segment_names(&dir);
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let len = std::fs::metadata(dir.join(name)).expect("stat").len();
        assert_eq!(len, 1024, "{name} grew past its preallocated size");
    }
    drop(wal);
    let wal = Wal::open_with(&dir, None, 1024).expect("reopen");
    assert_eq!(wal.read(0, None).expect("read"), entries(1..=200));
    // A record larger than a whole segment still fits: in a segment of its own, which grows.
    let tiny_dir = tmp.path().join("tiny");
    let wal = Wal::open_with(&tiny_dir, None, MAGIC.len() as u64 + 1).expect("open");
    for i in 1..=3 {
        append_synced(&wal, &entries(i..=i));
    }
    assert_eq!(segment_names(&tiny_dir).len(), 3);
    assert_eq!(wal.read(0, None).expect("read"), entries(1..=3));
}
