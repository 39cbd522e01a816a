//! `sweep_runs`: one row per run, written when it starts and completed when it ends.

use sqlx::PgPool;

use super::Counts;
use super::window::Window;

/// The kinds `sweep_runs.kind` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Completeness,
    Batches,
    Backfill,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Completeness => "completeness",
            Kind::Batches => "batches",
            Kind::Backfill => "backfill",
        }
    }
}

pub async fn start(
    pool: &PgPool,
    account: &str,
    kind: Kind,
    window: Option<Window>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO sweep_runs (account_id, kind, window_from, window_to)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(account)
    .bind(kind.as_str())
    .bind(window.map(|w| w.from))
    .bind(window.map(|w| w.to))
    .fetch_one(pool)
    .await
}

pub async fn finish(
    pool: &PgPool,
    id: i64,
    counts: &Counts,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sweep_runs SET finished_at = now(), api_calls = $2, listed = $3, recorded = $4,
             corrected = $5, exceptions = $6, batches_closed = $7, outcome = $8
         WHERE id = $1",
    )
    .bind(id)
    .bind(counts.api_calls.0 as i32)
    .bind(counts.listed as i32)
    .bind(counts.recorded as i32)
    .bind(counts.corrected as i32)
    .bind(counts.exceptions as i32)
    .bind(counts.batches_closed as i32)
    .bind(outcome)
    .execute(pool)
    .await?;
    Ok(())
}
