//! Helpers for the tests of this crate and the crates above it. Test code only.

/// Opens the stores in `dir` again after the test dropped its own: sled's I/O threads may hold
/// the database (and so its directory lock) for a moment after the last handle is dropped,
/// which a real restart never sees (the process is gone). Retries for up to 5 s while the lock
/// is held; any other error is returned at once.
pub fn reopen_stores(
    dir: &std::path::Path,
) -> Result<(crate::LogStore, crate::StateMachineStore), crate::StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match crate::open_stores(dir) {
            Err(e)
                if e.to_string().contains("acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// A size-limited tmpfs mounted on a directory for one test (a data volume that can fill),
/// unmounted when dropped. Mounting needs root: [`Tmpfs::mount`] answers None, with the reason
/// printed, where it cannot, unless `QLM_REQUIRE_ROOT_TESTS=1` (CI), where it panics.
pub struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB on `dir` (an empty directory that outlives this value).
    pub fn mount(dir: &std::path::Path, mib: u64) -> Option<Tmpfs> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs { path: dir.to_path_buf() }),
            other => {
                let required = std::env::var("QLM_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
                assert!(!required, "cannot mount a tmpfs ({other:?}) and QLM_REQUIRE_ROOT_TESTS=1");
                eprintln!("skipped: cannot mount a tmpfs here ({other:?}); run as root");
                None
            }
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes zeros to `name` on the volume until it has no space left; returns its path.
    pub fn fill(&self, name: &str) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path.join(name);
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let mut chunk = vec![0u8; 1024 * 1024];
        while !chunk.is_empty() {
            match file.write(&chunk) {
                Ok(_) => {}
                Err(e) if crate::is_no_space(&e) => {
                    let half = chunk.len() / 2;
                    chunk.truncate(half);
                }
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
