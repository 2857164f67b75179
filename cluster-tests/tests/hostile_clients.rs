//! Hostile clients against a real 3-process cluster, through the raw gRPC API as a client
//! generated from the .proto files alone calls it (not the client library): what a stranger
//! can do to the cluster and to other people's seats.
//!
//! - The wedge: megabyte session ids are refused before the log, and a leader's death right
//!   after them leaves survivors that grant within 2 s.
//! - Refused requests of every kind change nothing: the Raft log does not grow, and the
//!   leader's applied index and state digest stay the same.
//! - A seat is freed only by its session (with the secret OpenSession answered) or by an
//!   administrator; no status view shows a secret.
//!
//! Every refusal must also carry the leader hint trailers (`qlm-leader-id`,
//! `qlm-leader-addr`, common.proto); that is checked once, at the end of each test
//! (`Refusals::assert_leader_hints`), so that every other assertion runs first. The shared
//! helpers are in `hostile/mod.rs`; `hostile_inputs.rs` holds the field-by-field tests.

mod hostile;

use hostile::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabyte_session_ids_are_refused_and_a_leader_death_after_them_does_not_wedge() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let follower = a_follower(leader);
    let mut seen = Refusals::new(&cluster);
    let bob = Raw::to(&cluster, follower).await.open_session("bob").await;

    let huge = RawSession { id: "Z".repeat(3_670_016), secret: WRONG_SECRET.into() };
    let mut quiet = Unchanged::after_a_tick(&cluster, leader).await;
    for node in [follower, leader] {
        let raw = Raw::to(&cluster, node).await;
        for i in 0..6 {
            let call = raw.checkout(checkout_request(&huge, &format!("wedge-{i}")));
            seen.refused(&format!("3.5 MiB id {i} via {node}"), call.await, big("session_id"));
        }
        quiet.check(&format!("six 3.5 MiB checkouts via node {node}")).await;
    }
    for id in 1..=3 {
        let bytes = metric(&cluster, id, "qlm_raft_log_size_bytes");
        assert!(bytes < 1 << 20, "node {id}'s log holds {bytes} bytes");
    }

    // Kill the leader; a survivor grants within 2 s, retried on UNAVAILABLE on both.
    let survivors = [1, 2, 3].into_iter().filter(|&id| id != leader);
    let mut raws = Vec::new();
    for id in survivors {
        raws.push(Raw::to(&cluster, id).await);
    }
    cluster.kill(leader);
    let killed = Instant::now();
    let retry = [Code::Unavailable, Code::DeadlineExceeded, Code::Cancelled, Code::Unknown];
    let mut attempts = 0;
    let answer = loop {
        let raw = &raws[attempts % 2];
        attempts += 1;
        let call = raw.checkout(checkout_request(&bob, "after-the-kill"));
        let answer = tokio::time::timeout(Duration::from_millis(300), call).await;
        match answer.unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in 300 ms"))) {
            Err(status) if retry.contains(&status.code()) && killed.elapsed().as_secs() < 10 => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answer => break answer,
        }
    };
    let took = killed.elapsed();
    eprintln!("a survivor granted {took:?} after the kill, in {attempts} tries");
    let answer = answer.expect("a checkout through a survivor");
    assert!(answer.contains("Granted"), "after the kill: {answer}");
    assert!(took < Duration::from_secs(2), "granted {took:?} after the kill ({attempts} tries)");
    seen.assert_leader_hints();
}

/// Sends `cases` and asserts that the leader's log grew by its Ticks at most (one every 5 s,
/// a few hundred bytes each): far below an entry per refused request.
async fn without_log_growth(
    cluster: &Cluster,
    leader: u64,
    seen: &mut Refusals,
    phase: &str,
    cases: Vec<(&str, Expect, Call)>,
) {
    let log = || {
        let index = metric(cluster, leader, "qlm_raft_last_log_index");
        (index, metric(cluster, leader, "qlm_raft_log_size_bytes"))
    };
    let (count, (index, bytes), started) = (cases.len(), log(), Instant::now());
    seen.all(&format!("{phase}: "), cases).await;
    let elapsed = started.elapsed();
    let (index_after, bytes_after) = log();
    let (entries, grown) = (index_after - index, bytes_after.saturating_sub(bytes));
    let ticks = elapsed.as_millis().div_ceil(TICK_EVERY.as_millis()) as u64 + 1;
    eprintln!("{phase}: {count} refused requests, {entries} entries, {grown} bytes, {elapsed:?}");
    assert!(
        entries <= ticks && grown <= ticks * 400,
        "{phase}: {count} refused requests grew the leader's log by {entries} entries and \
         {grown} bytes in {elapsed:?} (its Ticks: at most {ticks} entries)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_of_every_kind_do_not_grow_the_raft_log() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let (raw, mut seen) = (Raw::to(&cluster, a_follower(leader)).await, Refusals::new(&cluster));
    let alice = raw.open_session("alice").await;
    let handle = raw.grant(checkout_request(&alice, "c-1")).await;
    let reuse = v1::OpenSessionRequest { request_id: "open-1".into(), ..open_request("alice") };
    raw.open(reuse.clone()).await.expect("an open with a request id");
    let unknown = RawSession { id: UNKNOWN_ID.into(), secret: WRONG_SECRET.into() };
    let wrong = posing_as(&alice, WRONG_SECRET);
    let huge_id = RawSession { id: "s".repeat(1 << 20), ..alice.clone() };
    let co = |change: fn(&mut v1::CheckoutRequest)| {
        let mut request = checkout_request(&alice, "x");
        change(&mut request);
        raw.checkout(request)
    };
    let open = |change: fn(&mut v1::OpenSessionRequest)| {
        let mut request = reuse.clone();
        change(&mut request);
        raw.open(request)
    };
    let mut edge = Vec::new();
    for _ in 0..2 {
        edge.extend([
            ("1 MiB session id", big("session_id"), raw.checkout(checkout_request(&huge_id, "x"))),
            ("1 MiB user", big("user"), open(|r| r.user = "u".repeat(1 << 20))),
            ("NUL in feature", inv("feature"), co(|r| r.feature = "vhdl\0editor".into())),
            ("newline in host", inv("host"), open(|r| r.host = "ws\n1".into())),
            ("U+202E in user", inv("user"), open(|r| r.user = "al\u{202E}ice".into())),
            ("U+2066 in request id", inv("request_id"), co(|r| r.request_id = "\u{2066}".into())),
            ("unknown checkout", NOT_FOUND, raw.checkout(checkout_request(&unknown, "x"))),
            ("unknown checkin", NOT_FOUND, raw.checkin(checkin_request(&unknown, "x", handle))),
            ("unknown heartbeat", NOT_FOUND, raw.heartbeat(heartbeat_request(&unknown))),
            ("wrong secret checkout", UNAUTHENTICATED, raw.checkout(checkout_request(&wrong, "x"))),
            ("wrong secret checkin", UNAUTHENTICATED, raw.checkin(checkin_request(&wrong, "x", 1))),
            ("wrong secret heartbeat", UNAUTHENTICATED, raw.heartbeat(heartbeat_request(&wrong))),
            ("wrong secret close", UNAUTHENTICATED, raw.close(close_request(&wrong))),
            ("wrong secret wait", UNAUTHENTICATED, raw.wait(wait_request(&wrong, handle))),
            ("c-1 reused", inv("request_id"), co(|r| (r.request_id, r.count) = ("c-1".into(), 2))),
            ("checkin as c-1", inv("request_id"), raw.checkin(checkin_request(&alice, "c-1", 1))),
            ("count 1000001", inv("count"), co(|r| r.count = 1_000_001)),
            ("checkin of handle 0", inv("handle"), raw.checkin(checkin_request(&alice, "x", 0))),
            ("wait for handle 0", inv("handle"), raw.wait(wait_request(&alice, 0))),
            (
                "wait and borrow",
                inv("wait"),
                co(|r| (r.wait, r.borrow_until_unix_ms) = (true, Some(9))),
            ),
            (
                "borrow in the past",
                inv("borrow_until_unix_ms"),
                co(|r| r.borrow_until_unix_ms = Some(1)),
            ),
            ("3 MiB holder", big("holder.user"), raw.remove(remove_holder(&"u".repeat(3 << 20)))),
        ]);
    }
    without_log_growth(&cluster, leader, &mut seen, "refused at the edge", edge).await;

    // OpenSessions the engine refuses: a TTL out of range, a request id another one used.
    let mut opens = Vec::new();
    for _ in 0..5 {
        opens.extend([
            ("ttl_ms 1", inv("ttl_ms"), open(|r| (r.ttl_ms, r.request_id) = (1, String::new()))),
            ("ttl_ms 86400001", inv("ttl_ms"), open(|r| r.ttl_ms = 86_400_001)),
            ("request id of another pid", ALREADY_EXISTS, open(|r| r.pid = 8)),
            ("request id of another user", ALREADY_EXISTS, open(|r| r.user = "eve".into())),
        ]);
    }
    without_log_growth(&cluster, leader, &mut seen, "refused OpenSessions", opens).await;
    raw.serves("after").await;
    seen.assert_leader_hints();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_of_a_seat_or_an_administrator_can_free_it() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let mut seen = Refusals::new(&cluster);
    let (own, stranger) =
        (Raw::to(&cluster, a_follower(leader)).await, Raw::to(&cluster, leader).await);
    let alice = own.open_session("alice").await;
    let handle = own.grant(checkout_request(&alice, "alice-1")).await;
    let mallory = stranger.open_session("mallory").await;
    held_everywhere(&cluster, handle, true).await;

    // What a stranger reads: alice's session id and handle, never a secret.
    let mut answers = Vec::new();
    for id in 1..=3 {
        let raw = Raw::to(&cluster, id).await;
        for stale in [false, true] {
            let checkouts = v1::CheckoutsRequest { stale, ..Default::default() };
            answers.push(raw.checkouts(checkouts).await.expect("the checkouts"));
            let features = v1::FeaturesRequest { stale, ..Default::default() };
            answers.push(raw.features(features).await.expect("the features"));
            let view = raw.status.clone().cluster(v1::ClusterRequest { stale }).await;
            answers.push(format!("{:?}", view.expect("the cluster").get_ref()));
        }
    }
    let listed = &answers[0];
    assert!(
        listed.contains(&alice.id) && listed.contains(&format!("handle: {handle}")),
        "{listed}"
    );
    for secret in [&alice.secret, &mallory.secret] {
        assert!(answers.iter().all(|a| !a.contains(secret.as_str())), "a view shows a secret");
    }

    // Posing as alice with a wrong secret, mallory's own, or none, via the leader and another.
    let mut quiet = Unchanged::after_a_tick(&cluster, leader).await;
    for raw in [&stranger, &own] {
        let secrets = [WRONG_SECRET, &mallory.secret, ""];
        for (secret, e) in
            secrets.into_iter().zip([UNAUTHENTICATED, UNAUTHENTICATED, inv("session_secret")])
        {
            let alice = posing_as(&alice, secret);
            let cases = vec![
                ("checkin", e, raw.checkin(checkin_request(&alice, "steal", handle))),
                ("close", e, raw.close(close_request(&alice))),
                ("heartbeat", e, raw.heartbeat(heartbeat_request(&alice))),
                ("wait", e, raw.wait(wait_request(&alice, handle))),
                ("checkout", e, raw.checkout(checkout_request(&alice, "steal"))),
            ];
            seen.all(&format!("alice's id, secret {secret:?}: "), cases).await;
        }
        quiet.check("calls posing as alice").await;
    }
    for id in 1..=3 {
        assert!(handles_on(&cluster, id).await.contains(&handle), "node {id} lost alice's seat");
    }
    own.license.clone().heartbeat(heartbeat_request(&alice)).await.expect("alice's heartbeat");

    let target = Some(v1::remove_request::Target::Handle(handle));
    let removed = stranger.admin.clone().remove(with_token(v1::RemoveRequest { target })).await;
    assert_eq!(removed.expect("an admin's removal").into_inner().released, [handle]);
    held_everywhere(&cluster, handle, false).await;
    seen.assert_leader_hints();
}
