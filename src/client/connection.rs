//! [`Client`]: the server list, one lazy gRPC channel per server, and failover.
//!
//! Every rpc goes through [`Client::call`], which owns the retry rules of common.proto:
//!
//! - Each attempt has a deadline ([`CALL_DEADLINE`]); a transport failure, UNAVAILABLE,
//!   DEADLINE_EXCEEDED or CANCELLED means "nothing was done, or the outcome is unknown", so
//!   the same request (same `request_id`) goes to the next server. Any other status is the
//!   cluster's answer and is returned at once.
//! - Order: the leader the client last heard of first (from the `leader` field of an answer,
//!   or from the `qlm-leader-addr` metadata of a failure, which is tried next), then the list
//!   in the order the admin wrote it.
//! - Passes over the list go on while the call's failover budget lasts ([`FAILOVER_BUDGET`]
//!   by default, [`Client::with_failover_budget`]), with a pause between passes that starts
//!   small and doubles up to a cap ([`RETRY_BACKOFF_FIRST`] to [`RETRY_BACKOFF_MAX`], each
//!   with jitter so that clients do not retry in lockstep). Then the call ends with
//!   [`ClientError::Unreachable`] naming every server tried.
//!
//! Why a time budget and not a count of passes: after a leader dies, its port refuses at once
//! and every follower refuses at once too (its forward to the dead leader fails) until one of
//! them times out and is elected, which takes an election timeout and more (openraft's
//! followers wait out the old leader's lease first: see docs/BENCHMARKS.md, failover). A few
//! quick passes are spent long before that and hand the application an error it could have
//! waited out; the budget is sized to ride out one election. The short first pauses keep the
//! next grant close behind the election; the cap keeps a minute-long outage from turning into
//! a storm of attempts (about five per second per client).
//!
//! Bounds: the first pass always tries every server once (so a hung first server cannot hide
//! a live second one); a later pass starts only if its pause ends within the budget. An
//! attempt under way keeps its own deadline, so a call takes at most the budget plus one pass
//! (a pass is quick when servers refuse; [`CALL_DEADLINE`] per server when they hang).
//!
//! Channels connect lazily: building a client does no I/O, and a server that is down costs
//! only the attempts that reach it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Response, Status};

use crate::endpoints::{ServerAddr, list_wants_tls, parse_servers};
use crate::error::{ClientError, is_retryable};
use qlm_proto::v1;

/// How long one attempt of a unary rpc may take before the client tries the next server.
/// Writes go through Raft (an fsync on a majority), so this leaves room for a slow disk and
/// one leader election (well under 2 s), not for a hung node.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// How long opening a TCP connection to one server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a call keeps failing over before it gives up with [`ClientError::Unreachable`]:
/// no new pass over the server list starts once this much time has passed since the call
/// began. Sized to ride out a leader election with the default timing (heartbeat 50 ms,
/// election timeout 200-400 ms, plus openraft's leader lease: a follower stands for election
/// 0.6-0.9 s after it last heard from the dead leader, and the new leader is known within a
/// few round trips after that), with room for a failed candidacy, and for a cluster started
/// with the slower timing of earlier releases (400-800 ms: 1.2-1.75 s).
pub const FAILOVER_BUDGET: Duration = Duration::from_secs(3);

/// Pause after the first pass over the list; each later pause doubles, up to
/// [`RETRY_BACKOFF_MAX`]. Each is taken with jitter: between half of it and all of it.
pub const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(25);

/// Longest pause between two passes over the list.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Metadata key of the leader's client address on a failed rpc (common.proto).
pub const LEADER_ADDR_METADATA: &str = "qlm-leader-addr";

/// Environment variable with the server list.
pub const SERVERS_ENV: &str = "QLM_SERVERS";

/// Environment variable with the admin token.
pub const ADMIN_TOKEN_ENV: &str = "QLM_ADMIN_TOKEN";

/// Environment variable naming a file that holds the admin token (used when
/// [`ADMIN_TOKEN_ENV`] is not set).
pub const ADMIN_TOKEN_FILE_ENV: &str = "QLM_ADMIN_TOKEN_FILE";

/// Environment variable naming the CA file (PEM) to trust for the servers' certificates.
pub const TLS_CA_ENV: &str = "QLM_TLS_CA";

/// Environment variable naming a client certificate (PEM), for servers that require one.
pub const TLS_CLIENT_CERT_ENV: &str = "QLM_CLIENT_CERT";

/// Environment variable naming the private key (PEM) of [`TLS_CLIENT_CERT_ENV`].
pub const TLS_CLIENT_KEY_ENV: &str = "QLM_CLIENT_KEY";

/// A handle to the cluster. Cheap to clone: clones share channels and the leader hint.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Shared>,
}

struct Shared {
    /// The servers as the admin listed them; the failover order after the leader.
    servers: Vec<ServerAddr>,
    /// One channel per server, made on first use (a leader hint may add a server that is not
    /// in the list).
    channels: Mutex<HashMap<ServerAddr, Channel>>,
    /// The leader as last reported by any answer; tried first.
    leader: Mutex<Option<ServerAddr>>,
    /// Sent as `authorization: Bearer <token>` on every call when set.
    admin_token: Option<String>,
    /// Deadline of one attempt.
    call_deadline: Duration,
    /// How long a call keeps failing over ([`FAILOVER_BUDGET`] by default).
    failover_budget: Duration,
    /// TLS for every channel (`https://`); `None` is plaintext.
    tls: Option<ClientTlsConfig>,
}

/// An answer that says where the leader is.
pub(crate) trait LeaderHinted {
    fn leader_hint(&self) -> Option<&v1::LeaderHint>;
}

macro_rules! leader_hinted {
    ($($message:ty),* $(,)?) => {$(
        impl LeaderHinted for $message {
            fn leader_hint(&self) -> Option<&v1::LeaderHint> {
                self.leader.as_ref()
            }
        }
    )*};
}

leader_hinted!(
    v1::OpenSessionResponse,
    v1::HeartbeatResponse,
    v1::CheckoutResponse,
    v1::CheckinResponse,
    v1::CloseSessionResponse,
    v1::FeaturesResponse,
    v1::CheckoutsResponse,
    v1::ClusterResponse,
    v1::RemoveResponse,
    v1::ReloadResponse,
    v1::AddNodeResponse,
    v1::RemoveNodeResponse,
);

impl LeaderHinted for tonic::Streaming<v1::QueueUpdate> {
    fn leader_hint(&self) -> Option<&v1::LeaderHint> {
        None
    }
}

impl Client {
    /// A client of the cluster at `servers` (see [`parse_servers`]). Makes no connection
    /// yet: channels open on first use.
    pub fn connect(servers: Vec<ServerAddr>) -> Result<Client, ClientError> {
        if servers.is_empty() {
            return Err(ClientError::NoServers("the server list is empty".into()));
        }
        Ok(Client {
            inner: Arc::new(Shared {
                servers,
                channels: Mutex::new(HashMap::new()),
                leader: Mutex::new(None),
                admin_token: None,
                call_deadline: CALL_DEADLINE,
                failover_budget: FAILOVER_BUDGET,
                tls: None,
            }),
        })
    }

    /// A client of the servers in `QLM_SERVERS`, with TLS when an entry is `https://` or
    /// `QLM_TLS_CA` (the CA to trust) is set; `QLM_CLIENT_CERT` and `QLM_CLIENT_KEY` name a
    /// client certificate for servers that require one.
    pub fn from_env() -> Result<Client, ClientError> {
        let list = std::env::var(SERVERS_ENV)
            .map_err(|_| ClientError::NoServers(format!("{SERVERS_ENV} is not set")))?;
        let servers = parse_servers(&list).map_err(|e| ClientError::NoServers(e.to_string()))?;
        let client = Client::connect(servers)?;
        let path = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from);
        let (ca, cert, key) =
            (path(TLS_CA_ENV), path(TLS_CLIENT_CERT_ENV), path(TLS_CLIENT_KEY_ENV));
        if !list_wants_tls(&list) && ca.is_none() && cert.is_none() && key.is_none() {
            return Ok(client);
        }
        let tls = qlm_net::tls::ClientTls::read(ca.as_deref(), cert.as_deref(), key.as_deref())
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(client.with_tls(&tls))
    }

    /// The same cluster over TLS (`https://`), trusting and presenting what `tls` says.
    pub fn with_tls(&self, tls: &qlm_net::tls::ClientTls) -> Client {
        self.rebuilt(|shared| {
            shared.tls = Some(tls.client_config());
            shared.channels = Mutex::new(HashMap::new());
        })
    }

    /// True when this client talks TLS.
    pub fn uses_tls(&self) -> bool {
        self.inner.tls.is_some()
    }

    /// The same cluster, sending `token` as the admin token (needed by the admin calls).
    pub fn with_admin_token(&self, token: impl Into<String>) -> Client {
        self.rebuilt(|shared| shared.admin_token = Some(token.into()))
    }

    /// The same cluster with another deadline per attempt (default [`CALL_DEADLINE`]).
    pub fn with_call_deadline(&self, deadline: Duration) -> Client {
        self.rebuilt(|shared| shared.call_deadline = deadline)
    }

    /// The same cluster with another failover budget (default [`FAILOVER_BUDGET`]): how long
    /// a call keeps trying the servers again before it ends with
    /// [`ClientError::Unreachable`]. `Duration::ZERO` makes one pass over the list.
    pub fn with_failover_budget(&self, budget: Duration) -> Client {
        self.rebuilt(|shared| shared.failover_budget = budget)
    }

    /// The servers, as given.
    pub fn servers(&self) -> &[ServerAddr] {
        &self.inner.servers
    }

    /// The leader as last reported, if any.
    pub fn leader(&self) -> Option<ServerAddr> {
        lock(&self.inner.leader).clone()
    }

    fn rebuilt(&self, change: impl FnOnce(&mut Shared)) -> Client {
        let mut shared = Shared {
            servers: self.inner.servers.clone(),
            channels: Mutex::new(lock(&self.inner.channels).clone()),
            leader: Mutex::new(self.leader()),
            admin_token: self.inner.admin_token.clone(),
            call_deadline: self.inner.call_deadline,
            failover_budget: self.inner.failover_budget,
            tls: self.inner.tls.clone(),
        };
        change(&mut shared);
        Client { inner: Arc::new(shared) }
    }

    /// `message` as a request with this client's deadline and admin token.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.inner.call_deadline);
        if let Some(token) = &self.inner.admin_token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// True when an admin token is set.
    pub(crate) fn has_admin_token(&self) -> bool {
        self.inner.admin_token.is_some()
    }

    /// Sends one rpc with failover (see the module documentation). `send` is called once per
    /// attempt with the channel of the server to try and must send the same request each
    /// time.
    pub(crate) async fn call<T, F, Fut>(&self, rpc: &str, mut send: F) -> Result<T, ClientError>
    where
        T: LeaderHinted,
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.call_servers(rpc, |_, channel| send(channel)).await
    }

    /// [`Client::call`], with the server of each attempt passed to `send` as well (the unit
    /// tests follow the order of attempts with it).
    async fn call_servers<T, F, Fut>(&self, rpc: &str, mut send: F) -> Result<T, ClientError>
    where
        T: LeaderHinted,
        F: FnMut(&ServerAddr, Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        // tokio's clock, which the unit tests pause and advance.
        let started = tokio::time::Instant::now();
        let mut tried: Vec<String> = Vec::new();
        let mut attempts = 0_u32;
        let mut last = String::from("no attempt made");
        let mut hinted: Option<ServerAddr> = None;
        let mut pauses = Backoff::new();
        loop {
            let order = self.order();
            let mut next = 0;
            // Servers tried in this pass: each is tried once per pass, hinted or listed, so two
            // nodes that name each other (stale views during an election) cannot keep a pass
            // going.
            let mut this_pass: Vec<ServerAddr> = Vec::new();
            loop {
                let server = match hinted.take().filter(|hint| !this_pass.contains(hint)) {
                    Some(server) => server,
                    None => match order[next..].iter().position(|s| !this_pass.contains(s)) {
                        Some(skip) => {
                            next += skip + 1;
                            order[next - 1].clone()
                        }
                        None => break,
                    },
                };
                attempts += 1;
                this_pass.push(server.clone());
                if !tried.contains(&server.to_string()) {
                    tried.push(server.to_string());
                }
                let channel = match self.channel(&server) {
                    Ok(channel) => channel,
                    Err(error) => {
                        last = format!("{server}: {error}");
                        continue;
                    }
                };
                let attempt =
                    tokio::time::timeout(self.inner.call_deadline, send(&server, channel)).await;
                let status = match attempt {
                    Ok(Ok(response)) => {
                        let answer = response.into_inner();
                        self.note_leader(answer.leader_hint());
                        return Ok(answer);
                    }
                    Ok(Err(status)) => status,
                    Err(_) => Status::deadline_exceeded(format!(
                        "no answer within {:?}",
                        self.inner.call_deadline
                    )),
                };
                if !is_retryable(&status) {
                    return Err(ClientError::from_status(&status));
                }
                tracing::debug!(rpc, %server, code = ?status.code(), "attempt failed; failing over");
                last = format!("{server}: {:?}: {}", status.code(), status.message());
                self.forget_leader(&server);
                hinted = leader_from_metadata(&status).filter(|hint| *hint != server);
            }
            // Another pass only if it can start within the budget.
            let pause = pauses.pause();
            if started.elapsed() + pause >= self.inner.failover_budget {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        let spent = started.elapsed();
        Err(ClientError::Unreachable {
            tried,
            last: format!("{last} ({attempts} attempts in {} ms)", spent.as_millis()),
        })
    }

    /// The known leader first, then the list, without repeats.
    fn order(&self) -> Vec<ServerAddr> {
        let mut order: Vec<ServerAddr> = self.leader().into_iter().collect();
        for server in &self.inner.servers {
            if !order.contains(server) {
                order.push(server.clone());
            }
        }
        order
    }

    fn channel(&self, server: &ServerAddr) -> Result<Channel, tonic::transport::Error> {
        let mut channels = lock(&self.inner.channels);
        if let Some(channel) = channels.get(server) {
            return Ok(channel.clone());
        }
        let endpoint = match &self.inner.tls {
            None => Endpoint::from_shared(server.uri())?,
            Some(tls) => {
                Endpoint::from_shared(format!("https://{server}"))?.tls_config(tls.clone())?
            }
        };
        let channel = qlm_net::wire::connect_lazy(&endpoint.connect_timeout(CONNECT_TIMEOUT));
        channels.insert(server.clone(), channel.clone());
        Ok(channel)
    }

    fn note_leader(&self, hint: Option<&v1::LeaderHint>) {
        let Some(hint) = hint.filter(|hint| hint.id != 0) else { return };
        if let Some(addr) = parse_leader_addr(&hint.client_addr) {
            *lock(&self.inner.leader) = Some(addr);
        }
    }

    fn forget_leader(&self, failed: &ServerAddr) {
        let mut leader = lock(&self.inner.leader);
        if leader.as_ref() == Some(failed) {
            *leader = None;
        }
    }
}

/// The pauses between passes over the server list: [`RETRY_BACKOFF_FIRST`], doubling up to
/// [`RETRY_BACKOFF_MAX`], each with jitter: half of it fixed, half random. Without jitter,
/// clients that lost the same leader at the same moment retry in lockstep, and every one of
/// them reaches the new leader in the same instant, a whole pause after it was elected (the
/// failover benchmark showed all 8 of its clients released within 3 ms of each other).
struct Backoff {
    next: Duration,
    /// xorshift state, seeded on the first pause (a call that needs no retry costs nothing).
    random: u64,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: RETRY_BACKOFF_FIRST, random: 0 }
    }

    /// The next pause: between half the current step and the whole of it.
    fn pause(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(RETRY_BACKOFF_MAX);
        step / 2 + step.mul_f64(self.fraction() / 2.0)
    }

    /// A random number in [0, 1).
    fn fraction(&mut self) -> f64 {
        if self.random == 0 {
            let mut seed = [0u8; 8];
            if getrandom::fill(&mut seed).is_err() {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                seed = (u64::from(nanos) ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
            }
            self.random = u64::from_le_bytes(seed) | 1;
        }
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        (x >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// The admin token: `QLM_ADMIN_TOKEN`, or the first line of the file `QLM_ADMIN_TOKEN_FILE`
/// names.
pub fn admin_token_from_env() -> Result<String, ClientError> {
    if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
        return non_empty_token(token.trim(), ADMIN_TOKEN_ENV);
    }
    let path = std::env::var(ADMIN_TOKEN_FILE_ENV).map_err(|_| {
        ClientError::AdminToken(format!("set {ADMIN_TOKEN_ENV} or {ADMIN_TOKEN_FILE_ENV}"))
    })?;
    admin_token_from_file(std::path::Path::new(&path))
}

/// The admin token in the first line of `path`.
pub fn admin_token_from_file(path: &std::path::Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::AdminToken(format!("{}: {e}", path.display())))?;
    non_empty_token(text.lines().next().unwrap_or("").trim(), &path.display().to_string())
}

fn non_empty_token(token: &str, source: &str) -> Result<String, ClientError> {
    if token.is_empty() {
        return Err(ClientError::AdminToken(format!("{source} is empty")));
    }
    Ok(token.to_owned())
}

fn leader_from_metadata(status: &Status) -> Option<ServerAddr> {
    let addr = status.metadata().get(LEADER_ADDR_METADATA)?.to_str().ok()?;
    parse_leader_addr(addr)
}

fn parse_leader_addr(addr: &str) -> Option<ServerAddr> {
    if addr.is_empty() {
        return None;
    }
    parse_servers(addr).ok()?.into_iter().next()
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_hint_goes_first_and_is_not_repeated() {
        let servers = parse_servers("a:1,b:2,c:3").unwrap();
        let client = Client::connect(servers).unwrap();
        client.note_leader(Some(&v1::LeaderHint { id: 2, client_addr: "b:2".into() }));
        let order: Vec<String> = client.order().iter().map(ToString::to_string).collect();
        assert_eq!(order, ["b:2", "a:1", "c:3"]);
        client.forget_leader(&ServerAddr { host: "b".into(), port: 2 });
        assert_eq!(client.leader(), None);
    }

    #[test]
    fn a_hint_without_a_leader_changes_nothing() {
        let client = Client::connect(parse_servers("a:1").unwrap()).unwrap();
        client.note_leader(Some(&v1::LeaderHint { id: 0, client_addr: String::new() }));
        client.note_leader(Some(&v1::LeaderHint { id: 3, client_addr: "not a host".into() }));
        assert_eq!(client.leader(), None);
    }

    /// A client of three servers whose calls the tests answer themselves.
    fn three_servers() -> Client {
        Client::connect(parse_servers("a:1,b:2,c:3").unwrap()).unwrap()
    }

    /// An answer with a leader hint, as every successful rpc carries.
    fn answer(leader: &str) -> Result<Response<v1::FeaturesResponse>, Status> {
        let hint = v1::LeaderHint { id: 1, client_addr: leader.into() };
        Ok(Response::new(v1::FeaturesResponse { leader: Some(hint), ..Default::default() }))
    }

    /// UNAVAILABLE naming `leader` in the metadata, as a follower that knows the leader answers.
    fn not_leader(leader: &str) -> Status {
        let mut status = Status::unavailable("not the leader");
        status.metadata_mut().insert(LEADER_ADDR_METADATA, leader.parse().unwrap());
        status
    }

    #[test]
    fn the_pauses_start_small_and_double_up_to_the_cap_with_jitter() {
        let mut pauses = Backoff::new();
        let steps = [25, 50, 100, 200, 200, 200, 200, 200];
        let taken: Vec<Duration> = steps.iter().map(|_| pauses.pause()).collect();
        for (pause, step) in taken.iter().zip(steps) {
            let step = Duration::from_millis(step);
            assert!(*pause >= step / 2 && *pause <= step, "{pause:?} for a step of {step:?}");
        }
        assert!(taken[3..].windows(2).any(|w| w[0] != w[1]), "jitter: {taken:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_no_server_answers_fails_over_until_its_budget_is_spent() {
        let client = three_servers();
        let started = tokio::time::Instant::now();
        let mut attempts = 0;
        let error = client
            .call_servers("Features", |_, _| {
                attempts += 1;
                async { answer_never() }
            })
            .await
            .unwrap_err();
        let spent = started.elapsed();
        let ClientError::Unreachable { tried, last } = &error else { panic!("{error:?}") };
        assert_eq!(tried, &["a:1", "b:2", "c:3"], "every server, each named once");
        assert!(last.contains("c:3") && last.contains(&format!("{attempts} attempts")), "{last}");
        assert!(spent <= FAILOVER_BUDGET, "no pass starts after the budget: {spent:?}");
        assert!(spent + RETRY_BACKOFF_MAX >= FAILOVER_BUDGET, "the budget is used: {spent:?}");
        assert_eq!(attempts % 3, 0, "whole passes");
        assert!(attempts >= 3 * 10, "many passes, not three: {attempts}");
    }

    fn answer_never() -> Result<Response<v1::FeaturesResponse>, Status> {
        Err(Status::unavailable("connection refused"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_rides_out_an_election_shorter_than_its_budget() {
        let client = three_servers();
        let started = tokio::time::Instant::now();
        let elected = Duration::from_millis(1_700);
        let answered = client
            .call_servers("Features", |server, _| {
                let up = started.elapsed() >= elected && server.port == 2;
                async move { if up { answer("b:2") } else { answer_never() } }
            })
            .await
            .unwrap();
        assert!(answered.leader.is_some());
        let late = started.elapsed() - elected;
        assert!(late <= RETRY_BACKOFF_MAX, "the next pass comes soon after: {late:?}");
        assert_eq!(client.leader().map(|l| l.to_string()).as_deref(), Some("b:2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_that_is_an_answer_is_returned_at_once() {
        let client = three_servers();
        let mut attempts = 0;
        let error = client
            .call_servers("Features", |_, _| {
                attempts += 1;
                async { Err::<Response<v1::FeaturesResponse>, _>(Status::not_found("no session")) }
            })
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Rejected { code: tonic::Code::NotFound, .. }));
        assert_eq!(attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_leader_is_tried_first_and_a_hint_next() {
        let client = three_servers();
        client.note_leader(Some(&v1::LeaderHint { id: 3, client_addr: "c:3".into() }));
        let mut order = Vec::new();
        let answered = client
            .call_servers("Features", |server, _| {
                order.push(server.to_string());
                let reply = match server.port {
                    3 => Err(Status::unavailable("connection refused")),
                    1 => Err(not_leader("b:2")),
                    _ => answer("b:2"),
                };
                async move { reply }
            })
            .await;
        assert!(answered.is_ok());
        assert_eq!(order, ["c:3", "a:1", "b:2"], "the known leader, the list, the hint");
        assert_eq!(client.leader().map(|l| l.to_string()).as_deref(), Some("b:2"));
    }

    #[tokio::test(start_paused = true)]
    async fn two_nodes_that_name_each_other_end_the_pass() {
        let client = Client::connect(parse_servers("a:1,b:2").unwrap()).unwrap();
        let mut order = Vec::new();
        let error = client
            .with_failover_budget(Duration::ZERO)
            .call_servers("Features", |server, _| {
                order.push(server.to_string());
                let other = if server.port == 1 { "b:2" } else { "a:1" };
                let status = not_leader(other);
                async move { Err::<Response<v1::FeaturesResponse>, _>(status) }
            })
            .await
            .unwrap_err();
        assert!(error.is_unreachable());
        assert_eq!(order, ["a:1", "b:2"], "one pass, each server once");
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert!(matches!(Client::connect(Vec::new()), Err(ClientError::NoServers(_))));
    }
}
