//! How hard to try before giving up on a transient failure.

use std::time::Duration;

use backon::ExponentialBuilder;

/// Exponential backoff with jitter for 429s, 5xx and network failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Time allowed for one request, connect to last byte.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// About a minute of retrying (0.5 s, 1 s, 2 s … 30 s, jittered) before handing the
    /// failure to the caller, whose own queue retries take over from there.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries: the caller handles every failure itself.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}
