//! `make compose-chaos`: faults on a real docker compose cluster under a client workload.
//!
//! Starts `deploy/docker-compose.yml` under a project name of its own (the image must exist:
//! `make image`), runs client sessions from this host that check a 3-seat feature out and in
//! through the published ports, and meanwhile: kills the leader's container and starts it
//! again, kills a follower's and starts it again, disconnects the (new) leader from the
//! cluster's network and connects it again. Then it checks, with `compose_check`, that no
//! seat was over-granted, no acknowledged checkout was lost, and all three nodes agree; closes
//! every session and checks that no node lists a checkout any more. It prints what it did and
//! exits 0 when there is no violation, 1 otherwise, 2 when Docker cannot be used. The compose
//! project (containers, network, volumes) is taken down at the end, pass or fail.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_tests::compose::{CHAOS_FEATURE, CHAOS_SEATS, ComposeCluster, NODE_IDS, docker_works};
use cluster_tests::compose_check::{History, Op, agreement, check_history};
use quorumlm::client::{Checkout, CheckoutOptions, Client, ClientError, Session, SessionOptions};
use quorumlm::proto::v1;

/// Client sessions the workload runs (more than the seats, so some are denied).
const CLIENTS: usize = 5;
/// Their session TTL: longer than any fault, so no live session expires.
const SESSION_TTL: Duration = Duration::from_secs(60);
/// How long a fault lasts before it is healed.
const FAULT_DURATION: Duration = Duration::from_secs(3);
/// Workload time before the first fault and after the last.
const CALM: Duration = Duration::from_secs(2);
/// How long the nodes may take to agree once every fault is healed.
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the sampler reads the cluster's listing during the run.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

type Shared = Arc<Mutex<History>>;

fn record(history: &Shared, op: Op) {
    if let Ok(mut history) = history.lock() {
        history.ops.push(op);
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("compose-chaos: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    if !docker_works().await {
        eprintln!("compose-chaos: `docker info` fails: no Docker daemon to run the test on");
        return ExitCode::from(2);
    }
    let image = std::env::var("QLM_IMAGE").unwrap_or_else(|_| "quorumlm:latest".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let project = format!("qlmchaos{}x{nanos}", std::process::id());
    let started = Instant::now();
    println!("compose-chaos: project {project}, image {image}");
    let cluster = match ComposeCluster::up(&project, &image).await {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("compose-chaos: the cluster did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "compose-chaos: 3 nodes healthy in {:.1}s, clients at {}",
        started.elapsed().as_secs_f64(),
        cluster.servers()
    );
    let outcome = chaos(&cluster).await;
    let code = match outcome {
        Ok(0) => {
            println!(
                "compose-chaos: PASS (violations 0) in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("compose-chaos: FAIL ({n} violations)\n{}", cluster.logs().await);
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("compose-chaos: FAIL: {e}\n{}", cluster.logs().await);
            ExitCode::FAILURE
        }
    };
    drop(cluster);
    println!("compose-chaos: project {project} removed (containers, network, volumes)");
    code
}

/// The workload, the faults and the checks; the number of violations.
async fn chaos(cluster: &ComposeCluster) -> Result<usize, String> {
    let history: Shared = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let client = cluster.client()?;
        clients.push(tokio::spawn(client_loop(client, index, history.clone(), stop_rx.clone())));
    }
    let sampler = tokio::spawn(sample(cluster.client()?, history.clone(), stop_rx.clone()));

    let mut faults = Vec::new();
    tokio::time::sleep(CALM).await;
    let fault_result = run_faults(cluster, &mut faults).await;
    tokio::time::sleep(CALM).await;
    let _ = stop_tx.send(true);
    let end = Instant::now();
    let mut held: Vec<(Session, Vec<Checkout>)> = Vec::new();
    for client in clients {
        if let Ok(Some(session)) = client.await {
            held.push(session);
        }
    }
    let _ = sampler.await;
    for fault in &faults {
        println!("  fault: {fault}");
    }
    fault_result?;

    let (applied, listed) = settled_state(cluster).await?;
    let history = std::mem::take(&mut *history.lock().map_err(|_| "history poisoned")?);
    let verdict = check_history(&history, CHAOS_SEATS, end, &listed);
    let mut violations = verdict.violations.clone();
    violations.extend(agreement(&applied, &listed));
    let still_held: usize = held.iter().map(|(_, c)| c.len()).sum();
    println!(
        "  operations: {} grants, {} denials, {} checkins, {} unknown outcomes (retries \
         exhausted during a fault), {} cluster listings sampled; at most {} of {CHAOS_SEATS} \
         seats surely held at once; {still_held} held at the end",
        verdict.grants,
        verdict.denials,
        verdict.checkins,
        verdict.unknown,
        verdict.samples,
        verdict.max_surely_held
    );
    println!(
        "  agreement: applied index by node {applied:?}; {} checkouts listed by each node",
        listed.values().next().map_or(0, Vec::len)
    );

    // Closing every session frees every seat, on every node.
    for (session, checkouts) in held {
        for checkout in checkouts {
            let _ = checkout.keep();
        }
        if let Err(e) = session.close().await {
            violations.push(format!("closing a session failed: {e}"));
        }
    }
    let (_, after_close) = settled_state(cluster).await?;
    for (node, listing) in &after_close {
        if !listing.is_empty() {
            violations.push(format!(
                "node {node} still lists {} checkouts after every session closed",
                listing.len()
            ));
        }
    }
    println!(
        "  after closing every session: {} checkouts listed by each node",
        after_close[&1].len()
    );
    for violation in &violations {
        println!("  VIOLATION: {violation}");
    }
    println!("  violations: {}", violations.len());
    Ok(violations.len())
}

/// Kill the leader, kill a follower, cut the leader off the network; each healed before the
/// next. Each fault is described in `faults` as it happens.
async fn run_faults(cluster: &ComposeCluster, faults: &mut Vec<String>) -> Result<(), String> {
    let t0 = Instant::now();
    let at = |t0: Instant| format!("{:5.1}s", t0.elapsed().as_secs_f64());

    let leader = cluster.leader().await.ok_or("no leader before the first fault")?;
    cluster.kill(leader).await?;
    faults.push(format!("{} docker kill node {leader} (the leader)", at(t0)));
    tokio::time::sleep(FAULT_DURATION).await;
    let during = cluster.leader().await;
    cluster.start(leader).await?;
    faults.push(format!(
        "{} docker start node {leader} (meanwhile leader: {})",
        at(t0),
        during.map_or("none".into(), |l| l.to_string())
    ));
    let ready = cluster.wait_ready().await?;
    faults.push(format!("{} cluster ready, leader {ready}", at(t0)));

    let follower = NODE_IDS.into_iter().find(|&id| id != ready).ok_or("no follower")?;
    cluster.kill(follower).await?;
    faults.push(format!("{} docker kill node {follower} (a follower)", at(t0)));
    tokio::time::sleep(FAULT_DURATION).await;
    cluster.start(follower).await?;
    faults.push(format!("{} docker start node {follower}", at(t0)));
    let ready = cluster.wait_ready().await?;
    faults.push(format!("{} cluster ready, leader {ready}", at(t0)));

    cluster.disconnect(ready).await?;
    faults.push(format!("{} docker network disconnect node {ready} (the leader)", at(t0)));
    tokio::time::sleep(FAULT_DURATION).await;
    let during = cluster.leader().await;
    cluster.reconnect(ready).await?;
    faults.push(format!(
        "{} docker network connect node {ready} (meanwhile leader: {})",
        at(t0),
        during.map_or("none".into(), |l| l.to_string())
    ));
    let ready = cluster.wait_ready().await?;
    faults.push(format!("{} cluster ready, leader {ready}", at(t0)));
    Ok(())
}

/// One client: a session that checks the contended feature out, holds it a moment and checks
/// it in, again and again until told to stop; returns its session and what it still holds.
async fn client_loop(
    client: Client,
    index: usize,
    history: Shared,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<(Session, Vec<Checkout>)> {
    let mut random = 0x9e37_79b9_7f4a_7c15u64 ^ (index as u64 + 1);
    let mut next = move |range: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random % range
    };
    let options = SessionOptions {
        user: format!("chaos{index}"),
        host: "compose-chaos".into(),
        ..SessionOptions::from_process()
    }
    .with_ttl(SESSION_TTL);
    let mut session: Option<Session> = None;
    loop {
        if *stop.borrow() {
            return session.map(|s| (s, Vec::new()));
        }
        let current = match session.take().filter(|s| !s.is_lost()) {
            Some(current) => current,
            None => match client.open_session(options.clone()).await {
                Ok(opened) => opened,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let id = current.id().to_owned();
        let asked = CheckoutOptions { count: 1, ..CheckoutOptions::default() };
        match current.checkout(CHAOS_FEATURE, asked).await {
            Ok(checkout) => {
                let handle = checkout.handle();
                record(&history, Op::Granted { session: id, handle, at: Instant::now() });
                tokio::time::sleep(Duration::from_millis(100 + next(300))).await;
                if *stop.borrow() {
                    return Some((current, vec![checkout]));
                }
                let sent = Instant::now();
                let result = checkout.checkin().await;
                let lost = matches!(
                    &result,
                    Err(ClientError::Rejected { code: tonic::Code::NotFound, .. })
                );
                record(&history, Op::Checkin { handle, sent, ok: result.is_ok(), lost });
            }
            Err(ClientError::Denied { .. }) => {
                record(&history, Op::Denied);
                tokio::time::sleep(Duration::from_millis(50 + next(50))).await;
            }
            Err(_) => {
                record(&history, Op::CheckoutUnknown { session: id });
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        session = Some(current);
    }
}

/// Samples the cluster's linearizable listing: seats in use of the contended feature.
async fn sample(client: Client, history: Shared, stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Ok(listing) = client.checkouts(false).await {
            let in_use = listing
                .checkouts
                .iter()
                .filter(|c| c.feature == CHAOS_FEATURE)
                .map(|c| c.seats)
                .sum();
            if let Ok(mut history) = history.lock() {
                history.sampled_in_use.push(in_use);
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

type NodeStates = (BTreeMap<u64, u64>, BTreeMap<u64, Vec<v1::CheckoutStatus>>);

/// Every node's applied index and listing (stale reads, each node its own), once they are
/// stable: the same index before and after the listing, on every node.
async fn settled_state(cluster: &ComposeCluster) -> Result<NodeStates, String> {
    let deadline = Instant::now() + AGREEMENT_TIMEOUT;
    loop {
        let mut applied = BTreeMap::new();
        let mut listed = BTreeMap::new();
        let mut last_error = None;
        for id in NODE_IDS {
            match node_state(cluster, id).await {
                Ok((index, listing)) => {
                    applied.insert(id, index);
                    listed.insert(id, listing);
                }
                Err(e) => last_error = Some(format!("node {id}: {e}")),
            }
        }
        let settled = last_error.is_none()
            && applied.values().collect::<std::collections::BTreeSet<_>>().len() == 1;
        if settled || Instant::now() > deadline {
            if let Some(e) = last_error {
                return Err(format!(
                    "the nodes did not all answer within {AGREEMENT_TIMEOUT:?}: {e}"
                ));
            }
            return Ok((applied, listed));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn node_state(
    cluster: &ComposeCluster,
    id: u64,
) -> Result<(u64, Vec<v1::CheckoutStatus>), String> {
    let client = cluster.node_client(id)?;
    let before = client.cluster(true).await.map_err(|e| e.to_string())?.applied_index;
    let listing = client.checkouts(true).await.map_err(|e| e.to_string())?;
    let after = client.cluster(true).await.map_err(|e| e.to_string())?.applied_index;
    if before != after {
        return Err(format!("applied index moved from {before} to {after} during the read"));
    }
    let mut checkouts: Vec<v1::CheckoutStatus> =
        listing.checkouts.into_iter().filter(|c| c.feature == CHAOS_FEATURE).collect();
    checkouts.sort_by_key(|c| c.handle);
    Ok((before, checkouts))
}
