//! Every request of the client port, checked whole at the edge, before anything is proposed,
//! forwarded or looked up.
//!
//! A client may be written from the .proto files in any language, or be hostile: every string
//! and every number a request carries is bounded here, with the limits common.proto documents,
//! so that the largest command that can reach the replicated log is small and known, and an
//! error never carries more of the input than [`MAX_QUOTED_CHARS`] characters (gRPC sends
//! the message in a trailer, and clients refuse large ones).
//!
//! These checks are pure and cheap (no lock, no clock), so they run first; what needs the
//! replica (is the session known, is the secret its own, is a request id reused) is
//! `qlm_server::edge`'s. The engine checks names again when it applies, because every replica
//! must refuse what any replica refuses.

use crate::convert::ConvertError;
use crate::v1;
use qlm_engine::{
    MAX_CHECKOUT_COUNT, MAX_NAME_BYTES, MAX_SESSION_TTL_MS, MIN_SESSION_TTL_MS, forbidden_in_name,
};

/// Longest version string a request may carry: four parts of up to ten digits and the dots.
pub const MAX_VERSION_BYTES: usize = 64;

/// Most characters of a client's input that an error message quotes.
pub const MAX_QUOTED_CHARS: usize = 32;

/// Largest encoded engine command that a request passing these checks can become (the log's
/// payload encoding, postcard): three names of [`MAX_NAME_BYTES`] and a few numbers. The
/// proposer batches commands into one log entry, so this bounds an entry's size too; the
/// unit tests and the `requests` fuzz target check it.
pub const MAX_COMMAND_BYTES: usize = 1024;

/// Longest error message a refusal of these checks carries: the field, the limit and a quote
/// of at most [`MAX_QUOTED_CHARS`] characters (each escaped to at most 10 bytes), which fits
/// in any client's trailer limit.
pub const MAX_ERROR_BYTES: usize = 512;

/// `value` for an error message: at most [`MAX_QUOTED_CHARS`] characters, control and
/// formatting characters escaped, and `...` when it was cut.
pub fn quote(value: &str) -> String {
    let mut quoted = String::from("\"");
    for c in value.chars().take(MAX_QUOTED_CHARS) {
        if forbidden_in_name(c) || c == '"' || c == '\\' {
            quoted.extend(c.escape_default());
        } else {
            quoted.push(c);
        }
    }
    quoted.push('"');
    if value.chars().nth(MAX_QUOTED_CHARS).is_some() {
        quoted.push_str("...");
    }
    quoted
}

fn invalid(field: &'static str, message: String) -> ConvertError {
    ConvertError::InvalidField { field, message }
}

/// A required name: not empty, at most [`MAX_NAME_BYTES`], no control or bidirectional
/// formatting character.
pub fn name(field: &'static str, value: &str) -> Result<(), ConvertError> {
    if value.is_empty() {
        return Err(invalid(field, "is empty".to_string()));
    }
    optional_name(field, value)
}

/// A name that may be empty (a filter, a display).
pub fn optional_name(field: &'static str, value: &str) -> Result<(), ConvertError> {
    if value.len() > MAX_NAME_BYTES {
        return Err(invalid(
            field,
            format!("is {} bytes long; the limit is {MAX_NAME_BYTES}", value.len()),
        ));
    }
    if let Some((at, c)) = value.char_indices().find(|&(_, c)| forbidden_in_name(c)) {
        return Err(invalid(
            field,
            format!(
                "contains U+{:04X} at byte {at}: names may not hold control or bidirectional \
                 formatting characters",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// A version as a request carries it: empty (any) or at most [`MAX_VERSION_BYTES`]; whether
/// it parses is the conversion's to say.
pub fn version(field: &'static str, value: &str) -> Result<(), ConvertError> {
    if value.len() > MAX_VERSION_BYTES {
        return Err(invalid(
            field,
            format!("is {} bytes long; the limit is {MAX_VERSION_BYTES}", value.len()),
        ));
    }
    Ok(())
}

fn handle(value: u64) -> Result<(), ConvertError> {
    if value == 0 {
        return Err(invalid("handle", "is 0; give a handle from Granted or Queued".to_string()));
    }
    Ok(())
}

/// The session's id and secret every request of a session carries.
fn session(session_id: &str, secret: &str) -> Result<(), ConvertError> {
    name("session_id", session_id)?;
    if secret.is_empty() {
        return Err(invalid(
            "session_secret",
            "is empty: send the secret OpenSession answered (a client written before session \
             secrets must be upgraded)"
                .to_string(),
        ));
    }
    name("session_secret", secret)
}

pub fn open_session(request: &v1::OpenSessionRequest) -> Result<(), ConvertError> {
    name("user", &request.user)?;
    name("host", &request.host)?;
    optional_name("display", &request.display)?;
    optional_name("request_id", &request.request_id)?;
    let ttl = request.ttl_ms;
    if ttl != 0 && !(MIN_SESSION_TTL_MS..=MAX_SESSION_TTL_MS).contains(&ttl) {
        return Err(invalid(
            "ttl_ms",
            format!(
                "is {ttl}; it must be 0 (the server's default) or \
                 {MIN_SESSION_TTL_MS}..={MAX_SESSION_TTL_MS}"
            ),
        ));
    }
    Ok(())
}

pub fn heartbeat(request: &v1::HeartbeatRequest) -> Result<(), ConvertError> {
    session(&request.session_id, &request.session_secret)
}

pub fn checkout(request: &v1::CheckoutRequest) -> Result<(), ConvertError> {
    session(&request.session_id, &request.session_secret)?;
    name("request_id", &request.request_id)?;
    name("feature", &request.feature)?;
    version("version", &request.version)?;
    if request.count > MAX_CHECKOUT_COUNT {
        return Err(invalid(
            "count",
            format!("is {}; the limit is {MAX_CHECKOUT_COUNT}", request.count),
        ));
    }
    if request.wait && request.borrow_until_unix_ms.is_some() {
        return Err(invalid(
            "wait",
            "cannot be combined with `borrow_until_unix_ms`: a borrow is taken now or not"
                .to_string(),
        ));
    }
    Ok(())
}

pub fn checkin(request: &v1::CheckinRequest) -> Result<(), ConvertError> {
    session(&request.session_id, &request.session_secret)?;
    name("request_id", &request.request_id)?;
    handle(request.handle)
}

pub fn wait_queued(request: &v1::WaitQueuedRequest) -> Result<(), ConvertError> {
    session(&request.session_id, &request.session_secret)?;
    handle(request.handle)
}

pub fn close_session(request: &v1::CloseSessionRequest) -> Result<(), ConvertError> {
    session(&request.session_id, &request.session_secret)
}

pub fn features(request: &v1::FeaturesRequest) -> Result<(), ConvertError> {
    optional_name("feature", &request.feature)
}

pub fn checkouts(request: &v1::CheckoutsRequest) -> Result<(), ConvertError> {
    optional_name("feature", &request.feature)?;
    optional_name("user", &request.user)?;
    optional_name("session_id", &request.session_id)
}

/// The holder's names; a missing target or handle 0 is `convert::remove_command`'s to refuse.
pub fn remove(request: &v1::RemoveRequest) -> Result<(), ConvertError> {
    match &request.target {
        Some(v1::remove_request::Target::Holder(holder)) => {
            name("holder.user", &holder.user)?;
            optional_name("holder.host", &holder.host)?;
            optional_name("holder.feature", &holder.feature)
        }
        Some(v1::remove_request::Target::Handle(_)) | None => Ok(()),
    }
}

/// An address as `qlm cluster add` sends it: a name, and `host:port`.
fn address(field: &'static str, value: &str) -> Result<(), ConvertError> {
    name(field, value)?;
    let port = value.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(port))) if !host.is_empty() && port != 0 => Ok(()),
        _ => Err(invalid(field, format!("{} is not host:port", quote(value)))),
    }
}

pub fn add_node(request: &v1::AddNodeRequest) -> Result<(), ConvertError> {
    if request.id == 0 {
        return Err(invalid("id", "is 0; node ids start at 1".to_string()));
    }
    address("peer_addr", &request.peer_addr)?;
    if request.client_addr.is_empty() {
        return Ok(()); // learned from the node itself (Hello) once it runs
    }
    address("client_addr", &request.client_addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: ConvertError) -> String {
        error.to_string()
    }

    #[test]
    fn a_quote_is_short_and_escapes_what_a_terminal_would_act_on() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "x".repeat(1 << 20);
        assert_eq!(quote(&long).len(), MAX_QUOTED_CHARS + 2 + 3);
        assert_eq!(quote("a\u{202E}b\n"), "\"a\\u{202e}b\\n\"");
    }

    #[test]
    fn names_are_bounded_and_refuse_control_and_bidi_characters() {
        assert!(name("user", "alice").is_ok());
        assert!(name("user", &"é".repeat(128)).is_ok());
        let too_long = message(name("user", &"a".repeat(257)).unwrap_err());
        assert_eq!(too_long, "`user` is 257 bytes long; the limit is 256");
        assert_eq!(message(name("user", "").unwrap_err()), "`user` is empty");
        for bad in ["a\0b", "a\nb", "al\u{202E}ice", "a\u{2066}", "\u{200F}x", "x\u{7F}"] {
            let text = message(name("user", bad).unwrap_err());
            assert!(text.starts_with("`user` contains U+"), "{text}");
        }
        assert!(optional_name("display", "").is_ok());
    }

    #[test]
    fn an_oversize_field_is_named_with_its_size_and_never_echoed() {
        let request = v1::CheckoutRequest {
            session_id: "s".repeat(3 << 20),
            session_secret: "k".into(),
            request_id: "r".into(),
            feature: "f".into(),
            ..Default::default()
        };
        let text = message(checkout(&request).unwrap_err());
        assert!(text.contains("`session_id`") && text.contains("3145728 bytes"), "{text}");
        assert!(text.len() < 100, "{text}");
        let request = v1::CheckoutRequest {
            session_id: "s".into(),
            session_secret: "k".into(),
            request_id: "r".into(),
            feature: "f".into(),
            version: "9".repeat(20_000),
            ..Default::default()
        };
        let text = message(checkout(&request).unwrap_err());
        assert!(text.starts_with("`version` is 20000 bytes") && text.len() < 100, "{text}");
    }

    #[test]
    fn every_session_request_needs_the_secret() {
        let empty = message(
            heartbeat(&v1::HeartbeatRequest {
                session_id: "s1".into(),
                session_secret: String::new(),
            })
            .unwrap_err(),
        );
        assert!(empty.starts_with("`session_secret` is empty"), "{empty}");
        let close = v1::CloseSessionRequest { session_id: "s1".into(), session_secret: "".into() };
        assert!(close_session(&close).is_err());
        let wait = v1::WaitQueuedRequest {
            session_id: "s1".into(),
            session_secret: "k".into(),
            handle: 0,
        };
        assert!(message(wait_queued(&wait).unwrap_err()).starts_with("`handle` is 0"));
    }

    #[test]
    fn counts_and_wait_with_borrow_are_refused_before_the_log() {
        let base = v1::CheckoutRequest {
            session_id: "s".into(),
            session_secret: "k".into(),
            request_id: "r".into(),
            feature: "f".into(),
            ..Default::default()
        };
        assert!(checkout(&base).is_ok());
        let huge = v1::CheckoutRequest { count: MAX_CHECKOUT_COUNT + 1, ..base.clone() };
        assert!(message(checkout(&huge).unwrap_err()).starts_with("`count` is 1000001"));
        let open = |ttl_ms| v1::OpenSessionRequest {
            user: "u".into(),
            host: "h".into(),
            ttl_ms,
            ..Default::default()
        };
        for ttl in [0, MIN_SESSION_TTL_MS, MAX_SESSION_TTL_MS] {
            assert!(open_session(&open(ttl)).is_ok(), "{ttl}");
        }
        for ttl in [1, MAX_SESSION_TTL_MS + 1] {
            assert!(message(open_session(&open(ttl)).unwrap_err()).starts_with("`ttl_ms` is"));
        }
        let both =
            v1::CheckoutRequest { wait: true, borrow_until_unix_ms: Some(1), ..base.clone() };
        assert!(message(checkout(&both).unwrap_err()).starts_with("`wait` cannot"));
    }

    #[test]
    fn the_largest_valid_requests_make_commands_under_the_documented_bound() {
        use crate::convert;
        let big = |c: char| c.to_string().repeat(MAX_NAME_BYTES);
        let open = v1::OpenSessionRequest {
            user: big('u'),
            host: big('h'),
            pid: u32::MAX,
            display: big('d'),
            ttl_ms: MAX_SESSION_TTL_MS,
            request_id: big('r'),
        };
        open_session(&open).unwrap();
        let id = "f".repeat(32);
        let open = convert::open_session_command(open, id.clone(), id, u64::MAX);
        let checkout_request = v1::CheckoutRequest {
            session_id: big('s'),
            session_secret: big('k'),
            request_id: big('r'),
            feature: big('f'),
            version: "4294967295.4294967295.4294967295.4294967295".into(),
            count: MAX_CHECKOUT_COUNT,
            wait: false,
            borrow_until_unix_ms: Some(u64::MAX),
        };
        checkout(&checkout_request).unwrap();
        let checkout = convert::checkout_command(checkout_request).unwrap();
        let holder = v1::HolderSelector { user: big('u'), host: big('h'), feature: big('f') };
        let remove_request =
            v1::RemoveRequest { target: Some(v1::remove_request::Target::Holder(holder)) };
        remove(&remove_request).unwrap();
        let remove = convert::remove_command(remove_request).unwrap();
        for command in [open, checkout, remove] {
            let bytes = postcard::to_stdvec(&command).unwrap().len();
            assert!(bytes <= MAX_COMMAND_BYTES, "{bytes} bytes: {command:?}");
        }
    }

    #[test]
    fn admin_and_status_filters_are_bounded_too() {
        let filter = v1::CheckoutsRequest { user: "u".repeat(1 << 20), ..Default::default() };
        assert!(message(checkouts(&filter).unwrap_err()).starts_with("`user` is 1048576"));
        let remove_all = v1::RemoveRequest {
            target: Some(v1::remove_request::Target::Holder(v1::HolderSelector {
                user: "u".repeat(3 << 20),
                ..Default::default()
            })),
        };
        assert!(message(remove(&remove_all).unwrap_err()).starts_with("`holder.user` is"));
        let add = v1::AddNodeRequest {
            id: 4,
            peer_addr: "10.0.0.4:7401".into(),
            client_addr: "nowhere".into(),
            learner_only: false,
        };
        assert_eq!(
            message(add_node(&add).unwrap_err()),
            "`client_addr` \"nowhere\" is not host:port"
        );
    }
}
