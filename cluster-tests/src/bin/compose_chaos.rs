//! `make compose-chaos`: faults on a real docker compose cluster under a client workload,
//! checked with the chaos suite's checker.
//!
//! Starts `deploy/docker-compose.yml` under a project name of its own (the image must exist:
//! `make image`), runs the chaos suite's workload (`workload.rs`: client sessions checking a
//! 3-seat feature out and in, waiting, abandoning, closing; a prober on a plentiful feature)
//! from this host through the published ports, and meanwhile: kills the leader's container and
//! starts it again, kills a follower's and starts it again, disconnects the (new) leader from
//! the cluster's network and connects it again. Then it takes every node's final state, and
//! the checker (`checker.rs`) looks for over-grants, lost checkouts, early expiries,
//! divergence, and a missing recovery. Finally every session is closed and no node may list a
//! checkout any more.
//!
//! It prints what it did and exits 0 when there is no violation, 1 otherwise, 2 when Docker
//! cannot be used. The compose project (containers, network, volumes) is taken down at the
//! end, pass or fail. `CHAOS_SEED` replays the workload's choices.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cluster_tests::checker::{CheckerOptions, Report, check};
use cluster_tests::compose::{ComposeCluster, NODE_IDS, docker_works};
use cluster_tests::history::{HeldCheckout, NodeState, Op, Recorder};
use cluster_tests::rng::{Rng, seed_from_env};
use cluster_tests::workload::{Workload, WorkloadOptions, close_all, probe_grant, prove_alive};
use cluster_tests::{CHAOS_FEATURE, CHAOS_SEATS};
use qlm_client::{ServerAddr, parse_servers};

/// How long a fault lasts before it is healed.
const FAULT_DURATION: Duration = Duration::from_secs(3);
/// Workload time before the first fault and after the last.
const CALM: Duration = Duration::from_secs(2);
/// How long the nodes may take to agree once every fault is healed.
const AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Beyond three TTLs, how long an abandoned session's seats may take to come back.
const DRAIN_SLACK: Duration = Duration::from_secs(5);

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
    let code = match chaos(&cluster).await {
        Ok(0) => {
            let secs = started.elapsed().as_secs_f64();
            println!("compose-chaos: PASS (violations 0) in {secs:.1}s");
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

/// Every node's client address, each client's list starting at another node.
fn client_lists(cluster: &ComposeCluster) -> Result<Vec<Vec<ServerAddr>>, String> {
    let all = parse_servers(&cluster.servers()).map_err(|e| e.to_string())?;
    Ok((0..all.len()).map(|i| all[i..].iter().chain(&all[..i]).cloned().collect()).collect())
}

/// The workload, the faults and the checks; the number of violations.
async fn chaos(cluster: &ComposeCluster) -> Result<usize, String> {
    let seed = seed_from_env();
    let mut rng = Rng::new(seed);
    let recorder = Recorder::new();
    let lists = client_lists(cluster)?;
    let options = WorkloadOptions { clients: 6, ..WorkloadOptions::default() };
    let workload = Workload::start(&lists, &options, &recorder, &mut rng);

    tokio::time::sleep(CALM).await;
    let mut faults = Vec::new();
    let fault_result = run_faults(cluster, &recorder, &mut faults).await;
    for fault in &faults {
        println!("  fault: {fault}");
    }
    fault_result?;
    let healed_at = recorder.now();
    cluster.wait_ready().await?;
    let all = parse_servers(&cluster.servers()).map_err(|e| e.to_string())?;
    probe_grant(all, "vhdl-editor", &recorder, Duration::from_secs(30)).await;
    tokio::time::sleep(CALM).await;

    let ends = workload.quiesce().await;
    let (states, final_at) = final_states(cluster, &recorder).await;
    prove_alive(&ends, &recorder).await;
    close_all(ends, &recorder).await;

    let pools =
        BTreeMap::from([(CHAOS_FEATURE.to_owned(), CHAOS_SEATS), ("vhdl-editor".into(), 25)]);
    let mut history = recorder.history(pools);
    history.healed_at = Some(healed_at);
    history.final_at = Some(final_at);
    history.final_states = states;
    let report = check(&history, &CheckerOptions::default());
    print_report(seed, &report, &history.final_states);

    // Every session closed: once the sessions that were abandoned or whose close was not
    // answered have outlived their TTL, no node lists a checkout any more.
    let closed_at = Instant::now();
    let drain_deadline = closed_at + options.ttl * 3 + DRAIN_SLACK;
    let after_close = loop {
        let (states, _) = final_states(cluster, &recorder).await;
        let empty = states.iter().all(|s| s.checkouts.is_empty());
        if (empty && states.len() == NODE_IDS.len()) || Instant::now() > drain_deadline {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "  after closing every session ({:.1}s later): checkouts listed by node {:?}",
        closed_at.elapsed().as_secs_f64(),
        after_close.iter().map(|s| (s.node, s.checkouts.len())).collect::<Vec<_>>()
    );
    let mut extra = Vec::new();
    let ops = recorder.history(BTreeMap::new()).ops;
    for state in &after_close {
        if !state.checkouts.is_empty() {
            extra.push(format!(
                "node {} still lists {} checkouts {:.0}s after every session closed: {:?}",
                state.node,
                state.checkouts.len(),
                closed_at.elapsed().as_secs_f64(),
                state.checkouts
            ));
            for held in &state.checkouts {
                print_session_ops(&ops, &held.session);
            }
        }
    }
    if after_close.len() != NODE_IDS.len() {
        extra.push(format!("only {} nodes answered after the sessions closed", after_close.len()));
    }
    for violation in &report.violations {
        println!("  VIOLATION: {violation:?}");
    }
    for violation in &extra {
        println!("  VIOLATION: {violation}");
    }
    let violations = report.violations.len() + extra.len();
    println!("  violations: {violations}");
    Ok(violations)
}

/// The recorded calls of `session` (the holder of a checkout left behind), to tell a close
/// that was not answered from one that was.
fn print_session_ops(ops: &[Op], session: &str) {
    println!("  calls recorded for session {session}:");
    for op in ops.iter().filter(|op| op.session.as_deref() == Some(session)) {
        println!(
            "    client {} {:?} at {}..{} ms: {:?}",
            op.client, op.call, op.invoked, op.completed, op.answer
        );
    }
}

fn print_report(seed: u64, report: &Report, states: &[NodeState]) {
    println!(
        "  operations: {} ({} grants acknowledged, {} answers unknown), seed {seed}",
        report.ops, report.grants, report.unknown
    );
    println!(
        "  checker: over-grants {}, lost checkouts {}, early expiries {}; most seats surely held \
         at once {:?} (pools {CHAOS_FEATURE}={CHAOS_SEATS}, vhdl-editor=25); {} grants checked \
         against the final states; first grant {} ms after the faults healed",
        report.over_grants(),
        report.lost(),
        report.early_expiries(),
        report.peak_held,
        report.checked_at_end,
        report.recovery_ms.map_or("?".into(), |ms| ms.to_string())
    );
    println!("  model check: {}", report.linearizability_summary());
    let digests: Vec<String> = states
        .iter()
        .map(|s| {
            let digest = s.state_digest.get(..12).unwrap_or(&s.state_digest);
            format!("node {} applied {} digest {digest}", s.node, s.applied_index)
        })
        .collect();
    println!("  agreement: {}", digests.join("; "));
}

/// Kill the leader, kill a follower, cut the leader off the network; each healed before the
/// next. Each fault is recorded in the history and described in `faults`.
async fn run_faults(
    cluster: &ComposeCluster,
    recorder: &Recorder,
    faults: &mut Vec<String>,
) -> Result<(), String> {
    let t0 = Instant::now();
    let at = |t0: Instant| format!("{:5.1}s", t0.elapsed().as_secs_f64());

    let leader = cluster.leader().await.ok_or("no leader before the first fault")?;
    cluster.kill(leader).await?;
    recorder.fault("kill", format!("docker kill node {leader} (the leader)"));
    faults.push(format!("{} docker kill node {leader} (the leader)", at(t0)));
    tokio::time::sleep(FAULT_DURATION).await;
    let during = cluster.leader().await;
    cluster.start(leader).await?;
    recorder.fault("restart", format!("docker start node {leader}"));
    faults.push(format!(
        "{} docker start node {leader} (meanwhile leader: {})",
        at(t0),
        during.map_or("none".into(), |l| l.to_string())
    ));
    let ready = cluster.wait_ready().await?;
    faults.push(format!("{} cluster ready, leader {ready}", at(t0)));

    let follower = NODE_IDS.into_iter().find(|&id| id != ready).ok_or("no follower")?;
    cluster.kill(follower).await?;
    recorder.fault("kill", format!("docker kill node {follower} (a follower)"));
    faults.push(format!("{} docker kill node {follower} (a follower)", at(t0)));
    tokio::time::sleep(FAULT_DURATION).await;
    cluster.start(follower).await?;
    recorder.fault("restart", format!("docker start node {follower}"));
    faults.push(format!("{} docker start node {follower}", at(t0)));
    let ready = cluster.wait_ready().await?;
    faults.push(format!("{} cluster ready, leader {ready}", at(t0)));

    cluster.disconnect(ready).await?;
    recorder.fault("partition", format!("docker network disconnect node {ready} (the leader)"));
    faults.push(format!("{} docker network disconnect node {ready} (the leader)", at(t0)));
    tokio::time::sleep(FAULT_DURATION).await;
    let during = cluster.leader().await;
    cluster.reconnect(ready).await?;
    recorder.fault("heal", format!("docker network connect node {ready}"));
    faults.push(format!(
        "{} docker network connect node {ready} (meanwhile leader: {})",
        at(t0),
        during.map_or("none".into(), |l| l.to_string())
    ));
    let ready = cluster.wait_ready().await?;
    faults.push(format!("{} cluster ready, leader {ready}", at(t0)));
    Ok(())
}

/// Waits until every node has applied the same index with the same digest, then returns their
/// states and the time they were taken; after [`AGREEMENT_TIMEOUT`] it returns what it saw,
/// for the checker to report.
async fn final_states(cluster: &ComposeCluster, recorder: &Recorder) -> (Vec<NodeState>, u64) {
    let deadline = Instant::now() + AGREEMENT_TIMEOUT;
    loop {
        let at = recorder.now();
        let mut states = Vec::new();
        for id in NODE_IDS {
            if let Some(state) = node_state(cluster, id).await {
                states.push(state);
            }
        }
        let agreed = cluster_tests::history::states_agree(&states, NODE_IDS.len());
        if agreed || Instant::now() > deadline {
            return (states, at);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Node `id`'s own state (stale reads through its published port): kept only when its applied
/// index did not move during the listing.
async fn node_state(cluster: &ComposeCluster, id: u64) -> Option<NodeState> {
    let client = cluster.node_client(id).ok()?;
    let before = client.cluster(true).await.ok()?;
    let listing = client.checkouts(true).await.ok()?;
    let after = client.cluster(true).await.ok()?;
    if before.applied_index != after.applied_index {
        return None;
    }
    Some(NodeState {
        node: id,
        applied_index: after.applied_index,
        state_digest: after.state_digest,
        checkouts: listing
            .checkouts
            .into_iter()
            .map(|c| HeldCheckout {
                handle: c.handle,
                session: c.session_id,
                feature: c.feature,
                count: c.count,
            })
            .collect(),
    })
}
