//! The Mountain Time dates a completeness pass lists, and their UTC bounds.

use chrono::{DateTime, Days, NaiveDate, Utc};
use helcim_client::mountain_time;

/// Mountain Time calendar dates, inclusive, as Helcim's `dateFrom`/`dateTo` read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    /// `from` through `to`; refused when `from` is after `to`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Window, String> {
        if from > to {
            return Err(format!(
                "the window starts ({from}) after it ends ({to}); give --from on or before --to"
            ));
        }
        Ok(Window { from, to })
    }

    /// The `days` Mountain dates ending with today's (`1`: today only).
    pub fn ending_at(now: DateTime<Utc>, days: u32) -> Window {
        let to = mountain_time::date_of(now);
        let from = to
            .checked_sub_days(Days::new(u64::from(days.max(1) - 1)))
            .unwrap_or(to);
        Window { from, to }
    }

    /// The instants the dates cover: from the start of `from` (inclusive) to the start
    /// of the day after `to` (exclusive), in UTC.
    pub fn utc_bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = |date: NaiveDate| mountain_time::to_utc(date.and_time(chrono::NaiveTime::MIN));
        let after = self.to.checked_add_days(Days::new(1)).unwrap_or(self.to);
        (start(self.from), start(after))
    }

    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        let date = mountain_time::date_of(time);
        self.from <= date && date <= self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn today_is_the_mountain_date_not_the_utc_one() {
        // 03:00 UTC on the 24th is still the 23rd in Edmonton.
        let window = Window::ending_at(utc("2026-11-24T03:00:00Z"), 2);
        assert_eq!(
            window,
            Window::new(date("2026-11-22"), date("2026-11-23")).unwrap()
        );
        assert_eq!(
            Window::ending_at(utc("2026-11-24T03:00:00Z"), 1).from,
            date("2026-11-23")
        );
    }

    #[test]
    fn bounds_cover_whole_mountain_days_across_a_daylight_saving_change() {
        let window = Window::new(date("2026-10-31"), date("2026-11-01")).unwrap();
        let (start, end) = window.utc_bounds();
        assert_eq!(start, utc("2026-10-31T06:00:00Z")); // MDT
        assert_eq!(end, utc("2026-11-02T07:00:00Z")); // MST
        assert!(window.contains(start));
        assert!(!window.contains(end));
        assert!(window.contains(end - chrono::Duration::seconds(1)));
    }

    #[test]
    fn a_reversed_window_is_refused() {
        let error = Window::new(date("2026-11-02"), date("2026-11-01")).unwrap_err();
        assert!(error.contains("--from on or before --to"), "{error}");
    }
}
