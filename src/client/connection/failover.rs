//! Failover: every rpc goes through [`Client::call`], which owns the retry rules of
//! common.proto:
//!
//! - Each attempt has a deadline ([`CALL_DEADLINE`](super::CALL_DEADLINE)); a transport
//!   failure, UNAVAILABLE, DEADLINE_EXCEEDED or CANCELLED means "nothing was done, or the
//!   outcome is unknown", so the same request (same `request_id`) goes to the next server. Any
//!   other status is the cluster's answer and is returned at once.
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
//! (a pass is quick when servers refuse; [`CALL_DEADLINE`](super::CALL_DEADLINE) per server
//! when they hang).

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Response, Status};

use super::{Client, lock};
use crate::endpoints::{ServerAddr, parse_servers};
use crate::error::{ClientError, is_retryable};
use qlm_proto::v1;

/// How long a call keeps failing over before it gives up with [`ClientError::Unreachable`]:
/// no new pass over the server list starts once this much time has passed since the call
/// began. Sized to ride out a leader election with the default timing (heartbeat 50 ms,
/// election timeout 200-400 ms, plus openraft's leader lease: a follower stands for election
/// 0.6-0.9 s after it last heard from the dead leader, and the new leader is known within a
/// few round trips after that), with room for a failed candidacy, and for a cluster started
/// with election timeouts of 400-800 ms (a follower then stands after 1.2-1.75 s).
pub const FAILOVER_BUDGET: Duration = Duration::from_secs(3);

/// Pause after the first pass over the list; each later pause doubles, up to
/// [`RETRY_BACKOFF_MAX`]. Each is taken with jitter: between half of it and all of it.
pub const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(25);

/// Longest pause between two passes over the list.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Metadata key of the leader's client address on a failed rpc (common.proto).
pub const LEADER_ADDR_METADATA: &str = "qlm-leader-addr";

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
    pub(super) async fn call_servers<T, F, Fut>(
        &self,
        rpc: &str,
        mut send: F,
    ) -> Result<T, ClientError>
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
    pub(super) fn order(&self) -> Vec<ServerAddr> {
        let mut order: Vec<ServerAddr> = self.leader().into_iter().collect();
        for server in &self.inner.servers {
            if !order.contains(server) {
                order.push(server.clone());
            }
        }
        order
    }

    pub(super) fn note_leader(&self, hint: Option<&v1::LeaderHint>) {
        let Some(hint) = hint.filter(|hint| hint.id != 0) else { return };
        if let Some(addr) = parse_leader_addr(&hint.client_addr) {
            *lock(&self.inner.leader) = Some(addr);
        }
    }

    pub(super) fn forget_leader(&self, failed: &ServerAddr) {
        let mut leader = lock(&self.inner.leader);
        if leader.as_ref() == Some(failed) {
            *leader = None;
        }
    }
}

/// The pauses between passes over the server list: [`RETRY_BACKOFF_FIRST`], doubling up to
/// [`RETRY_BACKOFF_MAX`], each with jitter: half of it fixed, half random. Without jitter,
/// clients that lost the same leader at the same moment retry in lockstep, and every one of
/// them reaches the new leader in the same instant, a whole pause after it was elected
/// (docs/BENCHMARKS.md, "Failover").
pub(super) struct Backoff {
    next: Duration,
    /// xorshift state, seeded on the first pause (a call that needs no retry costs nothing).
    random: u64,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff { next: RETRY_BACKOFF_FIRST, random: 0 }
    }

    /// The next pause: between half the current step and the whole of it.
    pub(super) fn pause(&mut self) -> Duration {
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
