//! The engine's invariants, checked from scratch: what the tests call after every step.

use std::collections::BTreeMap;

use crate::Engine;
use crate::state::Timer;

impl Engine {
    /// Checks every invariant against a recount of the state; returns the first broken one.
    ///
    /// - a pool's seats in use equal the seats of its holds and never exceed its count;
    /// - every checkout belongs to a session, a live one unless the checkout is a borrow;
    /// - every checkout's hold exists and lists it; a hold without holders is lingering;
    /// - a queued request's session is live and holds no seat of that feature;
    /// - the MAX counters equal the seats held by the clients they name; each RESERVE counter
    ///   equals the seats counted against it, all held by clients it names;
    /// - a hold's owner is its first holder and its size what its largest holder needs;
    /// - every linger and borrow has its timer and every timer its linger or borrow.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut per_pool: BTreeMap<u32, u64> = BTreeMap::new();
        for (id, hold) in &self.holds {
            *per_pool.entry(hold.pool).or_default() += u64::from(hold.seats);
            if hold.holders.is_empty() != hold.lingers_until.is_some() {
                return Err(format!(
                    "hold {id}: holders {:?} but linger {:?}",
                    hold.holders, hold.lingers_until
                ));
            }
            for h in &hold.holders {
                if self.checkouts.get(h).map(|c| c.hold) != Some(*id) {
                    return Err(format!("hold {id} lists {h}, which is not its checkout"));
                }
            }
            if let Some(until) = hold.lingers_until
                && !self.timers.contains(&(until, Timer::LingerEnd(*id)))
            {
                return Err(format!("lingering hold {id} has no timer"));
            }
        }
        for (number, state) in &self.pools {
            let counted = per_pool.get(number).copied().unwrap_or(0);
            if u64::from(state.in_use) != counted {
                return Err(format!(
                    "pool {number}: in_use {} but holds add up to {counted}",
                    state.in_use
                ));
            }
            if state.in_use > state.pool.seats {
                return Err(format!(
                    "pool {number}: {} seats in use of {}",
                    state.in_use, state.pool.seats
                ));
            }
        }
        for (handle, checkout) in &self.checkouts {
            let Some(session) = self.sessions.get(&checkout.session_id) else {
                return Err(format!("checkout {handle} belongs to no session"));
            };
            if !session.live && checkout.borrow_until.is_none() {
                return Err(format!("checkout {handle} outlives its session and is no borrow"));
            }
            if !session.checkouts.contains(handle) {
                return Err(format!(
                    "session {} does not list checkout {handle}",
                    checkout.session_id
                ));
            }
            if !self.holds.get(&checkout.hold).is_some_and(|h| h.holders.contains(handle)) {
                return Err(format!("checkout {handle} is not among its hold's holders"));
            }
            if let Some(until) = checkout.borrow_until
                && !self.timers.contains(&(until, Timer::BorrowEnd(*handle)))
            {
                return Err(format!("borrow {handle} has no timer"));
            }
        }
        for (handle, queued) in &self.queued {
            let Some(session) = self.sessions.get(&queued.session_id).filter(|s| s.live) else {
                return Err(format!("queued {handle} belongs to no live session"));
            };
            let holds_feature = session
                .checkouts
                .iter()
                .filter_map(|h| self.checkouts.get(h))
                .any(|c| c.feature == queued.feature);
            if holds_feature {
                return Err(format!(
                    "queued {handle}: its session holds `{}` already",
                    queued.feature
                ));
            }
            if !self.features.get(&queued.feature).is_some_and(|f| f.queue.contains(handle)) {
                return Err(format!("queued {handle} is not in its feature's queue"));
            }
        }
        for (name, feature) in &self.features {
            for c in &feature.maxes {
                let who = &self.policy.maxes[c.rule].who;
                let held: u64 = self
                    .holds
                    .values()
                    .filter(|h| h.feature == *name && self.policy.names(who, &h.user, &h.host))
                    .map(|h| u64::from(h.seats))
                    .sum();
                if held != c.held {
                    return Err(format!(
                        "`{name}`: MAX for {who} counts {}, recount {held}",
                        c.held
                    ));
                }
            }
            for (slot, c) in feature.reserves.iter().enumerate() {
                let rule = &self.policy.reserves[c.rule];
                let counted =
                    self.holds.values().filter(|h| h.feature == *name && h.reserve == Some(slot));
                let mut held = 0u64;
                for hold in counted {
                    if !self.policy.names(&rule.who, &hold.user, &hold.host) {
                        return Err(format!(
                            "`{name}`: a hold of {} counts against RESERVE for {}",
                            hold.user, rule.who
                        ));
                    }
                    held += u64::from(hold.seats);
                }
                if held != c.held {
                    return Err(format!(
                        "`{name}`: RESERVE for {} counts {}, recount {held}",
                        rule.who, c.held
                    ));
                }
            }
        }
        for (id, hold) in &self.holds {
            let Some(&first) = hold.holders.first() else { continue };
            let owner = self.checkouts.get(&first).and_then(|c| self.sessions.get(&c.session_id));
            if !owner.is_some_and(|o| o.user == hold.user && o.host == hold.host) {
                return Err(format!("hold {id}: its owner is not its first holder"));
            }
            let need =
                hold.holders.iter().filter_map(|h| self.checkouts.get(h)).map(|c| c.count).max();
            if need != Some(hold.seats) {
                return Err(format!(
                    "hold {id}: {} seats for holders needing {need:?}",
                    hold.seats
                ));
            }
        }
        for (_, timer) in &self.timers {
            let ok = match timer {
                Timer::LingerEnd(id) => {
                    self.holds.get(id).is_some_and(|h| h.lingers_until.is_some())
                }
                Timer::BorrowEnd(h) => {
                    self.checkouts.get(h).is_some_and(|c| c.borrow_until.is_some())
                }
            };
            if !ok {
                return Err(format!("timer {timer:?} points at nothing"));
            }
        }
        for name in self.features.keys() {
            let counted: u64 = self
                .pools
                .values()
                .filter(|p| p.pool.feature == **name)
                .map(|p| u64::from(p.in_use))
                .sum();
            if self.seats_in_use(name) != counted {
                return Err(format!("{name}: seats_in_use misses seats held on its pools"));
            }
        }
        Ok(())
    }
}
