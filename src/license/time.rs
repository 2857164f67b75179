//! Calendar dates of license files and the millisecond timestamps of the engine.
//!
//! License files speak in UTC calendar dates (`start=2026-11-01`, `expires=2027-12-31`); the
//! engine speaks in [`Timestamp`]s, milliseconds since the Unix epoch, stamped into every log
//! entry by the Raft leader. The conversion is done here with the proleptic Gregorian algorithm
//! (days from civil), so no time-zone database and no clock is involved: the same date gives the
//! same instant on every replica.
//!
//! A pool is valid from the first millisecond of its `start` day through the last millisecond
//! of its `expires` day, both in UTC, which is how FlexLM and RLM admins read an expiry date
//! ("valid through").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Milliseconds in one day.
pub const MILLIS_PER_DAY: u64 = 86_400_000;

/// Instant in milliseconds since 1970-01-01T00:00:00Z.
///
/// The engine never reads a clock: every command carries the leader's stamp, and the engine's
/// time is the largest stamp it has seen.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The instant `millis` milliseconds after this one, saturating at the end of time.
    pub fn plus_millis(self, millis: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }

    /// The instant `secs` seconds after this one, saturating.
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        self.plus_millis(secs.saturating_mul(1000))
    }

    /// The UTC calendar date this instant falls on.
    pub fn date(self) -> Date {
        Date::from_days_since_epoch((self.0 / MILLIS_PER_DAY) as i64)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-24T09:30:00.250Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms_of_day = self.0 % MILLIS_PER_DAY;
        let (h, m, s, ms) = (
            ms_of_day / 3_600_000,
            ms_of_day / 60_000 % 60,
            ms_of_day / 1000 % 60,
            ms_of_day % 1000,
        );
        write!(f, "{}T{h:02}:{m:02}:{s:02}.{ms:03}Z", self.date())
    }
}

/// A UTC calendar date, as written in license files (`YYYY-MM-DD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// Earliest year a license date may name; older dates are typos, not licenses.
pub const MIN_YEAR: i32 = 1970;
/// Latest year a license date may name (use `permanent` for "never").
pub const MAX_YEAR: i32 = 9999;

impl Date {
    /// A validated date, or a message that says what is wrong with it.
    pub fn new(year: i32, month: u8, day: u8) -> Result<Date, String> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(format!("year {year} is outside {MIN_YEAR}..={MAX_YEAR}"));
        }
        if !(1..=12).contains(&month) {
            return Err(format!("month {month} is not 1..=12"));
        }
        let last = days_in_month(year, month);
        if day == 0 || day > last {
            return Err(format!("day {day} does not exist in {year}-{month:02} (1..={last})"));
        }
        Ok(Date { year, month, day })
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Date {
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// The first millisecond of this day (00:00:00.000 UTC).
    pub fn start_of_day(self) -> Timestamp {
        Timestamp((self.days_since_epoch().max(0) as u64).saturating_mul(MILLIS_PER_DAY))
    }

    /// The first millisecond after this day ends: a pool that `expires` on this date is valid
    /// while `now < end_of_day()`.
    pub fn end_of_day(self) -> Timestamp {
        self.start_of_day().plus_millis(MILLIS_PER_DAY)
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

impl FromStr for Date {
    type Err = String;

    /// Parses `YYYY-MM-DD` (exactly that shape).
    fn from_str(s: &str) -> Result<Date, String> {
        let bytes = s.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes.iter().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shape_ok {
            return Err(format!("`{s}` is not a date of the form YYYY-MM-DD"));
        }
        // The shape check above guarantees these parse.
        let num = |r: std::ops::Range<usize>| s[r].parse::<i32>().unwrap_or_default();
        Date::new(num(0..4), num(5..7) as u8, num(8..10) as u8)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_days() {
        for days in (-1000..200_000).step_by(7) {
            let d = Date::from_days_since_epoch(days);
            assert_eq!(d.days_since_epoch(), days, "{d}");
        }
        assert_eq!(Date::new(1970, 1, 1).unwrap().days_since_epoch(), 0);
        assert_eq!(Date::new(2000, 3, 1).unwrap().days_since_epoch(), 11_017);
    }

    #[test]
    fn parse_refuses_impossible_dates_with_the_reason() {
        assert_eq!("2027-12-31".parse::<Date>().unwrap(), Date { year: 2027, month: 12, day: 31 });
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert!("2023-02-29".parse::<Date>().unwrap_err().contains("day 29"));
        assert!("2023-13-01".parse::<Date>().unwrap_err().contains("month 13"));
        assert!("2023-1-01".parse::<Date>().unwrap_err().contains("YYYY-MM-DD"));
        assert!("tomorrow".parse::<Date>().is_err());
    }

    #[test]
    fn a_day_covers_its_whole_utc_day() {
        let d: Date = "2026-11-24".parse().unwrap();
        assert_eq!(d.start_of_day().date(), d);
        assert_eq!(Timestamp(d.end_of_day().0 - 1).date(), d);
        assert_eq!(d.start_of_day().to_string(), "2026-11-24T00:00:00.000Z");
    }
}
