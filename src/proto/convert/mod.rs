//! Conversions between the engine's types and the wire's.
//!
//! Inward (a request into a [`Command`](qlm_engine::Command)) a conversion can fail: a
//! version that does not parse, a target that is missing. It then returns a
//! [`ConvertError`] that names the field, and nothing is proposed. Outward (an
//! [`Outcome`] or a view into a message) it cannot fail except when
//! an outcome does not answer the rpc at hand, which is a bug of the caller.
//!
//! Enum values read from the wire are plain `i32`s: a newer peer may send a value this build
//! does not know. Reading one is an error value, never a panic.
//!
//! This module is also the one table from failures to gRPC status codes
//! ([`rejection_status`], `From<ConvertError> for Status`), so that every rpc reports the
//! same failure with the same code, as the .proto files promise.
//!
//! - `license`: LicenseService requests into commands, outcomes into its answers
//! - `status`: engine views into StatusService messages
//! - `admin`: AdminService's removal and the refused lines of a reload

mod admin;
mod license;
mod status;

use tonic::{Code, Status};

use crate::v1;
use qlm_engine::{DenialReason, Outcome, RejectKind, Rejection};
use qlm_license::Version;

pub use admin::{refused_line, remove_command, remove_response};
pub use license::{
    checkin_command, checkin_response, checkout_command, checkout_response, close_session_command,
    close_session_response, denied, granted, granted_view, holder, open_session_command,
    queue_exit_update, queued_handle_state,
};
pub use status::{
    checkout_status, checkouts_response, feature_status, features_response, pool_status,
    queue_entry, reservation_status,
};

/// A wire value that cannot become an engine value, or an outcome that does not answer the
/// rpc it was given to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A request field is malformed; nothing was done.
    #[error("`{field}` {message}")]
    InvalidField { field: &'static str, message: String },
    /// An enum field holds a value this build does not know (a newer peer), or its
    /// UNSPECIFIED value where a real one is needed.
    #[error("`{field}` is {value}, which is not a known {enum_name} value")]
    UnknownEnumValue { field: &'static str, enum_name: &'static str, value: i32 },
    /// The engine's outcome does not answer this rpc: a bug of the caller, not of the client.
    #[error("the engine answered {outcome} to {rpc}")]
    UnexpectedOutcome { rpc: &'static str, outcome: &'static str },
}

impl From<ConvertError> for Status {
    fn from(error: ConvertError) -> Status {
        let code = match error {
            ConvertError::InvalidField { .. } | ConvertError::UnknownEnumValue { .. } => {
                Code::InvalidArgument
            }
            ConvertError::UnexpectedOutcome { .. } => Code::Internal,
        };
        Status::new(code, error.to_string())
    }
}

/// The gRPC code of an engine rejection, as the .proto files document it.
pub fn rejection_code(kind: RejectKind) -> Code {
    match kind {
        RejectKind::InvalidArgument => Code::InvalidArgument,
        RejectKind::UnknownSession | RejectKind::UnknownHandle => Code::NotFound,
        RejectKind::SessionConflict => Code::AlreadyExists,
        RejectKind::TooManySessions => Code::ResourceExhausted,
    }
}

/// The status an engine rejection fails its rpc with; the message is the engine's, which
/// names the field or the id at fault.
pub fn rejection_status(rejection: &Rejection) -> Status {
    Status::new(rejection_code(rejection.kind), rejection.message.clone())
}

impl From<DenialReason> for v1::DenialReason {
    fn from(reason: DenialReason) -> v1::DenialReason {
        match reason {
            DenialReason::NoSuchFeature => v1::DenialReason::NoSuchFeature,
            DenialReason::AllInUse => v1::DenialReason::AllInUse,
            DenialReason::VersionTooHigh => v1::DenialReason::VersionTooHigh,
            DenialReason::Expired => v1::DenialReason::Expired,
            DenialReason::NotStarted => v1::DenialReason::NotStarted,
            DenialReason::Excluded => v1::DenialReason::Excluded,
            DenialReason::ReservedForOthers => v1::DenialReason::ReservedForOthers,
            DenialReason::MaxReached => v1::DenialReason::MaxReached,
            DenialReason::CountTooHigh => v1::DenialReason::CountTooHigh,
            DenialReason::BorrowNotAllowed => v1::DenialReason::BorrowNotAllowed,
            DenialReason::AlreadyHolding => v1::DenialReason::AlreadyHolding,
        }
    }
}

impl TryFrom<v1::DenialReason> for DenialReason {
    type Error = ConvertError;

    /// Every wire reason but UNSPECIFIED is an engine reason.
    fn try_from(reason: v1::DenialReason) -> Result<DenialReason, ConvertError> {
        Ok(match reason {
            v1::DenialReason::Unspecified => {
                return Err(unknown_enum("reason", "DenialReason", reason as i32));
            }
            v1::DenialReason::NoSuchFeature => DenialReason::NoSuchFeature,
            v1::DenialReason::AllInUse => DenialReason::AllInUse,
            v1::DenialReason::VersionTooHigh => DenialReason::VersionTooHigh,
            v1::DenialReason::Expired => DenialReason::Expired,
            v1::DenialReason::NotStarted => DenialReason::NotStarted,
            v1::DenialReason::Excluded => DenialReason::Excluded,
            v1::DenialReason::ReservedForOthers => DenialReason::ReservedForOthers,
            v1::DenialReason::MaxReached => DenialReason::MaxReached,
            v1::DenialReason::CountTooHigh => DenialReason::CountTooHigh,
            v1::DenialReason::BorrowNotAllowed => DenialReason::BorrowNotAllowed,
            v1::DenialReason::AlreadyHolding => DenialReason::AlreadyHolding,
        })
    }
}

/// The engine reason of a `Denied.reason` as it arrives (an `i32`): an error for
/// UNSPECIFIED and for values this build does not know.
pub fn denial_reason_from_wire(value: i32) -> Result<DenialReason, ConvertError> {
    let reason = v1::DenialReason::try_from(value)
        .map_err(|_| unknown_enum("reason", "DenialReason", value))?;
    DenialReason::try_from(reason)
}

fn unknown_enum(field: &'static str, enum_name: &'static str, value: i32) -> ConvertError {
    ConvertError::UnknownEnumValue { field, enum_name, value }
}

/// A requested version: empty means any version (the engine's lowest, `0`).
fn version_from_wire(field: &'static str, text: &str) -> Result<Version, ConvertError> {
    if text.is_empty() {
        return Ok(Version::ZERO);
    }
    // The parser's own message repeats the text as written; a client's text is quoted short
    // and escaped instead, so the error names it without echoing what a caller sent.
    text.parse().map_err(|_| ConvertError::InvalidField {
        field,
        message: format!(
            "{} is not a version: at most 4 dotted numbers below 2^32, like 4.0 or 2.1.3",
            crate::validate::quote(text)
        ),
    })
}

/// The variant's name, for [`ConvertError::UnexpectedOutcome`].
fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::SessionOpened { .. } => "SessionOpened",
        Outcome::SessionClosed { .. } => "SessionClosed",
        Outcome::Granted(_) => "Granted",
        Outcome::Queued { .. } => "Queued",
        Outcome::Denied(_) => "Denied",
        Outcome::CheckedIn { .. } => "CheckedIn",
        Outcome::Expired { .. } => "Expired",
        Outcome::Removed { .. } => "Removed",
        Outcome::LicensesLoaded { .. } => "LicensesLoaded",
        Outcome::Ticked => "Ticked",
        Outcome::Rejected(_) => "Rejected",
    }
}

/// The failure of an rpc whose outcome is not its answer: the engine's rejection, or a bug.
fn not_an_answer(rpc: &'static str, outcome: Outcome) -> Status {
    match outcome {
        Outcome::Rejected(rejection) => rejection_status(&rejection),
        other => ConvertError::UnexpectedOutcome { rpc, outcome: outcome_name(&other) }.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every engine reason. The match below stops compiling when a reason is added, so that
    /// this list (and the wire enum) cannot silently fall behind.
    const ALL_REASONS: [DenialReason; 11] = [
        DenialReason::NoSuchFeature,
        DenialReason::AllInUse,
        DenialReason::VersionTooHigh,
        DenialReason::Expired,
        DenialReason::NotStarted,
        DenialReason::Excluded,
        DenialReason::ReservedForOthers,
        DenialReason::MaxReached,
        DenialReason::CountTooHigh,
        DenialReason::BorrowNotAllowed,
        DenialReason::AlreadyHolding,
    ];

    #[allow(dead_code)]
    fn every_reason_is_listed(reason: DenialReason) {
        match reason {
            DenialReason::NoSuchFeature
            | DenialReason::AllInUse
            | DenialReason::VersionTooHigh
            | DenialReason::Expired
            | DenialReason::NotStarted
            | DenialReason::Excluded
            | DenialReason::ReservedForOthers
            | DenialReason::MaxReached
            | DenialReason::CountTooHigh
            | DenialReason::BorrowNotAllowed
            | DenialReason::AlreadyHolding => {}
        }
    }

    #[test]
    fn every_denial_reason_maps_to_the_wire_and_back() {
        for reason in ALL_REASONS {
            let wire = v1::DenialReason::from(reason);
            assert_eq!(DenialReason::try_from(wire), Ok(reason));
            assert_eq!(denial_reason_from_wire(wire as i32), Ok(reason));
        }
    }

    #[test]
    fn wire_reason_names_are_the_flexlm_names_with_the_enum_prefix() {
        for reason in ALL_REASONS {
            let wire = v1::DenialReason::from(reason);
            assert_eq!(wire.as_str_name(), format!("DENIAL_REASON_{}", reason.as_str()));
        }
    }

    #[test]
    fn every_wire_reason_but_unspecified_is_an_engine_reason() {
        let mut known = 0;
        for value in 0..=64 {
            let Ok(wire) = v1::DenialReason::try_from(value) else { continue };
            known += 1;
            let engine = denial_reason_from_wire(value);
            if wire == v1::DenialReason::Unspecified {
                assert!(engine.is_err());
            } else {
                assert_eq!(engine.map(v1::DenialReason::from), Ok(wire));
            }
        }
        assert_eq!(known, ALL_REASONS.len() + 1);
    }

    #[test]
    fn unknown_wire_reasons_are_an_error_not_a_panic() {
        for value in [0, 12, 99, -1, i32::MAX, i32::MIN] {
            let error = denial_reason_from_wire(value).unwrap_err();
            assert_eq!(error, unknown_enum("reason", "DenialReason", value));
            assert_eq!(Status::from(error).code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn rejections_fail_with_the_codes_the_proto_files_document() {
        let cases = [
            (RejectKind::InvalidArgument, Code::InvalidArgument),
            (RejectKind::UnknownSession, Code::NotFound),
            (RejectKind::UnknownHandle, Code::NotFound),
            (RejectKind::SessionConflict, Code::AlreadyExists),
        ];
        for (kind, code) in cases {
            let status = rejection_status(&Rejection { kind, message: "`count` is 0".into() });
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), "`count` is 0");
        }
    }

    #[test]
    fn an_empty_version_asks_for_any_and_a_bad_one_names_the_field() {
        assert_eq!(version_from_wire("version", ""), Ok(Version::ZERO));
        assert_eq!(version_from_wire("version", "4.0").map(|v| v.to_string()), Ok("4.0".into()));
        let error = version_from_wire("version", "v4").unwrap_err();
        assert!(error.to_string().starts_with("`version` "), "{error}");
        assert_eq!(Status::from(error).code(), Code::InvalidArgument);
    }

    #[test]
    fn an_outcome_that_does_not_answer_the_rpc_is_an_internal_error() {
        let status = not_an_answer("Checkout", Outcome::Ticked);
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("Ticked"), "{}", status.message());
    }
}
