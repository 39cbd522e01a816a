//! The month report, live or frozen. A live report is summed from the engine's
//! verdicts (`attribution_transactions`, one index range scan per month) and its
//! unresolved gaps; a frozen one is read back exactly as stored when the month closed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use recon_attribution::report::{GapCount, Report, Tally};
use recon_attribution::{CloseCalendar, GapClass, Kind, Month};
use sqlx::{PgPool, Row};

/// A frozen document as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenDocument {
    pub body: Vec<u8>,
    pub sha256: String,
}

/// Which accounts a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Accounts(Vec<String>),
}

impl Scope {
    fn includes(&self, account: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Accounts(list) => list.iter().any(|a| a == account),
        }
    }

    fn filter(&self) -> Option<Vec<String>> {
        match self {
            Scope::All => None,
            Scope::Accounts(list) => Some(list.clone()),
        }
    }
}

fn kind_of(text: &str) -> Kind {
    match text {
        "revenue" => Kind::Revenue,
        "adjustment" => Kind::Adjustment,
        _ => Kind::None,
    }
}

/// Sums the month's verdicts into a live report.
pub async fn live(
    pool: &PgPool,
    calendar: CloseCalendar,
    month: Month,
    scope: &Scope,
    as_of: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    let accounts = scope.filter();
    // One snapshot for every sum: read statement by statement, an engine batch
    // committing in between would give gap counts that disagree with the money (and
    // the freeze keeps what it reads for good).
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT account_id, currency, kind, verdict, gap_class,
                count(*) AS n, COALESCE(sum(amount_minor), 0)::bigint AS amount
           FROM attribution_transactions
          WHERE month = $1 AND ($2::text[] IS NULL OR account_id = ANY($2))
          GROUP BY account_id, currency, kind, verdict, gap_class",
    )
    .bind(month.first_day())
    .bind(&accounts)
    .fetch_all(&mut *tx)
    .await?;
    let tallies: Vec<Tally> = rows
        .iter()
        .map(|row| Tally {
            account_id: row.get("account_id"),
            currency: row.get("currency"),
            kind: kind_of(row.get::<&str, _>("kind")),
            verdict: row.get("verdict"),
            gap_class: row
                .get::<Option<&str>, _>("gap_class")
                .and_then(|c| c.parse::<GapClass>().ok()),
            count: row.get("n"),
            amount_minor: row.get("amount"),
        })
        .collect();
    let gap_rows = sqlx::query(
        "SELECT account_id, class, count(*) AS n FROM attribution_gaps
          WHERE month = $1 AND account_id IS NOT NULL AND status <> 'resolved'
            AND ($2::text[] IS NULL OR account_id = ANY($2))
          GROUP BY account_id, class",
    )
    .bind(month.first_day())
    .bind(&accounts)
    .fetch_all(&mut *tx)
    .await?;
    let gap_counts: Vec<GapCount> = gap_rows
        .iter()
        .filter_map(|row| {
            Some(GapCount {
                account_id: row.get("account_id"),
                class: row.get::<&str, _>("class").parse().ok()?,
                count: row.get("n"),
            })
        })
        .collect();
    let rates: BTreeMap<String, i32> = sqlx::query(
        "SELECT account_id, revenue_share_bps FROM accounts WHERE revenue_share_bps IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| (row.get("account_id"), row.get("revenue_share_bps")))
    .filter(|(account, _): &(String, i32)| scope.includes(account))
    .collect();
    tx.commit().await?;
    Ok(Report::assemble(
        month,
        calendar.close_of(month),
        false,
        as_of,
        &tallies,
        &gap_counts,
        &rates,
    ))
}

/// The frozen document of a month for one scope (`*` or an account id) and format
/// (`json` or `csv`), when the month has been frozen.
pub async fn frozen_document(
    pool: &PgPool,
    month: Month,
    scope: &str,
    format: &str,
) -> Result<Option<FrozenDocument>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT body, sha256 FROM attribution_report_documents
          WHERE month = $1 AND scope = $2 AND format = $3",
    )
    .bind(month.first_day())
    .bind(scope)
    .bind(format)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| FrozenDocument {
        body: row.get("body"),
        sha256: row.get("sha256"),
    }))
}

/// Whether a month's report is frozen (its close has passed and been processed).
pub async fn is_frozen(pool: &PgPool, month: Month) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM attribution_reports WHERE month = $1)")
        .bind(month.first_day())
        .fetch_one(pool)
        .await
}

/// The frozen documents of a month in one format for several scopes (`*` or account
/// ids), as `(scope, document)` sorted by scope; scopes without a document (an
/// account with no line that month) are left out.
pub async fn frozen_documents(
    pool: &PgPool,
    month: Month,
    scopes: &[String],
    format: &str,
) -> Result<Vec<(String, FrozenDocument)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT scope, body, sha256 FROM attribution_report_documents
          WHERE month = $1 AND scope = ANY($2) AND format = $3 ORDER BY scope",
    )
    .bind(month.first_day())
    .bind(scopes)
    .bind(format)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                row.get("scope"),
                FrozenDocument {
                    body: row.get("body"),
                    sha256: row.get("sha256"),
                },
            )
        })
        .collect())
}
