//! The instants `qlm report --from/--to` accept, in UTC: a date (`2026-11-24`, its first
//! millisecond), or a date and time (`2026-11-24T09:30`, `2026-11-24T09:30:15.250Z`,
//! `2026-11-24 09:30:15+00:00`). Only UTC is accepted (no zone, `Z` or `+00:00`), because the
//! log is in UTC and a silent conversion would shift a monthly report by hours.

use qlm_license::{Date, Timestamp};

/// Parses an instant as described in the module documentation.
pub fn parse_instant(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    let bad = |why: &str| {
        format!(
            "`{text}` is not a UTC time ({why}); write 2026-11-24, 2026-11-24T09:30 or \
             2026-11-24T09:30:15Z"
        )
    };
    // `get` refuses a split inside a multi-byte character: the date then fails to parse.
    let date = text.get(..10).unwrap_or(text);
    let rest = text.get(date.len()..).unwrap_or_default();
    let date: Date = date.parse().map_err(|e: String| bad(&e))?;
    let start = date.start_of_day();
    if rest.is_empty() {
        return Ok(start);
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(|| bad("no `T` after the date"))?;
    let clock =
        rest.strip_suffix(['Z', 'z']).or_else(|| rest.strip_suffix("+00:00")).unwrap_or(rest);
    if clock.contains(['+', '-']) {
        return Err(bad("only UTC is accepted: end with Z or nothing"));
    }
    let (hms, millis) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, fraction_millis(fraction).ok_or_else(|| bad("fraction"))?),
        None => (clock, 0),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let field = |i: usize, max: u64| -> Result<u64, String> {
        let part = parts.get(i).copied().unwrap_or("00");
        let ok = part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        let value = if ok { part.parse::<u64>().ok() } else { None };
        value.filter(|v| *v <= max).ok_or_else(|| bad("hours 00-23, minutes and seconds 00-59"))
    };
    if !(2..=3).contains(&parts.len()) {
        return Err(bad("the time is HH:MM or HH:MM:SS"));
    }
    let (h, m, s) = (field(0, 23)?, field(1, 59)?, field(2, 59)?);
    Ok(start.plus_millis(((h * 60 + m) * 60 + s) * 1000 + millis))
}

/// Milliseconds of a decimal fraction of a second (`25` is 250 ms; digits past the third
/// are dropped).
fn fraction_millis(fraction: &str) -> Option<u64> {
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_utc_times_parse_to_their_instant() {
        let day = "2026-11-24".parse::<Date>().unwrap().start_of_day();
        assert_eq!(parse_instant("2026-11-24").unwrap(), day);
        assert_eq!(parse_instant("2026-11-24T09:30").unwrap(), day.plus_secs(9 * 3600 + 1800));
        assert_eq!(
            parse_instant("2026-11-24T09:30:15.25Z").unwrap(),
            day.plus_millis((9 * 3600 + 1800 + 15) * 1000 + 250)
        );
        assert_eq!(
            parse_instant("2026-11-24 00:00:01+00:00").unwrap(),
            day.plus_secs(1),
            "a space and +00:00 are fine"
        );
        let printed = day.plus_millis(1234).to_string();
        assert_eq!(parse_instant(&printed).unwrap(), day.plus_millis(1234), "reads what it prints");
    }

    #[test]
    fn other_zones_and_malformed_times_are_refused_with_the_text() {
        for bad in [
            "yesterday",
            "2026-11-24T25:00",
            "2026-11-24T09:30+01:00",
            "2026-11-24T9:30",
            "2026-11-24X09:30",
            "2026-02-30",
            "2026-11-24T09:30:00.",
            "2026-11-2\u{e9}T09:30",
        ] {
            let err = parse_instant(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
