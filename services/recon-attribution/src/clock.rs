//! Where "now" comes from. Grace periods, escalations and the month close all read
//! the time through a [`Clock`], so tests can cross a grace period or a month end
//! without waiting.
//!
//! In a deployed process the clock is the system's. `RECON_CLOCK_OFFSET_FILE` (tests
//! and drills only; the worker logs a warning when it is set) names a file holding a
//! number of seconds added to the system time; a test writes a new offset to move
//! every process reading the file forward at once. A missing or unreadable file means
//! no offset, so the clock never stops.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_file: Option<Arc<PathBuf>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// The system clock plus the offset in `path`, read at every call.
    pub fn with_offset_file(path: impl Into<PathBuf>) -> Self {
        Clock {
            offset_file: Some(Arc::new(path.into())),
        }
    }

    pub fn is_system(&self) -> bool {
        self.offset_file.is_none()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    fn offset(&self) -> Duration {
        let Some(path) = &self.offset_file else {
            return Duration::zero();
        };
        std::fs::read_to_string(path.as_ref())
            .ok()
            .and_then(|text| parse_offset(&text))
            .unwrap_or_else(Duration::zero)
    }
}

/// Seconds, possibly negative or fractional (`3600`, `-1.5`), as written to the file.
pub fn parse_offset(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let negative = whole.starts_with('-');
    let seconds: i64 = whole.parse().ok()?;
    let digits: String = fraction.chars().take(6).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<6}").parse().ok()?
    };
    let micros = if negative { -micros } else { micros };
    Some(Duration::seconds(seconds) + Duration::microseconds(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("3600\n"), Some(Duration::seconds(3600)));
        assert_eq!(parse_offset("-1.5"), Some(Duration::milliseconds(-1500)));
        assert_eq!(parse_offset("2.25"), Some(Duration::milliseconds(2250)));
        assert_eq!(parse_offset("abc"), None);
        assert_eq!(parse_offset("1.x"), None);
    }

    #[test]
    fn a_missing_file_is_no_offset() {
        let clock = Clock::with_offset_file("/nonexistent/recon-clock");
        let drift = (clock.now() - Utc::now()).num_seconds().abs();
        assert!(drift < 5);
    }

    #[test]
    fn the_file_moves_the_clock() {
        let path = std::env::temp_dir().join(format!("recon-clock-{}", std::process::id()));
        std::fs::write(&path, "86400").unwrap();
        let clock = Clock::with_offset_file(&path);
        let ahead = (clock.now() - Utc::now()).num_seconds();
        assert!((86_390..=86_400).contains(&ahead), "{ahead}");
        std::fs::remove_file(&path).unwrap();
    }
}
