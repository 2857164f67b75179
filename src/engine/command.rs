//! What goes into the engine (commands) and what comes out (outcomes and events).
//!
//! A [`Command`] is one entry of the replicated log. Its [`Outcome`] is the answer to the one
//! client that asked; its [`Event`]s are what happened to everybody (a queued client granted
//! because another checked in, a seat that stopped lingering), in order, for the report log
//! and for clients waiting on a queue.

use serde::{Deserialize, Serialize};

use qlm_license::{Policy, Pool, PoolId, Timestamp, Version};

/// A shared, immutable name (feature, user, host, session id) inside the engine: cloning
/// one is a reference count, not an allocation, which matters on the apply path.
pub type Name = std::sync::Arc<str>;

/// A client session's id: made by the server before it proposes `OpenSession`, so that the
/// engine needs no randomness.
pub type SessionId = String;

/// A session's secret: what the session's own requests present. Its `Debug` hides the value,
/// so that no log line, panic or test failure that prints a command, an outcome or the
/// engine's state shows it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// The secret itself, to answer the session's own OpenSession or compare with a request's.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

impl From<String> for SessionSecret {
    fn from(secret: String) -> SessionSecret {
        SessionSecret(secret)
    }
}

impl From<&str> for SessionSecret {
    fn from(secret: &str) -> SessionSecret {
        SessionSecret(secret.to_owned())
    }
}

/// A client-made id of one mutating request; a retry carries the same id and gets the first
/// outcome back.
pub type RequestId = String;

/// A checkout's handle: numbered by the engine in log order, so every replica gives the same
/// handle to the same checkout. A queued request gets its handle when it queues.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Handle(pub u64);

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Replace the license set and the policy (start-up and reload). Seats held on pools that
    /// vanish stay held until released; new checkouts follow the new set.
    LoadLicenses { pools: Vec<Pool>, policy: Policy },
    /// A client process starts talking to the cluster.
    OpenSession {
        session_id: SessionId,
        /// What the session's own requests present (made by the server, like the id); a
        /// retried open is answered with the secret of the session it opened first.
        secret: SessionSecret,
        user: String,
        host: String,
        pid: u32,
        display: String,
        /// Milliseconds without a heartbeat after which the leader may expire the session.
        ttl_ms: u64,
    },
    /// A client says goodbye: its seats are released (borrowed ones stay until their end).
    CloseSession { session_id: SessionId },
    /// Take `count` seats of `feature` at `version` or higher.
    Checkout {
        session_id: SessionId,
        request_id: RequestId,
        feature: String,
        version: Version,
        count: u32,
        /// Wait in the feature's queue instead of being denied when no seat is free.
        wait: bool,
        /// Borrow until this instant: the seat needs no heartbeat until then.
        borrow_until: Option<Timestamp>,
    },
    /// Give back a checkout (or leave the queue, for a queued handle).
    Checkin { session_id: SessionId, request_id: RequestId, handle: Handle },
    /// Proposed by the leader for sessions whose heartbeat deadline has passed.
    ExpireSessions { session_ids: Vec<SessionId> },
    /// The admin's `lmremove`.
    Remove { target: RemoveTarget },
    /// Lets time pass: lingering seats and borrows end, pools start and expire, queues move.
    Tick,
}

/// What an admin removes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveTarget {
    /// One checkout.
    Handle(Handle),
    /// Every checkout of `user` (on `host`, of `feature`, when given).
    Holder { user: String, host: Option<String>, feature: Option<String> },
}

/// The answer to the client whose command it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    SessionOpened {
        session_id: SessionId,
        secret: SessionSecret,
    },
    SessionClosed {
        released: Vec<Handle>,
    },
    Granted(Grant),
    Queued {
        handle: Handle,
        position: u32,
    },
    Denied(Denial),
    CheckedIn {
        handle: Handle,
    },
    Expired {
        sessions: Vec<SessionId>,
        released: Vec<Handle>,
    },
    Removed {
        released: Vec<Handle>,
    },
    LicensesLoaded {
        serving: u32,
        retired: u32,
    },
    Ticked,
    /// The command could not be carried out (a failure, not a denial); nothing changed.
    Rejected(Rejection),
}

/// A granted checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub handle: Handle,
    pub feature: Name,
    /// The pool the seats come from.
    pub pool: PoolId,
    /// The version of that pool (at least the one asked for).
    pub version: Version,
    pub count: u32,
    /// True when the checkout shares seats already held by its user or host (dup_group) or
    /// takes back a lingering seat, so it took no new seat.
    pub shared: bool,
    pub since: Timestamp,
    pub borrow_until: Option<Timestamp>,
}

/// Why a checkout was not granted: an answer, not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DenialReason {
    /// No license line serves this feature.
    NoSuchFeature,
    /// Every seat is in use (the client may wait in the queue).
    AllInUse,
    /// The feature is licensed, but only at lower versions.
    VersionTooHigh,
    /// Every pool of the feature that fits has expired.
    Expired,
    /// Every pool of the feature that fits starts later.
    NotStarted,
    /// The options file excludes this client (EXCLUDE, or not in the INCLUDE list).
    Excluded,
    /// The free seats are reserved for others (RESERVE).
    ReservedForOthers,
    /// The client's user, host or group holds its MAX already.
    MaxReached,
    /// More seats asked at once than any pool has.
    CountTooHigh,
    /// The feature may not be borrowed, or not that long.
    BorrowNotAllowed,
    /// The client already holds seats of this feature and may not also queue for it.
    AlreadyHolding,
}

impl DenialReason {
    /// The wire spelling (`ALL_IN_USE`), as FlexLM admins know these reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::NoSuchFeature => "NO_SUCH_FEATURE",
            DenialReason::AllInUse => "ALL_IN_USE",
            DenialReason::VersionTooHigh => "VERSION_TOO_HIGH",
            DenialReason::Expired => "EXPIRED",
            DenialReason::NotStarted => "NOT_STARTED",
            DenialReason::Excluded => "EXCLUDED",
            DenialReason::ReservedForOthers => "RESERVED_FOR_OTHERS",
            DenialReason::MaxReached => "MAX_REACHED",
            DenialReason::CountTooHigh => "COUNT_TOO_HIGH",
            DenialReason::BorrowNotAllowed => "BORROW_NOT_ALLOWED",
            DenialReason::AlreadyHolding => "ALREADY_HOLDING",
        }
    }

    /// Whether waiting can help: seats may free up. Other reasons stay true until the
    /// licenses or the policy change.
    pub fn may_queue(self) -> bool {
        matches!(
            self,
            DenialReason::AllInUse | DenialReason::ReservedForOthers | DenialReason::MaxReached
        )
    }
}

/// A denial, with who holds the seats when they are all in use (as `lmstat` would show).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub reason: DenialReason,
    pub message: String,
    pub holders: Vec<Holder>,
}

/// Who holds a checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub handle: Handle,
    pub user: Name,
    pub host: Name,
    pub display: Name,
    pub count: u32,
    pub since: Timestamp,
}

/// Why a command failed (deterministically: every replica fails it the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RejectKind {
    /// A field is out of range or malformed; the message names it.
    InvalidArgument,
    /// The session does not exist (never opened, closed or expired).
    UnknownSession,
    /// The handle is not one of the session's checkouts.
    UnknownHandle,
    /// The session id is taken by another client.
    SessionConflict,
    /// The cluster holds as many sessions as it may ([`crate::MAX_SESSIONS`]).
    TooManySessions,
}

/// A failed command, with a message that names the problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub kind: RejectKind,
    pub message: String,
}

impl Outcome {
    pub(super) fn rejected(kind: RejectKind, message: impl Into<String>) -> Outcome {
        Outcome::Rejected(Rejection { kind, message: message.into() })
    }
}

/// Why seats were released other than by the holder's checkin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleaseCause {
    /// The session stopped heartbeating.
    Expired,
    /// The session was closed.
    SessionClosed,
    /// An admin removed it.
    Removed,
    /// The borrow period ended.
    BorrowEnded,
}

/// Why a queued request left the queue without a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueExit {
    /// The client cancelled (checkin of the queued handle).
    Cancelled,
    /// The session closed or expired.
    SessionGone,
    /// The request can no longer be granted (licenses reloaded, pool expired).
    Denied(DenialReason),
}

/// Something that happened, for the report log and for clients waiting on a queue. Every
/// replica produces the same events from the same log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    SessionOpened {
        session_id: Name,
        user: Name,
        host: Name,
    },
    SessionEnded {
        session_id: Name,
        expired: bool,
    },
    CheckedOut {
        handle: Handle,
        session_id: Name,
        user: Name,
        host: Name,
        feature: Name,
        version: Version,
        count: u32,
        shared: bool,
        /// Granted from the queue, not at request time.
        from_queue: bool,
    },
    Queued {
        handle: Handle,
        session_id: Name,
        feature: Name,
        position: u32,
    },
    Denied {
        session_id: Name,
        user: Name,
        host: Name,
        feature: Name,
        count: u32,
        reason: DenialReason,
    },
    CheckedIn {
        handle: Handle,
        session_id: Name,
        feature: Name,
        count: u32,
        lingers_until: Option<Timestamp>,
    },
    Released {
        handle: Handle,
        session_id: Name,
        feature: Name,
        count: u32,
        cause: ReleaseCause,
    },
    LeftQueue {
        handle: Handle,
        session_id: Name,
        feature: Name,
        exit: QueueExit,
    },
    LingerEnded {
        feature: Name,
        pool: PoolId,
        seats: u32,
    },
    LicensesLoaded {
        serving: u32,
        retired: u32,
    },
}

/// What one apply produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub outcome: Outcome,
    pub events: Vec<Event>,
}
