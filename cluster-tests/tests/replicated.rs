//! A real 3-process cluster: every node serves the one shared count, a leader's death loses
//! no acknowledged checkout, a retried request never grants twice, silent sessions expire.

use std::time::Duration;

use cluster_tests::{Cluster, RawSession};
use qlm_proto::v1;
use qlm_proto::v1::license_service_client::LicenseServiceClient;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use tonic::transport::Channel;

async fn license_client(cluster: &Cluster, id: u64) -> LicenseServiceClient<Channel> {
    LicenseServiceClient::connect(format!("http://{}", cluster.client_addr(id)))
        .await
        .expect("a connection to the node")
}

async fn open(client: &mut LicenseServiceClient<Channel>, user: &str, ttl_ms: u64) -> RawSession {
    let request = v1::OpenSessionRequest {
        user: user.into(),
        host: "ws1".into(),
        pid: 42,
        display: String::new(),
        ttl_ms,
        request_id: String::new(),
    };
    client.open_session(request).await.expect("a session").into_inner().into()
}

fn checkout_request(session: &RawSession, request_id: &str) -> v1::CheckoutRequest {
    v1::CheckoutRequest {
        session_id: session.id.clone(),
        session_secret: session.secret.clone(),
        request_id: request_id.into(),
        feature: "vhdl-editor".into(),
        version: String::new(),
        count: 1,
        wait: false,
        borrow_until_unix_ms: None,
    }
}

fn is_granted(answer: &v1::CheckoutResponse) -> bool {
    matches!(answer.result, Some(v1::checkout_response::Result::Granted(_)))
}

async fn try_seats_in_use(cluster: &Cluster, id: u64, stale: bool) -> Result<u64, String> {
    let mut status = StatusServiceClient::connect(format!("http://{}", cluster.client_addr(id)))
        .await
        .map_err(|e| e.to_string())?;
    let request = v1::FeaturesRequest { stale, feature: "vhdl-editor".into() };
    let features = status.features(request).await.map_err(|e| e.to_string())?.into_inner().features;
    Ok(features.first().map_or(0, |f| f.seats_in_use))
}

async fn seats_in_use(cluster: &Cluster, id: u64, stale: bool) -> u64 {
    try_seats_in_use(cluster, id, stale)
        .await
        .unwrap_or_else(|e| panic!("status of node {id}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_through_every_node_count_against_one_shared_count() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let mut granted = 0;
    for i in 0..25u64 {
        let node = i % 3 + 1;
        let mut client = license_client(&cluster, node).await;
        let session = open(&mut client, &format!("user{i}"), 60_000).await;
        let answer = client.checkout(checkout_request(&session, "r1")).await.expect("an answer");
        assert!(is_granted(answer.get_ref()), "checkout {i} via node {node}: {answer:?}");
        granted += 1;
    }
    assert_eq!(granted, 25);
    for node in 1..=3 {
        let mut client = license_client(&cluster, node).await;
        let session = open(&mut client, "late", 60_000).await;
        let answer = client.checkout(checkout_request(&session, "r1")).await.expect("an answer");
        match answer.into_inner().result {
            Some(v1::checkout_response::Result::Denied(denied)) => {
                assert_eq!(denied.reason(), v1::DenialReason::AllInUse);
                assert!(!denied.holders.is_empty());
            }
            other => panic!("the 26th seat via node {node} was not denied: {other:?}"),
        }
    }
    // A linearizable read on any node sees all 25.
    for node in 1..=3 {
        assert_eq!(seats_in_use(&cluster, node, false).await, 25, "node {node}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_node_does_not_grant_twice() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let mut first = license_client(&cluster, 1).await;
    let session = open(&mut first, "alice", 60_000).await;
    let a = first.checkout(checkout_request(&session, "same")).await.expect("answer").into_inner();
    let mut other = license_client(&cluster, 3).await;
    let b = other.checkout(checkout_request(&session, "same")).await.expect("answer").into_inner();
    assert!(is_granted(&a));
    assert_eq!(a.result, b.result, "the retry returns the first grant");
    assert_eq!(seats_in_use(&cluster, 2, false).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_checkout() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let follower = if leader == 1 { 2 } else { 1 };
    let mut client = license_client(&cluster, follower).await;
    for i in 0..5 {
        let session = open(&mut client, &format!("u{i}"), 60_000).await;
        let answer = client.checkout(checkout_request(&session, "r")).await.expect("answer");
        assert!(is_granted(answer.get_ref()));
    }
    cluster.kill(leader);
    let new_leader = cluster.wait_ready().await;
    assert_ne!(new_leader, leader);
    assert_eq!(
        seats_in_use(&cluster, new_leader, false).await,
        5,
        "every acknowledged seat survives"
    );
    // And the survivors grant again.
    let mut client = license_client(&cluster, new_leader).await;
    let session = open(&mut client, "after", 60_000).await;
    let answer = client.checkout(checkout_request(&session, "r")).await.expect("answer");
    assert!(is_granted(answer.get_ref()));
    // The killed node restarts from its data and catches up.
    cluster.spawn(leader);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if try_seats_in_use(&cluster, leader, true).await == Ok(6) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {leader} did not catch up:\n{}",
            cluster.log_of(leader)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_loses_its_seats_after_its_ttl_and_a_heartbeating_one_keeps_them() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let mut client = license_client(&cluster, 2).await;
    let silent = open(&mut client, "silent", 2_000).await;
    let alive = open(&mut client, "alive", 2_000).await;
    for session in [&silent, &alive] {
        let answer = client.checkout(checkout_request(session, "r")).await.expect("answer");
        assert!(is_granted(answer.get_ref()));
    }
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let beat = v1::HeartbeatRequest {
            session_id: alive.id.clone(),
            session_secret: alive.secret.clone(),
        };
        client.heartbeat(beat).await.expect("the heartbeat is taken");
    }
    assert_eq!(
        seats_in_use(&cluster, 1, false).await,
        1,
        "only the heartbeating client holds a seat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_quorum_answers_unavailable_within_the_deadline() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let survivor = (1..=3).find(|&id| id != leader).unwrap_or(1);
    let mut client = license_client(&cluster, survivor).await;
    let session = open(&mut client, "alone", 60_000).await;
    for id in (1..=3).filter(|&id| id != survivor) {
        cluster.kill(id);
    }
    let started = std::time::Instant::now();
    let answer = client.checkout(checkout_request(&session, "r")).await;
    let status = answer.expect_err("no quorum, no grant");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_remove_needs_the_token_and_frees_the_seat() {
    use qlm_proto::v1::admin_service_client::AdminServiceClient;
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let mut client = license_client(&cluster, 1).await;
    let session = open(&mut client, "stuck", 60_000).await;
    let answer = client.checkout(checkout_request(&session, "r")).await.expect("answer");
    assert!(is_granted(answer.get_ref()));
    let mut admin = AdminServiceClient::connect(format!("http://{}", cluster.client_addr(2)))
        .await
        .expect("a connection");
    let remove = || v1::RemoveRequest {
        target: Some(v1::remove_request::Target::Holder(v1::HolderSelector {
            user: "stuck".into(),
            host: String::new(),
            feature: String::new(),
        })),
    };
    let denied = admin.remove(remove()).await.expect_err("no token, no removal");
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(remove());
    let bearer = format!("Bearer {}", cluster_tests::TEST_ADMIN_TOKEN);
    request.metadata_mut().insert("authorization", bearer.parse().expect("ascii"));
    let removed = admin.remove(request).await.expect("removed").into_inner();
    assert_eq!(removed.released.len(), 1);
    assert_eq!(seats_in_use(&cluster, 3, false).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_heartbeats_through_a_leader_change_keeps_its_seat() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let survivor = (1..=3).find(|&id| id != leader).unwrap_or(1);
    let mut client = license_client(&cluster, survivor).await;
    let session = open(&mut client, "steady", 3_000).await;
    let answer = client.checkout(checkout_request(&session, "r")).await.expect("answer");
    assert!(is_granted(answer.get_ref()));
    cluster.kill(leader);
    // Heartbeat every 500 ms for 6 s (twice the TTL), through the election; some beats fail
    // while there is no leader, as a real client's would.
    for _ in 0..12 {
        let mut beat = tonic::Request::new(v1::HeartbeatRequest {
            session_id: session.id.clone(),
            session_secret: session.secret.clone(),
        });
        beat.set_timeout(Duration::from_millis(400));
        let _ = client.heartbeat(beat).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.wait_ready().await;
    assert_eq!(seats_in_use(&cluster, survivor, false).await, 1, "the seat survived the failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let mut client = license_client(&cluster, 2).await;
    let session = open(&mut client, "careful", 60_000).await;
    let unknown =
        v1::CheckoutRequest { feature: "no-such-tool".into(), ..checkout_request(&session, "a") };
    match client.checkout(unknown).await.expect("a denial is an answer").into_inner().result {
        Some(v1::checkout_response::Result::Denied(d)) => {
            assert_eq!(d.reason(), v1::DenialReason::NoSuchFeature)
        }
        other => panic!("unknown feature: {other:?}"),
    }
    let huge = v1::CheckoutRequest { count: u32::MAX, ..checkout_request(&session, "b") };
    let status = client.checkout(huge).await.expect_err("a huge count is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("count"), "{}", status.message());
    let no_id = checkout_request(&session, "");
    assert_eq!(
        client.checkout(no_id).await.expect_err("empty request id").code(),
        tonic::Code::InvalidArgument
    );
    let not_a_session = RawSession { id: "not-a-session".into(), secret: "guess".into() };
    let stranger = checkout_request(&not_a_session, "c");
    assert_eq!(
        client.checkout(stranger).await.expect_err("unknown session").code(),
        tonic::Code::NotFound
    );
    let bad_version =
        v1::CheckoutRequest { version: "four".into(), ..checkout_request(&session, "d") };
    assert_eq!(
        client.checkout(bad_version).await.expect_err("bad version").code(),
        tonic::Code::InvalidArgument
    );
    let oversized =
        v1::CheckoutRequest { feature: "x".repeat(8 << 20), ..checkout_request(&session, "e") };
    assert!(client.checkout(oversized).await.is_err(), "an 8 MiB message is refused");
    for (session_id, handle, field) in [("", 7, "session_id"), (session.id.as_str(), 0, "handle")] {
        let request = v1::WaitQueuedRequest {
            session_id: session_id.into(),
            session_secret: session.secret.clone(),
            handle,
        };
        let status = client.wait_queued(request).await.expect_err("a bad WaitQueued");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
    // Nothing changed, and the node still serves.
    assert_eq!(seats_in_use(&cluster, 1, false).await, 0);
    let fine = client.checkout(checkout_request(&session, "f")).await.expect("answer");
    assert!(is_granted(fine.get_ref()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_bound_to_hosts_serves_only_while_a_majority_of_the_nodes_match() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let mut client = license_client(&cluster, 1).await;
    let session = open(&mut client, "bound", 60_000).await;
    let two =
        v1::CheckoutRequest { feature: "bound-to-two".into(), ..checkout_request(&session, "a") };
    let answer = client.checkout(two).await.expect("answer").into_inner();
    assert!(is_granted(&answer), "2 of 3 nodes match: served ({answer:?})");
    let one =
        v1::CheckoutRequest { feature: "bound-to-one".into(), ..checkout_request(&session, "b") };
    match client.checkout(one).await.expect("answer").into_inner().result {
        Some(v1::checkout_response::Result::Denied(d)) => {
            assert_eq!(d.reason(), v1::DenialReason::NoSuchFeature, "1 of 3 matches: not served")
        }
        other => panic!("a pool bound to one of three hosts was served: {other:?}"),
    }
}

/// The first update of a WaitQueued stream, within 10 s.
async fn first_queue_update(
    client: &mut LicenseServiceClient<Channel>,
    session: &RawSession,
    handle: u64,
) -> v1::queue_update::Update {
    let request = v1::WaitQueuedRequest {
        session_id: session.id.clone(),
        session_secret: session.secret.clone(),
        handle,
    };
    let mut stream = client.wait_queued(request).await.expect("a WaitQueued stream").into_inner();
    let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update within 10 s")
        .expect("no stream error")
        .expect("a message");
    message.update.expect("an update")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_follows_a_request_it_forwarded_to_the_queue() {
    // The follower forwards the checkout to the leader, which answers Queued as soon as the
    // entry commits; the follower may apply it a moment later. The client's WaitQueued,
    // sent to that follower at once, must see the request waiting (or granted), never gone:
    // "left the queue" would tell the client it holds nothing while the queue may still
    // grant it a seat.
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let mut holder = license_client(&cluster, leader).await;
    let holder_session = open(&mut holder, "holder", 60_000).await;
    let mut request = checkout_request(&holder_session, "hold");
    request.feature = "synthesis".into();
    let answer = holder.checkout(request).await.expect("an answer").into_inner();
    assert!(is_granted(&answer), "the one synthesis seat: {answer:?}");
    let hold_handle = match answer.result {
        Some(v1::checkout_response::Result::Granted(granted)) => granted.handle,
        _ => unreachable!(),
    };

    let mut client = license_client(&cluster, follower).await;
    let mut last = None;
    for round in 0..30 {
        let session = open(&mut client, &format!("waiter{round}"), 60_000).await;
        let mut request = checkout_request(&session, "wait");
        request.feature = "synthesis".into();
        request.wait = true;
        let answer = client.checkout(request).await.expect("an answer").into_inner();
        let handle = match answer.result {
            Some(v1::checkout_response::Result::Queued(queued)) => queued.handle,
            other => panic!("round {round}: the checkout was not queued: {other:?}"),
        };
        match first_queue_update(&mut client, &session, handle).await {
            v1::queue_update::Update::Position(position) => {
                assert_eq!(position.position, 1, "round {round}: one waiter at a time")
            }
            other => {
                panic!("round {round}: node {follower} answered {other:?} for handle {handle}")
            }
        }
        if round < 29 {
            let close = v1::CloseSessionRequest {
                session_id: session.id.clone(),
                session_secret: session.secret.clone(),
            };
            client.close_session(close).await.expect("the waiter's session closes");
        } else {
            last = Some((session, handle));
        }
    }
    // The last waiter is granted the seat once the holder checks it in.
    let (session, handle) = last.expect("the last waiter");
    let checkin = v1::CheckinRequest {
        session_id: holder_session.id.clone(),
        session_secret: holder_session.secret.clone(),
        request_id: "back".into(),
        handle: hold_handle,
    };
    holder.checkin(checkin).await.expect("the holder checks in");
    let request = v1::WaitQueuedRequest {
        session_id: session.id.clone(),
        session_secret: session.secret.clone(),
        handle,
    };
    let mut stream = client.wait_queued(request).await.expect("a stream").into_inner();
    let granted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = stream.message().await.expect("no stream error") {
            if let Some(v1::queue_update::Update::Granted(granted)) = message.update {
                return Some(granted);
            }
        }
        None
    })
    .await
    .expect("granted within 10 s")
    .expect("a grant before the stream ended");
    assert_eq!(granted.handle, handle);
}
