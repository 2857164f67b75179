//! A real one-node openraft cluster on the sled stores: it forms, grants a checkout through
//! the log, snapshots and purges, and after a restart it is the same node with the same
//! engine (snapshot restored, the log after it re-applied), and refuses to be initialized
//! again.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftMetrics};
use qlm_engine::testkit::pool;
use qlm_engine::{Command, Outcome};
use qlm_license::Policy;
use qlm_node::proposer::Proposer;
use qlm_raft::{
    LogEntry, LogId, LogStore, NodeId, Raft, SharedReplica, StateMachineStore, TypeConfig,
    open_stores, raft_config,
};

/// How long the test waits for the node to elect itself or apply.
const WAIT: Duration = Duration::from_secs(10);

/// A network to nobody: a one-node cluster never sends a message.
struct NoPeers;

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

fn no_peer<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("a one-node test has no peers")))
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: NodeId, _node: &BasicNode) -> NoPeers {
        NoPeers
    }
}

impl RaftNetwork<TypeConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        Err(no_peer())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        Err(no_peer())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        Err(no_peer())
    }
}

/// Starts node 1 on `dir`; returns it, its replica, and whether its store was fresh.
async fn start(dir: &Path) -> (Raft, SharedReplica, bool) {
    let (log, state_machine) = open_when_released(dir).await;
    let fresh = log.is_fresh();
    let replica = state_machine.replica();
    // Keep no log behind a snapshot, so that a restart must use the snapshot.
    let config =
        openraft::Config { max_in_snapshot_log_to_keep: 0, ..raft_config().expect("config") };
    let config = Arc::new(config.validate().expect("valid config"));
    let raft = Raft::new(1, config, NoPeers, log, state_machine).await.expect("start raft");
    (raft, replica, fresh)
}

/// Opens the stores, waiting for a previous node's tasks to let go of the database: openraft's
/// shutdown ends its core, but the tasks that hold a store clone finish a moment later, and
/// sled keeps its directory locked until the last handle is dropped (docs/DESIGN.md, trap 3).
async fn open_when_released(dir: &Path) -> (LogStore, StateMachineStore) {
    let started = tokio::time::Instant::now();
    loop {
        match open_stores(dir) {
            Ok(stores) => return stores,
            Err(e) if started.elapsed() > WAIT => panic!("open the stores: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Proposes `command`; returns its log id and outcome once applied.
async fn write(raft: &Raft, command: Command) -> (LogId, Outcome) {
    let response =
        raft.client_write(LogEntry::stamped_now(vec![command])).await.expect("client write");
    let mut answers = response.data.into_iter();
    (response.log_id, answers.next().expect("one answer per command").outcome)
}

fn metrics(raft: &Raft) -> RaftMetrics<NodeId, BasicNode> {
    raft.metrics().borrow().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_has_the_same_engine_and_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (raft, replica, fresh) = start(tmp.path()).await;
    assert!(fresh);
    let members = BTreeMap::from([(1, BasicNode::new("127.0.0.1:7401"))]);
    raft.initialize(members.clone()).await.expect("initialize");
    raft.wait(Some(WAIT)).current_leader(1, "node 1 leads").await.expect("a leader");

    let licenses =
        Command::LoadLicenses { pools: vec![pool("vhdl-editor", 2)], policy: Policy::default() };
    assert!(matches!(write(&raft, licenses).await.1, Outcome::LicensesLoaded { serving: 1, .. }));
    let session = Command::OpenSession {
        session_id: "s1".into(),
        secret: "s3cret".into(),
        user: "alice".into(),
        host: "ws1".into(),
        pid: 7,
        display: ":0".into(),
        ttl_ms: 30_000,
    };
    assert!(matches!(write(&raft, session).await.1, Outcome::SessionOpened { .. }));
    let checkout = |request: &str| Command::Checkout {
        session_id: "s1".into(),
        request_id: request.into(),
        feature: "vhdl-editor".into(),
        version: "1.0".parse().expect("version"),
        count: 1,
        wait: false,
        borrow_until: None,
    };
    let (snapshot_at, granted) = write(&raft, checkout("r1")).await;
    assert!(matches!(granted, Outcome::Granted(_)));

    raft.trigger().snapshot().await.expect("trigger a snapshot");
    raft.wait(Some(WAIT)).snapshot(snapshot_at, "snapshot built").await.expect("a snapshot");
    raft.wait(Some(WAIT)).purged(Some(snapshot_at), "log purged").await.expect("a purge");
    // After the snapshot: only the log has it.
    let (last_applied, granted) = write(&raft, checkout("r2")).await;
    assert!(matches!(granted, Outcome::Granted(_)));

    let before = replica.read().await.engine().snapshot();
    raft.shutdown().await.expect("shut down");
    drop((raft, replica));

    let (raft, replica, fresh) = start(tmp.path()).await;
    assert!(!fresh, "the restarted node is a member, not fresh");
    assert!(raft.initialize(members).await.is_err(), "initialize must be refused");
    raft.wait(Some(WAIT)).current_leader(1, "node 1 leads again").await.expect("a leader");
    raft.wait(Some(WAIT))
        .applied_index_at_least(Some(last_applied.index), "log re-applied")
        .await
        .expect("re-applied");
    assert_eq!(replica.read().await.engine().snapshot(), before);
    assert_eq!(metrics(&raft).purged, Some(snapshot_at));
    raft.shutdown().await.expect("shut down");
}

/// A node without followers never sees an AppendEntries answered: the proposer must go on by
/// itself, proposing what queued while an entry was on its way as soon as that entry is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_leader_batches_concurrent_writes_and_answers_every_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (raft, _replica, _) = start(tmp.path()).await;
    let members = BTreeMap::from([(1, BasicNode::new("127.0.0.1:7401"))]);
    raft.initialize(members).await.expect("initialize");
    raft.wait(Some(WAIT)).current_leader(1, "node 1 leads").await.expect("a leader");
    let proposer = Proposer::new(raft.clone());

    const WRITERS: usize = 200;
    let indexes = common::open_sessions_at_once(&proposer, WRITERS, WAIT).await;
    assert!(indexes.len() < WRITERS, "{WRITERS} writes took {} entries", indexes.len());
    assert_eq!(proposer.entries_on_answer(), 0, "a lone leader has no follower to answer");
    raft.shutdown().await.expect("shutdown");
}
