//! The completeness pass: Helcim's transactions of a window of Mountain dates against
//! the ledger's, recording what the ledger lacks or holds differently, flagging what
//! Helcim no longer lists, and refunds with no sale.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use helcim_client::{
    CardBatch, CardBatchId, Fetched, HelcimClient, HelcimError, RawAnswer, TransactionQuery,
    Unreadable,
};
use recon_reconcile::ExceptionClass;
use recon_store::reconciliation::Origin;
use recon_store::reconciliation::exceptions::raise;

use super::calls::{self, Listed, unreadable_id};
use super::compare::{Decision, StoredRow, decide, is_missing_in_api};
use super::{Counts, SweepError, Sweeper, flags, reads};
use crate::ledger::{CARD_BATCH, CARD_TRANSACTION};

impl Sweeper {
    /// Lists the window and brings the ledger in line with it; returns the batches
    /// the listing names (a backfill verifies them).
    pub async fn completeness(
        &self,
        client: &HelcimClient,
        account: &str,
        window: &super::Window,
        origin: Origin,
        counts: &mut Counts,
    ) -> Result<Vec<i64>, SweepError> {
        let query = TransactionQuery::dates(window.from, window.to);
        let listed = calls::list_transactions(client, &query, &mut counts.api_calls).await?;
        counts.listed += (listed.items.len() + listed.unreadable.len()) as u32;
        self.keep_unreadable_items(account, &listed, counts).await?;
        let ids: Vec<i64> = listed.ids().into_iter().map(|id| id as i64).collect();
        let stored = reads::window_rows(self.ledger.pool(), account, window, &ids).await?;
        self.record_decisions(client, account, &listed, &stored, origin, false, counts)
            .await?;
        if let Some(started) = listed.started_at {
            let missing: Vec<&StoredRow> = stored
                .values()
                .filter(|row| row.created_at.is_some_and(|t| window.contains(t)))
                .collect();
            self.flag_missing(
                account,
                &listed,
                missing,
                started,
                "listing by date",
                counts,
            )
            .await?;
        }
        self.flag_orphans(account, window, counts).await?;
        let touched: BTreeSet<i64> = listed
            .items
            .iter()
            .filter_map(|t| t.value.card_batch_id.map(|b| b.0 as i64))
            .collect();
        Ok(touched.into_iter().collect())
    }

    /// Records every listed transaction the ledger lacks, holds as announced only, or
    /// holds differently (one batch GET per batch the ledger does not know), and
    /// raises `missed_webhook` where one was due.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record_decisions(
        &self,
        client: &HelcimClient,
        account: &str,
        listed: &Listed,
        stored: &HashMap<i64, StoredRow>,
        origin: Origin,
        batch_closed: bool,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let mut work = Vec::new();
        for tx in &listed.items {
            let row = stored.get(&(tx.value.id.0 as i64));
            match decide(&tx.value, tx.sent_at, row, self.grace, batch_closed) {
                Decision::Same => {}
                Decision::TooYoung => counts.too_young += 1,
                decision => work.push((tx, decision)),
            }
        }
        let mut batches = self.batches_for(client, account, &work, counts).await?;
        for (tx, decision) in work {
            // The batch goes in with its first transaction only.
            let batch = tx
                .value
                .card_batch_id
                .and_then(|id| batches.get_mut(&id).and_then(Option::take));
            let missed = (decision
                == Decision::New {
                    missed_webhook: true,
                })
            .then(|| flags::missed_webhook(account, &tx.value, tx.sent_at));
            let recorded = self
                .ledger
                .record_listed(account, tx, batch.as_ref(), origin, missed.as_ref())
                .await?;
            counts.exceptions += recorded.after.exceptions_raised;
            match decision {
                Decision::Changed => counts.corrected += 1,
                _ => counts.recorded += 1,
            }
        }
        Ok(())
    }

    /// One GET per batch that new transactions name and the ledger does not know.
    async fn batches_for(
        &self,
        client: &HelcimClient,
        account: &str,
        work: &[(&Fetched<helcim_client::CardTransaction>, Decision)],
        counts: &mut Counts,
    ) -> Result<BTreeMap<CardBatchId, Option<Fetched<CardBatch>>>, SweepError> {
        let named: BTreeSet<i64> = work
            .iter()
            .filter(|(_, d)| matches!(d, Decision::New { .. } | Decision::Pending))
            .filter_map(|(tx, _)| tx.value.card_batch_id.map(|b| b.0 as i64))
            .collect();
        let named: Vec<i64> = named.into_iter().collect();
        let known = reads::known_batches(self.ledger.pool(), account, &named).await?;
        let mut fetched = BTreeMap::new();
        for id in named.into_iter().filter(|id| !known.contains(id)) {
            let id = CardBatchId(id as u64);
            match calls::batch(client, id, &mut counts.api_calls).await {
                Ok(batch) => {
                    fetched.insert(id, Some(batch));
                }
                Err(HelcimError::Unreadable { reason, answer, .. }) => {
                    self.ledger
                        .keep_unreadable(account, CARD_BATCH, id.0, &reason, &answer)
                        .await?;
                    counts.unreadable += 1;
                }
                Err(error) if error.is_not_found() => {
                    tracing::warn!(
                        account,
                        batch = id.0,
                        "a listed transaction's batch is not found at Helcim"
                    );
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(fetched)
    }

    /// Keeps each unreadable listed item in `helcim_payloads` (once: an item already
    /// kept as it is now is not kept again), and counts it.
    pub(super) async fn keep_unreadable_items(
        &self,
        account: &str,
        listed: &Listed,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        for (item, sent_at) in &listed.unreadable {
            counts.unreadable += 1;
            metrics::counter!("worker_unreadable_answers_total", "kind" => CARD_TRANSACTION)
                .increment(1);
            keep_once(&self.ledger, account, item, *sent_at).await?;
        }
        Ok(())
    }

    /// Raises `missing_in_api` for the rows the complete listing lacks, and clears it
    /// for listed ones. Skipped when a listed item's id could not be read (the row may
    /// be that item).
    pub(super) async fn flag_missing(
        &self,
        account: &str,
        listed: &Listed,
        candidates: Vec<&StoredRow>,
        started: DateTime<Utc>,
        listing: &str,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let ids = listed.ids();
        let mut db = self.ledger.pool().begin().await?;
        if listed
            .unreadable
            .iter()
            .all(|(u, _)| unreadable_id(u).is_some())
        {
            let missing = candidates.into_iter().filter(|row| {
                !ids.contains(&(row.transaction_id as u64)) && is_missing_in_api(row, started)
            });
            for row in missing {
                let exception = flags::missing_in_api(account, row, started, listing);
                if raise(&mut db, &exception).await? {
                    counts.exceptions += 1;
                }
            }
        }
        let listed_ids: Vec<i64> = ids.iter().map(|id| *id as i64).collect();
        flags::clear_on_transactions(
            &mut db,
            account,
            ExceptionClass::MissingInApi,
            &listed_ids,
            flags::REAPPEARED,
        )
        .await?;
        db.commit().await?;
        Ok(())
    }

    /// Raises `orphan_refund` for the window's approved refunds (and reverses) with no
    /// sale in the ledger, and clears those whose sale has arrived.
    async fn flag_orphans(
        &self,
        account: &str,
        window: &super::Window,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let pool = self.ledger.pool();
        let orphans = reads::orphans(pool, account, window).await?;
        let resolved = reads::orphans_with_a_sale(pool, account).await?;
        if orphans.is_empty() && resolved.is_empty() {
            return Ok(());
        }
        let mut db = pool.begin().await?;
        for orphan in &orphans {
            if raise(&mut db, &flags::orphan_refund(account, orphan)).await? {
                counts.exceptions += 1;
            }
        }
        flags::clear_on_transactions(
            &mut db,
            account,
            ExceptionClass::OrphanRefund,
            &resolved,
            flags::SALE_FOUND,
        )
        .await?;
        db.commit().await?;
        Ok(())
    }
}

/// Keeps an unreadable listed item unless the same bytes are already kept for it.
async fn keep_once(
    ledger: &crate::ledger::Ledger,
    account: &str,
    item: &Unreadable,
    sent_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let body = item.raw.to_string().into_bytes();
    let object_id = unreadable_id(item).unwrap_or(0);
    let kept: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM helcim_payloads
                         WHERE account_id = $1 AND kind = $2 AND object_id = $3 AND raw_body = $4)",
    )
    .bind(account)
    .bind(CARD_TRANSACTION)
    .bind(object_id as i64)
    .bind(&body)
    .fetch_one(ledger.pool())
    .await?;
    if !kept {
        let answer = RawAnswer { body, sent_at };
        ledger
            .keep_unreadable(
                account,
                CARD_TRANSACTION,
                object_id,
                &item.reason.to_string(),
                &answer,
            )
            .await?;
    }
    Ok(())
}
