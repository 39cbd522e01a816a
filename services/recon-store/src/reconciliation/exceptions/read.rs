//! Reading exceptions: one with its audit trail, and the listing (filters, newest
//! first, keyset pages on the id).

use chrono::{DateTime, Utc};
use recon_reconcile::{ExceptionClass, ExceptionStatus};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

/// The most exceptions one page holds, and how many when no limit is asked.
pub const MAX_LIMIT: u32 = 1_000;
pub const DEFAULT_LIMIT: u32 = 100;

/// How a resolved exception was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A person resolved it, with a note: final.
    Person,
    /// The system saw its cause go away: reopens if the cause comes back.
    Cleared,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Person => "person",
            Resolution::Cleared => "cleared",
        }
    }
}

/// One exception, as reconctl and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    pub id: i64,
    pub account_id: String,
    pub class: ExceptionClass,
    pub transaction_id: Option<i64>,
    pub card_batch_id: Option<i64>,
    pub dedupe_key: String,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub status: ExceptionStatus,
    pub resolution: Option<Resolution>,
    pub note: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
}

/// One entry of an exception's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `system`, or who acted (`reconctl:<user>`, `api-key:<prefix>`).
    pub actor: String,
    /// `raised`, `acknowledged`, `resolved`, `cleared` or `reopened`.
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: Option<String>,
}

/// What to list; every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExceptionFilter {
    /// The accounts the caller may see (`None`: every account).
    pub accounts: Option<Vec<String>>,
    pub account: Option<String>,
    pub class: Option<ExceptionClass>,
    pub status: Option<ExceptionStatus>,
    pub transaction_id: Option<i64>,
    pub card_batch_id: Option<i64>,
}

/// A page of exceptions, newest first, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub exceptions: Vec<Exception>,
    /// Pass as `after_id` for the next (older) page; `None` on the last page.
    pub next_after_id: Option<i64>,
}

/// The columns [`exception_of`] reads (a macro so queries stay literal SQL).
macro_rules! select_exception {
    () => {
        "SELECT id, account_id, class, transaction_id, card_batch_id, dedupe_key, summary, \
                evidence, amount_minor, currency::text AS currency, status, resolution, note, \
                detected_at, updated_at, acknowledged_at, acknowledged_by, resolved_at, \
                resolved_by \
           FROM reconciliation_exceptions "
    };
}

fn decode<T, E>(column: &str, parsed: Result<T, E>) -> Result<T, sqlx::Error>
where
    E: std::error::Error + Send + Sync + 'static,
{
    parsed.map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: Box::new(e),
    })
}

#[derive(Debug, thiserror::Error)]
#[error("unknown resolution {0:?}")]
struct UnknownResolution(String);

fn exception_of(row: &PgRow) -> Result<Exception, sqlx::Error> {
    let class: String = row.try_get("class")?;
    let status: String = row.try_get("status")?;
    let resolution = match row.try_get::<Option<String>, _>("resolution")?.as_deref() {
        None => None,
        Some("person") => Some(Resolution::Person),
        Some("cleared") => Some(Resolution::Cleared),
        Some(other) => return decode("resolution", Err(UnknownResolution(other.to_string()))),
    };
    Ok(Exception {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        class: decode("class", ExceptionClass::parse(&class))?,
        transaction_id: row.try_get("transaction_id")?,
        card_batch_id: row.try_get("card_batch_id")?,
        dedupe_key: row.try_get("dedupe_key")?,
        summary: row.try_get("summary")?,
        evidence: row.try_get("evidence")?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        status: decode("status", ExceptionStatus::parse(&status))?,
        resolution,
        note: row.try_get("note")?,
        detected_at: row.try_get("detected_at")?,
        updated_at: row.try_get("updated_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
    })
}

/// One exception and its audit trail (oldest first).
pub async fn get(
    pool: &PgPool,
    id: i64,
) -> Result<Option<(Exception, Vec<ExceptionEvent>)>, sqlx::Error> {
    let Some(row) = sqlx::query(concat!(select_exception!(), "WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let exception = exception_of(&row)?;
    let events = sqlx::query(
        "SELECT id, at, actor, action, from_status, to_status, note
           FROM reconciliation_exception_events WHERE exception_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(ExceptionEvent {
            id: row.try_get("id")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            from_status: row.try_get("from_status")?,
            to_status: row.try_get("to_status")?,
            note: row.try_get("note")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some((exception, events)))
}

/// One page of the exceptions matching `filter`, newest first: those with an id below
/// `after_id` (the previous page's `next_after_id`), at most `limit` (clamped to 1 to
/// [`MAX_LIMIT`]).
pub async fn list(
    pool: &PgPool,
    filter: &ExceptionFilter,
    after_id: Option<i64>,
    limit: u32,
) -> Result<Page, sqlx::Error> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let rows = sqlx::query(concat!(
        select_exception!(),
        "WHERE ($1::bigint IS NULL OR id < $1)
            AND ($2::text[] IS NULL OR account_id = ANY($2))
            AND ($3::text IS NULL OR account_id = $3)
            AND ($4::text IS NULL OR class = $4)
            AND ($5::text IS NULL OR status = $5)
            AND ($6::bigint IS NULL OR transaction_id = $6)
            AND ($7::bigint IS NULL OR card_batch_id = $7)
          ORDER BY id DESC
          LIMIT $8"
    ))
    .bind(after_id)
    .bind(filter.accounts.as_deref())
    .bind(filter.account.as_deref())
    .bind(filter.class.map(ExceptionClass::as_str))
    .bind(filter.status.map(ExceptionStatus::as_str))
    .bind(filter.transaction_id)
    .bind(filter.card_batch_id)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    let mut exceptions = rows
        .iter()
        .map(exception_of)
        .collect::<Result<Vec<_>, _>>()?;
    let more = exceptions.len() > limit as usize;
    exceptions.truncate(limit as usize);
    let next_after_id = if more {
        exceptions.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Page {
        exceptions,
        next_after_id,
    })
}
