//! The status codes every entry point returns, and what each [`ClientError`] becomes.

use std::fmt;

use ::qlm_client::ClientError;

/// What a `qlm_*` function returns: `QLM_OK` (0), or why it failed; `qlm_last_error()` then
/// says more. The values are part of the ABI and never change meaning.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum qlm_status {
    /// Success.
    QLM_OK = 0,
    /// An argument is NULL, not UTF-8, too long or out of range; the message names it and
    /// its limit. Also: the server refused the request's content.
    QLM_ERR_INVALID_ARGUMENT = 1,
    /// A handle that is not (or no longer) one this library handed out: freed, closed,
    /// checked in, of another kind, or forged.
    QLM_ERR_BAD_HANDLE = 2,
    /// No license server or file could be used: nothing set in the environment, or a
    /// search path / server list that cannot be read.
    QLM_ERR_NO_SERVERS = 3,
    /// No server answered within the failover budget.
    QLM_ERR_UNREACHABLE = 4,
    /// The checkout was denied: `qlm_last_denial_reason()` and the holders say why.
    QLM_ERR_DENIED = 5,
    /// A wait in a feature's queue ran out (`wait_ms`).
    QLM_ERR_TIMEOUT = 6,
    /// Every node-locked license line of the feature was refused and no server is listed.
    QLM_ERR_NODE_LOCKED_REFUSED = 7,
    /// The cluster no longer knows the session (it expired): open a new one.
    QLM_ERR_SESSION_LOST = 8,
    /// The server refused the request for another reason (not found, permission, ...), or
    /// answered something the client cannot read.
    QLM_ERR_REJECTED = 9,
    /// A bug in the library (a panic was caught at the boundary); nothing was freed.
    QLM_ERR_INTERNAL = 10,
}

impl qlm_status {
    /// The value C sees.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A failed call: its status and the message `qlm_last_error()` will return, plus the
/// denial's details when the status is `QLM_ERR_DENIED`.
#[derive(Debug)]
pub struct Failure {
    pub status: qlm_status,
    pub message: String,
    pub denial: Option<Denial>,
}

/// The details of a denial, kept per thread for `qlm_last_denial_*`.
#[derive(Clone, Debug, Default)]
pub struct Denial {
    pub reason: String,
    pub holders: Vec<String>,
}

impl Failure {
    pub fn new(status: qlm_status, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into(), denial: None }
    }

    /// An argument refused before anything was sent.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(qlm_status::QLM_ERR_INVALID_ARGUMENT, message)
    }

    /// A handle not found in its registry.
    pub fn bad_handle(argument: &str, kind: &str) -> Failure {
        Failure::new(
            qlm_status::QLM_ERR_BAD_HANDLE,
            format!(
                "`{argument}` is not a live {kind} handle (freed, closed, of another kind, or \
                 never handed out by this library)"
            ),
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.status, self.message)
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        from_client_error(error)
    }
}

/// What a [`ClientError`] becomes at the boundary.
pub fn from_client_error(error: ClientError) -> Failure {
    use qlm_status::*;
    let message = error.to_string();
    let status = match &error {
        ClientError::Denied { reason, holders, .. } => {
            let denial = Denial {
                reason: reason.as_str_name().trim_start_matches("DENIAL_REASON_").to_owned(),
                holders: holders
                    .iter()
                    .map(|h| {
                        holder_line(
                            &h.user,
                            &h.host,
                            &h.display,
                            h.handle,
                            h.count,
                            h.since_unix_ms,
                        )
                    })
                    .collect(),
            };
            return Failure { status: QLM_ERR_DENIED, message, denial: Some(denial) };
        }
        ClientError::NoServers(_) | ClientError::Tls(_) => QLM_ERR_NO_SERVERS,
        ClientError::Unreachable { .. } => QLM_ERR_UNREACHABLE,
        ClientError::InvalidArgument(_) => QLM_ERR_INVALID_ARGUMENT,
        ClientError::Left { cause, .. } => {
            let denial = Denial { reason: cause.as_str_name().to_owned(), holders: Vec::new() };
            return Failure { status: QLM_ERR_DENIED, message, denial: Some(denial) };
        }
        ClientError::NodeLocked(_) => QLM_ERR_NODE_LOCKED_REFUSED,
        ClientError::WaitTimedOut(_) => QLM_ERR_TIMEOUT,
        ClientError::SessionLost(_) => QLM_ERR_SESSION_LOST,
        ClientError::Rejected { .. } | ClientError::AdminToken(_) | ClientError::Protocol(_) => {
            QLM_ERR_REJECTED
        }
    };
    Failure::new(status, message)
}

/// One holder as `qlm_last_denial_holder` shows it:
/// `user@host handle=7 count=1 since=1700000000000` (and ` display=:0` when it has one).
fn holder_line(
    user: &str,
    host: &str,
    display: &str,
    handle: u64,
    count: u32,
    since: u64,
) -> String {
    let mut line = format!("{user}@{host} handle={handle} count={count} since={since}");
    if !display.is_empty() {
        line.push_str(" display=");
        line.push_str(display);
    }
    line
}
