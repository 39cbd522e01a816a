//! Which month report to serve, for the API and reconctl alike: once the month is
//! frozen, the stored document's bytes exactly (or, for a caller who may see several
//! accounts but not all, the stored whole-month document restricted to them, which
//! renders deterministically); before, the live report.

use chrono::{DateTime, Utc};
use recon_attribution::report::{Report, sha256_hex};
use recon_attribution::{CloseCalendar, Month};
use sqlx::PgPool;

use super::report::{self, Scope};

/// JSON or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// The `format` column of `attribution_report_documents`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    fn render(self, report: &Report) -> Vec<u8> {
        match self {
            Format::Json => report.to_json(),
            Format::Csv => report.to_csv(),
        }
    }
}

/// A report ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub body: Vec<u8>,
    /// Lower-case hex SHA-256 of `body` (the frozen document's stored hash when it is
    /// served as stored).
    pub sha256: String,
    pub frozen: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "the report of {0} is frozen but its whole-month document is missing or unreadable; \
         the close did not finish storing it (check the worker's log)"
    )]
    Damaged(Month),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The report of `month` for `scope` in `format`: frozen bytes once frozen, else the
/// live report as of `now`.
pub async fn report(
    pool: &PgPool,
    calendar: CloseCalendar,
    month: Month,
    scope: &Scope,
    format: Format,
    now: DateTime<Utc>,
) -> Result<Document, DocumentError> {
    if !report::is_frozen(pool, month).await? {
        let live = report::live(pool, calendar, month, scope, now).await?;
        let body = format.render(&live);
        return Ok(Document {
            sha256: sha256_hex(&body),
            body,
            frozen: false,
        });
    }
    let stored_scope = match scope {
        Scope::All => Some("*"),
        Scope::Accounts(list) if list.len() == 1 => Some(list[0].as_str()),
        Scope::Accounts(_) => None,
    };
    if let Some(stored_scope) = stored_scope {
        if let Some(stored) =
            report::frozen_document(pool, month, stored_scope, format.as_str()).await?
        {
            return Ok(Document {
                body: stored.body,
                sha256: stored.sha256,
                frozen: true,
            });
        }
        if stored_scope == "*" {
            return Err(DocumentError::Damaged(month));
        }
    }
    // Several accounts (or one without lines that month): the whole month's stored
    // JSON, restricted. Same stored bytes, same scope: same answer.
    let whole = report::frozen_document(pool, month, "*", "json")
        .await?
        .ok_or(DocumentError::Damaged(month))?;
    let whole = Report::from_json(&whole.body).map_err(|_| DocumentError::Damaged(month))?;
    let only = whole.only(&|account| match scope {
        Scope::All => true,
        Scope::Accounts(list) => list.iter().any(|a| a == account),
    });
    let body = format.render(&only);
    Ok(Document {
        sha256: sha256_hex(&body),
        body,
        frozen: true,
    })
}

/// How many post-close notes a month has within `scope`.
pub async fn post_close_note_count(
    pool: &PgPool,
    month: Month,
    scope: &Scope,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM attribution_post_close_notes
          WHERE month = $1 AND ($2::text[] IS NULL OR account_id = ANY($2))",
    )
    .bind(month.first_day())
    .bind(super::gaps::scope_accounts(scope))
    .fetch_one(pool)
    .await
}
