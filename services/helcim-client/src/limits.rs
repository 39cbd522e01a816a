//! Helcim's per-account limits: 5 requests in flight, 100 a minute, 3000 an hour,
//! shared by every token of the merchant account. One [`AccountLimiter`] per account,
//! shared by every client of that account in the process.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The budget one merchant account may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    pub max_in_flight: usize,
    /// `None` lifts the limit (simulator runs and benchmarks).
    pub per_minute: Option<NonZeroU32>,
    pub per_hour: Option<NonZeroU32>,
    /// How long to hold every request once Helcim reports a spent budget
    /// (`minute-limit-remaining: 0`). Helcim does not say when its window resets.
    pub exhausted_pause: Duration,
}

impl AccountLimits {
    /// Helcim's documented limits.
    pub const HELCIM: AccountLimits = AccountLimits {
        max_in_flight: 5,
        per_minute: NonZeroU32::new(100),
        per_hour: NonZeroU32::new(3000),
        exhausted_pause: Duration::from_secs(60),
    };

    /// No rate limits, five in flight: for simulator runs with lifted limits.
    pub fn unlimited() -> Self {
        AccountLimits {
            max_in_flight: 64,
            per_minute: None,
            per_hour: None,
            exhausted_pause: Duration::from_secs(1),
        }
    }
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits::HELCIM
    }
}

/// A token bucket that never lets more than `limit` requests into any `window`, sliding
/// or fixed: a burst of a tenth of the budget, and the rest spread evenly. (A plain
/// "100 per minute" bucket starts full and refills while it drains, so it can pass
/// almost 200 within one minute, and Helcim answers the excess with 429.)
pub fn window_quota(limit: NonZeroU32, window: Duration) -> Quota {
    let burst = (limit.get() / 10).max(1);
    let steady = (limit.get() - burst).max(1);
    let period = window / steady;
    Quota::with_period(period)
        .expect("a window divided by a bounded count is not zero")
        .allow_burst(NonZeroU32::new(burst).expect("at least one"))
}

/// The last remaining budget Helcim reported in its response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Remaining {
    pub minute: Option<u32>,
    pub hour: Option<u32>,
}

/// Keeps one account's requests within its limits: a semaphore for requests in flight,
/// token buckets for the minute and hour budgets, and a pause that Helcim's own
/// headers (or a 429) can impose on every request of the account.
pub struct AccountLimiter {
    limits: AccountLimits,
    in_flight: Semaphore,
    per_minute: Option<DefaultDirectRateLimiter>,
    per_hour: Option<DefaultDirectRateLimiter>,
    paused_until: Mutex<Option<Instant>>,
    remaining: Mutex<Remaining>,
}

impl AccountLimiter {
    pub fn new(limits: AccountLimits) -> Self {
        AccountLimiter {
            limits,
            in_flight: Semaphore::new(limits.max_in_flight.max(1)),
            per_minute: limits
                .per_minute
                .map(|n| RateLimiter::direct(window_quota(n, Duration::from_secs(60)))),
            per_hour: limits
                .per_hour
                .map(|n| RateLimiter::direct(window_quota(n, Duration::from_secs(3600)))),
            paused_until: Mutex::new(None),
            remaining: Mutex::new(Remaining::default()),
        }
    }

    pub fn limits(&self) -> AccountLimits {
        self.limits
    }

    /// Waits until one more request may be sent; hold the permit until it is answered.
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        loop {
            let pause = *self.paused_until.lock().expect("lock poisoned");
            match pause {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => break,
            }
        }
        if let Some(limiter) = &self.per_hour {
            limiter.until_ready().await;
        }
        if let Some(limiter) = &self.per_minute {
            limiter.until_ready().await;
        }
        permit
    }

    /// Records the `minute-limit-remaining` / `hour-limit-remaining` headers; a spent
    /// budget pauses the account so other replicas' or programs' use is respected.
    pub fn observe_remaining(&self, remaining: Remaining) {
        *self.remaining.lock().expect("lock poisoned") = remaining;
        if remaining.minute == Some(0) || remaining.hour == Some(0) {
            tracing::warn!(
                minute_remaining = ?remaining.minute,
                hour_remaining = ?remaining.hour,
                pause_secs = self.limits.exhausted_pause.as_secs_f64(),
                "Helcim reports the account's request budget spent; pausing its requests"
            );
            self.pause_for(self.limits.exhausted_pause);
        }
    }

    /// Holds every request of this account for `duration` (after a 429, say).
    pub fn pause_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut paused = self.paused_until.lock().expect("lock poisoned");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// The budget Helcim last reported.
    pub fn remaining(&self) -> Remaining {
        *self.remaining.lock().expect("lock poisoned")
    }
}

impl fmt::Debug for AccountLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountLimiter")
            .field("limits", &self.limits)
            .field("available_in_flight", &self.in_flight.available_permits())
            .field("remaining", &self.remaining())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_more_than_the_in_flight_limit_are_handed_out() {
        let limiter = AccountLimiter::new(AccountLimits::HELCIM);
        let permits: Vec<_> = acquire_many(&limiter, 5).await;
        assert_eq!(permits.len(), 5);
        let sixth = tokio::time::timeout(Duration::from_millis(50), limiter.acquire()).await;
        assert!(sixth.is_err(), "a sixth request must wait");
        drop(permits);
        let sixth = tokio::time::timeout(Duration::from_millis(50), limiter.acquire()).await;
        assert!(sixth.is_ok());
    }

    async fn acquire_many(limiter: &AccountLimiter, n: usize) -> Vec<SemaphorePermit<'_>> {
        let mut permits = Vec::new();
        for _ in 0..n {
            permits.push(limiter.acquire().await);
        }
        permits
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_holds_requests_for_the_pause() {
        let limiter = AccountLimiter::new(AccountLimits {
            exhausted_pause: Duration::from_secs(60),
            ..AccountLimits::unlimited()
        });
        limiter.observe_remaining(Remaining {
            minute: Some(0),
            hour: Some(10),
        });
        let started = Instant::now();
        drop(limiter.acquire().await);
        assert!(started.elapsed() >= Duration::from_secs(60));
        assert_eq!(limiter.remaining().hour, Some(10));
    }

    /// Drives a limiter on a fake clock, trying a request every 10 ms for `seconds`, and
    /// returns the most let through in any `window`.
    fn most_in_any_window(quota: Quota, window: Duration, seconds: u64) -> usize {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        let step = Duration::from_millis(10);
        let mut passed: Vec<Duration> = Vec::new();
        let mut now = Duration::ZERO;
        while now < Duration::from_secs(seconds) {
            if limiter.check().is_ok() {
                passed.push(now);
            }
            clock.advance(step);
            now += step;
        }
        let mut most = 0;
        let mut start = 0;
        for end in 0..passed.len() {
            while passed[end] - passed[start] >= window {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }

    #[test]
    fn no_minute_ever_sees_more_than_100_requests() {
        let minute = Duration::from_secs(60);
        let quota = window_quota(NonZeroU32::new(100).unwrap(), minute);
        let most = most_in_any_window(quota, minute, 600);
        assert!(
            (95..=100).contains(&most),
            "{most}: within the budget, and using nearly all of it"
        );
        // What a plain per-minute bucket would have allowed:
        let naive = Quota::per_minute(NonZeroU32::new(100).unwrap());
        assert!(most_in_any_window(naive, minute, 600) > 150);
    }

    #[test]
    fn no_hour_ever_sees_more_than_3000_requests() {
        let hour = Duration::from_secs(3600);
        let quota = window_quota(NonZeroU32::new(3000).unwrap(), hour);
        assert!(most_in_any_window(quota, hour, 3 * 3600) <= 3000);
    }

    #[tokio::test]
    async fn the_minute_budget_holds_requests_after_the_burst() {
        // 20 a minute: a burst of 2, then one every 3.3 s.
        let limiter = AccountLimiter::new(AccountLimits {
            per_minute: NonZeroU32::new(20),
            ..AccountLimits::unlimited()
        });
        for _ in 0..2 {
            let burst = tokio::time::timeout(Duration::from_millis(200), limiter.acquire()).await;
            assert!(burst.is_ok(), "the burst passes at once");
        }
        let third = tokio::time::timeout(Duration::from_millis(200), limiter.acquire()).await;
        assert!(third.is_err(), "a third request must wait for the bucket");
    }
}
