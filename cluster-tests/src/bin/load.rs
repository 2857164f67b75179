//! Cluster load benchmark: closed-loop clients against a real 3-process cluster.
//!
//! Each client is its own session (the real client library, `quorumlm::client`), given the
//! node list starting at a different node, as real clients spread over a cluster; it loops
//! checkout -> checkin with no think time. For C in 1, 8, 32, 128 clients and N = C and
//! N = C/2 seats, a warm-up and then a measured window; per point it prints ops/s (one op =
//! one checkout and its checkin), checkout latency p50/p99/max, denials, and the CPU seconds of
//! the three servers and of this generator, and writes them all as JSON.
//!
//! `make bench-load` (release build). Settings from the environment: `BENCH_CLIENTS`
//! (comma list, default `1,8,32,128`), `BENCH_WARMUP_SECS` (default 2), `BENCH_SECS` (measured
//! window, default 8), `BENCH_JSON` (output path, default `target/bench/load.json`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster_tests::Cluster;
use quorumlm::client::{CheckoutOptions, Client, ClientError, SessionOptions, parse_servers};
use serde_json::json;

/// Every feature a point may use: `bench-N` has N seats.
const SEATS: [u32; 7] = [1, 4, 8, 16, 32, 64, 128];

/// What one client saw in the measured window.
#[derive(Default)]
struct ClientTally {
    ops: u64,
    denials: u64,
    errors: u64,
    /// Checkout latencies (granted or denied), microseconds.
    latencies_us: Vec<u64>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// utime + stime of a process, in seconds (`/proc/PID/stat`, USER_HZ = 100 on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 of the whole line are 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run_client(
    servers: String,
    feature: String,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<ClientTally, ClientError> {
    let list = parse_servers(&servers)
        .map_err(|e| ClientError::InvalidArgument(format!("bad server list: {e}")))?;
    let client = Client::connect(list)?;
    let options = SessionOptions {
        user: "bench".into(),
        host: "bench-host".into(),
        pid: std::process::id(),
        display: String::new(),
        ttl: None,
    };
    let session = client.open_session(options).await?;
    let mut tally = ClientTally::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = session.checkout(&feature, CheckoutOptions::default()).await;
        let took = started.elapsed();
        let counted = measuring.load(Ordering::Relaxed);
        if counted {
            tally.latencies_us.push(took.as_micros() as u64);
        }
        match answer {
            Ok(checkout) => {
                let done = checkout.checkin().await;
                if counted {
                    if done.is_ok() {
                        tally.ops += 1;
                    } else {
                        tally.errors += 1;
                    }
                }
            }
            Err(ClientError::Denied { .. }) => tally.denials += u64::from(counted),
            Err(_) => tally.errors += u64::from(counted),
        }
    }
    let _ = session.close().await;
    Ok(tally)
}

async fn run_point(
    cluster: &Cluster,
    clients: u32,
    seats: u32,
    warmup: Duration,
    window: Duration,
) -> serde_json::Value {
    let nodes: Vec<String> = (1..=3).map(|id| cluster.client_addr(id)).collect();
    let pids: Vec<String> =
        (1..=3).filter_map(|id| cluster.pid(id)).map(|p| p.to_string()).collect();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..clients as usize {
        // Client i lists the nodes starting at node i mod 3.
        let servers: Vec<String> = (0..3).map(|k| nodes[(i + k) % 3].clone()).collect();
        tasks.push(tokio::spawn(run_client(
            servers.join(","),
            format!("bench-{seats}"),
            measuring.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(warmup).await;
    let servers_cpu_before: f64 = pids.iter().map(|p| cpu_seconds(p)).sum();
    let own_cpu_before = cpu_seconds("self");
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let servers_cpu = pids.iter().map(|p| cpu_seconds(p)).sum::<f64>() - servers_cpu_before;
    let own_cpu = cpu_seconds("self") - own_cpu_before;
    stop.store(true, Ordering::Relaxed);
    let mut total = ClientTally::default();
    let mut failed_clients = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(tally)) => {
                total.ops += tally.ops;
                total.denials += tally.denials;
                total.errors += tally.errors;
                total.latencies_us.extend(tally.latencies_us);
            }
            _ => failed_clients += 1,
        }
    }
    total.latencies_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let point = json!({
        "clients": clients,
        "seats": seats,
        "ops_per_sec": total.ops as f64 / elapsed,
        "ops": total.ops,
        "denials": total.denials,
        "errors": total.errors,
        "failed_clients": failed_clients,
        "checkout_p50_ms": ms(percentile(&total.latencies_us, 0.50)),
        "checkout_p99_ms": ms(percentile(&total.latencies_us, 0.99)),
        "checkout_max_ms": ms(total.latencies_us.last().copied().unwrap_or(0)),
        "server_cpu_secs": servers_cpu,
        "generator_cpu_secs": own_cpu,
        "window_secs": elapsed,
    });
    eprintln!(
        "C={clients:>4} N={seats:>4}  {:>8.0} ops/s  checkout p50 {:>7.2} ms  p99 {:>7.2} ms  \
         max {:>8.2} ms  denials {:>6}  errors {:>3}  cpu servers {:>5.1} s  generator {:>5.1} s",
        point["ops_per_sec"].as_f64().unwrap_or(0.0),
        point["checkout_p50_ms"].as_f64().unwrap_or(0.0),
        point["checkout_p99_ms"].as_f64().unwrap_or(0.0),
        point["checkout_max_ms"].as_f64().unwrap_or(0.0),
        total.denials,
        total.errors,
        servers_cpu,
        own_cpu,
    );
    point
}

#[tokio::main]
async fn main() {
    let clients: Vec<u32> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8,32,128".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let warmup = Duration::from_secs_f64(env_or("BENCH_WARMUP_SECS", 2.0));
    let window = Duration::from_secs_f64(env_or("BENCH_SECS", 8.0));
    let out = std::env::var("BENCH_JSON").unwrap_or_else(|_| "target/bench/load.json".into());
    let license: String = SEATS
        .iter()
        .map(|n| format!("FEATURE bench-{n} vendor=test version=1.0 count={n} expires=permanent\n"))
        .collect();
    let cluster = Cluster::start_serving(3, &license);
    let leader = cluster.wait_ready().await;
    eprintln!("3-node cluster ready (leader node {leader}); warm-up {warmup:?}, window {window:?}");
    let mut points = Vec::new();
    for &c in &clients {
        let mut seat_counts = vec![c, c.div_ceil(2)];
        seat_counts.dedup();
        for seats in seat_counts {
            if !SEATS.contains(&seats) {
                eprintln!("C={c}: no bench feature with {seats} seats; skipped");
                continue;
            }
            points.push(run_point(&cluster, c, seats, warmup, window).await);
        }
    }
    let report = json!({ "benchmark": "checkout+checkin, closed loop", "points": points });
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&out, format!("{report:#}\n")) {
        Ok(()) => eprintln!("wrote {out}"),
        Err(e) => eprintln!("cannot write {out}: {e}"),
    }
}
