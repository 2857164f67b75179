//! AdminService: the removal command and answer, and the refused lines of a reload.
//!
//! The engine takes any user and host in a removal; the wire asks for a target and a user,
//! so those two checks are made here, before anything is proposed.

use tonic::Status;

use crate::convert::{ConvertError, not_an_answer};
use crate::v1;
use qlm_engine::{Command, Handle, Outcome, RemoveTarget};
use qlm_license::LineError;

/// The command a Remove request proposes: one handle (not 0), or a user's checkouts,
/// narrowed by host and feature when they are not empty.
pub fn remove_command(request: v1::RemoveRequest) -> Result<Command, ConvertError> {
    use v1::remove_request::Target;
    let invalid =
        |field, message: &str| ConvertError::InvalidField { field, message: message.into() };
    let target = match request.target {
        None => return Err(invalid("target", "is missing: give a handle or a holder")),
        Some(Target::Handle(0)) => return Err(invalid("handle", "is 0, which is never a handle")),
        Some(Target::Handle(handle)) => RemoveTarget::Handle(Handle(handle)),
        Some(Target::Holder(holder)) if holder.user.is_empty() => {
            return Err(invalid("holder.user", "is empty"));
        }
        Some(Target::Holder(holder)) => RemoveTarget::Holder {
            user: holder.user,
            host: Some(holder.host).filter(|h| !h.is_empty()),
            feature: Some(holder.feature).filter(|f| !f.is_empty()),
        },
    };
    Ok(Command::Remove { target })
}

/// The answer to Remove, or the status it fails with.
pub fn remove_response(outcome: Outcome) -> Result<v1::RemoveResponse, Status> {
    match outcome {
        Outcome::Removed { released } => Ok(v1::RemoveResponse {
            released: released.into_iter().map(|h| h.0).collect(),
            leader: None,
        }),
        other => Err(not_an_answer("Remove", other)),
    }
}

/// A refused line of a license or options file.
pub fn refused_line(error: &LineError) -> v1::RefusedLine {
    v1::RefusedLine {
        file: error.origin.clone(),
        line: u32::try_from(error.line).unwrap_or(u32::MAX),
        field: error.field.clone().unwrap_or_default(),
        message: error.message.clone(),
        feature: error.feature.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use qlm_engine::{RejectKind, Rejection};

    fn holder(user: &str, host: &str, feature: &str) -> v1::RemoveRequest {
        let selector =
            v1::HolderSelector { user: user.into(), host: host.into(), feature: feature.into() };
        v1::RemoveRequest { target: Some(v1::remove_request::Target::Holder(selector)) }
    }

    #[test]
    fn a_removal_by_handle_or_by_holder_becomes_its_command() {
        let by_handle = v1::RemoveRequest { target: Some(v1::remove_request::Target::Handle(9)) };
        assert_eq!(
            remove_command(by_handle),
            Ok(Command::Remove { target: RemoveTarget::Handle(Handle(9)) })
        );
        assert_eq!(
            remove_command(holder("ann", "", "")),
            Ok(Command::Remove {
                target: RemoveTarget::Holder { user: "ann".into(), host: None, feature: None }
            })
        );
        assert_eq!(
            remove_command(holder("ann", "ws1", "vhdl")),
            Ok(Command::Remove {
                target: RemoveTarget::Holder {
                    user: "ann".into(),
                    host: Some("ws1".into()),
                    feature: Some("vhdl".into()),
                }
            })
        );
    }

    #[test]
    fn a_removal_without_target_handle_or_user_is_invalid_argument_naming_the_field() {
        let cases = [
            (v1::RemoveRequest { target: None }, "`target`"),
            (v1::RemoveRequest { target: Some(v1::remove_request::Target::Handle(0)) }, "`handle`"),
            (holder("", "ws1", ""), "`holder.user`"),
        ];
        for (request, field) in cases {
            let status = Status::from(remove_command(request).unwrap_err());
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(status.message().starts_with(field), "{}", status.message());
        }
    }

    #[test]
    fn a_removal_answers_the_released_handles_or_fails_with_not_found() {
        let removed = remove_response(Outcome::Removed { released: vec![Handle(2), Handle(5)] });
        assert_eq!(removed.unwrap().released, [2, 5]);
        let unknown = Outcome::Rejected(Rejection {
            kind: RejectKind::UnknownHandle,
            message: "no checkout has handle 9".into(),
        });
        assert_eq!(remove_response(unknown).unwrap_err().code(), Code::NotFound);
    }

    #[test]
    fn a_refused_line_keeps_file_line_feature_field_and_reason() {
        let error = LineError::field("site.lic", 12, "count", "`25x` is not a whole number")
            .with_feature("vhdl-editor");
        assert_eq!(
            refused_line(&error),
            v1::RefusedLine {
                file: "site.lic".into(),
                line: 12,
                field: "count".into(),
                message: "`25x` is not a whole number".into(),
                feature: "vhdl-editor".into(),
            }
        );
        assert_eq!(refused_line(&LineError::line("site.opt", 3, "bad")).field, "");
    }
}
