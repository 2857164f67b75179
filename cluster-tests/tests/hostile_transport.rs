//! What a client written from the .proto files alone meets at a real 3-process cluster when it
//! sends what it should not, or relies on what the contract promises. Every call goes through
//! the raw generated tonic clients (or a `tonic::client::Grpc` with a bytes codec), never the
//! Rust client library, so nothing smooths over what the wire says.
//!
//! - A request message over the client port's limit (5 MiB) is RESOURCE_EXHAUSTED naming the
//!   limit, and bytes that are no protobuf are INVALID_ARGUMENT; neither message echoes the
//!   input, and both carry the leader hint (common.proto).
//! - A 100 KB `authorization` header is UNAUTHENTICATED naming the token limit, not
//!   UNAVAILABLE (which the contract tells clients to retry).
//! - The `Bearer` scheme is case-blind (RFC 7235): `bearer <token>` is accepted.
//! - `grpc.health.v1.Health/Check` answers SERVING for the whole server ("") and for each of
//!   LicenseService, StatusService and AdminService.
//! - The peer port's refusal of a caller of another cluster tells it nothing about the
//!   cluster (no cluster id, member, address or node id); the refusing node logs the details.
//! - A linearizable StatusService.Cluster on a follower is the leader's view (the leader's
//!   `node_id`, every member's matched index); a stale one is the follower's own view.
//! - A failed AdminService call on a follower carries `qlm-leader-id` and `qlm-leader-addr`
//!   naming the real leader in its trailing metadata.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use cluster_tests::{Cluster, TEST_ADMIN_TOKEN};
use qlm_node::peer::CLUSTER_REFUSAL;
use qlm_proto::v1;
use qlm_proto::v1::admin_service_client::AdminServiceClient;
use qlm_proto::v1::raft_service_client::RaftServiceClient;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use qlm_server::admin::MAX_ADMIN_TOKEN_BYTES;
use qlm_server::refusals::{MAX_CLIENT_MESSAGE_BYTES, MAX_REQUEST_METADATA_BYTES};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The rpc the raw-bytes calls go to.
const CHECKOUT: &str = "/quorumlm.v1.LicenseService/Checkout";

/// Bytes in every hostile input, looked for in what comes back.
const CANARY: &[u8] = b"CANARY-ECHO";

/// How long a test waits for the cluster to settle into what it checks.
const SETTLE: Duration = Duration::from_secs(15);

/// A codec that sends and receives raw bytes: whatever a test builds goes on the wire as is.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A unary call of `path` with `message` as the request's bytes.
async fn raw_call(channel: Channel, path: &'static str, message: Vec<u8>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let request = tonic::Request::new(message);
    grpc.unary::<_, Vec<u8>, _>(request, PathAndQuery::from_static(path), RawBytes).await?;
    Ok(())
}

/// A 3-node cluster with a leader, and one follower's id.
async fn three_nodes() -> (Cluster, u64, u64) {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    (cluster, leader, follower)
}

fn text_of(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// A trailing metadata entry of a failed call, as text.
fn trailer<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key).and_then(|v| v.to_str().ok())
}

/// Waits until a failure of `call` on `node` names `leader`'s client address in its trailers
/// (a node learns the leader's client address with Hello, a few seconds after it starts).
async fn leader_hinted(
    cluster: &Cluster,
    node: u64,
    leader: u64,
    call: impl AsyncFn(Channel) -> Status,
) -> Status {
    let deadline = Instant::now() + SETTLE;
    let addr = cluster.client_addr(leader);
    loop {
        // A connection refused on a busy machine is tried again, like a hint not yet known.
        match cluster.client_channel(node).await {
            Ok(channel) => {
                let status = call(channel).await;
                if trailer(&status, "qlm-leader-addr") == Some(addr.as_str())
                    || Instant::now() > deadline
                {
                    return status;
                }
            }
            Err(e) if Instant::now() > deadline => panic!("node {node} takes no connection: {e}"),
            Err(e) => eprintln!("node {node}: {e}; trying again"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Checkout whose bytes are no protobuf: its failure.
async fn garbage_call(channel: Channel) -> Status {
    raw_call(channel, CHECKOUT, b"\xff\xff\xff".to_vec()).await.expect_err("garbage is refused")
}

/// A protobuf message of `len` bytes in all that holds one field no request knows (number
/// 100, bytes): it decodes, as any request with the field skipped.
fn unknown_field(len: usize) -> Vec<u8> {
    let mut message = vec![0xa2, 0x06]; // field 100, wire type 2 (length-delimited)
    let mut payload_len = len - message.len() - 3;
    for _ in 0..3 {
        let more = if message.len() < 4 { 0x80 } else { 0 };
        message.push((payload_len & 0x7f) as u8 | more);
        payload_len >>= 7;
    }
    message.resize(len, b'x');
    message
}

/// An AdminService call with a wrong token: its failure.
async fn wrong_token_call(channel: Channel) -> Status {
    let mut admin = AdminServiceClient::new(channel);
    let mut request = tonic::Request::new(v1::ReloadRequest {});
    let bearer = "Bearer not-the-token".parse().expect("a metadata value");
    request.metadata_mut().insert("authorization", bearer);
    admin.reload(request).await.expect_err("a wrong token is refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_or_undecodable_request_gets_the_contracts_codes_without_echo() {
    let (cluster, leader, follower) = three_nodes().await;
    for id in [leader, follower] {
        let channel = cluster.client_channel(id).await.expect("a channel");
        let oversize: Vec<u8> = CANARY.iter().copied().cycle().take(5 << 20).collect();
        let status = raw_call(channel.clone(), CHECKOUT, oversize).await.expect_err("refused");
        assert_eq!(status.code(), Code::ResourceExhausted, "node {id}: {}", text_of(&status));
        let limit = MAX_CLIENT_MESSAGE_BYTES.to_string();
        assert!(status.message().contains(&limit), "names the limit: {}", text_of(&status));
        assert!(!status.message().contains("CANARY"), "{}", text_of(&status));

        let mut garbage = b"\xff\xff\xff\xff\x0f".to_vec();
        garbage.extend_from_slice(CANARY);
        let status = raw_call(channel.clone(), CHECKOUT, garbage).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "node {id}: {}", text_of(&status));
        assert!(!status.message().contains("CANARY"), "{}", text_of(&status));
        assert!(!status.message().contains("Protobuf"), "no decoder internals: {status:?}");

        // At the limit, the message reaches the service, which judges its (empty) fields.
        let at_limit = unknown_field(MAX_CLIENT_MESSAGE_BYTES);
        let status = raw_call(channel, CHECKOUT, at_limit).await.expect_err("not a checkout");
        assert_ne!(status.code(), Code::ResourceExhausted, "{}", text_of(&status));
        assert!(!status.message().contains("does not decode"), "{}", text_of(&status));
    }
    // The refusals carry the leader hint, as every failed rpc does.
    let status = leader_hinted(&cluster, follower, leader, garbage_call).await;
    assert_eq!(trailer(&status, "qlm-leader-id"), Some(leader.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_authorization_header_is_unauthenticated_naming_the_limit() {
    let (cluster, leader, _) = three_nodes().await;
    let channel = cluster.client_channel(leader).await.expect("a channel");
    let mut admin = AdminServiceClient::new(channel);
    let reload_with = |token: String| {
        let mut request = tonic::Request::new(v1::ReloadRequest {});
        let value = format!("Bearer {token}").parse().expect("a metadata value");
        request.metadata_mut().insert("authorization", value);
        request
    };

    let huge = "A".repeat(100_000);
    let status = admin.reload(reload_with(huge)).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{}", text_of(&status));
    assert!(
        status.message().contains(&MAX_ADMIN_TOKEN_BYTES.to_string()),
        "names the limit: {}",
        text_of(&status)
    );
    assert!(!status.message().contains("AAAA"), "{}", text_of(&status));

    // Past the metadata bound, HTTP/2 refuses the call before gRPC sees it: still no
    // UNAVAILABLE, which would tell the client to retry the same thing elsewhere.
    let past_bound = "A".repeat(MAX_REQUEST_METADATA_BYTES as usize + 1024);
    let status = admin.reload(reload_with(past_bound)).await.expect_err("refused");
    eprintln!("past the metadata bound: {}", text_of(&status));
    assert_ne!(status.code(), Code::Unavailable, "{}", text_of(&status));

    // The right token, on the same client, still works.
    let answer = admin.reload(reload_with(TEST_ADMIN_TOKEN.into())).await;
    assert!(answer.is_ok(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_blind() {
    let (cluster, leader, _) = three_nodes().await;
    let channel = cluster.client_channel(leader).await.expect("a channel");
    let mut admin = AdminServiceClient::new(channel);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let holder = v1::HolderSelector { user: "nobody".into(), ..Default::default() };
        let target = v1::remove_request::Target::Holder(holder);
        let mut request = tonic::Request::new(v1::RemoveRequest { target: Some(target) });
        let value = format!("{scheme} {TEST_ADMIN_TOKEN}").parse().expect("a metadata value");
        request.metadata_mut().insert("authorization", value);
        let answer = admin.remove(request).await;
        let released = answer.map(|a| a.into_inner().released);
        assert_eq!(released.as_deref().ok(), Some(&[][..]), "{scheme}: {released:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_for_the_server_and_every_public_service() {
    let (cluster, _, follower) = three_nodes().await;
    let channel = cluster.client_channel(follower).await.expect("a channel");
    let mut health = HealthClient::new(channel);
    for service in
        ["", "quorumlm.v1.LicenseService", "quorumlm.v1.StatusService", "quorumlm.v1.AdminService"]
    {
        let request = tonic_health::pb::HealthCheckRequest { service: service.into() };
        let answer = health.check(request).await;
        let status = answer.map(|a| a.into_inner().status);
        assert_eq!(
            status.as_ref().ok(),
            Some(&(ServingStatus::Serving as i32)),
            "{service:?}: {status:?}"
        );
    }
    let request =
        tonic_health::pb::HealthCheckRequest { service: "quorumlm.v1.RaftService".into() };
    let status = health.check(request).await.expect_err("not on the client port");
    assert_eq!(status.code(), Code::NotFound, "{}", text_of(&status));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_port_tells_a_stranger_nothing_about_the_cluster() {
    let (cluster, leader, _) = three_nodes().await;
    let node = cluster.nodes.iter().find(|n| n.id == leader).expect("the leader");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.peer_addr))
        .expect("an endpoint")
        .connect()
        .await
        .expect("the peer port");
    let mut peer = RaftServiceClient::new(channel);
    let guess = "0123456789abcdef".to_owned();
    let sender_id = 77;
    let refusals = [
        peer.hello(v1::HelloRequest { cluster_id: guess.clone(), sender_id }).await.err(),
        peer.read_index(v1::ReadIndexRequest { cluster_id: guess.clone(), sender_id }).await.err(),
        peer.cluster_view(v1::ClusterViewRequest { cluster_id: guess.clone(), sender_id })
            .await
            .err(),
    ];
    let ports: Vec<String> = cluster
        .nodes
        .iter()
        .flat_map(|n| [&n.client_addr, &n.peer_addr, &n.http_addr])
        .filter_map(|addr| addr.rsplit(':').next().map(str::to_owned))
        .collect();
    for refusal in refusals {
        let status = refusal.expect("a stranger is refused");
        assert_eq!(status.code(), Code::PermissionDenied, "{}", text_of(&status));
        assert_eq!(status.message(), CLUSTER_REFUSAL, "one fixed message for every caller");
        for port in &ports {
            assert!(!status.message().contains(port.as_str()), "{port}: {}", text_of(&status));
        }
        assert!(status.metadata().get("qlm-leader-id").is_none(), "{:?}", status.metadata());
    }
    // The refusing node logs the details for its admin: who was refused, and its own list.
    let deadline = Instant::now() + SETTLE;
    let log = loop {
        let log = cluster.log_of(leader);
        if log.contains(&format!("refused node {sender_id}")) || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let logged = log.lines().find(|l| l.contains(&format!("refused node {sender_id}")));
    let logged = logged.unwrap_or_else(|| panic!("the refusal is logged:\n{log}"));
    assert!(logged.contains(cluster.initial_cluster()), "{logged}");
    assert!(logged.contains(&guess), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_cluster_call_on_a_follower_is_the_leaders_view() {
    let (cluster, leader, follower) = three_nodes().await;
    let channel = cluster.client_channel(follower).await.expect("a channel");
    let mut status = StatusServiceClient::new(channel);
    // Right after the election the leader may not have heard back from every member yet.
    let deadline = Instant::now() + SETTLE;
    let view = loop {
        let view = status.cluster(v1::ClusterRequest { stale: false }).await;
        let view = view.expect("a linearizable answer").into_inner();
        let matched = view.members.iter().all(|m| m.matched_index.is_some());
        if (matched && view.members.len() == 3) || Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view.node_id, leader, "the leader's view: {view:?}");
    assert_eq!(view.leader.as_ref().map(|l| l.id), Some(leader), "{view:?}");
    assert_eq!(view.members.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3], "{view:?}");
    for member in &view.members {
        assert!(member.matched_index.is_some() && member.lag.is_some(), "{member:?}");
        assert!(member.reachable, "the leader reaches every member: {member:?}");
        assert_eq!(member.applied_index.is_some(), member.id == leader, "{member:?}");
    }
    assert!(view.applied_index >= 1 && view.commit_index >= view.applied_index, "{view:?}");

    let own = status.cluster(v1::ClusterRequest { stale: true }).await.expect("a stale answer");
    let own = own.into_inner();
    assert_eq!(own.node_id, follower, "a stale answer is the follower's own view: {own:?}");
    assert!(own.members.iter().all(|m| m.matched_index.is_none()), "{own:?}");
    let applied: Vec<u64> = own.members.iter().filter_map(|m| m.applied_index).collect();
    assert_eq!(applied, [own.applied_index], "only its own applied index: {own:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_admin_call_on_a_follower_names_the_leader_in_its_trailers() {
    let (cluster, leader, follower) = three_nodes().await;
    let status = leader_hinted(&cluster, follower, leader, wrong_token_call).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{}", text_of(&status));
    assert_eq!(trailer(&status, "qlm-leader-id"), Some(leader.to_string().as_str()));
    let addr = cluster.client_addr(leader);
    assert_eq!(trailer(&status, "qlm-leader-addr"), Some(addr.as_str()), "{:?}", status.metadata());
}
