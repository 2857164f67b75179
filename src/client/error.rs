//! The one error type of the client library.
//!
//! A denial is an answer of the cluster, but for an application that asked for a seat it is
//! the end of the road, so [`ClientError::Denied`] carries everything the answer had (reason,
//! message, holders). Everything else is a failure: no server answered
//! ([`ClientError::Unreachable`]), the request was refused for what it said
//! ([`ClientError::InvalidArgument`], [`ClientError::Rejected`]), or the answer could not be
//! read ([`ClientError::Protocol`]).

use tonic::Code;

use qlm_proto::v1;

/// What went wrong with a request to the cluster.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// No server could be used: no list was given, or it could not be read.
    #[error("no license servers: {0}")]
    NoServers(String),
    /// Every attempt failed with a transport error, UNAVAILABLE or a deadline; `tried` lists
    /// the servers tried, in order, and `last` the last failure.
    #[error("no license server answered (tried {}): {last}", tried.join(", "))]
    Unreachable { tried: Vec<String>, last: String },
    /// The checkout was denied (or a queued request can no longer be granted).
    #[error("denied ({}): {message}", reason.as_str_name().trim_start_matches("DENIAL_REASON_"))]
    Denied { reason: v1::DenialReason, message: String, holders: Vec<v1::Holder> },
    /// A queued request left its queue without a grant: cancelled, or its session ended.
    #[error("queued request {handle} left its queue ({})", cause.as_str_name())]
    Left { handle: u64, cause: v1::LeftCause },
    /// The server refused the request's content (INVALID_ARGUMENT); nothing changed. The
    /// message names the field.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server refused the request for another reason (NOT_FOUND, ALREADY_EXISTS,
    /// UNAUTHENTICATED, PERMISSION_DENIED, FAILED_PRECONDITION, ...).
    #[error("refused ({code:?}): {message}")]
    Rejected { code: Code, message: String },
    /// An admin call without an admin token, or a token file that cannot be read.
    #[error("admin token: {0}")]
    AdminToken(String),
    /// TLS settings that cannot be used: a file that cannot be read or is not PEM, a
    /// certificate without its key. The message names the setting and the file.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server's answer is not one the contract allows (a required field missing).
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// Only node-locked lines could have granted, and each was refused; the message lists
    /// every refusal with its file, line, feature and reason.
    #[error("no node-locked license for this machine: {0}")]
    NodeLocked(String),
    /// A checkout that waited in its queue for as long as it was allowed to, without a grant.
    /// The request has been taken out of the queue.
    #[error("no seat was granted within {0:?} of waiting")]
    WaitTimedOut(std::time::Duration),
    /// The session is gone (the cluster expired it, or could not be reached for longer than
    /// its TTL): its seats may have been given to others. Open a new session.
    #[error("the license session was lost: {0}")]
    SessionLost(String),
}

impl ClientError {
    /// True when retrying the same request elsewhere may succeed: the cluster was not
    /// reached or did not decide.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// The error a failed rpc becomes when it is not retried.
    pub(crate) fn from_status(status: &tonic::Status) -> ClientError {
        match status.code() {
            Code::InvalidArgument => ClientError::InvalidArgument(status.message().to_owned()),
            code => ClientError::Rejected { code, message: status.message().to_owned() },
        }
    }
}

/// Whether a failed rpc may be retried on another node (common.proto: UNAVAILABLE,
/// DEADLINE_EXCEEDED and CANCELLED leave nothing done or the outcome unknown; a transport
/// failure before the server saw the request shows up as UNAVAILABLE or UNKNOWN with a
/// transport source; so does INTERNAL with an HTTP/2 error as its source, which is what a
/// plaintext client sees from a TLS port: no server answered).
pub(crate) fn is_retryable(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => true,
        Code::Unknown | Code::Internal => std::error::Error::source(status).is_some(),
        _ => false,
    }
}
