//! The leader's write path: batching proposals, and sharing leadership confirmations.
//!
//! Every write a leader answers costs one Raft entry: an append and an fsync here, an
//! AppendEntries to each follower and an fsync there, an apply. Done one request at a time,
//! that fixed cost (thread hand-offs, system calls, context switches) is what limits a loaded
//! cluster, not the disk. So the leader proposes in batches:
//!
//! - [`Proposer`]: requests queue up, and what is queued (up to [`MAX_BATCH`] commands and
//!   [`MAX_ENTRY_BYTES`] of them encoded) goes into one [`LogEntry`] at two moments. When no
//!   entry is on its way, at once: an idle leader adds no delay, and a node without followers proposes one entry after the other. Otherwise when a
//!   follower answers an AppendEntries ([`ReplicationSignal`]): openraft 0.9 keeps one
//!   AppendEntries in flight per follower and, on its answer, sends everything appended
//!   since, so an entry proposed then leaves at once with every request that gathered during
//!   the round trip. An entry proposed earlier would wait in the log for that same moment
//!   with fewer requests, and the ones arriving meanwhile would wait a round more
//!   (docs/BENCHMARKS.md, "Proposal batching on the leader").
//!   At most [`MAX_IN_FLIGHT`] entries are proposed and not yet applied. Each command is
//!   applied on its own and answers its own caller; the durability rule is unchanged (an
//!   answer is sent only after the entry is committed, that is on a majority's disk, and
//!   applied).
//! - [`Confirmer`]: a linearizable read or a lease renewal needs a quorum to confirm that this
//!   node still leads, after the request arrived. Callers that arrive while a confirmation
//!   round is under way wait for the next round, which starts after them, and share it: one
//!   round of heartbeats answers them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use openraft::BasicNode;
use openraft::error::ClientWriteError;
use openraft::raft::ClientWriteResponse;
use tokio::sync::oneshot;
use tonic::Status;

use qlm_engine::{Applied, Command};
use qlm_license::Timestamp;
use qlm_raft::network::payload_len;
use qlm_raft::{LogEntry, MAX_ENTRY_BYTES, Raft, ReplicationSignal, TypeConfig};

use crate::clock::{DEFAULT_MAX_CLOCK_OFFSET, LicenseClock};

/// Most commands in one entry. Bounds the work one apply does under the replica's write lock;
/// an entry's bytes are bounded by [`MAX_ENTRY_BYTES`].
pub const MAX_BATCH: usize = 512;

/// Entries proposed and not yet applied, at most: one being applied, one on its way to the
/// followers, one more gathered on a follower's answer while the other follower still works.
pub const MAX_IN_FLIGHT: usize = 3;

type Reply = oneshot::Sender<Result<(Applied, u64), Status>>;
type Batch = Vec<Queued>;

/// A request waiting for an entry.
struct Queued {
    command: Command,
    /// The command's encoded size, counted toward [`MAX_ENTRY_BYTES`].
    bytes: usize,
    reply: Reply,
}
type Written = Result<ClientWriteResponse<TypeConfig>, Status>;
/// An entry handed to Raft: where its outcome will come, or why it could not be handed over.
type Submitted = Result<oneshot::Receiver<WriteResult>, Status>;
/// What openraft's responder for a client write sends (tokio's oneshot on tokio's runtime).
type WriteResult = Result<ClientWriteResponse<TypeConfig>, ClientWriteError<u64, BasicNode>>;

/// The leader's batching proposer.
pub struct Proposer {
    raft: Raft,
    /// What stamps the entries, and whether this node's clock lets it lead.
    clock: Arc<LicenseClock>,
    state: Mutex<Queue>,
    /// Entries proposed on a follower's answer (the rest went at once).
    on_answer: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// Requests waiting for an entry.
    pending: Batch,
    /// Entries proposed and not yet answered.
    in_flight: usize,
}

impl Proposer {
    pub fn new(raft: Raft) -> Arc<Proposer> {
        Proposer::with_clock(raft, Arc::new(LicenseClock::new(DEFAULT_MAX_CLOCK_OFFSET)))
    }

    /// A proposer whose entries `clock` stamps.
    pub fn with_clock(raft: Raft, clock: Arc<LicenseClock>) -> Arc<Proposer> {
        Arc::new(Proposer {
            raft,
            clock,
            state: Mutex::new(Queue::default()),
            on_answer: AtomicU64::new(0),
        })
    }

    /// How many entries this proposer proposed on a follower's answer.
    pub fn entries_on_answer(&self) -> u64 {
        self.on_answer.load(Ordering::Relaxed)
    }

    /// Proposes what is queued each time `signal` fires (a follower answered an
    /// AppendEntries). Holds the proposer weakly: a dropped node stops listening.
    pub fn listen(self: &Arc<Self>, signal: &ReplicationSignal) {
        let proposer = Arc::downgrade(self);
        signal.listen(move || {
            if let Some(proposer) = proposer.upgrade() {
                proposer.on_replicated();
            }
        });
    }

    /// Proposes `command` (stamped by this node's clock with the rest of its batch) and
    /// answers once it is applied here: what the engine answered and the entry's log index.
    /// A node that does not lead answers UNAVAILABLE naming the leader; a stopped Raft or a
    /// refused proposal is UNAVAILABLE too (the outcome may be unknown: the caller retries
    /// with the same request id). A command that alone would make an entry larger than
    /// [`MAX_ENTRY_BYTES`] is refused, INVALID_ARGUMENT, before anything is proposed.
    pub async fn propose(self: &Arc<Self>, command: Command) -> Result<(Applied, u64), Status> {
        self.clock.lets_lead()?;
        let bytes = command_bytes(&command)?;
        let (reply, answer) = oneshot::channel();
        let batch = {
            let mut state =
                self.state.lock().map_err(|_| Status::internal("proposal queue poisoned"))?;
            state.pending.push(Queued { command, bytes, reply });
            // With an entry on its way, the next follower answer proposes this one.
            (state.in_flight == 0).then(|| state.start_batch())
        };
        // The entry is handed to Raft here, and waited for by a task of its own, never by this
        // future: a caller that goes away (its client cancelled) must not take the other
        // callers' answers with it.
        if let Some(batch) = batch {
            let (submitted, replies) = self.submit(batch);
            tokio::spawn(self.clone().complete(submitted, replies));
        }
        answer
            .await
            .map_err(|_| Status::unavailable("the proposal was dropped: outcome unknown"))?
    }

    /// A follower answered an AppendEntries: what is queued goes into an entry now, handed to
    /// Raft before this returns, so that it is in the log when openraft looks for what to
    /// send next on that follower's stream.
    fn on_replicated(self: &Arc<Self>) {
        let batch = match self.state.lock() {
            Ok(mut state) if !state.pending.is_empty() && state.in_flight < MAX_IN_FLIGHT => {
                state.start_batch()
            }
            _ => return,
        };
        self.on_answer.fetch_add(1, Ordering::Relaxed);
        let (submitted, replies) = self.submit(batch);
        tokio::spawn(self.clone().complete(submitted, replies));
    }

    /// Hands `batch` to Raft as one entry, without waiting: `client_write_ff` only queues it
    /// for Raft's core, ready at its first poll unless Raft has stopped. What to wait on for
    /// the entry's outcome, and the callers to answer.
    fn submit(&self, batch: Batch) -> (Submitted, Vec<Reply>) {
        let (commands, replies): (Vec<Command>, Vec<Reply>) =
            batch.into_iter().map(|queued| (queued.command, queued.reply)).unzip();
        let submitted = match self.raft.client_write_ff(self.stamped(commands)).now_or_never() {
            Some(Ok(receiver)) => Ok(receiver),
            Some(Err(fatal)) => Err(Status::unavailable(format!("propose: {fatal}"))),
            None => Err(Status::unavailable("propose: Raft is stopping")),
        };
        (submitted, replies)
    }

    /// An entry of `commands` with the license clock's stamp.
    fn stamped(&self, commands: Vec<Command>) -> LogEntry {
        LogEntry { commands, stamp: Timestamp(self.clock.stamp_ms()) }
    }

    /// Waits for a submitted entry, answers its callers, and goes on with what queued up
    /// meanwhile while no other entry is on its way; gives its slot back otherwise.
    async fn complete(self: Arc<Self>, mut submitted: Submitted, mut replies: Vec<Reply>) {
        loop {
            let written = match submitted {
                Ok(receiver) => match receiver.await {
                    Ok(result) => result.map_err(write_refused),
                    Err(_) => {
                        Err(Status::unavailable("Raft dropped the proposal: outcome unknown"))
                    }
                },
                Err(status) => Err(status),
            };
            answer(written, replies);
            let Some(batch) = self.next_batch() else { return };
            (submitted, replies) = self.submit(batch);
        }
    }

    /// An entry was answered: the next batch to write in its place when it was the last one
    /// on its way and requests are queued (no follower answer would come to propose them: a
    /// cluster of one, or followers that stopped answering); otherwise its slot is freed.
    fn next_batch(&self) -> Option<Batch> {
        let Ok(mut state) = self.state.lock() else { return None };
        if state.in_flight == 1 && !state.pending.is_empty() {
            return Some(state.take_batch());
        }
        state.in_flight -= 1;
        None
    }
}

/// The encoded size of `command`, or why it cannot be proposed: alone, it would make an
/// entry larger than [`MAX_ENTRY_BYTES`], which could not be replicated.
fn command_bytes(command: &Command) -> Result<usize, Status> {
    let bytes = payload_len(command)
        .map_err(|e| Status::internal(format!("the command cannot be encoded: {e}")))?;
    if bytes > MAX_ENTRY_BYTES {
        return Err(Status::invalid_argument(format!(
            "the command takes {bytes} bytes encoded; one log entry holds at most \
             {MAX_ENTRY_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Answers each caller of an entry with its command's result, or all of them with the error.
fn answer(written: Written, replies: Vec<Reply>) {
    match written {
        Ok(written) => {
            let index = written.log_id.index;
            let mut answers = written.data.into_iter();
            for reply in replies {
                // An entry answers each of its commands; a missing answer (never expected)
                // drops the reply, which its caller sees as UNAVAILABLE.
                if let Some(applied) = answers.next() {
                    let _ = reply.send(Ok((applied, index)));
                }
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}

impl Queue {
    /// The oldest pending requests, up to [`MAX_BATCH`] of them and [`MAX_ENTRY_BYTES`] of
    /// their commands; one at least (none is larger alone: see [`command_bytes`]).
    fn take_batch(&mut self) -> Batch {
        let mut bytes = 0;
        let count = self
            .pending
            .iter()
            .take(MAX_BATCH)
            .take_while(|queued| {
                bytes += queued.bytes;
                bytes <= MAX_ENTRY_BYTES
            })
            .count()
            .clamp(1, self.pending.len().max(1));
        if count >= self.pending.len() {
            std::mem::take(&mut self.pending)
        } else {
            self.pending.drain(..count).collect()
        }
    }

    /// A new entry's batch: takes a slot.
    fn start_batch(&mut self) -> Batch {
        self.in_flight += 1;
        self.take_batch()
    }
}

/// The status for a proposal openraft refused.
fn write_refused(error: ClientWriteError<u64, BasicNode>) -> Status {
    match error {
        ClientWriteError::ForwardToLeader(forward) => {
            crate::peer::not_leader(forward.leader_id, None)
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
            let result = crate::peer::read_index(&self.raft).await;
            for waiter in waiting {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue of `commands`, each with its encoded size, as `propose` queues them.
    fn queue(commands: Vec<Command>) -> Queue {
        let pending = commands
            .into_iter()
            .map(|command| {
                let bytes = command_bytes(&command).expect("a command that fits");
                Queued { command, bytes, reply: oneshot::channel().0 }
            })
            .collect();
        Queue { pending, in_flight: 0 }
    }

    fn close(session_id_bytes: usize) -> Command {
        Command::CloseSession { session_id: "s".repeat(session_id_bytes) }
    }

    #[test]
    fn a_batch_stops_before_its_commands_exceed_the_largest_entry() {
        let third = MAX_ENTRY_BYTES / 3;
        let mut queue = queue((0..5).map(|_| close(third)).collect());
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            (!queue.pending.is_empty()).then(|| {
                let batch = queue.take_batch();
                assert!(batch.iter().map(|q| q.bytes).sum::<usize>() <= MAX_ENTRY_BYTES);
                batch.len()
            })
        })
        .collect();
        assert_eq!(sizes, vec![2, 2, 1]);
    }

    #[test]
    fn small_commands_are_batched_up_to_the_count() {
        let mut queue = queue((0..MAX_BATCH + 3).map(|_| Command::Tick).collect());
        assert_eq!(queue.take_batch().len(), MAX_BATCH);
        assert_eq!(queue.take_batch().len(), 3);
        assert!(queue.pending.is_empty());
    }

    #[test]
    fn a_command_larger_than_an_entry_is_refused_with_its_size_and_the_limit() {
        let fits = close(MAX_ENTRY_BYTES - 16);
        assert!(command_bytes(&fits).is_ok());
        let status = command_bytes(&close(MAX_ENTRY_BYTES)).expect_err("too large");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let too_large = payload_len(&close(MAX_ENTRY_BYTES)).expect("a size");
        let message = status.message();
        assert!(message.contains(&too_large.to_string()), "{message}");
        assert!(message.contains(&MAX_ENTRY_BYTES.to_string()), "{message}");
    }
}
