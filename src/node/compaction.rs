//! Snapshots by log size, beside openraft's count of entries.
//!
//! openraft builds a snapshot every `--snapshot-every` applied entries. An entry carries a
//! whole batch of commands (up to 512), so a count of entries bounds the log's size only
//! loosely: 5,000 full entries are hundreds of megabytes, all of it read again at a restart.
//! This task also asks for a snapshot when the entries written since the last one take more
//! than `--snapshot-log-mb` of log; the purge behind that snapshot then frees them. Each node
//! decides for itself, as openraft's own policy does (snapshots are local).

use std::time::{Duration, Instant};

use tracing::{info, warn};

use qlm_raft::{Raft, StorageStats};

/// How often a node looks at the size of its log.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a snapshot asked for may take before it is asked for again.
pub const ASK_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// Fewest entries since the last snapshot for a size-triggered one: a handful of huge entries
/// are left to the next check rather than snapshotting again at once.
pub const MIN_ENTRIES: u64 = 16;

/// Whether a snapshot is due: the log holds `log_entries` entries in `log_bytes` bytes, up to
/// `last_log` (the log's last index); the last snapshot covers up to `snapshot_index`.
/// The bytes of the entries after the snapshot are estimated from the average entry.
pub fn snapshot_due(
    log_entries: u64,
    log_bytes: u64,
    last_log: u64,
    snapshot_index: u64,
    limit_bytes: u64,
) -> bool {
    let since = last_log.saturating_sub(snapshot_index).min(log_entries);
    if since < MIN_ENTRIES || log_entries == 0 {
        return false;
    }
    let bytes_since = (u128::from(log_bytes) * u128::from(since) / u128::from(log_entries)) as u64;
    bytes_since > limit_bytes
}

/// Asks for a snapshot whenever [`snapshot_due`], until `stop` turns true.
pub async fn run(
    node: u64,
    raft: Raft,
    storage: StorageStats,
    limit_bytes: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(CHECK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The applied index a snapshot was asked for at, and when: until a snapshot reaches it
    // (or ASK_AGAIN_AFTER passes, in case that build failed) it is not asked for again.
    let mut asked: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let (last_log, applied, snapshot_index) = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            (
                metrics.last_log_index.unwrap_or(0),
                metrics.last_applied.map_or(0, |id| id.index),
                metrics.snapshot.map_or(0, |id| id.index),
            )
        };
        if asked.is_some_and(|(at, when)| snapshot_index < at && when.elapsed() < ASK_AGAIN_AFTER) {
            continue;
        }
        let (entries, bytes) = storage.log_size();
        if !snapshot_due(entries, bytes, last_log, snapshot_index, limit_bytes) {
            continue;
        }
        info!(
            node,
            log_entries = entries,
            log_bytes = bytes,
            "log past --snapshot-log-mb: snapshot"
        );
        match raft.trigger().snapshot().await {
            Ok(()) => asked = Some((applied, Instant::now())),
            Err(e) => warn!(node, error = %e, "could not ask for a snapshot"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    #[test]
    fn a_snapshot_is_due_when_the_entries_since_the_last_one_pass_the_limit() {
        // Entries 1,001-3,000 of 64 KiB each (128 MiB), the last snapshot at 2,000: half of the
        // log, 64 MiB, is newer than the snapshot.
        assert!(snapshot_due(2_000, 128 * MB, 3_000, 2_000, 63 * MB));
        assert!(!snapshot_due(2_000, 128 * MB, 3_000, 2_000, 64 * MB));
        // The entries kept behind a snapshot do not count.
        assert!(!snapshot_due(1_000, 64 * MB, 2_000, 2_000, 1));
    }

    #[test]
    fn a_few_huge_entries_wait_for_more() {
        assert!(!snapshot_due(10, 500 * MB, 110, 100, MB));
        assert!(snapshot_due(16, 500 * MB, 116, 100, MB));
        assert!(!snapshot_due(0, 0, 0, 0, 0));
    }
}
