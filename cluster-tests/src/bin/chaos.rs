//! `make chaos DURATION=600`: the long chaos run. Runs the scenarios of
//! `cluster_tests::scenario` one after another, in an order and with fault times drawn from the
//! seed, until the duration (seconds) is spent, and prints one line per run and a summary:
//! operations, faults, violations, lost checkouts, and failover figures (time from a fault to
//! the next granted checkout: median and worst). Exits 1 when any run broke a rule.
//!
//! Usage: `chaos [SECONDS]` (default 600). `CHAOS_SEED` replays a run;
//! `CHAOS_SCENARIO=leader-kill-loop,...` limits the scenarios.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster_tests::rng::{Rng, seed_from_env};
use cluster_tests::scenario::{RunOptions, Scenario, run};

/// Longest fault phase of one run, seconds.
const MAX_FAULT_SECONDS: u64 = 45;
/// Shortest fault phase of one run, seconds.
const MIN_FAULT_SECONDS: u64 = 15;
/// The set-up and checking around a fault phase take about this long, seconds.
const RUN_OVERHEAD_SECONDS: u64 = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(600);
    let seed = seed_from_env();
    let only: Vec<String> = std::env::var("CHAOS_SCENARIO")
        .map(|s| s.split(',').map(|n| n.trim().to_owned()).collect())
        .unwrap_or_default();
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|n| n == s.name()))
        .collect();
    if scenarios.is_empty() {
        eprintln!("chaos: no scenario matches CHAOS_SCENARIO={only:?}");
        std::process::exit(2);
    }
    println!(
        "chaos: {seconds} s, seed {seed} (replay: CHAOS_SEED={seed} make chaos DURATION={seconds})"
    );
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let (mut runs, mut ops, mut grants, mut unknown, mut faults) = (0, 0, 0, 0, 0);
    let (mut violations, mut lost, mut harness_failures) = (0, 0, 0);
    let mut failover: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut recoveries = Vec::new();
    let mut order = scenarios.clone();
    while Instant::now() + Duration::from_secs(MIN_FAULT_SECONDS + RUN_OVERHEAD_SECONDS) < deadline
    {
        if order.is_empty() {
            order = scenarios.clone();
        }
        let scenario = order.remove(rng.range(0, order.len() as u64) as usize);
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        let fault_seconds = rng
            .range(MIN_FAULT_SECONDS, MAX_FAULT_SECONDS + 1)
            .min(left.saturating_sub(RUN_OVERHEAD_SECONDS))
            .max(MIN_FAULT_SECONDS);
        let mut options = RunOptions::short(rng.next_u64());
        options.fault_time = Duration::from_secs(fault_seconds);
        // A harness failure (no leader within the start-up timeout, a port taken by another
        // process) panics inside the run; it is counted and the run goes on.
        let outcome = match tokio::spawn(async move { run(scenario, &options).await }).await {
            Ok(outcome) => outcome,
            Err(e) => {
                harness_failures += 1;
                println!(
                    "[{:>4} s] {} aborted by the harness: {e}",
                    started.elapsed().as_secs(),
                    scenario.name()
                );
                continue;
            }
        };
        runs += 1;
        let report = &outcome.report;
        ops += report.ops;
        grants += report.grants;
        unknown += report.unknown;
        faults += outcome
            .history
            .faults
            .iter()
            .filter(|f| !matches!(f.kind.as_str(), "heal" | "healed"))
            .count();
        violations += report.violations.len();
        lost += report.lost();
        recoveries.extend(report.recovery_ms);
        for kind in ["kill-leader", "partition-leader", "restart-all", "pause-leader"] {
            failover.entry(kind).or_default().extend(outcome.history.failover_after(kind));
        }
        println!("[{:>4} s] {}", started.elapsed().as_secs(), outcome.summary());
        if !report.violations.is_empty() {
            println!(
                "  violations: {:#?}\n{}\n{}",
                report.violations,
                outcome.ops_in_violations(),
                outcome.logs
            );
        }
    }
    println!("---");
    println!(
        "chaos summary: seed {seed}, {} s, runs {runs}, ops {ops}, grants {grants}, \
         unknown answers {unknown}, faults {faults}, violations {violations}, lost checkouts {lost}, \
         runs aborted by the harness {harness_failures}",
        started.elapsed().as_secs()
    );
    for (kind, times) in &failover {
        println!("  time to the next grant after {kind}: {}", figures(times));
    }
    println!("  time to the next grant after the faults stopped: {}", figures(&recoveries));
    if violations > 0 || harness_failures > 0 {
        std::process::exit(1);
    }
}

/// `n=…, median … ms, worst … ms` of a list of milliseconds.
fn figures(times: &[u64]) -> String {
    if times.is_empty() {
        return "no samples".into();
    }
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let worst = sorted[sorted.len() - 1];
    format!("n={}, median {median} ms, worst {worst} ms", sorted.len())
}
