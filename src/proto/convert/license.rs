//! LicenseService: requests into engine commands, outcomes into answers.
//!
//! The engine checks names, counts and TTLs itself (every replica must refuse the same
//! commands), so the inward conversions only do what the wire adds: an empty version means
//! any, a count of 0 means 1, a TTL of 0 means the server's default.

use tonic::Status;

use crate::convert::{ConvertError, not_an_answer, version_from_wire};
use crate::v1;
use qlm_engine::{
    CheckoutView, Command, Denial, Engine, Grant, Handle, Holder, Outcome, QueueExit, SessionId,
};
use qlm_license::Timestamp;

/// The command that opens a session for `request`, under the id and secret the server made
/// for it. A TTL of 0 asks for `default_ttl_ms`.
pub fn open_session_command(
    request: v1::OpenSessionRequest,
    session_id: SessionId,
    secret: String,
    default_ttl_ms: u64,
) -> Command {
    let ttl_ms = if request.ttl_ms == 0 { default_ttl_ms } else { request.ttl_ms };
    Command::OpenSession {
        session_id,
        secret: secret.into(),
        user: request.user,
        host: request.host,
        pid: request.pid,
        display: request.display,
        ttl_ms,
    }
}

/// The command a checkout request proposes: an empty version asks for any version, a count
/// of 0 for one seat.
pub fn checkout_command(request: v1::CheckoutRequest) -> Result<Command, ConvertError> {
    Ok(Command::Checkout {
        version: version_from_wire("version", &request.version)?,
        session_id: request.session_id,
        request_id: request.request_id,
        feature: request.feature,
        count: request.count.max(1),
        wait: request.wait,
        borrow_until: request.borrow_until_unix_ms.map(Timestamp),
    })
}

/// The command a checkin request proposes.
pub fn checkin_command(request: v1::CheckinRequest) -> Command {
    Command::Checkin {
        session_id: request.session_id,
        request_id: request.request_id,
        handle: Handle(request.handle),
    }
}

/// The command a close request proposes.
pub fn close_session_command(request: v1::CloseSessionRequest) -> Command {
    Command::CloseSession { session_id: request.session_id }
}

/// The answer to Checkout, or the status it fails with. A retried request that had queued
/// and was cancelled since answers `Left`; the leader hint is the caller's to fill in.
pub fn checkout_response(outcome: Outcome) -> Result<v1::CheckoutResponse, Status> {
    use v1::checkout_response::Result as Answer;
    let result = match outcome {
        Outcome::Granted(grant) => Answer::Granted(granted(grant)),
        Outcome::Queued { handle, position } => {
            Answer::Queued(v1::Queued { handle: handle.0, position })
        }
        Outcome::Denied(denial) => Answer::Denied(denied(denial)),
        Outcome::CheckedIn { handle } => {
            Answer::Left(v1::Left { handle: handle.0, cause: v1::LeftCause::Cancelled.into() })
        }
        other => return Err(not_an_answer("Checkout", other)),
    };
    Ok(v1::CheckoutResponse { result: Some(result), leader: None })
}

/// The answer to Checkin, or the status it fails with.
pub fn checkin_response(outcome: Outcome) -> Result<v1::CheckinResponse, Status> {
    match outcome {
        Outcome::CheckedIn { handle } => Ok(v1::CheckinResponse { handle: handle.0, leader: None }),
        other => Err(not_an_answer("Checkin", other)),
    }
}

/// The answer to CloseSession, or the status it fails with.
pub fn close_session_response(outcome: Outcome) -> Result<v1::CloseSessionResponse, Status> {
    match outcome {
        Outcome::SessionClosed { released } => Ok(v1::CloseSessionResponse {
            released: released.into_iter().map(|h| h.0).collect(),
            leader: None,
        }),
        other => Err(not_an_answer("CloseSession", other)),
    }
}

/// A held checkout on the wire, as WaitQueued's final message reports it.
pub fn granted_view(view: &CheckoutView) -> v1::Granted {
    v1::Granted {
        handle: view.handle.0,
        feature: view.feature.to_string(),
        pool_id: view.pool.0.clone(),
        version: view.version.to_string(),
        count: view.count,
        shared: view.shared,
        since_unix_ms: view.since.0,
        borrow_until_unix_ms: view.borrow_until.map(|t| t.0),
    }
}

/// Where a handle stands for WaitQueued: held (`Ok`, the grant), waiting (`Err`, its place in
/// the queue), or neither (`None`: cancelled, denied, or its session ended).
pub fn queued_handle_state(engine: &Engine, handle: Handle) -> Option<Result<v1::Granted, u32>> {
    if let Some(view) = engine.checkout_view(handle) {
        return Some(Ok(granted_view(&view)));
    }
    engine.queue_position(handle).map(Err)
}

/// A granted checkout on the wire.
pub fn granted(grant: Grant) -> v1::Granted {
    v1::Granted {
        handle: grant.handle.0,
        feature: grant.feature.to_string(),
        pool_id: grant.pool.0,
        version: grant.version.to_string(),
        count: grant.count,
        shared: grant.shared,
        since_unix_ms: grant.since.0,
        borrow_until_unix_ms: grant.borrow_until.map(|t| t.0),
    }
}

/// A denial on the wire.
pub fn denied(denial: Denial) -> v1::Denied {
    v1::Denied {
        reason: v1::DenialReason::from(denial.reason).into(),
        message: denial.message,
        holders: denial.holders.into_iter().map(holder).collect(),
    }
}

/// A holder on the wire.
pub fn holder(holder: Holder) -> v1::Holder {
    v1::Holder {
        handle: holder.handle.0,
        user: holder.user.to_string(),
        host: holder.host.to_string(),
        display: holder.display.to_string(),
        count: holder.count,
        since_unix_ms: holder.since.0,
    }
}

/// The final WaitQueued message of a queued request that left its queue without a grant.
pub fn queue_exit_update(handle: Handle, exit: QueueExit) -> v1::queue_update::Update {
    use v1::queue_update::Update;
    let left =
        |cause: v1::LeftCause| Update::Left(v1::Left { handle: handle.0, cause: cause.into() });
    match exit {
        QueueExit::Cancelled => left(v1::LeftCause::Cancelled),
        QueueExit::SessionGone => left(v1::LeftCause::SessionEnded),
        QueueExit::Denied(reason) => Update::Denied(v1::Denied {
            reason: v1::DenialReason::from(reason).into(),
            message: format!(
                "queued request {handle} can no longer be granted ({}): the licenses or the \
                 options changed, or its pools expired",
                reason.as_str()
            ),
            holders: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::convert::denial_reason_from_wire;
    use qlm_engine::{DenialReason, RejectKind, Rejection};
    use qlm_license::{PoolId, Version};

    fn checkout_request() -> v1::CheckoutRequest {
        v1::CheckoutRequest {
            session_id: "s1".into(),
            session_secret: "k1".into(),
            request_id: "r1".into(),
            feature: "vhdl-editor".into(),
            version: "4.0".into(),
            count: 2,
            wait: true,
            borrow_until_unix_ms: None,
        }
    }

    fn grant() -> Grant {
        Grant {
            handle: Handle(7),
            feature: "vhdl-editor".into(),
            pool: PoolId("p-1".into()),
            version: "4.1".parse().unwrap(),
            count: 2,
            shared: false,
            since: Timestamp(1_700_000_000_000),
            borrow_until: Some(Timestamp(1_700_086_400_000)),
        }
    }

    #[test]
    fn a_checkout_request_becomes_the_checkout_command_field_for_field() {
        let command = checkout_command(v1::CheckoutRequest {
            borrow_until_unix_ms: Some(5),
            wait: false,
            ..checkout_request()
        })
        .unwrap();
        assert_eq!(
            command,
            Command::Checkout {
                session_id: "s1".into(),
                request_id: "r1".into(),
                feature: "vhdl-editor".into(),
                version: "4.0".parse().unwrap(),
                count: 2,
                wait: false,
                borrow_until: Some(Timestamp(5)),
            }
        );
    }

    #[test]
    fn a_checkout_without_version_or_count_asks_for_one_seat_of_any_version() {
        let request =
            v1::CheckoutRequest { version: String::new(), count: 0, ..checkout_request() };
        let Command::Checkout { version, count, .. } = checkout_command(request).unwrap() else {
            panic!("not a checkout")
        };
        assert_eq!((version, count), (Version::ZERO, 1));
    }

    #[test]
    fn a_malformed_version_is_invalid_argument_naming_the_field() {
        let request = v1::CheckoutRequest { version: "4.x".into(), ..checkout_request() };
        let status = Status::from(checkout_command(request).unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("`version`"), "{}", status.message());
    }

    #[test]
    fn an_open_session_with_ttl_zero_gets_the_default() {
        let request = v1::OpenSessionRequest {
            user: "ann".into(),
            host: "ws1".into(),
            pid: 42,
            display: ":0".into(),
            ttl_ms: 0,
            request_id: String::new(),
        };
        let Command::OpenSession { ttl_ms, session_id, pid, .. } =
            open_session_command(request.clone(), "s9".into(), "k9".into(), 30_000)
        else {
            panic!("not an open")
        };
        assert_eq!((ttl_ms, session_id.as_str(), pid), (30_000, "s9", 42));
        let request = v1::OpenSessionRequest { ttl_ms: 5_000, ..request };
        let Command::OpenSession { ttl_ms, .. } =
            open_session_command(request, "s9".into(), "k9".into(), 1)
        else {
            panic!("not an open")
        };
        assert_eq!(ttl_ms, 5_000);
    }

    #[test]
    fn a_grant_is_answered_as_granted_with_every_field() {
        let response = checkout_response(Outcome::Granted(grant())).unwrap();
        let Some(v1::checkout_response::Result::Granted(g)) = response.result else {
            panic!("{response:?}")
        };
        assert_eq!(
            g,
            v1::Granted {
                handle: 7,
                feature: "vhdl-editor".into(),
                pool_id: "p-1".into(),
                version: "4.1".into(),
                count: 2,
                shared: false,
                since_unix_ms: 1_700_000_000_000,
                borrow_until_unix_ms: Some(1_700_086_400_000),
            }
        );
    }

    #[test]
    fn a_denial_is_an_answer_with_its_reason_and_holders() {
        let denial = Denial {
            reason: DenialReason::AllInUse,
            message: "all 1 seats of vhdl-editor are in use".into(),
            holders: vec![Holder {
                handle: Handle(3),
                user: "bob".into(),
                host: "ws2".into(),
                display: "".into(),
                count: 1,
                since: Timestamp(10),
            }],
        };
        let response = checkout_response(Outcome::Denied(denial)).unwrap();
        let Some(v1::checkout_response::Result::Denied(d)) = response.result else {
            panic!("{response:?}")
        };
        assert_eq!(denial_reason_from_wire(d.reason), Ok(DenialReason::AllInUse));
        assert_eq!(d.message, "all 1 seats of vhdl-editor are in use");
        assert_eq!(d.holders.len(), 1);
        assert_eq!((d.holders[0].handle, d.holders[0].user.as_str()), (3, "bob"));
        assert_eq!(d.holders[0].since_unix_ms, 10);
    }

    #[test]
    fn a_queued_request_and_a_cancelled_retry_are_answered() {
        let queued = checkout_response(Outcome::Queued { handle: Handle(4), position: 2 });
        assert_eq!(
            queued.unwrap().result,
            Some(v1::checkout_response::Result::Queued(v1::Queued { handle: 4, position: 2 }))
        );
        let cancelled = checkout_response(Outcome::CheckedIn { handle: Handle(4) });
        assert_eq!(
            cancelled.unwrap().result,
            Some(v1::checkout_response::Result::Left(v1::Left {
                handle: 4,
                cause: v1::LeftCause::Cancelled.into()
            }))
        );
    }

    #[test]
    fn a_rejected_checkout_fails_with_the_rejections_code() {
        let outcome = Outcome::Rejected(Rejection {
            kind: RejectKind::UnknownSession,
            message: "session `s1` does not exist".into(),
        });
        let status = checkout_response(outcome).unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "session `s1` does not exist");
    }

    #[test]
    fn checkin_and_close_answer_their_outcomes_only() {
        let checked_in = checkin_response(Outcome::CheckedIn { handle: Handle(5) }).unwrap();
        assert_eq!(checked_in.handle, 5);
        let closed =
            close_session_response(Outcome::SessionClosed { released: vec![Handle(1), Handle(2)] })
                .unwrap();
        assert_eq!(closed.released, [1, 2]);
        assert_eq!(checkin_response(Outcome::Ticked).unwrap_err().code(), Code::Internal);
        let granted = Outcome::Granted(grant());
        assert_eq!(close_session_response(granted).unwrap_err().code(), Code::Internal);
    }

    #[test]
    fn a_queue_exit_is_the_final_update_of_its_stream() {
        use v1::queue_update::Update;
        let left = |cause: v1::LeftCause| Update::Left(v1::Left { handle: 8, cause: cause.into() });
        assert_eq!(
            queue_exit_update(Handle(8), QueueExit::Cancelled),
            left(v1::LeftCause::Cancelled)
        );
        assert_eq!(
            queue_exit_update(Handle(8), QueueExit::SessionGone),
            left(v1::LeftCause::SessionEnded)
        );
        let Update::Denied(d) =
            queue_exit_update(Handle(8), QueueExit::Denied(DenialReason::Expired))
        else {
            panic!("not a denial")
        };
        assert_eq!(denial_reason_from_wire(d.reason), Ok(DenialReason::Expired));
        assert!(d.message.contains("EXPIRED"), "{}", d.message);
    }
}
