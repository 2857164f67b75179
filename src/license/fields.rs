//! The values of a FEATURE line's fields: what each key accepts, and the [`Pool`] they make.
//!
//! Every rule here refuses rather than guesses: a license is a contract, and a value the
//! vendor did not mean (`count=25x`, `expires=2027-02-30`) must stop the line, with a message
//! that names the field and says what is wrong, not be read as something close. Values reach
//! these functions unquoted and already checked to be non-empty and free of control
//! characters (`file.rs`).

use std::collections::{BTreeMap, BTreeSet};

use crate::hostid::{HostIdKind, check_host_id};
use crate::pool::{
    DEFAULT_MAX_BORROW_HOURS, DupGroup, Expiry, HostId, MAX_POOL_SEATS, Pool, PoolId, SeatUnit,
};
use crate::time::Date;
use crate::version::Version;

/// Longest feature or vendor name, in characters.
pub const MAX_NAME_CHARS: usize = crate::names::MAX_FEATURE_NAME_LEN;

/// Longest `borrow=` a vendor may allow, in hours (one year).
pub const MAX_BORROW_HOURS: u32 = 8760;

/// `count=uncounted`, FlexLM's spelling of a node-locked line: unlimited use on the machines
/// its `hostid=` names, checked by the application itself, never served by a server.
pub const UNCOUNTED: &str = "uncounted";

/// Most machines one `hostid=` list may name.
pub const MAX_HOST_IDS: usize = 64;

/// Longest piece of user text quoted back in an error message, in characters.
pub const MAX_SHOWN_CHARS: usize = 40;

/// User text as it appears in a message: control characters escaped, long text cut short, so
/// a hostile file cannot garble the admin's terminal or flood the log.
pub fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_SHOWN_CHARS).flat_map(char::escape_debug).collect();
    if text.chars().nth(MAX_SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Checks a feature or vendor name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
/// [`MAX_NAME_CHARS`] characters.
pub fn check_name(what: &str, name: &str) -> Result<String, String> {
    crate::names::check_identifier(what, name).map(|()| name.to_owned())
}

/// A whole number in `min..=max`, written as plain digits (no sign, no spaces).
fn whole_number(value: &str, min: u32, max: u32, unit: &str) -> Result<u32, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{}` is not a whole number of {unit} ({min}..={max})", shown(value)));
    }
    let too_large = || format!("`{}` is more than the maximum of {max} {unit}", shown(value));
    // Leading zeros are harmless (`007`); without them, more than 10 digits exceeds any u32.
    let significant = value.trim_start_matches('0');
    if significant.len() > 10 {
        return Err(too_large());
    }
    let number: u64 =
        if significant.is_empty() { 0 } else { significant.parse().map_err(|_| too_large())? };
    if number > u64::from(max) {
        return Err(too_large());
    }
    if number < u64::from(min) {
        return Err(format!("`{value}` is less than the minimum of {min} {unit}"));
    }
    Ok(number as u32)
}

/// `count=` or `tokens=`: 1..=[`MAX_POOL_SEATS`].
pub fn parse_seats(value: &str, unit: SeatUnit) -> Result<u32, String> {
    whole_number(value, 1, MAX_POOL_SEATS, unit.as_str())
}

/// `borrow=`: `no` (borrowing not allowed, 0) or whole hours 1..=[`MAX_BORROW_HOURS`].
pub fn parse_borrow(value: &str) -> Result<u32, String> {
    if value.eq_ignore_ascii_case("no") {
        return Ok(0);
    }
    whole_number(value, 1, MAX_BORROW_HOURS, "hours")
        .map_err(|e| format!("{e}; write `no` to forbid borrowing"))
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(value: &str) -> Result<Date, String> {
    value.parse::<Date>().map_err(|e| {
        if e.contains(value) { e } else { format!("`{}` is not a valid date: {e}", shown(value)) }
    })
}

/// `expires=`: a date, or `permanent`.
pub fn parse_expiry(value: &str) -> Result<Expiry, String> {
    if value.eq_ignore_ascii_case("permanent") {
        return Ok(Expiry::Permanent);
    }
    parse_date(value).map(Expiry::On).map_err(|e| format!("{e}, or `permanent`"))
}

/// `hostid=`: `ANY`, or host ids separated by spaces or commas, each in one of the forms of
/// `hostid.rs`.
pub fn parse_hostid(value: &str) -> Result<HostId, String> {
    let ids: BTreeSet<String> = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(format!("`{}` names no host id (write ANY or a list)", shown(value)));
    }
    if ids.iter().any(|id| id.eq_ignore_ascii_case("ANY")) {
        return match ids.len() {
            1 => Ok(HostId::Any),
            _ => Err("`ANY` cannot be combined with other host ids".to_owned()),
        };
    }
    if ids.len() > MAX_HOST_IDS {
        return Err(format!("names {} host ids; at most {MAX_HOST_IDS} are allowed", ids.len()));
    }
    for id in &ids {
        check_host_id(id)?;
    }
    Ok(HostId::List(ids))
}

/// `count=`: seats, or FlexLM's `uncounted` (a node-locked line).
fn parse_count(value: &str) -> Result<(u32, SeatUnit), String> {
    if value.eq_ignore_ascii_case(UNCOUNTED) {
        return Ok((0, SeatUnit::Uncounted));
    }
    parse_seats(value, SeatUnit::Seats)
        .map(|seats| (seats, SeatUnit::Seats))
        .map_err(|e| format!("{e}, or `{UNCOUNTED}` for a node-locked line"))
}

/// What a node-locked line needs of its `hostid=`: machines named in forms an application
/// can check on its own machine.
fn check_node_locked(hostid: Option<&HostId>) -> Result<(), String> {
    let ids = match hostid {
        Some(HostId::List(ids)) => ids,
        Some(HostId::Any) | None => {
            return Err(format!(
                "count={UNCOUNTED} (node-locked) needs hostid= naming the machines it is \
                 locked to, not ANY: an uncounted line for any machine would be unlimited use"
            ));
        }
    };
    match ids.iter().find(|id| !check_host_id(id).is_ok_and(HostIdKind::is_machine_id)) {
        Some(word) => Err(format!(
            "`{}` cannot name a machine of a node-locked line: write an ethernet address \
             (12 hex digits), HOSTNAME=name or MACHINE_ID=hex, as `qlm hostid` prints them",
            shown(word)
        )),
        None => Ok(()),
    }
}

/// `dup_group=`: `none`, `user`, `host` or `user_host`.
pub fn parse_dup_group(value: &str) -> Result<DupGroup, String> {
    [DupGroup::None, DupGroup::User, DupGroup::Host, DupGroup::UserHost]
        .into_iter()
        .find(|group| value.eq_ignore_ascii_case(group.as_str()))
        .ok_or_else(|| format!("`{}` is not one of none, user, host, user_host", shown(value)))
}

/// The pool of a line whose keys are all known and whose values are clean text. On failure,
/// the field at fault and the message.
pub fn build_pool(
    id: PoolId,
    feature: &str,
    fields: &BTreeMap<String, String>,
) -> Result<Pool, (&'static str, String)> {
    fn optional<T>(
        fields: &BTreeMap<String, String>,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, (&'static str, String)> {
        fields.get(key).map(|value| parse(value).map_err(|e| (key, e))).transpose()
    }
    fn required<T>(
        fields: &BTreeMap<String, String>,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, (&'static str, String)> {
        optional(fields, key, parse)?
            .ok_or_else(|| (key, format!("missing: every FEATURE line needs `{key}=`")))
    }

    let vendor = required(fields, "vendor", |v| check_name("vendor", v))?;
    let version = required(fields, "version", str::parse::<Version>)?;
    let count = optional(fields, "count", parse_count)?;
    let tokens = optional(fields, "tokens", |v| parse_seats(v, SeatUnit::Tokens))?;
    let (seats, unit) = match (count, tokens) {
        (Some(count), None) => count,
        (None, Some(tokens)) => (tokens, SeatUnit::Tokens),
        (Some(_), Some(_)) => {
            return Err((
                "tokens",
                "both count= and tokens= are given; a pool counts either seats or tokens"
                    .to_owned(),
            ));
        }
        (None, None) => {
            return Err(("count", "missing: give count=N (seats) or tokens=N".to_owned()));
        }
    };
    let start = optional(fields, "start", parse_date)?;
    let expires = required(fields, "expires", parse_expiry)?;
    if let (Some(start), Expiry::On(end)) = (start, expires)
        && start > end
    {
        return Err(("start", format!("start date {start} is after the expiry date {end}")));
    }
    let hostid = optional(fields, "hostid", parse_hostid)?;
    if unit == SeatUnit::Uncounted {
        check_node_locked(hostid.as_ref()).map_err(|e| ("hostid", e))?;
    }
    Ok(Pool {
        id,
        feature: feature.to_owned(),
        vendor,
        version,
        seats,
        unit,
        start,
        expires,
        issued: optional(fields, "issued", parse_date)?,
        hostid: hostid.unwrap_or(HostId::Any),
        dup_group: optional(fields, "dup_group", parse_dup_group)?.unwrap_or_default(),
        customer: fields.get("customer").cloned(),
        notes: fields.get("notes").cloned(),
        max_borrow_hours: optional(fields, "borrow", parse_borrow)?
            .unwrap_or(DEFAULT_MAX_BORROW_HOURS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_seats_or_uncounted() {
        assert_eq!(parse_count("25"), Ok((25, SeatUnit::Seats)));
        assert_eq!(parse_count("uncounted"), Ok((0, SeatUnit::Uncounted)));
        assert_eq!(parse_count("UNCOUNTED"), Ok((0, SeatUnit::Uncounted)));
        let e = parse_count("unlimited").unwrap_err();
        assert!(e.contains("not a whole number") && e.contains("`uncounted`"), "{e}");
        assert!(parse_seats("uncounted", SeatUnit::Tokens).is_err());
    }

    #[test]
    fn a_node_locked_line_needs_machine_host_ids() {
        let list = |ids: &[&str]| HostId::List(ids.iter().map(|id| id.to_string()).collect());
        assert_eq!(check_node_locked(Some(&list(&["HOSTNAME=build7", "001a2b3c4d5e"]))), Ok(()));
        assert!(check_node_locked(None).unwrap_err().contains("not ANY"));
        assert!(check_node_locked(Some(&HostId::Any)).unwrap_err().contains("not ANY"));
        let e = check_node_locked(Some(&list(&["HOSTNAME=build7", "lic-server"]))).unwrap_err();
        assert!(e.contains("`lic-server` cannot name a machine"), "{e}");
    }

    #[test]
    fn seat_counts_are_plain_whole_numbers_in_range() {
        assert_eq!(parse_seats("25", SeatUnit::Seats), Ok(25));
        assert_eq!(parse_seats("1000000", SeatUnit::Tokens), Ok(MAX_POOL_SEATS));
        assert_eq!(parse_seats("0000000000000000000000007", SeatUnit::Seats), Ok(7));
        for (bad, needle) in [
            ("0", "minimum of 1"),
            ("000", "minimum of 1"),
            ("", "not a whole number"),
            ("-1", "not a whole number"),
            ("+5", "not a whole number"),
            ("2.5", "not a whole number"),
            ("1000001", "maximum"),
            ("99999999999", "maximum"),
            ("999999999999999999999999", "maximum"),
        ] {
            let e = parse_seats(bad, SeatUnit::Seats).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn names_follow_the_feature_name_rule() {
        assert!(check_name("feature", "vhdl-editor_2.0").is_ok());
        assert!(check_name("feature", &"a".repeat(MAX_NAME_CHARS)).is_ok());
        for bad in ["-x", "_x", ".x", "a b", "a/b", "é", ""] {
            assert!(check_name("feature", bad).is_err(), "{bad}");
        }
        let long = check_name("feature", &"a".repeat(MAX_NAME_CHARS + 1)).unwrap_err();
        assert!(long.contains("the most is 64"), "{long}");
    }

    #[test]
    fn hostid_is_any_or_a_list() {
        assert_eq!(parse_hostid("ANY"), Ok(HostId::Any));
        assert_eq!(parse_hostid("any"), Ok(HostId::Any));
        let list = parse_hostid("h1, h2 h3,h1").unwrap();
        assert_eq!(list, HostId::List(["h1", "h2", "h3"].map(String::from).into()));
        assert!(parse_hostid("ANY h1").unwrap_err().contains("ANY"));
        assert!(parse_hostid(", ,").is_err());
        let forms = parse_hostid("HOSTNAME=build7 00:1a:2b:3c:4d:5e,lic-server").unwrap();
        assert_eq!(forms.to_string(), "00:1a:2b:3c:4d:5e,HOSTNAME=build7,lic-server");
        assert!(parse_hostid("h1 HOSTNAME=").unwrap_err().contains("not a host name"));
        assert!(parse_hostid("ETHER=1").unwrap_err().contains("unknown kind"));
    }

    #[test]
    fn borrow_dup_group_and_expiry_spellings() {
        assert_eq!(parse_borrow("no"), Ok(0));
        assert_eq!(parse_borrow("72"), Ok(72));
        assert!(parse_borrow("0").is_err());
        assert!(parse_borrow("8761").is_err());
        assert_eq!(parse_dup_group("user_host"), Ok(DupGroup::UserHost));
        assert!(parse_dup_group("uhd").is_err());
        assert_eq!(parse_expiry("permanent"), Ok(Expiry::Permanent));
        let e = parse_expiry("2027-02-30").unwrap_err();
        assert!(e.contains("2027-02-30") && e.contains("day 30"), "{e}");
    }

    #[test]
    fn shown_text_is_escaped_and_cut_short() {
        assert_eq!(shown("a\u{1b}[2J"), "a\\u{1b}[2J");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), MAX_SHOWN_CHARS + 1);
    }
}
