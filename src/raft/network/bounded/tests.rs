//! The budget's encoding gives openraft a hint it can act on in one retry, and the budget
//! follows how the follower answers.

use std::time::Duration;

use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::network::encode_payload;
use crate::{Entry, LogEntry, LogId, Vote};
use qlm_engine::Command;
use qlm_license::Timestamp;

/// openraft's AppendEntries deadline (the heartbeat interval).
const DEADLINE: Duration = Duration::from_millis(50);

/// An entry at `index` of `commands` commands, each with a 256-byte session id.
fn entry(index: u64, commands: usize) -> Entry {
    let command = |i: usize| Command::CloseSession { session_id: format!("{i:0>256}") };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(2, 1), index),
        payload: EntryPayload::Normal(LogEntry {
            commands: (0..commands).map(command).collect(),
            stamp: Timestamp(1_795_478_400_000),
        }),
    }
}

fn request(entries: Vec<Entry>) -> AppendEntriesRequest<TypeConfig> {
    let prev = LogId::new(CommittedLeaderId::new(2, 1), 9);
    AppendEntriesRequest {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(prev),
        entries,
        leader_commit: Some(prev),
    }
}

fn size(rpc: &AppendEntriesRequest<TypeConfig>) -> usize {
    encode_payload(rpc).expect("encode").len()
}

fn hint(result: RpcResult<Vec<u8>>) -> usize {
    match result {
        Err(RPCError::PayloadTooLarge(too_large)) => {
            usize::try_from(too_large.entries_hint()).expect("a count")
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
}

/// [`encode_append_entries`] with a message limit far above anything a test sends.
fn encode(rpc: &AppendEntriesRequest<TypeConfig>, budget: usize) -> RpcResult<Vec<u8>> {
    encode_append_entries(rpc, budget, MAX_APPEND_PAYLOAD_BYTES)
}

#[test]
fn a_request_within_the_budget_is_encoded_as_any_payload() {
    let rpc = request((10..14).map(|i| entry(i, 8)).collect());
    let plain = encode_payload(&rpc).expect("encode");
    // Sizing counts the entry count at its largest: a few bytes of margin.
    assert_eq!(encode(&rpc, plain.len() + MAX_LENGTH_BYTES).expect("fits"), plain);
    assert_eq!(AppendBudget::new().encode(&rpc).expect("fits"), plain);
    let heartbeat = request(Vec::new());
    let plain = encode_payload(&heartbeat).expect("encode");
    assert_eq!(encode_append_entries(&heartbeat, 0, plain.len()).expect("fits"), plain);
}

#[test]
fn an_oversize_request_names_exactly_how_many_leading_entries_fit() {
    let entries: Vec<Entry> = (10..20).map(|i| entry(i, 14 + i as usize)).collect();
    let limit = size(&request(entries.clone())) / 2;
    let fit = hint(encode(&request(entries.clone()), limit));
    assert!(fit > 1 && fit < entries.len(), "{fit}");
    let sent = request(entries[..fit].to_vec());
    assert!(size(&sent) <= limit, "the hint fits");
    assert!(size(&request(entries[..=fit].to_vec())) > limit, "the hint is the most that fits");
    assert!(encode(&sent, limit).is_ok());
}

#[test]
fn the_hint_is_never_all_entries_nor_none() {
    let two = request(vec![entry(10, 40), entry(11, 40)]);
    assert_eq!(hint(encode(&two, size(&two) - 1)), 1);
    let first_too_large = request(vec![entry(10, 64), entry(11, 1)]);
    assert_eq!(hint(encode(&first_too_large, 1024)), 1);
}

#[test]
fn an_entry_above_the_message_limit_alone_is_unreachable_and_named() {
    let rpc = request(vec![entry(10, 64)]);
    let limit = size(&rpc) - 1;
    match encode_append_entries(&rpc, limit, limit) {
        Err(RPCError::Unreachable(e)) => {
            let text = e.to_string();
            assert!(text.contains("log entry 10") && text.contains(&limit.to_string()), "{text}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[test]
fn one_entry_goes_alone_whatever_the_budget() {
    let mut budget = AppendBudget::new();
    for _ in 0..20 {
        budget.answered(MIN_APPEND_BUDGET_BYTES, DEADLINE, DEADLINE, true);
    }
    assert_eq!(budget.bytes(), MIN_APPEND_BUDGET_BYTES);
    let big = entry(10, MIN_APPEND_BUDGET_BYTES / 100);
    let alone = request(vec![big.clone()]);
    assert!(size(&alone) > MIN_APPEND_BUDGET_BYTES);
    assert!(budget.encode(&alone).is_ok());
    assert_eq!(hint(budget.encode(&request(vec![big, entry(11, 1)]))), 1);
}

#[test]
fn the_budget_halves_on_a_miss_and_grows_on_quick_answers_near_it() {
    let mut budget = AppendBudget::new();
    let start = budget.bytes();
    // A call openraft dropped at its deadline: never answered.
    budget.sending(start);
    let _ = budget.encode(&request(Vec::new()));
    assert_eq!(budget.bytes(), start / 2);
    budget.answered(start / 2, DEADLINE, DEADLINE, true);
    assert_eq!(budget.bytes(), start / 4);
    // Quick, but far under the budget: nothing learned.
    budget.answered(1024, Duration::from_millis(1), DEADLINE, false);
    assert_eq!(budget.bytes(), start / 4);
    // Slow but in time: kept.
    budget.answered(start / 4, DEADLINE / 2, DEADLINE, false);
    assert_eq!(budget.bytes(), start / 4);
    for _ in 0..20 {
        budget.answered(budget.bytes(), Duration::from_millis(1), DEADLINE, false);
    }
    assert_eq!(budget.bytes(), MAX_APPEND_PAYLOAD_BYTES);
}
