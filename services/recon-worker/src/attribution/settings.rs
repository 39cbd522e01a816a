//! The attribution engine's settings, from flags or the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use recon_attribution::month::Thresholds;
use recon_attribution::{Clock, CloseCalendar};

#[derive(Debug, Clone, Args)]
pub struct AttributionSettings {
    /// Run the attribution engine in this worker (`false`: another deployment runs it).
    #[arg(long = "attribution", env = "RECON_ATTRIBUTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,
    /// Seconds a revenue-bearing transaction may stay without evidence after it reached
    /// the ledger before it is an `unattributed` gap (and evidence of a payment may
    /// match nothing before it is `orphan_evidence`).
    #[arg(long, env = "RECON_ATTRIBUTION_GRACE", default_value_t = 600)]
    pub grace_secs: u64,
    /// Seconds either side of the evidence's time within which a transaction with the
    /// same account, invoice number, amount and currency matches it (HelcimPay.js and
    /// Smart Terminal payments, whose evidence has no transaction id).
    #[arg(long, env = "RECON_ATTRIBUTION_MATCH_WINDOW", default_value_t = 3600)]
    pub match_window_secs: u64,
    /// The time zone whose calendar month Helcim closes (an IANA name).
    #[arg(long, env = "RECON_CLOSE_TIMEZONE", default_value = "America/Edmonton", value_parser = CloseCalendar::from_name)]
    pub close_timezone: CloseCalendar,
    /// How long before the close each escalation fires, e.g. `7d,2d,1d,6h`.
    #[arg(long, env = "RECON_ESCALATE_AT", default_value = "7d,2d,1d,6h", value_parser = Thresholds::parse)]
    pub escalate_at: Thresholds,
    /// Seconds after the close at which the month's report is frozen (webhooks of the
    /// month's last minutes, and their grace, still count).
    #[arg(long, env = "RECON_REPORT_FREEZE_DELAY", default_value_t = 900)]
    pub freeze_delay_secs: u64,
    /// Seconds between sweeps for grace expiries, escalations and closes (detection of
    /// stored transactions and evidence is immediate, not swept).
    #[arg(long, env = "RECON_ATTRIBUTION_SWEEP_INTERVAL", default_value_t = 15)]
    pub sweep_interval_secs: u64,
    /// Tests and drills only: a file holding seconds to add to the system clock.
    #[arg(long, env = "RECON_CLOCK_OFFSET_FILE")]
    pub clock_offset_file: Option<PathBuf>,
}

impl AttributionSettings {
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    pub fn match_window(&self) -> Duration {
        Duration::from_secs(self.match_window_secs)
    }

    pub fn freeze_delay(&self) -> Duration {
        Duration::from_secs(self.freeze_delay_secs)
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs.max(1))
    }

    pub fn clock(&self) -> Clock {
        match &self.clock_offset_file {
            Some(path) => Clock::with_offset_file(path),
            None => Clock::system(),
        }
    }
}
