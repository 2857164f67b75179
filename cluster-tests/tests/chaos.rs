//! The chaos suite, short version: each scenario of `cluster_tests::scenario` for a few
//! seconds of faults under load, its history checked. A failure prints the seed; replay it
//! with `CHAOS_SEED=<seed> cargo test -p cluster-tests --test chaos <name>`. The long version
//! is `make chaos DURATION=600` (docs/CHAOS.md).

use cluster_tests::rng::seed_from_env;
use cluster_tests::scenario::{RunOptions, Scenario, run};

async fn passes(scenario: Scenario) -> cluster_tests::scenario::Outcome {
    let seed = seed_from_env();
    let outcome = run(scenario, &RunOptions::short(seed)).await;
    eprintln!("{}", outcome.summary());
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
        "no grant was checked at the end: {}",
        outcome.summary()
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
    let outcome = passes(Scenario::SnapshotInstallKill).await;
    assert!(outcome.snapshot_installs > 0, "no snapshot was installed: {}", outcome.summary());
}
