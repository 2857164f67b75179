//! What the load benchmarks share: the closed-loop measurement of one point (C clients, N
//! seats), its figures, and how they are printed and written.
//!
//! A point starts C client tasks, lets them run through a warm-up, then counts what they do in
//! a measured window: ops (one checkout and its checkin), denials, errors, and every checkout's
//! latency; and the CPU seconds the servers and this process spent in the window.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

/// What one client saw in the measured window.
#[derive(Default)]
pub struct Tally {
    pub ops: u64,
    pub denials: u64,
    pub errors: u64,
    /// Checkout latencies (granted or denied), microseconds.
    pub latencies_us: Vec<u64>,
}

/// Shared by a point's clients: whether the window is open, and when to stop.
#[derive(Clone, Default)]
pub struct Phase {
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Phase {
    /// Whether what happens now is counted.
    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    /// Whether the client should stop its loop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Tally {
    /// Records one checkout attempt that took `took`, if the window is open.
    pub fn checkout(&mut self, phase: &Phase, took: Duration) {
        if phase.measuring() {
            self.latencies_us.push(took.as_micros() as u64);
        }
    }

    /// Counts a completed op, a denial or an error, if the window is open.
    pub fn op(&mut self, phase: &Phase) {
        self.ops += u64::from(phase.measuring());
    }
    pub fn denial(&mut self, phase: &Phase) {
        self.denials += u64::from(phase.measuring());
    }
    pub fn error(&mut self, phase: &Phase) {
        self.errors += u64::from(phase.measuring());
    }
}

/// A setting from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The client counts to measure: `BENCH_CLIENTS` (comma list), default 1, 8, 32, 128.
pub fn client_counts() -> Vec<u32> {
    std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8,32,128".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect()
}

/// Warm-up and window: `BENCH_WARMUP_SECS` (default 2) and `BENCH_SECS` (default 8).
pub fn timing() -> (Duration, Duration) {
    (
        Duration::from_secs_f64(env_or("BENCH_WARMUP_SECS", 2.0)),
        Duration::from_secs_f64(env_or("BENCH_SECS", 8.0)),
    )
}

/// The (clients, seats) points for one client count: N = C and N = C/2 (once when equal).
pub fn seat_counts(clients: u32) -> Vec<u32> {
    let mut seats = vec![clients, clients.div_ceil(2)];
    seats.dedup();
    seats
}

/// utime + stime of a process (`self` or a pid), in seconds (USER_HZ is 100 on Linux).
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The `p` quantile (0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs one point: `client(i, phase)` is started for each of `clients` clients and must loop
/// until `phase.stopped()`, recording into the `Tally` it returns. `servers` are the pids
/// whose CPU time is counted. Prints a line and returns the point as JSON.
pub async fn measure_point<F, Fut>(
    system: &str,
    clients: u32,
    seats: u32,
    servers: &[u32],
    client: F,
) -> serde_json::Value
where
    F: Fn(usize, Phase) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let (warmup, window) = timing();
    let phase = Phase::default();
    let tasks: Vec<_> =
        (0..clients as usize).map(|i| tokio::spawn(client(i, phase.clone()))).collect();
    tokio::time::sleep(warmup).await;
    let server_cpu = || servers.iter().map(|p| cpu_seconds(&p.to_string())).sum::<f64>();
    let (servers_before, own_before) = (server_cpu(), cpu_seconds("self"));
    phase.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    phase.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let servers_cpu = server_cpu() - servers_before;
    let own_cpu = cpu_seconds("self") - own_before;
    phase.stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    let mut failed_clients = 0;
    for task in tasks {
        match task.await {
            Ok(tally) => {
                total.ops += tally.ops;
                total.denials += tally.denials;
                total.errors += tally.errors;
                total.latencies_us.extend(tally.latencies_us);
            }
            Err(_) => failed_clients += 1,
        }
    }
    total.latencies_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let ops_per_sec = total.ops as f64 / elapsed;
    let (p50, p99) =
        (ms(percentile(&total.latencies_us, 0.50)), ms(percentile(&total.latencies_us, 0.99)));
    let max = ms(total.latencies_us.last().copied().unwrap_or(0));
    eprintln!(
        "{system:>8} C={clients:>4} N={seats:>4} {ops_per_sec:>8.0} ops/s  checkout p50 \
         {p50:>7.2} ms  p99 {p99:>7.2} ms  max {max:>8.2} ms  denials {:>6}  errors {:>3}  \
         cpu servers {servers_cpu:>5.1} s  generator {own_cpu:>5.1} s",
        total.denials, total.errors,
    );
    json!({
        "system": system,
        "clients": clients,
        "seats": seats,
        "ops_per_sec": ops_per_sec,
        "ops": total.ops,
        "denials": total.denials,
        "errors": total.errors,
        "failed_clients": failed_clients,
        "checkout_p50_ms": p50,
        "checkout_p99_ms": p99,
        "checkout_max_ms": max,
        "server_cpu_secs": servers_cpu,
        "generator_cpu_secs": own_cpu,
        "window_secs": elapsed,
    })
}

/// Writes `points` as `{ "benchmark": .., "points": [..] }` to `path` (directories made).
pub fn write_json(path: &str, benchmark: &str, points: Vec<serde_json::Value>) {
    write_report(path, &json!({ "benchmark": benchmark, "points": points }));
}

/// Writes `report` as pretty JSON to `path` (directories made).
pub fn write_report(path: &str, report: &serde_json::Value) {
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(path, format!("{report:#}\n")) {
        Ok(()) => eprintln!("wrote {path}"),
        Err(e) => eprintln!("cannot write {path}: {e}"),
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...), in KiB; 0 if unreadable.
pub fn proc_status_kib(pid: &str, field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    kib_field(&status, field)
}

/// The `Name:   1234 kB` line `field` of a `/proc` text, in KiB; 0 when absent.
pub fn kib_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bytes under `dir`, walked recursively: (apparent size, allocated blocks as `du` counts).
/// Symbolic links are not followed; at most `MAX_WALKED` entries are looked at.
pub fn dir_size(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    /// A data directory holds a handful of files; this only bounds a runaway walk.
    const MAX_WALKED: usize = 100_000;
    let (mut apparent, mut allocated, mut walked) = (0, 0, 0);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.flatten() {
            walked += 1;
            if walked > MAX_WALKED {
                return (apparent, allocated);
            }
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                apparent += meta.len();
                allocated += meta.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

/// The value of an unlabelled metric `name` in a Prometheus text exposition.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A node log (its stderr) larger than this is cut back to empty by [`watch_nodes`]; the bytes
/// are counted. An overloaded leader logs an error per failed leadership confirmation, which
/// came to gigabytes in a ten-minute scale run.
pub const MAX_NODE_LOG_BYTES: u64 = 256 << 20;

/// How often [`watch_nodes`] samples.
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What [`watch_nodes`] saw: per node, RSS peak and last (KiB) and the bytes its log received;
/// and the RSS samples (seconds since the start, RSS of each node).
#[derive(Default)]
pub struct NodeWatch {
    pub peak_kib: Vec<u64>,
    pub last_kib: Vec<u64>,
    pub logged_bytes: Vec<u64>,
    pub samples: Vec<(f64, Vec<u64>)>,
}

/// Every [`WATCH_EVERY`] until `stop` is set (or `limit` has passed since `start`): each
/// node's RSS (`pid`); and each node's log file, cut back to empty when it passes
/// [`MAX_NODE_LOG_BYTES`] (the node appends, so it writes on at the new end) with the bytes
/// counted, so that a node logging a storm cannot fill the disk.
pub async fn watch_nodes(
    nodes: Vec<(u32, std::path::PathBuf)>,
    start: Instant,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> NodeWatch {
    let count = nodes.len();
    let mut watch = NodeWatch {
        peak_kib: vec![0; count],
        last_kib: vec![0; count],
        logged_bytes: vec![0; count],
        samples: vec![],
    };
    let mut cut = vec![0u64; count];
    let mut tick = tokio::time::interval(WATCH_EVERY);
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        tick.tick().await;
        let mut rss = Vec::with_capacity(count);
        for (n, (pid, log)) in nodes.iter().enumerate() {
            let kib = proc_status_kib(&pid.to_string(), "VmRSS");
            watch.peak_kib[n] = watch.peak_kib[n].max(kib);
            watch.last_kib[n] = kib;
            rss.push(kib);
            let size = std::fs::metadata(log).map_or(0, |m| m.len());
            if size > MAX_NODE_LOG_BYTES
                && let Ok(file) = std::fs::OpenOptions::new().write(true).open(log)
                && file.set_len(0).is_ok()
            {
                cut[n] += size;
            }
        }
        watch.samples.push((start.elapsed().as_secs_f64(), rss));
    }
    for (n, (_, log)) in nodes.iter().enumerate() {
        watch.logged_bytes[n] = cut[n] + std::fs::metadata(log).map_or(0, |m| m.len());
    }
    watch
}

/// A process's memory map summary (`/proc/PID/smaps_rollup`), in KiB.
pub fn smaps_rollup_json(pid: u32) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let fields = ["Rss", "Pss", "Shared_Clean", "Private_Clean", "Private_Dirty", "Anonymous"];
    let map: serde_json::Map<String, serde_json::Value> =
        fields.iter().map(|f| (format!("{f}_kib"), json!(kib_field(&text, f)))).collect();
    serde_json::Value::Object(map)
}
