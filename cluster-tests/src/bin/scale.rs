//! Scale benchmark: many live sessions heartbeating at their normal rate against a real
//! 3-process QuorumLM cluster (release build, sled files, fsync on).
//!
//! The sessions are a [`Fleet`]: raw `LicenseService` calls over a few channels per node, as
//! the client library would make them (see `cluster_tests::fleet`).
//!
//! - **Open.** `SCALE_SESSIONS` (100,000) OpenSession calls, `SCALE_OPEN_CONCURRENCY` (256)
//!   at a time, spread over the three nodes (session i asks node i mod 3 first; a follower
//!   forwards the write to the leader); with `SCALE_CHECKOUTS=1` each session then checks out
//!   one seat of a feature with a seat for everyone. Every later call of a session goes to the
//!   leader its last answer named.
//! - **Heartbeats.** Each session heartbeats at the server's hinted interval (a third of the
//!   TTL: 10 s for the default 30 s; `SCALE_TTL_MS` asks for another TTL) from the moment it
//!   is open, so none expires while the others are still opening; the sessions' heartbeats are
//!   spread evenly over the interval, at most `SCALE_INFLIGHT` (2048) in flight.
//! - **Window.** Once every session is open, `SCALE_SECS` (120) of heartbeats, measured:
//!   latency (send to answer) p50/p99/max, sent, failed, skipped for being over an interval
//!   late, sessions lost (a heartbeat answered NOT_FOUND), CPU seconds of each node and of this
//!   generator. Throughout: every node's RSS each second (peak, final). At the end: each
//!   node's data directory size, its Raft log entries, snapshot and database size and live
//!   sessions from `/metrics`, its memory map summary, and how much it logged.
//!
//! `make bench-scale` (release build). Writes `target/bench/scale.json` (`SCALE_JSON`).
//! `SCALE_HOLD_SECS` keeps the cluster up that long after the report, for inspection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster_tests::Cluster;
use cluster_tests::bench::{
    NodeWatch, cpu_seconds, dir_size, env_or, metric_value, percentile, proc_status_kib,
    smaps_rollup_json, watch_nodes, write_report,
};
use cluster_tests::fleet::{
    CATCH_UP_GRACE, Fleet, Opened, Phase, SEAT_FEATURE, dispatch_heartbeats, open_all,
};
use serde_json::json;

/// Longest the whole open phase may take before the benchmark gives up on what is left.
const OPEN_TIMEOUT: Duration = Duration::from_secs(900);
/// How often the open phase prints its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Failed opens named in the report.
const KEPT_FAILURES: usize = 5;

/// The settings, from the environment.
struct Settings {
    sessions: usize,
    window: Duration,
    checkouts: bool,
    channels_per_node: usize,
    open_concurrency: usize,
    inflight: usize,
    /// TTL each session asks for, milliseconds; 0 takes the server's default.
    ttl_ms: u64,
    /// Keep the cluster up this long after the report (heartbeats stopped), to inspect it.
    hold: Duration,
    json: String,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            sessions: env_or("SCALE_SESSIONS", 100_000usize).max(1),
            window: Duration::from_secs_f64(env_or("SCALE_SECS", 120.0f64).clamp(1.0, 3600.0)),
            checkouts: env_or("SCALE_CHECKOUTS", 0u8) == 1,
            channels_per_node: env_or("SCALE_CHANNELS", 4usize).clamp(1, 64),
            open_concurrency: env_or("SCALE_OPEN_CONCURRENCY", 256usize).clamp(1, 4096),
            inflight: env_or("SCALE_INFLIGHT", 2048usize).clamp(1, 65_536),
            ttl_ms: env_or("SCALE_TTL_MS", 0u64),
            hold: Duration::from_secs(env_or("SCALE_HOLD_SECS", 0u64).min(3600)),
            json: std::env::var("SCALE_JSON").unwrap_or_else(|_| "target/bench/scale.json".into()),
        }
    }
}

/// CPU seconds of each pid and of this process, at one instant.
struct CpuMark {
    nodes: Vec<f64>,
    own: f64,
}

impl CpuMark {
    fn now(pids: &[u32]) -> CpuMark {
        CpuMark {
            nodes: pids.iter().map(|p| cpu_seconds(&p.to_string())).collect(),
            own: cpu_seconds("self"),
        }
    }
}

fn rss_kib(pids: &[u32]) -> Vec<u64> {
    pids.iter().map(|p| proc_status_kib(&p.to_string(), "VmRSS")).collect()
}

fn mib(bytes: f64) -> f64 {
    bytes / (1 << 20) as f64
}

#[tokio::main]
async fn main() {
    // `run` owns the cluster: it is dropped (every node killed) before this process exits.
    if let Err(e) = run(Settings::from_env()).await {
        eprintln!("scale: {e}");
        std::process::exit(1);
    }
}

async fn run(settings: Settings) -> Result<(), String> {
    let n = settings.sessions;
    let (cluster, leader, ids, pids) = start_cluster(&settings).await?;
    let addrs: Vec<String> = ids.iter().map(|&id| cluster.client_addr(id)).collect();
    let fleet = Fleet::connect(&addrs, settings.channels_per_node, n, settings.ttl_ms).await?;
    let fleet = Arc::new(fleet);

    let start = Instant::now();
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watched = pids.iter().zip(&cluster.nodes).map(|(&pid, node)| (pid, node.log.clone()));
    let limit = OPEN_TIMEOUT + settings.window + CATCH_UP_GRACE * 2;
    let watch = tokio::spawn(watch_nodes(watched.collect(), start, stop_watch.clone(), limit));
    let rss_at_start = rss_kib(&pids);
    let cpu_start = CpuMark::now(&pids);

    // The first session alone: its heartbeat's answer says how often to heartbeat.
    fleet.open(0, settings.checkouts).await.map_err(|e| format!("the first open: {e}"))?;
    let interval = fleet.first_heartbeat().await?.max(Duration::from_millis(100));
    eprintln!("heartbeat interval (server's hint): {interval:?}");
    let dispatcher = tokio::spawn(dispatch_heartbeats(
        fleet.clone(),
        start,
        interval,
        settings.window,
        settings.inflight,
    ));
    let progress = || {
        let rss: Vec<String> =
            rss_kib(&pids).iter().map(|&k| format!("{:.0}", mib(k as f64 * 1024.0))).collect();
        eprintln!(
            "  {:>6.1} s: {} sessions open, RSS MiB {}",
            start.elapsed().as_secs_f64(),
            fleet.opened(),
            rss.join(" / ")
        );
    };
    let opened = open_all(
        fleet.clone(),
        settings.open_concurrency,
        settings.checkouts,
        OPEN_TIMEOUT,
        PROGRESS_EVERY,
        progress,
    )
    .await;
    let open_secs = start.elapsed().as_secs_f64();
    let window_start = fleet.start_window();
    let cpu_open = CpuMark::now(&pids);
    let rss_after_open = rss_kib(&pids);
    print_open(&fleet, &opened, open_secs, settings.checkouts);

    if let Err(e) = dispatcher.await {
        eprintln!("the heartbeat dispatcher failed: {e}");
    }
    let window_secs = window_start.elapsed().as_secs_f64().min(settings.window.as_secs_f64());
    let cpu_end = CpuMark::now(&pids);
    stop_watch.store(true, Ordering::Relaxed);
    let watch = watch.await.unwrap_or_default();
    print_window(&fleet, interval, window_secs);

    let marks = Marks {
        pids: &pids,
        rss_at_start,
        rss_after_open,
        cpu_start,
        cpu_open,
        cpu_end,
        window_secs,
        watch,
    };
    let nodes = report_nodes(&cluster, &ids, leader, &marks).await;
    let run = Run { fleet: &fleet, opened: &opened, open_secs, interval };
    let report = scale_report(&settings, &run, &marks, nodes);
    write_report(&settings.json, &report);
    if settings.hold > Duration::ZERO {
        eprintln!("holding the cluster for {:?} (SCALE_HOLD_SECS); pids {pids:?}", settings.hold);
        tokio::time::sleep(settings.hold).await;
    }
    Ok(())
}

/// Starts the 3-node cluster with a seat for every session; returns it, its first leader,
/// the node ids and their pids.
async fn start_cluster(settings: &Settings) -> Result<(Cluster, u64, Vec<u64>, Vec<u32>), String> {
    let n = settings.sessions;
    let license = format!(
        "FEATURE {SEAT_FEATURE} vendor=test version=1.0 count={n} expires=permanent\n\
         FEATURE scale-few vendor=test version=2.0 count=10 expires=permanent\n"
    );
    let cluster = Cluster::start_serving(3, &license);
    let leader = cluster.wait_ready().await;
    let ids: Vec<u64> = (1..=3).collect();
    let pids: Vec<u32> = ids.iter().filter_map(|&id| cluster.pid(id)).collect();
    if pids.len() != ids.len() {
        return Err("a node is not running".into());
    }
    eprintln!(
        "scale: 3-node cluster ready (leader node {leader}); {n} sessions, window {:?}, \
         checkouts {}, TTL asked {} ms (0: default), {} channels per node, open concurrency {}, \
         in flight {}",
        settings.window,
        settings.checkouts,
        settings.ttl_ms,
        settings.channels_per_node,
        settings.open_concurrency,
        settings.inflight
    );
    Ok((cluster, leader, ids, pids))
}

/// What was measured of the nodes and of this process: RSS and CPU at the phase changes,
/// and the watcher's readings.
struct Marks<'a> {
    pids: &'a [u32],
    rss_at_start: Vec<u64>,
    rss_after_open: Vec<u64>,
    cpu_start: CpuMark,
    cpu_open: CpuMark,
    cpu_end: CpuMark,
    /// Length of the heartbeat window, seconds.
    window_secs: f64,
    watch: NodeWatch,
}

/// The run's own figures: the fleet, its opens and the heartbeat interval.
struct Run<'a> {
    fleet: &'a Fleet,
    opened: &'a Opened,
    open_secs: f64,
    interval: Duration,
}

/// Prints each node's figures and returns them as the report's `nodes`.
async fn report_nodes(
    cluster: &Cluster,
    ids: &[u64],
    leader: u64,
    marks: &Marks<'_>,
) -> Vec<serde_json::Value> {
    let Marks { pids, rss_at_start, rss_after_open, watch, window_secs, .. } = marks;
    let (cpu_start, cpu_open, cpu_end) = (&marks.cpu_start, &marks.cpu_open, &marks.cpu_end);
    // Leadership may have moved during the run (an overloaded cluster holds elections).
    let final_leader = cluster.leader().await;
    let role = |id: u64| match (id == leader, Some(id) == final_leader) {
        (true, true) => "leader",
        (true, false) => "leader at the start",
        (false, true) => "leader at the end",
        (false, false) => "follower",
    };
    let mut nodes = Vec::new();
    for (k, &id) in ids.iter().enumerate() {
        let metrics = cluster.http_get(id, "/metrics").map(|(_, body)| body).unwrap_or_default();
        let metric = |name: &str| metric_value(&metrics, name).unwrap_or(-1.0);
        let (apparent, allocated) = dir_size(&cluster.nodes[k].data_dir);
        let open_cpu = cpu_open.nodes[k] - cpu_start.nodes[k];
        let window_cpu = cpu_end.nodes[k] - cpu_open.nodes[k];
        let last = watch.last_kib.get(k).copied();
        // The watcher samples each second; the readings at the start and after the opens count.
        let sampled = watch.peak_kib.get(k).copied().unwrap_or(0);
        let peak = sampled.max(rss_after_open[k]).max(rss_at_start[k]);
        let logged = watch.logged_bytes.get(k).copied().unwrap_or(0);
        eprintln!(
            "node {id} ({}): RSS start {:.0} MiB, after open {:.0} MiB, peak {:.0} MiB, final \
             {:.0} MiB; CPU open {open_cpu:.1} s, window {window_cpu:.1} s ({:.0} % of a core); \
             data dir {:.1} MiB (du {:.1} MiB); log entries {}, snapshot {:.1} MiB, database \
             {:.1} MiB; sessions live {}; its log got {:.1} MiB",
            role(id),
            mib(rss_at_start[k] as f64 * 1024.0),
            mib(rss_after_open[k] as f64 * 1024.0),
            mib(peak as f64 * 1024.0),
            mib(last.unwrap_or(0) as f64 * 1024.0),
            100.0 * window_cpu / window_secs,
            mib(apparent as f64),
            mib(allocated as f64),
            metric("qlm_raft_log_entries"),
            mib(metric("qlm_raft_snapshot_size_bytes")),
            mib(metric("qlm_database_size_bytes")),
            metric("qlm_sessions_live"),
            mib(logged as f64),
        );
        nodes.push(json!({
            "id": id,
            "leader_at_start": id == leader,
            "leader_at_end": Some(id) == final_leader,
            "rss_start_kib": rss_at_start[k],
            "rss_after_open_kib": rss_after_open[k],
            "rss_peak_kib": peak,
            "rss_final_kib": last,
            "smaps_rollup_final": smaps_rollup_json(pids[k]),
            "cpu_open_secs": open_cpu,
            "cpu_window_secs": window_cpu,
            "data_dir_bytes": apparent,
            "data_dir_allocated_bytes": allocated,
            "raft_log_entries": metric("qlm_raft_log_entries"),
            "raft_log_size_bytes": metric("qlm_raft_log_size_bytes"),
            "raft_snapshot_size_bytes": metric("qlm_raft_snapshot_size_bytes"),
            "database_size_bytes": metric("qlm_database_size_bytes"),
            "sessions_live": metric("qlm_sessions_live"),
            "session_expiries": metric("qlm_session_expiries_total"),
            "log_written_bytes": logged,
        }));
    }
    nodes
}

/// Prints this process's own cost and returns the whole report.
fn scale_report(
    settings: &Settings,
    run: &Run<'_>,
    marks: &Marks<'_>,
    nodes: Vec<serde_json::Value>,
) -> serde_json::Value {
    let Run { fleet, opened, open_secs, interval } = *run;
    let window_secs = marks.window_secs;
    let n = settings.sessions;
    let own_open = marks.cpu_open.own - marks.cpu_start.own;
    let own_window = marks.cpu_end.own - marks.cpu_open.own;
    let own_peak_kib = proc_status_kib("self", "VmHWM");
    eprintln!(
        "generator: CPU open {own_open:.1} s, window {own_window:.1} s ({:.0} % of a core); peak \
         RSS {:.0} MiB",
        100.0 * own_window / window_secs,
        mib(own_peak_kib as f64 * 1024.0),
    );
    json!({
        "benchmark": "scale: live sessions heartbeating at their normal rate",
        "sessions": n,
        "opened": fleet.opened(),
        "open_failures": opened.failures.len(),
        "open_failure_examples": opened.failures.iter().take(KEPT_FAILURES).collect::<Vec<_>>(),
        "checkouts": settings.checkouts,
        "routing": "opens spread over the nodes (session i to node i mod 3), then each \
                    session's calls to the leader its last answer named",
        "open_secs": open_secs,
        "opens_per_sec": fleet.opened() as f64 / open_secs,
        "open_p50_ms": percentile(&opened.latencies_us, 0.5) as f64 / 1000.0,
        "open_p99_ms": percentile(&opened.latencies_us, 0.99) as f64 / 1000.0,
        "ttl_ms_asked": settings.ttl_ms,
        "heartbeat_interval_ms": interval.as_millis() as u64,
        "heartbeat_target_per_sec": fleet.opened() as f64 / interval.as_secs_f64(),
        "window_secs": window_secs,
        "heartbeats_opening": fleet.tally(Phase::Opening).json(open_secs),
        "heartbeats_window": fleet.tally(Phase::Window).json(window_secs),
        "sessions_lost": fleet.lost(),
        "generator_cpu_open_secs": own_open,
        "generator_cpu_window_secs": own_window,
        "generator_peak_rss_kib": own_peak_kib,
        "channels_per_node": settings.channels_per_node,
        "open_concurrency": settings.open_concurrency,
        "inflight": settings.inflight,
        "nodes": nodes,
        "rss_samples": rss_samples(&marks.watch),
    })
}

fn print_open(fleet: &Fleet, opened: &Opened, open_secs: f64, checkouts: bool) {
    eprintln!(
        "opened {} of {} sessions in {open_secs:.1} s ({:.0} opens/s{}); open p50 {:.2} ms p99 \
         {:.2} ms; {} failed{}",
        fleet.opened(),
        fleet.len(),
        fleet.opened() as f64 / open_secs,
        if checkouts { ", each with a checkout" } else { "" },
        percentile(&opened.latencies_us, 0.5) as f64 / 1000.0,
        percentile(&opened.latencies_us, 0.99) as f64 / 1000.0,
        opened.failures.len(),
        opened.failures.first().map(|e| format!(" (first: {e})")).unwrap_or_default(),
    );
    let opening = fleet.tally(Phase::Opening);
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "heartbeats while opening: {} sent, {} failed, {} skipped (over an interval behind)",
        count(&opening.sent),
        count(&opening.failed),
        count(&opening.skipped),
    );
}

fn print_window(fleet: &Fleet, interval: Duration, window_secs: f64) {
    let window = fleet.tally(Phase::Window);
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (p50, p99, max) = window.latency_ms();
    eprintln!(
        "heartbeats in the {window_secs:.0} s window: {} sent, {} answered ({:.0}/s, target \
         {:.0}/s), {} failed, {} skipped (over an interval behind); latency p50 {p50:.2} ms p99 \
         {p99:.2} ms max {max:.2} ms; dispatch lag max {:.1} ms; sessions lost {}",
        count(&window.sent),
        count(&window.answered),
        count(&window.answered) as f64 / window_secs,
        fleet.opened() as f64 / interval.as_secs_f64(),
        count(&window.failed),
        count(&window.skipped),
        count(&window.max_lag_us) as f64 / 1000.0,
        fleet.lost(),
    );
    for e in window.errors() {
        eprintln!("  heartbeat error: {e}");
    }
}

fn rss_samples(watch: &NodeWatch) -> Vec<serde_json::Value> {
    watch.samples.iter().map(|(t, rss)| json!([t, rss])).collect()
}
