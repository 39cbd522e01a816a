//! `reconctl backfill --account A --from YYYY-MM-DD --to YYYY-MM-DD`: the worker's
//! completeness pass over any range of Mountain Time dates, then the batch pass over
//! the batches it listed, in this process, with the account's API token from the
//! database. What it found is recorded as a `backfill` in `sweep_runs` and printed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Args;
use helcim_client::AccountLimits;
use recon_store::{AccountStore, Purpose, SecretCipher};
use recon_worker::clients::HelcimClients;
use recon_worker::config::Limits;
use recon_worker::ledger::Ledger;
use recon_worker::sweep::{Clients, Counts, Sweeper, Window};

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The account to backfill (it needs an API token: `reconctl accounts add`).
    #[arg(long)]
    account: String,
    /// First Mountain Time date to list, `YYYY-MM-DD`.
    #[arg(long, value_parser = mountain_date)]
    from: NaiveDate,
    /// Last Mountain Time date to list (inclusive), `YYYY-MM-DD`.
    #[arg(long, value_parser = mountain_date)]
    to: NaiveDate,
    #[arg(
        long,
        env = "HELCIM_API_BASE_URL",
        default_value = "https://api.helcim.com/v2"
    )]
    helcim_api_base_url: String,
    /// `helcim` (the account's real limits) or `unlimited` (the simulator only).
    #[arg(long, env = "HELCIM_LIMITS", value_enum, default_value_t = Limits::Helcim)]
    helcim_limits: Limits,
    /// Seconds after its creation a transaction no webhook announced counts as a
    /// `missed_webhook` (as the worker's sweeps; younger ones are left for the webhook).
    #[arg(long, env = "RECON_MISSED_WEBHOOK_GRACE", default_value_t = 300)]
    missed_webhook_grace: u64,
}

fn mountain_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| {
        format!("{text:?} is not a date written YYYY-MM-DD (a Mountain Time date): {e}")
    })
}

pub async fn run(database_url: &str, args: BackfillArgs) -> anyhow::Result<()> {
    let window = Window::new(args.from, args.to).map_err(anyhow::Error::msg)?;
    helcim_client::ClientConfig::check_base_url(&args.helcim_api_base_url)?;
    let cipher = SecretCipher::from_env()?.restricted_to(&[Purpose::ApiToken], true);
    if !cipher.holds(Purpose::ApiToken) {
        bail!(
            "backfill reads the account's API token: set RECON_MASTER_KEY (or RECON_API_TOKEN_KEY) as the worker has it"
        );
    }
    let pool = recon_store::database::connect(database_url).await?;
    let store = AccountStore::new(pool.clone(), Arc::new(cipher));
    let limits = match args.helcim_limits {
        Limits::Helcim => AccountLimits::HELCIM,
        Limits::Unlimited => AccountLimits::unlimited(),
    };
    let clients = HelcimClients::new(store, &args.helcim_api_base_url, limits);
    let sweeper = Sweeper::new(
        Ledger::new(pool),
        Clients::Own(Arc::new(clients)),
        Duration::from_secs(args.missed_webhook_grace),
    );
    let Some((counts, error)) = sweeper.backfill(&args.account, window).await else {
        bail!(
            "another backfill of account {:?} is running; try again when it ends",
            args.account
        );
    };
    println!(
        "backfill of account {} from {} to {} (Mountain Time)",
        args.account, window.from, window.to
    );
    print!("{}", summary(&counts));
    if let Some(error) = error {
        return Err(error).context(
            "the backfill stopped before the end (what it did is above and in sweep_runs); run it again",
        );
    }
    Ok(())
}

/// The lines the operator reads (the operator contract names them).
pub fn summary(counts: &Counts) -> String {
    let verdict = |name: &str| counts.verdicts.get(name).copied().unwrap_or(0);
    let checked: u32 = counts.verdicts.values().sum();
    let mut text = format!(
        "listed: {}\nrecorded: {}\ncorrected: {}\nexceptions raised: {}\n\
         batches verified: {checked} (balanced {}, mismatch {}, open {})\nAPI calls: {}\n",
        counts.listed,
        counts.recorded,
        counts.corrected,
        counts.exceptions,
        verdict("balanced"),
        verdict("mismatch"),
        verdict("open"),
        counts.api_calls.0,
    );
    if counts.unreadable > 0 {
        text.push_str(&format!(
            "unreadable answers kept in helcim_payloads: {}\n",
            counts.unreadable
        ));
    }
    if counts.too_young > 0 {
        text.push_str(&format!(
            "left for their webhook (younger than the grace): {}\n",
            counts.too_young
        ));
    }
    text
}
