//! The batch pass: batches the ledger's transactions name that are not closed yet are
//! fetched again (one GET each) until Helcim reports them closed; a closed batch's
//! transactions are then listed by `cardBatchId`, what the ledger lacks is recorded,
//! and the batch gets its settlement verdict, its settlement entry and, when it does
//! not balance, a `batch_mismatch`.

use chrono::{DateTime, Utc};
use helcim_client::{CardBatch, CardBatchId, HelcimClient, HelcimError, TransactionQuery};
use recon_reconcile::movement::Candidate;
use recon_reconcile::settlement::{self as rules, Totals, Verdict};
use recon_store::reconciliation::exceptions::{self, raise};
use recon_store::reconciliation::{Origin, journal, settlement};

use super::reads::BatchToCheck;
use super::{Counts, SweepError, Sweeper, calls, flags, reads};
use crate::ledger::CARD_BATCH;

/// Helcim's stats as the verdict reads them.
pub fn totals_of(stats: &helcim_client::BatchStats) -> Totals {
    Totals {
        count: stats.count_total as i64,
        sales: stats.total_sales,
        refunds: stats.total_refunds,
        sales_reversed: stats.total_reversed,
        refunds_reversed: stats.total_refunds_reversed,
        net: stats.net_sales,
    }
}

/// A closed batch to verify.
struct Closed {
    id: u64,
    helcim: Totals,
    currency: Option<String>,
    closed_at: Option<DateTime<Utc>>,
}

impl Sweeper {
    /// Checks the batches that need it: all of the account's, or those of `only`.
    pub async fn batches(
        &self,
        client: &HelcimClient,
        account: &str,
        only: Option<&[i64]>,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let todo = reads::batches_to_check(self.ledger.pool(), account, only).await?;
        for batch in todo {
            match (batch.closed, batch.stats()) {
                (true, Some(helcim)) => {
                    let closed = Closed {
                        id: batch.card_batch_id as u64,
                        helcim,
                        currency: batch.currency.map(|c| c.trim().to_string()),
                        closed_at: batch.closed_at,
                    };
                    self.verify(client, account, closed, counts).await?;
                }
                _ => self.recheck(client, account, &batch, counts).await?,
            }
        }
        Ok(())
    }

    /// Fetches a batch the ledger holds open (or not at all, or without stats).
    async fn recheck(
        &self,
        client: &HelcimClient,
        account: &str,
        stored: &BatchToCheck,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let id = CardBatchId(stored.card_batch_id as u64);
        let fetched = match calls::batch(client, id, &mut counts.api_calls).await {
            Ok(fetched) => fetched,
            Err(HelcimError::Unreadable { reason, answer, .. }) => {
                self.ledger
                    .keep_unreadable(account, CARD_BATCH, id.0, &reason, &answer)
                    .await?;
                counts.unreadable += 1;
                return Ok(());
            }
            Err(error) if error.is_not_found() => {
                tracing::warn!(
                    account,
                    batch = id.0,
                    "a batch the ledger's transactions name is not found at Helcim"
                );
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        let currency = match stored
            .currency
            .as_deref()
            .and_then(|c| c.trim().parse().ok())
        {
            Some(currency) => Some(currency),
            None => self.transaction_currency(account, id.0).await?,
        };
        let batch = &fetched.value;
        let unchanged = !batch.closed
            && stored.currency.is_some()
            && batch.stats.as_ref().map(totals_of) == stored.stats();
        if !unchanged && let Some(currency) = currency {
            self.ledger
                .record_batch(account, &fetched, currency)
                .await?;
        }
        match (&batch.closed, &batch.stats) {
            (true, Some(stats)) => {
                counts.batches_closed += 1;
                let closed = Closed {
                    id: id.0,
                    helcim: totals_of(stats),
                    currency: currency.map(|c| c.code().to_string()),
                    closed_at: closed_at(batch, fetched.sent_at),
                };
                self.verify(client, account, closed, counts).await
            }
            (true, None) => {
                tracing::warn!(
                    account,
                    batch = id.0,
                    "a closed batch came without stats; verified next sweep"
                );
                Ok(())
            }
            (false, _) => {
                self.store_open(account, id.0, currency.map(|c| c.code()), counts)
                    .await
            }
        }
    }

    async fn transaction_currency(
        &self,
        account: &str,
        batch: u64,
    ) -> Result<Option<helcim_client::Currency>, SweepError> {
        let code: Option<String> = sqlx::query_scalar(
            "SELECT currency::text FROM card_transactions
              WHERE account_id = $1 AND card_batch_id = $2 AND currency IS NOT NULL LIMIT 1",
        )
        .bind(account)
        .bind(batch as i64)
        .fetch_optional(self.ledger.pool())
        .await?;
        Ok(code.and_then(|c| c.trim().parse().ok()))
    }

    /// An open batch's verdict row (written only when the ledger's totals changed).
    async fn store_open(
        &self,
        account: &str,
        batch: u64,
        currency: Option<&str>,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let mut db = self.ledger.pool().begin().await?;
        let ledger_txs = settlement::ledger_batch_transactions(&mut db, account, batch).await?;
        let ledger = Totals::of(&ledger_txs);
        settlement::store(
            &mut db,
            &settlement::NewSettlement {
                account_id: account,
                card_batch_id: batch,
                verdict: &Verdict::Open,
                currency,
                ledger: &ledger,
                helcim: None,
                closed_at: None,
                transactions_listed_at: None,
            },
        )
        .await?;
        db.commit().await?;
        *counts.verdicts.entry("open").or_default() += 1;
        Ok(())
    }

    /// Lists a closed batch's transactions, records what the ledger lacks or holds
    /// differently, and stores the verdict with its settlement entry and exception.
    async fn verify(
        &self,
        client: &HelcimClient,
        account: &str,
        batch: Closed,
        counts: &mut Counts,
    ) -> Result<(), SweepError> {
        let query = TransactionQuery::batch(CardBatchId(batch.id));
        let listed = calls::list_transactions(client, &query, &mut counts.api_calls).await?;
        self.keep_unreadable_items(account, &listed, counts).await?;
        let ids: Vec<i64> = listed.ids().into_iter().map(|id| id as i64).collect();
        let stored = reads::batch_rows(self.ledger.pool(), account, batch.id, &ids).await?;
        self.record_decisions(
            client,
            account,
            &listed,
            &stored,
            Origin::Sweep,
            true,
            counts,
        )
        .await?;
        let listed_at = listed.started_at;
        if let Some(started) = listed_at {
            let in_batch = stored
                .values()
                .filter(|row| row.card_batch_id == Some(batch.id as i64))
                .collect();
            self.flag_missing(
                account,
                &listed,
                in_batch,
                started,
                "listing of the batch",
                counts,
            )
            .await?;
        }
        let candidates: Vec<Candidate<'_>> = listed
            .items
            .iter()
            .map(|tx| {
                let tx = &tx.value;
                Candidate {
                    id: tx.id.0,
                    status: tx.status.as_str(),
                    kind: tx.transaction_type.as_str(),
                    amount_minor: tx.amount.minor_units,
                    currency: tx.amount.currency.code(),
                    invoice_number: tx.invoice_number.as_deref().unwrap_or(""),
                    card_token: tx.card_token.as_deref().unwrap_or(""),
                    created: tx.created_at.timestamp_micros(),
                }
            })
            .collect();
        let listing = settlement::listed_batch_transactions(&candidates);
        let currency = batch.currency.clone().or_else(|| {
            listed
                .items
                .first()
                .map(|t| t.value.amount.currency.code().to_string())
        });

        let mut db = self.ledger.pool().begin().await?;
        let ledger_txs = settlement::ledger_batch_transactions(&mut db, account, batch.id).await?;
        let ledger = Totals::of(&ledger_txs);
        let verdict = rules::verdict(&ledger_txs, Some(&batch.helcim), Some(&listing));
        settlement::store(
            &mut db,
            &settlement::NewSettlement {
                account_id: account,
                card_batch_id: batch.id,
                verdict: &verdict,
                currency: currency.as_deref(),
                ledger: &ledger,
                helcim: Some(&batch.helcim),
                closed_at: batch.closed_at,
                transactions_listed_at: listed_at,
            },
        )
        .await?;
        match (&currency, batch.closed_at) {
            (Some(currency), Some(closed_at)) => {
                journal::post_settlement(
                    &mut db,
                    account,
                    batch.id,
                    currency,
                    batch.helcim.net,
                    closed_at,
                )
                .await?;
            }
            _ => tracing::warn!(
                account,
                batch = batch.id,
                "a closed batch with no currency or close time: its settlement is not posted"
            ),
        }
        let prefix = flags::batch_mismatch_prefix(batch.id);
        let mismatch = flags::batch_mismatch(
            account,
            batch.id,
            &verdict,
            &ledger,
            &batch.helcim,
            currency.as_deref(),
            batch.closed_at,
            listed_at,
        );
        match &mismatch {
            Some(exception) => {
                if raise(&mut db, exception).await? {
                    counts.exceptions += 1;
                }
                exceptions::clear_matching(
                    &mut db,
                    account,
                    &prefix,
                    Some(&exception.dedupe_key),
                    flags::DIFFERENCE_CHANGED,
                )
                .await?;
            }
            None => {
                exceptions::clear_matching(&mut db, account, &prefix, None, flags::BALANCED)
                    .await?;
            }
        }
        db.commit().await?;
        *counts.verdicts.entry(verdict.as_str()).or_default() += 1;
        Ok(())
    }
}

/// When the batch closed: Helcim's `dateClosed`, else its last update, else when it
/// was first seen closed.
fn closed_at(batch: &CardBatch, sent_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(batch.closed_at.or(batch.updated_at).unwrap_or(sent_at))
}
