//! AppendEntries that a follower can take: within one peer message, and within openraft's
//! deadline.
//!
//! openraft sends a follower that is behind as many entries at once as it has, up to its
//! `max_payload_entries` (300), whatever their size. Two limits stand in the way, and an
//! AppendEntries past either fails, and openraft sends the very same one again forever:
//!
//! - Size: the follower refuses a message above [`MAX_PEER_MESSAGE_BYTES`].
//! - Time: openraft 0.9.25 gives each AppendEntries one heartbeat interval (50 ms by default,
//!   `--heartbeat-ms`) for the leader to encode it, the link to carry it and the follower to
//!   decode, write and fsync it (`ReplicationCore::send_log_entries`). 16 MiB alone takes
//!   134 ms on 1 Gbit/s.
//!
//! So each follower's stream has an [`AppendBudget`]: how many bytes one AppendEntries may
//! take. A request of several entries is sized before it is encoded; one over the budget is
//! not sent, and openraft is told how many of its leading entries fit ([`PayloadTooLarge`]):
//! it sends those at once, and keeps that count for its next ten AppendEntries to the
//! follower (`ReplicationCore::update_hint`). The budget starts at what a fast link carries
//! well within the deadline, halves when an AppendEntries misses it, and doubles when one
//! near the budget is answered within a quarter of it, up to [`MAX_APPEND_PAYLOAD_BYTES`].
//!
//! One entry always goes alone, whatever the budget: entries cannot be split, and the
//! proposer keeps them small enough ([`MAX_ENTRY_BYTES`]) to cross within the deadline. An
//! entry above the message limit cannot be sent at all: that is reported as the follower
//! being unreachable (openraft backs off and keeps trying; the error names the entry), never
//! retried at once.

use std::time::Duration;

use openraft::error::{NetworkError, PayloadTooLarge, RPCError, Unreachable};
use openraft::raft::AppendEntriesRequest;
use postcard::experimental::serialized_size;

use super::{MAX_PEER_MESSAGE_BYTES, RpcResult, encode_payload};
use crate::{MAX_ENTRY_BYTES, TypeConfig};

/// Bytes of a peer message kept for what surrounds an encoded openraft request: the
/// `RaftRequest` envelope (cluster id, sender and target ids, format, the payload's tag and
/// length). It takes under a hundred bytes with the 16-character cluster id the server uses;
/// the margin is free, since only the number of entries per message depends on it.
pub const ENVELOPE_HEADROOM_BYTES: usize = 64 * 1024;

/// Largest encoded AppendEntries request ever sent to a peer (the budget's ceiling).
pub const MAX_APPEND_PAYLOAD_BYTES: usize = MAX_PEER_MESSAGE_BYTES - ENVELOPE_HEADROOM_BYTES;

/// A follower's budget when its stream starts: what 1 Gbit/s carries in a third of the
/// default 50 ms deadline, leaving the rest for encoding, decoding and the follower's fsync.
pub const START_APPEND_BUDGET_BYTES: usize = 2 * 1024 * 1024;

/// The budget never halves below this; an entry larger than the budget still goes alone.
pub const MIN_APPEND_BUDGET_BYTES: usize = 64 * 1024;

/// Bytes a list's length takes at most in postcard (a varint of a `u64`).
const MAX_LENGTH_BYTES: usize = 10;

// One message carries several entries of the largest size; the budget moves between bounds.
const _: () = assert!(4 * (MAX_ENTRY_BYTES + 1024) <= MAX_APPEND_PAYLOAD_BYTES);
const _: () = assert!(MIN_APPEND_BUDGET_BYTES <= START_APPEND_BUDGET_BYTES);
const _: () = assert!(START_APPEND_BUDGET_BYTES <= MAX_APPEND_PAYLOAD_BYTES);

/// How many bytes one AppendEntries to a follower may take, learned from its answers.
pub(super) struct AppendBudget {
    bytes: usize,
    /// The size of an AppendEntries with entries sent and not yet answered. Still set at the
    /// next one: openraft dropped the call at its deadline.
    in_flight: Option<usize>,
}

impl AppendBudget {
    pub(super) fn new() -> AppendBudget {
        AppendBudget { bytes: START_APPEND_BUDGET_BYTES, in_flight: None }
    }

    /// The current budget, in bytes.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Encodes `rpc` if it fits in the budget (a request with at most one entry: in a
    /// message), else tells openraft how many of its leading entries to send
    /// ([`encode_append_entries`]).
    pub(super) fn encode(&mut self, rpc: &AppendEntriesRequest<TypeConfig>) -> RpcResult<Vec<u8>> {
        if let Some(missed) = self.in_flight.take() {
            self.shrink(missed);
        }
        encode_append_entries(rpc, self.bytes, MAX_APPEND_PAYLOAD_BYTES)
    }

    /// An AppendEntries of `bytes` with entries is about to be sent.
    pub(super) fn sending(&mut self, bytes: usize) {
        self.in_flight = Some(bytes);
    }

    /// The AppendEntries of `bytes` sent last came back after `elapsed`, of `deadline`:
    /// `timed_out` when it came back as a timeout.
    pub(super) fn answered(
        &mut self,
        bytes: usize,
        elapsed: Duration,
        deadline: Duration,
        timed_out: bool,
    ) {
        self.in_flight = None;
        if timed_out {
            self.shrink(bytes);
        } else if elapsed * 4 <= deadline && bytes * 2 >= self.bytes {
            self.bytes = (self.bytes * 2).min(MAX_APPEND_PAYLOAD_BYTES);
        }
    }

    /// An AppendEntries of `bytes` missed the deadline: half of it, at most, from now on.
    fn shrink(&mut self, bytes: usize) {
        self.bytes = (self.bytes.min(bytes) / 2).max(MIN_APPEND_BUDGET_BYTES);
    }
}

/// Encodes `rpc` when it may be sent: a request of several entries if it takes at most
/// `budget` bytes (else a [`PayloadTooLarge`] with how many of its leading entries do, one at
/// least), a request of one entry or none if it takes at most `message_limit` (else an
/// [`Unreachable`] that names the entry). Encodes once; a request of several entries is sized
/// first, as far as the budget, which costs a fraction of encoding it.
pub(super) fn encode_append_entries(
    rpc: &AppendEntriesRequest<TypeConfig>,
    budget: usize,
    message_limit: usize,
) -> RpcResult<Vec<u8>> {
    let network_error = |e: postcard::Error| RPCError::Network(NetworkError::new(&e));
    if rpc.entries.len() > 1 {
        let fit = leading_entries_that_fit(rpc, budget).map_err(network_error)?;
        if fit < rpc.entries.len() {
            let hint = u64::try_from(fit.max(1)).unwrap_or(u64::MAX);
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)));
        }
    }
    let payload = encode_payload(rpc).map_err(network_error)?;
    if payload.len() > message_limit {
        let index = rpc.entries.first().map_or(0, |entry| entry.log_id.index);
        let e = std::io::Error::other(format!(
            "log entry {index} takes {} bytes encoded, more than one peer message carries \
             ({message_limit} bytes): it cannot be replicated",
            payload.len()
        ));
        return Err(RPCError::Unreachable(Unreachable::new(&e)));
    }
    Ok(payload)
}

/// How many of `rpc`'s leading entries an AppendEntries of at most `limit` bytes can carry,
/// counted without encoding them. Counts the request's other fields as encoded and its entry
/// count at its largest, so the request with that many entries is never over the limit; stops
/// at the first entry that does not fit.
fn leading_entries_that_fit(
    rpc: &AppendEntriesRequest<TypeConfig>,
    limit: usize,
) -> Result<usize, postcard::Error> {
    let without_entries = AppendEntriesRequest::<TypeConfig> {
        vote: rpc.vote,
        prev_log_id: rpc.prev_log_id,
        entries: Vec::new(),
        leader_commit: rpc.leader_commit,
    };
    let mut used = serialized_size(&without_entries)? + MAX_LENGTH_BYTES;
    let mut fit = 0;
    for entry in &rpc.entries {
        used += serialized_size(entry)?;
        if used > limit {
            break;
        }
        fit += 1;
    }
    Ok(fit)
}

#[cfg(test)]
mod tests;
