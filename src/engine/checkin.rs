//! Checkin and release: seats lingering after their holder's checkin, and seats freed at once
//! (expiry, removal, borrow end).

use crate::checkout::{share_key, unknown_session};
use crate::request_key::{checkin_key, retried};
use crate::state::{Checkout, Timer};
use crate::{
    Effects, Engine, Event, Handle, Outcome, RejectKind, ReleaseCause, RequestId, check_name,
};
use qlm_license::DupGroup;

impl Engine {
    pub(super) fn checkin(
        &mut self,
        session_id: &str,
        request_id: RequestId,
        handle: Handle,
        fx: &mut Effects,
    ) -> Outcome {
        let Some(session) = self.sessions.get(session_id) else {
            return unknown_session(session_id);
        };
        let key = checkin_key(handle);
        if let Some(previous) = session.requests.get(&request_id) {
            return retried(previous, key);
        }
        if let Err(rejected) = check_name("request_id", &request_id) {
            return rejected;
        }
        let outcome = if session.queued.contains(&handle) {
            self.leave_queue(handle, crate::QueueExit::Cancelled, fx);
            Outcome::CheckedIn { handle }
        } else if session.checkouts.contains(&handle) {
            self.check_in_held(handle, fx);
            Outcome::CheckedIn { handle }
        } else {
            Outcome::rejected(
                RejectKind::UnknownHandle,
                format!("handle {handle} is not a checkout of session `{session_id}`"),
            )
        };
        if let Some(session) = self.sessions.get_mut(session_id) {
            session.requests.remember(request_id, key, &outcome);
        }
        self.forget_session_if_done(session_id);
        outcome
    }

    /// A holder's own checkin: the seats linger if the policy says so.
    fn check_in_held(&mut self, handle: Handle, fx: &mut Effects) {
        let Some(checkout) = self.detach(handle, fx) else { return };
        let linger_secs = self.policy.lingers.get(&*checkout.feature).copied().unwrap_or(0);
        let mut lingers_until = None;
        if let Some(hold) = self.holds.get_mut(&checkout.hold)
            && hold.holders.is_empty()
        {
            if linger_secs > 0 {
                let until = self.now.plus_secs(u64::from(linger_secs));
                hold.lingers_until = Some(until);
                lingers_until = Some(until);
                self.timers.insert((until, Timer::LingerEnd(checkout.hold)));
                if hold.share_key.is_none() {
                    let key = share_key(DupGroup::None, &hold.user, &hold.host, &hold.display);
                    hold.share_key = Some(key.clone());
                    if let Some(state) = self.features.get_mut(&checkout.feature) {
                        state.shared.entry(key).or_default().insert(checkout.hold);
                    }
                }
            } else {
                self.free_hold(checkout.hold, fx);
            }
        }
        fx.events.push(Event::CheckedIn {
            handle,
            session_id: checkout.session_id,
            feature: checkout.feature,
            count: checkout.count,
            lingers_until,
        });
    }

    /// Releases a checkout at once, without linger (expiry, removal, borrow end).
    pub(super) fn release(&mut self, handle: Handle, cause: ReleaseCause, fx: &mut Effects) {
        let Some(checkout) = self.detach(handle, fx) else { return };
        if self.holds.get(&checkout.hold).is_some_and(|h| h.holders.is_empty()) {
            self.free_hold(checkout.hold, fx);
        }
        fx.events.push(Event::Released {
            handle,
            session_id: checkout.session_id.clone(),
            feature: checkout.feature,
            count: checkout.count,
            cause,
        });
        self.forget_session_if_done(&checkout.session_id);
    }

    /// Removes a checkout from every index, leaving its hold to the caller.
    fn detach(&mut self, handle: Handle, fx: &mut Effects) -> Option<Checkout> {
        let checkout = self.checkouts.remove(&handle)?;
        if let Some(until) = checkout.borrow_until {
            self.timers.remove(&(until, Timer::BorrowEnd(handle)));
        }
        if let Some(session) = self.sessions.get_mut(&checkout.session_id) {
            session.checkouts.remove(&handle);
        }
        let mut others_share = false;
        if let Some(hold) = self.holds.get_mut(&checkout.hold) {
            hold.holders.retain(|h| *h != handle);
            others_share = !hold.holders.is_empty();
        }
        if let Some(state) = self.features.get_mut(&checkout.feature) {
            state.checkouts.remove(&handle);
            if !state.queue.is_empty() {
                fx.dirty.insert(checkout.feature.clone());
            }
        }
        if others_share {
            // The others keep what they need, counted against the next owner.
            self.normalize_hold(checkout.hold, fx);
        }
        Some(checkout)
    }
}
