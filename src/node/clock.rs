//! The license clock: the time a leader stamps into the log, and whether this node's wall
//! clock may be trusted to stamp it.
//!
//! Why: applying an entry uses its stamp, never a local clock, and the engine keeps the
//! largest stamp it has applied, so that license time never goes back on any replica. The
//! price is that one stamp from a clock that ran ahead moves every replica's license time
//! ahead for good: pools expire early, lingers and borrows overrun, for everyone. No single
//! node's clock may therefore decide the license time alone. Two rules see to it:
//!
//! 1. **Offsets.** Each node measures its wall clock's offset from each peer's, as NTP does:
//!    a peer's `Hello` answer carries its wall clock, and the offset is that less the middle
//!    of the call (off by at most half the round trip, which is given in the node's favour).
//!    A node whose clock is further than `--max-clock-offset-ms` from a majority of the voters
//!    is *out of bounds* (each node counts itself as agreeing with itself, so one bad clock
//!    among three is out of bounds on its own node only). An out-of-bounds node does not
//!    stand for election; one that leads stops proposing, answering linearizable reads and
//!    heartbeating, so the others elect a leader within an election timeout.
//! 2. **Pace.** Between two rounds of measurements, the stamps a leader writes advance no
//!    faster than its monotonic clock from the last round that found it in bounds: a wall
//!    clock stepped forward moves license time at the real pace until the next round finds
//!    it out, and one stepped back holds license time (it never goes back) until it catches
//!    up.
//!
//! Nothing here runs inside `apply`: the stamp is chosen when an entry is proposed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qlm_raft::NodeId;

/// The bound when none is configured (qlmd's `--max-clock-offset-ms` default).
pub const DEFAULT_MAX_CLOCK_OFFSET: Duration = Duration::from_secs(1);

/// A measurement older than this says nothing about the clock now.
pub const MEASUREMENT_TTL: Duration = Duration::from_secs(10);

/// One peer's clock as this node last measured it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The peer's wall clock less this node's, in microseconds (positive: the peer is ahead).
    pub offset_us: i64,
    /// The call's round trip, in microseconds: the offset is off by at most half of it.
    pub rtt_us: u64,
    /// When the answer came (this node's monotonic clock).
    pub at: Instant,
    /// The peer answered without its clock (a release before the license clock): it counts as
    /// agreeing, so that a cluster part-way through a rolling upgrade still elects leaders.
    pub clockless: bool,
}

impl Measurement {
    /// The offset's size with the measurement's doubt given in the node's favour.
    pub fn least_offset_us(&self) -> u64 {
        self.offset_us.unsigned_abs().saturating_sub(self.rtt_us / 2)
    }
}

/// What the measurements say of this node's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Within the bound of a majority of the voters (or too few measured to say otherwise).
    InBounds {
        /// Voters known to agree, this node included.
        agreeing: usize,
    },
    /// Further than the bound from a majority of the voters.
    OutOfBounds {
        /// Voters measured further than the bound.
        disagreeing: usize,
        /// The offset, in microseconds, by which the median of those voters is ahead of this
        /// node (negative: this node is ahead of them).
        typical_offset_us: i64,
    },
}

/// The license clock of one node: its peers' offsets, the verdict on its own clock, and the
/// stamps it writes while it leads.
pub struct LicenseClock {
    max_offset_us: u64,
    measurements: Mutex<BTreeMap<NodeId, Measurement>>,
    out_of_bounds: AtomicBool,
    /// Whether a round since this process started found a majority of the voters agreeing
    /// with this clock.
    vouched: AtomicBool,
    stamps: Mutex<Stamps>,
}

/// The pace rule's state: the last wall reading a round found in bounds, and the last stamp.
struct Stamps {
    anchor_ms: u64,
    anchor_at: Instant,
    last_ms: u64,
}

impl LicenseClock {
    /// A clock bounded by `max_offset` from the majority's. Until the first round, the pace
    /// rule runs from this node's wall clock now.
    pub fn new(max_offset: Duration) -> LicenseClock {
        LicenseClock {
            max_offset_us: u64::try_from(max_offset.as_micros()).unwrap_or(u64::MAX),
            measurements: Mutex::new(BTreeMap::new()),
            out_of_bounds: AtomicBool::new(false),
            vouched: AtomicBool::new(false),
            stamps: Mutex::new(Stamps {
                anchor_ms: wall_ms(),
                anchor_at: Instant::now(),
                last_ms: 0,
            }),
        }
    }

    /// The bound, for messages.
    pub fn max_offset(&self) -> Duration {
        Duration::from_micros(self.max_offset_us)
    }

    /// Records a `Hello` to `peer`: this node's wall clock when it was sent, the monotonic
    /// instants of sending and answering, and the peer's wall clock in its answer (0: a release
    /// that does not say; recorded as [`Measurement::clockless`]).
    pub fn record(
        &self,
        peer: NodeId,
        sent_wall_us: u64,
        sent: Instant,
        answered: Instant,
        peer_us: u64,
    ) {
        let rtt = answered.saturating_duration_since(sent);
        let rtt_us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let middle = i128::from(sent_wall_us) + i128::from(rtt_us / 2);
        let offset = (i128::from(peer_us) - middle).clamp(i64::MIN.into(), i64::MAX.into());
        let clockless = peer_us == 0;
        let offset_us = if clockless { 0 } else { offset as i64 };
        let measurement = Measurement { offset_us, rtt_us, at: answered, clockless };
        if let Ok(mut all) = self.measurements.lock() {
            all.insert(peer, measurement);
        }
    }

    /// Each peer's last measurement.
    pub fn measurements(&self) -> BTreeMap<NodeId, Measurement> {
        self.measurements.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Judges this node's clock against `voters` from the measurements taken at or after
    /// `since` (and no older than [`MEASUREMENT_TTL`] at `now`).
    pub fn judge(
        &self,
        own: NodeId,
        voters: &BTreeSet<NodeId>,
        since: Instant,
        now: Instant,
    ) -> Judgement {
        let all = self.measurements();
        let fresh = |m: &&Measurement| {
            m.at >= since && now.saturating_duration_since(m.at) <= MEASUREMENT_TTL
        };
        let mut agreeing = usize::from(voters.contains(&own));
        let mut off: Vec<i64> = Vec::new();
        let peers = voters.iter().filter(|id| **id != own).filter_map(|id| all.get(id));
        for m in peers.filter(fresh) {
            if m.least_offset_us() > self.max_offset_us {
                off.push(m.offset_us);
            } else {
                agreeing += 1;
            }
        }
        let majority = voters.len() / 2 + 1;
        if off.len() >= majority {
            off.sort_unstable();
            Judgement::OutOfBounds { disagreeing: off.len(), typical_offset_us: off[off.len() / 2] }
        } else {
            Judgement::InBounds { agreeing }
        }
    }

    /// Takes in a round's judgement, made from measurements that began at `round_wall_ms` /
    /// `round_at`: in bounds with a majority agreeing, the pace rule runs from that reading.
    /// Returns whether the out-of-bounds state changed.
    pub fn conclude_round(
        &self,
        judgement: &Judgement,
        voters: usize,
        round_wall_ms: u64,
        round_at: Instant,
    ) -> bool {
        let out = matches!(judgement, Judgement::OutOfBounds { .. });
        let vouched =
            matches!(judgement, Judgement::InBounds { agreeing } if *agreeing > voters / 2);
        if vouched {
            self.vouched.store(true, Ordering::Release);
        }
        if vouched
            && let Ok(mut stamps) = self.stamps.lock()
            && round_at >= stamps.anchor_at
        {
            stamps.anchor_ms = round_wall_ms;
            stamps.anchor_at = round_at;
        }
        self.out_of_bounds.swap(out, Ordering::AcqRel) != out
    }

    /// Ok while this node's clock lets it lead; else UNAVAILABLE, which clients read as "ask
    /// another node" (the others elect a leader within an election timeout).
    pub fn lets_lead(&self) -> Result<(), tonic::Status> {
        if !self.is_out_of_bounds() {
            return Ok(());
        }
        Err(tonic::Status::unavailable(format!(
            "this node's clock is further than {:?} from a majority of the voters': it does not \
             lead (another node is being elected; retry)",
            self.max_offset()
        )))
    }

    /// Whether this node may stand for election: a round since it started found a majority of
    /// the voters (itself included) within the bound of its clock, and the last round did not
    /// find it out of bounds. Until a round has vouched for it, it may not: a node started with
    /// a wrong clock must not win an election before it has measured anything. Afterwards,
    /// losing sight of its peers does not stop it standing (a follower cut off from its leader
    /// must become a candidate, and so stop naming a leader it cannot reach); only a round that
    /// finds its clock out of bounds does.
    pub fn may_stand(&self) -> bool {
        self.vouched.load(Ordering::Acquire) && !self.is_out_of_bounds()
    }

    /// Whether the last round found this node's clock out of bounds.
    pub fn is_out_of_bounds(&self) -> bool {
        self.out_of_bounds.load(Ordering::Acquire)
    }

    /// The stamp for an entry proposed now, in milliseconds since the Unix epoch: the wall
    /// clock, held to the pace rule, never below a stamp given before.
    pub fn stamp_ms(&self) -> u64 {
        self.stamp_at(wall_ms(), Instant::now())
    }

    fn stamp_at(&self, wall: u64, now: Instant) -> u64 {
        let Ok(mut stamps) = self.stamps.lock() else { return wall };
        let paced = now.saturating_duration_since(stamps.anchor_at);
        let limit =
            stamps.anchor_ms.saturating_add(u64::try_from(paced.as_millis()).unwrap_or(u64::MAX));
        let stamp = wall.min(limit).max(stamps.last_ms);
        stamps.last_ms = stamp;
        stamp
    }
}

/// This machine's wall clock, in milliseconds since the Unix epoch (0 before 1970: a broken
/// clock, which the engine's own time then outweighs).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The same in microseconds.
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

mod rounds;
#[cfg(test)]
mod tests;

pub use rounds::ROUND_EVERY;
