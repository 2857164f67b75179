//! The same closed-loop load against etcd, the tool a team would reach for instead: a 3-member
//! etcd cluster on loopback (Debian's `etcd-server`, fsync on, as it ships), used as a
//! counting semaphore with one key per seat, one transaction per checkout and a lease per
//! client.
//!
//! A client holds one lease (kept alive in the background) for its life. A checkout is one
//! transaction on the seat key `/seats/F/k`, k = (client + denials so far) mod N: "if the key was
//! never created, put it under my lease"; it is granted when the transaction succeeds, and
//! denied otherwise. A checkin deletes the key. The figures are those of the QuorumLM load
//! benchmark (`cluster_tests::bench`), and the two JSON files are compared by
//! `make bench-etcd`, which runs both.
//!
//! Built only with the `etcd` feature (`cargo run --release -p cluster-tests --features etcd
//! --bin etcd_load`), which needs protoc for the etcd client's code generation (the Makefile
//! points `PROTOC` at the vendored one). `BENCH_JSON` defaults to `target/bench/etcd.json`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// mimalloc, as in qlmd: the generator shares the machine's two cores with the servers, and
/// glibc's malloc takes a large share of its CPU (docs/BENCHMARKS.md, "Fifth stop"). Both
/// generators (QuorumLM's and etcd's) use it, so neither system gets the other's spare CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cluster_tests::bench::{Phase, Tally, client_counts, measure_point, seat_counts, write_json};
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};

/// Lease TTL: the etcd counterpart of a session's TTL.
const LEASE_TTL_SECS: i64 = 30;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Three `etcd` processes in a temporary directory; killed on drop.
struct EtcdCluster {
    children: Vec<Child>,
    endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    fn start() -> EtcdCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let initial = initial.join(",");
        let mut children = Vec::new();
        let mut endpoints = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).expect("log");
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
                .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "qlm-bench", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("etcd starts (apt-get install etcd-server)");
            children.push(child);
            endpoints.push(format!("http://127.0.0.1:{client}"));
        }
        EtcdCluster { children, endpoints, _dir: dir }
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits until a write succeeds through every member.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for endpoint in &self.endpoints {
            loop {
                let put = async {
                    let mut client = Client::connect([endpoint.as_str()], None).await?;
                    client.put("/ready", "1", None).await
                };
                if tokio::time::timeout(Duration::from_secs(2), put).await.is_ok_and(|r| r.is_ok())
                {
                    break;
                }
                assert!(Instant::now() < deadline, "etcd member {endpoint} not ready in 30 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn run_client(endpoints: Vec<String>, seats: u32, index: usize, phase: Phase) -> Tally {
    let mut tally = Tally::default();
    let Ok(mut client) = Client::connect(&endpoints, None).await else { return tally };
    let Ok(lease) = client.lease_grant(LEASE_TTL_SECS, None).await else { return tally };
    let lease = lease.id();
    let Ok((mut keeper, _answers)) = client.lease_keep_alive(lease).await else { return tally };
    let keep_alive = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs((LEASE_TTL_SECS / 3) as u64)).await;
            if keeper.keep_alive().await.is_err() {
                return;
            }
        }
    });
    let mut attempt = 0usize;
    while !phase.stopped() {
        // A client keeps to its seat while it gets it and moves on when it is denied, so with
        // N = C every client settles on a seat of its own (etcd's best case).
        let key = format!("/seats/bench-{seats}/{}", (index + attempt) % seats as usize);
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                index.to_string(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let started = Instant::now();
        let answer = client.txn(txn).await;
        tally.checkout(&phase, started.elapsed());
        match answer {
            Ok(answer) if answer.succeeded() => match client.delete(key.as_str(), None).await {
                Ok(_) => tally.op(&phase),
                Err(_) => tally.error(&phase),
            },
            Ok(_) => {
                attempt += 1;
                tally.denial(&phase);
            }
            Err(_) => tally.error(&phase),
        }
    }
    keep_alive.abort();
    let _ = client.lease_revoke(lease).await;
    tally
}

#[tokio::main]
async fn main() {
    let out = std::env::var("BENCH_JSON").unwrap_or_else(|_| "target/bench/etcd.json".into());
    let cluster = EtcdCluster::start();
    cluster.wait_ready().await;
    eprintln!("etcd: 3-member cluster ready");
    let pids = cluster.pids();
    let mut points = Vec::new();
    for c in client_counts() {
        for seats in seat_counts(c) {
            let endpoints = cluster.endpoints.clone();
            let point = measure_point("etcd", c, seats, &pids, move |i, phase| {
                // Client i lists the members starting at member i mod 3.
                let mine: Vec<String> = (0..3).map(|k| endpoints[(i + k) % 3].clone()).collect();
                run_client(mine, seats, i, phase)
            })
            .await;
            points.push(point);
        }
    }
    write_json(&out, "etcd seat-per-key semaphore, closed loop", points);
}
