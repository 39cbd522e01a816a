//! Reading a source's active entries and appending entries, one round trip each.

use chrono::{DateTime, Utc};
use recon_reconcile::journal::{EntryKind, Line, plan_in_batch, reversal};
use serde::Deserialize;
use sqlx::PgConnection;

use super::Posted;
use super::memo;

/// An entry no correction has reversed, as `active_entries_json` renders it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ActiveEntry {
    pub id: i64,
    pub kind: String,
    pub card_batch_id: Option<i64>,
    pub effective_at: DateTime<Utc>,
    pub lines: Vec<Line>,
}

impl ActiveEntry {
    pub fn kind(&self) -> Result<EntryKind, sqlx::Error> {
        EntryKind::parse(&self.kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown journal entry kind {:?}", self.kind).into())
        })
    }

    pub fn batch(&self) -> Option<u64> {
        self.card_batch_id.map(|b| b as u64)
    }
}

pub(super) fn parse_active(json: serde_json::Value) -> Result<Vec<ActiveEntry>, sqlx::Error> {
    serde_json::from_value(json)
        .map_err(|e| sqlx::Error::Decode(format!("active journal entries: {e}").into()))
}

/// The entry a plan posts, and where it belongs.
pub(super) struct Target<'a> {
    pub account_id: &'a str,
    pub transaction_id: Option<u64>,
    pub card_batch_id: Option<u64>,
    pub effective_at: DateTime<Utc>,
    /// What the new entry records, in words.
    pub memo: String,
    /// Why the active entry no longer holds, for the correction's memo.
    pub why: String,
}

/// Brings a source's active entries in line with `desired`: [`plan_in_batch`] against
/// the newest active entry; any older one still active (which the row locks should
/// make impossible) is reversed too, so at most one stays active.
pub(super) async fn bring_in_line(
    db: &mut PgConnection,
    active: &[ActiveEntry],
    desired: Option<(EntryKind, Vec<Line>)>,
    target: &Target<'_>,
) -> Result<Posted, sqlx::Error> {
    let mut posted = Posted::default();
    let newest = match active.split_last() {
        Some((newest, older)) => {
            for entry in older {
                posted.add(reverse(db, entry, target).await?);
            }
            Some(newest)
        }
        None => None,
    };
    let plan = match newest {
        Some(entry) => plan_in_batch(
            Some((entry.kind()?, &entry.lines, entry.batch())),
            desired,
            target.card_batch_id,
        ),
        None => plan_in_batch(None, desired, target.card_batch_id),
    };
    if plan.reverse_active
        && let Some(entry) = newest
    {
        posted.add(reverse(db, entry, target).await?);
    }
    if let Some((kind, lines)) = plan.post {
        insert(
            db,
            &NewEntry {
                account_id: target.account_id,
                kind,
                transaction_id: target.transaction_id,
                card_batch_id: target.card_batch_id,
                reverses_entry_id: None,
                effective_at: target.effective_at,
                memo: &target.memo,
                lines: &lines,
            },
        )
        .await?;
        posted.entries += 1;
    }
    Ok(posted)
}

/// Posts the exact reversal of `entry` (a `correction`), in the entry's own batch and
/// at its own effective time, so it cancels the entry wherever the entry counted.
async fn reverse(
    db: &mut PgConnection,
    entry: &ActiveEntry,
    target: &Target<'_>,
) -> Result<Posted, sqlx::Error> {
    let memo = memo::correction(entry, &target.why);
    insert(
        db,
        &NewEntry {
            account_id: target.account_id,
            kind: EntryKind::Correction,
            transaction_id: target.transaction_id,
            card_batch_id: entry.batch(),
            reverses_entry_id: Some(entry.id),
            effective_at: entry.effective_at,
            memo: &memo,
            lines: &reversal(&entry.lines),
        },
    )
    .await?;
    Ok(Posted {
        entries: 1,
        corrections: 1,
    })
}

struct NewEntry<'a> {
    account_id: &'a str,
    kind: EntryKind,
    transaction_id: Option<u64>,
    card_batch_id: Option<u64>,
    reverses_entry_id: Option<i64>,
    effective_at: DateTime<Utc>,
    memo: &'a str,
    lines: &'a [Line],
}

/// One statement for the entry and its lines (the database checks the balance when
/// the caller's transaction commits).
async fn insert(db: &mut PgConnection, entry: &NewEntry<'_>) -> Result<i64, sqlx::Error> {
    let accounts: Vec<&str> = entry.lines.iter().map(|l| l.account.code()).collect();
    let currencies: Vec<&str> = entry.lines.iter().map(|l| l.currency.as_str()).collect();
    let amounts: Vec<i64> = entry.lines.iter().map(|l| l.amount_minor).collect();
    sqlx::query_scalar(
        "WITH entry AS (
             INSERT INTO journal_entries (account_id, kind, transaction_id, card_batch_id,
                                          reverses_entry_id, effective_at, memo)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id),
         lines AS (
             INSERT INTO journal_lines (entry_id, line_no, ledger_account, currency, amount_minor)
             SELECT entry.id, line.n::smallint, line.account, line.currency, line.amount
             FROM entry, unnest($8::text[], $9::text[], $10::bigint[])
                 WITH ORDINALITY AS line(account, currency, amount, n))
         SELECT id FROM entry",
    )
    .bind(entry.account_id)
    .bind(entry.kind.as_str())
    .bind(entry.transaction_id.map(|t| t as i64))
    .bind(entry.card_batch_id.map(|b| b as i64))
    .bind(entry.reverses_entry_id)
    .bind(entry.effective_at)
    .bind(entry.memo)
    .bind(&accounts)
    .bind(&currencies)
    .bind(&amounts)
    .fetch_one(db)
    .await
}
