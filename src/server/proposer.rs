//! The leader's write path: batching proposals, and sharing leadership confirmations.
//!
//! Every write a leader answers costs one Raft entry: an append and an fsync here, an
//! AppendEntries to each follower and an fsync there, an apply. Done one request at a time,
//! that fixed cost (thread hand-offs, system calls, context switches) is what limits a loaded
//! cluster, not the disk. So the leader proposes in batches:
//!
//! - [`Proposer`]: requests queue up; whenever fewer than [`MAX_IN_FLIGHT`] entries are on
//!   their way, what is queued (up to [`MAX_BATCH`]) goes into one [`LogEntry`]. An idle
//!   leader proposes a lone request at once (no added delay); a busy one gathers the requests
//!   that arrived while its earlier entries were replicated, and the task that wrote an entry
//!   goes straight on with the next batch. Each command is applied
//!   on its own and answers its own caller; the durability rule is unchanged (an answer is
//!   sent only after the entry is committed, that is on a majority's disk, and applied).
//! - [`Confirmer`]: a linearizable read or a lease renewal needs a quorum to confirm that this
//!   node still leads, after the request arrived. Callers that arrive while a confirmation
//!   round is under way wait for the next round, which starts after them, and share it: one
//!   round of heartbeats answers them all.

use std::sync::{Arc, Mutex};

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::oneshot;
use tonic::Status;

use crate::engine::{Applied, Command};
use crate::raft::{LogEntry, Raft};

/// Most commands in one entry. Bounds an entry's size (and an AppendEntries message's) and
/// the work one apply does under the replica's write lock.
pub const MAX_BATCH: usize = 512;

/// Entries proposed and not yet applied, at most. One would leave the disk and the network
/// idle while an entry is applied and answered; a few keep them busy while requests gather.
pub const MAX_IN_FLIGHT: usize = 2;

type Reply = oneshot::Sender<Result<(Applied, u64), Status>>;

/// The leader's batching proposer.
pub struct Proposer {
    raft: Raft,
    state: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Requests waiting for an entry.
    pending: Vec<(Command, Reply)>,
    /// Entries proposed and not yet answered.
    in_flight: usize,
}

impl Proposer {
    pub fn new(raft: Raft) -> Arc<Proposer> {
        Arc::new(Proposer { raft, state: Mutex::new(Queue::default()) })
    }

    /// Proposes `command` (stamped by this node's clock with the rest of its batch) and
    /// answers once it is applied here: what the engine answered and the entry's log index.
    /// A node that does not lead answers UNAVAILABLE naming the leader; a stopped Raft or a
    /// refused proposal is UNAVAILABLE too (the outcome may be unknown: the caller retries
    /// with the same request id).
    pub async fn propose(self: &Arc<Self>, command: Command) -> Result<(Applied, u64), Status> {
        let (reply, answer) = oneshot::channel();
        let batch = {
            let mut state =
                self.state.lock().map_err(|_| Status::internal("proposal queue poisoned"))?;
            state.pending.push((command, reply));
            if state.in_flight < MAX_IN_FLIGHT {
                state.in_flight += 1;
                Some(state.take_batch())
            } else {
                None
            }
        };
        // The entry is written by a task of its own, never by this future: a caller that goes
        // away (its client cancelled) must not take the other callers' answers with it.
        if let Some(batch) = batch {
            tokio::spawn(self.clone().write_batches(batch));
        }
        answer
            .await
            .map_err(|_| Status::unavailable("the proposal was dropped: outcome unknown"))?
    }

    /// Writes `batch`, answers its callers, and goes on with what queued up meanwhile; gives
    /// its slot back when nothing is left.
    async fn write_batches(self: Arc<Self>, mut batch: Vec<(Command, Reply)>) {
        loop {
            let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
            match self.raft.client_write(LogEntry::stamped_now(commands)).await {
                Ok(written) => {
                    let index = written.log_id.index;
                    let mut answers = written.data.into_iter();
                    for reply in replies {
                        // An entry answers each of its commands; a missing answer (never
                        // expected) drops the reply, which its caller sees as UNAVAILABLE.
                        if let Some(applied) = answers.next() {
                            let _ = reply.send(Ok((applied, index)));
                        }
                    }
                }
                Err(e) => {
                    let status = write_refused(e);
                    for reply in replies {
                        let _ = reply.send(Err(status.clone()));
                    }
                }
            }
            let Ok(mut state) = self.state.lock() else { return };
            if state.pending.is_empty() {
                state.in_flight -= 1;
                return;
            }
            batch = state.take_batch();
        }
    }
}

impl Queue {
    /// Up to [`MAX_BATCH`] of the oldest pending requests.
    fn take_batch(&mut self) -> Vec<(Command, Reply)> {
        if self.pending.len() <= MAX_BATCH {
            std::mem::take(&mut self.pending)
        } else {
            self.pending.drain(..MAX_BATCH).collect()
        }
    }
}

/// The status for a proposal openraft refused.
fn write_refused(error: RaftError<u64, ClientWriteError<u64, openraft::BasicNode>>) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            crate::server::peer::not_leader(forward.leader_id, None)
        }
        e => Status::unavailable(format!("propose: {e}")),
    }
}

type Waiter = oneshot::Sender<Result<u64, Status>>;

/// Shared leadership confirmations (the leader's read index).
pub struct Confirmer {
    raft: Raft,
    state: Mutex<Rounds>,
}

#[derive(Default)]
struct Rounds {
    /// Whether a task is running rounds.
    running: bool,
    /// Callers waiting for a round that has not started yet.
    waiting: Vec<Waiter>,
}

impl Confirmer {
    pub fn new(raft: Raft) -> Arc<Confirmer> {
        Arc::new(Confirmer { raft, state: Mutex::new(Rounds::default()) })
    }

    /// Confirms with a quorum, in a round that starts after this call, that this node leads;
    /// answers the index of the last committed entry as of that round (the read index). A
    /// non-leader answers UNAVAILABLE with the leader's id.
    pub async fn read_index(self: &Arc<Self>) -> Result<u64, Status> {
        let (waiter, answer) = oneshot::channel();
        let start = {
            let mut state =
                self.state.lock().map_err(|_| Status::internal("confirmation state poisoned"))?;
            state.waiting.push(waiter);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(self.clone().run_rounds());
        }
        answer.await.map_err(|_| Status::unavailable("leadership confirmation dropped"))?
    }

    /// Runs rounds while callers wait: each round answers those that arrived before it began.
    async fn run_rounds(self: Arc<Self>) {
        loop {
            let waiting = match self.state.lock() {
                Ok(mut state) if state.waiting.is_empty() => {
                    state.running = false;
                    return;
                }
                Ok(mut state) => std::mem::take(&mut state.waiting),
                // Dropping the waiters answers them UNAVAILABLE.
                Err(_) => return,
            };
            let result = crate::server::peer::read_index(&self.raft).await;
            for waiter in waiting {
                let _ = waiter.send(result.clone());
            }
        }
    }
}
