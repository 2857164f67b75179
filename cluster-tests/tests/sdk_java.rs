//! The Java binding (src/java: JNA over libquorumlm) against real 3-process clusters, run as
//! an application runs it: `java -Djna.library.path=<dir of libquorumlm.so>` with the binding
//! compiled by javac. Each Java program is the test driver in src/java/tests (one command per
//! stdin line, one answer per line), or the example program.
//!
//! What a Java program sees: a grant through any node; a denial with its reason and the
//! holders; a queued wait granted when the seat frees, and one that times out; a leader killed
//! with `kill -9` while a seat is held (the seat kept, the next checkout granted, nothing
//! thrown); a checkout retried on another node, granted once; a Java program killed with
//! `kill -9` whose seat the cluster frees after its TTL; a session whose cluster is gone
//! reported to its lost listener.
//!
//! java, javac and JNA (Debian's libjna-java) must be installed and libquorumlm built: `make
//! test` sees to both; without them the tests fail and say what to install.

mod java_driver;

use std::time::{Duration, Instant};

use cluster_tests::{Cluster, ClusterOptions};
use java_driver::delay_proxy::DelayProxy;
use java_driver::{JavaProgram, field, toolchain};
use qlm_proto::v1::CheckoutStatus;

/// The checkouts node `id` holds for `session` (its own replica).
async fn held_by(cluster: &Cluster, id: u64, session: &str) -> Vec<CheckoutStatus> {
    let all = cluster.checkouts(id).await.unwrap_or_else(|e| panic!("checkouts of node {id}: {e}"));
    all.into_iter().filter(|c| c.session_id == session).collect()
}

/// Polls `held_by` on node `id` until `done` holds, for up to `within`; returns the last view.
async fn wait_for_held(
    cluster: &Cluster,
    id: u64,
    session: &str,
    within: Duration,
    done: impl Fn(&[CheckoutStatus]) -> bool,
) -> Vec<CheckoutStatus> {
    let deadline = Instant::now() + within;
    loop {
        let held = cluster
            .checkouts(id)
            .await
            .map(|all| all.into_iter().filter(|c| c.session_id == session).collect::<Vec<_>>());
        if let Ok(held) = &held
            && (done(held) || Instant::now() > deadline)
        {
            return held.clone();
        }
        assert!(Instant::now() < deadline, "node {id} did not answer: {held:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn open_on(servers: &str, user: &str, ttl_ms: u64) -> JavaProgram {
    let mut program = JavaProgram::start(user);
    program.ok(&format!("servers {servers}"));
    program.ok(&format!("open {ttl_ms}"));
    program
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_through_any_node_is_granted_and_the_example_runs() {
    toolchain();
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let mut program = JavaProgram::start("ada");
    for id in 1..=3 {
        let addr = cluster.client_addr(id);
        program.ok(&format!("servers {addr}"));
        program.ok("open 60000");
        let grant = program.granted("seat", "vhdl-editor count=2 version=4.0");
        assert_eq!(field(&grant, "feature"), Some("vhdl-editor"), "{grant}");
        assert_eq!(field(&grant, "version"), Some("4.0"), "{grant}");
        assert_eq!(field(&grant, "count"), Some("2"), "{grant}");
        assert_eq!(field(&grant, "node_locked"), Some("false"), "{grant}");
        assert!(field(&grant, "source").is_some_and(|s| s.contains(&addr)), "{grant}");
        let session = program.session_id();
        let held = held_by(&cluster, leader, &session).await;
        assert_eq!(held.len(), 1, "through node {id}: {held:?}");
        assert_eq!(held[0].count, 2);
        assert_eq!(Some(held[0].handle.to_string().as_str()), field(&grant, "handle"));
        assert_eq!(held[0].user, "ada");
        program.ok("checkin seat");
        let left =
            wait_for_held(&cluster, leader, &session, Duration::from_secs(5), <[_]>::is_empty)
                .await;
        assert!(left.is_empty(), "checked in through node {id}, still held: {left:?}");
        program.ok("close");
    }
    // Arguments the C library refuses come back as InvalidArgumentException, naming them.
    program.ok(&format!("servers {}", cluster.servers()));
    program.ok("open 60000");
    let zero = program.ask("checkout z vhdl-editor count=0");
    assert!(zero.starts_with("error InvalidArgumentException INVALID_ARGUMENT "), "{zero}");
    assert!(zero.contains("count"), "{zero}");
    let long = program.ask(&format!("checkout l {}", "f".repeat(65)));
    assert!(long.starts_with("error InvalidArgumentException INVALID_ARGUMENT "), "{long}");
    program.ok("close");

    let ran = toolchain()
        .java("example")
        .args(["Checkout", "vhdl-editor", "0"])
        .env("QLM_SERVERS", cluster.servers())
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "the example failed: {}\n{stdout}\n{stderr}", ran.status);
    assert!(stdout.contains("checked out vhdl-editor 4.0 from cluster"), "{stdout}");
    assert!(stdout.contains("checked in vhdl-editor"), "{stdout}");
    let holders = cluster.checkouts(leader).await.expect("checkouts");
    assert!(holders.iter().all(|c| c.user != "example"), "the example's seat stayed: {holders:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_names_reason_and_holders_and_a_queued_wait_is_granted_when_the_seat_frees() {
    toolchain();
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let servers = cluster.servers();
    // synthesis has one seat.
    let mut alice = open_on(&servers, "alice", 60_000);
    let alices = alice.granted("s", "synthesis");
    let mut bob = open_on(&servers, "bob", 60_000);
    let denied = bob.ask("checkout s synthesis");
    assert!(denied.starts_with("denied ALL_IN_USE holders=1 "), "{denied}\n{}", bob.report());
    assert!(denied.contains("alice@"), "the holder is named: {denied}");
    let handle = field(&alices, "handle").expect("alice's handle");
    assert!(denied.contains(&format!(" handle={handle} ")), "with alice's handle: {denied}");

    // A wait that runs out says so, and leaves the queue.
    let timed_out = bob.ask("checkout t synthesis wait_ms=800");
    assert!(timed_out.starts_with("error WaitTimeoutException TIMEOUT"), "{timed_out}");

    bob.send("checkout w synthesis wait_ms=30000");
    let early = bob.try_answer(Duration::from_millis(1_500));
    assert_eq!(early, None, "granted while alice holds the only seat");
    alice.ok("checkin s");
    let started = Instant::now();
    let granted = bob.answer(Duration::from_secs(15));
    assert!(granted.starts_with("granted w "), "{granted}\n{}", bob.report());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "granted {:?} after the checkin",
        started.elapsed()
    );
    let session = bob.session_id();
    let leader = cluster.wait_ready().await;
    let held = held_by(&cluster, leader, &session).await;
    assert_eq!(held.iter().map(|c| c.feature.as_str()).collect::<Vec<_>>(), ["synthesis"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_while_a_seat_is_held_keeps_it_and_the_next_checkout_is_granted() {
    toolchain();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let ttl_ms = 3_000;
    let mut program = open_on(&cluster.servers(), "grace", ttl_ms);
    let grant = program.granted("a", "vhdl-editor");
    let session = program.session_id();
    let before = program.ask("status");

    cluster.kill(leader);
    let new_leader = cluster.wait_ready().await;
    assert_ne!(new_leader, leader);
    // Past the TTL: the seat lives on only if heartbeats reached the new leader.
    tokio::time::sleep(Duration::from_millis(ttl_ms + 1_000)).await;
    let held = held_by(&cluster, new_leader, &session).await;
    assert_eq!(
        held.len(),
        1,
        "the held seat after the leader's death: {held:?}\n{}",
        program.report()
    );
    assert_eq!(Some(held[0].handle.to_string().as_str()), field(&grant, "handle"));

    program.granted("b", "vhdl-editor");
    assert_eq!(program.ask("lost"), "lost false");
    let after = program.ask("status");
    let beats = |line: &str| field(line, "heartbeats").and_then(|n| n.parse::<u64>().ok());
    assert!(beats(&after) > beats(&before), "heartbeats went on: {before} -> {after}");
    program.ok("checkin a");
    program.ok("checkin b");
    assert!(program.events.is_empty(), "the program was told: {:?}", program.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_retried_on_another_node_is_granted_once() {
    toolchain();
    // Every node tells clients that its client address is the proxy (in front of node 1), so
    // the client's first try of any call goes through it.
    let proxy = DelayProxy::bind();
    let options = ClusterOptions {
        nodes: 3,
        extra_args: vec!["--advertise-client".into(), proxy.addr.clone()],
        ..Default::default()
    };
    let cluster = Cluster::start_with(options);
    proxy.forward_to(&cluster.client_addr(1));
    let leader = cluster.wait_ready().await;
    let servers = format!("{},{},{}", proxy.addr, cluster.client_addr(2), cluster.client_addr(3));
    let mut program = open_on(&servers, "retry", 60_000);
    program.granted("warm", "simulator");
    let session = program.session_id();

    // Longer than the client's deadline for one try: the request reaches node 1 after the
    // client gave up on it and sent the same request to another node. vhdl-editor has seats
    // to spare, so a second grant would not be refused: only the request id prevents it.
    proxy.set_delay(Duration::from_secs(7));
    let started = Instant::now();
    let grant = program.granted("once", "vhdl-editor");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4), "granted in {took:?}: the first try was not held up");
    proxy.set_delay(Duration::ZERO);

    // The first copy reaches node 1 now, and goes through the cluster.
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.delayed_pending() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proxy.delayed_bytes() > 0, "the first copy never reached node 1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in 1..=3 {
        let held = held_by(&cluster, id, &session).await;
        let seats: Vec<_> = held.iter().filter(|c| c.feature == "vhdl-editor").collect();
        assert_eq!(seats.len(), 1, "node {id} (leader {leader}): {held:?}\n{}", program.report());
        assert_eq!(Some(seats[0].handle.to_string().as_str()), field(&grant, "handle"));
    }
    program.ok("checkin once");
    program.ok("checkin warm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_program_killed_with_sigkill_loses_its_seat_after_its_ttl() {
    toolchain();
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let ttl = Duration::from_millis(2_000);
    let mut crashed = open_on(&cluster.servers(), "crashed", ttl.as_millis() as u64);
    crashed.granted("s", "synthesis");
    let session = crashed.session_id();
    crashed.kill9();
    let killed = Instant::now();
    let held = held_by(&cluster, leader, &session).await;
    assert_eq!(held.len(), 1, "freed before its TTL: {held:?}");
    let left = wait_for_held(&cluster, leader, &session, ttl * 4, <[_]>::is_empty).await;
    assert!(left.is_empty(), "still held {:?} after the kill: {left:?}", killed.elapsed());
    assert!(killed.elapsed() >= ttl / 2, "freed after {:?}, before the TTL", killed.elapsed());
    let mut next = open_on(&cluster.servers(), "next", 60_000);
    next.granted("s", "synthesis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_cluster_is_gone_is_reported_to_its_lost_listener() {
    toolchain();
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let mut program = open_on(&cluster.servers(), "orphan", 2_000);
    program.granted("s", "vhdl-editor");
    assert_eq!(program.ask("lost"), "lost false");
    for id in 1..=3 {
        cluster.kill(id);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while program.events.is_empty() && Instant::now() < deadline {
        let _ = program.try_answer(Duration::from_millis(200));
    }
    assert_eq!(program.events.len(), 1, "{}", program.report());
    assert!(program.events[0].starts_with("event lost UNREACHABLE "), "{:?}", program.events);
    assert_eq!(program.ask("lost"), "lost true");
}
