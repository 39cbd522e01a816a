//! What one verified webhook leads to. Every path ends in a [`Fate`]: done (ack after
//! the commit), retry later (a transaction Helcim does not show yet, counted toward a
//! limit), a dependency down (Helcim's rate limits, 5xx and timeouts, or Postgres: not
//! the message's fault, given up on only by time), or dead-letter (permanent, with the
//! reason).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helcim_client::{CardBatch, CardBatchId, Currency, HelcimClient, HelcimError, TransactionId};
use recon_queue::WebhookEnvelope;

use crate::clients::{HelcimClients, NoClient};
use crate::ledger::Ledger;
use crate::reconcile::reconcile;

/// How a job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Committed (or nothing to do): acknowledge.
    Done(&'static str),
    /// Something about this message may settle with time (Helcim does not show the
    /// transaction yet, the account has no token yet): retry after the next delay, at
    /// most the configured number of times.
    Retry(String),
    /// Helcim is down or limiting us (5xx, 429, timeouts): not this message's fault.
    /// Retried until the give-up time, counted from when the webhook was received.
    Unavailable(String),
    /// Postgres failed. While it does not answer the worker pauses and holds the
    /// message; if it answers, the failure counts like [`Fate::Retry`].
    Database(String),
    /// Never going to work as it is: dead-letter with this reason.
    Dead(String),
}

pub const RECONCILED: &str = "reconciled";
pub const RECORDED: &str = "recorded";
pub const DUPLICATE: &str = "duplicate";

/// Everything processing needs.
#[derive(Debug)]
pub struct Processor {
    pub ledger: Ledger,
    pub clients: HelcimClients,
    batches: BatchCache,
}

impl Processor {
    pub fn new(ledger: Ledger, clients: HelcimClients, open_batch_refresh: Duration) -> Self {
        Processor {
            ledger,
            clients,
            batches: BatchCache::new(open_batch_refresh),
        }
    }

    pub async fn process(&self, envelope: &WebhookEnvelope) -> Fate {
        let announced = (envelope.event_type == "cardTransaction")
            .then(|| {
                envelope
                    .object_id
                    .as_deref()
                    .and_then(|id| id.trim().parse::<u64>().ok())
            })
            .flatten();
        let already_done = match self.ledger.record_delivery(envelope, announced).await {
            Ok(done) => done,
            Err(error) => return Fate::Database(format!("database: {error}")),
        };
        if already_done {
            return Fate::Done(DUPLICATE);
        }
        if envelope.event_type != "cardTransaction" {
            // Terminal cancels and event types this version does not know are kept
            // (the delivery row holds the raw body), not dropped.
            return match self.ledger.complete(envelope, RECORDED).await {
                Ok(()) => Fate::Done(RECORDED),
                Err(error) => Fate::Database(format!("database: {error}")),
            };
        }
        let Some(id) = envelope
            .object_id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok())
        else {
            return Fate::Dead(format!(
                "cardTransaction event without a numeric transaction id (id: {:?})",
                envelope.object_id
            ));
        };
        match self.card_transaction(envelope, TransactionId(id)).await {
            Ok(()) => Fate::Done(RECONCILED),
            Err(fate) => fate,
        }
    }

    async fn card_transaction(
        &self,
        envelope: &WebhookEnvelope,
        id: TransactionId,
    ) -> Result<(), Fate> {
        let account = envelope.account_id.as_str();
        let database = |e: sqlx::Error| Fate::Database(format!("database: {e}"));
        let client = self.clients.get(account).await.map_err(|e| match e {
            // The operator may be adding the token right now: retry, then dead-letter.
            NoClient::NoToken(_) => Fate::Retry(e.to_string()),
            NoClient::Store(_) => Fate::Database(e.to_string()),
            NoClient::Unusable { .. } => Fate::Dead(e.to_string()),
        })?;
        metrics::counter!("worker_helcim_calls_total", "call" => "card_transaction").increment(1);
        let tx = client
            .card_transaction(id)
            .await
            .map_err(|e| helcim_fate(e, "the transaction"))?;
        let FetchedBatch {
            batch,
            fetched_now,
            gate,
        } = match tx.card_batch_id {
            Some(batch_id) => self.batch(account, &client, batch_id).await?,
            None => FetchedBatch {
                batch: None,
                fetched_now: false,
                gate: None,
            },
        };
        let batch_currency = match tx.card_batch_id {
            Some(batch_id) => self
                .batch_currency(account, batch_id)
                .await
                .map_err(database)?,
            None => None,
        };
        let reconciliation = reconcile(&tx, batch.as_ref(), batch_currency);
        let fetched = if fetched_now { batch.as_ref() } else { None };
        self.ledger
            .store(envelope, &tx, fetched, &reconciliation)
            .await
            .map_err(database)?;
        if let Some(stored) = fetched {
            // Cached only once stored, so a failed commit leaves no batch unwritten.
            self.batches.put(account, stored.clone());
        }
        drop(gate);
        if let (Some(batch_id), None) = (tx.card_batch_id, batch_currency) {
            // The first stored transaction set the batch's currency in the ledger.
            self.batches
                .set_currency(account, batch_id, tx.amount.currency);
        }
        Ok(())
    }

    /// The batch's currency in the ledger: remembered once known (it never changes),
    /// read from Postgres otherwise.
    async fn batch_currency(
        &self,
        account: &str,
        id: CardBatchId,
    ) -> Result<Option<Currency>, sqlx::Error> {
        if let Some(currency) = self.batches.currency(account, id) {
            return Ok(Some(currency));
        }
        let currency = self.ledger.batch_currency(account, id.0).await?;
        if let Some(currency) = currency {
            self.batches.set_currency(account, id, currency);
        }
        Ok(currency)
    }

    /// The batch, from the cache when closed (closed batches do not change) or
    /// recently stored; otherwise from Helcim. `(None, ..)`: Helcim does not know it.
    /// A fetch holds the batch's gate, returned to the caller and kept until the batch
    /// is stored: jobs that arrive together wait and then take the cached answer,
    /// rather than each spending a call of the account's budget.
    async fn batch(
        &self,
        account: &str,
        client: &HelcimClient,
        id: CardBatchId,
    ) -> Result<FetchedBatch, Fate> {
        if let Some(batch) = self.batches.get(account, id) {
            return Ok(FetchedBatch {
                batch: Some(batch),
                fetched_now: false,
                gate: None,
            });
        }
        let gate = self.batches.gate(account, id).lock_owned().await;
        if let Some(batch) = self.batches.get(account, id) {
            return Ok(FetchedBatch {
                batch: Some(batch),
                fetched_now: false,
                gate: None,
            });
        }
        metrics::counter!("worker_helcim_calls_total", "call" => "card_batch").increment(1);
        match client.card_batch(id).await {
            Ok(batch) => Ok(FetchedBatch {
                batch: Some(batch),
                fetched_now: true,
                gate: Some(gate),
            }),
            Err(error) if error.is_not_found() => Ok(FetchedBatch {
                batch: None,
                fetched_now: false,
                gate: None,
            }),
            Err(error) => Err(helcim_fate(error, "the card batch")),
        }
    }
}

/// A batch for one job, and (when fetched now) the gate held until it is stored.
struct FetchedBatch {
    batch: Option<CardBatch>,
    fetched_now: bool,
    gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// Transient Helcim failures (and a transaction not visible yet) are retried;
/// the rest need a person.
fn helcim_fate(error: HelcimError, what: &str) -> Fate {
    if error.is_transient() {
        Fate::Unavailable(error.to_string())
    } else if error.is_not_found() {
        Fate::Retry(format!("{what} is not at Helcim yet: {error}"))
    } else {
        Fate::Dead(error.to_string())
    }
}

/// Serialises the fetches of one batch.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// Batches fetched recently, and the ledger's currency of each, per account.
#[derive(Debug)]
struct BatchCache {
    open_refresh: Duration,
    entries: Mutex<HashMap<(String, CardBatchId), (Instant, CardBatch)>>,
    currencies: Mutex<HashMap<(String, CardBatchId), Currency>>,
    gates: Mutex<HashMap<(String, CardBatchId), Gate>>,
}

impl BatchCache {
    fn new(open_refresh: Duration) -> Self {
        BatchCache {
            open_refresh,
            entries: Mutex::new(HashMap::new()),
            currencies: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that serialises fetches of one batch.
    fn gate(&self, account: &str, id: CardBatchId) -> Gate {
        let mut gates = self.gates.lock().expect("lock poisoned");
        if gates.len() > 50_000 {
            gates.clear();
        }
        Arc::clone(gates.entry((account.to_string(), id)).or_default())
    }

    fn get(&self, account: &str, id: CardBatchId) -> Option<CardBatch> {
        let entries = self.entries.lock().expect("lock poisoned");
        let (fetched, batch) = entries.get(&(account.to_string(), id))?;
        (batch.closed || fetched.elapsed() < self.open_refresh).then(|| batch.clone())
    }

    fn currency(&self, account: &str, id: CardBatchId) -> Option<Currency> {
        self.currencies
            .lock()
            .expect("lock poisoned")
            .get(&(account.to_string(), id))
            .copied()
    }

    fn set_currency(&self, account: &str, id: CardBatchId, currency: Currency) {
        let mut currencies = self.currencies.lock().expect("lock poisoned");
        if currencies.len() > 50_000 {
            currencies.clear();
        }
        currencies.insert((account.to_string(), id), currency);
    }

    fn put(&self, account: &str, batch: CardBatch) {
        let mut entries = self.entries.lock().expect("lock poisoned");
        if entries.len() > 50_000 {
            entries.clear();
        }
        entries.insert((account.to_string(), batch.id), (Instant::now(), batch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_sort_into_retry_and_dead() {
        let transient = HelcimError::Server {
            what: "x".into(),
            status: 503,
            attempts: 3,
            errors: Default::default(),
        };
        assert!(matches!(helcim_fate(transient, "t"), Fate::Unavailable(_)));
        let missing = HelcimError::NotFound {
            what: "x".into(),
            errors: Default::default(),
        };
        assert!(
            matches!(helcim_fate(missing, "the transaction"), Fate::Retry(r) if r.contains("not at Helcim yet"))
        );
        let refused = HelcimError::Unauthorized(Default::default());
        assert!(matches!(helcim_fate(refused, "t"), Fate::Dead(r) if r.contains("401")));
    }
}
