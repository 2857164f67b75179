//! Failover benchmark: 8 clients at work on a real 3-process cluster, the leader killed with
//! kill -9, and how long the clients are held up; then the killed node restarted from its data
//! and the time until it serves.
//!
//! Each run starts a fresh cluster and 8 closed-loop clients, each its own session through the
//! real client library (`qlm_client`) with the node list starting at a different node,
//! looping checkout -> checkin on a feature with more seats than clients. After a warm-up the
//! leader is killed with SIGKILL. Every call is recorded with its start, end and outcome, and
//! the run yields (see `cluster_tests::failover`):
//!
//! - kill -> the first granted checkout that started after the kill;
//! - kill -> every client has had such a grant ("all served");
//! - the longest gap a client saw between two successful calls across the kill;
//! - the calls that failed (errors the application saw) in the whole run;
//! - restart of the killed node -> it answers a linearizable read itself with the current
//!   state (a seat of a marker feature checked out after the kill);
//!
//! and, to tell the election from the rest, when a survivor first named a new leader (a watcher
//! polls both), and from the survivors' logs how many candidacies the election took and why
//! votes were refused (the old leader's lease, or a candidate's shorter log).
//!
//! `make bench-failover` (release build). Settings from the environment: `FAILOVER_RUNS`
//! (default 7), `FAILOVER_WARMUP_MS` (default 1500), `FAILOVER_ARGS` (flags added to every
//! `qlmd`, e.g. `--heartbeat-ms 50 --election-min-ms 200 --election-max-ms 400`),
//! `FAILOVER_CLIENT_BUDGET_MS` (the clients' failover budget, default the library's),
//! `FAILOVER_JSON` (default `target/bench/failover.json`), `FAILOVER_LOGS` (a directory to copy
//! every run's node logs and its calls, `calls.csv`, to). docs/BENCHMARKS.md records the
//! figures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cluster_tests::bench::env_or;
mod report;

use cluster_tests::failover::{Call, Ending, Measures, Op, QLM_LOG, Votes, measure};
use cluster_tests::{Cluster, ClusterOptions};
use qlm_client::{CheckoutOptions, Client, ClientError, ServerAddr, Session, SessionOptions};
use qlm_proto::v1;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use tonic::transport::Channel;

/// Clients at work in every run.
const CLIENTS: usize = 8;
/// The clients' feature and its seats: more than clients, so that a seat left held by a call
/// whose answer was lost does not turn into denials.
const FEATURE: &str = "failover-seats";
const SEATS: u32 = 16;
/// One seat, taken once after the kill: the state a restarted node must show to be serving.
const MARKER: &str = "failover-marker";
/// How long to wait for every client to be served again before the run is given up.
const SERVED_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the restarted node may take to serve before the run is given up.
const SERVING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the clients may take to stop at the end of a run (a call under way ends within
/// the library's failover budget plus one attempt).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between polls of the cluster's state.
const POLL: Duration = Duration::from_millis(10);
/// Deadline of one poll of a node.
const POLL_DEADLINE: Duration = Duration::from_secs(2);
/// A client's pause after a failed call before its next (an application's own retry).
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What every client records, on one clock.
struct Record {
    epoch: Instant,
    ops: Mutex<Vec<Op>>,
    /// Per client: 1 + microseconds since `epoch` at the start of its latest granted checkout.
    last_grant: Vec<AtomicU64>,
    stop: AtomicBool,
}

impl Record {
    fn new() -> Record {
        Record {
            epoch: Instant::now(),
            ops: Mutex::new(Vec::new()),
            last_grant: (0..CLIENTS).map(|_| AtomicU64::new(0)).collect(),
            stop: AtomicBool::new(false),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn add(&self, client: usize, call: Call, started: Duration, ending: Ending) {
        let op = Op { client, call, started, ended: self.now(), ending };
        if call == Call::Checkout && op.ending == Ending::Done {
            self.last_grant[client].store(1 + started.as_micros() as u64, Ordering::Relaxed);
        }
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).push(op);
    }

    /// True when every client has had a granted checkout that started after `since`.
    fn all_granted_since(&self, since: Duration) -> bool {
        let since = 1 + since.as_micros() as u64;
        self.last_grant.iter().all(|grant| grant.load(Ordering::Relaxed) > since)
    }
}

fn ending<T>(result: &Result<T, ClientError>) -> Ending {
    match result {
        Ok(_) => Ending::Done,
        Err(ClientError::Denied { .. }) => Ending::Denied,
        Err(error) => Ending::Failed(error.to_string()),
    }
}

/// `FAILOVER_CLIENT_BUDGET_MS`: the clients' failover budget, when not the library's default
/// (a budget shorter than an election, 450 ms say, shows the errors applications see when
/// they give up too early).
fn client_budget() -> Option<Duration> {
    std::env::var("FAILOVER_CLIENT_BUDGET_MS").ok()?.parse().ok().map(Duration::from_millis)
}

fn session_options(client: usize) -> SessionOptions {
    SessionOptions {
        user: format!("bench{client}"),
        host: "bench-host".into(),
        pid: std::process::id(),
        display: String::new(),
        ttl: None,
    }
}

/// One closed-loop client: a session (opened again if it is lost), then checkout -> checkin
/// until the record says stop.
async fn client_loop(client: usize, servers: Vec<ServerAddr>, record: Arc<Record>) {
    let Ok(library) = Client::connect(servers) else { return };
    let library = match client_budget() {
        Some(budget) => library.with_failover_budget(budget),
        None => library,
    };
    let mut session = None;
    while !record.stop.load(Ordering::Relaxed) {
        let Some(open) = &session else {
            let started = record.now();
            let opened = library.open_session(session_options(client)).await;
            record.add(client, Call::Open, started, ending(&opened));
            match opened {
                Ok(opened) => session = Some(opened),
                Err(_) => tokio::time::sleep(ERROR_PAUSE).await,
            }
            continue;
        };
        let started = record.now();
        let granted = open.checkout(FEATURE, CheckoutOptions::default()).await;
        record.add(client, Call::Checkout, started, ending(&granted));
        let failed = match granted {
            Ok(seat) => {
                let started = record.now();
                let checked_in = seat.checkin().await;
                record.add(client, Call::Checkin, started, ending(&checked_in));
                checked_in.is_err()
            }
            Err(_) => true,
        };
        if failed {
            if open.is_lost() {
                session = None;
            }
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
    // Not closed: the cluster goes away with the run.
    if let Some(session) = session {
        session.abandon();
    }
}

/// What the watchers of the survivors saw during the election.
#[derive(Default)]
struct Election {
    /// From the kill until a survivor first named a leader other than the killed node.
    new_leader_after: Option<Duration>,
    new_leader: Option<u64>,
    /// How far the term rose (openraft 0.9 orders votes of one term by node id, so a failed
    /// candidacy need not cost a term: the survivors' logs count candidacies instead).
    term_rise: Option<u64>,
}

/// The length of every node's log now, to read what comes after.
fn log_marks(cluster: &Cluster) -> Vec<(u64, u64)> {
    let len = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    cluster.nodes.iter().map(|node| (node.id, len(&node.log))).collect()
}

/// What nodes `ids` logged since `marks`.
fn logged_since(cluster: &Cluster, marks: &[(u64, u64)], ids: &[u64]) -> String {
    let mut text = String::new();
    for node in cluster.nodes.iter().filter(|node| ids.contains(&node.id)) {
        let from = marks.iter().find(|(id, _)| *id == node.id).map_or(0, |(_, len)| *len);
        let all = std::fs::read(&node.log).unwrap_or_default();
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        text.push_str(&String::from_utf8_lossy(&all[from..]));
    }
    text
}

async fn status_client(cluster: &Cluster, id: u64) -> Option<StatusServiceClient<Channel>> {
    cluster.client_channel(id).await.ok().map(StatusServiceClient::new)
}

async fn node_view(client: &mut StatusServiceClient<Channel>) -> Option<v1::ClusterResponse> {
    let mut request = tonic::Request::new(v1::ClusterRequest { stale: true });
    request.set_timeout(POLL_DEADLINE);
    Some(client.cluster(request).await.ok()?.into_inner())
}

/// Polls the survivors' own views (stale reads, answered locally) until one names a new
/// leader, or `SERVED_TIMEOUT`.
async fn watch_election(
    mut survivors: Vec<StatusServiceClient<Channel>>,
    killed: u64,
    old_term: u64,
    kill: Instant,
) -> Election {
    while kill.elapsed() < SERVED_TIMEOUT {
        for survivor in &mut survivors {
            if let Some(view) = node_view(survivor).await
                && let Some(leader) = view.leader.filter(|l| l.id != 0 && l.id != killed)
            {
                return Election {
                    new_leader_after: Some(kill.elapsed()),
                    new_leader: Some(leader.id),
                    term_rise: Some(view.term.saturating_sub(old_term)),
                };
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Election::default()
}

/// Polls node `id` with a linearizable Features read of the marker until it answers with the
/// marker's seat taken; the time from `restarted`.
async fn wait_serving(cluster: &Cluster, id: u64, restarted: Instant) -> Option<Duration> {
    while restarted.elapsed() < SERVING_TIMEOUT {
        if let Some(mut status) = status_client(cluster, id).await {
            let mut request =
                tonic::Request::new(v1::FeaturesRequest { stale: false, feature: MARKER.into() });
            request.set_timeout(POLL_DEADLINE);
            if let Ok(answer) = status.features(request).await
                && answer.into_inner().features.first().is_some_and(|f| f.seats_in_use == 1)
            {
                return Some(restarted.elapsed());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// A run's client tasks, aborted when dropped: a run that ends early (an error, a panic)
/// leaves no client of its cluster at work during the next run.
struct Clients(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Clients {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// One run's figures.
struct RunResult {
    /// Elections between the cluster being ready and the kill: a leader that was not dead
    /// was deposed (the warm-up is a soak with `FAILOVER_WARMUP_MS`).
    spurious: usize,
    /// Why the marker could not be taken (the restart is then not timed).
    marker_error: Option<String>,
    killed: u64,
    election: Election,
    votes: Votes,
    /// Elections the restarted node started (it should start none: it hears from the leader).
    restart_candidacies: usize,
    measures: Measures,
    serving_after: Option<Duration>,
    calls: usize,
}

fn license() -> String {
    format!(
        "FEATURE {FEATURE} vendor=test version=1.0 count={SEATS} expires=permanent\n\
         FEATURE {MARKER} vendor=test version=1.0 count=1 expires=permanent\n"
    )
}

async fn one_run(run: usize, args: &[String], warmup: Duration) -> Result<RunResult, String> {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 3,
        extra_args: args.to_vec(),
        license: Some(license()),
        env: vec![("QLM_LOG".into(), QLM_LOG.into())],
        ..ClusterOptions::default()
    });
    cluster.wait_ready().await;
    let ready_marks = log_marks(&cluster);
    let record = Arc::new(Record::new());
    let mut clients = start_clients(&cluster, &record);
    tokio::time::sleep(warmup).await;
    warmed_up(run, &record).await?;
    let leader = cluster.leader().await.ok_or(format!("run {run}: no leader before the kill"))?;
    let (survivors, old_term) = survivor_views(run, &cluster, leader).await?;

    let marks = log_marks(&cluster);
    let spurious = Votes::count(&logged_since(&cluster, &ready_marks, &[1, 2, 3])).candidacies;
    cluster.kill(leader);
    let kill_instant = Instant::now();
    let kill = record.now();
    let watcher = tokio::spawn(watch_election(survivors, leader, old_term, kill_instant));
    while !record.all_granted_since(kill) && kill_instant.elapsed() < SERVED_TIMEOUT {
        tokio::time::sleep(POLL).await;
    }
    let election = watcher.await.unwrap_or_default();
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let votes = Votes::count(&logged_since(&cluster, &marks, &survivors));

    // The marker: one seat taken after the kill, through the survivors. Without it there is
    // nothing to tell the restarted node's current state by: the restart is then not timed.
    let probe = Client::connect(cluster.server_list(&survivors)).map_err(|e| e.to_string())?;
    let marker = take_marker(&probe, kill_instant).await;

    let marks = log_marks(&cluster);
    cluster.spawn(leader);
    let restarted = Instant::now();
    let serving_after = match &marker {
        Ok(_) => wait_serving(&cluster, leader, restarted).await,
        Err(_) => None,
    };
    let restart_candidacies = Votes::count(&logged_since(&cluster, &marks, &[leader])).candidacies;

    record.stop.store(true, Ordering::Relaxed);
    for task in clients.0.drain(..) {
        let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
    }
    let marker_error = match marker {
        Ok(session) => {
            session.abandon();
            None
        }
        Err(e) => Some(e),
    };
    let end = record.now();
    let ops = std::mem::take(&mut *record.ops.lock().unwrap_or_else(PoisonError::into_inner));
    if let Ok(dir) = std::env::var("FAILOVER_LOGS") {
        keep_logs(&cluster, &format!("{dir}/run-{run}"), &ops, kill);
    }
    let measures = measure(&ops, CLIENTS, kill, end);
    Ok(RunResult {
        spurious,
        marker_error,
        killed: leader,
        election,
        votes,
        restart_candidacies,
        measures,
        serving_after,
        calls: ops.len(),
    })
}

/// Starts the closed-loop clients; client i lists the nodes starting at node i mod 3.
fn start_clients(cluster: &Cluster, record: &Arc<Record>) -> Clients {
    let addrs: Vec<u64> = vec![1, 2, 3];
    Clients(
        (0..CLIENTS)
            .map(|client| {
                let ids: Vec<u64> = (0..3).map(|k| addrs[(client + k) % 3]).collect();
                tokio::spawn(client_loop(client, cluster.server_list(&ids), record.clone()))
            })
            .collect(),
    )
}

/// Waits until every client has been granted a seat, for at most [`SERVED_TIMEOUT`].
async fn warmed_up(run: usize, record: &Record) -> Result<(), String> {
    let working = Instant::now();
    while !record.all_granted_since(Duration::ZERO) {
        if working.elapsed() > SERVED_TIMEOUT {
            return Err(format!("run {run}: not every client was granted a seat in the warm-up"));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Status clients of the nodes other than `leader`, and the highest term they report.
async fn survivor_views(
    run: usize,
    cluster: &Cluster,
    leader: u64,
) -> Result<(Vec<StatusServiceClient<Channel>>, u64), String> {
    let mut survivors = Vec::new();
    let mut old_term = 0;
    for id in (1..=3).filter(|&id| id != leader) {
        let mut client =
            status_client(cluster, id).await.ok_or(format!("run {run}: node {id} is down"))?;
        old_term = old_term.max(node_view(&mut client).await.map_or(0, |view| view.term));
        survivors.push(client);
    }
    Ok((survivors, old_term))
}

/// Opens a session through `probe` and keeps the marker's seat: the session, or why not
/// (with the time since the kill).
async fn take_marker(probe: &Client, kill_instant: Instant) -> Result<Session, String> {
    let started = Instant::now();
    let session = probe.open_session(session_options(CLIENTS)).await.map_err(|e| {
        format!("opening its session ({:?} after the kill): {e}", started - kill_instant)
    })?;
    let started = Instant::now();
    match session.checkout(MARKER, CheckoutOptions::default()).await {
        Ok(seat) => {
            seat.keep();
            Ok(session)
        }
        Err(e) => Err(format!("its checkout ({:?} after the kill): {e}", started - kill_instant)),
    }
}

/// Copies every node's log of this run to `dir`, and writes every call as a line of
/// `calls.csv` (times in ms from the kill).
fn keep_logs(cluster: &Cluster, dir: &str, ops: &[Op], kill: Duration) {
    let _ = std::fs::create_dir_all(dir);
    for id in cluster.ids() {
        let _ = std::fs::write(format!("{dir}/node{id}.log"), cluster.log_of(id));
    }
    let from_kill = |at: Duration| (at.as_secs_f64() - kill.as_secs_f64()) * 1000.0;
    let mut csv = String::from("client,call,started_ms,ended_ms,ending\n");
    for op in ops {
        let ending = match &op.ending {
            Ending::Done => "done".to_owned(),
            Ending::Denied => "denied".to_owned(),
            Ending::Failed(message) => format!("failed: {}", message.replace(',', ";")),
        };
        csv.push_str(&format!(
            "{},{:?},{:.1},{:.1},{ending}\n",
            op.client,
            op.call,
            from_kill(op.started),
            from_kill(op.ended)
        ));
    }
    let _ = std::fs::write(format!("{dir}/calls.csv"), csv);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = env_or("FAILOVER_RUNS", 7);
    let warmup = Duration::from_millis(env_or("FAILOVER_WARMUP_MS", 1_500));
    let args: Vec<String> = std::env::var("FAILOVER_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let out =
        std::env::var("FAILOVER_JSON").unwrap_or_else(|_| "target/bench/failover.json".into());
    let flags = if args.is_empty() { "default timing".to_owned() } else { args.join(" ") };
    let budget = client_budget().unwrap_or(qlm_client::FAILOVER_BUDGET);
    println!(
        "failover: {CLIENTS} clients (checkout -> checkin, {SEATS} seats), kill -9 of the leader \
         of 3 qlmd processes on loopback after {warmup:?}; {runs} runs; qlmd: {flags}; client \
         failover budget {budget:?}"
    );
    let mut results = Vec::new();
    for run in 0..runs {
        match one_run(run, &args, warmup).await {
            Ok(result) => {
                report::print_run(run, &result);
                results.push(result);
            }
            Err(e) => println!("{e}"),
        }
    }
    let lines = report::measure_lines(&results);
    if results.len() < runs {
        println!("{} of {runs} runs failed (see above)", runs - results.len());
    }
    let json = report::json_report(&args, budget, warmup, runs, &results, lines);
    report::write(&out, &json);
}
