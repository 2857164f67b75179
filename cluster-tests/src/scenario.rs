//! The chaos scenarios: a cluster with proxied peer links, the workload running, faults
//! injected for a while, then every fault healed and the history checked.
//!
//! Every scenario runs the same frame ([`run`]):
//!
//! 1. start the cluster (3 nodes, 5 for the minority partition; a spare id for the
//!    membership change; small snapshots for the snapshot scenario) and wait for a leader;
//! 2. start the workload, let it warm up, then inject the scenario's faults until the
//!    duration is over (each fault is recorded with its time);
//! 3. heal everything (links back to pass, paused nodes resumed, dead nodes restarted) and
//!    note the time; probe that a checkout is granted again;
//! 4. quiesce the clients (sessions and seats still held), wait until every member has applied
//!    the same index, take each member's final state (applied index, state digest,
//!    checkouts), prove the sessions alive, close them;
//! 5. check the history ([`crate::checker`]).
//!
//! The seed decides every random choice of the scenario and the workload: a failing run is
//! replayed with `CHAOS_SEED=<seed>`.

mod faults;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::checker::{CheckerOptions, Report, check};
use crate::history::{HeldCheckout, History, NodeState, Recorder};
use crate::rng::Rng;
use crate::workload::{Workload, WorkloadOptions, close_all, probe_grant, prove_alive};
use crate::{CHAOS_FEATURE, CHAOS_SEATS, Cluster, ClusterOptions};
use faults::Faults;

/// The scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Kill -9 the leader, restart it, again and again.
    LeaderKillLoop,
    /// Kill -9 a random follower, restart it.
    FollowerKill,
    /// Restart every node in turn (kill -9, start from its data).
    RollingRestart,
    /// Kill -9 every node at once, restart them all.
    WholeClusterRestart,
    /// SIGSTOP the leader for longer than the election timeout, then SIGCONT.
    LeaderPause,
    /// Five nodes: the leader and one follower cut off from the other three, with half the
    /// clients knowing only the minority's nodes.
    MinorityPartition,
    /// One-way cuts: the leader cannot reach the others (or they cannot reach it), or one
    /// follower is cut one way; some links only delayed.
    AsymmetricPartition,
    /// Add a fourth node (`--join`, AddNode) and remove an original one, under load.
    MembershipChange,
    /// A follower falls behind a snapshot (snapshots every 100 entries), and is killed
    /// again and again while it catches up by installing it.
    SnapshotInstallKill,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::LeaderKillLoop,
        Scenario::FollowerKill,
        Scenario::RollingRestart,
        Scenario::WholeClusterRestart,
        Scenario::LeaderPause,
        Scenario::MinorityPartition,
        Scenario::AsymmetricPartition,
        Scenario::MembershipChange,
        Scenario::SnapshotInstallKill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::LeaderKillLoop => "leader-kill-loop",
            Scenario::FollowerKill => "follower-kill",
            Scenario::RollingRestart => "rolling-restart",
            Scenario::WholeClusterRestart => "whole-cluster-restart",
            Scenario::LeaderPause => "leader-pause",
            Scenario::MinorityPartition => "minority-partition",
            Scenario::AsymmetricPartition => "asymmetric-partition",
            Scenario::MembershipChange => "membership-change",
            Scenario::SnapshotInstallKill => "snapshot-install-kill",
        }
    }

    fn cluster_options(self) -> ClusterOptions {
        let mut options = ClusterOptions { nodes: 3, proxied: true, ..ClusterOptions::default() };
        match self {
            Scenario::MinorityPartition => options.nodes = 5,
            Scenario::MembershipChange => options.spare = 1,
            Scenario::SnapshotInstallKill => options.snapshot_every = Some(SMALL_SNAPSHOT_EVERY),
            _ => {}
        }
        options
    }
}

/// `--snapshot-every` of the snapshot scenario: small, so that a follower down for a few
/// seconds falls behind the leader's purged log even when a loaded machine applies slowly.
pub const SMALL_SNAPSHOT_EVERY: u64 = 50;

/// How long and how hard.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub seed: u64,
    /// Time spent injecting faults.
    pub fault_time: Duration,
    pub workload: WorkloadOptions,
    pub checker: CheckerOptions,
}

impl RunOptions {
    /// The short version that `cargo test` runs.
    pub fn short(seed: u64) -> RunOptions {
        RunOptions {
            seed,
            fault_time: Duration::from_secs(8),
            workload: WorkloadOptions { clients: 6, ..WorkloadOptions::default() },
            checker: CheckerOptions::default(),
        }
    }
}

/// What a run produced.
pub struct Outcome {
    pub scenario: Scenario,
    pub seed: u64,
    pub history: History,
    pub report: Report,
    /// Node logs, for a failure message.
    pub logs: String,
    /// Snapshots the nodes installed from a leader (counted in their logs).
    pub snapshot_installs: usize,
}

impl Outcome {
    /// A one-paragraph account for a failure message or the chaos binary.
    pub fn summary(&self) -> String {
        let r = &self.report;
        format!(
            "{} seed={} ops={} grants={} unknown={} faults={} checked_at_end={} peak_held={:?} \
             maybe_held_peak={:?} recovery_ms={:?} final={:?} snapshot_installs={} violations={} \
             model check [{}] (replay: CHAOS_SEED={} ...)",
            self.scenario.name(),
            self.seed,
            r.ops,
            r.grants,
            r.unknown,
            r.faults,
            r.checked_at_end,
            r.peak_held,
            r.maybe_held_peak,
            r.recovery_ms,
            self.history
                .final_states
                .iter()
                .map(|s| (s.node, s.applied_index, s.checkouts.len()))
                .collect::<Vec<_>>(),
            self.snapshot_installs,
            r.violations.len(),
            r.linearizability_summary(),
            self.seed
        )
    }
}

/// Runs `scenario` with `options` (see the module documentation).
pub async fn run(scenario: Scenario, options: &RunOptions) -> Outcome {
    let mut rng = Rng::new(options.seed);
    let mut cluster = Cluster::start_with(scenario.cluster_options());
    cluster.wait_ready().await;
    let recorder = Recorder::new();
    let originals: Vec<u64> = cluster.running();
    let servers = client_lists(&cluster, scenario, &originals, &mut rng);
    let workload = Workload::start(&servers, &options.workload, &recorder, &mut rng);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut faults = Faults { cluster: &mut cluster, recorder: &recorder, rng: &mut rng, round: 0 };
    let deadline = Instant::now() + options.fault_time;
    faults.inject(scenario, deadline).await;

    // Heal: every link, every paused or dead member.
    faults.heal_everything().await;
    let members = faults.members().await;
    let healed_at = recorder.now();
    cluster.wait_ready().await;
    let all = cluster.server_list(&members);
    probe_grant(all.clone(), "vhdl-editor", &recorder, Duration::from_secs(30)).await;

    let ends = workload.quiesce().await;
    let (final_states, final_at) = final_states(&cluster, &members, &recorder).await;
    prove_alive(&ends, &recorder).await;
    close_all(ends, &recorder).await;

    let mut pools = BTreeMap::new();
    pools.insert(CHAOS_FEATURE.to_owned(), CHAOS_SEATS);
    pools.insert("vhdl-editor".to_owned(), 25);
    let mut history = recorder.history(pools);
    history.healed_at = Some(healed_at);
    history.final_at = Some(final_at);
    history.final_states = final_states;
    let report = check(&history, &options.checker);
    let snapshot_installs = cluster
        .ids()
        .iter()
        .map(|&id| cluster.log_of(id).matches("installed a snapshot from the leader").count())
        .sum();
    let logs = if report.violations.is_empty() {
        String::new()
    } else {
        cluster
            .ids()
            .iter()
            .map(|&id| format!("--- node {id}:\n{}", tail(&cluster.log_of(id), 60)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Outcome { scenario, seed: options.seed, history, report, logs, snapshot_installs }
}

impl Outcome {
    /// Why the seats the nodes held at the end were or were not checked against the final
    /// states (rule 2): for each checkout on the first final state, whether its grant was
    /// acknowledged, and what the session's calls from the final states on were answered.
    /// For the failure message when no grant was checked.
    pub fn held_at_end(&self) -> String {
        let Some(state) = self.history.final_states.first() else {
            return "no final state".to_owned();
        };
        let final_at = self.history.final_at.unwrap_or(0);
        let mut lines = Vec::new();
        for held in &state.checkouts {
            let grant = self.history.ops.iter().find(|op| {
                matches!(op.answer, crate::history::Answer::Granted { handle, .. } if handle == held.handle)
            });
            let session_ops: Vec<String> = self
                .history
                .ops
                .iter()
                .filter(|op| op.session.as_deref() == Some(held.session.as_str()))
                .filter(|op| op.completed + 1_000 >= final_at || grant.is_none())
                .map(|op| {
                    format!("{:?}@{}..{} -> {:?}", op.call, op.invoked, op.completed, op.answer)
                })
                .collect();
            lines.push(format!(
                "handle {} session {} ({}): grant {}; final_at {final_at}; session's calls: {}",
                held.handle,
                held.session,
                held.feature,
                grant.map_or("never acknowledged".to_owned(), |op| format!(
                    "acknowledged at {} to client {}",
                    op.completed, op.client
                )),
                session_ops.join(", ")
            ));
        }
        lines.join("\n")
    }
}

impl Outcome {
    /// The operations of every session a violation names, one a line, for a failure message.
    pub fn ops_in_violations(&self) -> String {
        use crate::checker::Violation;
        let mut sessions: Vec<&str> = self
            .report
            .violations
            .iter()
            .filter_map(|v| match v {
                Violation::LostCheckout { session, .. }
                | Violation::PhantomSeat { session, .. }
                | Violation::EarlyExpiry { session, .. } => Some(session.as_str()),
                _ => None,
            })
            .collect();
        sessions.dedup();
        let mut out = String::new();
        for session in sessions {
            out.push_str(&format!("--- session {session}:\n"));
            for op in self.history.ops.iter().filter(|op| op.session.as_deref() == Some(session)) {
                out.push_str(&format!(
                    "  client {} {:?} [{}..{}] -> {:?}\n",
                    op.client, op.call, op.invoked, op.completed, op.answer
                ));
            }
        }
        out
    }
}

/// The last `lines` lines of a node's log, without openraft's per-message replication noise.
fn tail(text: &str, lines: usize) -> String {
    let noise = ["openraft::replication", "replication_handler", "A message will be ignored"];
    let all: Vec<&str> =
        text.lines().filter(|line| !noise.iter().any(|n| line.contains(n))).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The server list of each client: every node in a rotated order, or (minority partition)
/// half of the clients knowing only nodes 1 and 2.
fn client_lists(
    cluster: &Cluster,
    scenario: Scenario,
    ids: &[u64],
    rng: &mut Rng,
) -> Vec<Vec<qlm_client::ServerAddr>> {
    let mut lists = Vec::new();
    for shift in 0..ids.len() {
        let mut order = ids.to_vec();
        order.rotate_left((shift + rng.range(0, ids.len() as u64) as usize) % ids.len());
        lists.push(cluster.server_list(&order));
        if scenario == Scenario::MinorityPartition {
            lists.push(cluster.server_list(&MINORITY));
        }
    }
    lists
}

/// The nodes the minority partition cuts off every other round, and the only nodes half of
/// its clients know.
const MINORITY: [u64; 2] = [1, 2];

/// Waits until every member has applied the same index with the same digest, then takes
/// their final states; returns them and the time they were taken. After 30 s it returns
/// what it saw, for the checker to report.
async fn final_states(
    cluster: &Cluster,
    members: &[u64],
    recorder: &Recorder,
) -> (Vec<NodeState>, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let at = recorder.now();
        let states = take_states(cluster, members).await;
        let agreed = crate::history::states_agree(&states, members.len());
        if agreed || Instant::now() > deadline {
            return (states, at);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One pass over the members: status, checkouts, status again (kept only when the index did
/// not move in between, so the checkouts belong to that index).
async fn take_states(cluster: &Cluster, members: &[u64]) -> Vec<NodeState> {
    let mut states = Vec::new();
    for &id in members {
        let Ok(before) = cluster.cluster_status(id).await else { continue };
        let Ok(checkouts) = cluster.checkouts(id).await else { continue };
        let Ok(after) = cluster.cluster_status(id).await else { continue };
        if before.applied_index != after.applied_index {
            continue;
        }
        states.push(NodeState {
            node: id,
            applied_index: after.applied_index,
            state_digest: after.state_digest,
            checkouts: checkouts
                .into_iter()
                .map(|c| HeldCheckout {
                    handle: c.handle,
                    session: c.session_id,
                    feature: c.feature,
                    count: c.count,
                })
                .collect(),
        });
    }
    states
}
