//! Read-only views of the engine for status, dashboards and the leader's expiry loop.

use serde::{Deserialize, Serialize};

use crate::{Engine, Handle, Name};
use qlm_license::{Pool, PoolId, Timestamp, Version, Who};

/// One pool with its use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    pub pool: Pool,
    /// Seats taken, lingering ones included.
    pub in_use: u32,
    /// Seats taken that only linger.
    pub lingering: u32,
    /// False for a pool retired by a reload that still carries seats.
    pub current: bool,
}

/// One feature: its pools, seats and queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureView {
    pub name: String,
    pub pools: Vec<PoolView>,
    /// Seats of the pools that serve now (started, not expired, current).
    pub seats_serving: u64,
    /// Seats taken over all pools.
    pub seats_in_use: u64,
    /// Requests waiting.
    pub queued: u32,
}

/// One checkout with its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutView {
    pub handle: Handle,
    pub feature: Name,
    /// The pool the seats come from (empty if it is gone, which a held checkout's never is).
    pub pool: PoolId,
    pub version: Version,
    pub count: u32,
    pub session_id: Name,
    pub user: Name,
    pub host: Name,
    pub display: Name,
    pub since: Timestamp,
    pub borrow_until: Option<Timestamp>,
    /// Shares seats taken by another checkout (dup_group).
    pub shared: bool,
    /// Seats counted against this checkout's holder: the whole hold for the first of the
    /// checkouts sharing it, 0 for the others.
    pub seats: u32,
}

/// One request waiting in a feature's queue, with the session that waits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedView {
    pub handle: Handle,
    /// Place in the queue: 1 is the head.
    pub position: u32,
    pub session_id: Name,
    pub user: Name,
    pub host: Name,
    pub display: Name,
    /// The lowest version asked for.
    pub version: Version,
    pub count: u32,
    /// When it queued.
    pub since: Timestamp,
}

/// One session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub session_id: Name,
    pub user: Name,
    pub host: Name,
    pub pid: u32,
    pub display: Name,
    pub opened: Timestamp,
    pub live: bool,
    /// Time without heartbeat after which the session expires: its TTL, shortened by the
    /// policy's TIMEOUT of any feature it holds or waits for.
    pub ttl_ms: u64,
    pub checkouts: Vec<Handle>,
    pub queued: Vec<Handle>,
}

/// A RESERVE rule of a feature and how much of it its owners use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationView {
    pub who: Who,
    pub seats: u32,
    /// Seats counted against the reservation (held by clients it names; a seat counts against
    /// one reservation at most).
    pub held: u64,
}

impl Engine {
    /// Every feature the engine knows, by name.
    pub fn features(&self) -> Vec<FeatureView> {
        self.features.keys().filter_map(|name| self.feature(name)).collect()
    }

    /// One feature, if known.
    pub fn feature(&self, name: &str) -> Option<FeatureView> {
        let state = self.features.get(name)?;
        let mut lingering = std::collections::BTreeMap::<u32, u32>::new();
        for ids in state.shared.values() {
            for hold in ids.iter().filter_map(|id| self.holds.get(id)) {
                if hold.lingers_until.is_some() {
                    *lingering.entry(hold.pool).or_default() += hold.seats;
                }
            }
        }
        let pools: Vec<PoolView> = self
            .pools
            .iter()
            .filter(|(_, p)| p.pool.feature == name)
            .map(|(n, p)| PoolView {
                pool: p.pool.clone(),
                in_use: p.in_use,
                lingering: lingering.get(n).copied().unwrap_or(0),
                current: p.current,
            })
            .collect();
        let seats_serving = pools
            .iter()
            .filter(|p| p.current && p.pool.is_started(self.now) && !p.pool.is_expired(self.now))
            .map(|p| u64::from(p.pool.seats))
            .sum();
        Some(FeatureView {
            name: name.to_owned(),
            seats_in_use: pools.iter().map(|p| u64::from(p.in_use)).sum(),
            seats_serving,
            pools,
            queued: state.queue.len() as u32,
        })
    }

    /// Seats of a feature in use over all its pools (lingering ones included): what
    /// [`Engine::feature`] counts as `seats_in_use`, without building the view.
    /// It looks only at the feature's own pools (current, and retired ones still carrying
    /// seats), so the report log can ask it on every apply.
    pub fn seats_in_use(&self, feature: &str) -> u64 {
        let Some(state) = self.features.get(feature) else { return 0 };
        state
            .pools
            .iter()
            .chain(&state.retired)
            .filter_map(|n| self.pools.get(n))
            .map(|p| u64::from(p.in_use))
            .sum()
    }

    /// Every checkout, by handle.
    pub fn checkouts(&self) -> Vec<CheckoutView> {
        self.checkouts.keys().filter_map(|&h| self.checkout_view(h)).collect()
    }

    /// One checkout, if held.
    pub fn checkout_view(&self, handle: Handle) -> Option<CheckoutView> {
        let checkout = self.checkouts.get(&handle)?;
        let session = self.sessions.get(&checkout.session_id)?;
        let hold = self.holds.get(&checkout.hold)?;
        let pool = self.pools.get(&hold.pool);
        Some(CheckoutView {
            handle,
            feature: checkout.feature.clone(),
            pool: pool.map(|p| p.pool.id.clone()).unwrap_or_default(),
            version: pool.map(|p| p.pool.version).unwrap_or_default(),
            count: checkout.count,
            session_id: checkout.session_id.clone(),
            user: session.user.clone(),
            host: session.host.clone(),
            display: session.display.clone(),
            since: checkout.since,
            borrow_until: checkout.borrow_until,
            shared: checkout.hold != handle,
            seats: if hold.holders.first() == Some(&handle) { hold.seats } else { 0 },
        })
    }

    /// Queued requests of a feature, in queue order: (handle, session).
    pub fn queue(&self, feature: &str) -> Vec<(Handle, Name)> {
        let Some(state) = self.features.get(feature) else { return Vec::new() };
        state
            .queue
            .iter()
            .filter_map(|h| self.queued.get(h).map(|q| (*h, q.session_id.clone())))
            .collect()
    }

    /// Queued requests of a feature with their sessions, head first.
    pub fn queued_requests(&self, feature: &str) -> Vec<QueuedView> {
        let Some(state) = self.features.get(feature) else { return Vec::new() };
        let waiting = state.queue.iter().filter_map(|h| self.queued.get(h).map(|q| (*h, q)));
        waiting
            .zip(1u32..)
            .filter_map(|((handle, q), position)| {
                let session = self.sessions.get(&q.session_id)?;
                Some(QueuedView {
                    handle,
                    position,
                    session_id: q.session_id.clone(),
                    user: session.user.clone(),
                    host: session.host.clone(),
                    display: session.display.clone(),
                    version: q.version,
                    count: q.count,
                    since: q.since,
                })
            })
            .collect()
    }

    /// Place of a queued request in its feature's queue (1 is the head), if it is queued.
    pub fn queue_position(&self, handle: Handle) -> Option<u32> {
        let queued = self.queued.get(&handle)?;
        let state = self.features.get(&queued.feature)?;
        u32::try_from(state.queue.range(..=handle).count()).ok()
    }

    /// One session, if known.
    pub fn session(&self, session_id: &str) -> Option<SessionView> {
        let (id, s) = self.sessions.get_key_value(session_id)?;
        Some(SessionView {
            session_id: id.clone(),
            user: s.user.clone(),
            host: s.host.clone(),
            pid: s.pid,
            display: s.display.clone(),
            opened: s.opened,
            live: s.live,
            ttl_ms: self.session_ttl_ms(session_id).unwrap_or(s.ttl_ms),
            checkouts: s.checkouts.iter().copied().collect(),
            queued: s.queued.iter().copied().collect(),
        })
    }

    /// Number of sessions (live or holding borrows).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of live sessions (a walk over the sessions, no lookups).
    pub fn live_session_count(&self) -> usize {
        self.sessions.values().filter(|s| s.live).count()
    }

    /// Live sessions and their effective TTL, in no particular order, for the leader's
    /// expiry loop.
    pub fn live_sessions(&self) -> impl Iterator<Item = (&Name, u64)> + '_ {
        self.sessions
            .iter()
            .filter(|(_, s)| s.live)
            .map(|(id, s)| (id, self.session_ttl_ms(id).unwrap_or(s.ttl_ms)))
    }

    /// A live session's effective TTL: its own, shortened by the TIMEOUT of any feature it
    /// holds (other than by borrow) or waits for.
    pub fn session_ttl_ms(&self, session_id: &str) -> Option<u64> {
        let s = self.sessions.get(session_id).filter(|s| s.live)?;
        if self.policy.timeouts.is_empty() {
            return Some(s.ttl_ms);
        }
        let held = s
            .checkouts
            .iter()
            .filter_map(|h| self.checkouts.get(h))
            .filter(|c| c.borrow_until.is_none())
            .map(|c| &c.feature);
        let waiting = s.queued.iter().filter_map(|h| self.queued.get(h)).map(|q| &q.feature);
        let timeout = held
            .chain(waiting)
            .filter_map(|f| self.policy.timeouts.get(&**f))
            .map(|secs| u64::from(*secs) * 1000)
            .min();
        Some(timeout.map_or(s.ttl_ms, |t| t.min(s.ttl_ms)))
    }

    /// The RESERVE rules of a feature with the seats their owners hold.
    pub fn reservations(&self, feature: &str) -> Vec<ReservationView> {
        let Some(state) = self.features.get(feature) else { return Vec::new() };
        state
            .reserves
            .iter()
            .map(|c| {
                let rule = &self.policy.reserves[c.rule];
                ReservationView { who: rule.who.clone(), seats: rule.seats, held: c.held }
            })
            .collect()
    }

    /// Free seats of the feature over the pools that serve now.
    pub fn free_seats(&self, feature: &str) -> u64 {
        self.serving_free_seats(feature)
    }
}
