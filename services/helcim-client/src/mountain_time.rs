//! Helcim writes times as `YYYY-MM-DD HH:MM:SS` in Mountain Time with no offset, and
//! an open batch's close time as `0000-00-00 00:00:00`. This is the one place those
//! become UTC.
//!
//! Two hours a year cannot be read unambiguously:
//! - in the autumn, 01:00–01:59 happens twice; we read it as the **first** occurrence
//!   (daylight time), and [`is_ambiguous`] tells callers it may be an hour later;
//! - in the spring, 02:00–02:59 never happens; should Helcim write one, we read it with
//!   the standard-time offset (−07:00), as a clock that had not yet sprung forward.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Helcim is in Calgary: Mountain Time with daylight saving.
pub const HELCIM_TIME_ZONE: Tz = chrono_tz::America::Edmonton;

/// The value Helcim puts in `dateClosed` while a batch is open.
pub const OPEN_BATCH_SENTINEL: &str = "0000-00-00 00:00:00";

const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Why a Helcim time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {text:?} is not Helcim's `YYYY-MM-DD HH:MM:SS` Mountain Time")]
pub struct TimeError {
    text: String,
}

/// Reads a Helcim time. `Ok(None)` is the open-batch sentinel (any all-zero date).
pub fn parse_optional(text: &str) -> Result<Option<DateTime<Utc>>, TimeError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with("0000-00-00") {
        return Ok(None);
    }
    parse(trimmed).map(Some)
}

/// Reads a Helcim time that must be present.
pub fn parse(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let local = parse_local(text)?;
    Ok(to_utc(local))
}

/// Reads the offset-less text without converting it.
pub fn parse_local(text: &str) -> Result<NaiveDateTime, TimeError> {
    let trimmed = text.trim();
    NaiveDateTime::parse_from_str(trimmed, FORMAT)
        // Some responses carry an ISO `T` separator; it means the same local time.
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| TimeError {
            text: crate::money::shorten(text),
        })
}

/// Converts a Mountain Time wall-clock reading to UTC (rules in the module docs).
pub fn to_utc(local: NaiveDateTime) -> DateTime<Utc> {
    match HELCIM_TIME_ZONE.from_local_datetime(&local) {
        LocalResult::Single(time) => time.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            let standard = HELCIM_TIME_ZONE
                .offset_from_utc_datetime(&(local - chrono::Duration::hours(12)))
                .fix();
            (local - standard).and_utc()
        }
    }
}

/// Every UTC instant a Mountain Time reading may mean: one, or two in the repeated
/// autumn hour.
pub fn candidates(local: NaiveDateTime) -> Vec<DateTime<Utc>> {
    match HELCIM_TIME_ZONE.from_local_datetime(&local) {
        LocalResult::Single(time) => vec![time.with_timezone(&Utc)],
        LocalResult::Ambiguous(first, second) => {
            vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
        }
        LocalResult::None => vec![to_utc(local)],
    }
}

/// True when the reading falls in the repeated autumn hour.
pub fn is_ambiguous(local: NaiveDateTime) -> bool {
    matches!(
        HELCIM_TIME_ZONE.from_local_datetime(&local),
        LocalResult::Ambiguous(..)
    )
}

/// Formats a UTC instant the way Helcim writes it.
pub fn format(time: DateTime<Utc>) -> String {
    time.with_timezone(&HELCIM_TIME_ZONE)
        .format(FORMAT)
        .to_string()
}

/// The Mountain Time calendar date of an instant: what `dateFrom`/`dateTo` filter on.
pub fn date_of(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&HELCIM_TIME_ZONE).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn summer_times_are_six_hours_behind_utc() {
        assert_eq!(
            parse("2026-07-01 12:00:00"),
            Ok(utc("2026-07-01T18:00:00Z"))
        );
    }

    #[test]
    fn winter_times_are_seven_hours_behind_utc() {
        assert_eq!(
            parse("2026-01-14 11:38:18"),
            Ok(utc("2026-01-14T18:38:18Z"))
        );
    }

    #[test]
    fn either_side_of_the_spring_change() {
        // 2026-03-08 02:00 MST jumps to 03:00 MDT.
        assert_eq!(
            parse("2026-03-08 01:59:59"),
            Ok(utc("2026-03-08T08:59:59Z"))
        );
        assert_eq!(
            parse("2026-03-08 03:00:00"),
            Ok(utc("2026-03-08T09:00:00Z"))
        );
        // The hour that never happened is read with the standard offset.
        assert_eq!(
            parse("2026-03-08 02:30:00"),
            Ok(utc("2026-03-08T09:30:00Z"))
        );
    }

    #[test]
    fn either_side_of_the_autumn_change() {
        // 2026-11-01 02:00 MDT falls back to 01:00 MST.
        assert_eq!(
            parse("2026-11-01 00:59:59"),
            Ok(utc("2026-11-01T06:59:59Z"))
        );
        assert_eq!(
            parse("2026-11-01 02:00:00"),
            Ok(utc("2026-11-01T09:00:00Z"))
        );
        let repeated = parse_local("2026-11-01 01:30:00").unwrap();
        assert!(is_ambiguous(repeated));
        assert_eq!(to_utc(repeated), utc("2026-11-01T07:30:00Z"));
        assert_eq!(
            candidates(repeated),
            vec![utc("2026-11-01T07:30:00Z"), utc("2026-11-01T08:30:00Z")]
        );
    }

    #[test]
    fn the_open_batch_sentinel_is_no_time_at_all() {
        assert_eq!(parse_optional(OPEN_BATCH_SENTINEL), Ok(None));
        assert_eq!(parse_optional(""), Ok(None));
        assert!(parse(OPEN_BATCH_SENTINEL).is_err());
    }

    #[test]
    fn formatting_matches_helcim_and_round_trips() {
        let time = utc("2026-11-01T08:30:00Z");
        assert_eq!(format(time), "2026-11-01 01:30:00");
        assert_eq!(
            date_of(utc("2026-11-02T05:00:00Z")),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "yesterday",
            "2026-13-01 00:00:00",
            "2026-01-01",
            "2026-01-01 25:00:00",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
