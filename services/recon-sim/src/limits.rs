//! Helcim's per-account limits as the simulator enforces them: requests in flight,
//! a per-minute and a per-hour budget (fixed windows), with the remaining budget in
//! `minute-limit-remaining` / `hour-limit-remaining` on every answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Limits per account; `None` lifts one (benchmarks, fast tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    pub in_flight: Option<u32>,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
}

impl RateLimits {
    /// Helcim's documented limits: 5 in flight, 100 a minute, 3000 an hour.
    pub const HELCIM: RateLimits = RateLimits {
        in_flight: Some(5),
        per_minute: Some(100),
        per_hour: Some(3000),
    };

    pub const UNLIMITED: RateLimits = RateLimits {
        in_flight: None,
        per_minute: None,
        per_hour: None,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::HELCIM
    }
}

/// What is left of an account's budget after a request; `None` when unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Remaining {
    pub minute: Option<u32>,
    pub hour: Option<u32>,
}

#[derive(Debug, Default)]
struct Counters {
    minute_window: u64,
    minute_count: u32,
    hour_window: u64,
    hour_count: u32,
    in_flight: u32,
    exhausted_until: Option<Instant>,
}

/// Counts every account's use.
#[derive(Debug)]
pub struct AccountLimiter {
    limits: Mutex<RateLimits>,
    accounts: Mutex<HashMap<String, Counters>>,
}

/// Whether a request may proceed.
#[derive(Debug)]
pub enum Admission {
    Admitted(InFlight, Remaining),
    /// Over a limit: answer 429.
    Refused(Remaining),
}

/// Holds one of the account's in-flight places until dropped.
#[derive(Debug)]
pub struct InFlight {
    limiter: Arc<AccountLimiter>,
    account: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut accounts = self.limiter.accounts.lock().expect("lock poisoned");
        if let Some(counters) = accounts.get_mut(&self.account) {
            counters.in_flight = counters.in_flight.saturating_sub(1);
        }
    }
}

impl AccountLimiter {
    pub fn new(limits: RateLimits) -> Arc<Self> {
        Arc::new(AccountLimiter {
            limits: Mutex::new(limits),
            accounts: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> RateLimits {
        *self.limits.lock().expect("lock poisoned")
    }

    pub fn set_limits(&self, limits: RateLimits) {
        *self.limits.lock().expect("lock poisoned") = limits;
    }

    /// Admits or refuses one request of `account` at `unix_secs`.
    pub fn admit(self: &Arc<Self>, account: &str, unix_secs: u64) -> Admission {
        let limits = self.limits();
        let mut accounts = self.accounts.lock().expect("lock poisoned");
        let counters = accounts.entry(account.to_string()).or_default();
        if counters.minute_window != unix_secs / 60 {
            counters.minute_window = unix_secs / 60;
            counters.minute_count = 0;
        }
        if counters.hour_window != unix_secs / 3600 {
            counters.hour_window = unix_secs / 3600;
            counters.hour_count = 0;
        }
        let exhausted = counters
            .exhausted_until
            .is_some_and(|until| until > Instant::now());
        let over = |count: u32, limit: Option<u32>| limit.is_some_and(|limit| count >= limit);
        let refused = exhausted
            || over(counters.in_flight, limits.in_flight)
            || over(counters.minute_count, limits.per_minute)
            || over(counters.hour_count, limits.per_hour);
        if refused {
            let remaining = if exhausted {
                Remaining {
                    minute: limits.per_minute.map(|_| 0),
                    hour: limits
                        .per_hour
                        .map(|l| l.saturating_sub(counters.hour_count)),
                }
            } else {
                remaining(counters, limits)
            };
            return Admission::Refused(remaining);
        }
        counters.minute_count += 1;
        counters.hour_count += 1;
        counters.in_flight += 1;
        let remaining = remaining(counters, limits);
        Admission::Admitted(
            InFlight {
                limiter: Arc::clone(self),
                account: account.to_string(),
            },
            remaining,
        )
    }

    /// Makes the account's budget look spent for `duration` (a fault on demand).
    pub fn exhaust(&self, account: &str, duration: Duration) {
        let mut accounts = self.accounts.lock().expect("lock poisoned");
        accounts
            .entry(account.to_string())
            .or_default()
            .exhausted_until = Some(Instant::now() + duration);
    }
}

fn remaining(counters: &Counters, limits: RateLimits) -> Remaining {
    Remaining {
        minute: limits
            .per_minute
            .map(|l| l.saturating_sub(counters.minute_count)),
        hour: limits
            .per_hour
            .map(|l| l.saturating_sub(counters.hour_count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(admission: Admission) -> (InFlight, Remaining) {
        match admission {
            Admission::Admitted(guard, remaining) => (guard, remaining),
            Admission::Refused(_) => panic!("refused"),
        }
    }

    #[test]
    fn the_minute_budget_refuses_the_101st_request_and_resets_next_minute() {
        let limiter = AccountLimiter::new(RateLimits::HELCIM);
        for n in 1..=100_u32 {
            let (_guard, remaining) = admitted(limiter.admit("a", 60));
            assert_eq!(remaining.minute, Some(100 - n));
        }
        assert!(matches!(limiter.admit("a", 61), Admission::Refused(r) if r.minute == Some(0)));
        // Another account has its own budget.
        admitted(limiter.admit("b", 61));
        let (_guard, remaining) = admitted(limiter.admit("a", 120));
        assert_eq!(remaining.minute, Some(99));
        assert_eq!(remaining.hour, Some(2899));
    }

    #[test]
    fn the_sixth_request_in_flight_is_refused() {
        let limiter = AccountLimiter::new(RateLimits::HELCIM);
        let guards: Vec<_> = (0..5).map(|_| admitted(limiter.admit("a", 0))).collect();
        assert!(matches!(limiter.admit("a", 0), Admission::Refused(_)));
        drop(guards);
        admitted(limiter.admit("a", 0));
    }

    #[test]
    fn lifted_limits_never_refuse_and_report_nothing() {
        let limiter = AccountLimiter::new(RateLimits::UNLIMITED);
        for _ in 0..10_000 {
            let (_guard, remaining) = admitted(limiter.admit("a", 0));
            assert_eq!(remaining, Remaining::default());
        }
    }

    #[test]
    fn an_exhausted_account_is_refused_until_the_time_passes() {
        let limiter = AccountLimiter::new(RateLimits::HELCIM);
        limiter.exhaust("a", Duration::from_millis(30));
        assert!(matches!(limiter.admit("a", 0), Admission::Refused(r) if r.minute == Some(0)));
        std::thread::sleep(Duration::from_millis(40));
        admitted(limiter.admit("a", 0));
    }
}
