//! The log in memory: its segments and where each live entry is, rebuilt from the segment
//! files at open.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::CommittedLeaderId;

use super::WalError;
use super::segment::{self, Segment};

/// Where a live entry is.
#[derive(Clone, Copy)]
pub(super) struct Loc {
    pub(super) leader_id: CommittedLeaderId<u64>,
    pub(super) offset: u64,
    pub(super) len: u32,
}

pub(super) struct State {
    /// Oldest first; the last one is appended to. Empty when the log holds nothing.
    pub(super) segments: VecDeque<Segment>,
    /// The live entries: `locs[i]` is entry `first_live + i`.
    pub(super) locs: VecDeque<Loc>,
    pub(super) first_live: u64,
    /// Bytes of the live entries' records (for the metrics).
    pub(super) live_bytes: u64,
    /// Files written (or created) since the flusher last synced: their data must reach the
    /// disk before the appends waiting on the flusher are acknowledged.
    pub(super) unsynced: Vec<Arc<File>>,
    /// A segment file was created since the last sync: the directory must be synced too.
    pub(super) dir_dirty: bool,
}

impl State {
    /// Reads back the segments `names` (as (first index, path), oldest first), checking that
    /// their indexes run on without a gap; entries at or below `purged` are not live.
    pub(super) fn load(names: Vec<(u64, PathBuf)>, purged: Option<u64>) -> Result<State, WalError> {
        let mut state = State {
            segments: VecDeque::new(),
            locs: VecDeque::new(),
            first_live: purged.map_or(0, |p| p + 1),
            live_bytes: 0,
            unsynced: Vec::new(),
            dir_dirty: false,
        };
        let count = names.len();
        // The index the next segment must start at (None before the first segment).
        let mut expected: Option<u64> = None;
        for (position, (first, path)) in names.into_iter().enumerate() {
            let is_last = position + 1 == count;
            if let Some(wanted) = expected
                && wanted != first
            {
                return Err(WalError::damaged(
                    &path,
                    format!(
                        "the log has a hole: this segment starts at entry {first} where {wanted} \
                         was expected"
                    ),
                ));
            }
            let Some((segment, entries)) = segment::read(first, &path, is_last)? else {
                continue;
            };
            expected = Some(first + entries.len() as u64);
            state.push_segment(segment, entries, purged)?;
        }
        Ok(state)
    }

    /// Adds a segment read back at open, and its entries after `purged` as live ones.
    fn push_segment(
        &mut self,
        segment: Segment,
        entries: Vec<Loc>,
        purged: Option<u64>,
    ) -> Result<(), WalError> {
        for (offset, loc) in entries.into_iter().enumerate() {
            let index = segment.first + offset as u64;
            if purged.is_some_and(|p| index <= p) {
                continue;
            }
            if self.locs.is_empty() {
                if let Some(p) = purged
                    && index != p + 1
                {
                    return Err(WalError::damaged(
                        &segment.path,
                        format!(
                            "the log has a hole: the first entry after the purged ones (up \
                             to {p}) is {index}"
                        ),
                    ));
                }
                self.first_live = index;
            }
            self.live_bytes += u64::from(loc.len);
            self.locs.push_back(loc);
        }
        self.segments.push_back(segment);
        Ok(())
    }
}
