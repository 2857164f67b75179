//! Session leases on the leader, as etcd keeps leases: heartbeats never enter the log.
//!
//! Only the leader keeps deadlines, in memory: a heartbeat moves a session's deadline to
//! `now + ttl`; when a deadline passes, the leader proposes `ExpireSessions` (the expiry itself
//! is a log entry, so every replica releases the same seats at the same point of the log).
//! A new leader knows no heartbeat history, so it starts every live session's deadline afresh
//! at `now + ttl` ([`Leases::reset`]): an election never expires a live client, and expiry can
//! be late by one failover, never early. The price (etcd issue 9395): a cluster that changes
//! leader more often than once per TTL postpones every expiry.
//!
//! Time here is a monotonic clock in milliseconds (the leader's own; never compared across
//! nodes), so the type is plain and tests drive it directly.

use std::collections::{BTreeSet, HashMap};

use qlm_engine::Name;

/// Milliseconds of the leader's monotonic clock.
pub type MonotonicMillis = u64;

/// Deadlines of the live sessions, by session and by due time.
#[derive(Debug, Default)]
pub struct Leases {
    /// Each session's deadline and TTL.
    by_session: HashMap<Name, (MonotonicMillis, u64)>,
    /// The same deadlines, ordered, so the due ones are found without a scan.
    by_deadline: BTreeSet<(MonotonicMillis, Name)>,
}

/// A heartbeat for a session the leader does not know (closed, expired, or never opened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session `{0}` has no lease (closed, expired or never opened)")]
pub struct NoLease(pub String);

impl Leases {
    pub fn new() -> Leases {
        Leases::default()
    }

    /// A new leader's start: every live session (with its effective TTL) gets `now + ttl`.
    pub fn reset(&mut self, sessions: impl IntoIterator<Item = (Name, u64)>, now: MonotonicMillis) {
        self.by_session.clear();
        self.by_deadline.clear();
        for (session, ttl_ms) in sessions {
            self.track(session, ttl_ms, now);
        }
    }

    /// Starts (or restarts) a session's lease: deadline `now + ttl_ms`.
    pub fn track(&mut self, session: Name, ttl_ms: u64, now: MonotonicMillis) {
        let deadline = now.saturating_add(ttl_ms);
        if let Some((old, _)) = self.by_session.insert(session.clone(), (deadline, ttl_ms)) {
            self.by_deadline.remove(&(old, session.clone()));
        }
        self.by_deadline.insert((deadline, session));
    }

    /// A heartbeat: the session's deadline moves to `now + ttl`. Returns the new deadline.
    pub fn renew(
        &mut self,
        session: &str,
        now: MonotonicMillis,
    ) -> Result<MonotonicMillis, NoLease> {
        let Some((name, &(_, ttl_ms))) = self.by_session.get_key_value(session) else {
            return Err(NoLease(session.to_owned()));
        };
        let name = name.clone();
        self.track(name, ttl_ms, now);
        Ok(now.saturating_add(ttl_ms))
    }

    /// Changes a session's TTL (a TIMEOUT of a feature it now holds); the deadline is not
    /// moved later than `now + ttl_ms`.
    pub fn set_ttl(&mut self, session: &str, ttl_ms: u64, now: MonotonicMillis) {
        let Some((name, &(old, _))) = self.by_session.get_key_value(session) else { return };
        let name = name.clone();
        let deadline = old.min(now.saturating_add(ttl_ms));
        self.by_deadline.remove(&(old, name.clone()));
        self.by_session.insert(name.clone(), (deadline, ttl_ms));
        self.by_deadline.insert((deadline, name));
    }

    /// Gives a lease (`now + ttl`) to each of `live` that has none; returns how many got one.
    /// The leader's safety net: a live session without a lease would never expire.
    pub fn adopt_missing<'a>(
        &mut self,
        live: impl IntoIterator<Item = (&'a Name, u64)>,
        now: MonotonicMillis,
    ) -> usize {
        let mut adopted = 0;
        for (session, ttl_ms) in live {
            if !self.by_session.contains_key(session.as_ref()) {
                self.track(session.clone(), ttl_ms, now);
                adopted += 1;
            }
        }
        adopted
    }

    /// Forgets a session (closed or expired in the log).
    pub fn forget(&mut self, session: &str) {
        if let Some((name, (deadline, _))) = self.by_session.remove_entry(session) {
            self.by_deadline.remove(&(deadline, name));
        }
    }

    /// Sessions whose deadline has passed at `now`, earliest first, at most `limit`. They stay
    /// tracked until the `ExpireSessions` entry is applied and [`Leases::forget`] is called, so
    /// a heartbeat that arrives meanwhile still saves the session if the proposal fails.
    pub fn due(&self, now: MonotonicMillis, limit: usize) -> Vec<Name> {
        self.by_deadline
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .take(limit)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// The earliest deadline, to sleep until.
    pub fn next_deadline(&self) -> Option<MonotonicMillis> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    /// Sessions with a lease.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from(s)
    }

    #[test]
    fn a_heartbeat_moves_the_deadline_and_silence_makes_the_session_due() {
        let mut leases = Leases::new();
        leases.track(name("a"), 30_000, 0);
        leases.track(name("b"), 30_000, 0);
        assert_eq!(leases.renew("a", 20_000), Ok(50_000));
        assert!(leases.due(29_999, 10).is_empty());
        assert_eq!(leases.due(30_000, 10), [name("b")]);
        assert_eq!(leases.due(50_000, 10), [name("b"), name("a")]);
        assert_eq!(leases.next_deadline(), Some(30_000));
    }

    #[test]
    fn a_new_leader_gives_every_session_a_full_ttl() {
        let mut leases = Leases::new();
        leases.track(name("a"), 10_000, 0);
        // The old leader would have expired `a` at 10 s; the new one starts at 9 s.
        leases.reset([(name("a"), 10_000), (name("b"), 5_000)], 9_000);
        assert!(leases.due(18_999, 10).iter().all(|s| &**s != "a"));
        assert_eq!(leases.due(19_000, 10), [name("b"), name("a")]);
    }

    #[test]
    fn unknown_sessions_have_no_lease_and_forgotten_ones_are_never_due() {
        let mut leases = Leases::new();
        assert_eq!(leases.renew("ghost", 0), Err(NoLease("ghost".into())));
        leases.track(name("a"), 1_000, 0);
        leases.forget("a");
        assert!(leases.due(u64::MAX, 10).is_empty());
        assert!(leases.is_empty());
    }

    #[test]
    fn a_shorter_ttl_brings_the_deadline_forward_never_back() {
        let mut leases = Leases::new();
        leases.track(name("a"), 60_000, 0);
        leases.set_ttl("a", 10_000, 5_000);
        assert_eq!(leases.due(15_000, 10), [name("a")]);
        leases.set_ttl("a", 120_000, 5_000);
        assert_eq!(leases.next_deadline(), Some(15_000));
        assert_eq!(leases.renew("a", 20_000), Ok(140_000));
    }

    #[test]
    fn live_sessions_without_a_lease_are_adopted_and_the_others_keep_their_deadline() {
        let mut leases = Leases::new();
        leases.track(name("a"), 1_000, 0);
        let live = [(name("a"), 1_000), (name("b"), 2_000)];
        assert_eq!(leases.adopt_missing(live.iter().map(|(n, t)| (n, *t)), 500), 1);
        // "a" keeps its deadline (1,000), "b" gets 500 + 2,000.
        assert_eq!(leases.due(1_000, 10), vec![name("a")]);
        assert!(leases.due(2_499, 10).len() == 1);
        assert_eq!(leases.due(2_500, 10), vec![name("a"), name("b")]);
        assert_eq!(leases.adopt_missing(live.iter().map(|(n, t)| (n, *t)), 600), 0);
    }

    #[test]
    fn due_is_bounded_so_one_proposal_stays_small() {
        let mut leases = Leases::new();
        for i in 0..100 {
            leases.track(name(&format!("s{i:03}")), 1_000, 0);
        }
        assert_eq!(leases.due(1_000, 16).len(), 16);
    }
}
