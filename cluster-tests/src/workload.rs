//! The chaos workload: concurrent client sessions through the real client library
//! (`qlm_client`), each recording every request and answer in a [`Recorder`].
//!
//! Each client is one tokio task with its own [`Client`] and its own list of nodes (the
//! scenario chooses it: every node in a different order, or only one side of a partition). It
//! opens a session with a short TTL, then, at random: checks out with or without waiting,
//! heartbeats, checks in what it holds once the hold time is over, closes its session, or
//! dies without checking in ([`Session::abandon`]: the heartbeats stop, the seats come back at
//! expiry). A session the cluster lost is noticed and replaced.
//!
//! When the scenario is done, [`Workload::quiesce`] stops new requests but keeps every
//! session and its seats: the final states are taken with them held, then [`prove_alive`]
//! heartbeats every session (so the checker knows they lived past the final states) and
//! [`close_all`] ends them.
//!
//! CPU: a client thinks 50–250 ms between requests; with the default 8 clients that is a few
//! dozen requests a second, which a 2-core machine carries next to three or five nodes.

use std::time::{Duration, Instant};

use qlm_client::{
    Checkout, CheckoutOptions, Client, ClientError, ServerAddr, Session, SessionOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::history::{Answer, Call, Op, Recorder};
use crate::rng::Rng;

/// How the workload behaves.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Concurrent clients.
    pub clients: usize,
    /// Session TTL every client asks for.
    pub ttl: Duration,
    /// The client library's deadline per attempt.
    pub call_deadline: Duration,
    /// The feature checked out.
    pub feature: String,
    /// Longest a client waits in a queue before it gives up (the answer is then unknown).
    pub max_wait: Duration,
    /// Percent of checkouts that wait in the queue.
    pub wait_percent: u64,
    /// Percent of steps in which a client dies without checking in.
    pub abandon_percent: u64,
    /// Percent of steps in which a client closes its session.
    pub close_percent: u64,
    /// How long a client holds a seat, milliseconds (a range).
    pub hold_ms: (u64, u64),
    /// Add a prober: one more client that checks out and in a plentiful feature
    /// (`vhdl-editor`) all the time, never waiting, closing or dying, so that the time from
    /// a fault to the next grant measures the cluster and not a full pool.
    pub prober: bool,
    /// At the stop, check one seat out (without waiting) when none is held, and keep it, so
    /// the end-of-run check has a grant of a live session to look for (the prober does this:
    /// its pool is plentiful, while every seat of the small pool may be held by sessions that
    /// were abandoned and have not expired yet).
    pub hold_at_end: bool,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            clients: 8,
            ttl: Duration::from_secs(3),
            call_deadline: Duration::from_secs(2),
            feature: crate::CHAOS_FEATURE.to_owned(),
            max_wait: Duration::from_secs(3),
            wait_percent: 15,
            abandon_percent: 3,
            close_percent: 3,
            hold_ms: (100, 1_000),
            prober: true,
            hold_at_end: false,
        }
    }
}

/// The prober's client id in the history.
pub const PROBER_CLIENT: u64 = 100;
/// The plentiful feature the prober checks out.
pub const PROBER_FEATURE: &str = "vhdl-editor";

/// A client at the end of the run: its session (if one is open) and the seats it holds.
pub struct ClientEnd {
    pub client: u64,
    pub session: Option<Session>,
    pub held: Vec<Checkout>,
}

/// The running workload.
pub struct Workload {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<ClientEnd>>,
}

impl Workload {
    /// Starts `options.clients` clients; client `i` talks to `servers[i % servers.len()]`.
    pub fn start(
        servers: &[Vec<ServerAddr>],
        options: &WorkloadOptions,
        recorder: &Recorder,
        rng: &mut Rng,
    ) -> Workload {
        let (stop, stopped) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<ClientEnd>> = (0..options.clients)
            .map(|i| {
                let list = servers[i % servers.len()].clone();
                let worker = Worker {
                    id: i as u64 + 1,
                    options: options.clone(),
                    recorder: recorder.clone(),
                    rng: rng.fork(),
                    stop: stopped.clone(),
                };
                tokio::spawn(worker.run(list))
            })
            .collect();
        if options.prober {
            let worker = Worker {
                id: PROBER_CLIENT,
                options: WorkloadOptions {
                    feature: PROBER_FEATURE.to_owned(),
                    wait_percent: 0,
                    abandon_percent: 0,
                    close_percent: 0,
                    hold_ms: (0, 50),
                    hold_at_end: true,
                    ..options.clone()
                },
                recorder: recorder.clone(),
                rng: rng.fork(),
                stop: stopped.clone(),
            };
            tasks.push(tokio::spawn(worker.run(servers[0].clone())));
        }
        Workload { stop, tasks }
    }

    /// Stops new requests (a request in flight finishes) and hands back every client's
    /// session and seats, still held.
    pub async fn quiesce(self) -> Vec<ClientEnd> {
        let _ = self.stop.send(true);
        let mut ends = Vec::new();
        for task in self.tasks {
            if let Ok(end) = task.await {
                ends.push(end);
            }
        }
        ends
    }
}

/// Heartbeats every open session once, recorded: proof that it lived past this moment.
pub async fn prove_alive(ends: &[ClientEnd], recorder: &Recorder) {
    for end in ends {
        if let Some(session) = &end.session {
            let invoked = recorder.now();
            let answer = session.heartbeat().await.map_or_else(|e| answer_of(&e), |_| Answer::Done);
            record(recorder, end.client, Some(session.id()), Call::Heartbeat, invoked, answer);
        }
    }
}

/// Closes every session (recorded), releasing its seats.
pub async fn close_all(ends: Vec<ClientEnd>, recorder: &Recorder) {
    for end in ends {
        for seat in end.held {
            let _ = seat.keep();
        }
        if let Some(session) = end.session {
            let id = session.id().to_owned();
            let invoked = recorder.now();
            let answer = session.close().await.map_or_else(|e| answer_of(&e), |_| Answer::Done);
            record(recorder, end.client, Some(&id), Call::CloseSession, invoked, answer);
        }
    }
}

/// Checks `feature` out through `servers` until one is granted (each try recorded as client
/// 0), then checks it in; returns whether one was granted within `within`.
pub async fn probe_grant(
    servers: Vec<ServerAddr>,
    feature: &str,
    recorder: &Recorder,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    let Ok(client) = Client::connect(servers) else { return false };
    let client = client.with_call_deadline(Duration::from_secs(2));
    while Instant::now() < deadline {
        let invoked = recorder.now();
        let options = SessionOptions::from_process().with_ttl(Duration::from_secs(5));
        let session = match client.open_session(options).await {
            Ok(session) => session,
            Err(e) => {
                record(
                    recorder,
                    0,
                    None,
                    Call::OpenSession { ttl_ms: 5_000 },
                    invoked,
                    answer_of(&e),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let opened = Answer::Opened { session: session.id().to_owned(), ttl_ms: 5_000 };
        record(
            recorder,
            0,
            Some(session.id()),
            Call::OpenSession { ttl_ms: 5_000 },
            invoked,
            opened,
        );
        while Instant::now() < deadline {
            let invoked = recorder.now();
            let call = Call::Checkout { feature: feature.to_owned(), count: 1, wait: false };
            match session.checkout(feature, CheckoutOptions::default()).await {
                Ok(seat) => {
                    let answer = Answer::Granted { handle: seat.handle(), count: 1 };
                    record(recorder, 0, Some(session.id()), call, invoked, answer);
                    let handle = seat.handle();
                    let invoked = recorder.now();
                    let answer =
                        seat.checkin().await.map_or_else(|e| answer_of(&e), |_| Answer::Done);
                    record(
                        recorder,
                        0,
                        Some(session.id()),
                        Call::Checkin { handle },
                        invoked,
                        answer,
                    );
                    let id = session.id().to_owned();
                    let invoked = recorder.now();
                    let answer =
                        session.close().await.map_or_else(|e| answer_of(&e), |_| Answer::Done);
                    record(recorder, 0, Some(&id), Call::CloseSession, invoked, answer);
                    return true;
                }
                Err(e) => record(recorder, 0, Some(session.id()), call, invoked, answer_of(&e)),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    false
}

/// What an error tells the history: definite refusals, NOT_FOUND, or unknown.
pub fn answer_of(error: &ClientError) -> Answer {
    use tonic::Code;
    match error {
        ClientError::Denied { .. } | ClientError::Left { .. } => Answer::Denied,
        ClientError::Rejected { code: Code::NotFound, message } => {
            Answer::NotFound(message.clone())
        }
        ClientError::InvalidArgument(message) => Answer::Refused(message.clone()),
        ClientError::Rejected {
            code:
                Code::AlreadyExists
                | Code::PermissionDenied
                | Code::FailedPrecondition
                | Code::ResourceExhausted
                | Code::Unauthenticated,
            message,
        } => Answer::Refused(message.clone()),
        other => Answer::Unknown(other.to_string()),
    }
}

fn record(
    recorder: &Recorder,
    client: u64,
    session: Option<&str>,
    call: Call,
    invoked: u64,
    answer: Answer,
) {
    let completed = recorder.now();
    recorder.record(Op {
        client,
        session: session.map(str::to_owned),
        call,
        invoked,
        completed,
        answer,
    });
}

/// One client's task.
struct Worker {
    id: u64,
    options: WorkloadOptions,
    recorder: Recorder,
    rng: Rng,
    stop: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self, servers: Vec<ServerAddr>) -> ClientEnd {
        let client = match Client::connect(servers) {
            Ok(client) => client.with_call_deadline(self.options.call_deadline),
            Err(_) => return ClientEnd { client: self.id, session: None, held: Vec::new() },
        };
        let mut session: Option<Session> = None;
        // Seats held, each with the instant to check it in.
        let mut held: Vec<(Checkout, Instant)> = Vec::new();
        let mut last_heartbeat = Instant::now();
        let heartbeat_every = self.options.ttl / 3;
        while !*self.stop.borrow() {
            let think = Duration::from_millis(self.rng.range(50, 250));
            tokio::time::sleep(think).await;
            if *self.stop.borrow() {
                break;
            }
            let Some(open) = &session else {
                session = self.open(&client).await;
                last_heartbeat = Instant::now();
                continue;
            };
            if open.is_lost() {
                // Record the cluster saying so, then start again.
                self.heartbeat(open).await;
                held.drain(..).for_each(|(seat, _)| drop(seat.keep()));
                session = None;
                continue;
            }
            if let Some(due) = held.iter().position(|(_, at)| *at <= Instant::now()) {
                let (seat, _) = held.swap_remove(due);
                self.checkin(open, seat).await;
            } else if last_heartbeat.elapsed() >= heartbeat_every {
                last_heartbeat = Instant::now();
                self.heartbeat(open).await;
            } else if self.rng.chance(self.options.abandon_percent) {
                let invoked = self.recorder.now();
                record(
                    &self.recorder,
                    self.id,
                    Some(open.id()),
                    Call::Abandon,
                    invoked,
                    Answer::Done,
                );
                held.drain(..).for_each(|(seat, _)| drop(seat.keep()));
                if let Some(open) = session.take() {
                    open.abandon();
                }
            } else if self.rng.chance(self.options.close_percent) {
                self.close_session(&mut session, &mut held).await;
            } else {
                let wait = self.rng.chance(self.options.wait_percent);
                match self.checkout(open, wait).await {
                    Ok(Some(seat)) => {
                        let hold = Duration::from_millis(
                            self.rng.range(self.options.hold_ms.0, self.options.hold_ms.1),
                        );
                        held.push((seat, Instant::now() + hold));
                    }
                    Ok(None) => {}
                    Err(()) => {
                        // The outcome is unknown: a seat may be held that this client cannot
                        // check in. As an application would, end the session to release it.
                        self.close_session(&mut session, &mut held).await;
                    }
                }
            }
        }
        if self.options.hold_at_end && held.is_empty() {
            self.hold_one_at_end(&client, &mut session, &mut held).await;
        }
        ClientEnd {
            client: self.id,
            session,
            held: held.into_iter().map(|(seat, _)| seat).collect(),
        }
    }

    /// Closes the session, if there is one, keeping its seats out of the client's hands (the
    /// close releases them).
    async fn close_session(
        &mut self,
        session: &mut Option<Session>,
        held: &mut Vec<(Checkout, Instant)>,
    ) {
        held.drain(..).for_each(|(seat, _)| drop(seat.keep()));
        if let Some(open) = session.take() {
            let id = open.id().to_owned();
            let invoked = self.recorder.now();
            let answer = open.close().await.map_or_else(|e| answer_of(&e), |_| Answer::Done);
            record(&self.recorder, self.id, Some(&id), Call::CloseSession, invoked, answer);
        }
    }

    /// With `hold_at_end`: a session (opened if needed) holding one seat when the run stops.
    async fn hold_one_at_end(
        &mut self,
        client: &Client,
        session: &mut Option<Session>,
        held: &mut Vec<(Checkout, Instant)>,
    ) {
        if session.is_none() {
            *session = self.open(client).await;
        }
        if let Some(open) = &*session
            && let Ok(Some(seat)) = self.checkout(open, false).await
        {
            held.push((seat, Instant::now()));
        }
    }

    async fn open(&mut self, client: &Client) -> Option<Session> {
        let ttl_ms = self.options.ttl.as_millis() as u64;
        let options = SessionOptions {
            user: format!("chaos{}", self.id),
            host: "chaos-host".into(),
            pid: self.id as u32,
            display: String::new(),
            ttl: Some(self.options.ttl),
        };
        let invoked = self.recorder.now();
        match client.open_session(options).await {
            Ok(session) => {
                let answer = Answer::Opened {
                    session: session.id().to_owned(),
                    ttl_ms: session.ttl().as_millis() as u64,
                };
                record(
                    &self.recorder,
                    self.id,
                    Some(session.id()),
                    Call::OpenSession { ttl_ms },
                    invoked,
                    answer,
                );
                Some(session)
            }
            Err(e) => {
                record(
                    &self.recorder,
                    self.id,
                    None,
                    Call::OpenSession { ttl_ms },
                    invoked,
                    answer_of(&e),
                );
                None
            }
        }
    }

    async fn heartbeat(&self, session: &Session) {
        let invoked = self.recorder.now();
        let answer = session.heartbeat().await.map_or_else(|e| answer_of(&e), |_| Answer::Done);
        record(&self.recorder, self.id, Some(session.id()), Call::Heartbeat, invoked, answer);
    }

    async fn checkin(&self, session: &Session, seat: Checkout) {
        let handle = seat.handle();
        let invoked = self.recorder.now();
        let answer = seat.checkin().await.map_or_else(|e| answer_of(&e), |_| Answer::Done);
        record(
            &self.recorder,
            self.id,
            Some(session.id()),
            Call::Checkin { handle },
            invoked,
            answer,
        );
    }

    /// One checkout, recorded: the seat, none (a definite no), or `Err` when the outcome is
    /// unknown.
    /// One checkout of a seat, waiting in the queue or not (recorded); `Err` when the
    /// outcome is unknown.
    async fn checkout(&mut self, session: &Session, wait: bool) -> Result<Option<Checkout>, ()> {
        let feature = self.options.feature.clone();
        let call = Call::Checkout { feature: feature.clone(), count: 1, wait };
        let options = CheckoutOptions { wait, ..CheckoutOptions::default() };
        let invoked = self.recorder.now();
        let asked = session.checkout(&feature, options);
        let (answer, seat) = match tokio::time::timeout(self.options.max_wait, asked).await {
            Ok(Ok(seat)) => (Answer::Granted { handle: seat.handle(), count: 1 }, Some(seat)),
            Ok(Err(e)) => (answer_of(&e), None),
            Err(_) => (Answer::Unknown(format!("gave up after {:?}", self.options.max_wait)), None),
        };
        let unknown = answer.is_unknown();
        record(&self.recorder, self.id, Some(session.id()), call, invoked, answer);
        if unknown { Err(()) } else { Ok(seat) }
    }
}
