//! Three openraft nodes in one process, talking over real gRPC on loopback: each has its own
//! sled store, its own PeerService on its own port, and the GrpcNetworkFactory. The cluster
//! forms, replicates to every replica, survives the loss of its leader, catches a follower up
//! on more entries of the largest size than one message carries, and refuses messages that
//! are not for it.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use qlm_engine::testkit::pool;
use qlm_engine::{Applied, Command, Outcome};
use qlm_license::Policy;
use qlm_node::peer::{self, LEADER_ID_METADATA, LeaderOps, PeerService};
use qlm_node::proposer::Proposer;
use qlm_proto::v1::raft_service_client::RaftServiceClient;
use qlm_proto::v1::{ForwardRequest, HelloRequest, RaftPayloadFormat, RaftRequest};
use qlm_raft::network::{MAX_PEER_MESSAGE_BYTES, decode_payload, encode_payload, payload_len};
use qlm_raft::{
    GrpcNetworkFactory, LogEntry, MAX_ENTRY_BYTES, NodeId, Raft, ReplicationSignal, SharedReplica,
    open_stores, raft_config,
};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

/// The cluster id every node of these tests shares.
const CLUSTER: &str = "grpc-test-cluster";

/// Longest wait for one step (an election, an apply, a shutdown).
const STEP: Duration = Duration::from_secs(8);

/// Longest a whole test may take: it fails rather than hangs.
const WHOLE_TEST: Duration = Duration::from_secs(25);

/// The leader side for tests: writes through the server's batching proposer, read indexes
/// through Raft, no leases.
struct TestLeader {
    raft: Raft,
    proposer: Arc<Proposer>,
    id: NodeId,
}

impl LeaderOps for TestLeader {
    fn forward(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<(Applied, u64), Status>> + Send {
        let proposer = self.proposer.clone();
        async move { proposer.propose(command).await }
    }

    fn renew(&self, session_id: &str) -> impl Future<Output = Result<u64, Status>> + Send {
        let missing = Status::not_found(format!("no lease for session {session_id}"));
        async move { Err(missing) }
    }

    fn read_index(&self) -> impl Future<Output = Result<u64, Status>> + Send {
        let raft = self.raft.clone();
        async move { peer::read_index(&raft).await }
    }

    async fn cluster_view(&self) -> Result<qlm_proto::v1::ClusterResponse, Status> {
        Err(Status::unimplemented("no cluster view in this test"))
    }

    fn hello(&self) -> qlm_proto::v1::HelloResponse {
        qlm_proto::v1::HelloResponse {
            id: self.id,
            client_addr: format!("client-{}:7400", self.id),
            http_addr: format!("http-{}:7402", self.id),
            hostid: format!("host-{}", self.id),
            unix_micros: qlm_node::clock::wall_us(),
        }
    }
}

/// One node: Raft on its own store, served on its own loopback port.
struct TestNode {
    id: NodeId,
    addr: String,
    raft: Raft,
    replica: SharedReplica,
    /// The proposer the node's Forward handler writes through, fed by its network's answers.
    proposer: Arc<Proposer>,
    /// What the node's network reports of its followers' answers and commit notices.
    replicated: ReplicationSignal,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    _dir: TempDir,
}

impl TestNode {
    async fn start(id: NodeId, listener: TcpListener) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = listener.local_addr().expect("local addr").to_string();
        let (log, state_machine) = open_stores(dir.path()).expect("open stores");
        let replica = state_machine.replica();
        let config = Arc::new(raft_config().expect("config"));
        let replicated = ReplicationSignal::default();
        let network =
            GrpcNetworkFactory::new(CLUSTER, id).with_replication_signal(replicated.clone());
        let raft = Raft::new(id, config, network, log, state_machine).await.expect("start raft");
        let proposer = Proposer::new(raft.clone());
        proposer.listen(&replicated);
        let (stop, server) = serve(&raft, &proposer, id, listener);
        TestNode {
            id,
            addr,
            raft,
            replica,
            proposer,
            replicated,
            stop: Some(stop),
            server,
            _dir: dir,
        }
    }

    /// Stops the node: its Raft, then its server.
    async fn stop(&mut self) {
        tokio::time::timeout(STEP, self.raft.shutdown())
            .await
            .expect("raft shuts down in time")
            .expect("raft shuts down");
        self.stop_server().await;
    }

    /// Stops the node's server: no peer reaches it, while its Raft runs on.
    async fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = tokio::time::timeout(STEP, &mut self.server).await;
        assert!(matches!(server, Ok(Ok(Ok(())))), "server stops cleanly: {server:?}");
    }

    /// Serves the node again on its address after [`TestNode::stop_server`].
    async fn serve_again(&mut self) {
        let listener = TcpListener::bind(&self.addr).await.expect("bind the node's port again");
        let (stop, server) = serve(&self.raft, &self.proposer, self.id, listener);
        self.stop = Some(stop);
        self.server = server;
    }

    async fn client(&self) -> RaftServiceClient<tonic::transport::Channel> {
        let url = format!("http://{}", self.addr);
        tokio::time::timeout(STEP, RaftServiceClient::connect(url))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    /// The engine's snapshot bytes once this replica has applied `index`.
    async fn engine_at(&self, index: u64) -> Vec<u8> {
        self.raft
            .wait(Some(STEP))
            .applied_index_at_least(Some(index), "entry applied")
            .await
            .expect("applied in time");
        self.replica.read().await.engine().snapshot()
    }
}

/// Serves node `id`'s PeerService on `listener`: what stops the server, and its task.
fn serve(
    raft: &Raft,
    proposer: &Arc<Proposer>,
    id: NodeId,
    listener: TcpListener,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), tonic::transport::Error>>) {
    let leader = TestLeader { raft: raft.clone(), proposer: proposer.clone(), id };
    let service = PeerService::new(raft.clone(), CLUSTER, id, leader);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stopped.await;
            }),
    );
    (stop, server)
}

async fn listeners(n: usize) -> Vec<TcpListener> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port"));
    }
    all
}

/// The leader every node in `nodes` agrees on.
async fn agreed_leader(nodes: &[&TestNode], not: Option<NodeId>) -> NodeId {
    let first = nodes[0]
        .raft
        .wait(Some(STEP))
        .metrics(|m| m.current_leader.is_some() && m.current_leader != not, "a leader")
        .await
        .expect("a leader is elected")
        .current_leader
        .expect("a leader");
    for node in &nodes[1..] {
        node.raft
            .wait(Some(STEP))
            .current_leader(first, "the same leader")
            .await
            .expect("every node follows the leader");
    }
    first
}

fn open_session(session_id: &str) -> Command {
    Command::OpenSession {
        session_id: session_id.into(),
        secret: "s3cret".into(),
        user: "alice".into(),
        host: "ws1".into(),
        pid: 7,
        display: ":0".into(),
        ttl_ms: 30_000,
    }
}

/// Proposes on `raft`; the log index once applied on the leader.
async fn write(raft: &Raft, command: Command) -> u64 {
    write_entry(raft, vec![command]).await
}

/// Proposes one entry of `commands` on `raft`; its log index once applied on the leader.
async fn write_entry(raft: &Raft, commands: Vec<Command>) -> u64 {
    let written = tokio::time::timeout(STEP, raft.client_write(LogEntry::stamped_now(commands)))
        .await
        .expect("written in time")
        .expect("written");
    written.log_id.index
}

fn forward_request(command: Vec<u8>) -> ForwardRequest {
    ForwardRequest {
        cluster_id: CLUSTER.into(),
        sender_id: 9,
        format: RaftPayloadFormat::PostcardV2.into(),
        command,
    }
}

/// Three nodes, ids 1, 2, 3 at positions 0, 1, 2, initialized by node 1; and their leader.
async fn three_node_cluster() -> (Vec<TestNode>, NodeId) {
    let mut nodes = Vec::new();
    for (id, listener) in (1..=3).zip(listeners(3).await) {
        nodes.push(TestNode::start(id, listener).await);
    }
    let members: BTreeMap<NodeId, BasicNode> =
        nodes.iter().map(|n| (n.id, BasicNode::new(n.addr.clone()))).collect();
    nodes[0].raft.initialize(members).await.expect("node 1 initializes the cluster");
    let leader = agreed_leader(&nodes.iter().collect::<Vec<_>>(), None).await;
    (nodes, leader)
}

/// Runs a test's body, failing it when it takes longer than [`WHOLE_TEST`].
async fn within_whole_test(body: impl Future<Output = ()>) {
    tokio::time::timeout(WHOLE_TEST, body).await.expect("the test finishes in time");
}

/// The position in a test's node list of node `id` (ids are 1, 2, 3 at positions 0, 1, 2).
fn at(id: NodeId) -> usize {
    usize::try_from(id - 1).expect("a node of the test")
}

/// Stops every node of a test.
async fn stop_all(nodes: &mut [TestNode]) {
    for node in nodes {
        node.stop().await;
    }
}

/// The engine bytes of every node once it has applied `index`, which must all be the same.
async fn assert_same_engines(nodes: &[TestNode], index: u64) {
    let engines = [
        nodes[0].engine_at(index).await,
        nodes[1].engine_at(index).await,
        nodes[2].engine_at(index).await,
    ];
    assert_eq!(engines[0], engines[1], "replicas 1 and 2 hold the same engine");
    assert_eq!(engines[0], engines[2], "replicas 1 and 3 hold the same engine");
}

async fn three_nodes_replicate_and_survive_their_leader() {
    let (mut nodes, leader) = three_node_cluster().await;
    let licenses =
        Command::LoadLicenses { pools: vec![pool("vhdl-editor", 2)], policy: Policy::default() };
    write(&nodes[at(leader)].raft, licenses).await;
    let index = write(&nodes[at(leader)].raft, open_session("s1")).await;
    assert_same_engines(&nodes, index).await;

    // A follower refuses a forwarded write and names the leader; the leader applies it.
    let follower = nodes.iter().find(|n| n.id != leader).expect("a follower");
    let command = encode_payload(&open_session("s2")).expect("encode");
    let refused = follower
        .client()
        .await
        .forward(forward_request(command.clone()))
        .await
        .expect_err("a follower does not propose");
    assert_eq!(refused.code(), Code::Unavailable);
    let hint = refused.metadata().get(LEADER_ID_METADATA).and_then(|v| v.to_str().ok());
    assert_eq!(hint, Some(leader.to_string().as_str()));
    let forwarded = nodes[at(leader)]
        .client()
        .await
        .forward(forward_request(command))
        .await
        .expect("the leader applies a forwarded write")
        .into_inner();
    let applied: Applied = decode_payload(&forwarded.applied).expect("decode the outcome");
    assert!(matches!(applied.outcome, Outcome::SessionOpened { .. }), "{applied:?}");
    assert!(forwarded.log_index > index);

    // The leader goes down; the other two elect a new one and go on replicating.
    let old = at(leader);
    nodes[old].stop().await;
    let survivors: Vec<&TestNode> = nodes.iter().filter(|n| n.id != leader).collect();
    let new_leader = agreed_leader(&survivors, Some(leader)).await;
    assert_ne!(new_leader, leader);
    let index = write(&nodes[at(new_leader)].raft, open_session("s3")).await;
    assert!(index > forwarded.log_index);
    let first = survivors[0].engine_at(index).await;
    let second = survivors[1].engine_at(index).await;
    assert_eq!(first, second, "the survivors hold the same engine");

    for node in nodes.iter_mut().filter(|n| n.id != leader) {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_grpc_nodes_replicate_and_elect_a_new_leader_when_theirs_stops() {
    within_whole_test(three_nodes_replicate_and_survive_their_leader()).await;
}

async fn a_node_refuses_what_is_not_for_it() {
    let listener = listeners(1).await.pop().expect("a listener");
    let mut node = TestNode::start(1, listener).await;
    let mut client = node.client().await;
    let raft_request = |cluster_id: &str, target_id: NodeId, format: i32, payload: Vec<u8>| {
        RaftRequest { cluster_id: cluster_id.into(), sender_id: 2, target_id, format, payload }
    };
    let postcard = i32::from(RaftPayloadFormat::PostcardV2);
    let garbage = vec![0xff; 7];

    let other_cluster = client.vote(raft_request("another-cluster", 1, postcard, garbage.clone()));
    assert_eq!(other_cluster.await.expect_err("refused").code(), Code::PermissionDenied);
    let other_node = client.vote(raft_request(CLUSTER, 2, postcard, garbage.clone()));
    assert_eq!(other_node.await.expect_err("refused").code(), Code::FailedPrecondition);
    let unknown_format = client.append_entries(raft_request(CLUSTER, 1, 0, garbage.clone()));
    assert_eq!(unknown_format.await.expect_err("refused").code(), Code::Unimplemented);
    for refused in [
        client.append_entries(raft_request(CLUSTER, 1, postcard, garbage.clone())).await,
        client.vote(raft_request(CLUSTER, 1, postcard, garbage.clone())).await,
        client.install_snapshot(raft_request(CLUSTER, 1, postcard, garbage.clone())).await,
    ] {
        assert_eq!(refused.expect_err("refused").code(), Code::InvalidArgument);
    }
    let forward = client.forward(forward_request(garbage)).await;
    assert_eq!(forward.expect_err("refused").code(), Code::InvalidArgument);
    let hello = client.hello(HelloRequest { cluster_id: "another-cluster".into(), sender_id: 2 });
    assert_eq!(hello.await.expect_err("refused").code(), Code::PermissionDenied);
    let hello = client
        .hello(HelloRequest { cluster_id: CLUSTER.into(), sender_id: 2 })
        .await
        .expect("hello")
        .into_inner();
    assert_eq!((hello.id, hello.client_addr.as_str()), (1, "client-1:7400"));

    // Still a healthy node: a refusal changed nothing.
    let members = BTreeMap::from([(1, BasicNode::new(node.addr.clone()))]);
    node.raft.initialize(members).await.expect("initialize");
    node.raft.wait(Some(STEP)).current_leader(1, "node 1 leads").await.expect("a leader");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_other_clusters_other_targets_and_garbage() {
    within_whole_test(a_node_refuses_what_is_not_for_it()).await;
}

async fn followers_learn_a_commit_from_a_held_notice() {
    let (mut nodes, leader) = three_node_cluster().await;
    for node in &nodes {
        node.raft.runtime_config().heartbeat(false);
        node.raft.runtime_config().elect(false);
    }
    let (held_before, sent_before) = nodes[at(leader)].replicated.commit_notices();

    // One write: both followers append it and answer; the leader commits. The commit index
    // then reaches them only by the notices the network held back and sends late, as no
    // heartbeat runs and no other write follows.
    let index = write(&nodes[at(leader)].raft, open_session("s1")).await;
    for node in nodes.iter().filter(|n| n.id != leader) {
        node.raft
            .wait(Some(STEP))
            .applied_index_at_least(Some(index), "the follower applies the write")
            .await
            .expect("a follower learns the commit without heartbeats or later writes");
    }
    let (held, sent) = nodes[at(leader)].replicated.commit_notices();
    assert!(held > held_before, "no commit notice was held");
    assert!(sent > sent_before, "no held commit notice was sent");
    assert_same_engines(&nodes, index).await;
    stop_all(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_learn_a_commit_from_a_held_notice_without_heartbeats() {
    within_whole_test(followers_learn_a_commit_from_a_held_notice()).await;
}

async fn concurrent_writes_are_batched_and_each_answered() {
    let (mut nodes, leader) = three_node_cluster().await;
    let leader = nodes.iter().find(|n| n.id == leader).expect("the leader's node");

    // Many writers at once: while one entry is on its way, the others gather and are proposed
    // when a follower answers.
    const WRITERS: usize = 300;
    let indexes = common::open_sessions_at_once(&leader.proposer, WRITERS, STEP).await;
    assert!(
        indexes.len() < WRITERS / 4,
        "{WRITERS} writes took {} entries: they were not batched",
        indexes.len()
    );
    assert!(leader.proposer.entries_on_answer() > 0, "no entry was proposed on an answer");
    assert_same_engines(&nodes, *indexes.last().expect("an index")).await;
    stop_all(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_the_proposer_are_batched_and_each_answered() {
    within_whole_test(concurrent_writes_are_batched_and_each_answered()).await;
}

/// Entries of the largest size written while a follower is cut off: more bytes than one peer
/// message carries.
const LARGE_ENTRIES: usize = 20;

/// The commands of one entry of the largest size the proposer makes: session opens (`name`
/// and a number) whose user and host names take 256 bytes each, as many as fit in
/// [`MAX_ENTRY_BYTES`].
fn largest_entry(name: &str) -> Vec<Command> {
    let (mut commands, mut bytes) = (Vec::new(), 0);
    for i in 0.. {
        let open = Command::OpenSession {
            session_id: format!("{name}-{i}").as_str().into(),
            secret: "k".repeat(32).into(),
            user: "u".repeat(256),
            host: "h".repeat(256),
            pid: 7,
            display: ":0".into(),
            ttl_ms: 30_000,
        };
        bytes += payload_len(&open).expect("a command's size");
        if bytes > MAX_ENTRY_BYTES {
            break;
        }
        commands.push(open);
    }
    commands
}

async fn a_follower_behind_by_many_large_entries_catches_up_from_a_new_leader() {
    let (mut nodes, leader) = three_node_cluster().await;
    let followers: Vec<NodeId> = nodes.iter().map(|n| n.id).filter(|&id| id != leader).collect();
    let (kept, cut) = (followers[0], followers[1]);

    // One follower is cut off: no peer reaches it, and it does not stand for election (which
    // would only disturb the others with its terms).
    nodes[at(cut)].raft.runtime_config().elect(false);
    nodes[at(cut)].stop_server().await;
    let (mut last, mut bytes) = (0, 0);
    for i in 0..LARGE_ENTRIES {
        let commands = largest_entry(&format!("e{i}"));
        bytes += payload_len(&commands).expect("an entry's size");
        last = write_entry(&nodes[at(leader)].raft, commands).await;
    }
    assert!(bytes > MAX_PEER_MESSAGE_BYTES, "{bytes} bytes");

    // The leader goes and the follower comes back: the new leader, the only node with the
    // whole log, must send it all of those entries, and a write needs them both.
    nodes[at(leader)].stop().await;
    nodes[at(cut)].serve_again().await;
    let survivors = [&nodes[at(kept)], &nodes[at(cut)]];
    assert_eq!(agreed_leader(&survivors, Some(leader)).await, kept);
    nodes[at(cut)]
        .raft
        .wait(Some(STEP))
        .applied_index_at_least(Some(last), "the follower applies every large entry")
        .await
        .expect("the follower catches up in time");
    let index = write(&nodes[at(kept)].raft, open_session("after")).await;
    let engines = [nodes[at(kept)].engine_at(index).await, nodes[at(cut)].engine_at(index).await];
    assert_eq!(engines[0], engines[1], "the survivors hold the same engine");
    for node in nodes.iter_mut().filter(|n| n.id != leader) {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_by_more_than_a_message_catches_up_from_a_new_leader() {
    within_whole_test(a_follower_behind_by_many_large_entries_catches_up_from_a_new_leader()).await;
}
