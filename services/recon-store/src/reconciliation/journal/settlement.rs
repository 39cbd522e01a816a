//! Posting a closed batch's settlement: Helcim's reported net leaves card clearing for
//! the settlement receivable.

use chrono::{DateTime, Utc};
use recon_reconcile::journal::{EntryKind, settlement_lines};
use sqlx::PgConnection;

use super::store::{self, Target};
use super::{Posted, memo};

/// Brings a closed batch's settlement entry in line with `net_minor` (the net Helcim
/// reports for it): nothing when the active settlement entry already says it;
/// otherwise its reversal and the new one. A zero net posts nothing (and reverses a
/// settlement posted before). Returns what was written; the caller holds the batch's
/// `batch_settlements` row lock.
pub async fn post_settlement(
    db: &mut PgConnection,
    account_id: &str,
    card_batch_id: u64,
    currency: &str,
    net_minor: i64,
    closed_at: DateTime<Utc>,
) -> Result<Posted, sqlx::Error> {
    let active: serde_json::Value = sqlx::query_scalar(concat!(
        "SELECT ",
        active_entries_json!(),
        " AND e.account_id = $1 AND e.card_batch_id = $2 AND e.kind = 'settlement')"
    ))
    .bind(account_id)
    .bind(card_batch_id as i64)
    .fetch_one(&mut *db)
    .await?;
    let active = store::parse_active(active)?;
    let desired = settlement_lines(net_minor, currency).map(|lines| (EntryKind::Settlement, lines));
    let target = Target {
        account_id,
        transaction_id: None,
        card_batch_id: Some(card_batch_id),
        effective_at: closed_at,
        memo: memo::settlement(card_batch_id, net_minor, currency, closed_at),
        why: memo::settlement_now(card_batch_id, net_minor, currency),
    };
    store::bring_in_line(db, &active, desired, &target).await
}
