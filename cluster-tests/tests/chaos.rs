//! The chaos suite, short version: each scenario of `cluster_tests::scenario` for a few
//! seconds of faults under load, its history checked. A failure prints the seed; replay it
//! with `CHAOS_SEED=<seed> cargo test -p cluster-tests --test chaos <name>`. The long version
//! is `make chaos DURATION=600` (docs/CHAOS.md).

use cluster_tests::rng::seed_from_env;
use cluster_tests::scenario::{RunOptions, Scenario, run};

async fn passes(scenario: Scenario) -> cluster_tests::scenario::Outcome {
    let seed = seed_from_env();
    let outcome = run(scenario, &RunOptions::short(seed)).await;
    eprintln!("{}\nseats held at the end:\n{}", outcome.summary(), outcome.held_at_end());
    assert!(
        outcome.report.violations.is_empty(),
        "{}\nviolations: {:#?}\nfaults: {:#?}\n{}\n{}",
        outcome.summary(),
        outcome.report.violations,
        outcome.history.faults,
        outcome.ops_in_violations(),
        outcome.logs
    );
    assert!(outcome.report.grants > 0, "the workload was granted nothing: {}", outcome.summary());
    assert!(
        outcome.report.checked_at_end > 0,
        "no grant was checked at the end: {}\nseats held at the end:\n{}",
        outcome.summary(),
        outcome.held_at_end()
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loop_keeps_every_rule() {
    let _ = passes(Scenario::LeaderKillLoop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_kill_keeps_every_rule() {
    let _ = passes(Scenario::FollowerKill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_keeps_every_rule() {
    let _ = passes(Scenario::RollingRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_every_rule() {
    let _ = passes(Scenario::WholeClusterRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_pause_keeps_every_rule() {
    let _ = passes(Scenario::LeaderPause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_partition_with_clients_on_the_minority_keeps_every_rule() {
    let _ = passes(Scenario::MinorityPartition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asymmetric_partition_keeps_every_rule() {
    let _ = passes(Scenario::AsymmetricPartition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_change_under_load_keeps_every_rule() {
    let _ = passes(Scenario::MembershipChange).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_snapshot_install_keeps_every_rule() {
    let mut outcome = passes(Scenario::SnapshotInstallKill).await;
    if outcome.snapshot_installs == 0 && std::env::var("CHAOS_SEED").is_err() {
        // Every rule held, but the machine was too slow for the follower to fall behind the
        // purged log in the short window: run again (a new seed), so the scenario does
        // exercise a kill during a snapshot install.
        eprintln!("no snapshot was installed ({}); once more", outcome.summary());
        outcome = passes(Scenario::SnapshotInstallKill).await;
    }
    assert!(outcome.snapshot_installs > 0, "no snapshot was installed: {}", outcome.summary());
}

/// The harness's own claims: peers dial each other through the proxies (`--peer-route`), so
/// cutting the leader's links makes the others elect a new leader; and nodes that applied the
/// same entries answer the same `state_digest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_routes_carry_the_raft_traffic_and_equal_states_have_equal_digests() {
    use cluster_tests::proxy::LinkMode;
    use cluster_tests::{Cluster, ClusterOptions};

    let cluster =
        Cluster::start_with(ClusterOptions { nodes: 3, proxied: true, ..Default::default() });
    let leader = cluster.wait_ready().await;
    let others: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
    let digests = |statuses: &[qlm_proto::v1::ClusterResponse]| {
        statuses.iter().map(|s| (s.applied_index, s.state_digest.clone())).collect::<Vec<_>>()
    };
    let mut agreed = None;
    for _ in 0..50 {
        let mut statuses = Vec::new();
        for id in 1..=3 {
            statuses.extend(cluster.cluster_status(id).await.ok());
        }
        let seen = digests(&statuses);
        if seen.len() == 3 && seen.windows(2).all(|w| w[0] == w[1]) {
            agreed = Some(seen[0].clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (index, digest) = agreed.expect("the three nodes agree on an index and a digest");
    assert!(index > 0 && digest.len() == 64, "{index} {digest}");

    cluster.partition(&[leader], &others, LinkMode::Drop);
    let mut new_leader = None;
    for _ in 0..100 {
        if let Ok(status) = cluster.cluster_status(others[0]).await
            && let Some(hint) = status.leader
            && hint.id != 0
            && hint.id != leader
        {
            new_leader = Some(hint.id);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        new_leader.is_some(),
        "cutting node {leader}'s proxied links did not end its leadership"
    );
    cluster.heal();
}
