//! The checks on a Python caller's arguments, made before anything is sent, so that a bad
//! argument is `quorumlm.InvalidArgument` naming it (the server would refuse it too, but only
//! after a session was opened for nothing).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest feature name, in UTF-8 bytes (the C ABI's bound as well).
pub(crate) const MAX_FEATURE_BYTES: usize = 64;
/// Longest version, in UTF-8 bytes.
pub(crate) const MAX_VERSION_BYTES: usize = 32;
/// Most seats (or tokens) one checkout may ask for.
pub(crate) const MAX_COUNT: i64 = 1_000_000;
/// Longest server list or search path, in bytes.
pub(crate) const MAX_SEARCH_PATH_BYTES: usize = 64 * 1024;
/// Longest vendor key text, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 4 * 1024;

/// A feature name: not empty, at most [`MAX_FEATURE_BYTES`], no whitespace or control
/// characters.
pub(crate) fn feature(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("feature must not be empty".into());
    }
    if value.len() > MAX_FEATURE_BYTES {
        return Err(format!(
            "feature is {} bytes long; the limit is {MAX_FEATURE_BYTES}",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("feature must not contain {c:?} (whitespace or a control character)"));
    }
    Ok(())
}

/// A version: `None` for any; otherwise not empty, at most [`MAX_VERSION_BYTES`], no
/// whitespace or control characters.
pub(crate) fn version(value: Option<&str>) -> Result<Option<String>, String> {
    let Some(value) = value else { return Ok(None) };
    if value.is_empty() {
        return Err("version must not be empty (pass None for any version)".into());
    }
    if value.len() > MAX_VERSION_BYTES {
        return Err(format!(
            "version is {} bytes long; the limit is {MAX_VERSION_BYTES}",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("version must not contain {c:?} (whitespace or a control character)"));
    }
    Ok(Some(value.to_owned()))
}

/// A count of seats: 1 to [`MAX_COUNT`].
pub(crate) fn count(value: i64) -> Result<u32, String> {
    if !(1..=MAX_COUNT).contains(&value) {
        return Err(format!("count must be between 1 and {MAX_COUNT}, not {value}"));
    }
    u32::try_from(value).map_err(|_| format!("count {value} is out of range"))
}

/// A duration in seconds (`what` names the argument): finite and not negative; `positive`
/// also refuses zero.
pub(crate) fn seconds(what: &str, value: f64, positive: bool) -> Result<Duration, String> {
    if !value.is_finite() || value < 0.0 || (positive && value == 0.0) {
        let wanted = if positive { "a positive" } else { "a non-negative" };
        return Err(format!("{what} must be {wanted} finite number of seconds, not {value}"));
    }
    Duration::try_from_secs_f64(value).map_err(|e| format!("{what} = {value}: {e}"))
}

/// An instant given as a unix timestamp in seconds (from `datetime.timestamp()`): after 1970
/// and finite.
pub(crate) fn instant(what: &str, unix_seconds: f64) -> Result<SystemTime, String> {
    if !unix_seconds.is_finite() || unix_seconds <= 0.0 {
        return Err(format!("{what} must be a date after 1970, not the timestamp {unix_seconds}"));
    }
    let since = Duration::try_from_secs_f64(unix_seconds).map_err(|e| format!("{what}: {e}"))?;
    UNIX_EPOCH.checked_add(since).ok_or_else(|| format!("{what} is too far in the future"))
}

/// A text argument bounded to `limit` bytes, without NUL.
pub(crate) fn text(what: &str, value: &str, limit: usize) -> Result<(), String> {
    if value.len() > limit {
        return Err(format!("{what} is {} bytes long; the limit is {limit}", value.len()));
    }
    if value.contains('\0') {
        return Err(format!("{what} must not contain NUL"));
    }
    Ok(())
}
