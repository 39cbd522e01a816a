//! Whether a stored transaction agrees with its batch. The first rules; the full rule
//! set (settlement, journal) builds on what the ledger stores.

use helcim_client::{CardBatch, CardTransaction, Currency, TransactionStatus, TransactionType};

/// The reconciliation status of a fetched transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciliation {
    Matched,
    Exception(String),
}

impl Reconciliation {
    pub fn status(&self) -> &'static str {
        match self {
            Reconciliation::Matched => "matched",
            Reconciliation::Exception(_) => "exception",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Reconciliation::Matched => None,
            Reconciliation::Exception(reason) => Some(reason),
        }
    }
}

/// The transaction's batch as Helcim reports it.
#[derive(Debug, Clone, Copy)]
pub enum BatchView<'a> {
    Read(&'a CardBatch),
    /// Helcim does not know it.
    NotFound,
    /// Helcim answered, but the answer could not be read (why).
    Unreadable(&'a str),
}

/// The reason prefix of a transaction whose batch Helcim answered unreadably: the
/// transaction is stored, the batch's raw answer kept, and the check waits for a fix.
pub const BATCH_UNREADABLE: &str = "batch_unreadable";

/// `batch` is the transaction's batch as Helcim reports it; `batch_currency` the
/// currency the ledger already holds for that batch.
pub fn reconcile(
    tx: &CardTransaction,
    batch: BatchView<'_>,
    batch_currency: Option<Currency>,
) -> Reconciliation {
    use Reconciliation::Exception;
    if let TransactionStatus::Unrecognized(status) = &tx.status {
        return Exception(format!(
            "Helcim reports status {status:?}, which this version does not know"
        ));
    }
    if let TransactionType::Unrecognized(kind) = &tx.transaction_type {
        return Exception(format!(
            "Helcim reports type {kind:?}, which this version does not know"
        ));
    }
    let Some(batch_id) = tx.card_batch_id else {
        return Exception("Helcim reports no card batch for this transaction".into());
    };
    let batch = match batch {
        BatchView::Read(batch) => batch,
        BatchView::NotFound => {
            return Exception(format!("card batch {batch_id} was not found at Helcim"));
        }
        BatchView::Unreadable(why) => {
            return Exception(format!(
                "{BATCH_UNREADABLE}: Helcim's answer for card batch {batch_id} could not \
                 be read ({why}); it is kept in helcim_payloads"
            ));
        }
    };
    if batch.id != batch_id {
        return Exception(format!(
            "fetched card batch {} for batch {batch_id}",
            batch.id
        ));
    }
    if let Some(closed_at) = batch.closed_at
        && tx.created_at > closed_at
    {
        return Exception(format!(
            "created at {} after its batch closed at {closed_at}",
            tx.created_at
        ));
    }
    if let Some(currency) = batch_currency
        && currency != tx.amount.currency
    {
        return Exception(format!(
            "a {} transaction in a batch of {currency} transactions",
            tx.amount.currency
        ));
    }
    Reconciliation::Matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tx(batch: Option<u64>, status: &str, created: &str, currency: &str) -> CardTransaction {
        let mut raw = json!({"transactionId": 1, "dateCreated": created, "status": status,
            "type": "purchase", "amount": "10.00", "currency": currency});
        if let Some(batch) = batch {
            raw["cardBatchId"] = json!(batch);
        }
        CardTransaction::from_json(raw).unwrap()
    }

    fn batch(id: u64, closed: Option<&str>) -> CardBatch {
        CardBatch::from_json(
            json!({"id": id, "dateClosed": closed.unwrap_or("0000-00-00 00:00:00")}),
        )
        .unwrap()
    }

    #[test]
    fn a_transaction_in_its_open_or_later_closed_batch_matches() {
        let t = tx(Some(7), "APPROVED", "2026-01-14 11:00:00", "CAD");
        assert_eq!(
            reconcile(&t, BatchView::Read(&batch(7, None)), None),
            Reconciliation::Matched
        );
        let closed = batch(7, Some("2026-01-14 17:00:00"));
        assert_eq!(
            reconcile(&t, BatchView::Read(&closed), Some(Currency::Cad)),
            Reconciliation::Matched
        );
    }

    #[test]
    fn each_inconsistency_is_an_exception_with_its_reason() {
        let t = tx(Some(7), "APPROVED", "2026-01-14 18:00:00", "CAD");
        let cases = [
            (
                reconcile(
                    &t,
                    BatchView::Read(&batch(7, Some("2026-01-14 17:00:00"))),
                    None,
                ),
                "after its batch closed",
            ),
            (reconcile(&t, BatchView::NotFound, None), "not found"),
            (
                reconcile(&t, BatchView::Unreadable("field `dateClosed`: bad"), None),
                "batch_unreadable: Helcim's answer for card batch 7 could not be read (field `dateClosed`: bad)",
            ),
            (
                reconcile(&t, BatchView::Read(&batch(8, None)), None),
                "fetched card batch 8",
            ),
            (
                reconcile(&t, BatchView::Read(&batch(7, None)), Some(Currency::Usd)),
                "batch of USD",
            ),
            (
                reconcile(
                    &tx(None, "APPROVED", "2026-01-14 11:00:00", "CAD"),
                    BatchView::NotFound,
                    None,
                ),
                "no card batch",
            ),
            (
                reconcile(
                    &tx(Some(7), "HELD", "2026-01-14 11:00:00", "CAD"),
                    BatchView::Read(&batch(7, None)),
                    None,
                ),
                "HELD",
            ),
        ];
        for (result, expected) in cases {
            let reason = result.reason().unwrap_or_default().to_string();
            assert!(
                reason.contains(expected),
                "{reason:?} should mention {expected:?}"
            );
            assert_eq!(result.status(), "exception");
        }
    }
}
