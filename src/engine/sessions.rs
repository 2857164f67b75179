//! Sessions: open, close, expire; and the admin's removal of checkouts.

use crate::state::Session;
use crate::{
    Effects, Engine, Event, Handle, MAX_SESSION_TTL_MS, MIN_SESSION_TTL_MS, Name, Outcome,
    QueueExit, RejectKind, ReleaseCause, RemoveTarget, SessionId, SessionSecret, check_name,
};

/// Who opens a session: the process as its OpenSession describes it.
pub struct Client {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub display: String,
}

impl Client {
    /// Whether `session` is this client's own, still open: a retried open finds it so.
    fn owns(&self, session: &Session) -> bool {
        session.live
            && *session.user == *self.user
            && *session.host == *self.host
            && session.pid == self.pid
            && *session.display == *self.display
    }
}

/// What this replica says of an OpenSession under a session id, before it is proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenCheck {
    /// No session has the id: the open goes to the log.
    New,
    /// The same client opened it already (a retry): its secret, answered without a proposal.
    Retry(SessionSecret),
    /// Another client holds the id (the request id was used by another process).
    Conflict,
}

/// What this replica says of a request for a session, before the server proposes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The secret is the session's and its request id is free or names the same request;
    /// `live` is false for a session closed or expired that still has borrowed checkouts
    /// (it may only check those in).
    Admitted { live: bool },
    /// This replica holds no such session (it may lag behind: catch up before refusing).
    UnknownSession,
    /// The secret presented is not the session's.
    WrongSecret,
    /// The session already used this request id for a different request.
    RequestIdReused,
}

/// Equality that takes the same time wherever the first difference is, for secrets.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

impl Engine {
    /// Whether a request of `session_id` presenting `secret` (and, for a request a client may
    /// retry, its request id and key) may be proposed. Read-only: the server asks its replica
    /// before proposing, so a request that can only be refused never reaches the log.
    pub fn admit(
        &self,
        session_id: &str,
        secret: &str,
        retry: Option<(&str, crate::RequestKey)>,
    ) -> Admission {
        let Some(session) = self.sessions.get(session_id) else {
            return Admission::UnknownSession;
        };
        if !secrets_equal(session.secret.expose().as_bytes(), secret.as_bytes()) {
            return Admission::WrongSecret;
        }
        if let Some((request_id, key)) = retry
            && session.requests.get(request_id).is_some_and(|(stored, _)| stored != key)
        {
            return Admission::RequestIdReused;
        }
        Admission::Admitted { live: session.live }
    }

    /// What an OpenSession of `client` under `session_id` would meet: the server asks before
    /// proposing, so a retry is answered from the replica and a conflict refused at once.
    pub fn open_check(&self, session_id: &str, client: &Client) -> OpenCheck {
        match self.sessions.get(session_id) {
            None => OpenCheck::New,
            Some(existing) if client.owns(existing) => OpenCheck::Retry(existing.secret.clone()),
            Some(_) => OpenCheck::Conflict,
        }
    }

    pub(super) fn open_session(
        &mut self,
        session_id: SessionId,
        secret: SessionSecret,
        client: Client,
        ttl_ms: u64,
        fx: &mut Effects,
    ) -> Outcome {
        if let Some(existing) = self.sessions.get(session_id.as_str()) {
            // A retried open is answered again; a different client may not take the id.
            return if client.owns(existing) {
                Outcome::SessionOpened { session_id, secret: existing.secret.clone() }
            } else {
                Outcome::rejected(
                    RejectKind::SessionConflict,
                    format!("session id `{session_id}` is already in use"),
                )
            };
        }
        let Client { user, host, pid, display } = client;
        for (field, value) in [
            ("session_id", session_id.as_str()),
            ("session_secret", secret.expose()),
            ("user", user.as_str()),
            ("host", host.as_str()),
        ] {
            if let Err(rejected) = check_name(field, value) {
                return rejected;
            }
        }
        if !display.is_empty()
            && let Err(rejected) = check_name("display", &display)
        {
            return rejected;
        }
        if !(MIN_SESSION_TTL_MS..=MAX_SESSION_TTL_MS).contains(&ttl_ms) {
            return Outcome::rejected(
                RejectKind::InvalidArgument,
                format!(
                    "`ttl_ms` is {ttl_ms}; it must be {MIN_SESSION_TTL_MS}..={MAX_SESSION_TTL_MS}"
                ),
            );
        }
        if self.sessions.len() >= crate::MAX_SESSIONS {
            return Outcome::rejected(
                RejectKind::TooManySessions,
                format!(
                    "the cluster holds {} sessions, its limit: wait for idle ones to expire",
                    self.sessions.len()
                ),
            );
        }
        let (id, user, host): (Name, Name, Name) =
            (session_id.as_str().into(), user.into(), host.into());
        fx.events.push(Event::SessionOpened {
            session_id: id.clone(),
            user: user.clone(),
            host: host.clone(),
        });
        self.sessions.insert(
            id,
            Session {
                user,
                host,
                pid,
                display: display.into(),
                secret: secret.clone(),
                ttl_ms,
                opened: self.now,
                live: true,
                checkouts: Default::default(),
                queued: Default::default(),
                requests: Default::default(),
            },
        );
        Outcome::SessionOpened { session_id, secret }
    }

    /// Closing is idempotent: closing a session that is gone answers with nothing released.
    pub(super) fn close_session(&mut self, session_id: &str, fx: &mut Effects) -> Outcome {
        if let Err(rejected) = check_name("session_id", session_id) {
            return rejected;
        }
        let released = self.end_session(session_id, ReleaseCause::SessionClosed, fx);
        Outcome::SessionClosed { released }
    }

    pub(super) fn expire_sessions(&mut self, ids: Vec<SessionId>, fx: &mut Effects) -> Outcome {
        let mut sessions = Vec::new();
        let mut released = Vec::new();
        for id in ids {
            if self.sessions.get(id.as_str()).is_some_and(|s| s.live) {
                released.extend(self.end_session(&id, ReleaseCause::Expired, fx));
                sessions.push(id);
            }
        }
        Outcome::Expired { sessions, released }
    }

    /// Ends a live session: its queued requests leave the queue, its checkouts are released
    /// except borrows, which keep the session (not live) until they end.
    fn end_session(
        &mut self,
        session_id: &str,
        cause: ReleaseCause,
        fx: &mut Effects,
    ) -> Vec<Handle> {
        let Some(session) = self.sessions.get_mut(session_id).filter(|s| s.live) else {
            return Vec::new();
        };
        session.live = false;
        let queued: Vec<Handle> = session.queued.iter().copied().collect();
        let held: Vec<Handle> = session.checkouts.iter().copied().collect();
        for handle in queued {
            self.leave_queue(handle, QueueExit::SessionGone, fx);
        }
        let mut released = Vec::new();
        for handle in held {
            if self.checkouts.get(&handle).is_some_and(|c| c.borrow_until.is_none()) {
                self.release(handle, cause, fx);
                released.push(handle);
            }
        }
        fx.events.push(Event::SessionEnded {
            session_id: session_id.into(),
            expired: cause == ReleaseCause::Expired,
        });
        self.forget_session_if_done(session_id);
        released
    }

    /// Forgets a session that is no longer live and holds nothing.
    pub(super) fn forget_session_if_done(&mut self, session_id: &str) {
        if self
            .sessions
            .get(session_id)
            .is_some_and(|s| !s.live && s.checkouts.is_empty() && s.queued.is_empty())
        {
            self.sessions.remove(session_id);
        }
    }

    pub(super) fn remove(&mut self, target: RemoveTarget, fx: &mut Effects) -> Outcome {
        let handles: Vec<Handle> = match &target {
            RemoveTarget::Handle(handle) => {
                if !self.checkouts.contains_key(handle) {
                    return Outcome::rejected(
                        RejectKind::UnknownHandle,
                        format!("no checkout has handle {handle}"),
                    );
                }
                vec![*handle]
            }
            RemoveTarget::Holder { user, host, feature } => self
                .checkouts
                .iter()
                .filter(|(_, c)| feature.as_ref().is_none_or(|f| **f == *c.feature))
                .filter(|(_, c)| {
                    self.sessions.get(&c.session_id).is_some_and(|s| {
                        *s.user == **user && host.as_ref().is_none_or(|h| **h == *s.host)
                    })
                })
                .map(|(&h, _)| h)
                .collect(),
        };
        for &handle in &handles {
            self.release(handle, ReleaseCause::Removed, fx);
        }
        Outcome::Removed { released: handles }
    }
}
