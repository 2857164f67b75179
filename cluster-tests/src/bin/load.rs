//! Cluster load benchmark: closed-loop clients against a real 3-process QuorumLM cluster
//! (separate processes, sled files, fsync on).
//!
//! Each client is its own session (the real client library, `qlm_client`), given the
//! node list starting at a different node, as real clients spread over a cluster; it loops
//! checkout -> checkin with no think time. For C in 1, 8, 32, 128 clients and N = C and
//! N = C/2 seats: a warm-up, then a measured window; per point ops/s (one op = one checkout
//! and its checkin), checkout latency p50/p99/max, denials, and the CPU seconds of the three
//! servers and of this generator, printed and written as JSON.
//!
//! `make bench-load` (release build). Settings from the environment: `BENCH_CLIENTS`,
//! `BENCH_WARMUP_SECS`, `BENCH_SECS` (see `cluster_tests::bench`), `BENCH_JSON` (output path,
//! default `target/bench/quorumlm.json`).

use std::time::Instant;

/// mimalloc, as in qlmd: the generator shares the machine's two cores with the servers, and
/// glibc's malloc takes a large share of its CPU (docs/BENCHMARKS.md, "Fifth stop"). Both
/// generators (QuorumLM's and etcd's) use it, so neither system gets the other's spare CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cluster_tests::Cluster;
use cluster_tests::bench::{Phase, Tally, client_counts, measure_point, seat_counts, write_json};
use qlm_client::{CheckoutOptions, Client, ClientError, SessionOptions, parse_servers};

/// Every feature a point may use: `bench-N` has N seats.
const SEATS: [u32; 7] = [1, 4, 8, 16, 32, 64, 128];

async fn run_client(servers: String, feature: String, phase: Phase) -> Tally {
    let mut tally = Tally::default();
    let Ok(list) = parse_servers(&servers) else { return tally };
    let Ok(client) = Client::connect(list) else { return tally };
    let options = SessionOptions {
        user: "bench".into(),
        host: "bench-host".into(),
        pid: std::process::id(),
        display: String::new(),
        ttl: None,
    };
    let session = match client.open_session(options).await {
        Ok(session) => session,
        Err(e) => {
            eprintln!("cannot open a session: {e}");
            return tally;
        }
    };
    while !phase.stopped() {
        let started = Instant::now();
        let answer = session.checkout(&feature, CheckoutOptions::default()).await;
        tally.checkout(&phase, started.elapsed());
        match answer {
            Ok(checkout) => match checkout.checkin().await {
                Ok(()) => tally.op(&phase),
                Err(_) => tally.error(&phase),
            },
            Err(ClientError::Denied { .. }) => tally.denial(&phase),
            Err(_) => tally.error(&phase),
        }
    }
    let _ = session.close().await;
    tally
}

#[tokio::main]
async fn main() {
    let out = std::env::var("BENCH_JSON").unwrap_or_else(|_| "target/bench/quorumlm.json".into());
    let license: String = SEATS
        .iter()
        .map(|n| format!("FEATURE bench-{n} vendor=test version=1.0 count={n} expires=permanent\n"))
        .collect();
    let cluster = Cluster::start_serving(3, &license);
    let leader = cluster.wait_ready().await;
    eprintln!("QuorumLM: 3-node cluster ready (leader node {leader})");
    let nodes: Vec<String> = (1..=3).map(|id| cluster.client_addr(id)).collect();
    let pids: Vec<u32> = (1..=3).filter_map(|id| cluster.pid(id)).collect();
    let mut points = Vec::new();
    for c in client_counts() {
        for seats in seat_counts(c) {
            if !SEATS.contains(&seats) {
                eprintln!("C={c}: no bench feature with {seats} seats; skipped");
                continue;
            }
            let nodes = nodes.clone();
            let point = measure_point("quorumlm", c, seats, &pids, move |i, phase| {
                // Client i lists the nodes starting at node i mod 3.
                let servers: Vec<String> = (0..3).map(|k| nodes[(i + k) % 3].clone()).collect();
                run_client(servers.join(","), format!("bench-{seats}"), phase)
            })
            .await;
            points.push(point);
        }
    }
    write_json(&out, "checkout+checkin, closed loop", points);
}
