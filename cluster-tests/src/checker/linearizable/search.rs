//! The search for a linearization of one feature's operations: Wing & Gong's backtracking
//! search with Lowe's just-in-time linearization and a memo of the configurations already
//! tried (the algorithm Porcupine uses), over the semaphore model of [`super`].
//!
//! The operations' call and return events are kept in one time-ordered doubly linked list.
//! Walking it from the head, the search tries to linearize each operation whose call it
//! meets (the model must accept it, and the configuration it leads to must be new); meeting
//! the return of an operation not yet linearized means the last choice was wrong, and it
//! backtracks. Optional operations (answers that never came, expiries) have no return event:
//! nothing forces them in, so leaving them out is always tried too.
//!
//! A configuration is (the operations linearized, the model state). Two configurations that
//! differ only in optional operations of sessions that have ended lead to the same futures
//! (such an operation can neither be placed later nor change what is held), so those
//! operations count as done in the memo key: without that, every lost answer of an ended
//! session would double the configurations to try.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::history::Millis;

/// What one operation does to the model (see the module documentation of [`super`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A checkout took `count` seats into `slot`: the session was alive and they were free.
    Take { slot: u32, count: u32 },
    /// A checkout was denied while no queue could explain it: `count` seats were not free.
    Full { count: u32 },
    /// A heartbeat was acknowledged: the session was alive.
    Alive,
    /// NOT_FOUND for the session: it had ended.
    Gone,
    /// A checkin was acknowledged: `slot` was held (`None`: a handle never granted), and is
    /// free now.
    Release { slot: Option<u32> },
    /// A checkin was answered NOT_FOUND: `slot` was not held.
    NotHeld { slot: u32 },
    /// A close: the session's seats are free (whatever it was before).
    Close,
    /// The session expired: it was alive, and its seats are free.
    Expire,
}

impl Kind {
    /// Whether the operation only reads the state. Such an operation, once it may be placed,
    /// is placed at once and never tried later: in any order that places it later, moving it
    /// here keeps every operation valid (it changes no state, its condition holds here, and
    /// every operation that must precede it in real time is placed already). So when what
    /// follows it fails, the configuration before it fails too. Without this, the orders of
    /// concurrent heartbeats and denials multiply the configurations of a failing search.
    fn reads_only(self) -> bool {
        matches!(self, Kind::Full { .. } | Kind::Alive | Kind::Gone | Kind::NotHeld { .. })
    }
}

/// One operation of the model, with its real-time window.
#[derive(Clone, Debug)]
pub(super) struct ModelOp {
    pub kind: Kind,
    /// The session it acts on (an index into the partition's sessions).
    pub session: u32,
    pub call: Millis,
    /// `None` for an optional operation: it may take effect at any time after `call`, or never.
    pub ret: Option<Millis>,
    /// The history operation it comes from (none for an expiry).
    pub origin: Option<usize>,
}

/// The model state: the slots held (sorted), the seats they take, the sessions ended.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub(super) struct State {
    pub held: Vec<u32>,
    pub used: u32,
    pub ended: Vec<u64>,
}

/// The problem: operations, the pool size, each slot's (session, seats).
pub(super) struct Problem {
    pub ops: Vec<ModelOp>,
    pub seats: u32,
    pub slots: Vec<(u32, u32)>,
    pub sessions: usize,
}

/// How the search ended.
#[derive(Debug)]
pub(super) enum Found {
    Linearizable,
    /// No linearization: the deepest partial one placed `placed` required operations, then
    /// could not place `stuck` (an index into the operations) from `state`.
    Not {
        placed: usize,
        stuck: usize,
        state: State,
    },
    BoundHit,
}

/// The outcome and what it cost.
pub(super) struct Searched {
    pub found: Found,
    pub steps: u64,
}

fn bit(words: &[u64], i: usize) -> bool {
    words[i / 64] & (1 << (i % 64)) != 0
}

fn set(words: &mut [u64], i: usize, on: bool) {
    if on { words[i / 64] |= 1 << (i % 64) } else { words[i / 64] &= !(1 << (i % 64)) }
}

impl Problem {
    fn alive(&self, state: &State, session: u32) -> bool {
        !bit(&state.ended, session as usize)
    }

    /// The state after `op`, or `None` when the model does not allow it in `state`.
    pub(super) fn step(&self, state: &State, op: &ModelOp) -> Option<State> {
        let alive = self.alive(state, op.session);
        match op.kind {
            Kind::Take { slot, count } => {
                let fits = state.used + count <= self.seats;
                (alive && fits && state.held.binary_search(&slot).is_err()).then(|| {
                    let mut next = state.clone();
                    let at = next.held.binary_search(&slot).unwrap_or_else(|at| at);
                    next.held.insert(at, slot);
                    next.used += count;
                    next
                })
            }
            Kind::Full { count } => (state.used + count > self.seats).then(|| state.clone()),
            Kind::Alive => alive.then(|| state.clone()),
            Kind::Gone => (!alive).then(|| state.clone()),
            Kind::Release { slot } => {
                let at = state.held.binary_search(&slot?).ok()?;
                let mut next = state.clone();
                next.held.remove(at);
                next.used -= self.slots[slot? as usize].1;
                Some(next)
            }
            Kind::NotHeld { slot } => {
                state.held.binary_search(&slot).is_err().then(|| state.clone())
            }
            Kind::Close => Some(self.end(state, op.session)),
            Kind::Expire => alive.then(|| self.end(state, op.session)),
        }
    }

    /// `state` with `session` ended and its seats free.
    fn end(&self, state: &State, session: u32) -> State {
        let mut next = state.clone();
        next.held.retain(|&slot| self.slots[slot as usize].0 != session);
        next.used = next.held.iter().map(|&slot| self.slots[slot as usize].1).sum();
        set(&mut next.ended, session as usize, true);
        next
    }
}

/// The time-ordered event list, doubly linked through arrays; entry `len` is the sentinel.
struct Events {
    /// (operation, is a call) per entry.
    entries: Vec<(usize, bool)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per operation: its call entry and its return entry, if any.
    call_of: Vec<usize>,
    ret_of: Vec<Option<usize>>,
}

impl Events {
    fn new(ops: &[ModelOp]) -> Events {
        // Calls sort before returns at one millisecond: times are rounded down, so two
        // operations that meet at a millisecond may have overlapped.
        let mut timed: Vec<(Millis, bool, usize)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            timed.push((op.call, false, i));
            if let Some(ret) = op.ret {
                timed.push((ret.max(op.call), true, i));
            }
        }
        timed.sort();
        let n = timed.len();
        let mut events = Events {
            entries: timed.iter().map(|&(_, is_ret, op)| (op, !is_ret)).collect(),
            next: (1..=n + 1).map(|i| i % (n + 1)).collect(),
            prev: (0..=n).map(|i| (i + n) % (n + 1)).collect(),
            call_of: vec![0; ops.len()],
            ret_of: vec![None; ops.len()],
        };
        for (entry, &(op, is_call)) in events.entries.iter().enumerate() {
            if is_call { events.call_of[op] = entry } else { events.ret_of[op] = Some(entry) }
        }
        events
    }

    fn head(&self) -> usize {
        self.next[self.entries.len()]
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    /// Takes `op`'s events out of the list (dancing links: `unlift` puts them back).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if let Some(ret) = self.ret_of[op] {
            self.unlink(ret);
        }
    }

    fn unlift(&mut self, op: usize) {
        if let Some(ret) = self.ret_of[op] {
            self.relink(ret);
        }
        self.relink(self.call_of[op]);
    }
}

/// A choice made, to undo when backtracking.
struct Frame {
    op: usize,
    /// Placed as the only choice worth trying (see [`Kind::reads_only`]).
    forced: bool,
    state: State,
    done: Vec<u64>,
}

/// The search's bounds: it gives up (`BoundHit`) past either.
pub(super) struct Bounds {
    pub steps: u64,
    pub time: Duration,
}

/// The memo key: the operations done (linearized, or optional of an ended session) from the
/// first one not done on, and the state. Operations are in call order, so the prefix of done
/// operations, however long, costs one number.
fn memo_key(done: &[u64], state: &State) -> Vec<u64> {
    let first = done.iter().position(|&w| w != u64::MAX).unwrap_or(done.len());
    let last = done.iter().rposition(|&w| w != 0).map_or(first, |l| l + 1).max(first);
    let mut key = Vec::with_capacity(4 + last - first + state.held.len() + state.ended.len());
    key.push(first as u64);
    key.extend_from_slice(&done[first..last]);
    key.push(u64::MAX);
    key.extend(state.held.iter().map(|&s| u64::from(s)));
    key.push(u64::MAX);
    key.extend_from_slice(&state.ended);
    key
}

/// Searches for a linearization of `problem` (see the module documentation).
pub(super) fn search(problem: &Problem, bounds: &Bounds) -> Searched {
    let ops = &problem.ops;
    let words = ops.len().div_ceil(64);
    // Per session, its optional operations: done once the session has ended.
    let mut optional_of = vec![vec![0u64; words]; problem.sessions];
    for (i, op) in ops.iter().enumerate() {
        if op.ret.is_none() {
            set(&mut optional_of[op.session as usize], i, true);
        }
    }
    let mut events = Events::new(ops);
    let sentinel = events.entries.len();
    let mut state = State { ended: vec![0; problem.sessions.div_ceil(64)], ..State::default() };
    let mut done = vec![0u64; words];
    let mut required_left = ops.iter().filter(|op| op.ret.is_some()).count();
    let mut placed = 0usize;
    let mut best: Option<(usize, usize, State)> = None;
    let mut memo: HashSet<Vec<u64>> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let (started, mut steps) = (Instant::now(), 0u64);
    let mut e = events.head();
    while required_left > 0 {
        steps += 1;
        if steps > bounds.steps || (steps % 4096 == 0 && started.elapsed() > bounds.time) {
            return Searched { found: Found::BoundHit, steps };
        }
        let (op, is_call) = if e == sentinel { (usize::MAX, false) } else { events.entries[e] };
        if is_call {
            if let Some(next) = problem.step(&state, &ops[op]) {
                let mut next_done = done.clone();
                set(&mut next_done, op, true);
                let s = ops[op].session as usize;
                if bit(&next.ended, s) && !bit(&state.ended, s) {
                    next_done.iter_mut().zip(&optional_of[s]).for_each(|(d, o)| *d |= o);
                }
                if memo.insert(memo_key(&next_done, &next)) {
                    let prior = std::mem::replace(&mut state, next);
                    let forced = ops[op].kind.reads_only();
                    let done = std::mem::replace(&mut done, next_done);
                    stack.push(Frame { op, forced, state: prior, done });
                    events.lift(op);
                    if ops[op].ret.is_some() {
                        required_left -= 1;
                        placed += 1;
                    }
                    e = events.head();
                    continue;
                }
            }
            e = events.next[e];
            continue;
        }
        // The return of a required operation not placed (or the end of the list): undo.
        if e != sentinel && best.as_ref().is_none_or(|b| placed > b.0) {
            best = Some((placed, op, state.clone()));
        }
        loop {
            let Some(frame) = stack.pop() else {
                let (placed, stuck, state) = best.unwrap_or((0, 0, state));
                return Searched { found: Found::Not { placed, stuck, state }, steps };
            };
            state = frame.state;
            done = frame.done;
            events.unlift(frame.op);
            if ops[frame.op].ret.is_some() {
                required_left += 1;
                placed -= 1;
            }
            e = events.next[events.call_of[frame.op]];
            if !frame.forced {
                break;
            }
        }
    }
    Searched { found: Found::Linearizable, steps }
}
