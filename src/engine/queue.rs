//! The per-feature FIFO queue of waiting checkouts.
//!
//! When seats free up (a checkin, an expiry, a linger end, a reload, time passing), the
//! queue of that feature is walked in order and each request that can now be granted is. The
//! first request that still cannot get seats for lack of them blocks the queue: a request
//! behind it, or a new one arriving (`respect_queue` in `checkout.rs`), may then only take
//! seats the blocked request could never use: from a pool of a lower version or too small for
//! it, or from reservations that name the newcomer and not the blocked client. So a stream of
//! small requests cannot starve a large one.
//! A request held back by its own MAX does not block others: its limit is its own.
//! A request that can no longer be granted at all (feature gone, pool expired) leaves the
//! queue denied.

use crate::checkout::{Request, Source};
use crate::{DenialReason, Effects, Engine, Event, Handle, Outcome, QueueExit};

impl Engine {
    /// Moves the queues of every feature marked dirty during this apply.
    pub(super) fn drain_queues(&mut self, fx: &mut Effects) {
        while let Some(feature) = fx.dirty.pop_first() {
            self.drain_queue(&feature, fx);
        }
    }

    fn drain_queue(&mut self, feature: &str, fx: &mut Effects) {
        let Some(state) = self.features.get(feature) else { return };
        let waiting: Vec<Handle> = state.queue.iter().copied().collect();
        // The first request blocked for lack of seats: those behind may not delay it.
        let mut blocker: Option<Request> = None;
        for handle in waiting {
            let Some(req) = self.queued_request(handle) else { continue };
            match self.decide(&req) {
                Ok(source) => {
                    if let (Some(first), Source::Pool(number)) = (&blocker, source)
                        && !self.may_pass(first, &req, number)
                    {
                        continue;
                    }
                    self.grant_from_queue(handle, &req, source, fx);
                }
                Err(denial) if denial.reason == DenialReason::MaxReached => {}
                Err(denial) if denial.reason.may_queue() => {
                    if blocker.is_none() {
                        blocker = Some(req);
                    }
                }
                Err(denial) => {
                    if let Some(session) = self.sessions.get_mut(&req.session_id) {
                        session.requests.update(&req.request_id, Outcome::Denied(denial.clone()));
                    }
                    self.leave_queue(handle, QueueExit::Denied(denial.reason), fx);
                }
            }
        }
    }

    /// A queued request, as the request it will be granted as.
    fn queued_request(&self, handle: Handle) -> Option<Request> {
        let queued = self.queued.get(&handle)?;
        Some(Request {
            session_id: queued.session_id.clone(),
            request_id: queued.request_id.clone(),
            feature: queued.feature.clone(),
            version: queued.version,
            count: queued.count,
            borrow_until: None,
        })
    }

    /// The first queued request of `feature` that waits for lack of seats (not for its own
    /// MAX), if any. Queues are drained after every apply, so every queued request is blocked.
    pub(super) fn queue_blocker(&self, feature: &str) -> Option<Request> {
        let state = self.features.get(feature)?;
        state.queue.iter().filter_map(|&h| self.queued_request(h)).find(|req| {
            matches!(self.decide(req), Err(d) if d.reason.may_queue() && d.reason != DenialReason::MaxReached)
        })
    }

    /// Whether `req` may take new seats from pool `number` although `blocker`, ahead of it,
    /// waits: the blocker could never use that pool (lower version, or fewer seats than it
    /// asks), or the seats come from reservations that name `req`'s client and not the
    /// blocker's.
    pub(super) fn may_pass(&self, blocker: &Request, req: &Request, number: u32) -> bool {
        let useless_to_blocker = self
            .pools
            .get(&number)
            .is_some_and(|p| p.pool.version < blocker.version || p.pool.seats < blocker.count);
        let Some(owner) = self.sessions.get(&blocker.session_id) else { return true };
        useless_to_blocker || self.takes_only_own_reserved(req, &owner.user, &owner.host)
    }

    /// Whether granting `req` new seats leaves the blocked client (`user` on `host`) as many
    /// usable seats as before: the seats come out of reservations that name the requester and
    /// not the blocked client.
    fn takes_only_own_reserved(&self, req: &Request, user: &str, host: &str) -> bool {
        let Some(session) = self.sessions.get(&req.session_id) else { return false };
        let Some(state) = self.features.get(&req.feature) else { return false };
        let own_unmet: u64 = state
            .reserves
            .iter()
            .filter(|c| {
                let who = &self.policy.reserves[c.rule].who;
                self.policy.names(who, &session.user, &session.host)
                    && !self.policy.names(who, user, host)
            })
            .map(|c| u64::from(self.policy.reserves[c.rule].seats).saturating_sub(c.held))
            .sum();
        u64::from(req.count) <= own_unmet
    }

    fn grant_from_queue(
        &mut self,
        handle: Handle,
        req: &Request,
        source: Source,
        fx: &mut Effects,
    ) {
        self.remove_from_queue(handle);
        let grant = self.commit(req, handle, source, fx);
        fx.events.push(self.checked_out_event(&grant, &req.session_id, true));
        if let Some(session) = self.sessions.get_mut(&req.session_id) {
            session.requests.update(&req.request_id, Outcome::Granted(grant));
        }
    }

    /// Takes a request out of its queue without a grant.
    pub(super) fn leave_queue(&mut self, handle: Handle, exit: QueueExit, fx: &mut Effects) {
        let Some(queued) = self.remove_from_queue(handle) else { return };
        if exit == QueueExit::Cancelled
            && let Some(session) = self.sessions.get_mut(&queued.session_id)
        {
            // A retry of the request that queued learns that it ended.
            session.requests.update(&queued.request_id, Outcome::CheckedIn { handle });
        }
        fx.events.push(Event::LeftQueue {
            handle,
            session_id: queued.session_id.clone(),
            feature: queued.feature.clone(),
            exit,
        });
        // Leaving may unblock the requests behind.
        if self.features.get(&queued.feature).is_some_and(|f| !f.queue.is_empty()) {
            fx.dirty.insert(queued.feature.clone());
        }
        self.forget_feature_if_unused(&queued.feature);
    }

    fn remove_from_queue(&mut self, handle: Handle) -> Option<crate::state::QueuedRequest> {
        let queued = self.queued.remove(&handle)?;
        if let Some(state) = self.features.get_mut(&queued.feature) {
            state.queue.remove(&handle);
        }
        if let Some(session) = self.sessions.get_mut(&queued.session_id) {
            session.queued.remove(&handle);
        }
        Some(queued)
    }
}
