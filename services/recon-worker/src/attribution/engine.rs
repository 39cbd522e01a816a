//! The attribution engine (docs/attribution.md): every worker replica runs it. It
//! wakes on `NOTIFY recon_attribution` (the triggers of migration 0009 send one when
//! the ledger or the evidence changes), polls every second in case a notification
//! was lost, and sweeps every `RECON_ATTRIBUTION_SWEEP_INTERVAL` for grace periods
//! that ran out. The work itself is in [`batch`]; the rules are in the pure
//! `recon-attribution` crate.
//!
//! Every "now" comes from the settings' [`Clock`], never from the database, so a test
//! (or a drill) moves the engine across a grace period or a month end with an offset
//! file.

mod apply;
mod batch;
mod load;
mod store;
mod sweep;

use std::time::Duration;

use chrono::{DateTime, Utc};
use recon_attribution::{Clock, CloseCalendar};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use batch::BatchOutcome;

use super::settings::AttributionSettings;

/// The notification channel the triggers use.
pub const CHANNEL: &str = "recon_attribution";

/// How often the dirty marks are polled when no notification comes.
const POLL: Duration = Duration::from_secs(1);

/// Dirty marks per database transaction.
const BATCH_SIZE: i64 = 500;

/// What the engine runs with (from [`AttributionSettings`]).
#[derive(Debug, Clone)]
pub struct Engine {
    pub calendar: CloseCalendar,
    pub grace: Duration,
    pub match_window: Duration,
    pub sweep_interval: Duration,
    pub batch_size: i64,
    pub clock: Clock,
}

impl Engine {
    pub fn new(settings: &AttributionSettings) -> Self {
        Engine {
            calendar: settings.close_timezone,
            grace: settings.grace(),
            match_window: settings.match_window(),
            sweep_interval: settings.sweep_interval(),
            batch_size: BATCH_SIZE,
            clock: settings.clock(),
        }
    }
}

/// Starts the engine when `settings.enabled`; it stops when `shutdown` is cancelled
/// (after the batch in hand commits or rolls back).
pub fn spawn(
    pool: PgPool,
    settings: &AttributionSettings,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    if !settings.enabled {
        tracing::info!("attribution engine off (RECON_ATTRIBUTION=false)");
        return None;
    }
    let engine = Engine::new(settings);
    if !engine.clock.is_system() {
        tracing::warn!(
            "attribution clock is offset by RECON_CLOCK_OFFSET_FILE: for tests and drills only, gaps and closes follow that clock"
        );
    }
    Some(tokio::spawn(run(pool, engine, shutdown)))
}

/// The engine's loop: drain the dirty marks, wait for a notification or the poll,
/// sweep when due.
pub async fn run(pool: PgPool, engine: Engine, shutdown: CancellationToken) {
    let mut listener = None;
    let mut next_sweep = tokio::time::Instant::now();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if tokio::time::Instant::now() >= next_sweep {
            match sweep::mark_due(&pool, &engine, engine.clock.now()).await {
                Ok(0) => {}
                Ok(marked) => tracing::debug!(marked, "attribution sweep marked due rows"),
                Err(error) => {
                    tracing::warn!(%error, "attribution sweep failed; retrying at the next one")
                }
            }
            next_sweep = tokio::time::Instant::now() + engine.sweep_interval;
        }
        if let Err(error) = drain(&pool, &engine, &shutdown).await {
            tracing::warn!(%error, "attribution batch failed; its marks are kept and retried");
        }
        if listener.is_none() {
            listener = listen(&pool).await;
        }
        let wait = POLL.min(next_sweep.saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            received = wait_for(&mut listener), if listener.is_some() => {
                if received.is_err() {
                    listener = None;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("attribution engine stopped");
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let result = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    match result {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "attribution engine cannot LISTEN; polling every second instead");
            None
        }
    }
}

async fn wait_for(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => {
            listener.recv().await?;
            // One wake-up serves every notification already waiting.
            while listener.next_buffered().is_some() {}
            Ok(())
        }
        None => std::future::pending().await,
    }
}

/// Processes batches until no dirty mark is left (or shutdown).
///
/// A batch that fails is rolled back whole, so one mark that always fails (a bug, a
/// row the rules cannot store) would block every mark behind it. After a failure the
/// marks are taken one at a time, and one that fails alone is moved to the back of the
/// queue with a warning, so the others are judged and only the culprit waits.
async fn drain(
    pool: &PgPool,
    engine: &Engine,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    while !shutdown.is_cancelled() {
        match process_batch(pool, engine, engine.clock.now()).await {
            Ok(outcome) if outcome.marks == 0 => break,
            Ok(outcome) => tracing::debug!(?outcome, "attribution batch committed"),
            Err(error) => {
                tracing::warn!(%error, "attribution batch failed; taking its marks one at a time");
                return one_at_a_time(pool, engine, shutdown).await;
            }
        }
    }
    Ok(())
}

async fn one_at_a_time(
    pool: &PgPool,
    engine: &Engine,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let single = Engine {
        batch_size: 1,
        ..engine.clone()
    };
    for _ in 0..engine.batch_size {
        if shutdown.is_cancelled() {
            break;
        }
        match process_batch(pool, &single, single.clock.now()).await {
            Ok(outcome) if outcome.marks == 0 => break,
            Ok(_) => {}
            Err(error) => {
                let mark = requeue_first(pool).await?;
                tracing::warn!(%error, ?mark, "attribution mark failed on its own; moved to the back of the queue");
            }
        }
    }
    Ok(())
}

/// Moves the first mark nobody holds to the back of the queue (same content, new id).
async fn requeue_first(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH taken AS (
             DELETE FROM attribution_dirty WHERE id = (
                 SELECT id FROM attribution_dirty ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
             RETURNING account_id, transaction_id, evidence_id, marked_at)
         INSERT INTO attribution_dirty (account_id, transaction_id, evidence_id, marked_at)
         SELECT account_id, transaction_id, evidence_id, marked_at FROM taken
         RETURNING id",
    )
    .fetch_optional(pool)
    .await
}

/// Takes the engine's per-account locks until the end of the caller's database
/// transaction, in sorted order (so two holders never deadlock). Anything else that
/// changes gaps of many accounts at once (the close expiring a month's gaps) can take
/// them first to wait for the engine's batches instead of racing their row locks.
/// Unregistered evidence is locked under the empty account name.
pub async fn lock_accounts(
    conn: &mut sqlx::PgConnection,
    accounts: &std::collections::BTreeSet<String>,
) -> Result<(), sqlx::Error> {
    for account in accounts {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('recon_attribution'), hashtext($1))")
            .bind(account)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// One batch in one database transaction, judged as of `now`.
pub async fn process_batch(
    pool: &PgPool,
    engine: &Engine,
    now: DateTime<Utc>,
) -> Result<BatchOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let outcome = batch::run(&mut tx, engine, now).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Everything the engine would do in one turn of its loop, once: the sweep, then
/// the dirty marks (a failing mark is moved to the back, as in the loop). For tests
/// and tools.
pub async fn process_once(pool: &PgPool, engine: &Engine) -> Result<(), sqlx::Error> {
    sweep::mark_due(pool, engine, engine.clock.now()).await?;
    drain(pool, engine, &CancellationToken::new()).await
}
