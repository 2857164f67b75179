//! Seat holds: the seats a checkout (or a dup group of checkouts) takes from one pool.
//!
//! Accounting rules, each the answer to a way seats could be miscounted:
//!
//! - A hold's *owner* is its first holder; RESERVE and MAX count its seats as the owner's.
//!   When the owner checks in while others still share the seats, the next holder becomes
//!   the owner and the counters move with the seats, so a sharer's seats are always counted
//!   against someone who holds them.
//! - A hold is as large as its largest holder needs, never larger: when a big checkout leaves
//!   a small sharer behind, or a client takes back one seat of a lingering three, the surplus
//!   goes back to the pool at once.
//! - A hold counts against at most one RESERVE rule (the first in file order that names its
//!   owner and still has room), so one seat never fills two overlapping reservations.
//! - A hold on a pool retired by a reload moves to a current pool of the feature that can take
//!   it (same or higher version); what cannot move still occupies the feature's capacity, so a
//!   renewed license never serves its count twice.

use smallvec::SmallVec;

use crate::checkout::{Request, share_key};
use crate::state::{SeatHold, Timer};
use crate::{Effects, Engine, Event, Handle};
use qlm_license::DupGroup;

impl Engine {
    /// Takes `req.count` new seats from pool `number` as a hold named `handle`.
    pub(super) fn take_seats(&mut self, req: &Request, handle: Handle, number: u32) {
        let Some(session) = self.sessions.get(&req.session_id) else { return };
        let Some(pool) = self.pools.get_mut(&number) else { return };
        pool.in_use += req.count;
        let dup_group = pool.pool.dup_group;
        let share_key = (dup_group != DupGroup::None)
            .then(|| share_key(dup_group, &session.user, &session.host, &session.display));
        let hold = SeatHold {
            pool: number,
            feature: req.feature.clone(),
            seats: req.count,
            share_key: share_key.clone(),
            user: session.user.clone(),
            host: session.host.clone(),
            display: session.display.clone(),
            holders: SmallVec::new(),
            lingers_until: None,
            reserve: None,
        };
        if let (Some(key), Some(feature)) = (share_key, self.features.get_mut(&req.feature)) {
            feature.shared.entry(key).or_default().insert(handle);
        }
        self.holds.insert(handle, hold);
        self.count_rules(handle, true);
    }

    /// A lingering hold that is taken back stops lingering (and leaves the share index if it
    /// was only there to be taken back).
    pub(super) fn take_back_if_lingering(&mut self, id: Handle) {
        let Some(hold) = self.holds.get_mut(&id) else { return };
        let Some(until) = hold.lingers_until.take() else { return };
        self.timers.remove(&(until, Timer::LingerEnd(id)));
        let dup_group = self.pools.get(&hold.pool).map(|p| p.pool.dup_group);
        if dup_group == Some(DupGroup::None) {
            let (feature, key) = (hold.feature.clone(), hold.share_key.take());
            if let Some(key) = key {
                self.unindex_share(&feature, &key, id);
            }
        }
    }

    pub(super) fn unindex_share(&mut self, feature: &str, key: &str, id: Handle) {
        if let Some(state) = self.features.get_mut(feature)
            && let Some(ids) = state.shared.get_mut(key)
        {
            ids.remove(&id);
            if ids.is_empty() {
                state.shared.remove(key);
            }
        }
    }

    /// Adds (or removes) hold `id`'s seats to the MAX counters that name its owner, and to the
    /// one RESERVE rule it is counted against.
    pub(super) fn count_rules(&mut self, id: Handle, add: bool) {
        if self.policy.reserves.is_empty() && self.policy.maxes.is_empty() {
            return; // Nothing to count: the common case costs no lookup.
        }
        let Some(hold) = self.holds.get(&id) else { return };
        let (feature, user, host) = (hold.feature.clone(), hold.user.clone(), hold.host.clone());
        let (seats, reserve) = (u64::from(hold.seats), hold.reserve);
        let Some(state) = self.features.get_mut(&feature) else { return };
        let policy = &self.policy;
        for count in &mut state.maxes {
            if policy.names(&policy.maxes[count.rule].who, &user, &host) {
                count.held =
                    if add { count.held + seats } else { count.held.saturating_sub(seats) };
            }
        }
        let reserve = if add {
            let slot = state.reserves.iter().position(|c| {
                let rule = &policy.reserves[c.rule];
                c.held < u64::from(rule.seats) && policy.names(&rule.who, &user, &host)
            });
            if let Some(count) = slot.and_then(|i| state.reserves.get_mut(i)) {
                count.held += seats;
            }
            slot
        } else {
            if let Some(count) = reserve.and_then(|i| state.reserves.get_mut(i)) {
                count.held = count.held.saturating_sub(seats);
            }
            None
        };
        if let Some(hold) = self.holds.get_mut(&id) {
            hold.reserve = reserve;
        }
    }

    /// After the holders of a hold changed: its owner is its first holder and its size what
    /// its largest holder needs; the surplus goes back to the pool.
    pub(super) fn normalize_hold(&mut self, id: Handle, fx: &mut Effects) {
        let Some(hold) = self.holds.get(&id) else { return };
        let Some(&first) = hold.holders.first() else { return };
        let need = hold.holders.iter().filter_map(|h| self.checkouts.get(h)).map(|c| c.count).max();
        let need = need.unwrap_or(hold.seats).min(hold.seats);
        let owner = self.checkouts.get(&first).and_then(|c| self.sessions.get(&c.session_id));
        let Some(owner) = owner else { return };
        let same_owner =
            owner.user == hold.user && owner.host == hold.host && owner.display == hold.display;
        if need == hold.seats && same_owner {
            return;
        }
        let (user, host, display) = (owner.user.clone(), owner.host.clone(), owner.display.clone());
        self.count_rules(id, false);
        let Some(hold) = self.holds.get_mut(&id) else { return };
        let surplus = hold.seats - need;
        (hold.seats, hold.user, hold.host, hold.display) = (need, user, host, display);
        let (pool, feature) = (hold.pool, hold.feature.clone());
        self.count_rules(id, true);
        if surplus > 0 {
            if let Some(pool) = self.pools.get_mut(&pool) {
                pool.in_use = pool.in_use.saturating_sub(surplus);
            }
            if self.features.get(&feature).is_some_and(|f| !f.queue.is_empty()) {
                fx.dirty.insert(feature);
            }
        }
    }

    /// Gives a hold's seats back to its pool.
    pub(super) fn free_hold(&mut self, id: Handle, fx: &mut Effects) {
        self.count_rules(id, false);
        let Some(hold) = self.holds.remove(&id) else { return };
        if let Some(until) = hold.lingers_until {
            self.timers.remove(&(until, Timer::LingerEnd(id)));
        }
        if let Some(key) = &hold.share_key {
            self.unindex_share(&hold.feature, key, id);
        }
        if let Some(pool) = self.pools.get_mut(&hold.pool) {
            pool.in_use = pool.in_use.saturating_sub(hold.seats);
        }
        self.forget_pool_if_retired_and_empty(hold.pool);
        if self.features.get(&hold.feature).is_some_and(|f| !f.queue.is_empty()) {
            fx.dirty.insert(hold.feature.clone());
        }
        self.forget_feature_if_unused(&hold.feature);
    }

    /// A lingering hold's time is up.
    pub(super) fn end_linger(&mut self, id: Handle, fx: &mut Effects) {
        let Some(hold) = self.holds.get(&id) else { return };
        let pool = self.pools.get(&hold.pool).map(|p| p.pool.id.clone()).unwrap_or_default();
        let event = Event::LingerEnded { feature: hold.feature.clone(), pool, seats: hold.seats };
        self.free_hold(id, fx);
        fx.events.push(event);
    }

    /// Moves the holds of retired pools onto current pools of their feature that serve now,
    /// have the same or a higher version and room for them; forgets retired pools left empty.
    pub(super) fn migrate_retired_holds(&mut self) {
        let retired: Vec<Handle> = self
            .holds
            .iter()
            .filter(|(_, h)| self.pools.get(&h.pool).is_some_and(|p| !p.current))
            .map(|(&id, _)| id)
            .collect();
        for id in retired {
            let Some(hold) = self.holds.get(&id) else { continue };
            let (from, seats) = (hold.pool, hold.seats);
            let Some(version) = self.pools.get(&from).map(|p| p.pool.version) else { continue };
            let Some(state) = self.features.get(&hold.feature) else { continue };
            let target = state.pools.iter().copied().find(|n| {
                self.pools.get(n).is_some_and(|p| {
                    p.pool.version >= version
                        && p.pool.is_started(self.now)
                        && !p.pool.is_expired(self.now)
                        && p.pool.seats - p.in_use >= seats
                })
            });
            let Some(to) = target else { continue };
            if let Some(p) = self.pools.get_mut(&to) {
                p.in_use += seats;
            }
            if let Some(p) = self.pools.get_mut(&from) {
                p.in_use -= seats;
            }
            if let Some(hold) = self.holds.get_mut(&id) {
                hold.pool = to;
            }
            self.forget_pool_if_retired_and_empty(from);
        }
    }

    /// Seats still held on retired pools of `feature`: they occupy the feature's capacity.
    pub(super) fn retired_in_use(&self, feature: &str) -> u64 {
        let Some(state) = self.features.get(feature) else { return 0 };
        state.retired.iter().filter_map(|n| self.pools.get(n)).map(|p| u64::from(p.in_use)).sum()
    }

    pub(super) fn forget_pool_if_retired_and_empty(&mut self, number: u32) {
        let Some(pool) = self.pools.get(&number) else { return };
        if pool.current || pool.in_use > 0 {
            return;
        }
        let (id, feature) = (pool.pool.id.clone(), pool.pool.feature.clone());
        self.pools.remove(&number);
        self.pool_numbers.remove(&id);
        if let Some(state) = self.features.get_mut(feature.as_str()) {
            state.retired.retain(|n| *n != number);
        }
    }
}
