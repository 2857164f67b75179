//! What a node checks against its own replica before it proposes a session's request: that
//! the session exists, that the secret presented is the session's, and that a reused request
//! id names the same request. A request that fails here can only be refused, so it is refused
//! here and never reaches the replicated log (every entry costs every node a write and an
//! fsync, and stays until a snapshot).
//!
//! The replica may lag the leader by a few entries: a session opened through another node a
//! moment ago may not be applied here yet. So "no such session" is said only after this node
//! has caught up with everything the leader had committed (one linearizable-read barrier),
//! the same rule WaitQueued follows before it answers Left. The checks are read-only and
//! every replica would answer them alike; the engine applies its own checks again to what is
//! proposed.

use qlm_node::node::Consistency;
use tonic::Status;

use crate::cluster_node::ClusterNode;
use crate::services::ClientServices;
use qlm_engine::{Admission, Client, MAX_SESSIONS, OpenCheck, RequestKey, SessionSecret};
use qlm_license::Timestamp;
use qlm_proto::v1;
use qlm_proto::validate::quote;

/// A session the replica knows, as far as a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// The session is there and the secret is its own. `live` is false for a session closed
    /// or expired that still holds borrowed checkouts; `now` is the replica's license time.
    Session { live: bool, now: Timestamp },
    /// No such session, even after catching up with the leader.
    Unknown,
}

impl<N: ClusterNode> ClientServices<N> {
    /// Checks a request of `session_id` presenting `secret` (and, for one a client may
    /// retry, its request id and key) against this replica, catching up once before it says
    /// the session is unknown. A wrong secret is UNAUTHENTICATED and a request id reused for
    /// another request INVALID_ARGUMENT, whatever the caller does next.
    pub async fn admit(
        &self,
        session_id: &str,
        secret: &str,
        retry: Option<(&str, RequestKey)>,
    ) -> Result<Known, Status> {
        let mut caught_up = false;
        loop {
            let (admission, now) = self
                .node
                .read(|engine| (engine.admit(session_id, secret, retry), engine.now()))
                .await;
            match admission {
                Admission::Admitted { live } => return Ok(Known::Session { live, now }),
                Admission::UnknownSession if caught_up => return Ok(Known::Unknown),
                Admission::UnknownSession => {
                    self.node.read_barrier(Consistency::Linearizable).await?;
                    caught_up = true;
                }
                Admission::WrongSecret => {
                    return Err(Status::unauthenticated(format!(
                        "`session_secret` is not the secret of session {}: only the process \
                         that opened a session may act for it (an administrator frees seats \
                         with AdminService.Remove)",
                        quote(session_id)
                    )));
                }
                Admission::RequestIdReused => {
                    return Err(Status::invalid_argument(format!(
                        "`request_id` {} was used by this session for a different request; \
                         make a new request id for each request (only a retry of the same \
                         request repeats one)",
                        quote(retry.map_or("", |(id, _)| id))
                    )));
                }
            }
        }
    }

    /// An OpenSession checked against the replica: the secret of the session a retried open
    /// opened already (answered without a proposal), ALREADY_EXISTS when another client holds
    /// the id its request id makes, `None` when the open is new and goes to the log.
    pub async fn open_retried(
        &self,
        request: &v1::OpenSessionRequest,
        session_id: &str,
    ) -> Result<Option<SessionSecret>, Status> {
        if request.request_id.is_empty() {
            return Ok(None);
        }
        let client = Client {
            user: request.user.clone(),
            host: request.host.clone(),
            pid: request.pid,
            display: request.display.clone(),
        };
        match self.node.read(|engine| engine.open_check(session_id, &client)).await {
            OpenCheck::New => Ok(None),
            OpenCheck::Retry(secret) => Ok(Some(secret)),
            OpenCheck::Conflict => Err(Status::already_exists(format!(
                "`request_id` {} opened a session for another process; make a new request id \
                 for each OpenSession",
                quote(&request.request_id)
            ))),
        }
    }

    /// RESOURCE_EXHAUSTED when the replica holds [`MAX_SESSIONS`] sessions already: the open
    /// could only be refused.
    pub async fn room_for_a_session(&self) -> Result<(), Status> {
        let held = self.node.read(|engine| engine.session_count()).await;
        if held >= MAX_SESSIONS {
            return Err(Status::resource_exhausted(format!(
                "the cluster holds {held} sessions, its limit: wait for idle ones to expire"
            )));
        }
        Ok(())
    }

    /// [`ClientServices::admit`] for a request that needs an open session: an unknown, closed
    /// or expired one is NOT_FOUND.
    pub async fn admit_live(
        &self,
        session_id: &str,
        secret: &str,
        retry: Option<(&str, RequestKey)>,
    ) -> Result<Timestamp, Status> {
        match self.admit(session_id, secret, retry).await? {
            Known::Session { live: true, now } => Ok(now),
            Known::Session { live: false, .. } | Known::Unknown => Err(session_gone(session_id)),
        }
    }
}

/// NOT_FOUND for a session that is closed, expired or was never opened.
pub fn session_gone(session_id: &str) -> Status {
    Status::not_found(format!(
        "session {} is closed or expired, or never existed: open a new session",
        quote(session_id)
    ))
}
