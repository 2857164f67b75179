//! The report log's file on disk: appended in batches, rotated by size, and read back at
//! start to learn the last log index already written.
//!
//! Rotation renames `usage.jsonl` to `usage.jsonl.1` (and `.1` to `.2`, ...), keeping
//! [`REPORT_FILES_KEPT`] rotated files; the oldest beyond that is overwritten. The file is
//! fsynced before it is rotated and when the writer stops; between, each batch is written with
//! one `write` call, so a killed process loses nothing it wrote, and a machine crash loses at
//! most the lines since the last rotation that the kernel had not written yet.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use qlm_report::ReportLine;

/// Rotated files kept beside the live one (`usage.jsonl.1` .. `usage.jsonl.10`).
pub const REPORT_FILES_KEPT: u32 = 10;

/// How much of a file's end is read to find its last line (lines are well under 1 KiB).
const TAIL_BYTES: u64 = 64 * 1024;

/// The live report file.
pub struct ReportFile {
    path: PathBuf,
    file: File,
    /// Bytes in the live file.
    size: u64,
    /// Rotate once the live file reaches this many bytes.
    max_bytes: u64,
}

impl ReportFile {
    /// Opens (or creates) the live file for appending. A torn last line (the machine died in
    /// the middle of a write) is cut off with the lines of the last whole entry before it
    /// (the torn line may have been one of its lines), so the file holds only whole entries
    /// and the log applied again writes them in full. Returns the file
    /// and the last log index written, looking into `.1` when the live file is empty (a
    /// rotation just happened).
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<(ReportFile, Option<u64>)> {
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
        let size = cut_torn_line(&mut file)?;
        let mut last = last_index(&mut file)?;
        if last.is_none()
            && let Ok(mut previous) = File::open(rotated(path, 1))
        {
            last = last_index(&mut previous)?;
        }
        Ok((ReportFile { path: path.to_path_buf(), file, size, max_bytes }, last))
    }

    /// Appends whole lines with one write. A write that fails half way (a full disk) is cut
    /// back, so the next lines do not start in the middle of a torn one.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Rotates when the live file has reached its size limit.
    pub fn rotate_if_full(&mut self) -> io::Result<bool> {
        if self.size < self.max_bytes {
            return Ok(false);
        }
        self.file.sync_all()?;
        for n in (1..REPORT_FILES_KEPT).rev() {
            let older = rotated(&self.path, n);
            if older.exists() {
                std::fs::rename(&older, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new().create(true).read(true).append(true).open(&self.path)?;
        self.size = 0;
        sync_dir(&self.path)?;
        Ok(true)
    }

    /// Makes what was written durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// `usage.jsonl.N`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// fsyncs the directory of `path`, so a rename or a new file survives a crash.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// The tail of the file, and where it starts.
fn tail(file: &mut File) -> io::Result<(u64, Vec<u8>)> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut bytes)?;
    Ok((start, bytes))
}

/// Cuts the file after its last newline; returns its new length.
fn cut_torn_line(file: &mut File) -> io::Result<u64> {
    let (start, bytes) = tail(file)?;
    let len = start + bytes.len() as u64;
    if bytes.last().is_none_or(|&b| b == b'\n') {
        return Ok(len);
    }
    let keep = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(newline) => start + newline as u64 + 1,
        // No newline in the tail: a line longer than the tail, or a file of garbage. Keep
        // the file (the admin may want it) and start on a new line.
        None => {
            file.write_all(b"\n")?;
            return Ok(len + 1);
        }
    };
    // The torn line's entry may have whole lines before it: cut them too, so the entry is
    // written again in full when the log is applied again.
    let whole = &bytes[..(keep - start) as usize];
    let index_of = |line: &[u8]| serde_json::from_slice::<ReportLine>(line).ok().map(|l| l.index);
    let mut lines: Vec<&[u8]> = whole.split_inclusive(|&b| b == b'\n').collect();
    let last = lines.last().and_then(|l| index_of(l));
    let mut keep = keep;
    while let Some(line) = lines.pop() {
        if last.is_none() || index_of(line) != last {
            break;
        }
        keep -= line.len() as u64;
    }
    tracing::warn!(cut = len - keep, "report log: cutting a torn last entry");
    file.set_len(keep)?;
    Ok(keep)
}

/// The log index of the last line that reads as a report line.
fn last_index(file: &mut File) -> io::Result<Option<u64>> {
    let (_, bytes) = tail(file)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().rev().find_map(|line| serde_json::from_str::<ReportLine>(line).ok()).map(
        |line| match line.event {
            qlm_report::EventKind::Gap => line.to.unwrap_or(line.index).max(line.index),
            _ => line.index,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(index: u64) -> String {
        let line = ReportLine { index, time: "t".into(), ..ReportLine::default() };
        format!("{}\n", serde_json::to_string(&line).unwrap())
    }

    #[test]
    fn a_reopened_file_knows_its_last_index_and_loses_its_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.jsonl");
        let (mut file, last) = ReportFile::open(&path, 1 << 20).unwrap();
        assert_eq!(last, None);
        file.append(format!("{}{}", line(3), line(7)).as_bytes()).unwrap();
        file.append(b"{\"time\":\"t\",\"unix").unwrap();
        drop(file);
        let (_, last) = ReportFile::open(&path, 1 << 20).unwrap();
        assert_eq!(last, Some(3), "entry 7 may have had the torn line: it is written again");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, line(3), "the torn line and the rest of its entry are gone");
        let (mut file, _) = ReportFile::open(&path, 1 << 20).unwrap();
        file.append(line(7).as_bytes()).unwrap();
        drop(file);
        let (_, last) = ReportFile::open(&path, 1 << 20).unwrap();
        assert_eq!(last, Some(7), "a whole file is kept as it is");
    }

    #[test]
    fn a_full_file_rotates_and_keeps_a_bounded_number_of_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.jsonl");
        let (mut file, _) = ReportFile::open(&path, 10).unwrap();
        for index in 1..=(u64::from(REPORT_FILES_KEPT) + 3) {
            file.append(line(index).as_bytes()).unwrap();
            assert!(file.rotate_if_full().unwrap(), "each line fills the file");
        }
        assert!(rotated(&path, REPORT_FILES_KEPT).exists());
        assert!(!rotated(&path, REPORT_FILES_KEPT + 1).exists());
        assert_eq!(std::fs::read_to_string(rotated(&path, 1)).unwrap(), line(13), "newest is .1");
        drop(file);
        let (_, last) = ReportFile::open(&path, 10).unwrap();
        assert_eq!(last, Some(13), "an empty live file: the last index is in .1");
    }
}
