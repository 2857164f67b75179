//! Checkout: choosing a pool, sharing seats, queueing, and recording the grant.

use smallvec::SmallVec;

use crate::request_key::{checkout_key, retried};
use crate::state::{Checkout, QueuedRequest, SeatHold, Session, Timer};
use crate::{
    Denial, DenialReason, Effects, Engine, Event, Grant, Handle, Holder, MAX_CHECKOUT_COUNT,
    MAX_HOLDERS_IN_DENIAL, Name, Outcome, RejectKind, RequestId, check_name,
};
use qlm_license::{DupGroup, Pool, Timestamp, Version};

/// Milliseconds in an hour, for borrow caps.
const MILLIS_PER_HOUR: u64 = 3_600_000;

/// A checkout request, at request time or when its turn in the queue comes.
pub(super) struct Request {
    pub session_id: Name,
    pub request_id: RequestId,
    pub feature: Name,
    pub version: Version,
    pub count: u32,
    pub borrow_until: Option<Timestamp>,
}

/// Where the seats of a grant come from.
#[derive(Clone, Copy)]
pub(super) enum Source {
    /// New seats from this pool.
    Pool(u32),
    /// Seats of an existing hold (dup group share, or a lingering seat taken back).
    Share(Handle),
}

impl Engine {
    pub(super) fn checkout(&mut self, req: Request, wait: bool, fx: &mut Effects) -> Outcome {
        let Some(session) = self.sessions.get(&req.session_id).filter(|s| s.live) else {
            return unknown_session(&req.session_id);
        };
        let key = checkout_key(&req.feature, &req.version, req.count, wait, req.borrow_until);
        if let Some(previous) = session.requests.get(&req.request_id) {
            return retried(previous, key);
        }
        let outcome = self.checkout_once(&req, wait, fx);
        if let Some(session) = self.sessions.get_mut(&req.session_id) {
            session.requests.remember(req.request_id, key, &outcome);
        }
        outcome
    }

    fn checkout_once(&mut self, req: &Request, wait: bool, fx: &mut Effects) -> Outcome {
        if let Err(rejected) = check_name("request_id", &req.request_id)
            .and_then(|()| check_name("feature", &req.feature))
        {
            return rejected;
        }
        if req.count == 0 || req.count > MAX_CHECKOUT_COUNT {
            return Outcome::rejected(
                RejectKind::InvalidArgument,
                format!("`count` is {}; it must be 1..={MAX_CHECKOUT_COUNT}", req.count),
            );
        }
        if let Some(until) = req.borrow_until {
            if until <= self.now {
                return Outcome::rejected(
                    RejectKind::InvalidArgument,
                    format!("`borrow_until` {until} is not in the future (now {})", self.now),
                );
            }
            if wait {
                return Outcome::rejected(
                    RejectKind::InvalidArgument,
                    "`wait` and `borrow_until` cannot be combined: a borrow is taken now or not",
                );
            }
        }
        if self.awaits(&req.session_id, &req.feature) {
            let message = format!("this session already waits for `{}` in its queue", req.feature);
            return self.deny(req, denial(DenialReason::AlreadyHolding, message), fx);
        }
        let decision = self.decide(req).and_then(|source| self.respect_queue(req, source));
        let source = match decision {
            Ok(source) => source,
            Err(denial) if wait && denial.reason.may_queue() => {
                return self.enqueue(req, denial, fx);
            }
            Err(denial) => return self.deny(req, denial, fx),
        };
        let handle = self.next_handle();
        let grant = self.commit(req, handle, source, fx);
        fx.events.push(self.checked_out_event(&grant, &req.session_id, false));
        Outcome::Granted(grant)
    }

    fn deny(&mut self, req: &Request, denial: Denial, fx: &mut Effects) -> Outcome {
        if let Some(session) = self.sessions.get(&req.session_id) {
            fx.events.push(Event::Denied {
                session_id: req.session_id.clone(),
                user: session.user.clone(),
                host: session.host.clone(),
                feature: req.feature.clone(),
                count: req.count,
                reason: denial.reason,
            });
        }
        Outcome::Denied(denial)
    }

    /// A request may take new seats past a feature's non-empty queue only if that cannot delay
    /// the first request blocked in it (see `queue.rs`); otherwise it is refused like one that
    /// found no seat (and queues behind, if it waits).
    fn respect_queue(&self, req: &Request, source: Source) -> Result<Source, Denial> {
        let Source::Pool(number) = source else { return Ok(source) };
        let Some(blocker) = self.queue_blocker(&req.feature) else { return Ok(source) };
        if self.may_pass(&blocker, req, number) {
            return Ok(source);
        }
        let waiting = self.features.get(&req.feature).map_or(0, |f| f.queue.len());
        Err(Denial {
            reason: DenialReason::AllInUse,
            message: format!(
                "{waiting} request(s) wait in the queue for `{}` and come first",
                req.feature
            ),
            holders: self.holders(&req.feature),
        })
    }

    /// Whether the session has a request for `feature` in the queue.
    fn awaits(&self, session_id: &str, feature: &str) -> bool {
        self.sessions.get(session_id).is_some_and(|s| {
            s.queued.iter().any(|h| self.queued.get(h).is_some_and(|q| &*q.feature == feature))
        })
    }

    fn enqueue(&mut self, req: &Request, denial: Denial, fx: &mut Effects) -> Outcome {
        let holds_feature = self.sessions.get(&req.session_id).is_some_and(|s| {
            s.checkouts
                .iter()
                .any(|h| self.checkouts.get(h).is_some_and(|c| c.feature == req.feature))
        });
        if holds_feature {
            let message = format!(
                "{} (and this session already holds or awaits `{}`, so it may not queue again)",
                denial.message, req.feature
            );
            let denial = Denial { reason: DenialReason::AlreadyHolding, message, ..denial };
            return self.deny(req, denial, fx);
        }
        let handle = self.next_handle();
        let Some(feature) = self.features.get_mut(&req.feature) else {
            return self.deny(req, denial, fx);
        };
        feature.queue.insert(handle);
        let position = feature.queue.len() as u32;
        self.queued.insert(
            handle,
            QueuedRequest {
                session_id: req.session_id.clone(),
                request_id: req.request_id.clone(),
                feature: req.feature.clone(),
                version: req.version,
                count: req.count,
                since: self.now,
            },
        );
        if let Some(session) = self.sessions.get_mut(&req.session_id) {
            session.queued.insert(handle);
        }
        fx.events.push(Event::Queued {
            handle,
            session_id: req.session_id.clone(),
            feature: req.feature.clone(),
            position,
        });
        Outcome::Queued { handle, position }
    }

    fn next_handle(&mut self) -> Handle {
        self.last_handle += 1;
        Handle(self.last_handle)
    }

    /// Decides where a request's seats come from, or why it is denied. Reads only.
    pub(super) fn decide(&self, req: &Request) -> Result<Source, Denial> {
        let session = self.sessions.get(&req.session_id).ok_or_else(|| {
            denial(DenialReason::NoSuchFeature, format!("session `{}` is gone", req.session_id))
        })?;
        let (user, host) = (&*session.user, &*session.host);
        let name = &*req.feature;
        let feature = self.features.get(name).filter(|f| !f.pools.is_empty()).ok_or_else(|| {
            denial(DenialReason::NoSuchFeature, format!("no license serves feature `{name}`"))
        })?;
        if !self.policy.allows(name, user, host) {
            return Err(denial(
                DenialReason::Excluded,
                format!(
                    "the options file does not let user `{user}` on host `{host}` use `{name}`"
                ),
            ));
        }
        let eligible = self.eligible_pools(req, &feature.pools)?;
        let largest = eligible.iter().map(|&(_, pool)| pool.seats).max().unwrap_or(0);
        if req.count > largest {
            return Err(denial(
                DenialReason::CountTooHigh,
                format!("{} seats of `{name}` asked; the largest pool has {largest}", req.count),
            ));
        }
        for &(number, pool) in &eligible {
            if let Some(hold) = self.shareable_hold(req, session, number, pool) {
                return Ok(Source::Share(hold));
            }
        }
        for count in &feature.maxes {
            let rule = &self.policy.maxes[count.rule];
            if self.policy.names(&rule.who, user, host)
                && count.held + u64::from(req.count) > u64::from(rule.seats)
            {
                return Err(denial(
                    DenialReason::MaxReached,
                    format!(
                        "{} may hold at most {} seats of `{name}` (options line {}) and holds {}",
                        rule.who, rule.seats, rule.line, count.held
                    ),
                ));
            }
        }
        // Seats still held on retired pools (a license renewed by a reload) occupy capacity.
        let retired = if feature.retired.is_empty() { 0 } else { self.retired_in_use(name) };
        let capacity = self.serving_free_seats(name).saturating_sub(retired);
        let fits = eligible.iter().find(|(n, pool)| self.pool_free_seats(*n, pool) >= req.count);
        let Some(&(number, _)) = fits.filter(|_| capacity >= u64::from(req.count)) else {
            return Err(Denial {
                reason: DenialReason::AllInUse,
                message: format!("all seats of `{name}` that fit the request are in use"),
                holders: self.holders(name),
            });
        };
        let unreserved = capacity.saturating_sub(self.unmet_reserved_for_others(name, user, host));
        if unreserved < u64::from(req.count) {
            return Err(denial(
                DenialReason::ReservedForOthers,
                format!("the free seats of `{name}` are reserved for others (RESERVE)"),
            ));
        }
        Ok(Source::Pool(number))
    }

    /// The pools that may serve the request, in preference order, or the reason none may.
    fn eligible_pools<'a>(
        &'a self,
        req: &Request,
        numbers: &[u32],
    ) -> Result<SmallVec<[(u32, &'a Pool); 4]>, Denial> {
        let name = &*req.feature;
        let mut eligible = SmallVec::new();
        let (mut best_version, mut first_start) = (None, None);
        let (mut version_ok, mut started, mut unexpired) = (false, false, false);
        for &number in numbers {
            let Some(pool) = self.pools.get(&number).map(|p| &p.pool) else { continue };
            if pool.version < req.version {
                best_version = best_version.max(Some(pool.version));
                continue;
            }
            version_ok = true;
            if !pool.is_started(self.now) {
                first_start = Some(
                    first_start.map_or(pool.starts_at(), |t: Timestamp| t.min(pool.starts_at())),
                );
                continue;
            }
            started = true;
            if pool.is_expired(self.now) {
                continue;
            }
            unexpired = true;
            if let Some(until) = req.borrow_until {
                // A borrow ends by its cap and by the pool's own expiry, whichever is first.
                let hours = self.borrow_cap_hours(pool);
                let capped = until > self.now.plus_millis(u64::from(hours) * MILLIS_PER_HOUR);
                if capped || pool.expires_at().is_some_and(|end| until > end) {
                    continue;
                }
            }
            eligible.push((number, pool));
        }
        if !eligible.is_empty() {
            return Ok(eligible);
        }
        let v = req.version;
        Err(match () {
            () if !version_ok => denial(
                DenialReason::VersionTooHigh,
                match best_version {
                    Some(best) => format!("version {v} of `{name}` asked; licensed up to {best}"),
                    None => format!("version {v} of `{name}` asked; no version is licensed"),
                },
            ),
            () if !started => denial(
                DenialReason::NotStarted,
                format!(
                    "the licenses of `{name}` start at {}",
                    first_start.map(|t| t.date().to_string()).unwrap_or_default()
                ),
            ),
            () if !unexpired => {
                denial(DenialReason::Expired, format!("every license of `{name}` has expired"))
            }
            () => denial(
                DenialReason::BorrowNotAllowed,
                format!(
                    "`{name}` may not be borrowed until {} (borrow cap)",
                    req.borrow_until.unwrap_or_default()
                ),
            ),
        })
    }

    /// The longest borrow of a pool, in hours: the vendor's cap, lowered by the policy.
    fn borrow_cap_hours(&self, pool: &Pool) -> u32 {
        let policy = self.policy.max_borrow_hours.get(&pool.feature).copied();
        policy.map_or(pool.max_borrow_hours, |hours| hours.min(pool.max_borrow_hours))
    }

    /// A hold in pool `number` that this request may use without new seats.
    fn shareable_hold(
        &self,
        req: &Request,
        session: &Session,
        number: u32,
        pool: &Pool,
    ) -> Option<Handle> {
        let shared = &self.features.get(&req.feature)?.shared;
        if shared.is_empty() {
            return None; // The common case: no key to build.
        }
        let key = share_key(pool.dup_group, &session.user, &session.host, &session.display);
        let holds = shared.get(&key)?;
        holds.iter().copied().find(|id| {
            self.holds.get(id).is_some_and(|hold| {
                hold.pool == number
                    && hold.seats >= req.count
                    && (pool.dup_group != DupGroup::None || hold.lingers_until.is_some())
                    && self.same_rules_apply(&req.feature, hold, session)
            })
        })
    }

    /// Whether every RESERVE and MAX rule of the feature names the session exactly when it
    /// names the hold's owner, so sharing the hold moves no seat between rules.
    fn same_rules_apply(&self, feature: &str, hold: &SeatHold, session: &Session) -> bool {
        let Some(state) = self.features.get(feature) else { return false };
        let reserves = state.reserves.iter().map(|c| &self.policy.reserves[c.rule].who);
        let maxes = state.maxes.iter().map(|c| &self.policy.maxes[c.rule].who);
        reserves.chain(maxes).all(|who| {
            self.policy.names(who, &hold.user, &hold.host)
                == self.policy.names(who, &session.user, &session.host)
        })
    }

    /// Free seats of a pool, or 0 if it does not serve now.
    fn pool_free_seats(&self, number: u32, pool: &Pool) -> u32 {
        let in_use = self.pools.get(&number).map_or(pool.seats, |p| p.in_use);
        pool.seats.saturating_sub(in_use)
    }

    /// Free seats of a feature over the pools that serve now (any version).
    pub(super) fn serving_free_seats(&self, feature: &str) -> u64 {
        let Some(state) = self.features.get(feature) else { return 0 };
        state
            .pools
            .iter()
            .filter_map(|n| self.pools.get(n))
            .filter(|p| p.pool.is_started(self.now) && !p.pool.is_expired(self.now))
            .map(|p| u64::from(p.pool.seats.saturating_sub(p.in_use)))
            .sum()
    }

    /// Seats of the feature's reservations not yet used by their owners, over the
    /// reservations that do not name this client.
    pub(super) fn unmet_reserved_for_others(&self, feature: &str, user: &str, host: &str) -> u64 {
        let Some(state) = self.features.get(feature) else { return 0 };
        state
            .reserves
            .iter()
            .filter(|c| !self.policy.names(&self.policy.reserves[c.rule].who, user, host))
            .map(|c| u64::from(self.policy.reserves[c.rule].seats).saturating_sub(c.held))
            .sum()
    }

    /// Who holds the feature, oldest first, at most [`MAX_HOLDERS_IN_DENIAL`].
    fn holders(&self, feature: &str) -> Vec<Holder> {
        let Some(state) = self.features.get(feature) else { return Vec::new() };
        state
            .checkouts
            .iter()
            .take(MAX_HOLDERS_IN_DENIAL)
            .filter_map(|&handle| {
                let checkout = self.checkouts.get(&handle)?;
                let session = self.sessions.get(&checkout.session_id)?;
                Some(Holder {
                    handle,
                    user: session.user.clone(),
                    host: session.host.clone(),
                    display: session.display.clone(),
                    count: checkout.count,
                    since: checkout.since,
                })
            })
            .collect()
    }

    /// Records a grant decided by [`Engine::decide`].
    pub(super) fn commit(
        &mut self,
        req: &Request,
        handle: Handle,
        source: Source,
        fx: &mut Effects,
    ) -> Grant {
        let now = self.now;
        let (hold_id, shared) = match source {
            Source::Share(id) => {
                self.take_back_if_lingering(id);
                (id, true)
            }
            Source::Pool(number) => {
                self.take_seats(req, handle, number);
                (handle, false)
            }
        };
        let pool_number = self.holds.get_mut(&hold_id).map(|hold| {
            hold.holders.push(handle);
            hold.pool
        });
        let pool = pool_number.and_then(|n| self.pools.get(&n)).map(|p| &p.pool);
        let grant = Grant {
            handle,
            feature: req.feature.clone(),
            pool: pool.map(|p| p.id.clone()).unwrap_or_default(),
            version: pool.map(|p| p.version).unwrap_or_default(),
            count: req.count,
            shared,
            since: now,
            borrow_until: req.borrow_until,
        };
        self.checkouts.insert(
            handle,
            Checkout {
                session_id: req.session_id.clone(),
                feature: req.feature.clone(),
                count: req.count,
                hold: hold_id,
                since: now,
                borrow_until: req.borrow_until,
            },
        );
        if let Some(until) = req.borrow_until {
            self.timers.insert((until, Timer::BorrowEnd(handle)));
        }
        if let Some(session) = self.sessions.get_mut(&req.session_id) {
            session.checkouts.insert(handle);
        }
        if let Some(feature) = self.features.get_mut(&req.feature) {
            feature.checkouts.insert(handle);
        }
        if shared {
            self.normalize_hold(hold_id, fx);
        }
        grant
    }

    pub(super) fn checked_out_event(
        &self,
        grant: &Grant,
        session_id: &Name,
        from_queue: bool,
    ) -> Event {
        let session = self.sessions.get(session_id);
        Event::CheckedOut {
            handle: grant.handle,
            session_id: session_id.clone(),
            user: session.map(|s| s.user.clone()).unwrap_or_default(),
            host: session.map(|s| s.host.clone()).unwrap_or_default(),
            feature: grant.feature.clone(),
            version: grant.version,
            count: grant.count,
            shared: grant.shared,
            from_queue,
        }
    }
}

/// The key under which checkouts of one dup group (or, for `DupGroup::None`, one client taking
/// back its lingering seat) find each other's seats.
pub(super) fn share_key(dup_group: DupGroup, user: &str, host: &str, display: &str) -> String {
    match dup_group {
        DupGroup::User => format!("u\u{0}{user}"),
        DupGroup::Host => format!("h\u{0}{host}"),
        DupGroup::UserHost => format!("uh\u{0}{user}\u{0}{host}"),
        DupGroup::None => format!("c\u{0}{user}\u{0}{host}\u{0}{display}"),
    }
}

fn denial(reason: DenialReason, message: String) -> Denial {
    Denial { reason, message, holders: Vec::new() }
}

pub(super) fn unknown_session(session_id: &str) -> Outcome {
    Outcome::rejected(
        RejectKind::UnknownSession,
        format!("session `{session_id}` does not exist (closed, expired or never opened)"),
    )
}
