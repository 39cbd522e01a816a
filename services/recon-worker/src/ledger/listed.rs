//! Recording what a list call returned (a sweep or a backfill), with no webhook
//! delivery to complete: the same rows, payloads, journal postings and exceptions as
//! the webhook path, through the same [`after_transaction_recorded`] hook.

use helcim_client::{CardBatch, CardTransaction, Fetched};
use recon_store::reconciliation::exceptions::{self, NewException};
use recon_store::reconciliation::{
    AfterRecord, Origin, StoredFacts, after_transaction_recorded, previous_facts,
};

use super::{
    CARD_BATCH, CARD_TRANSACTION, Ledger, insert_payload, stored_batch, upsert_batch,
    upsert_transaction,
};
use crate::reconcile::{BatchView, reconcile};

/// What recording one listed transaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The row before (`None`: the ledger had never heard of it, so no webhook
    /// announced it).
    pub previous: Option<StoredFacts>,
    pub after: AfterRecord,
}

impl Ledger {
    /// Records a transaction a list call returned, judged against its batch as the
    /// ledger holds it after `batch` (when given, fetched now) is stored. Writes
    /// nothing over a newer stored answer, like the webhook path.
    ///
    /// `if_unknown` is raised in the same database transaction when the ledger had
    /// never heard of the transaction (checked under the row's lock, so a webhook that
    /// announced it meanwhile is seen): a missed webhook is recorded together with the
    /// transaction or not at all.
    pub async fn record_listed(
        &self,
        account: &str,
        tx: &Fetched<CardTransaction>,
        batch: Option<&Fetched<CardBatch>>,
        origin: Origin,
        if_unknown: Option<&NewException>,
    ) -> Result<Recorded, sqlx::Error> {
        let mut db = self.pool.begin().await?;
        let currency = tx.value.amount.currency;
        if let Some(Fetched { value, sent_at }) = batch {
            insert_payload(
                &mut db, account, CARD_BATCH, value.id.0, &value.raw, *sent_at,
            )
            .await?;
            upsert_batch(&mut db, account, value, currency, *sent_at).await?;
        }
        let stored = match tx.value.card_batch_id {
            Some(id) => stored_batch(&mut db, account, id).await?,
            None => None,
        };
        let batch_currency: Option<String> = match tx.value.card_batch_id {
            Some(id) => sqlx::query_scalar(
                "SELECT currency::text FROM card_batches WHERE account_id = $1 AND card_batch_id = $2",
            )
            .bind(account)
            .bind(id.0 as i64)
            .fetch_optional(&mut *db)
            .await?
            .flatten(),
            None => None,
        };
        let view = stored.as_ref().map_or(BatchView::NotFound, BatchView::Read);
        let reconciliation = reconcile(
            &tx.value,
            view,
            batch_currency.and_then(|c| c.trim().parse().ok()),
        );
        let Fetched { value, sent_at } = tx;
        insert_payload(
            &mut db,
            account,
            CARD_TRANSACTION,
            value.id.0,
            &value.raw,
            *sent_at,
        )
        .await?;
        let previous = previous_facts(&mut db, account, value.id.0).await?;
        upsert_transaction(&mut db, account, value, *sent_at, &reconciliation, origin).await?;
        let mut after =
            after_transaction_recorded(&mut db, account, value.id.0, previous.as_ref(), origin)
                .await?;
        if let (None, Some(exception)) = (&previous, if_unknown)
            && exceptions::raise(&mut db, exception).await?
        {
            after.exceptions_raised += 1;
        }
        db.commit().await?;
        Ok(Recorded { previous, after })
    }

    /// Stores a batch fetched on its own (a sweep re-checking an open batch); returns
    /// whether the ledger now holds this answer (false: a newer one is stored, or a
    /// closed batch was answered as open). `currency` is used only when the ledger
    /// knows none for the batch yet.
    pub async fn record_batch(
        &self,
        account: &str,
        batch: &Fetched<CardBatch>,
        currency: helcim_client::Currency,
    ) -> Result<bool, sqlx::Error> {
        let mut db = self.pool.begin().await?;
        let Fetched { value, sent_at } = batch;
        insert_payload(
            &mut db, account, CARD_BATCH, value.id.0, &value.raw, *sent_at,
        )
        .await?;
        let written = upsert_batch(&mut db, account, value, currency, *sent_at).await?;
        db.commit().await?;
        Ok(written)
    }

    /// The pool, for the sweeps' reads.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}
