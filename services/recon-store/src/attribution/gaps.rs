//! Attribution gaps as people see and work them: the listing (filters, account scope,
//! keyset pages), one gap with its audit trail, acknowledging and resolving
//! ([`actions`]), the notes written after a month closed, and the month summary
//! `reconctl attribution summary` prints. The engine (recon-worker) creates and
//! updates gaps; nothing here creates one.
//!
//! Scope: [`Scope::Accounts`] sees the gaps of those accounts only; gaps of an
//! unregistered account (orphan evidence whose API token matches no account, so no
//! `account_id`) are seen by [`Scope::All`] alone.

pub mod actions;
pub mod cursor;

use chrono::{DateTime, Utc};
use recon_attribution::report::share_of;
use recon_attribution::{GapClass, GapStatus, Month, OrphanReason, Resolution};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

pub use super::report::Scope;
pub use actions::{ActionError, MAX_NOTE_CHARS, Note, NoteError, acknowledge, resolve};
pub use cursor::CursorError;

/// The most gaps one page holds, and how many when no limit is asked.
pub const MAX_LIMIT: u32 = 1_000;
pub const DEFAULT_LIMIT: u32 = 100;

/// What to list; every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GapFilter {
    pub month: Option<Month>,
    pub account: Option<String>,
    pub class: Option<GapClass>,
    pub status: Option<GapStatus>,
}

/// One gap, as the API and reconctl show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub id: i64,
    /// `None`: orphan evidence of an unregistered account.
    pub account_id: Option<String>,
    /// The ledger transaction; for `orphan_evidence`, the id its evidence claimed.
    pub transaction_id: Option<i64>,
    /// The evidence that decided the class (the orphan itself for `orphan_evidence`).
    pub evidence_id: Option<i64>,
    pub class: GapClass,
    pub reason: Option<OrphanReason>,
    pub candidates: Option<Vec<i64>>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub month: Month,
    pub deadline: DateTime<Utc>,
    pub status: GapStatus,
    pub resolution: Option<Resolution>,
    pub detected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The account's share rate when one is set.
    pub share_rate_bps: Option<i32>,
}

impl Gap {
    /// The revenue share this gap puts at risk: its amount times the account's rate,
    /// rounded down to the cent, as the report computes it. `None` without a rate or
    /// an amount, for `orphan_evidence` (its money is not in the ledger, so the report
    /// does not count it either), and once resolved (nothing is at risk any more).
    pub fn share_at_risk_minor(&self) -> Option<i64> {
        if !self.class.puts_money_at_risk() || self.status == GapStatus::Resolved {
            return None;
        }
        Some(share_of(self.amount_minor?, self.share_rate_bps?))
    }
}

/// One entry of a gap's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapEvent {
    pub at: DateTime<Utc>,
    /// `engine`, `api-key:<prefix>` or `reconctl:<user>`.
    pub actor: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub from_class: Option<String>,
    pub to_class: String,
    pub note: Option<String>,
}

/// A page of gaps, and the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub gaps: Vec<Gap>,
    pub next_cursor: Option<String>,
}

/// Something that happened after a month closed to one of its gaps (late evidence):
/// shown beside the frozen report, never in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostCloseNote {
    pub id: i64,
    pub month: Month,
    pub account_id: Option<String>,
    pub gap_id: i64,
    pub evidence_id: Option<i64>,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// `SELECT` of a gap and its account's share rate, from `attribution_gaps g LEFT JOIN
/// accounts a` (a macro so queries stay literal SQL).
macro_rules! select_gap {
    () => {
        "SELECT g.id, g.account_id, g.transaction_id, g.evidence_id, g.class, g.reason, \
                g.candidates, g.amount_minor, g.currency, g.month, g.deadline, g.status, \
                g.resolution, g.detected_at, g.updated_at, a.revenue_share_bps \
           FROM attribution_gaps g LEFT JOIN accounts a ON a.account_id = g.account_id "
    };
}
pub(crate) use select_gap;

fn named<T: std::str::FromStr>(row: &PgRow, column: &str) -> Result<T, sqlx::Error>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e: T::Err| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: Box::new(e),
    })
}

fn named_opt<T: std::str::FromStr>(row: &PgRow, column: &str) -> Result<Option<T>, sqlx::Error>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| t.parse())
        .transpose()
        .map_err(|e: T::Err| sqlx::Error::ColumnDecode {
            index: column.into(),
            source: Box::new(e),
        })
}

pub(crate) fn gap_of(row: &PgRow) -> Result<Gap, sqlx::Error> {
    Ok(Gap {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        transaction_id: row.try_get("transaction_id")?,
        evidence_id: row.try_get("evidence_id")?,
        class: named(row, "class")?,
        reason: named_opt(row, "reason")?,
        candidates: row.try_get("candidates")?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row
            .try_get::<Option<String>, _>("currency")?
            .map(|c| c.trim().to_string()),
        month: Month::of_date(row.try_get("month")?),
        deadline: row.try_get("deadline")?,
        status: named(row, "status")?,
        resolution: named_opt(row, "resolution")?,
        detected_at: row.try_get("detected_at")?,
        updated_at: row.try_get("updated_at")?,
        share_rate_bps: row.try_get("revenue_share_bps")?,
    })
}

/// The account list a scope restricts to (`None`: every account, unregistered too).
pub(crate) fn scope_accounts(scope: &Scope) -> Option<Vec<String>> {
    match scope {
        Scope::All => None,
        Scope::Accounts(list) => Some(list.clone()),
    }
}

/// Whether `scope` may see a gap of `account` (`None`: unregistered).
pub fn sees(scope: &Scope, account: Option<&str>) -> bool {
    match (scope, account) {
        (Scope::All, _) => true,
        (Scope::Accounts(list), Some(account)) => list.iter().any(|a| a == account),
        (Scope::Accounts(_), None) => false,
    }
}

/// One page of the gaps `scope` may see that match `filter`, oldest first (by id),
/// after `cursor`. `limit` must be 1 to [`MAX_LIMIT`] (the caller checks; it is
/// clamped here all the same).
pub async fn list(
    pool: &PgPool,
    scope: &Scope,
    filter: &GapFilter,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Result<Page, CursorError>, sqlx::Error> {
    let after = match cursor.map(|c| cursor::decode(c, filter)).transpose() {
        Ok(after) => after.unwrap_or(0),
        Err(error) => return Ok(Err(error)),
    };
    let limit = limit.clamp(1, MAX_LIMIT);
    let rows = sqlx::query(concat!(
        select_gap!(),
        "WHERE g.id > $1
            AND ($2::date IS NULL OR g.month = $2)
            AND ($3::text IS NULL OR g.account_id = $3)
            AND ($4::text IS NULL OR g.class = $4)
            AND ($5::text IS NULL OR g.status = $5)
            AND ($6::text[] IS NULL OR g.account_id = ANY($6))
          ORDER BY g.id
          LIMIT $7"
    ))
    .bind(after)
    .bind(filter.month.map(Month::first_day))
    .bind(filter.account.as_deref())
    .bind(filter.class.map(GapClass::as_str))
    .bind(filter.status.map(GapStatus::as_str))
    .bind(scope_accounts(scope))
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    let mut gaps = rows.iter().map(gap_of).collect::<Result<Vec<_>, _>>()?;
    let more = gaps.len() > limit as usize;
    gaps.truncate(limit as usize);
    let next_cursor = more
        .then(|| gaps.last().map(|g| cursor::encode(g.id, filter)))
        .flatten();
    Ok(Ok(Page { gaps, next_cursor }))
}

/// One gap and its audit trail (oldest first), when `scope` may see it.
pub async fn get(
    pool: &PgPool,
    scope: &Scope,
    gap_id: i64,
) -> Result<Option<(Gap, Vec<GapEvent>)>, sqlx::Error> {
    let row = sqlx::query(concat!(select_gap!(), "WHERE g.id = $1"))
        .bind(gap_id)
        .fetch_optional(pool)
        .await?;
    let Some(gap) = row.as_ref().map(gap_of).transpose()? else {
        return Ok(None);
    };
    if !sees(scope, gap.account_id.as_deref()) {
        return Ok(None);
    }
    let events = sqlx::query(
        "SELECT at, actor, from_status, to_status, from_class, to_class, note
           FROM attribution_gap_events WHERE gap_id = $1 ORDER BY id",
    )
    .bind(gap_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(GapEvent {
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            from_status: row.try_get("from_status")?,
            to_status: row.try_get("to_status")?,
            from_class: row.try_get("from_class")?,
            to_class: row.try_get("to_class")?,
            note: row.try_get("note")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some((gap, events)))
}

/// The post-close notes of a month that `scope` may see, oldest first.
pub async fn post_close_notes(
    pool: &PgPool,
    month: Month,
    scope: &Scope,
) -> Result<Vec<PostCloseNote>, sqlx::Error> {
    sqlx::query(
        "SELECT id, month, account_id, gap_id, evidence_id, at, note
           FROM attribution_post_close_notes
          WHERE month = $1 AND ($2::text[] IS NULL OR account_id = ANY($2))
          ORDER BY id",
    )
    .bind(month.first_day())
    .bind(scope_accounts(scope))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(PostCloseNote {
            id: row.try_get("id")?,
            month: Month::of_date(row.try_get("month")?),
            account_id: row.try_get("account_id")?,
            gap_id: row.try_get("gap_id")?,
            evidence_id: row.try_get("evidence_id")?,
            at: row.try_get("at")?,
            note: row.try_get("note")?,
        })
    })
    .collect()
}

/// What `reconctl attribution summary` prints for a month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub month: Month,
    /// When the report was frozen, once it is.
    pub frozen_at: Option<DateTime<Utc>>,
    /// Gaps by class and status (orphans and unregistered accounts included).
    pub gaps: Vec<(GapClass, GapStatus, i64)>,
    /// Money at risk (verdict `gap`: open, acknowledged or expired gaps) by account
    /// and currency, with the account's share rate.
    pub at_risk: Vec<AtRisk>,
    pub post_close_notes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRisk {
    pub account_id: String,
    pub currency: String,
    pub amount_minor: i64,
    pub share_rate_bps: Option<i32>,
}

/// The month's summary over every account.
pub async fn summary(pool: &PgPool, month: Month) -> Result<Summary, sqlx::Error> {
    let day = month.first_day();
    let gaps = sqlx::query(
        "SELECT class, status, count(*) AS n FROM attribution_gaps WHERE month = $1
          GROUP BY class, status ORDER BY class, status",
    )
    .bind(day)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok((
            named(row, "class")?,
            named(row, "status")?,
            row.try_get("n")?,
        ))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let at_risk = sqlx::query(
        "SELECT t.account_id, t.currency, sum(t.amount_minor)::bigint AS amount,
                a.revenue_share_bps
           FROM attribution_transactions t LEFT JOIN accounts a ON a.account_id = t.account_id
          WHERE t.month = $1 AND t.verdict = 'gap'
          GROUP BY t.account_id, t.currency, a.revenue_share_bps
          ORDER BY t.account_id, t.currency",
    )
    .bind(day)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(AtRisk {
            account_id: row.try_get("account_id")?,
            currency: row.try_get::<String, _>("currency")?.trim().to_string(),
            amount_minor: row.try_get("amount")?,
            share_rate_bps: row.try_get("revenue_share_bps")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let frozen_at =
        sqlx::query_scalar("SELECT frozen_at FROM attribution_reports WHERE month = $1")
            .bind(day)
            .fetch_optional(pool)
            .await?;
    let post_close_notes =
        sqlx::query_scalar("SELECT count(*) FROM attribution_post_close_notes WHERE month = $1")
            .bind(day)
            .fetch_one(pool)
            .await?;
    Ok(Summary {
        month,
        frozen_at,
        gaps,
        at_risk,
        post_close_notes,
    })
}
