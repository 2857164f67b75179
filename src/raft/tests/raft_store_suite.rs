//! The sled stores pass openraft's own storage test suite (docs/DESIGN.md, trap 5): every store is
//! opened fresh in its own temporary directory.

use openraft::StorageIOError;
use openraft::testing::{StoreBuilder, Suite};
use qlm_raft::{LogStore, StateMachineStore, StorageError, TypeConfig, open_stores};
use tempfile::TempDir;

/// Opens a store in a new temporary directory; the directory is the guard that removes it.
struct TempDirStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempDirStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let (log, state_machine) =
            open_stores(dir.path().join("node")).map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, state_machine))
    }
}

/// A plain test: the suite builds its own tokio runtime for each case.
#[test]
fn sled_stores_pass_the_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(TempDirStores) {
        panic!("the storage suite failed: {e}");
    }
}
