//! The simulator's clock: real time, or time that runs faster or jumps forward when a
//! test says so (`SIM_CLOCK_START`, `SIM_CLOCK_SPEED`, `PUT /sim/clock`). Run-time
//! transactions are dated by it, and card batches close by it, so a test sees batches
//! open, fill and close during a run.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveTime, Utc};

use crate::HELCIM_TIME_ZONE;

/// Sim time = `sim` + (real time since `real`) × `speed`.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    real: Instant,
    sim: DateTime<Utc>,
    speed: u32,
}

#[derive(Debug)]
pub struct SimClock {
    anchor: Mutex<Anchor>,
}

impl Default for SimClock {
    /// Real time.
    fn default() -> Self {
        SimClock::new(None, 1)
    }
}

impl SimClock {
    /// Starting at `start` (now when `None`), running `speed` sim seconds per real
    /// second (at least 1).
    pub fn new(start: Option<DateTime<Utc>>, speed: u32) -> Self {
        SimClock {
            anchor: Mutex::new(Anchor {
                real: Instant::now(),
                sim: start.unwrap_or_else(Utc::now),
                speed: speed.max(1),
            }),
        }
    }

    fn precise(anchor: &Anchor) -> DateTime<Utc> {
        let elapsed = anchor.real.elapsed() * anchor.speed;
        anchor.sim + Duration::from_std(elapsed).unwrap_or_else(|_| Duration::days(36_500))
    }

    /// Now, to the second (Helcim's times have no fractions).
    pub fn now(&self) -> DateTime<Utc> {
        let now = Self::precise(&self.anchor.lock().expect("lock poisoned"));
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    }

    pub fn speed(&self) -> u32 {
        self.anchor.lock().expect("lock poisoned").speed
    }

    /// From now on, `speed` sim seconds per real second.
    pub fn set_speed(&self, speed: u32) {
        let mut anchor = self.anchor.lock().expect("lock poisoned");
        *anchor = Anchor {
            real: Instant::now(),
            sim: Self::precise(&anchor),
            speed: speed.max(1),
        };
    }

    /// Jumps `seconds` forward (time never goes back).
    pub fn advance(&self, seconds: u64) {
        let mut anchor = self.anchor.lock().expect("lock poisoned");
        anchor.sim += Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 2_000_000));
    }
}

/// When open batches close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchClosing {
    /// Daily at this Mountain Time hour (Helcim's default is 17:00).
    Daily { hour: u32 },
    /// This long after the batch opened.
    Every(Duration),
}

impl BatchClosing {
    /// When a batch opened at `opened` closes.
    pub fn close_of(self, opened: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            BatchClosing::Every(every) => opened + every,
            BatchClosing::Daily { hour } => {
                let local = opened.with_timezone(&HELCIM_TIME_ZONE);
                let close = NaiveTime::from_hms_opt(hour.min(23), 0, 0).expect("hour < 24");
                let date = if local.time() < close {
                    local.date_naive()
                } else {
                    local.date_naive() + Duration::days(1)
                };
                crate::generate::mountain_instant(date, hour.min(23))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_jumps_forward_and_runs_faster() {
        let start: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
        let clock = SimClock::new(Some(start), 1);
        assert!(clock.now() - start < Duration::seconds(2));
        clock.advance(3_600);
        assert!(clock.now() - start >= Duration::seconds(3_600));
        clock.set_speed(1_000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now() - start >= Duration::seconds(3_610));
        assert_eq!(clock.speed(), 1_000);
    }

    #[test]
    fn a_batch_closes_at_the_next_close_hour_or_after_its_period() {
        // 10:00 Mountain (MST, UTC-7) on 2026-11-20: closes at 17:00 the same day.
        let morning: DateTime<Utc> = "2026-11-20T17:00:00Z".parse().unwrap();
        assert_eq!(
            BatchClosing::Daily { hour: 17 }.close_of(morning),
            "2026-11-21T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // 18:00 Mountain: the next day's 17:00.
        let evening: DateTime<Utc> = "2026-11-21T01:00:00Z".parse().unwrap();
        assert_eq!(
            BatchClosing::Daily { hour: 17 }.close_of(evening),
            "2026-11-22T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            BatchClosing::Every(Duration::seconds(60)).close_of(morning),
            morning + Duration::seconds(60)
        );
    }
}
