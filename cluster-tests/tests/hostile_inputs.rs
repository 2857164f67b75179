//! Hostile input against a real 3-process cluster, through the raw gRPC API (not the client
//! library): every string field and bounded number of every rpc, request ids, floods of
//! opens and unknown ids.
//!
//! - Every string field, and the bounded numbers, refuse hostile values with
//!   INVALID_ARGUMENT naming the field, in a short message that does not echo the input.
//! - Request ids: a retry gets the first answer, a reuse for another request is refused.
//! - A flood of opens is answered; unknown sessions are NOT_FOUND, or answered harmlessly.
//!
//! As in `hostile_clients.rs`, every refusal must carry the leader hint trailers, checked at
//! the end of each test; the shared helpers are in `hostile/mod.rs`.

mod hostile;

use hostile::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_string_field_of_every_rpc_refuses_hostile_values_naming_the_field() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (raw, other) =
        (Raw::to(&cluster, followers[0]).await, Raw::to(&cluster, followers[1]).await);
    let mut seen = Refusals::new(&cluster);
    let alice = raw.open_session("alice").await;
    let handle = raw.grant(checkout_request(&alice, "alice-1")).await;
    let mut quiet = Unchanged::after_a_tick(&cluster, leader).await;

    let fields: [Field<v1::OpenSessionRequest>; 4] = [
        ("user", true, |r| &mut r.user),
        ("host", true, |r| &mut r.host),
        ("display", false, |r| &mut r.display),
        ("request_id", false, |r| &mut r.request_id),
    ];
    seen.hostile(&open_request("alice"), &fields, |r| raw.open(r)).await;
    quiet.check("hostile OpenSessions").await;
    let fields: [Field<v1::CheckoutRequest>; 5] = [
        ("session_id", true, |r| &mut r.session_id),
        ("session_secret", true, |r| &mut r.session_secret),
        ("request_id", true, |r| &mut r.request_id),
        ("feature", true, |r| &mut r.feature),
        ("version", false, |r| &mut r.version),
    ];
    seen.hostile(&checkout_request(&alice, "hostile"), &fields, |r| raw.checkout(r)).await;
    quiet.check("hostile Checkouts").await;
    let fields: [Field<v1::CheckinRequest>; 3] = [
        ("session_id", true, |r| &mut r.session_id),
        ("session_secret", true, |r| &mut r.session_secret),
        ("request_id", true, |r| &mut r.request_id),
    ];
    seen.hostile(&checkin_request(&alice, "hostile", handle), &fields, |r| raw.checkin(r)).await;
    quiet.check("hostile Checkins").await;
    let fields: [Field<v1::HeartbeatRequest>; 2] =
        session_fields(|r| &mut r.session_id, |r| &mut r.session_secret);
    seen.hostile(&heartbeat_request(&alice), &fields, |r| raw.heartbeat(r)).await;
    let fields: [Field<v1::WaitQueuedRequest>; 2] =
        session_fields(|r| &mut r.session_id, |r| &mut r.session_secret);
    seen.hostile(&wait_request(&alice, handle), &fields, |r| raw.wait(r)).await;
    let fields: [Field<v1::CloseSessionRequest>; 2] =
        session_fields(|r| &mut r.session_id, |r| &mut r.session_secret);
    seen.hostile(&close_request(&alice), &fields, |r| raw.close(r)).await;
    quiet.check("hostile Heartbeats, WaitQueueds and CloseSessions").await;

    let fields: [Field<v1::FeaturesRequest>; 1] = [("feature", false, |r| &mut r.feature)];
    seen.hostile(&v1::FeaturesRequest::default(), &fields, |r| other.features(r)).await;
    let fields: [Field<v1::CheckoutsRequest>; 3] = [
        ("feature", false, |r| &mut r.feature),
        ("user", false, |r| &mut r.user),
        ("session_id", false, |r| &mut r.session_id),
    ];
    seen.hostile(&v1::CheckoutsRequest::default(), &fields, |r| other.checkouts(r)).await;
    fn holder(r: &mut v1::RemoveRequest) -> &mut v1::HolderSelector {
        match &mut r.target {
            Some(v1::remove_request::Target::Holder(holder)) => holder,
            _ => unreachable!("a holder target"),
        }
    }
    let fields: [Field<v1::RemoveRequest>; 3] = [
        ("holder.user", true, |r| &mut holder(r).user),
        ("holder.host", false, |r| &mut holder(r).host),
        ("holder.feature", false, |r| &mut holder(r).feature),
    ];
    seen.hostile(&remove_holder("nobody"), &fields, |r| other.remove(r)).await;
    quiet.check("hostile status filters and admin removals").await;

    let count = v1::CheckoutRequest { count: 1_000_001, ..checkout_request(&alice, "hostile") };
    let numbers = vec![
        ("Checkout of 1000001", inv("count"), raw.checkout(count)),
        ("Checkin of handle 0", inv("handle"), raw.checkin(checkin_request(&alice, "hostile", 0))),
        ("WaitQueued for handle 0", inv("handle"), raw.wait(wait_request(&alice, 0))),
    ];
    seen.all("", numbers).await;
    quiet.check("counts and handles out of range").await;
    let ttl = |ttl_ms| raw.open(v1::OpenSessionRequest { ttl_ms, ..open_request("alice") });
    let ttls = vec![
        ("ttl_ms 1", inv("ttl_ms"), ttl(1)),
        ("ttl_ms 86400001", inv("ttl_ms"), ttl(86_400_001)),
    ];
    seen.all("OpenSession with ", ttls).await;
    quiet.check("OpenSessions with ttl_ms out of range").await;
    Raw::to(&cluster, leader).await.serves("after").await;
    seen.assert_leader_hints();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_names_one_request_and_its_retry_gets_the_same_answer() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let (raw, retrier) =
        (Raw::to(&cluster, a_follower(leader)).await, Raw::to(&cluster, leader).await);
    let mut seen = Refusals::new(&cluster);
    let alice = raw.open_session("alice").await;
    let request = checkout_request(&alice, "r-1");
    let first = raw.license.clone().checkout(request.clone()).await.expect("a checkout");
    let again = retrier.license.clone().checkout(request).await.expect("its retry");
    let (first, again) = (first.into_inner().result, again.into_inner().result);
    assert!(matches!(first, Some(v1::checkout_response::Result::Granted(_))), "{first:?}");
    assert_eq!(again, first, "the retry gets the first grant");
    let held = handles_on(&cluster, leader).await;
    assert_eq!(held.len(), 1, "one seat for one request id: {held:?}");

    let mut quiet = Unchanged::after_a_tick(&cluster, leader).await;
    let feature =
        v1::CheckoutRequest { feature: "simulator".into(), ..checkout_request(&alice, "r-1") };
    let more = v1::CheckoutRequest { count: 2, ..checkout_request(&alice, "r-1") };
    let cases = vec![
        ("another feature", inv("request_id"), raw.checkout(feature)),
        ("two seats", inv("request_id"), retrier.checkout(more)),
        ("a checkin", inv("request_id"), raw.checkin(checkin_request(&alice, "r-1", held[0]))),
    ];
    seen.all("request id r-1 reused for ", cases).await;
    quiet.check("request ids reused for other requests").await;
    assert_eq!(handles_on(&cluster, leader).await, held, "nothing granted, nothing given back");

    // A retried open gets its session back; another process's open with its id is refused.
    let open = v1::OpenSessionRequest { request_id: "open-7f3a9c".into(), ..open_request("bob") };
    let opened = raw.license.clone().open_session(open.clone()).await.expect("an open");
    let reopened = retrier.license.clone().open_session(open.clone()).await.expect("its retry");
    let (opened, reopened) = (RawSession::from(opened.into_inner()), reopened.into_inner().into());
    assert_eq!(opened, reopened, "the same session id and secret");
    let other_pid = v1::OpenSessionRequest { pid: 8, ..open };
    seen.refused(
        "an open with another pid's request id",
        raw.open(other_pid).await,
        ALREADY_EXISTS,
    );
    raw.grant(checkout_request(&opened, "bob-1")).await;
    seen.assert_leader_hints();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_opens_is_answered_and_every_node_still_serves() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let raw = Raw::to(&cluster, a_follower(leader)).await;
    let live = metric(&cluster, leader, "qlm_sessions_live");
    let started = Instant::now();
    let mut opens = tokio::task::JoinSet::new();
    for i in 0..300 {
        let mut license = raw.license.clone();
        opens.spawn(async move {
            let mut request = tonic::Request::new(open_request(&format!("flood{i}")));
            request.set_timeout(Duration::from_secs(20));
            license.open_session(request).await.map(|a| RawSession::from(a.into_inner()))
        });
    }
    let opened = tokio::time::timeout(Duration::from_secs(30), opens.join_all()).await;
    let opened = opened.expect("300 opens answered within 30 s");
    let opened: Vec<RawSession> = opened.into_iter().map(|o| o.expect("an open")).collect();
    eprintln!("300 concurrent opens answered in {:?}", started.elapsed());
    assert_eq!(metric(&cluster, leader, "qlm_sessions_live"), live + 300);

    for id in 1..=3 {
        let node = Raw::to(&cluster, id).await;
        let session = node.open_session(&format!("after-the-flood-{id}")).await;
        node.grant(checkout_request(&session, "after")).await;
        node.license.clone().close_session(close_request(&session)).await.expect("a close");
    }
    let mut closes = tokio::task::JoinSet::new();
    for session in opened {
        let mut license = raw.license.clone();
        closes.spawn(async move { license.close_session(close_request(&session)).await });
    }
    let closed = tokio::time::timeout(Duration::from_secs(30), closes.join_all()).await;
    for closed in closed.expect("300 closes answered within 30 s") {
        assert!(closed.expect("a close").into_inner().released.is_empty());
    }
    assert_eq!(metric(&cluster, leader, "qlm_sessions_live"), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_ids_are_not_found_and_closing_one_changes_nothing() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let mut seen = Refusals::new(&cluster);
    let unknown = RawSession { id: UNKNOWN_ID.into(), secret: WRONG_SECRET.into() };
    let mut quiet = Unchanged::after_a_tick(&cluster, leader).await;
    for id in 1..=3 {
        let raw = Raw::to(&cluster, id).await;
        let cases = vec![
            ("checkout", NOT_FOUND, raw.checkout(checkout_request(&unknown, "x"))),
            ("checkin", NOT_FOUND, raw.checkin(checkin_request(&unknown, "x", 1))),
            ("heartbeat", NOT_FOUND, raw.heartbeat(heartbeat_request(&unknown))),
        ];
        seen.all(&format!("unknown session via node {id}: "), cases).await;
        let closed = raw.license.clone().close_session(close_request(&unknown)).await;
        assert!(closed.expect("closing an unknown session is OK").into_inner().released.is_empty());
        let stream = raw.license.clone().wait_queued(wait_request(&unknown, 1)).await;
        let mut stream = stream.expect("a stream").into_inner();
        let mut updates = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(update) = stream.message().await.expect("a stream that ends with OK") {
                updates.push(update.update);
            }
        });
        read.await.expect("the stream ends");
        let left = v1::Left { handle: 1, cause: v1::LeftCause::SessionEnded.into() };
        assert_eq!(updates, [Some(v1::queue_update::Update::Left(left))], "via node {id}");
        quiet.check(&format!("unknown session ids via node {id}")).await;
    }
    Raw::to(&cluster, leader).await.serves("after").await;
    seen.assert_leader_hints();
}
