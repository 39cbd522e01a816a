//! What a sweep does with one listed transaction, given the ledger's row: the pure
//! rules of the completeness and batch passes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use helcim_client::CardTransaction;

/// A ledger row as the comparison reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredRow {
    pub transaction_id: i64,
    pub reconciliation_status: String,
    pub status: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub card_batch_id: Option<i64>,
    pub created_at: Option<DateTime<Utc>>,
    pub fetched_at: Option<DateTime<Utc>>,
}

impl StoredRow {
    pub fn is_pending(&self) -> bool {
        self.reconciliation_status == "pending"
    }

    /// Whether Helcim's answer says something else than the row on the facts money
    /// depends on: amount, currency, status, type, batch.
    pub fn differs_from(&self, tx: &CardTransaction) -> bool {
        self.amount_minor != Some(tx.amount.minor_units)
            || self.currency.as_deref().map(str::trim) != Some(tx.amount.currency.code())
            || self.status.as_deref() != Some(tx.status.as_str())
            || self.kind.as_deref() != Some(tx.transaction_type.as_str())
            || self.card_batch_id != tx.card_batch_id.map(|b| b.0 as i64)
    }
}

/// What to do with a listed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not in the ledger: record it; `missed_webhook` says whether it is old enough
    /// that its webhook should have come.
    New { missed_webhook: bool },
    /// Not in the ledger and too young: its webhook is most likely on its way.
    TooYoung,
    /// Announced by a webhook, never fetched: record the answer.
    Pending,
    /// Helcim's answer differs from the row: record it (a correction).
    Changed,
    /// The row says the same, or holds an answer newer than this listing: nothing.
    Same,
}

/// Decides for one listed transaction. `listed_at` is when the listing's request was
/// sent (or earlier); `batch_closed`: it was listed as part of a closed batch, where
/// nothing is on its way any more, so it is recorded however young.
pub fn decide(
    tx: &CardTransaction,
    listed_at: DateTime<Utc>,
    stored: Option<&StoredRow>,
    grace: Duration,
    batch_closed: bool,
) -> Decision {
    let old_enough =
        tx.created_at + chrono::Duration::from_std(grace).unwrap_or_default() < listed_at;
    match stored {
        None if old_enough => Decision::New {
            missed_webhook: true,
        },
        // Its batch closed and Helcim lists it, yet no webhook announced it: it is
        // recorded now, and flagged, since the batch pass may not see it again. A
        // webhook that is merely late clears the flag when it arrives.
        None if batch_closed => Decision::New {
            missed_webhook: true,
        },
        None => Decision::TooYoung,
        Some(row) if row.is_pending() => Decision::Pending,
        // A row fetched after this listing was sent knows at least as much.
        Some(row) if row.fetched_at.is_some_and(|f| f >= listed_at) => Decision::Same,
        Some(row) if row.differs_from(tx) => Decision::Changed,
        Some(_) => Decision::Same,
    }
}

/// Whether a ledger row that the complete listing did not contain is missing at
/// Helcim: it has an answer (not pending) fetched before the listing was sent (a
/// younger answer may postdate the listing).
pub fn is_missing_in_api(row: &StoredRow, listing_started: DateTime<Utc>) -> bool {
    !row.is_pending() && row.fetched_at.is_some_and(|f| f < listing_started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tx(created: &str, amount: &str) -> CardTransaction {
        CardTransaction::from_json(json!({
            "transactionId": 7, "dateCreated": created, "cardBatchId": 31,
            "status": "APPROVED", "type": "purchase", "amount": amount, "currency": "CAD"
        }))
        .unwrap()
    }

    fn row(amount: i64, fetched: &str) -> StoredRow {
        StoredRow {
            transaction_id: 7,
            reconciliation_status: "matched".into(),
            status: Some("APPROVED".into()),
            kind: Some("purchase".into()),
            amount_minor: Some(amount),
            currency: Some("CAD".into()),
            card_batch_id: Some(31),
            created_at: None,
            fetched_at: Some(fetched.parse().unwrap()),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    const GRACE: Duration = Duration::from_secs(300);

    #[test]
    fn an_unknown_transaction_is_recorded_once_older_than_the_grace() {
        // 12:00 Mountain (MST) is 19:00 UTC.
        let listed = tx("2026-11-23 12:00:00", "10.00");
        let young = decide(&listed, at("2026-11-23T19:04:00Z"), None, GRACE, false);
        assert_eq!(young, Decision::TooYoung);
        let closed = decide(&listed, at("2026-11-23T19:04:00Z"), None, GRACE, true);
        assert_eq!(
            closed,
            Decision::New {
                missed_webhook: true
            }
        );
        let old = decide(&listed, at("2026-11-23T19:05:01Z"), None, GRACE, false);
        assert_eq!(
            old,
            Decision::New {
                missed_webhook: true
            }
        );
    }

    #[test]
    fn a_changed_amount_is_a_correction_unless_the_row_is_newer_than_the_listing() {
        let listed = tx("2026-11-23 12:00:00", "12.00");
        let stored = row(1000, "2026-11-23T19:01:00Z");
        let listed_at = at("2026-11-23T20:00:00Z");
        assert_eq!(
            decide(&listed, listed_at, Some(&stored), GRACE, false),
            Decision::Changed
        );
        let newer = row(1000, "2026-11-23T20:00:00Z");
        assert_eq!(
            decide(&listed, listed_at, Some(&newer), GRACE, false),
            Decision::Same
        );
        let same = row(1200, "2026-11-23T19:01:00Z");
        assert_eq!(
            decide(&listed, listed_at, Some(&same), GRACE, false),
            Decision::Same
        );
        let pending = StoredRow {
            reconciliation_status: "pending".into(),
            fetched_at: None,
            ..same.clone()
        };
        assert_eq!(
            decide(&listed, listed_at, Some(&pending), GRACE, false),
            Decision::Pending
        );
    }

    #[test]
    fn only_rows_fetched_before_the_listing_can_be_missing_from_it() {
        let listing = at("2026-11-23T20:00:00Z");
        assert!(is_missing_in_api(&row(1, "2026-11-23T19:00:00Z"), listing));
        assert!(!is_missing_in_api(&row(1, "2026-11-23T20:00:00Z"), listing));
    }
}
