//! The sweeps' settings, from flags or the environment.

use std::time::Duration;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct SweepSettings {
    /// Seconds between sweeps of every account (completeness, then batches); `0`
    /// turns sweeps off in this worker.
    #[arg(
        long = "sweep-interval",
        env = "RECON_SWEEP_INTERVAL",
        default_value_t = 300
    )]
    pub interval_secs: u64,
    /// Mountain Time dates each completeness sweep lists, back from today (`2`: today
    /// and yesterday).
    #[arg(long = "sweep-days", env = "RECON_SWEEP_DAYS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=31))]
    pub days: u32,
    /// Seconds a transaction may be missing from the ledger after it was created
    /// before a sweep records it as a `missed_webhook` (younger ones are most likely
    /// still on their way).
    #[arg(
        long = "missed-webhook-grace",
        env = "RECON_MISSED_WEBHOOK_GRACE",
        default_value_t = 300
    )]
    pub missed_webhook_grace_secs: u64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        SweepSettings {
            interval_secs: 300,
            days: 2,
            missed_webhook_grace_secs: 300,
        }
    }
}

impl SweepSettings {
    /// `None` when sweeps are off.
    pub fn interval(&self) -> Option<Duration> {
        (self.interval_secs > 0).then(|| Duration::from_secs(self.interval_secs))
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.missed_webhook_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Settings;

    #[test]
    fn sweeps_run_every_five_minutes_over_two_days_unless_set_otherwise() {
        let sweep = Settings::parse_from(["recon-worker"]).sweep;
        assert_eq!(sweep.interval(), Some(std::time::Duration::from_secs(300)));
        assert_eq!((sweep.days, sweep.missed_webhook_grace_secs), (2, 300));
        let off = Settings::parse_from(["recon-worker", "--sweep-interval", "0"]).sweep;
        assert_eq!(off.interval(), None);
        assert!(Settings::try_parse_from(["recon-worker", "--sweep-days", "0"]).is_err());
    }
}
