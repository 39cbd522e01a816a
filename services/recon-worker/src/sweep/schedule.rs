//! The worker's sweep loop: every interval, each account with an API token gets a
//! completeness run then a batch run. Each account's runs go in a task of their own,
//! so a panic ends that run only; the consumer never waits for a sweep.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Kind, SweepSettings, Sweeper, Window, reads};

/// Spawns the loop (nothing when `RECON_SWEEP_INTERVAL` is 0); it stops at `shutdown`.
pub fn spawn(sweeper: Sweeper, settings: &SweepSettings, shutdown: CancellationToken) {
    let Some(interval) = settings.interval() else {
        tracing::info!("sweeps are off (RECON_SWEEP_INTERVAL=0)");
        return;
    };
    let days = settings.days;
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if !sweep_all(&sweeper, days, &shutdown).await {
                return;
            }
        }
    });
}

/// One round over every account; false when shut down part way.
pub async fn sweep_all(sweeper: &Sweeper, days: u32, shutdown: &CancellationToken) -> bool {
    let accounts = match reads::accounts_with_tokens(sweeper.ledger.pool()).await {
        Ok(accounts) => accounts,
        Err(error) => {
            tracing::warn!(%error, "sweeps could not read the accounts; trying next interval");
            return true;
        }
    };
    for account in accounts {
        let window = Window::ending_at(Utc::now(), days);
        let runner = sweeper.clone();
        let name = account.clone();
        let task = tokio::spawn(async move {
            runner.run(Kind::Completeness, &name, Some(window)).await;
            runner.run(Kind::Batches, &name, None).await;
        });
        let abort = task.abort_handle();
        tokio::select! {
            _ = shutdown.cancelled() => {
                // Dropping the run drops its lock's connection: Postgres releases it.
                abort.abort();
                return false;
            }
            ended = task => {
                if let Err(error) = ended && error.is_panic() {
                    tracing::error!(account, "a sweep panicked; the next interval tries again");
                }
            }
        }
    }
    true
}
