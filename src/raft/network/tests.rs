//! Every openraft message the network carries survives postcard: encoded, decoded and encoded
//! again, it is the same value and the same bytes. postcard is not self-describing, so a serde
//! attribute that skips a field would break this silently; these tests are the guard.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use openraft::error::{Fatal, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, CommittedLeaderId, EntryPayload, SnapshotSegmentId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{decode_payload, encode_payload};
use crate::{
    Entry, LogEntry, LogId, Membership, NodeId, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};
use qlm_engine::Command;
use qlm_license::Timestamp;

fn log_id(term: u64, node: NodeId, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn membership() -> Membership {
    let nodes: BTreeMap<NodeId, BasicNode> =
        (1..=3).map(|id| (id, BasicNode::new(format!("10.0.0.{id}:7401")))).collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

/// Encodes, decodes and encodes again; the value (by its Debug form) and the bytes must agree.
fn round_trip<T: Serialize + DeserializeOwned + Debug>(value: &T) -> T {
    let bytes = encode_payload(value).expect("encode");
    let back: T = decode_payload(&bytes).expect("decode");
    assert_eq!(format!("{back:?}"), format!("{value:?}"));
    assert_eq!(encode_payload(&back).expect("encode again"), bytes);
    back
}

/// [`round_trip`], for a value whose decoded copy the test does not look at.
fn assert_round_trips<T: Serialize + DeserializeOwned + Debug>(value: &T) {
    round_trip(value);
}

#[test]
fn append_entries_with_normal_blank_and_membership_entries_round_trips() {
    let normal = Entry {
        log_id: log_id(2, 1, 7),
        payload: EntryPayload::Normal(LogEntry {
            commands: vec![Command::CloseSession { session_id: "s1".into() }, Command::Tick],
            stamp: Timestamp(1_795_478_400_000),
        }),
    };
    let blank = Entry { log_id: log_id(3, 2, 8), payload: EntryPayload::Blank };
    let member = Entry { log_id: log_id(3, 2, 9), payload: EntryPayload::Membership(membership()) };
    let request = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 2),
        prev_log_id: Some(log_id(2, 1, 6)),
        entries: vec![normal, blank, member],
        leader_commit: Some(log_id(2, 1, 6)),
    };
    let back = round_trip(&request);
    assert_eq!(back.entries.len(), 3);
    assert!(matches!(back.entries[2].payload, EntryPayload::Membership(_)));

    let heartbeat = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new(1, 1),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    round_trip(&heartbeat);
}

#[test]
fn append_entries_results_round_trip() {
    type Answer = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
    for answer in [
        Ok(AppendEntriesResponse::Success),
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(2, 1, 5)))),
        Ok(AppendEntriesResponse::Conflict),
        Ok(AppendEntriesResponse::HigherVote(Vote::new(9, 3))),
        Err(RaftError::Fatal(Fatal::Stopped)),
    ] {
        assert_round_trips::<Answer>(&answer);
    }
}

#[test]
fn vote_request_and_results_round_trip() {
    round_trip(&VoteRequest::new(Vote::new(4, 2), Some(log_id(3, 1, 10))));
    round_trip(&VoteRequest::<NodeId>::new(Vote::new(1, 1), None));
    type Answer = Result<VoteResponse<NodeId>, RaftError<NodeId>>;
    assert_round_trips::<Answer>(&Ok(VoteResponse::new(
        Vote::new(4, 2),
        Some(log_id(3, 1, 10)),
        true,
    )));
    assert_round_trips::<Answer>(&Err(RaftError::Fatal(Fatal::Panicked)));
}

#[test]
fn install_snapshot_request_and_results_round_trip() {
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(3, 2, 5_000)),
        last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
        snapshot_id: "3-2-5000".to_string(),
    };
    let chunk = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 2),
        meta,
        offset: 1024,
        data: vec![0, 1, 2, 255],
        done: true,
    };
    round_trip(&chunk);
    type Answer = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;
    assert_round_trips::<Answer>(&Ok(InstallSnapshotResponse { vote: Vote::new_committed(3, 2) }));
    let mismatch = SnapshotMismatch {
        expect: SnapshotSegmentId { id: "a".into(), offset: 0 },
        got: SnapshotSegmentId { id: "b".into(), offset: 7 },
    };
    assert_round_trips::<Answer>(&Err(RaftError::APIError(
        InstallSnapshotError::SnapshotMismatch(mismatch),
    )));
}
