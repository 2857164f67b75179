//! A data directory on a volume that fills: the stores are opened on a real size-limited tmpfs
//! (mounting one needs root; without it the test says so and passes, unless
//! `QLM_REQUIRE_ROOT_TESTS=1`, which CI sets).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use qlm_license::Timestamp;
use qlm_raft::testkit::Tmpfs;
use qlm_raft::{Entry, LogEntry, LogId, Membership, open_stores};

fn entry(index: u64) -> Entry {
    let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
    if index == 1 {
        let nodes = BTreeMap::from([(1, openraft::BasicNode::new("127.0.0.1:7401"))]);
        let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
        return Entry { log_id, payload: EntryPayload::Membership(membership) };
    }
    Entry {
        log_id,
        payload: EntryPayload::Normal(LogEntry { commands: Vec::new(), stamp: Timestamp(index) }),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn unfinished_sled_snapshots(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("snap.") && name.ends_with(".generating"))
        .collect()
}

#[test]
fn a_start_on_a_full_volume_names_the_cause_and_a_start_after_it_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(volume) = Tmpfs::mount(dir.path(), 32) else { return };
    let data = volume.path().join("node");
    let rt = runtime();
    rt.block_on(async {
        let (mut log, _) = open_stores(&data).expect("open");
        log.blocking_append((1..=50).map(entry)).await.expect("append");
    });
    let filler = volume.fill("filler");
    // Several starts while the volume is full: each refuses and names the cause (never
    // another qlmd), and none leaves the directory unopenable for the next one.
    for _ in 0..3 {
        let message = match open_stores(&data) {
            Ok(_) => panic!("opened on a full volume"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("the data volume is full"), "{message}");
        assert!(!message.contains("another qlmd"), "{message}");
        assert!(message.contains(&data.display().to_string()), "{message}");
    }
    std::fs::remove_file(filler).expect("free the space");
    let (mut log, _) = open_stores(&data).expect("opens once there is space");
    assert_eq!(unfinished_sled_snapshots(&data), Vec::<String>::new());
    let read = rt.block_on(log.try_get_log_entries(1..51)).expect("read");
    assert_eq!(read, (1..=50).map(entry).collect::<Vec<_>>());
    rt.block_on(log.blocking_append([entry(51)])).expect("append after the space is freed");
}
