//! Calendar months in the close time zone. Helcim closes a month's revenue share at
//! the end of the calendar month; where that end falls depends on the zone
//! (`RECON_CLOSE_TIMEZONE`, default `America/Edmonton`), so a transaction at 23:30 on
//! the 31st in Edmonton belongs to that month although it is already the 1st in UTC.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    #[error("month must be YYYY-MM (for example 2026-11), not {0:?}")]
    Format(String),
    #[error("month {0:?} is out of range: the month must be 01 to 12 and the year 2000 to 2999")]
    Range(String),
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((2000..=2999).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn number(self) -> u32 {
        self.month
    }

    /// The month's first day (how Postgres stores a month: a `date`).
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default()
    }

    /// The month a first day (or any day) falls in.
    pub fn of_date(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = MonthError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shown = text.chars().take(32).collect::<String>();
        let bytes = text.as_bytes();
        let well_formed = bytes.len() == 7
            && bytes[4] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_digit());
        if !well_formed {
            return Err(MonthError::Format(shown));
        }
        let year: i32 = text[..4]
            .parse()
            .map_err(|_| MonthError::Format(shown.clone()))?;
        let month: u32 = text[5..]
            .parse()
            .map_err(|_| MonthError::Format(shown.clone()))?;
        Month::new(year, month).ok_or(MonthError::Range(shown))
    }
}

impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Months and closes in one time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCalendar {
    zone: Tz,
}

impl Default for CloseCalendar {
    fn default() -> Self {
        CloseCalendar {
            zone: chrono_tz::America::Edmonton,
        }
    }
}

impl CloseCalendar {
    pub fn new(zone: Tz) -> Self {
        CloseCalendar { zone }
    }

    /// Parses an IANA zone name (`America/Edmonton`), saying which names are valid.
    pub fn from_name(name: &str) -> Result<Self, String> {
        name.parse::<Tz>().map(CloseCalendar::new).map_err(|_| {
            format!("unknown time zone {name:?}: use an IANA name such as America/Edmonton")
        })
    }

    pub fn zone(self) -> Tz {
        self.zone
    }

    /// The month an instant falls in, in the close zone.
    pub fn month_of(self, at: DateTime<Utc>) -> Month {
        Month::of_date(at.with_timezone(&self.zone).date_naive())
    }

    /// The first instant of a month in the close zone. Midnight exists in every zone
    /// chrono-tz knows on the 1st of a month; were it skipped by a shift, the first
    /// instant after the gap is taken.
    pub fn start_of(self, month: Month) -> DateTime<Utc> {
        let midnight = month.first_day().and_hms_opt(0, 0, 0).unwrap_or_default();
        match self.zone.from_local_datetime(&midnight) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                let later = midnight + chrono::Duration::hours(1);
                self.zone
                    .from_local_datetime(&later)
                    .earliest()
                    .map(|at| at.with_timezone(&Utc))
                    .unwrap_or_else(|| midnight.and_utc())
            }
        }
    }

    /// The month's close, its deadline: the first instant of the next month.
    pub fn close_of(self, month: Month) -> DateTime<Utc> {
        self.start_of(month.next())
    }

    /// The half-open interval `[start, close)` of a month, in UTC.
    pub fn bounds(self, month: Month) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.start_of(month), self.close_of(month))
    }
}

/// The escalation thresholds: how long before a close each alert fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds(Vec<Duration>);

impl Default for Thresholds {
    /// T-7 d, T-2 d, T-1 d and T-6 h.
    fn default() -> Self {
        Thresholds(
            [7 * 86_400, 2 * 86_400, 86_400, 6 * 3_600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl Thresholds {
    /// Thresholds sorted farthest first, without repeats; none may be zero.
    pub fn new(mut before_close: Vec<Duration>) -> Result<Self, String> {
        if before_close.iter().any(|d| d.as_secs() == 0) {
            return Err(
                "an escalation threshold must be at least one second before the close".into(),
            );
        }
        before_close.sort_by(|a, b| b.cmp(a));
        before_close.dedup();
        Ok(Thresholds(before_close))
    }

    /// Parses `7d,2d,1d,6h` (humantime-style units: s, m, h, d).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let unit_len = part.chars().last().map_or(0, char::len_utf8);
            let (number, unit) = part.split_at(part.len() - unit_len);
            let scale = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3_600,
                "d" => 86_400,
                _ => {
                    return Err(format!(
                        "escalation threshold {part:?}: end it with s, m, h or d (for example 6h)"
                    ));
                }
            };
            let n: u64 = number.parse().map_err(|_| {
                format!("escalation threshold {part:?}: expected a whole number before the unit")
            })?;
            out.push(Duration::from_secs(n * scale));
        }
        Thresholds::new(out)
    }

    /// Farthest from the close first.
    pub fn before_close(&self) -> &[Duration] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn months_parse_strictly() {
        assert_eq!(
            "2026-11".parse::<Month>().unwrap(),
            Month::new(2026, 11).unwrap()
        );
        for bad in ["2026-13", "2026-00", "1999-12"] {
            assert!(
                matches!(bad.parse::<Month>(), Err(MonthError::Range(_))),
                "{bad}"
            );
        }
        for bad in [
            "2026-1",
            "2026/11",
            "202611",
            "2026-11-01",
            "",
            "26-11",
            "２０２6-11",
            "+026-11",
        ] {
            assert!(
                matches!(bad.parse::<Month>(), Err(MonthError::Format(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn edmonton_month_edges_fall_on_local_midnight() {
        let calendar = CloseCalendar::default();
        // November 2026 ends at local midnight (MST, UTC-7).
        let nov = Month::new(2026, 11).unwrap();
        assert_eq!(calendar.close_of(nov), utc("2026-12-01T07:00:00Z"));
        assert_eq!(calendar.month_of(utc("2026-12-01T06:59:59Z")), nov);
        assert_eq!(calendar.month_of(utc("2026-12-01T07:00:00Z")), nov.next());
        // October 2026 is in MDT (UTC-6); the DST change on 1 November is after its close.
        let oct = Month::new(2026, 10).unwrap();
        assert_eq!(calendar.close_of(oct), utc("2026-11-01T06:00:00Z"));
        assert_eq!(calendar.start_of(nov), utc("2026-11-01T06:00:00Z"));
        // March 2027 starts in MST and closes in MDT.
        let mar = Month::new(2027, 3).unwrap();
        assert_eq!(calendar.start_of(mar), utc("2027-03-01T07:00:00Z"));
        assert_eq!(calendar.close_of(mar), utc("2027-04-01T06:00:00Z"));
        assert_eq!(
            Month::new(2026, 12).unwrap().next(),
            Month::new(2027, 1).unwrap()
        );
        assert_eq!(
            Month::new(2027, 1).unwrap().previous(),
            Month::new(2026, 12).unwrap()
        );
    }

    #[test]
    fn thresholds_parse_and_sort() {
        let t = Thresholds::parse("6h, 7d,1d,2d,1d").unwrap();
        assert_eq!(t, Thresholds::default());
        assert!(Thresholds::parse("7x").is_err());
        assert!(Thresholds::parse("0s").is_err());
        assert!(Thresholds::parse("d").is_err());
    }
}
