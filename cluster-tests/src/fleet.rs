//! A fleet of simulated client sessions over raw gRPC, for the scale benchmark.
//!
//! A real client process holds one client library `Session`: a task, a timer and a channel of
//! its own. A hundred thousand of those would cost the generator more than the cluster, so the
//! fleet keeps each session as a few words ([`SessionSlot`]) and sends raw `LicenseService`
//! calls over a few HTTP/2 channels per node, with bounded concurrency, behaving as the client
//! library does where the server can tell:
//!
//! - every mutating call carries a request id, and a failed one is retried with the same id (on
//!   the hinted leader, else the next node) with a growing pause, twice over the three nodes;
//! - a session sends to the leader its last answer named (`LeaderHint`, or the `qlm-leader-id`
//!   metadata of a failure); its first call goes to node i mod 3, as clients whose server lists
//!   start at different nodes do;
//! - each session heartbeats at the server's hinted interval from the moment it is open.
//!
//! [`dispatch_heartbeats`] keeps the schedule: session i's heartbeats are due at phase i/N of
//! the interval, so N sessions make a steady N / interval heartbeats per second.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use qlm_proto::v1;
use qlm_proto::v1::license_service_client::LicenseServiceClient;
use serde_json::json;
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

use crate::READY_TIMEOUT;
use crate::bench::percentile;

/// Deadline of one call, as the client library's (`client::CALL_DEADLINE`).
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Attempts of one OpenSession or Checkout (same request id each time) before it counts as
/// failed: two passes over the three nodes, as the client library's failover makes.
pub const ATTEMPTS: usize = 6;
/// Pause after a failed attempt, times the attempt's number (the client library's backoff).
pub const RETRY_BACKOFF: Duration = Duration::from_millis(150);
/// How often the heartbeat dispatcher wakes to send what has fallen due.
pub const DISPATCH_TICK: Duration = Duration::from_millis(2);
/// Once the window has ended, how long heartbeats of the window still due may be sent late.
pub const CATCH_UP_GRACE: Duration = Duration::from_secs(10);
/// Error messages kept per phase for the report (the first ones).
pub const KEPT_ERRORS: usize = 5;
/// The feature a session checks out when asked to; the benchmark's license gives it a seat per
/// session.
pub const SEAT_FEATURE: &str = "scale-seats";

/// One simulated client process.
#[derive(Default)]
pub struct SessionSlot {
    /// The server-made id, once the session is open.
    /// The session's id and secret, once open.
    id: OnceLock<(String, String)>,
    /// Index (node id - 1) of the node this session sends to: the last leader it was told of.
    target: AtomicUsize,
    /// A heartbeat was answered NOT_FOUND: the cluster lost the session.
    lost: AtomicBool,
}

/// The two phases heartbeats are counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// While sessions are still opening.
    Opening = 0,
    /// The measured window, once every session is open.
    Window = 1,
}

/// What the heartbeats of one phase did.
#[derive(Default)]
pub struct HeartbeatTally {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    /// Answered NOT_FOUND: the session is gone (counted in `failed` too).
    pub not_found: AtomicU64,
    /// Latencies of answered heartbeats, microseconds.
    latencies_us: Mutex<Vec<u32>>,
    /// How late the dispatcher sent heartbeats, microseconds: the largest, and the sum.
    pub max_lag_us: AtomicU64,
    lag_sum_us: AtomicU64,
    /// Heartbeats more than one interval late, never sent (see [`dispatch_heartbeats`]).
    pub skipped: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl HeartbeatTally {
    fn error(&self, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() < KEPT_ERRORS {
            errors.push(message);
        }
    }

    /// The first error messages.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Latency of answered heartbeats in milliseconds: (p50, p99, max).
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let mut latencies: Vec<u64> = self
            .latencies_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|&us| u64::from(us))
            .collect();
        latencies.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        (
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or(0)),
        )
    }

    /// The tally as JSON, with rates over `secs`.
    pub fn json(&self, secs: f64) -> serde_json::Value {
        let (p50, p99, max) = self.latency_ms();
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "sent": count(&self.sent),
            "answered": count(&self.answered),
            "failed": count(&self.failed),
            "not_found": count(&self.not_found),
            "skipped_behind_schedule": count(&self.skipped),
            "answered_per_sec": count(&self.answered) as f64 / secs.max(1e-9),
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "latency_max_ms": max,
            "dispatch_lag_max_ms": count(&self.max_lag_us) as f64 / 1000.0,
            "dispatch_lag_mean_ms":
                count(&self.lag_sum_us) as f64 / 1000.0 / count(&self.sent).max(1) as f64,
            "errors": self.errors(),
        })
    }
}

/// The sessions, the channels to every node, and what the heartbeats did.
pub struct Fleet {
    /// Per node (index id - 1): clients over its channels.
    nodes: Vec<Vec<LicenseServiceClient<Channel>>>,
    sessions: Vec<SessionSlot>,
    tallies: [HeartbeatTally; 2],
    /// Set when every session is open: heartbeats due from then on count in the window.
    window_start: OnceLock<Instant>,
    opened: AtomicU64,
    /// TTL each session asks for (0: the server's default).
    ttl_ms: u64,
    /// Prefix of this run's request ids.
    run: String,
}

impl Fleet {
    /// `sessions` slots, and `channels_per_node` channels to each of `addrs` (node 1 first).
    pub async fn connect(
        addrs: &[String],
        channels_per_node: usize,
        sessions: usize,
        ttl_ms: u64,
    ) -> Result<Fleet, String> {
        let mut nodes = Vec::new();
        for addr in addrs {
            let mut clients = Vec::new();
            for _ in 0..channels_per_node.max(1) {
                clients.push(LicenseServiceClient::new(connect(addr).await?));
            }
            nodes.push(clients);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Fleet {
            nodes,
            sessions: (0..sessions.max(1)).map(|_| SessionSlot::default()).collect(),
            tallies: Default::default(),
            window_start: OnceLock::new(),
            opened: AtomicU64::new(0),
            ttl_ms,
            run: format!("{nanos:x}"),
        })
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Sessions opened so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Sessions a heartbeat found gone.
    pub fn lost(&self) -> usize {
        self.sessions.iter().filter(|s| s.lost.load(Ordering::Relaxed)).count()
    }

    pub fn tally(&self, phase: Phase) -> &HeartbeatTally {
        &self.tallies[phase as usize]
    }

    /// Starts the measured window now; returns its start.
    pub fn start_window(&self) -> Instant {
        *self.window_start.get_or_init(Instant::now)
    }

    fn client(&self, node: usize, k: usize) -> LicenseServiceClient<Channel> {
        let channels = &self.nodes[node % self.nodes.len()];
        channels[k % channels.len()].clone()
    }

    /// Session `i` follows a leader hint (node id).
    fn follow(&self, i: usize, leader_id: u64) {
        let index = leader_id.wrapping_sub(1) as usize;
        if index < self.nodes.len() {
            self.sessions[i].target.store(index, Ordering::Relaxed);
        }
    }

    fn target(&self, i: usize) -> usize {
        self.sessions[i].target.load(Ordering::Relaxed)
    }

    /// Opens session `i` (and checks out one seat of [`SEAT_FEATURE`] with `checkout`); returns
    /// how long the open took.
    pub async fn open(&self, i: usize, checkout: bool) -> Result<Duration, String> {
        let open = v1::OpenSessionRequest {
            user: format!("user{}", i % 500),
            host: format!("host{}", i % 200),
            pid: u32::try_from(i).unwrap_or(u32::MAX),
            display: String::new(),
            ttl_ms: self.ttl_ms,
            request_id: format!("{}-open-{i}", self.run),
        };
        let started = Instant::now();
        let mut node = i % self.nodes.len();
        let mut last_error = String::new();
        let mut opened = None;
        for attempt in 0..ATTEMPTS {
            match self.client(node, i).open_session(request(open.clone())).await {
                Ok(answer) => {
                    opened = Some(answer.into_inner());
                    break;
                }
                Err(status) => {
                    last_error = format!("{}: {}", status.code(), status.message());
                    node =
                        hinted_leader(&status).map_or(node + 1, |id| id.wrapping_sub(1) as usize);
                    tokio::time::sleep(RETRY_BACKOFF * (attempt as u32 + 1)).await;
                }
            }
        }
        let opened = opened.ok_or_else(|| format!("OpenSession: {last_error}"))?;
        let took = started.elapsed();
        if let Some(hint) = &opened.leader {
            self.follow(i, hint.id);
        }
        if checkout {
            self.checkout(i, &opened.session_id, &opened.session_secret).await?;
        }
        let _ = self.sessions[i].id.set((opened.session_id, opened.session_secret));
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(took)
    }

    /// Checks out one seat of [`SEAT_FEATURE`] for session `i`, from its leader.
    async fn checkout(&self, i: usize, session_id: &str, secret: &str) -> Result<(), String> {
        let checkout = v1::CheckoutRequest {
            session_id: session_id.into(),
            session_secret: secret.into(),
            request_id: format!("{}-checkout-{i}", self.run),
            feature: SEAT_FEATURE.into(),
            version: String::new(),
            count: 1,
            wait: false,
            borrow_until_unix_ms: None,
        };
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            let node = self.target(i);
            match self.client(node, i).checkout(request(checkout.clone())).await {
                Ok(answer) => {
                    return match answer.into_inner().result {
                        Some(v1::checkout_response::Result::Granted(_)) => Ok(()),
                        other => Err(format!("Checkout answered {other:?}")),
                    };
                }
                Err(status) => {
                    last_error = format!("{}: {}", status.code(), status.message());
                    let next = hinted_leader(&status).unwrap_or((node as u64 + 1) % 3 + 1);
                    self.follow(i, next);
                    tokio::time::sleep(RETRY_BACKOFF * (attempt as u32 + 1)).await;
                }
            }
        }
        Err(format!("Checkout: {last_error}"))
    }

    /// One heartbeat of session 0 (which must be open), returning the server's interval hint.
    pub async fn first_heartbeat(&self) -> Result<Duration, String> {
        let (session_id, session_secret) =
            self.sessions[0].id.get().cloned().ok_or("session 0 is not open")?;
        let heartbeat = v1::HeartbeatRequest { session_id, session_secret };
        let answer = self.client(self.target(0), 0).heartbeat(request(heartbeat)).await;
        let answer = answer.map_err(|e| format!("the first heartbeat failed: {e}"))?;
        Ok(Duration::from_millis(answer.into_inner().heartbeat_interval_ms))
    }

    /// Sends the `k`-th heartbeat of the schedule (session `i`), counting it in `phase`.
    async fn heartbeat(&self, i: usize, k: usize, phase: Phase) {
        let slot = &self.sessions[i];
        let Some((session_id, session_secret)) = slot.id.get() else { return };
        let tally = self.tally(phase);
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let heartbeat = v1::HeartbeatRequest {
            session_id: session_id.clone(),
            session_secret: session_secret.clone(),
        };
        let started = Instant::now();
        let answer = self.client(self.target(i), k).heartbeat(request(heartbeat)).await;
        let took = started.elapsed();
        match answer {
            Ok(answer) => {
                tally.answered.fetch_add(1, Ordering::Relaxed);
                let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                tally.latencies_us.lock().unwrap_or_else(PoisonError::into_inner).push(micros);
                if let Some(hint) = answer.into_inner().leader {
                    self.follow(i, hint.id);
                }
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                tally.not_found.fetch_add(1, Ordering::Relaxed);
                slot.lost.store(true, Ordering::Relaxed);
                tally.error(format!("session {i} lost: {}", status.message()));
            }
            Err(status) => {
                if let Some(id) = hinted_leader(&status) {
                    self.follow(i, id);
                }
                tally.error(format!("{}: {}", status.code(), status.message()));
            }
        }
    }
}

/// What [`open_all`] saw: each open's latency (microseconds, sorted) and each failure.
pub struct Opened {
    pub latencies_us: Vec<u64>,
    pub failures: Vec<String>,
}

/// Opens every session but the first (which the caller opened), `concurrency` at a time,
/// giving up on what is left after `timeout`. `progress` is called about every `every`.
pub async fn open_all(
    fleet: Arc<Fleet>,
    concurrency: usize,
    checkout: bool,
    timeout: Duration,
    every: Duration,
    progress: impl Fn(),
) -> Opened {
    let started = Instant::now();
    let results = Arc::new(Mutex::new(Opened { latencies_us: Vec::new(), failures: Vec::new() }));
    let step = concurrency.max(1);
    let workers: Vec<_> = (0..step)
        .map(|w| {
            let (fleet, results) = (fleet.clone(), results.clone());
            tokio::spawn(async move {
                // Worker w opens sessions w+1, w+1+C, w+1+2C, ...
                let mut i = w + 1;
                while i < fleet.len() && started.elapsed() < timeout {
                    let outcome = fleet.open(i, checkout).await;
                    let mut results = results.lock().unwrap_or_else(PoisonError::into_inner);
                    match outcome {
                        Ok(took) => results.latencies_us.push(took.as_micros() as u64),
                        Err(e) => results.failures.push(e),
                    }
                    i += step;
                }
            })
        })
        .collect();
    let mut last_progress = Instant::now();
    for worker in workers {
        while !worker.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if last_progress.elapsed() >= every {
                last_progress = Instant::now();
                progress();
            }
        }
        let _ = worker.await;
    }
    let mut results = std::mem::replace(
        &mut *results.lock().unwrap_or_else(PoisonError::into_inner),
        Opened { latencies_us: Vec::new(), failures: Vec::new() },
    );
    results.latencies_us.sort_unstable();
    results
}

/// The heartbeat schedule: the k-th heartbeat is session k mod N's, due at
/// `start + k * interval / N`, sent with at most `inflight` out. Runs until the window (once
/// [`Fleet::start_window`] has been called) has passed and the answers are in (or their
/// deadline has passed).
///
/// A dispatcher that falls behind (the cluster answers slower than the schedule, and
/// `inflight` heartbeats are out) sends no backlog: like a real client, which sends its next
/// heartbeat one interval after the last, it skips the heartbeats more than one interval late
/// and goes on with the oldest one that is not, counting the skipped ones.
pub async fn dispatch_heartbeats(
    fleet: Arc<Fleet>,
    start: Instant,
    interval: Duration,
    window: Duration,
    inflight: usize,
) {
    let n = fleet.len();
    let spacing = interval.as_secs_f64() / n as f64;
    let due_at = |k: usize| start + Duration::from_secs_f64(k as f64 * spacing);
    let permits = Arc::new(Semaphore::new(inflight));
    let mut k: usize = 0;
    loop {
        let now = Instant::now();
        let window_start = fleet.window_start.get().copied();
        let due = due_at(k);
        if window_start.is_some_and(|s| due >= s + window || now >= s + window + CATCH_UP_GRACE) {
            break;
        }
        let phase =
            if window_start.is_some_and(|s| due >= s) { Phase::Window } else { Phase::Opening };
        if due > now {
            tokio::time::sleep(DISPATCH_TICK).await;
            continue;
        }
        if now.duration_since(due) > interval {
            let behind = now.duration_since(start).saturating_sub(interval);
            let fresh = (behind.as_secs_f64() / spacing).ceil() as usize;
            fleet.tally(phase).skipped.fetch_add(fresh.saturating_sub(k) as u64, Ordering::Relaxed);
            k = fresh.max(k + 1);
            continue;
        }
        let i = k % n;
        k += 1;
        let slot = &fleet.sessions[i];
        if slot.id.get().is_none() || slot.lost.load(Ordering::Relaxed) {
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let lag = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
        fleet.tally(phase).max_lag_us.fetch_max(lag, Ordering::Relaxed);
        fleet.tally(phase).lag_sum_us.fetch_add(lag, Ordering::Relaxed);
        let fleet = fleet.clone();
        tokio::spawn(async move {
            fleet.heartbeat(i, k - 1, phase).await;
            drop(permit);
        });
    }
    let answers = permits.acquire_many(u32::try_from(inflight).unwrap_or(u32::MAX));
    let _ = tokio::time::timeout(CALL_DEADLINE + Duration::from_secs(1), answers).await;
}

/// The leader id in a failure's trailing metadata, if any.
fn hinted_leader(status: &tonic::Status) -> Option<u64> {
    status.metadata().get("qlm-leader-id")?.to_str().ok()?.parse().ok()
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

/// A channel to `addr`, tried for up to [`READY_TIMEOUT`] (a node that is not the leader may
/// open its client port after the leader is ready). Each call has [`CALL_DEADLINE`], enforced
/// on this side too.
async fn connect(addr: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .timeout(CALL_DEADLINE)
        .connect_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if Instant::now() > deadline => return Err(format!("connect {addr}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
