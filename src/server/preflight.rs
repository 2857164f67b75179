//! Checks of the data directory before the database is opened, so that a directory this
//! user cannot use is reported as that (naming `--data-dir`, the path, its owner and mode, and
//! the user the node runs as) rather than as an I/O error deep inside sled. Containers and
//! systemd units run `qlmd` as a dedicated user: a volume or directory still owned by root is
//! the usual mistake.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// The name of the file written and removed to prove the directory is writable.
const PROBE_FILE: &str = ".qlmd-write-probe";

/// `Ok` when `dir` is missing (sled creates it; its parent's errors are reported by the
/// store) or is a directory this process can list and write in.
pub fn check_data_dir(dir: &Path) -> Result<(), String> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(problem(dir, None, &format!("cannot be inspected: {e}"))),
    };
    if !meta.is_dir() {
        return Err(problem(dir, Some(&meta), "is not a directory"));
    }
    if let Err(e) = std::fs::read_dir(dir) {
        return Err(problem(dir, Some(&meta), &format!("cannot be read: {e}")));
    }
    let probe = dir.join(PROBE_FILE);
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(problem(dir, Some(&meta), &format!("is not writable: {e}"))),
    }
}

fn problem(dir: &Path, meta: Option<&std::fs::Metadata>, what: &str) -> String {
    let owner = meta.map_or(String::new(), |meta| {
        format!(
            " (owner uid {}, gid {}, mode {:o})",
            meta.uid(),
            meta.gid(),
            meta.permissions().mode() & 0o7777
        )
    });
    format!(
        "configuration: --data-dir: {}{owner} {what}; qlmd runs as uid {}: give that user the \
         directory (chown) or choose another",
        dir.display(),
        current_uid()
    )
}

/// This process's user id, from /proc (no libc dependency); `?` when unknown.
fn current_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_left_to_the_store_and_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_data_dir(&dir.path().join("new")).is_ok());
        assert!(check_data_dir(dir.path()).is_ok());
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let message = check_data_dir(&file).unwrap_err();
        assert!(message.contains("--data-dir") && message.contains("not a directory"), "{message}");
    }
}
