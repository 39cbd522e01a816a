//! Sweeps: what webhooks missed, and batches that closed since they were stored.
//!
//! Every `RECON_SWEEP_INTERVAL` seconds, for each account with an API token, the
//! [`completeness`] pass lists the account's transactions of the last
//! `RECON_SWEEP_DAYS` Mountain Time dates (pages of 1,000) and compares them with the
//! ledger in one query; then the [`batches`] pass re-checks the batches the ledger's
//! transactions name that are not closed yet (one GET each), and gives every batch
//! that closed a settlement verdict after listing its transactions by `cardBatchId`.
//! Each pass runs under a per-(kind, account) advisory lock ([`lock`]), so one replica
//! runs it at a time, and is recorded in `sweep_runs` ([`runs`]). `reconctl backfill`
//! runs both passes over any range ([`Sweeper::backfill`]).
//!
//! - [`window`], [`compare`]: the pure rules (which dates, what to do with a listed
//!   transaction);
//! - [`calls`]: the counted Helcim calls; [`reads`]: the ledger queries;
//! - [`flags`]: the exceptions sweeps raise and clear themselves;
//! - [`schedule`]: the loop the worker spawns; [`settings`]: its settings.

pub mod batches;
pub mod calls;
pub mod compare;
pub mod completeness;
pub mod flags;
pub mod lock;
pub mod reads;
pub mod runs;
pub mod schedule;
pub mod settings;
pub mod window;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use helcim_client::{HelcimClient, HelcimError};
use recon_store::reconciliation::Origin;

use crate::clients::{HelcimClients, NoClient};
use crate::ledger::Ledger;
use crate::process::Processor;
pub use runs::Kind;
pub use settings::SweepSettings;
pub use window::Window;

/// What a run (or a backfill) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub api_calls: calls::CallCount,
    /// Transactions Helcim listed (unreadable ones included).
    pub listed: u32,
    /// Transactions the ledger lacked (or held only as announced) and now holds.
    pub recorded: u32,
    /// Transactions whose stored facts Helcim's answer changed.
    pub corrected: u32,
    /// Exceptions raised or reopened.
    pub exceptions: u32,
    /// Batches this run found closed.
    pub batches_closed: u32,
    /// Listed items that did not read as a transaction (kept in `helcim_payloads`).
    pub unreadable: u32,
    /// Transactions left for their webhook (younger than the grace).
    pub too_young: u32,
    /// Verdicts given, by verdict (`open`, `balanced`, `mismatch`).
    pub verdicts: BTreeMap<&'static str, u32>,
}

/// Why a run ended early. Messages never hold a token (Helcim's errors do not).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Helcim(#[from] HelcimError),
    #[error("Postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    NoClient(#[from] NoClient),
}

impl SweepError {
    /// A short, fixed label (metrics, the start of `sweep_runs.outcome`).
    pub fn label(&self) -> &'static str {
        match self {
            SweepError::Helcim(HelcimError::RateLimited { .. }) => "rate_limited",
            SweepError::Helcim(e) if e.is_transient() => "helcim_unavailable",
            SweepError::Helcim(_) => "helcim_error",
            SweepError::Database(_) => "database",
            SweepError::NoClient(_) => "no_client",
        }
    }
}

/// How a scheduled run ended.
#[derive(Debug)]
pub enum RunOutcome {
    /// Another replica holds the lock: nothing was done.
    Skipped,
    /// It ran (`error` set when it stopped early; retried next interval).
    Ran {
        counts: Counts,
        error: Option<SweepError>,
    },
}

/// Where the sweeps get the account's client: the consumer's own (so both spend one
/// limiter per account), or a set of their own (a backfill).
#[derive(Debug, Clone)]
pub enum Clients {
    OfProcessor(Arc<Processor>),
    Own(Arc<HelcimClients>),
}

impl Clients {
    async fn get(&self, account: &str) -> Result<HelcimClient, NoClient> {
        match self {
            Clients::OfProcessor(processor) => processor.clients.get(account).await,
            Clients::Own(clients) => clients.get(account).await,
        }
    }
}

/// Runs the passes.
#[derive(Debug, Clone)]
pub struct Sweeper {
    pub ledger: Ledger,
    pub clients: Clients,
    /// `RECON_MISSED_WEBHOOK_GRACE`.
    pub grace: Duration,
}

impl Sweeper {
    pub fn new(ledger: Ledger, clients: Clients, grace: Duration) -> Self {
        Sweeper {
            ledger,
            clients,
            grace,
        }
    }

    /// One scheduled run of `kind` on `account` (`window`: the completeness pass's
    /// dates), under its advisory lock, recorded in `sweep_runs` and counted in
    /// `worker_sweep_runs_total{kind,outcome}`. Never panics on a Helcim or Postgres
    /// failure: the run ends with the reason as its outcome.
    pub async fn run(&self, kind: Kind, account: &str, window: Option<Window>) -> RunOutcome {
        let pool = self.ledger.pool();
        let lock = match lock::try_lock(pool, kind.as_str(), account).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                count_run(kind, "skipped");
                tracing::debug!(
                    account,
                    kind = kind.as_str(),
                    "sweep skipped: another replica runs it"
                );
                return RunOutcome::Skipped;
            }
            Err(error) => {
                count_run(kind, "database");
                tracing::warn!(account, kind = kind.as_str(), %error, "sweep lock unavailable");
                return RunOutcome::Ran {
                    counts: Counts::default(),
                    error: Some(error.into()),
                };
            }
        };
        let run_id = match runs::start(pool, account, kind, window).await {
            Ok(id) => id,
            Err(error) => {
                lock.release().await;
                count_run(kind, "database");
                return RunOutcome::Ran {
                    counts: Counts::default(),
                    error: Some(error.into()),
                };
            }
        };
        let mut counts = Counts::default();
        let result = self.passes(kind, account, window, &mut counts).await;
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(error) => format!("{}: {error}", error.label()),
        };
        if let Err(error) = runs::finish(pool, run_id, &counts, &outcome).await {
            tracing::warn!(account, %error, "could not complete the sweep_runs row");
        }
        lock.release().await;
        let label = result.as_ref().err().map_or("ok", SweepError::label);
        count_run(kind, label);
        match &result {
            Ok(()) => tracing::info!(
                account,
                kind = kind.as_str(),
                api_calls = counts.api_calls.0,
                listed = counts.listed,
                recorded = counts.recorded,
                corrected = counts.corrected,
                exceptions = counts.exceptions,
                batches_closed = counts.batches_closed,
                "sweep done"
            ),
            Err(error) => {
                tracing::warn!(account, kind = kind.as_str(), %error, "sweep stopped; retried next interval")
            }
        }
        RunOutcome::Ran {
            counts,
            error: result.err(),
        }
    }

    async fn passes(
        &self,
        kind: Kind,
        account: &str,
        window: Option<Window>,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let client = self.clients.get(account).await?;
        match (kind, window) {
            (Kind::Completeness, Some(window)) => {
                self.completeness(&client, account, &window, Origin::Sweep, counts)
                    .await?;
            }
            (Kind::Backfill, Some(window)) => {
                let touched = self
                    .completeness(&client, account, &window, Origin::Backfill, counts)
                    .await?;
                self.batches(&client, account, Some(&touched), counts)
                    .await?;
            }
            _ => self.batches(&client, account, None, counts).await?,
        }
        Ok(())
    }

    /// `reconctl backfill`: the completeness pass over `window` (recording with
    /// `Origin::Backfill`), then the batch pass over the batches it listed, under the
    /// account's backfill lock. `None` when another backfill of the account is running.
    pub async fn backfill(
        &self,
        account: &str,
        window: Window,
    ) -> Option<(Counts, Option<SweepError>)> {
        match self.run(Kind::Backfill, account, Some(window)).await {
            RunOutcome::Skipped => None,
            RunOutcome::Ran { counts, error } => Some((counts, error)),
        }
    }
}

fn count_run(kind: Kind, outcome: &'static str) {
    metrics::counter!("worker_sweep_runs_total", "kind" => kind.as_str(), "outcome" => outcome)
        .increment(1);
}
