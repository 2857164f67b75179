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
